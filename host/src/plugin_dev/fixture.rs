//! Canned response fixtures for `genai-bench plugin check`.
//!
//! A fixture is one JSON file (`*.json` in the fixtures folder): a response
//! head, its body, and the events the plugin must produce from it.
//!
//! ```json
//! {
//!   "description": "vLLM stream with a separate usage chunk",
//!   "status": 200,
//!   "headers": {"content-type": "text/event-stream"},
//!   "task": "text-to-text",
//!   "stream": true,
//!   "body_lines": ["data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}", "",
//!                  "data: [DONE]", ""],
//!   "expect": [{"content": "Hi"}, "end"]
//! }
//! ```
//!
//! * `body` is the body exactly; `body_lines` is joined with `\n` (one of
//!   the two is required). `status` defaults to 200, `headers` to none,
//!   `task` to `text-to-text`, `stream` to true.
//! * `expect` lists the events: `{"content": TEXT}`, `{"reasoning": TEXT}`,
//!   `{"usage": {"prompt_tokens": N, "completion_tokens": N,
//!   "reasoning_tokens": N}}` (missing counts are null), `{"error":
//!   {"code": N, "message": TEXT}}`, and `"end"`. Adjacent content (and
//!   adjacent reasoning) events are merged before comparing, since a plugin
//!   may emit text in as many pieces as the bytes arrived in.
//! * `expect_failure` (optional): a text the plugin's own parse error must
//!   contain, for bodies the plugin must refuse; `expect` then lists the
//!   events before the failure.
//! * `parser_note` (optional, default empty): the note the parser is given,
//!   as `build-request` would have returned it for the request (contract
//!   0.5.0), e.g. to check a body format only a note announces.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::plugin::{Event, ResponseHead, Task};

/// One fixture file, parsed.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// File name, for reports.
    pub name: String,
    /// What it covers.
    pub description: String,
    /// The response head the parser is given.
    pub head: ResponseHead,
    /// The body bytes.
    pub body: Vec<u8>,
    /// Expected events, merged, in the JSON form of [`event_json`].
    pub expect: Vec<Value>,
    /// A text the plugin's parse error must contain, if it must fail.
    pub expect_failure: Option<String>,
    /// The parser note the constructor is given.
    pub parser_note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    description: String,
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    #[serde(default = "text_to_text")]
    task: String,
    #[serde(default = "yes")]
    stream: bool,
    body: Option<String>,
    body_lines: Option<Vec<String>>,
    expect: Vec<Value>,
    expect_failure: Option<String>,
    #[serde(default)]
    parser_note: String,
}

fn ok() -> u16 {
    200
}
fn text_to_text() -> String {
    "text-to-text".into()
}
fn yes() -> bool {
    true
}

impl Fixture {
    /// Reads and checks one fixture file.
    pub fn load(path: &Path) -> anyhow::Result<Fixture> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read fixture {}", path.display()))?;
        let raw: Raw = serde_json::from_str(&text).with_context(|| {
            format!(
                "fixture {} is not valid (see the format in docs/plugin-authoring.md)",
                path.display()
            )
        })?;
        let body = match (raw.body, raw.body_lines) {
            (Some(b), None) => b.into_bytes(),
            (None, Some(lines)) => lines.join("\n").into_bytes(),
            _ => anyhow::bail!(
                "fixture {}: give exactly one of `body` and `body_lines`",
                path.display()
            ),
        };
        let task: Task = raw
            .task
            .parse()
            .map_err(|e| anyhow::anyhow!("fixture {}: {e}", path.display()))?;
        let mut headers = Vec::new();
        for (k, v) in raw.headers {
            let Value::String(v) = v else {
                anyhow::bail!("fixture {}: header {k} must be a string", path.display());
            };
            headers.push((k.to_ascii_lowercase(), v));
        }
        let expect = raw
            .expect
            .iter()
            .map(normalize_expected)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("fixture {}: {e}", path.display()))?;
        Ok(Fixture {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            description: raw.description,
            head: ResponseHead {
                status: raw.status,
                headers,
                task,
                stream: raw.stream,
            },
            body,
            expect: merge_json(expect),
            expect_failure: raw.expect_failure,
            parser_note: raw.parser_note,
        })
    }
}

/// Every `*.json` fixture in `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<Fixture>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the fixtures folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Fixture::load(p)).collect()
}

fn normalize_expected(v: &Value) -> Result<Value, String> {
    let bad = || {
        format!(
            "unknown expected event {v}; use {{\"content\": ..}}, {{\"reasoning\": ..}}, {{\"usage\": {{..}}}}, {{\"error\": {{\"code\": .., \"message\": ..}}}}, {{\"audio\": bytes}}, {{\"images\": n}} or \"end\""
        )
    };
    match v {
        Value::String(s) if s == "end" => Ok(json!("end")),
        Value::Object(m) if m.len() == 1 => {
            let (k, inner) = m.iter().next().expect("one key");
            match (k.as_str(), inner) {
                ("content" | "reasoning", Value::String(_)) => Ok(v.clone()),
                ("audio" | "images", Value::Number(_)) => Ok(v.clone()),
                ("usage", Value::Object(u)) => Ok(json!({"usage": {
                    "prompt_tokens": u.get("prompt_tokens").cloned().unwrap_or(Value::Null),
                    "completion_tokens": u.get("completion_tokens").cloned().unwrap_or(Value::Null),
                    "reasoning_tokens": u.get("reasoning_tokens").cloned().unwrap_or(Value::Null),
                }})),
                ("error", Value::Object(e)) => Ok(json!({"error": {
                    "code": e.get("code").cloned().unwrap_or(Value::Null),
                    "message": e.get("message").cloned().unwrap_or(Value::Null),
                }})),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

/// An event in the fixture format.
pub fn event_json(e: &Event) -> Value {
    match e {
        Event::Content(s) => json!({"content": s}),
        Event::Reasoning(s) => json!({"reasoning": s}),
        Event::Usage(u) => json!({"usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "reasoning_tokens": u.reasoning_tokens,
        }}),
        Event::Error { code, message } => json!({"error": {"code": code, "message": message}}),
        Event::Audio(n) => json!({"audio": n}),
        Event::Images(n) => json!({"images": n}),
        Event::End => json!("end"),
    }
}

/// Adjacent content events merged, and adjacent reasoning events merged;
/// empty texts dropped.
pub fn merge(events: &[Event]) -> Vec<Value> {
    merge_json(events.iter().map(event_json).collect())
}

fn merge_json(events: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(events.len());
    for e in events {
        let text_kind = ["content", "reasoning"]
            .into_iter()
            .find(|k| e.get(k).is_some_and(Value::is_string));
        if let Some(kind) = text_kind {
            let text = e[kind].as_str().unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            if let Some(last) = out.last_mut()
                && let Some(Value::String(prev)) = last.get_mut(kind)
            {
                prev.push_str(text);
                continue;
            }
        }
        // Audio arrives in chunks of any size: only the total is the same
        // however the body was split.
        if let Some(n) = e.get("audio").and_then(Value::as_u64) {
            if n == 0 {
                continue;
            }
            if let Some(last) = out.last_mut()
                && let Some(prev) = last.get("audio").and_then(Value::as_u64)
            {
                *last = json!({"audio": prev + n});
                continue;
            }
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Usage;

    #[test]
    fn merges_adjacent_text_of_one_kind() {
        let events = [
            Event::Content("a".into()),
            Event::Content("".into()),
            Event::Content("b".into()),
            Event::Reasoning("r".into()),
            Event::Content("c".into()),
            Event::Usage(Usage {
                prompt_tokens: Some(1),
                ..Usage::default()
            }),
            Event::End,
        ];
        assert_eq!(
            merge(&events),
            vec![
                json!({"content": "ab"}),
                json!({"reasoning": "r"}),
                json!({"content": "c"}),
                json!({"usage": {"prompt_tokens": 1, "completion_tokens": null, "reasoning_tokens": null}}),
                json!("end"),
            ]
        );
    }

    #[test]
    fn loads_a_fixture_and_refuses_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(
            &p,
            r#"{"headers": {"Content-Type": "text/event-stream"}, "body_lines": ["data: x", ""],
                "expect": [{"content": "x"}, {"usage": {"completion_tokens": 2}}, "end"]}"#,
        )
        .unwrap();
        let f = Fixture::load(&p).unwrap();
        assert_eq!(f.body, b"data: x\n");
        assert_eq!(f.head.status, 200);
        assert!(f.head.stream);
        assert_eq!(f.head.headers[0].0, "content-type");
        assert_eq!(f.expect.len(), 3);
        for bad in [
            r#"{"expect": []}"#,
            r#"{"body": "", "body_lines": [], "expect": []}"#,
            r#"{"body": "", "expect": ["done"]}"#,
            r#"{"body": "", "task": "text-to-video", "expect": []}"#,
            r#"{"body": "", "expect": [], "unknown": 1}"#,
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(Fixture::load(&p).is_err(), "{bad}");
        }
    }
}
