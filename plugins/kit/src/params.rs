//! `--additional-request-params` checks every Rust plugin makes the same
//! way; each plugin adds the keys only it interprets (`params.rs` there).

use serde_json::{Map, Value};

use crate::model::{Level, Log};

/// Example shown when the params are not a JSON object.
const EXAMPLE: &str = r#"'{"temperature": 0.7}'"#;

/// Longest rendering of a bad value inside an error message.
const SHOWN_VALUE_CHARS: usize = 120;

/// Parses the params JSON into an object; empty text counts as `{}`.
pub fn parse(params_json: &str) -> Result<Map<String, Value>, String> {
    if params_json.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(params_json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "additional request params must be a JSON object such as {EXAMPLE}, got {}",
            show(&other)
        )),
        Err(e) => Err(format!(
            "additional request params must be a JSON object such as {EXAMPLE}, \
             but they are not valid JSON ({e}): {}",
            truncate_chars(params_json.trim(), SHOWN_VALUE_CHARS)
        )),
    }
}

/// Checks the keys every plugin reads alike: `stream` (ignored, with a
/// warning), `custom_messages` (shape), `temperature`, `max_tokens`. `log`
/// receives warnings about keys that are accepted but ignored.
pub fn check_common(params: &Map<String, Value>, log: &mut dyn Log) -> Result<(), String> {
    if params.contains_key("stream") {
        log.log(
            Level::Warn,
            "`stream` in additional request params is ignored: streaming follows \
             --disable-streaming",
        );
    }
    if let Some(messages) = params.get("custom_messages") {
        check_messages(messages)?;
    }
    if let Some(t) = params.get("temperature") {
        match t.as_f64() {
            Some(x) if x >= 0.0 => {}
            _ => {
                return Err(format!(
                    "`temperature` must be a number >= 0 (e.g. 0.7), got {}",
                    show(t)
                ));
            }
        }
    }
    if let Some(m) = params.get("max_tokens") {
        match m {
            Value::Null => {}
            Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => {}
            _ => {
                return Err(format!(
                    "`max_tokens` must be a positive integer (e.g. 256) or null, got {}",
                    show(m)
                ));
            }
        }
    }
    Ok(())
}

fn check_messages(messages: &Value) -> Result<(), String> {
    let list = match messages {
        Value::Array(list) if !list.is_empty() => list,
        _ => {
            return Err(format!(
                "`custom_messages` must be a non-empty array of messages such as \
                 [{{\"role\": \"user\", \"content\": \"Hello\"}}], got {}",
                show(messages)
            ));
        }
    };
    for (i, message) in list.iter().enumerate() {
        let Value::Object(fields) = message else {
            return Err(format!(
                "`custom_messages[{i}]` must be an object with string `role` and `content`, \
                 got {}",
                show(message)
            ));
        };
        match fields.get("role") {
            Some(Value::String(_)) => {}
            other => {
                return Err(format!(
                    "`custom_messages[{i}].role` must be a string such as \"user\", got {}",
                    show_opt(other)
                ));
            }
        }
        match fields.get("content") {
            Some(Value::String(_) | Value::Array(_)) => {}
            other => {
                return Err(format!(
                    "`custom_messages[{i}].content` must be a string or an array of content \
                     parts, got {}",
                    show_opt(other)
                ));
            }
        }
    }
    Ok(())
}

pub fn show_opt(value: Option<&Value>) -> String {
    value.map_or_else(|| "nothing (the key is missing)".to_owned(), show)
}

/// A bad value as JSON text, shortened for an error message.
pub fn show(value: &Value) -> String {
    truncate_chars(&value.to_string(), SHOWN_VALUE_CHARS)
}

/// At most `max` characters of `text`, marked when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `s` percent-encoded for one URL path segment or query value: RFC 3986
/// unreserved characters and those in `keep` stay, everything else
/// (`:`, `/`, spaces, non-ASCII) is `%XX`, as botocore and Google's
/// clients encode model ids.
pub fn path_segment(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Refuses Baseten's `use_prompt_format` in a plugin whose API has one
/// request format, naming that format.
pub fn refuse_prompt_format(params: &Map<String, Value>, format: &str) -> Result<(), String> {
    if params.contains_key("use_prompt_format") {
        return Err(format!(
            "`use_prompt_format` is a Baseten option; {format}. Remove it"
        ));
    }
    Ok(())
}

/// The `compartmentId` every OCI Generative AI request needs (genai-bench
/// takes it from the additional request params), or what to pass.
pub fn oci_compartment(params: &Map<String, Value>) -> Result<&str, String> {
    match params.get("compartmentId") {
        Some(Value::String(c)) if !c.trim().is_empty() => Ok(c),
        None | Some(Value::Null) => Err(
            "OCI requests need the compartment to bill and authorise them: \
             --additional-request-params '{\"compartmentId\": \"ocid1.compartment.oc1..…\"}'"
                .to_owned(),
        ),
        Some(other) => Err(format!(
            "`compartmentId` must be a compartment OCID string, got {}",
            show(other)
        )),
    }
}
