//! Request building for Baseten's chat, prompt and embeddings formats.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::model::{HttpRequest, Message, NoLog, Request, StreamBody, Task};
use crate::params;

/// Params this plugin consumes itself; everything else is passed through.
const NOT_PASSED_THROUGH: [&str; 3] = ["use_prompt_format", "stream", "custom_messages"];

/// Builds the HTTP request for one benchmark request.
pub fn build(request: &Request) -> Result<HttpRequest, String> {
    let params = params::parse(&request.params_json)?;
    // Validation already ran before the run; repeating it here keeps a bad
    // value from turning into a confusing server error.
    params::check(&params, &mut NoLog)?;
    let prompt_format = params::use_prompt_format(&params)?;

    let (body, streams) = match request.task {
        Task::TextToEmbeddings => (embeddings_body(request, &params), false),
        Task::ImageTextToText if prompt_format => {
            return Err(
                "image-text-to-text needs the chat format: the prompt format \
                 (`use_prompt_format: true`) cannot carry images; remove \
                 `use_prompt_format` from the additional request params"
                    .to_owned(),
            );
        }
        Task::TextToText if prompt_format => (prompt_body(request, &params), request.stream),
        Task::TextToText | Task::ImageTextToText => (chat_body(request, &params), request.stream),
        // Not in the plugin's `tasks`, so the host never asks for them.
        Task::TextToRerank | Task::ImageToEmbeddings | Task::TextToImage | Task::TextToSpeech => {
            return Err(format!("{:?} is not a Baseten task", request.task));
        }
    };
    let body = serde_json::to_vec(&body).map_err(|e| format!("cannot encode the body: {e}"))?;

    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if streams {
        headers.push(("Accept".to_owned(), "text/event-stream".to_owned()));
    }
    Ok(HttpRequest {
        method: "POST".to_owned(),
        // Empty: Baseten endpoints are called at the --api-base URL as given.
        path: String::new(),
        headers,
        body,
        // A prompt-format model (a Truss generator) streams raw text.
        stream_body: if prompt_format {
            StreamBody::PlainText
        } else {
            StreamBody::Sniff
        },
    })
}

fn chat_body<'a>(request: &'a Request, params: &'a Map<String, Value>) -> Body<'a> {
    let max_tokens = max_tokens(request, params);
    let ignore_eos = match params.get("ignore_eos") {
        Some(v) => Val::Param(v),
        None => Val::Bool(max_tokens.is_some_and(|n| n > 0)),
    };
    let mut body = Body::default();
    body.set("model", Val::Str(&request.model));
    body.set("messages", messages(request, params));
    body.set("max_tokens", opt_u64(max_tokens));
    body.set("temperature", temperature(params));
    body.set("ignore_eos", ignore_eos);
    body.set("stream", Val::Bool(request.stream));
    body.pass_through(params);
    if request.stream {
        body.set("stream_options", Val::IncludeUsage);
    }
    body
}

fn prompt_body<'a>(request: &'a Request, params: &'a Map<String, Value>) -> Body<'a> {
    let mut body = Body::default();
    body.set("prompt", Val::Str(&request.prompt));
    body.set("max_tokens", opt_u64(max_tokens(request, params)));
    body.set("temperature", temperature(params));
    body.set("stream", Val::Bool(request.stream));
    body.pass_through(params);
    body
}

fn embeddings_body<'a>(request: &'a Request, params: &'a Map<String, Value>) -> Body<'a> {
    let mut body = Body::default();
    body.set("model", Val::Str(&request.model));
    body.set("input", Val::Strs(&request.documents));
    body.set("encoding_format", Val::Str("float"));
    body.pass_through(params);
    body
}

/// `params.max_tokens` unless missing or null, else the scenario's value.
fn max_tokens(request: &Request, params: &Map<String, Value>) -> Option<u64> {
    params
        .get("max_tokens")
        .and_then(Value::as_u64)
        .or(request.max_tokens.map(u64::from))
}

fn temperature(params: &Map<String, Value>) -> Val<'_> {
    params.get("temperature").map_or(Val::F64(0.0), Val::Param)
}

fn opt_u64<'a>(n: Option<u64>) -> Val<'a> {
    n.map_or(Val::Null, Val::U64)
}

fn messages<'a>(request: &'a Request, params: &'a Map<String, Value>) -> Val<'a> {
    if let Some(custom) = params.get("custom_messages") {
        Val::Param(custom)
    } else if !request.messages.is_empty() {
        Val::Conversation(&request.messages)
    } else if !request.image_urls.is_empty() {
        Val::Images(&request.prompt, &request.image_urls)
    } else {
        Val::Conversation1(&request.prompt)
    }
}

/// One body value, borrowed where possible so a long prompt is not copied
/// before it is encoded.
enum Val<'a> {
    Null,
    Bool(bool),
    U64(u64),
    F64(f64),
    Str(&'a str),
    Strs(&'a [String]),
    Param(&'a Value),
    /// `{"include_usage": true}`.
    IncludeUsage,
    /// The host's conversation as chat messages.
    Conversation(&'a [Message]),
    /// `[{"role": "user", "content": prompt}]`.
    Conversation1(&'a str),
    /// One user message with a text part and one part per image.
    Images(&'a str, &'a [String]),
}

#[derive(Serialize)]
struct ChatMessage<'a, C> {
    role: &'a str,
    content: C,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: &'a str,
}

#[derive(Serialize)]
struct IncludeUsage {
    include_usage: bool,
}

impl Serialize for Val<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Val::Null => s.serialize_unit(),
            Val::Bool(b) => s.serialize_bool(b),
            Val::U64(n) => s.serialize_u64(n),
            Val::F64(x) => s.serialize_f64(x),
            Val::Str(text) => s.serialize_str(text),
            Val::Strs(list) => list.serialize(s),
            Val::Param(v) => v.serialize(s),
            Val::IncludeUsage => IncludeUsage {
                include_usage: true,
            }
            .serialize(s),
            Val::Conversation(list) => s.collect_seq(list.iter().map(|m| ChatMessage {
                role: &m.role,
                content: m.content.as_str(),
            })),
            Val::Conversation1(prompt) => [ChatMessage {
                role: "user",
                content: prompt,
            }]
            .serialize(s),
            Val::Images(prompt, urls) => {
                let mut parts = Vec::with_capacity(1 + urls.len());
                parts.push(Part::Text { text: prompt });
                parts.extend(urls.iter().map(|url| Part::ImageUrl {
                    image_url: ImageUrl { url },
                }));
                [ChatMessage {
                    role: "user",
                    content: parts,
                }]
                .serialize(s)
            }
        }
    }
}

/// A JSON object that keeps insertion order (without serde_json's
/// preserve_order feature, which would change the host's serde_json too).
/// Setting an existing key replaces its value in place, like a Python dict.
#[derive(Default)]
struct Body<'a>(Vec<(&'a str, Val<'a>)>);

impl<'a> Body<'a> {
    fn set(&mut self, key: &'a str, value: Val<'a>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Every user param except the ones the plugin consumes, overriding
    /// the defaults with the same key.
    fn pass_through(&mut self, params: &'a Map<String, Value>) {
        for (key, value) in params {
            if NOT_PASSED_THROUGH.contains(&key.as_str()) {
                continue;
            }
            // A null max_tokens means "not set" (as in the Python original's
            // `params.get("max_tokens") or request.max_tokens`), so the
            // scenario's value stays.
            if key == "max_tokens" && value.is_null() {
                continue;
            }
            self.set(key, Val::Param(value));
        }
    }
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(task: Task, stream: bool, params: &str) -> Request {
        Request {
            task,
            model: "m".to_owned(),
            prompt: "Hello".to_owned(),
            messages: vec![],
            image_urls: vec![],
            documents: vec![],
            query: String::new(),
            image_output: None,
            max_tokens: Some(100),
            stream,
            params_json: params.to_owned(),
            backend: "baseten".to_owned(),
            backend_options: Vec::new(),
        }
    }

    fn body(r: &Request) -> Value {
        serde_json::from_slice(&build(r).unwrap().body).unwrap()
    }

    fn keys(r: &Request) -> Vec<String> {
        // Key order as sent, read without a map that would sort it.
        let text = String::from_utf8(build(r).unwrap().body).unwrap();
        let mut out = Vec::new();
        let mut depth = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                '"' => {
                    let start = i + 1;
                    let mut end = start;
                    for (j, c) in chars.by_ref() {
                        if c == '"' {
                            end = j;
                            break;
                        }
                    }
                    if depth == 1 && text[end + 1..].starts_with(':') {
                        out.push(text[start..end].to_owned());
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn chat_streaming_default() {
        let r = request(Task::TextToText, true, "{}");
        let http = build(&r).unwrap();
        assert_eq!(http.method, "POST");
        assert_eq!(http.path, "");
        assert_eq!(
            http.headers,
            vec![
                ("Content-Type".into(), "application/json".into()),
                ("Accept".into(), "text/event-stream".into())
            ]
        );
        assert_eq!(
            body(&r),
            json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}],
                   "max_tokens": 100, "temperature": 0.0, "ignore_eos": true, "stream": true,
                   "stream_options": {"include_usage": true}})
        );
        assert_eq!(
            keys(&r),
            [
                "model",
                "messages",
                "max_tokens",
                "temperature",
                "ignore_eos",
                "stream",
                "stream_options"
            ]
        );
    }

    #[test]
    fn chat_non_streaming_with_params() {
        let mut r = request(
            Task::TextToText,
            false,
            r#"{"temperature": 0.7, "top_p": 0.9, "stream": true, "use_prompt_format": false,
                "max_tokens": 7, "stream_options": {"x": 1}, "min_tokens": 3}"#,
        );
        r.max_tokens = None;
        let http = build(&r).unwrap();
        assert_eq!(http.headers.len(), 1);
        assert_eq!(
            body(&r),
            json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}],
                   "max_tokens": 7, "temperature": 0.7, "ignore_eos": true, "stream": false,
                   "top_p": 0.9, "stream_options": {"x": 1}, "min_tokens": 3})
        );
        assert_eq!(
            &keys(&r)[..6],
            [
                "model",
                "messages",
                "max_tokens",
                "temperature",
                "ignore_eos",
                "stream"
            ]
        );
    }

    #[test]
    fn chat_stream_options_override_user_value() {
        let r = request(Task::TextToText, true, r#"{"stream_options": {"x": 1}}"#);
        assert_eq!(body(&r)["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn chat_max_tokens_and_ignore_eos() {
        let mut r = request(Task::TextToText, false, "{}");
        r.max_tokens = None;
        let b = body(&r);
        assert_eq!(b["max_tokens"], Value::Null);
        assert_eq!(b["ignore_eos"], json!(false));

        let r = request(Task::TextToText, false, r#"{"ignore_eos": false}"#);
        assert_eq!(body(&r)["ignore_eos"], json!(false));

        // A null max_tokens param keeps the scenario's value.
        let r = request(Task::TextToText, false, r#"{"max_tokens": null}"#);
        let b = body(&r);
        assert_eq!(b["max_tokens"], json!(100));
        assert_eq!(b["ignore_eos"], json!(true));
    }

    #[test]
    fn chat_messages_sources() {
        let mut r = request(
            Task::TextToText,
            false,
            r#"{"custom_messages": [{"role": "system", "content": "be brief"},
                                    {"role": "user", "content": [{"type": "text", "text": "x"}]}]}"#,
        );
        r.messages = vec![Message {
            role: "user".into(),
            content: "ignored".into(),
        }];
        let b = body(&r);
        assert_eq!(
            b["messages"],
            json!([{"role": "system", "content": "be brief"},
                   {"role": "user", "content": [{"type": "text", "text": "x"}]}])
        );
        assert!(b.get("custom_messages").is_none());

        let mut r = request(Task::TextToText, false, "{}");
        r.messages = vec![
            Message {
                role: "system".into(),
                content: "s".into(),
            },
            Message {
                role: "user".into(),
                content: "u".into(),
            },
        ];
        assert_eq!(
            body(&r)["messages"],
            json!([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
        );

        let mut r = request(Task::ImageTextToText, true, "{}");
        r.image_urls = vec![
            "data:image/png;base64,AA".into(),
            "data:image/jpeg;base64,BB".into(),
        ];
        assert_eq!(
            body(&r)["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "Hello"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,BB"}}]}])
        );
    }

    #[test]
    fn prompt_format() {
        let r = request(
            Task::TextToText,
            true,
            r#"{"use_prompt_format": true, "temperature": 0.5, "top_k": 4, "stream": false}"#,
        );
        let http = build(&r).unwrap();
        assert_eq!(http.headers.len(), 2);
        assert_eq!(
            body(&r),
            json!({"prompt": "Hello", "max_tokens": 100, "temperature": 0.5, "stream": true,
                   "top_k": 4})
        );
        assert_eq!(
            keys(&r),
            ["prompt", "max_tokens", "temperature", "stream", "top_k"]
        );

        let mut r = request(Task::TextToText, false, r#"{"use_prompt_format": true}"#);
        r.max_tokens = None;
        assert_eq!(
            body(&r),
            json!({"prompt": "Hello", "max_tokens": null, "temperature": 0.0, "stream": false})
        );
    }

    #[test]
    fn prompt_format_refuses_images() {
        let mut r = request(
            Task::ImageTextToText,
            false,
            r#"{"use_prompt_format": true}"#,
        );
        r.image_urls = vec!["data:image/png;base64,AA".into()];
        let e = build(&r).unwrap_err();
        assert!(e.contains("chat format"), "{e}");
    }

    #[test]
    fn embeddings() {
        let mut r = request(
            Task::TextToEmbeddings,
            true,
            r#"{"dimensions": 8, "stream": true}"#,
        );
        r.documents = vec!["a".into(), "b".into()];
        let http = build(&r).unwrap();
        assert_eq!(http.headers.len(), 1);
        assert_eq!(
            body(&r),
            json!({"model": "m", "input": ["a", "b"], "encoding_format": "float", "dimensions": 8})
        );
        let r = request(
            Task::TextToEmbeddings,
            false,
            r#"{"encoding_format": "base64"}"#,
        );
        assert_eq!(body(&r)["encoding_format"], json!("base64"));
    }

    #[test]
    fn bad_params_are_errors_not_panics() {
        for params in [
            "[]",
            "nope",
            r#"{"use_prompt_format": 1}"#,
            r#"{"temperature": -2}"#,
        ] {
            assert!(build(&request(Task::TextToText, true, params)).is_err());
        }
    }

    #[test]
    fn escapes_text() {
        let mut r = request(Task::TextToText, false, "{}");
        r.prompt = "quote \" newline \n tab \t é \u{1}".into();
        assert_eq!(body(&r)["messages"][0]["content"], json!(r.prompt));
    }
}
