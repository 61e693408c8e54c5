//! The plugin's logic: OpenAI-style text completions (`POST /v1/completions`,
//! `choices[0].text`), streamed as server-sent events or not. Replace it
//! with your API's format; keep it free of WIT types so `cargo test` runs it.

use serde_json::{Map, Value, json};

/// The plugin's name (`--api-backend`, `plugin inspect`).
pub const NAME: &str = "{{name}}";
/// One line for `plugin inspect`.
pub const DESCRIPTION: &str = "OpenAI-style text completions (/v1/completions), streaming or not";

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Content(String),
    Usage {
        prompt: Option<u64>,
        completion: Option<u64>,
    },
    Error {
        code: Option<i32>,
        message: String,
    },
    End,
}

/// `--additional-request-params` as a JSON object (`{}` when empty).
pub fn parse_params(params_json: &str) -> Result<Map<String, Value>, String> {
    if params_json.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(params_json) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!(
            "additional request params must be a JSON object such as {{\"temperature\": 0.7}}, got {params_json}"
        )),
    }
}

/// The path (under `--api-base`) and JSON body of one request.
pub fn build_request(
    model: &str,
    prompt: &str,
    max_tokens: Option<u32>,
    stream: bool,
    params_json: &str,
) -> Result<(String, Vec<u8>), String> {
    let mut body = json!({
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stream": stream,
    });
    for (k, v) in parse_params(params_json)? {
        // Streaming follows --disable-streaming, not the params.
        if k != "stream" {
            body[k] = v;
        }
    }
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    Ok(("/v1/completions".to_owned(), body.to_string().into_bytes()))
}

/// Incremental parser. Events depend only on the bytes, never on how they
/// were split: complete lines are parsed as they arrive, the rest waits.
pub struct Parser {
    status: u16,
    stream: bool,
    buf: Vec<u8>,
}

impl Parser {
    pub fn new(status: u16, stream: bool) -> Self {
        Parser {
            status,
            stream,
            buf: Vec::new(),
        }
    }

    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        if self.ok() && self.stream {
            while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                sse_line(&line, &mut out)?;
            }
        }
        Ok(out)
    }

    pub fn finish(&mut self) -> Result<Vec<Event>, String> {
        let rest = std::mem::take(&mut self.buf);
        let mut out = Vec::new();
        if !self.ok() {
            let text = String::from_utf8_lossy(&rest);
            out.push(Event::Error {
                code: Some(i32::from(self.status)),
                message: text.trim().chars().take(500).collect(),
            });
        } else if self.stream {
            sse_line(&rest, &mut out)?;
        } else {
            let v: Value = serde_json::from_slice(&rest)
                .map_err(|e| format!("the response body is not JSON: {e}"))?;
            json_events(&v, &mut out);
            out.push(Event::End);
        }
        Ok(out)
    }
}

fn sse_line(line: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
    let line = std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8: {e}"))?;
    let Some(data) = line.trim().strip_prefix("data:") else {
        return Ok(()); // blank lines, comments, other SSE fields
    };
    let data = data.trim();
    if data == "[DONE]" {
        out.push(Event::End);
        return Ok(());
    }
    let v: Value =
        serde_json::from_str(data).map_err(|e| format!("malformed JSON in the stream: {e}"))?;
    json_events(&v, out);
    Ok(())
}

fn json_events(v: &Value, out: &mut Vec<Event>) {
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        out.push(Event::Error {
            code: err["code"].as_i64().and_then(|c| i32::try_from(c).ok()),
            message: err["message"]
                .as_str()
                .map_or_else(|| err.to_string(), str::to_owned),
        });
        return;
    }
    if let Some(text) = v["choices"][0]["text"].as_str()
        && !text.is_empty()
    {
        out.push(Event::Content(text.to_owned()));
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        out.push(Event::Usage {
            prompt: u["prompt_tokens"].as_u64(),
            completion: u["completion_tokens"].as_u64(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, stream: bool, chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(status, stream);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.feed(c).unwrap());
        }
        out.extend(p.finish().unwrap());
        out
    }

    #[test]
    fn request_body() {
        let (path, body) =
            build_request("m", "Hi", Some(8), true, r#"{"temperature": 0.5, "stream": false}"#)
                .unwrap();
        assert_eq!(path, "/v1/completions");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"model": "m", "prompt": "Hi", "max_tokens": 8, "stream": true,
                   "temperature": 0.5, "stream_options": {"include_usage": true}})
        );
        assert!(build_request("m", "Hi", None, false, "[1]").is_err());
    }

    #[test]
    fn stream_split_anywhere_gives_the_same_events() {
        let body = "data: {\"choices\":[{\"text\":\"Hé\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n".as_bytes();
        let whole = parse(200, true, &[body]);
        assert_eq!(
            whole,
            vec![
                Event::Content("Hé".into()),
                Event::Usage {
                    prompt: Some(2),
                    completion: Some(1)
                },
                Event::End
            ]
        );
        for k in 1..body.len() {
            assert_eq!(parse(200, true, &[&body[..k], &body[k..]]), whole, "{k}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse(500, true, &[b"boom\n"]),
            vec![Event::Error {
                code: Some(500),
                message: "boom".into()
            }]
        );
        let mut p = Parser::new(200, false);
        p.feed(b"not json").unwrap();
        assert!(p.finish().is_err());
    }
}
