//! A minimal OpenAI-chat plugin built against the frozen contract 0.1.0
//! (`wit/v0.1.0/`), by `tests/plugins/legacy-v0_3` against 0.3.0 (the
//! last whose `feed` takes one chunk per call), and by
//! `tests/plugins/legacy-v0_4` against 0.4.0 (the last whose parser runs
//! in the instance that built the request: that variant refuses to parse
//! in any other). All must keep loading and benchmarking in every later
//! host: this is the versioning policy's test
//! (`tests/e2e/plugin_versions.rs`). Do not migrate them to a newer
//! contract.

use std::cell::RefCell;

use serde_json::{Value, json};

#[cfg(not(any(feature = "contract-0_3", feature = "contract-0_4")))]
wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });
#[cfg(feature = "contract-0_3")]
wit_bindgen::generate!({ path: "../../../wit/v0.3.0", world: "plugin" });
#[cfg(feature = "contract-0_4")]
wit_bindgen::generate!({ path: "../../../wit/v0.4.0", world: "plugin" });

#[cfg(feature = "contract-0_4")]
thread_local! {
    /// Set by `build-request`: a 0.4.0 parser may rely on state its
    /// instance kept from building the request, so this one checks it.
    static BUILT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

use exports::genai_bench::backend::backend::{Guest, GuestResponseParser};
use genai_bench::backend::host;
use genai_bench::backend::types::{
    ApiError, AuthHeader, Event, HttpRequest, LogLevel, PluginInfo, Request, ResponseHead, Task,
    Usage,
};

struct Component;

impl Guest for Component {
    type ResponseParser = ResponseParser;

    fn info() -> PluginInfo {
        let auth = AuthHeader {
            name: "Authorization".to_owned(),
            prefix: "Bearer ".to_owned(),
        };
        #[cfg(not(any(feature = "contract-0_3", feature = "contract-0_4")))]
        return PluginInfo {
            name: "legacy".to_owned(),
            version: "0.1.0".to_owned(),
            description: "OpenAI chat completions, built against contract 0.1.0".to_owned(),
            tasks: vec![Task::TextToText],
            auth: Some(auth),
        };
        #[cfg(any(feature = "contract-0_3", feature = "contract-0_4"))]
        return PluginInfo {
            name: if cfg!(feature = "contract-0_4") {
                "legacy-v0-4"
            } else {
                "legacy-v0-3"
            }
            .to_owned(),
            version: if cfg!(feature = "contract-0_4") {
                "0.4.0"
            } else {
                "0.3.0"
            }
            .to_owned(),
            description: "OpenAI chat completions, built against an older contract".to_owned(),
            tasks: vec![Task::TextToText],
            auth: Some(genai_bench::backend::types::AuthScheme::Header(auth)),
            backends: Vec::new(),
        };
    }

    fn validate_params(params_json: String) -> Result<(), String> {
        params(&params_json).map(|_| ())
    }

    fn build_request(request: Request) -> Result<HttpRequest, String> {
        let mut body = json!({
            "model": request.model,
            "messages": [{"role": "user", "content": request.prompt}],
            "max_tokens": request.max_tokens,
            "stream": request.stream,
        });
        for (k, v) in params(&request.params_json)? {
            if k != "stream" {
                body[k] = v;
            }
        }
        if request.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        host::log(LogLevel::Debug, "legacy plugin built a request");
        #[cfg(feature = "contract-0_4")]
        BUILT.with(|b| b.set(true));
        Ok(HttpRequest {
            method: "POST".to_owned(),
            path: "/v1/chat/completions".to_owned(),
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: body.to_string().into_bytes(),
        })
    }
}

fn params(json: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str::<Value>(if json.trim().is_empty() { "{}" } else { json }) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err("additional request params must be a JSON object".to_owned()),
    }
}

/// Buffers the body; SSE lines are parsed as they complete, a whole JSON
/// body at `finish`.
struct ResponseParser(RefCell<State>);

struct State {
    /// Whether this instance built the request (checked by 0.4.0).
    built: bool,
    ok: bool,
    stream: bool,
    buf: Vec<u8>,
}

impl GuestResponseParser for ResponseParser {
    fn new(head: ResponseHead) -> Self {
        #[cfg(feature = "contract-0_4")]
        let built = BUILT.with(|b| b.get());
        #[cfg(not(feature = "contract-0_4"))]
        let built = true;
        ResponseParser(RefCell::new(State {
            built,
            ok: (200..300).contains(&head.status),
            stream: head.stream,
            buf: Vec::new(),
        }))
    }

    #[cfg(feature = "contract-0_4")]
    fn feed(&self, bytes: Vec<u8>, ends: Vec<u32>) -> Result<Vec<Vec<Event>>, String> {
        let mut from = 0usize;
        let mut out = Vec::with_capacity(ends.len());
        for end in ends {
            let chunk = bytes
                .get(from..end as usize)
                .ok_or("chunk ends out of order")?;
            out.push(self.feed_one(chunk)?);
            from = end as usize;
        }
        Ok(out)
    }

    #[cfg(not(feature = "contract-0_4"))]
    fn feed(&self, chunk: Vec<u8>) -> Result<Vec<Event>, String> {
        self.feed_one(&chunk)
    }

    fn finish(&self) -> Result<Vec<Event>, String> {
        let mut s = self.0.borrow_mut();
        if !s.built {
            return Err("this parser's instance did not build the request; a 0.4.0 plugin's parser runs in the instance that built it".to_owned());
        }
        let rest = std::mem::take(&mut s.buf);
        let mut out = Vec::new();
        if !s.ok {
            out.push(Event::Error(ApiError {
                code: None,
                message: String::from_utf8_lossy(&rest).chars().take(500).collect(),
            }));
        } else if s.stream {
            sse_line(&rest, &mut out)?;
        } else {
            let v: Value = serde_json::from_slice(&rest).map_err(|e| format!("bad JSON: {e}"))?;
            if let Some(text) = v["choices"][0]["message"]["content"].as_str() {
                out.push(Event::Content(text.to_owned()));
            }
            usage(&v, &mut out);
            out.push(Event::End);
        }
        Ok(out)
    }
}

impl ResponseParser {
    fn feed_one(&self, chunk: &[u8]) -> Result<Vec<Event>, String> {
        let mut s = self.0.borrow_mut();
        s.buf.extend_from_slice(chunk);
        if !s.ok || !s.stream {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        while let Some(pos) = s.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = s.buf.drain(..=pos).collect();
            sse_line(&line, &mut out)?;
        }
        Ok(out)
    }
}

fn sse_line(line: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
    let line = std::str::from_utf8(line).map_err(|e| format!("bad UTF-8: {e}"))?;
    let Some(data) = line.trim().strip_prefix("data:") else {
        return Ok(());
    };
    let data = data.trim();
    if data == "[DONE]" {
        out.push(Event::End);
        return Ok(());
    }
    let v: Value = serde_json::from_str(data).map_err(|e| format!("bad JSON: {e}"))?;
    if let Some(text) = v["choices"][0]["delta"]["content"].as_str()
        && !text.is_empty()
    {
        out.push(Event::Content(text.to_owned()));
    }
    usage(&v, out);
    Ok(())
}

fn usage(v: &Value, out: &mut Vec<Event>) {
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        out.push(Event::Usage(Usage {
            prompt_tokens: u["prompt_tokens"].as_u64(),
            completion_tokens: u["completion_tokens"].as_u64(),
            reasoning_tokens: None,
        }));
    }
}

export!(Component);
