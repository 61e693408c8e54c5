//! Parsing and checking request bodies.

use serde_json::{Map, Value};

use super::faults::FaultKind;
use super::ground_truth::RequestFormat;

/// The generation routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    /// Baseten's predict: the body's fields tell the format.
    Predict,
    /// TGI `/generate` (one JSON body) and `/generate_stream` (SSE).
    TgiGenerate {
        stream: bool,
    },
    /// Ollama `/api/chat`.
    OllamaChat,
    /// Ollama `/api/generate`.
    OllamaGenerate,
}

/// What the simulator needs from a request body.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SimRequest {
    pub format: RequestFormat,
    pub model: Option<String>,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    pub min_tokens: Option<u32>,
    pub ignore_eos: bool,
    pub input_tokens: u64,
    /// Number of vectors an embeddings request asks for.
    pub embedding_inputs: usize,
    pub fault: Option<FaultKind>,
    pub stall_secs: Option<f64>,
}

/// Parses `body` for `endpoint`; the error is the message for a 400.
pub(crate) fn parse(endpoint: Endpoint, body: &[u8]) -> Result<SimRequest, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("request body must be a JSON object".to_owned());
    };
    let format = match endpoint {
        Endpoint::TgiGenerate { stream } => return parse_tgi(&obj, stream),
        Endpoint::OllamaChat => return parse_ollama(&obj, true),
        Endpoint::OllamaGenerate => return parse_ollama(&obj, false),
        Endpoint::Chat => RequestFormat::Chat,
        Endpoint::Completions => RequestFormat::Completions,
        Endpoint::Embeddings => RequestFormat::Embeddings,
        Endpoint::Predict => {
            if obj.contains_key("messages") {
                RequestFormat::Chat
            } else if obj.contains_key("prompt") {
                RequestFormat::Prompt
            } else if obj.contains_key("input") {
                RequestFormat::Embeddings
            } else {
                return Err(
                    "request body needs `messages` (chat), `prompt` (prompt format) or \
                     `input` (embeddings)"
                        .to_owned(),
                );
            }
        }
    };

    let (input_tokens, embedding_inputs) = match format {
        // (TGI and Ollama bodies are parsed by their own functions above.)
        RequestFormat::Chat | RequestFormat::OllamaChat => {
            (count_messages(obj.get("messages"))?, 0)
        }
        RequestFormat::Completions | RequestFormat::Prompt | RequestFormat::OllamaGenerate => {
            let (words, _) = count_texts("prompt", obj.get("prompt"))?;
            (words, 0)
        }
        RequestFormat::Embeddings => count_texts("input", obj.get("input"))?,
        RequestFormat::Tgi => count_texts("inputs", obj.get("inputs"))?,
    };

    let max_tokens = match opt_u32(&obj, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => opt_u32(&obj, "max_tokens")?,
    };
    if max_tokens == Some(0) {
        return Err("max_tokens must be at least 1".to_owned());
    }
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => opt_bool(o, "stream_options.include_usage", "include_usage")?,
        Some(_) => return Err("`stream_options` must be an object".to_owned()),
    };
    let model = match obj.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("`model` must be a string".to_owned()),
    };
    let fault = sim_fault(&obj)?;
    let stall_secs = sim_stall(&obj)?;

    Ok(SimRequest {
        format,
        model,
        // Embeddings never stream, whatever the body says.
        stream: format != RequestFormat::Embeddings && opt_bool(&obj, "stream", "stream")?,
        include_usage,
        max_tokens,
        min_tokens: opt_u32(&obj, "min_tokens")?,
        ignore_eos: opt_bool(&obj, "ignore_eos", "ignore_eos")?,
        input_tokens,
        embedding_inputs,
        fault,
        stall_secs,
    })
}

/// TGI: `{"inputs": "...", "parameters": {"max_new_tokens", "details", ...}}`;
/// the route tells whether to stream. TGI has no `ignore_eos`/`min_tokens`.
/// Usage (`details`) is reported when `parameters.details` is true.
fn parse_tgi(obj: &Map<String, Value>, stream: bool) -> Result<SimRequest, String> {
    let Some(Value::String(inputs)) = obj.get("inputs") else {
        return Err("`inputs` must be a string".to_owned());
    };
    let empty = Map::new();
    let params = match obj.get("parameters") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(p)) => p,
        Some(_) => return Err("`parameters` must be an object".to_owned()),
    };
    let max_tokens = opt_u32(params, "max_new_tokens")?;
    if max_tokens == Some(0) {
        return Err("`max_new_tokens` must be at least 1".to_owned());
    }
    if let Some(t) = params.get("temperature").filter(|t| !t.is_null())
        && !t.as_f64().is_some_and(|t| t > 0.0)
    {
        // As TGI's validation says it.
        return Err("`temperature` must be strictly positive".to_owned());
    }
    Ok(SimRequest {
        format: RequestFormat::Tgi,
        model: None,
        stream,
        include_usage: opt_bool(params, "parameters.details", "details")?,
        max_tokens,
        min_tokens: None,
        ignore_eos: false,
        input_tokens: words(&strip_markdown_images(inputs)),
        embedding_inputs: 0,
        fault: sim_fault(obj)?,
        stall_secs: sim_stall(obj)?,
    })
}

/// `![](url)` images, which TGI's vision models read from `inputs`, carry
/// no words.
fn strip_markdown_images(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("![](") {
        out.push_str(&rest[..i]);
        match rest[i..].find(')') {
            Some(j) => {
                // The image stands where a space would.
                out.push(' ');
                rest = &rest[i + j + 1..];
            }
            None => {
                rest = &rest[i..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Ollama: `/api/chat` (`messages`) or `/api/generate` (`prompt`), `stream`
/// (true when missing, as Ollama), `options.num_predict` (negative: no
/// limit). Ollama always reports `prompt_eval_count`/`eval_count`.
fn parse_ollama(obj: &Map<String, Value>, chat: bool) -> Result<SimRequest, String> {
    let (format, input_tokens) = if chat {
        (
            RequestFormat::OllamaChat,
            count_messages(obj.get("messages"))?,
        )
    } else {
        let Some(Value::String(prompt)) = obj.get("prompt") else {
            return Err("`prompt` must be a string".to_owned());
        };
        (RequestFormat::OllamaGenerate, words(prompt))
    };
    let model = match obj.get("model") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        // As Ollama answers a request without a model.
        _ => return Err("model is required".to_owned()),
    };
    let empty = Map::new();
    let options = match obj.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => return Err("`options` must be an object".to_owned()),
    };
    let max_tokens = match options.get("num_predict") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if n < 0 => None,
            Some(0) => return Err("`options.num_predict` must not be 0".to_owned()),
            Some(n) => Some(u32::try_from(n).map_err(|_| "`options.num_predict` is too large")?),
            None => return Err("`options.num_predict` must be an integer".to_owned()),
        },
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`stream` must be true or false".to_owned()),
    };
    Ok(SimRequest {
        format,
        model: Some(model),
        stream,
        include_usage: true,
        max_tokens,
        min_tokens: None,
        ignore_eos: false,
        input_tokens,
        embedding_inputs: 0,
        fault: sim_fault(obj)?,
        stall_secs: sim_stall(obj)?,
    })
}

fn sim_fault(obj: &Map<String, Value>) -> Result<Option<FaultKind>, String> {
    match obj.get("sim_fault") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.parse::<FaultKind>()?)),
        Some(_) => Err("`sim_fault` must be a string".to_owned()),
    }
}

fn sim_stall(obj: &Map<String, Value>) -> Result<Option<f64>, String> {
    match obj.get("sim_stall_secs") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err("`sim_stall_secs` must be a number >= 0".to_owned()),
        },
    }
}

fn opt_bool(obj: &Map<String, Value>, shown: &str, key: &str) -> Result<bool, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("`{shown}` must be true or false")),
    }
}

fn opt_u32(obj: &Map<String, Value>, key: &str) -> Result<Option<u32>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a non-negative integer")),
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Words of all message contents: strings, or arrays of parts whose `text`
/// counts (images and other parts count nothing).
fn count_messages(messages: Option<&Value>) -> Result<u64, String> {
    let Some(Value::Array(list)) = messages else {
        return Err("`messages` must be an array of message objects".to_owned());
    };
    if list.is_empty() {
        return Err("`messages` must not be empty".to_owned());
    }
    let mut total = 0;
    for (i, m) in list.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(format!("`messages[{i}]` must be an object"));
        };
        match m.get("content") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => total += words(s),
            Some(Value::Array(parts)) => {
                for part in parts {
                    if let Some(Value::String(s)) = part.get("text") {
                        total += words(s);
                    }
                }
            }
            Some(_) => {
                return Err(format!(
                    "`messages[{i}].content` must be a string or an array of parts"
                ));
            }
        }
    }
    Ok(total)
}

/// A prompt or embeddings input: a string, an array of strings, an array of
/// token ids or an array of such arrays. Returns (tokens, number of items).
fn count_texts(key: &str, value: Option<&Value>) -> Result<(u64, usize), String> {
    let bad = || {
        format!(
            "`{key}` must be a string, an array of strings, an array of token ids or an \
             array of token-id arrays"
        )
    };
    match value {
        Some(Value::String(s)) => Ok((words(s), 1)),
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_u64) {
                return Ok((items.len() as u64, 1));
            }
            let mut total = 0;
            for item in items {
                match item {
                    Value::String(s) => total += words(s),
                    Value::Array(ids) if ids.iter().all(Value::is_u64) => {
                        total += ids.len() as u64;
                    }
                    _ => return Err(bad()),
                }
            }
            Ok((total, items.len()))
        }
        Some(Value::Array(_)) => Err(format!("`{key}` must not be empty")),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(endpoint: Endpoint, body: &str) -> Result<SimRequest, String> {
        parse(endpoint, body.as_bytes())
    }

    #[test]
    fn chat_fields() {
        let r = p(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"system","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"one two three"},
                {"type":"image_url","image_url":{"url":"x"}}]}],
                "max_tokens":5,"stream":true,"stream_options":{"include_usage":true},
                "ignore_eos":true,"sim_fault":"cut","sim_stall_secs":0.5}"#,
        )
        .unwrap();
        assert_eq!(r.format, RequestFormat::Chat);
        assert_eq!(r.input_tokens, 5);
        assert_eq!(r.max_tokens, Some(5));
        assert!(r.stream && r.include_usage && r.ignore_eos);
        assert_eq!(r.fault, Some(FaultKind::Cut));
        assert_eq!(r.stall_secs, Some(0.5));
        assert_eq!(r.model.as_deref(), Some("m"));
    }

    #[test]
    fn predict_detects_format() {
        let f = |b: &str| p(Endpoint::Predict, b).unwrap().format;
        assert_eq!(f(r#"{"messages":[{"content":"hi"}]}"#), RequestFormat::Chat);
        assert_eq!(f(r#"{"prompt":"hi there"}"#), RequestFormat::Prompt);
        assert_eq!(f(r#"{"input":["a","b c"]}"#), RequestFormat::Embeddings);
        assert!(p(Endpoint::Predict, r#"{"x":1}"#).is_err());
    }

    #[test]
    fn inputs_count() {
        let r = p(
            Endpoint::Embeddings,
            r#"{"input":["a b","c"],"stream":true}"#,
        )
        .unwrap();
        assert_eq!(
            (r.input_tokens, r.embedding_inputs, r.stream),
            (3, 2, false)
        );
        let r = p(Endpoint::Completions, r#"{"prompt":[1,2,3]}"#).unwrap();
        assert_eq!(r.input_tokens, 3);
        let r = p(Endpoint::Completions, r#"{"prompt":[[1,2],[3]]}"#).unwrap();
        assert_eq!(r.input_tokens, 3);
    }

    #[test]
    fn tgi_fields() {
        let r = p(
            Endpoint::TgiGenerate { stream: true },
            r#"{"inputs":"![](data:image/png;base64,AA)one two ![](x)three",
                "parameters":{"max_new_tokens":5,"details":true,"temperature":0.5}}"#,
        )
        .unwrap();
        assert_eq!(r.format, RequestFormat::Tgi);
        assert_eq!(r.input_tokens, 3);
        assert_eq!(r.max_tokens, Some(5));
        assert!(r.stream && r.include_usage && !r.ignore_eos);
        let r = p(
            Endpoint::TgiGenerate { stream: false },
            r#"{"inputs":"a b"}"#,
        )
        .unwrap();
        assert!(!r.stream && !r.include_usage);
        assert_eq!((r.input_tokens, r.max_tokens), (2, None));
        for bad in [
            r#"{"prompt":"x"}"#,
            r#"{"inputs":"x","parameters":[]}"#,
            r#"{"inputs":"x","parameters":{"max_new_tokens":0}}"#,
            r#"{"inputs":"x","parameters":{"temperature":0}}"#,
            r#"{"inputs":"x","parameters":{"details":"yes"}}"#,
        ] {
            assert!(
                p(Endpoint::TgiGenerate { stream: true }, bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn ollama_fields() {
        let r = p(
            Endpoint::OllamaChat,
            r#"{"model":"m","messages":[{"role":"user","content":"one two","images":["AA"]}],
                "options":{"num_predict":7,"temperature":0}}"#,
        )
        .unwrap();
        assert_eq!(r.format, RequestFormat::OllamaChat);
        assert_eq!((r.input_tokens, r.max_tokens), (2, Some(7)));
        // Ollama streams unless told not to.
        assert!(r.stream && r.include_usage);
        let r = p(
            Endpoint::OllamaGenerate,
            r#"{"model":"m","prompt":"a b c","stream":false,"options":{"num_predict":-1}}"#,
        )
        .unwrap();
        assert_eq!(r.format, RequestFormat::OllamaGenerate);
        assert_eq!((r.input_tokens, r.max_tokens, r.stream), (3, None, false));
        for (e, bad) in [
            (Endpoint::OllamaChat, r#"{"messages":[{"content":"x"}]}"#),
            (Endpoint::OllamaChat, r#"{"model":"m","prompt":"x"}"#),
            (Endpoint::OllamaGenerate, r#"{"model":"m","messages":[]}"#),
            (
                Endpoint::OllamaGenerate,
                r#"{"model":"m","prompt":"x","options":3}"#,
            ),
            (
                Endpoint::OllamaGenerate,
                r#"{"model":"m","prompt":"x","options":{"num_predict":"5"}}"#,
            ),
            (
                Endpoint::OllamaGenerate,
                r#"{"model":"m","prompt":"x","stream":1}"#,
            ),
        ] {
            assert!(p(e, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_bodies() {
        for (e, b) in [
            (Endpoint::Chat, "not json"),
            (Endpoint::Chat, "[1]"),
            (Endpoint::Chat, r#"{"messages":[]}"#),
            (Endpoint::Chat, r#"{"messages":"hi"}"#),
            (Endpoint::Chat, r#"{"messages":[{"content":1}]}"#),
            (
                Endpoint::Chat,
                r#"{"messages":[{"content":"x"}],"max_tokens":-1}"#,
            ),
            (
                Endpoint::Chat,
                r#"{"messages":[{"content":"x"}],"max_tokens":0}"#,
            ),
            (
                Endpoint::Chat,
                r#"{"messages":[{"content":"x"}],"stream":"yes"}"#,
            ),
            (
                Endpoint::Chat,
                r#"{"messages":[{"content":"x"}],"sim_fault":"boom"}"#,
            ),
            (Endpoint::Completions, r#"{"prompt":{}}"#),
            (Endpoint::Embeddings, r#"{"input":[]}"#),
            (Endpoint::Embeddings, r#"{}"#),
        ] {
            assert!(p(e, b).is_err(), "{b}");
        }
    }
}
