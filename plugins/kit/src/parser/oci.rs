//! OCI Generative AI answers (`/20231130/actions/chat`, `embedText`,
//! `rerankText`): server-sent events of the three chat formats, a whole
//! `chatResponse`, and the embed and rerank results.
//!
//! Stream events, as the OCI SDK's models and genai-bench's parsers read
//! them:
//! - `COHERE`: `{"apiFormat":"COHERE","text":"..."}` per piece; the last
//!   event has `finishReason` and repeats the whole text, so its `text` is
//!   not new output.
//! - `COHEREV2`: `{"apiFormat":"COHEREV2","message":{"content":[{"type":
//!   "TEXT","text":"..."}]}}`; the last has `finishReason` and `usage`.
//! - `GENERIC`: `{"index":0,"message":{"content":[...]}}`, an event with
//!   `finishReason`, then `{"usage":{...}}` on its own.

use serde_json::Value;

use super::{QUOTE_CHARS, Seen, api_error, quote};
use crate::model::{Event, Usage};

fn parse(payload: &[u8], what: &str) -> Result<Value, String> {
    serde_json::from_slice(payload)
        .map_err(|_| format!("malformed JSON in {what}: {}", quote(payload, QUOTE_CHARS)))
}

/// OCI's usage: `promptTokens` / `completionTokens` (or `totalTokens`
/// less the prompt), `completionTokensDetails.reasoningTokens`; the
/// snake_case and Cohere `tokens{inputTokens,outputTokens}` forms too.
fn usage(u: &Value) -> Option<Usage> {
    let n = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| u.get(*k).or_else(|| u.pointer(&format!("/tokens/{k}"))))
            .and_then(Value::as_f64)
            .map(|x| x as u64)
    };
    let prompt = n(&[
        "promptTokens",
        "prompt_tokens",
        "inputTokens",
        "input_tokens",
    ]);
    let total = n(&["totalTokens", "total_tokens"]);
    let completion = n(&[
        "completionTokens",
        "completion_tokens",
        "outputTokens",
        "output_tokens",
    ])
    .or_else(|| Some(total?.saturating_sub(prompt?)));
    let reasoning = u
        .pointer("/completionTokensDetails/reasoningTokens")
        .or_else(|| u.pointer("/completion_tokens_details/reasoning_tokens"))
        .and_then(Value::as_u64);
    (prompt.is_some() || completion.is_some()).then_some(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        reasoning_tokens: reasoning,
    })
}

/// Text and thinking of a `message` (`content` parts typed `TEXT` /
/// `THINKING`, or GENERIC's `reasoningContent`).
fn message(m: &Value, out: &mut Vec<Event>) {
    if let Some(r) = m.get("reasoningContent").and_then(Value::as_str)
        && !r.is_empty()
    {
        out.push(Event::Reasoning(r.to_owned()));
    }
    let Some(parts) = m.get("content").and_then(Value::as_array) else {
        return;
    };
    for p in parts {
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("TEXT");
        if let Some(t) = p.get("thinking").and_then(Value::as_str)
            && !t.is_empty()
        {
            out.push(Event::Reasoning(t.to_owned()));
        }
        if let Some(t) = p.get("text").and_then(Value::as_str)
            && !t.is_empty()
        {
            if kind.eq_ignore_ascii_case("THINKING") {
                out.push(Event::Reasoning(t.to_owned()));
            } else {
                out.push(Event::Content(t.to_owned()));
            }
        }
    }
}

/// An error object (`{"code": ..., "message": "..."}`) where an answer was
/// expected.
fn is_error(v: &Value) -> bool {
    v.get("code").is_some()
        && v.get("message").is_some_and(Value::is_string)
        && v.get("apiFormat").is_none()
}

/// A finish reason that says the model failed.
fn failed(reason: &str) -> bool {
    reason.to_ascii_uppercase().starts_with("ERROR")
}

/// One `data:` payload of an OCI chat stream.
pub(super) fn event(payload: &[u8], out: &mut Vec<Event>) -> Result<Seen, String> {
    let mut seen = Seen::default();
    let trimmed = payload.trim_ascii();
    if trimmed.is_empty() {
        return Ok(seen);
    }
    if trimmed == b"[DONE]" {
        out.push(Event::End);
        seen.done = true;
        return Ok(seen);
    }
    let v = parse(trimmed, "OCI event stream")?;
    if is_error(&v) {
        out.push(Event::Error(api_error(&v)));
        return Ok(seen);
    }
    let reason = v.get("finishReason").and_then(Value::as_str);
    let cohere_v1 = v.get("apiFormat").and_then(Value::as_str) == Some("COHERE");
    if cohere_v1 {
        if reason.is_none()
            && let Some(t) = v.get("text").and_then(Value::as_str)
            && !t.is_empty()
        {
            out.push(Event::Content(t.to_owned()));
        }
    } else if let Some(m) = v.get("message") {
        message(m, out);
    }
    if let Some(u) = v.get("usage").and_then(usage) {
        out.push(Event::Usage(u));
    }
    if let Some(r) = reason {
        if failed(r) {
            out.push(Event::Error(api_error(&Value::String(format!(
                "OCI ended the answer with finishReason {r}"
            )))));
        }
        seen.finish = true;
    }
    Ok(seen)
}

/// A whole (non-streaming) chat answer: `{"chatResponse": {...}}` in any
/// of the three formats.
pub(super) fn whole(body: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
    let v = parse(body.trim_ascii(), "the OCI chat answer")?;
    if is_error(&v) {
        out.push(Event::Error(api_error(&v)));
        return Ok(());
    }
    let r = v.get("chatResponse").ok_or_else(|| {
        format!(
            "OCI chat answer has no chatResponse: {}",
            quote(body, QUOTE_CHARS)
        )
    })?;
    let mut reasons = Vec::new();
    if let Some(choices) = r.get("choices").and_then(Value::as_array) {
        // GENERIC: the first choice (genai-bench asks for one generation).
        if let Some(c) = choices.first() {
            if let Some(m) = c.get("message") {
                message(m, out);
            }
            reasons.extend(c.get("finishReason").and_then(Value::as_str));
        }
    } else if let Some(m) = r.get("message") {
        message(m, out);
    } else if let Some(t) = r.get("text").and_then(Value::as_str) {
        if !t.is_empty() {
            out.push(Event::Content(t.to_owned()));
        }
    } else {
        return Err(format!(
            "OCI chatResponse has none of choices, message, text: {}",
            quote(body, QUOTE_CHARS)
        ));
    }
    reasons.extend(r.get("finishReason").and_then(Value::as_str));
    if let Some(u) = r.get("usage").and_then(usage) {
        out.push(Event::Usage(u));
    }
    if let Some(reason) = reasons.into_iter().find(|r| failed(r)) {
        out.push(Event::Error(api_error(&Value::String(format!(
            "OCI ended the answer with finishReason {reason}"
        )))));
    }
    Ok(())
}

/// An `embedText` (`embeddings`) or `rerankText` (`documentRanks`) result,
/// and its usage when the service gives one.
pub(super) fn result(rerank: bool, body: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(super::EMPTY_BODY.to_owned());
    }
    let what = if rerank {
        "the OCI rerankText answer"
    } else {
        "the OCI embedText answer"
    };
    let v = parse(trimmed, what)?;
    if is_error(&v) {
        out.push(Event::Error(api_error(&v)));
        return Ok(());
    }
    let key = if rerank {
        "documentRanks"
    } else {
        "embeddings"
    };
    if !v.get(key).is_some_and(Value::is_array) {
        return Err(format!(
            "{what} has no `{key}` list: {}",
            quote(trimmed, QUOTE_CHARS)
        ));
    }
    if let Some(u) = v.get("usage").and_then(usage) {
        out.push(Event::Usage(Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: None,
            reasoning_tokens: None,
        }));
    }
    Ok(())
}
