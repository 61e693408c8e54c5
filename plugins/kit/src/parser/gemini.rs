//! Vertex AI Gemini answers: `streamGenerateContent?alt=sse` events (one
//! `GenerateContentResponse` per `data:` line), a whole
//! `generateContent` object, or the JSON array `streamGenerateContent`
//! returns without `alt=sse`; and `:predict` embeddings.

use serde_json::Value;

use super::{QUOTE_CHARS, Seen, api_error, quote};
use crate::model::{Event, Usage};

fn parse(payload: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(payload).map_err(|_| {
        format!(
            "malformed JSON in a Vertex answer: {}",
            quote(payload, QUOTE_CHARS)
        )
    })
}

/// Events of one `GenerateContentResponse`; whether it gave a finish reason.
fn response(v: &Value, out: &mut Vec<Event>) -> bool {
    if let Some(e) = v.get("error") {
        out.push(Event::Error(api_error(e)));
        return false;
    }
    let mut finished = false;
    if let Some(c) = v.pointer("/candidates/0") {
        if let Some(parts) = c.pointer("/content/parts").and_then(Value::as_array) {
            for p in parts {
                let Some(t) = p.get("text").and_then(Value::as_str) else {
                    continue;
                };
                if t.is_empty() {
                    continue;
                }
                // Gemini marks thinking parts with `thought: true`.
                if p.get("thought").and_then(Value::as_bool) == Some(true) {
                    out.push(Event::Reasoning(t.to_owned()));
                } else {
                    out.push(Event::Content(t.to_owned()));
                }
            }
        }
        finished = c.get("finishReason").is_some_and(|r| !r.is_null());
    }
    if let Some(u) = v.get("usageMetadata") {
        let n = |k: &str| u.get(k).and_then(Value::as_u64);
        let usage = Usage {
            prompt_tokens: n("promptTokenCount"),
            completion_tokens: n("candidatesTokenCount"),
            reasoning_tokens: n("thoughtsTokenCount"),
        };
        if usage != Usage::default() {
            out.push(Event::Usage(usage));
        }
    }
    finished
}

/// One `data:` payload of an `alt=sse` stream.
pub(super) fn event(payload: &[u8], out: &mut Vec<Event>) -> Result<Seen, String> {
    let mut seen = Seen::default();
    let trimmed = payload.trim_ascii();
    if trimmed.is_empty() {
        return Ok(seen);
    }
    seen.finish = response(&parse(trimmed)?, out);
    Ok(seen)
}

/// A whole answer: one object, or an array of them.
pub(super) fn whole(body: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
    let v = parse(body.trim_ascii())?;
    match &v {
        Value::Array(items) => {
            for item in items {
                response(item, out);
            }
        }
        Value::Object(_) => {
            response(&v, out);
        }
        _ => {
            return Err(format!(
                "Vertex answer is neither an object nor a list: {}",
                quote(body, QUOTE_CHARS)
            ));
        }
    }
    if !out
        .iter()
        .any(|e| matches!(e, Event::Content(_) | Event::Reasoning(_) | Event::Error(_)))
    {
        return Err(format!(
            "Vertex answer has no candidates text: {}",
            quote(body, QUOTE_CHARS)
        ));
    }
    Ok(())
}

/// A `:predict` embeddings answer: the input tokens are the sum of each
/// prediction's `embeddings.statistics.token_count`.
pub(super) fn embeddings(body: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
    let v = parse(body.trim_ascii())?;
    if let Some(e) = v.get("error") {
        out.push(Event::Error(api_error(e)));
        return Ok(());
    }
    let predictions = v
        .get("predictions")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            format!(
                "Vertex embeddings answer has no predictions: {}",
                quote(body, QUOTE_CHARS)
            )
        })?;
    let tokens: Option<u64> = predictions
        .iter()
        .map(|p| {
            p.pointer("/embeddings/statistics/token_count")
                .and_then(Value::as_f64)
                .map(|x| x as u64)
        })
        .sum();
    if tokens.is_some() {
        out.push(Event::Usage(Usage {
            prompt_tokens: tokens,
            completion_tokens: None,
            reasoning_tokens: None,
        }));
    }
    Ok(())
}
