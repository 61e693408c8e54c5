//! Request building for OpenAI-compatible chat completions and embeddings,
//! following genai-bench's `OpenAIUser` payloads.

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use super::params;
use crate::model::{HttpRequest, Message, NoLog, Request, StreamBody, Task};

/// Params this plugin consumes itself; everything else is passed through.
const NOT_PASSED_THROUGH: [&str; 3] = ["stream", "custom_messages", "system_message"];

/// Chat completions, under `--api-base`.
pub const CHAT_PATH: &str = "/v1/chat/completions";
/// Embeddings, under `--api-base`.
pub const EMBEDDINGS_PATH: &str = "/v1/embeddings";
/// Rerank (vLLM, SGLang, Cohere-compatible servers), under `--api-base`.
pub const RERANK_PATH: &str = "/v1/rerank";
/// Image generation, under `--api-base`.
pub const IMAGES_PATH: &str = "/v1/images/generations";
/// Speech synthesis, under `--api-base`.
pub const SPEECH_PATH: &str = "/v1/audio/speech";

/// What the user's `--api-backend` choice changes in the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// OpenAI itself: `ignore_eos` is not an OpenAI parameter and is removed.
    OpenAi,
    /// vLLM, SGLang and Together: `ignore_eos` defaults to whether an
    /// output length is set.
    IgnoreEos,
    /// Azure OpenAI: the deployment is in the path (`azure-deployment`,
    /// else the model name) with `api-version`; no `model` in the body, and
    /// every param passed as given (`ignore_eos` included).
    Azure,
}

impl Flavour {
    /// The rules for `--api-backend name`; anything but `vllm`/`sglang`
    /// follows OpenAI's (an empty name comes from hosts that do not say).
    pub fn of(backend: &str) -> Flavour {
        if backend.eq_ignore_ascii_case("azure-openai") {
            return Flavour::Azure;
        }
        if ["vllm", "sglang", "together"]
            .iter()
            .any(|b| backend.eq_ignore_ascii_case(b))
        {
            Flavour::IgnoreEos
        } else {
            Flavour::OpenAi
        }
    }
}

/// Builds the HTTP request for one benchmark request.
pub fn build(request: &Request) -> Result<HttpRequest, String> {
    let params = params::parse(&request.params_json)?;
    // Validation already ran before the run; repeating it here keeps a bad
    // value from turning into a confusing server error.
    params::check(&params, &mut NoLog)?;
    let system = params::system_message(&params)?;

    let flavour = Flavour::of(&request.backend);
    let (mut body, path, streams) = match request.task {
        Task::TextToEmbeddings => (embeddings_body(request, &params), EMBEDDINGS_PATH, false),
        Task::TextToRerank => (rerank_body(request, &params), RERANK_PATH, false),
        Task::TextToImage => (image_body(request, &params), IMAGES_PATH, false),
        Task::TextToSpeech => (speech_body(request, &params), SPEECH_PATH, false),
        Task::ImageToEmbeddings => {
            return Err(
                "image-to-embeddings has no OpenAI-compatible endpoint; use --api-backend cohere"
                    .to_owned(),
            );
        }
        Task::TextToText | Task::ImageTextToText => (
            chat_body(request, &params, system, flavour),
            CHAT_PATH,
            request.stream,
        ),
    };
    let path = if flavour == Flavour::Azure {
        let what = match request.task {
            Task::TextToText | Task::ImageTextToText => "chat/completions",
            Task::TextToEmbeddings => "embeddings",
            t => return Err(format!("Azure OpenAI has no {t:?} endpoint in genai-bench")),
        };
        // The deployment is in the body's place of the model.
        body.remove("model");
        let deployment = request.option("azure-deployment").unwrap_or(&request.model);
        let version = request.option("azure-api-version").unwrap_or("2024-02-01");
        format!(
            "/openai/deployments/{}/{what}?api-version={}",
            crate::params::path_segment(deployment, b""),
            crate::params::path_segment(version, b"")
        )
    } else {
        path.to_owned()
    };
    let body = serde_json::to_vec(&body).map_err(|e| format!("cannot encode the body: {e}"))?;

    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if streams {
        headers.push(("Accept".to_owned(), "text/event-stream".to_owned()));
    }
    Ok(HttpRequest {
        method: "POST".to_owned(),
        path,
        headers,
        body,
        stream_body: StreamBody::Sniff,
    })
}

/// genai-bench's order: model, messages, max_tokens, temperature, stream,
/// the params, then `ignore_eos` (vLLM/SGLang default) and `stream_options`.
fn chat_body<'a>(
    request: &'a Request,
    params: &'a Map<String, Value>,
    system: Option<&'a str>,
    flavour: Flavour,
) -> Body<'a> {
    let max_tokens = max_tokens(request, params);
    let mut body = Body::default();
    body.set("model", Val::Str(&request.model));
    body.set("messages", Val::Messages(system, messages(request, params)));
    body.set("max_tokens", opt_u64(max_tokens));
    body.set("temperature", temperature(params));
    body.set("stream", Val::Bool(request.stream));
    body.pass_through(params);
    match flavour {
        Flavour::IgnoreEos => {
            if !params.contains_key("ignore_eos") {
                body.set("ignore_eos", Val::Bool(max_tokens.is_some_and(|n| n > 0)));
            }
        }
        Flavour::OpenAi => body.remove("ignore_eos"),
        Flavour::Azure => {}
    }
    if request.stream {
        body.set("stream_options", Val::IncludeUsage);
    }
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

/// genai-bench's rerank payload: model, query, documents, then the params.
fn rerank_body<'a>(request: &'a Request, params: &'a Map<String, Value>) -> Body<'a> {
    let mut body = Body::default();
    body.set("model", Val::Str(&request.model));
    body.set("query", Val::Str(&request.query));
    body.set("documents", Val::Strs(&request.documents));
    body.pass_through(params);
    body
}

/// genai-bench's image generation payload: model, prompt, n, the params
/// (less those set here), then size (`WxH` of the scenario) and quality.
fn image_body<'a>(request: &'a Request, params: &'a Map<String, Value>) -> Body<'a> {
    let mut body = Body::default();
    body.set("model", Val::Str(&request.model));
    body.set("prompt", Val::Str(&request.prompt));
    let count = request.image_output.map_or(1, |(_, _, n)| n);
    body.set("n", Val::U64(u64::from(count)));
    for (key, value) in params {
        if !["model", "prompt", "n", "size", "quality"].contains(&key.as_str())
            && !NOT_PASSED_THROUGH.contains(&key.as_str())
        {
            body.set(key, Val::Param(value));
        }
    }
    if let Some((w, h, _)) = request.image_output {
        body.set("size", Val::Owned(Value::String(format!("{w}x{h}"))));
    }
    if let Some(q) = params.get("quality") {
        body.set("quality", Val::Param(q));
    }
    body
}

/// genai-bench's speech payload: model, input, voice (`alloy` unless the
/// params say), then the other params.
fn speech_body<'a>(request: &'a Request, params: &'a Map<String, Value>) -> Body<'a> {
    let mut body = Body::default();
    body.set("model", Val::Str(&request.model));
    body.set("input", Val::Str(&request.prompt));
    body.set(
        "voice",
        params.get("voice").map_or(Val::Str("alloy"), Val::Param),
    );
    for (key, value) in params {
        if !["model", "input", "voice"].contains(&key.as_str())
            && !NOT_PASSED_THROUGH.contains(&key.as_str())
        {
            body.set(key, Val::Param(value));
        }
    }
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

fn messages<'a>(request: &'a Request, params: &'a Map<String, Value>) -> Msgs<'a> {
    if let Some(custom) = params.get("custom_messages") {
        Msgs::Custom(custom)
    } else if !request.messages.is_empty() {
        Msgs::Conversation(&request.messages)
    } else if !request.image_urls.is_empty() {
        Msgs::Images(&request.prompt, &request.image_urls)
    } else {
        Msgs::Prompt(&request.prompt)
    }
}

/// Where the chat messages come from.
enum Msgs<'a> {
    /// `custom_messages`, sent as given.
    Custom(&'a Value),
    /// The host's conversation.
    Conversation(&'a [Message]),
    /// One user message with the prompt.
    Prompt(&'a str),
    /// One user message with a text part and one part per image.
    Images(&'a str, &'a [String]),
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
    /// A value made here.
    Owned(Value),
    /// `{"include_usage": true}`.
    IncludeUsage,
    /// The chat messages, after an optional system message (not added when
    /// the conversation already starts with one).
    Messages(Option<&'a str>, Msgs<'a>),
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
        match self {
            Val::Null => s.serialize_unit(),
            Val::Bool(b) => s.serialize_bool(*b),
            Val::U64(n) => s.serialize_u64(*n),
            Val::F64(x) => s.serialize_f64(*x),
            Val::Str(text) => s.serialize_str(text),
            Val::Strs(list) => list.serialize(s),
            Val::Param(v) => v.serialize(s),
            Val::Owned(v) => v.serialize(s),
            Val::IncludeUsage => IncludeUsage {
                include_usage: true,
            }
            .serialize(s),
            Val::Messages(system, msgs) => serialize_messages(*system, msgs, s),
        }
    }
}

fn serialize_messages<S: Serializer>(
    system: Option<&str>,
    msgs: &Msgs<'_>,
    s: S,
) -> Result<S::Ok, S::Error> {
    if let Msgs::Custom(v) = msgs {
        // `system_message` with `custom_messages` is refused by params::check.
        return v.serialize(s);
    }
    let system = match msgs {
        Msgs::Conversation(list) if list.first().is_some_and(|m| m.role == "system") => None,
        _ => system,
    };
    let mut seq = s.serialize_seq(None)?;
    if let Some(content) = system {
        seq.serialize_element(&ChatMessage {
            role: "system",
            content,
        })?;
    }
    match msgs {
        Msgs::Custom(_) => {}
        Msgs::Conversation(list) => {
            for m in *list {
                seq.serialize_element(&ChatMessage {
                    role: &m.role,
                    content: m.content.as_str(),
                })?;
            }
        }
        Msgs::Prompt(prompt) => seq.serialize_element(&ChatMessage {
            role: "user",
            content: *prompt,
        })?,
        Msgs::Images(prompt, urls) => {
            let mut parts = Vec::with_capacity(1 + urls.len());
            parts.push(Part::Text { text: prompt });
            parts.extend(urls.iter().map(|url| Part::ImageUrl {
                image_url: ImageUrl { url },
            }));
            seq.serialize_element(&ChatMessage {
                role: "user",
                content: parts,
            })?;
        }
    }
    seq.end()
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

    fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| *k != key);
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
mod tests;
