//! Cohere's v2 chat answers (`/v2/chat`): server-sent events typed by
//! `type` (`content-delta` carries text, `message-end` the usage and the
//! finish reason), or one JSON body without streaming.

use serde_json::Value;

use super::{QUOTE_CHARS, Seen, api_error, quote};
use crate::model::{Event, Usage};

/// The usage of a `usage` object: `tokens` (what the model counted), else
/// `billed_units`.
fn usage(u: &Value) -> Option<Usage> {
    let counts = u
        .get("tokens")
        .or_else(|| u.get("billed_units"))
        .unwrap_or(u);
    let n = |k: &str| counts.get(k).and_then(Value::as_f64).map(|x| x as u64);
    let (input, output) = (n("input_tokens"), n("output_tokens"));
    (input.is_some() || output.is_some()).then_some(Usage {
        prompt_tokens: input,
        completion_tokens: output,
        reasoning_tokens: None,
    })
}

fn parse(payload: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(payload).map_err(|_| {
        format!(
            "malformed JSON in Cohere event stream: {}",
            quote(payload, QUOTE_CHARS)
        )
    })
}

/// One `data:` payload of a Cohere v2 event stream.
pub(super) fn event(payload: &[u8], out: &mut Vec<Event>) -> Result<Seen, String> {
    let mut seen = Seen::default();
    let trimmed = payload.trim_ascii();
    if trimmed.is_empty() {
        return Ok(seen);
    }
    let v = parse(trimmed)?;
    match v.get("type").and_then(Value::as_str) {
        Some("content-delta") => {
            let content = v.pointer("/delta/message/content");
            if let Some(t) = content
                .and_then(|c| c.get("thinking"))
                .and_then(Value::as_str)
                && !t.is_empty()
            {
                out.push(Event::Reasoning(t.to_owned()));
            }
            if let Some(t) = content.and_then(|c| c.get("text")).and_then(Value::as_str)
                && !t.is_empty()
            {
                out.push(Event::Content(t.to_owned()));
            }
        }
        Some("message-end") => {
            if let Some(u) = v.pointer("/delta/usage").and_then(usage) {
                out.push(Event::Usage(u));
            }
            let reason = v
                .pointer("/delta/finish_reason")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if reason.eq_ignore_ascii_case("ERROR") {
                out.push(Event::Error(api_error(&Value::String(
                    "Cohere ended the answer with finish_reason ERROR".into(),
                ))));
            }
            // The stream's own end: complete whatever the reason.
            out.push(Event::End);
            seen.done = true;
        }
        None if v.get("message").is_some() && v.get("delta").is_none() => {
            // An error object sent as an event.
            out.push(Event::Error(api_error(&v)));
        }
        _ => {}
    }
    Ok(seen)
}

/// A whole (non-streaming) `/v2/chat` answer.
pub(super) fn whole(body: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
    let v = parse(body.trim_ascii())?;
    if v.get("message").is_some_and(Value::is_string) && v.get("finish_reason").is_none() {
        out.push(Event::Error(api_error(&v)));
        return Ok(());
    }
    let parts = v
        .pointer("/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            format!(
                "Cohere answer has no message.content: {}",
                quote(body, QUOTE_CHARS)
            )
        })?;
    for p in parts {
        if let Some(t) = p.get("thinking").and_then(Value::as_str)
            && !t.is_empty()
        {
            out.push(Event::Reasoning(t.to_owned()));
        }
        if let Some(t) = p.get("text").and_then(Value::as_str)
            && !t.is_empty()
        {
            out.push(Event::Content(t.to_owned()));
        }
    }
    if let Some(u) = v.get("usage").and_then(usage) {
        out.push(Event::Usage(u));
    }
    Ok(())
}
