//! Response bodies: SSE event templates and whole JSON bodies.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use serde_json::json;

use super::rng::Rng;

/// The simulated vocabulary: one word is one token. Each starts with a
/// space, so a text's token count is its whitespace-separated word count;
/// plain ASCII without quotes or backslashes, so words go into JSON strings
/// unescaped.
const WORDS: [&str; 64] = [
    " the",
    " quick",
    " brown",
    " fox",
    " jumps",
    " over",
    " lazy",
    " dog",
    " a",
    " model",
    " serves",
    " tokens",
    " to",
    " every",
    " client",
    " that",
    " asks",
    " and",
    " waits",
    " for",
    " its",
    " answer",
    " in",
    " time",
    " while",
    " the",
    " server",
    " batches",
    " many",
    " requests",
    " together",
    " on",
    " one",
    " device",
    " so",
    " throughput",
    " grows",
    " but",
    " latency",
    " may",
    " rise",
    " when",
    " load",
    " is",
    " high",
    " benchmark",
    " results",
    " show",
    " how",
    " fast",
    " each",
    " stream",
    " flows",
    " from",
    " first",
    " byte",
    " until",
    " last",
    " with",
    " steady",
    " pace",
    " of",
    " text",
    " now",
];

/// Appends `n` words drawn from `rng`.
pub(crate) fn push_words(buf: &mut BytesMut, rng: &mut Rng, n: u32) {
    for _ in 0..n {
        buf.put_slice(WORDS[rng.below(WORDS.len() as u32) as usize].as_bytes());
    }
}

/// One word, drawn from `rng`, and its index as a token id.
fn word(rng: &mut Rng) -> (&'static str, u32) {
    let i = rng.below(WORDS.len() as u32);
    (WORDS[i as usize], i + 3)
}

/// `n` words as a string.
pub(crate) fn words(rng: &mut Rng, n: u32) -> String {
    let mut buf = BytesMut::with_capacity(n as usize * 8);
    push_words(&mut buf, rng, n);
    // Built from ASCII words only.
    String::from_utf8(buf.to_vec()).unwrap_or_default()
}

/// How a stream's events look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// `chat.completion.chunk` SSE.
    Chat,
    /// `text_completion` SSE.
    Completion,
    /// The token text itself, for Baseten's prompt format.
    Plain,
    /// Hugging Face TGI `/generate_stream` SSE: one event per token.
    Tgi,
    /// Ollama `/api/chat` NDJSON: one line per token.
    OllamaChat,
    /// Ollama `/api/generate` NDJSON: one line per token.
    OllamaGenerate,
}

impl StreamKind {
    /// The `Content-Type` of a stream of this kind.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            StreamKind::Chat | StreamKind::Completion | StreamKind::Tgi => "text/event-stream",
            StreamKind::Plain => "text/plain; charset=utf-8",
            StreamKind::OllamaChat | StreamKind::OllamaGenerate => "application/x-ndjson",
        }
    }
}

/// The pre-rendered parts of one stream's events: every SSE event starts
/// with the same `head` (id, created, model), so a token event is a copy of
/// `head`, the words and a fixed tail.
pub(crate) struct Template {
    kind: StreamKind,
    head: String,
    /// TGI: the index of the next token event.
    index: u32,
    /// TGI: the text so far, for the last event's `generated_text`.
    text: String,
}

const CHAT_OPEN: &str = r#"{"index":0,"delta":{"content":""#;
const CHAT_CLOSE: &str = "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
const TEXT_OPEN: &str = r#"{"index":0,"text":""#;
const TEXT_CLOSE: &str = "\",\"logprobs\":null,\"finish_reason\":null}]}\n\n";
const ERROR_EVENT: &str = r#"{"error":{"code":503,"message":"simulated overload"}}"#;
/// TGI's error object (`ErrorResponse`), in a stream or as a body.
const TGI_ERROR: &str = r#"{"error":"simulated overload","error_type":"overloaded"}"#;
/// Ollama's error object, on its own NDJSON line or as a body.
const OLLAMA_ERROR: &str = r#"{"error":"simulated overload"}"#;

impl Template {
    pub(crate) fn new(kind: StreamKind, id: u64, created: u64, model: &str) -> Self {
        let model = json_string(model);
        let head = match kind {
            StreamKind::Chat => format!(
                r#"data: {{"id":"chatcmpl-sim-{id}","object":"chat.completion.chunk","created":{created},"model":{model},"choices":["#
            ),
            StreamKind::Completion => format!(
                r#"data: {{"id":"cmpl-sim-{id}","object":"text_completion","created":{created},"model":{model},"choices":["#
            ),
            StreamKind::Plain | StreamKind::Tgi => String::new(),
            StreamKind::OllamaChat | StreamKind::OllamaGenerate => {
                format!(r#"{{"model":{model},"created_at":"{}","#, rfc3339(created))
            }
        };
        Template {
            kind,
            head,
            index: 1,
            text: String::new(),
        }
    }

    /// Bytes of one event carrying `n` tokens, for sizing buffers.
    pub(crate) fn event_len(&self, n: u32) -> usize {
        match self.kind {
            // One event per token.
            StreamKind::Tgi | StreamKind::OllamaChat | StreamKind::OllamaGenerate => {
                (self.head.len() + 120) * n as usize
            }
            _ => self.head.len() + CHAT_OPEN.len() + CHAT_CLOSE.len() + 8 * n as usize,
        }
    }

    /// The role-only first chunk (chat only).
    pub(crate) fn role(&self, buf: &mut BytesMut) {
        if self.kind == StreamKind::Chat {
            buf.put_slice(self.head.as_bytes());
            buf.put_slice(
                b"{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\
                  \"logprobs\":null,\"finish_reason\":null}]}\n\n",
            );
        }
    }

    /// One event with `n` words (TGI and Ollama: `n` events of one word).
    pub(crate) fn tokens(&mut self, buf: &mut BytesMut, rng: &mut Rng, n: u32) {
        match self.kind {
            StreamKind::Chat => {
                buf.put_slice(self.head.as_bytes());
                buf.put_slice(CHAT_OPEN.as_bytes());
                push_words(buf, rng, n);
                buf.put_slice(CHAT_CLOSE.as_bytes());
            }
            StreamKind::Completion => {
                buf.put_slice(self.head.as_bytes());
                buf.put_slice(TEXT_OPEN.as_bytes());
                push_words(buf, rng, n);
                buf.put_slice(TEXT_CLOSE.as_bytes());
            }
            StreamKind::Plain => push_words(buf, rng, n),
            StreamKind::Tgi => {
                for _ in 0..n {
                    let (w, id) = word(rng);
                    self.text.push_str(w);
                    let _ = write!(
                        buf,
                        "data:{{\"index\":{},\"token\":{{\"id\":{id},\"text\":\"{w}\",\
                         \"logprob\":-0.25,\"special\":false}},\"generated_text\":null,\
                         \"details\":null}}\n\n",
                        self.index
                    );
                    self.index += 1;
                }
            }
            StreamKind::OllamaChat | StreamKind::OllamaGenerate => {
                for _ in 0..n {
                    let (w, _) = word(rng);
                    buf.put_slice(self.head.as_bytes());
                    if self.kind == StreamKind::OllamaChat {
                        let _ = writeln!(
                            buf,
                            "\"message\":{{\"role\":\"assistant\",\"content\":\"{w}\"}},\"done\":false}}"
                        );
                    } else {
                        let _ = writeln!(buf, "\"response\":\"{w}\",\"done\":false}}");
                    }
                }
            }
        }
    }

    /// The finish chunk, then the usage chunk if asked for, then `[DONE]`.
    /// TGI: a last event with the special end token, `generated_text` and
    /// `details` (when asked for). Ollama: the `"done": true` line with the
    /// counts.
    pub(crate) fn trailer(&mut self, buf: &mut BytesMut, finish: &str, usage: Option<(u64, u64)>) {
        match self.kind {
            StreamKind::Tgi => {
                let details = match usage {
                    Some((prompt, completion)) => {
                        tgi_details(finish, prompt, completion).to_string()
                    }
                    None => "null".to_owned(),
                };
                let _ = write!(
                    buf,
                    "data:{{\"index\":{},\"token\":{{\"id\":2,\"text\":\"</s>\",\"logprob\":0.0,\
                     \"special\":true}},\"generated_text\":{},\"details\":{details}}}\n\n",
                    self.index,
                    json_string(&self.text)
                );
                return;
            }
            StreamKind::OllamaChat | StreamKind::OllamaGenerate => {
                buf.put_slice(self.head.as_bytes());
                let text = if self.kind == StreamKind::OllamaChat {
                    r#""message":{"role":"assistant","content":""}"#
                } else {
                    r#""response":"""#
                };
                let reason = if finish == "length" { "length" } else { "stop" };
                let _ = write!(buf, "{text},\"done\":true,\"done_reason\":\"{reason}\"");
                if let Some((prompt, completion)) = usage {
                    let _ = write!(
                        buf,
                        ",\"total_duration\":0,\"load_duration\":0,\"prompt_eval_count\":{prompt},\
                         \"prompt_eval_duration\":0,\"eval_count\":{completion},\"eval_duration\":0"
                    );
                }
                buf.put_slice(b"}\n");
                return;
            }
            _ => {}
        }
        match self.kind {
            StreamKind::Chat => {
                buf.put_slice(self.head.as_bytes());
                let _ = write!(
                    buf,
                    "{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"{finish}\"}}]}}\n\n"
                );
            }
            StreamKind::Completion => {
                buf.put_slice(self.head.as_bytes());
                let _ = write!(
                    buf,
                    "{{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"{finish}\"}}]}}\n\n"
                );
            }
            _ => return,
        }
        if let Some((prompt, completion)) = usage {
            buf.put_slice(self.head.as_bytes());
            let _ = write!(
                buf,
                "],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\
                 \"total_tokens\":{}}}}}\n\n",
                prompt + completion
            );
        }
        self.done(buf);
    }

    fn done(&self, buf: &mut BytesMut) {
        if matches!(self.kind, StreamKind::Chat | StreamKind::Completion) {
            buf.put_slice(b"data: [DONE]\n\n");
        }
    }

    /// An event that is not valid JSON (the `malformed` fault); in plain
    /// text, bytes that are not UTF-8.
    pub(crate) fn malformed(&self, buf: &mut BytesMut) {
        match self.kind {
            StreamKind::Chat => {
                buf.put_slice(self.head.as_bytes());
                buf.put_slice(b"{\"index\":0,\"delta\":{\"content\":\" oops\n\n");
            }
            StreamKind::Completion => {
                buf.put_slice(self.head.as_bytes());
                buf.put_slice(b"{\"index\":0,\"text\":\" oops\n\n");
            }
            StreamKind::Plain => buf.put_slice(b"\xff\xfe"),
            StreamKind::Tgi => buf.put_slice(b"data:{\"index\":0,\"token\":{\"text\":\" oops\n\n"),
            StreamKind::OllamaChat | StreamKind::OllamaGenerate => {
                buf.put_slice(self.head.as_bytes());
                buf.put_slice(b"\"response\":\" oops\n");
            }
        }
    }

    /// An error event and `[DONE]`, as vLLM ends a stream that failed
    /// after its 200; in plain text, the error object on its own line.
    pub(crate) fn error(&self, buf: &mut BytesMut) {
        match self.kind {
            // TGI ends the stream after its error event; Ollama after the line.
            StreamKind::Tgi => {
                buf.put_slice(b"data:");
                buf.put_slice(TGI_ERROR.as_bytes());
                buf.put_slice(b"\n\n");
                return;
            }
            StreamKind::OllamaChat | StreamKind::OllamaGenerate => {
                buf.put_slice(OLLAMA_ERROR.as_bytes());
                buf.put_slice(b"\n");
                return;
            }
            _ => {}
        }
        if self.kind == StreamKind::Plain {
            buf.put_slice(b"\n");
            buf.put_slice(ERROR_EVENT.as_bytes());
            buf.put_slice(b"\n");
            return;
        }
        buf.put_slice(b"data: ");
        buf.put_slice(ERROR_EVENT.as_bytes());
        buf.put_slice(b"\n\n");
        self.done(buf);
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn usage(prompt: u64, completion: u64) -> serde_json::Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// Non-streaming `chat.completion`.
pub(crate) fn chat_body(
    id: u64,
    created: u64,
    model: &str,
    text: &str,
    finish: &str,
    prompt: u64,
    completion: u64,
) -> Vec<u8> {
    json!({
        "id": format!("chatcmpl-sim-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage(prompt, completion),
    })
    .to_string()
    .into_bytes()
}

/// Non-streaming `text_completion`.
pub(crate) fn completion_body(
    id: u64,
    created: u64,
    model: &str,
    text: &str,
    finish: &str,
    prompt: u64,
    completion: u64,
) -> Vec<u8> {
    json!({
        "id": format!("cmpl-sim-{id}"),
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "text": text,
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": usage(prompt, completion),
    })
    .to_string()
    .into_bytes()
}

/// Non-streaming Baseten prompt format.
pub(crate) fn prompt_body(text: &str, prompt: u64, completion: u64) -> Vec<u8> {
    json!({"text": text, "usage": usage(prompt, completion)})
        .to_string()
        .into_bytes()
}

/// An embeddings list of `count` unit vectors of `dims` floats.
pub(crate) fn embeddings_body(
    rng: &mut Rng,
    model: &str,
    count: usize,
    dims: usize,
    prompt: u64,
) -> Vec<u8> {
    let mut out = String::with_capacity(64 + count * (dims * 12 + 48));
    out.push_str(r#"{"object":"list","data":["#);
    let mut v = vec![0f32; dims];
    for i in 0..count {
        let mut norm = 0f32;
        for x in v.iter_mut() {
            *x = (rng.f64() * 2.0 - 1.0) as f32;
            norm += *x * *x;
        }
        let norm = norm.sqrt().max(f32::MIN_POSITIVE);
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"object":"embedding","index":{i},"embedding":["#);
        for (j, x) in v.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            // Six decimals are plenty for a simulated vector and keep the body short.
            let _ = write!(out, "{:.6}", x / norm);
        }
        out.push_str("]}");
    }
    let _ = write!(
        out,
        r#"],"model":{},"usage":{{"prompt_tokens":{prompt},"total_tokens":{prompt}}}}}"#,
        json_string(model)
    );
    out.into_bytes()
}

/// The body of `{"error":{"message","type","code"}}`.
pub(crate) fn error_body(status: u16, kind: &str, message: &str) -> Vec<u8> {
    json!({"error": {"message": message, "type": kind, "code": status}})
        .to_string()
        .into_bytes()
}

/// The error object the `error-in-stream` fault sends as a whole body.
pub(crate) fn error_event_body(kind: StreamKind) -> Vec<u8> {
    match kind {
        StreamKind::Tgi => TGI_ERROR,
        StreamKind::OllamaChat | StreamKind::OllamaGenerate => OLLAMA_ERROR,
        _ => ERROR_EVENT,
    }
    .as_bytes()
    .to_vec()
}

/// TGI's `details`: TGI says `eos_token` where OpenAI says `stop`.
fn tgi_details(finish: &str, prompt: u64, completion: u64) -> serde_json::Value {
    let finish = if finish == "length" {
        "length"
    } else {
        "eos_token"
    };
    json!({
        "finish_reason": finish,
        "generated_tokens": completion,
        "seed": null,
        "input_length": prompt,
    })
}

/// Non-streaming TGI `/generate`: `generated_text`, plus `details` when the
/// request asked for them.
pub(crate) fn tgi_body(text: &str, finish: &str, usage: Option<(u64, u64)>) -> Vec<u8> {
    let mut body = json!({"generated_text": text});
    if let Some((prompt, completion)) = usage {
        let mut details = tgi_details(finish, prompt, completion);
        details["prefill"] = json!([]);
        details["tokens"] = json!([]);
        body["details"] = details;
    }
    body.to_string().into_bytes()
}

/// Non-streaming Ollama `/api/chat` (`chat`) or `/api/generate` answer.
pub(crate) fn ollama_body(
    chat: bool,
    model: &str,
    created: u64,
    text: &str,
    finish: &str,
    prompt: u64,
    completion: u64,
) -> Vec<u8> {
    let mut body = json!({"model": model, "created_at": rfc3339(created)});
    if chat {
        body["message"] = json!({"role": "assistant", "content": text});
    } else {
        body["response"] = json!(text);
    }
    body["done"] = json!(true);
    body["done_reason"] = json!(if finish == "length" { "length" } else { "stop" });
    body["total_duration"] = json!(0);
    body["load_duration"] = json!(0);
    body["prompt_eval_count"] = json!(prompt);
    body["prompt_eval_duration"] = json!(0);
    body["eval_count"] = json!(completion);
    body["eval_duration"] = json!(0);
    body.to_string().into_bytes()
}

/// Seconds since the Unix epoch as RFC 3339 UTC (`created_at`).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(buf: &BytesMut) -> Vec<serde_json::Value> {
        let text = std::str::from_utf8(buf).unwrap();
        text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|e| *e != "[DONE]")
            .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{e}: {err}")))
            .collect()
    }

    #[test]
    fn chat_events_are_valid_json() {
        let mut t = Template::new(StreamKind::Chat, 3, 100, "m\"x");
        let mut rng = Rng::new(1);
        let mut buf = BytesMut::new();
        t.role(&mut buf);
        t.tokens(&mut buf, &mut rng, 2);
        t.trailer(&mut buf, "length", Some((4, 2)));
        assert!(buf.ends_with(b"data: [DONE]\n\n"));
        let ev = events(&buf);
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(ev[0]["model"], "m\"x");
        let content = ev[1]["choices"][0]["delta"]["content"].as_str().unwrap();
        assert_eq!(content.split_whitespace().count(), 2);
        assert_eq!(ev[2]["choices"][0]["finish_reason"], "length");
        assert_eq!(ev[3]["choices"].as_array().unwrap().len(), 0);
        assert_eq!(ev[3]["usage"]["total_tokens"], 6);
    }

    #[test]
    fn completion_events_are_valid_json() {
        let mut t = Template::new(StreamKind::Completion, 3, 100, "m");
        let mut rng = Rng::new(1);
        let mut buf = BytesMut::new();
        t.role(&mut buf);
        t.tokens(&mut buf, &mut rng, 1);
        t.trailer(&mut buf, "stop", None);
        let ev = events(&buf);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0]["object"], "text_completion");
        assert_eq!(ev[1]["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn tgi_events_are_valid_json() {
        let mut t = Template::new(StreamKind::Tgi, 3, 100, "m");
        let mut rng = Rng::new(1);
        let mut buf = BytesMut::new();
        t.role(&mut buf);
        t.tokens(&mut buf, &mut rng, 2);
        t.tokens(&mut buf, &mut rng, 1);
        t.trailer(&mut buf, "stop", Some((4, 3)));
        let text = std::str::from_utf8(&buf).unwrap();
        let ev: Vec<serde_json::Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data:"))
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(ev.len(), 4);
        assert_eq!(ev[0]["index"], 1);
        assert_eq!(ev[2]["token"]["special"], false);
        assert_eq!(ev[3]["token"]["special"], true);
        let words: String = ev[..3]
            .iter()
            .map(|e| e["token"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(ev[3]["generated_text"], words.as_str());
        assert_eq!(ev[3]["details"]["finish_reason"], "eos_token");
        assert_eq!(ev[3]["details"]["generated_tokens"], 3);
        assert_eq!(ev[3]["details"]["input_length"], 4);
        assert!(!text.contains("[DONE]"));
    }

    #[test]
    fn ollama_lines_are_valid_json() {
        for (kind, field) in [
            (StreamKind::OllamaChat, "message"),
            (StreamKind::OllamaGenerate, "response"),
        ] {
            let mut t = Template::new(kind, 3, 1_700_000_000, "llama");
            let mut rng = Rng::new(1);
            let mut buf = BytesMut::new();
            t.role(&mut buf);
            t.tokens(&mut buf, &mut rng, 2);
            t.trailer(&mut buf, "length", Some((5, 2)));
            let lines: Vec<serde_json::Value> = std::str::from_utf8(&buf)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), 3);
            assert_eq!(lines[0]["model"], "llama");
            assert_eq!(lines[0]["created_at"], "2023-11-14T22:13:20Z");
            assert_eq!(lines[1]["done"], false);
            assert!(lines[1].get(field).is_some());
            assert_eq!(lines[2]["done"], true);
            assert_eq!(lines[2]["done_reason"], "length");
            assert_eq!(lines[2]["prompt_eval_count"], 5);
            assert_eq!(lines[2]["eval_count"], 2);
        }
        let body: serde_json::Value =
            serde_json::from_slice(&ollama_body(true, "m", 0, "hi", "stop", 1, 1)).unwrap();
        assert_eq!(body["message"]["content"], "hi");
        assert_eq!(body["created_at"], "1970-01-01T00:00:00Z");
        let body: serde_json::Value =
            serde_json::from_slice(&tgi_body("hi", "length", Some((3, 1)))).unwrap();
        assert_eq!(body["details"]["generated_tokens"], 1);
        assert_eq!(body["details"]["finish_reason"], "length");
    }

    #[test]
    fn embeddings_are_unit_vectors() {
        let mut rng = Rng::new(1);
        let body = embeddings_body(&mut rng, "m", 2, 8, 5);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        let e: Vec<f64> = v["data"][1]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(e.len(), 8);
        let norm: f64 = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(v["usage"]["prompt_tokens"], 5);
    }
}
