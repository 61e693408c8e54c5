//! OCI Generative AI request bodies, in the shape the OCI SDK serialises
//! genai-bench's `ChatDetails`, `EmbedTextDetails` and `RerankTextDetails`
//! (camelCase keys), and `oci-openai`'s OpenAI-compatible requests.

use serde_json::{Map, Value, json};

use crate::model::{HttpRequest, Log, NoLog, Request, StreamBody, Task};
use plugin_kit::params;

/// The API version in every OCI Generative AI inference path.
const ACTIONS: &str = "/20231130/actions";

/// Params the plugin consumes (or that OCI does not take): never passed on.
const CONSUMED: &[&str] = &[
    "compartmentId",
    "servingType",
    "endpointId",
    "stream",
    "ignore_eos",
    "min_tokens",
    "max_tokens",
    "custom_messages",
    "system_message",
    "systemMessage",
    "chat_history",
    "chatHistory",
];

/// The request format of an `--api-backend` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `oci-cohere`: `apiFormat: COHERE` (one `message`, text only).
    Cohere,
    /// `oci-cohere-v2`: `apiFormat: COHEREV2` (typed messages, images).
    CohereV2,
    /// `oci-genai`: `apiFormat: GENERIC` (Meta, xAI, ... models).
    Generic,
}

impl Format {
    /// The format `--api-backend name` sends; an empty name (a host that
    /// does not say) is the plugin's own, `oci-genai`.
    pub fn of(backend: &str) -> Result<Format, String> {
        match backend.to_ascii_lowercase().as_str() {
            "oci-cohere" => Ok(Format::Cohere),
            "oci-cohere-v2" => Ok(Format::CohereV2),
            "oci-genai" | "" => Ok(Format::Generic),
            other => Err(format!(
                "the OCI Generative AI plugin serves oci-cohere, oci-cohere-v2 and oci-genai, \
                 not {other} (oci-openai is a plugin of its own)"
            )),
        }
    }

    fn api_format(self) -> &'static str {
        match self {
            Format::Cohere => "COHERE",
            Format::CohereV2 => "COHEREV2",
            Format::Generic => "GENERIC",
        }
    }
}

/// Checks `--additional-request-params`: the compartment every OCI request
/// needs, the serving mode, and the keys every plugin reads alike.
pub fn check_params(p: &Map<String, Value>, log: &mut dyn Log) -> Result<(), String> {
    params::check_common(p, log)?;
    params::refuse_prompt_format(p, "OCI Generative AI takes chat requests")?;
    params::oci_compartment(p)?;
    match p.get("servingType").map(|v| v.as_str()) {
        None | Some(Some("ON_DEMAND")) => {}
        Some(Some("DEDICATED")) => {
            if !p.get("endpointId").is_some_and(Value::is_string) {
                return Err(
                    "`servingType` DEDICATED needs `endpointId`: the OCID of the \
                            dedicated AI cluster's endpoint"
                        .to_owned(),
                );
            }
        }
        Some(_) => {
            return Err(format!(
                "`servingType` must be \"ON_DEMAND\" (the model named by --api-model-name) or \
                 \"DEDICATED\" (with `endpointId`), got {}",
                params::show(&p["servingType"])
            ));
        }
    }
    for k in ["chatHistory", "chat_history"] {
        if p.get(k).is_some_and(|v| !v.is_array() && !v.is_null()) {
            return Err(format!("`{k}` must be a list of messages"));
        }
    }
    Ok(())
}

/// `top_p` -> `topP`: OCI's JSON names are the SDK's snake_case names in
/// camelCase, so genai-bench's snake_case params (oci-genai's `top_p`,
/// `top_k`, `frequency_penalty`) and camelCase ones both work.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The user's params for the body, camelCased, without the consumed ones.
fn passed(p: &Map<String, Value>) -> Vec<(String, Value)> {
    p.iter()
        .filter(|(k, v)| !CONSUMED.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (camel(k), v.clone()))
        .collect()
}

/// Sets `key` unless the user's params give it.
fn default(body: &mut Map<String, Value>, key: &str, value: Value) {
    body.entry(key.to_owned()).or_insert(value);
}

fn serving_mode(request: &Request, p: &Map<String, Value>) -> Value {
    match p.get("servingType").and_then(Value::as_str) {
        Some("DEDICATED") => json!({"servingType": "DEDICATED", "endpointId": p["endpointId"]}),
        _ => json!({"servingType": "ON_DEMAND", "modelId": request.model}),
    }
}

/// A typed message of COHEREV2 / GENERIC: role upper-cased, string content
/// as one TEXT part (parts given as a list are sent as given).
fn typed_message(format: Format, role: &str, content: &Value) -> Value {
    let content = match content {
        Value::String(s) => json!([text_part(format, s)]),
        other => other.clone(),
    };
    json!({"role": role.to_ascii_uppercase(), "content": content})
}

fn text_part(format: Format, text: &str) -> Value {
    // The key order the SDK sends for each format.
    if format == Format::Generic {
        json!({"text": text, "type": "TEXT"})
    } else {
        json!({"type": "TEXT", "text": text})
    }
}

fn image_part(format: Format, url: &str) -> Value {
    if format == Format::Generic {
        json!({"type": "IMAGE", "imageUrl": {"url": url}})
    } else {
        json!({"type": "IMAGE_URL", "imageUrl": {"url": url}})
    }
}

/// The messages of a COHEREV2 / GENERIC chat request: system message,
/// history, then the user's turn (or `custom_messages`, or the host's
/// conversation).
fn messages(format: Format, request: &Request, p: &Map<String, Value>) -> Value {
    let mut out = Vec::new();
    if let Some(Value::String(s)) = p.get("system_message").or_else(|| p.get("systemMessage")) {
        out.push(typed_message(format, "SYSTEM", &Value::String(s.clone())));
    }
    let history = p.get("chatHistory").or_else(|| p.get("chat_history"));
    for m in history.and_then(Value::as_array).into_iter().flatten() {
        match (m.get("role").and_then(Value::as_str), m.get("content")) {
            (Some(role), Some(content)) => out.push(typed_message(format, role, content)),
            // Already in OCI's shape (or another the service judges).
            _ => out.push(m.clone()),
        }
    }
    if let Some(custom) = p.get("custom_messages").and_then(Value::as_array) {
        for m in custom {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            out.push(typed_message(format, role, &m["content"]));
        }
    } else if !request.messages.is_empty() {
        for m in &request.messages {
            out.push(typed_message(
                format,
                &m.role,
                &Value::String(m.content.clone()),
            ));
        }
    } else {
        let mut parts = vec![text_part(format, &request.prompt)];
        parts.extend(request.image_urls.iter().map(|u| image_part(format, u)));
        out.push(json!({"role": "USER", "content": parts}));
    }
    Value::Array(out)
}

/// The COHERE format's last user `message` and the `chatHistory` before
/// it (`{"role": "USER" | "CHATBOT" | "SYSTEM", "message": ...}`), from
/// `chatHistory`, `custom_messages` or the host's conversation.
fn cohere_turns(request: &Request, p: &Map<String, Value>) -> Result<(String, Vec<Value>), String> {
    let mut history: Vec<Value> = p
        .get("chatHistory")
        .or_else(|| p.get("chat_history"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut turns: Vec<(String, String)> = Vec::new();
    if let Some(custom) = p.get("custom_messages").and_then(Value::as_array) {
        for (i, m) in custom.iter().enumerate() {
            let Some(text) = m["content"].as_str() else {
                return Err(format!(
                    "the COHERE format (oci-cohere) takes text messages; custom_messages[{i}] \
                     has content parts: use --api-backend oci-cohere-v2"
                ));
            };
            let role = m["role"].as_str().unwrap_or("user");
            turns.push((role.to_owned(), text.to_owned()));
        }
    } else {
        turns.extend(
            request
                .messages
                .iter()
                .map(|m| (m.role.clone(), m.content.clone())),
        );
    }
    let message = match turns.pop() {
        Some((_, last)) => last,
        None => request.prompt.clone(),
    };
    for (role, text) in turns {
        let role = match role.to_ascii_lowercase().as_str() {
            "assistant" | "chatbot" => "CHATBOT",
            "system" => "SYSTEM",
            _ => "USER",
        };
        history.push(json!({"role": role, "message": text}));
    }
    Ok((message, history))
}

fn chat_request(
    format: Format,
    request: &Request,
    p: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    // The COHERE format carries no images: Cohere's vision models take the
    // COHEREV2 format, which OCI serves under the same action.
    let format = if format == Format::Cohere && !request.image_urls.is_empty() {
        Format::CohereV2
    } else {
        format
    };
    let mut c = Map::new();
    c.insert("apiFormat".into(), json!(format.api_format()));
    match format {
        Format::Cohere => {
            let (message, history) = cohere_turns(request, p)?;
            c.insert("message".into(), json!(message));
            if let Some(Value::String(s)) =
                p.get("system_message").or_else(|| p.get("systemMessage"))
            {
                c.insert("preambleOverride".into(), json!(s));
            }
            if !history.is_empty() {
                c.insert("chatHistory".into(), Value::Array(history));
            }
        }
        _ => {
            c.insert("messages".into(), messages(format, request, p));
            if request.stream {
                c.insert("streamOptions".into(), json!({"isIncludeUsage": true}));
            }
        }
    }
    c.insert("isStream".into(), json!(request.stream));
    let max_tokens = p
        .get("max_tokens")
        .and_then(Value::as_u64)
        .or(request.max_tokens.map(u64::from));
    if let Some(n) = max_tokens {
        c.insert("maxTokens".into(), json!(n));
    }
    for (k, v) in passed(p) {
        c.insert(k, v);
    }
    // genai-bench's defaults for what the user did not set.
    match format {
        Format::Generic => {
            default(&mut c, "numGenerations", json!(1));
            default(&mut c, "topK", json!(1));
            default(&mut c, "topP", json!(0.7));
            default(&mut c, "temperature", json!(0.75));
        }
        Format::Cohere | Format::CohereV2 => {
            default(&mut c, "temperature", json!(0.1));
            default(&mut c, "topK", json!(0));
            default(&mut c, "topP", json!(0));
            default(&mut c, "frequencyPenalty", json!(0));
            default(&mut c, "presencePenalty", json!(0));
        }
    }
    Ok(c)
}

/// Builds the HTTP request for one benchmark request in `format`.
pub fn build(request: &Request, format: Format) -> Result<HttpRequest, String> {
    let p = params::parse(&request.params_json)?;
    check_params(&p, &mut NoLog)?;
    let mut body = Map::new();
    let (action, streams) = match request.task {
        Task::TextToText | Task::ImageTextToText => {
            body.insert("compartmentId".into(), p["compartmentId"].clone());
            body.insert("servingMode".into(), serving_mode(request, &p));
            body.insert(
                "chatRequest".into(),
                Value::Object(chat_request(format, request, &p)?),
            );
            ("chat", request.stream)
        }
        Task::TextToEmbeddings | Task::ImageToEmbeddings => {
            let image = request.task == Task::ImageToEmbeddings;
            if image && request.image_urls.len() > 1 {
                return Err(format!(
                    "OCI embeds one image per request; the scenario asks for {} (use I(w,h) \
                     or I(w,h,1))",
                    request.image_urls.len()
                ));
            }
            let inputs = if image {
                json!(request.image_urls)
            } else {
                json!(request.documents)
            };
            body.insert("inputs".into(), inputs);
            body.insert("servingMode".into(), serving_mode(request, &p));
            body.insert("compartmentId".into(), p["compartmentId"].clone());
            for (k, v) in passed(&p) {
                body.insert(k, v);
            }
            default(&mut body, "truncate", json!("NONE"));
            let kind = if image { "IMAGE" } else { "SEARCH_DOCUMENT" };
            default(&mut body, "inputType", json!(kind));
            ("embedText", false)
        }
        Task::TextToRerank => {
            body.insert("input".into(), json!(request.query));
            body.insert("compartmentId".into(), p["compartmentId"].clone());
            body.insert("servingMode".into(), serving_mode(request, &p));
            body.insert("documents".into(), json!(request.documents));
            for (k, v) in passed(&p) {
                body.insert(k, v);
            }
            ("rerankText", false)
        }
        Task::TextToImage | Task::TextToSpeech => {
            return Err("OCI Generative AI serves images and speech through its \
                        OpenAI-compatible endpoint: use --api-backend oci-openai"
                .to_owned());
        }
    };
    let body = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| format!("cannot encode the body: {e}"))?;
    let accept = if streams {
        "application/json, text/event-stream"
    } else {
        "application/json"
    };
    Ok(HttpRequest {
        method: "POST".to_owned(),
        path: format!("{ACTIONS}/{action}"),
        headers: vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Accept".to_owned(), accept.to_owned()),
        ],
        body,
        stream_body: StreamBody::Sniff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPARTMENT: &str = "ocid1.compartment.oc1..c";

    fn request(task: Task, params: &str) -> Request {
        Request {
            task,
            model: "cohere.command-r-plus".into(),
            prompt: "Hello there".into(),
            messages: Vec::new(),
            image_urls: Vec::new(),
            documents: vec!["a".into(), "b".into()],
            query: "q".into(),
            image_output: None,
            max_tokens: Some(5),
            stream: true,
            params_json: params.into(),
            backend: String::new(),
            backend_options: Vec::new(),
        }
    }

    fn params(extra: &str) -> String {
        format!(r#"{{"compartmentId": "{COMPARTMENT}"{extra}}}"#)
    }

    fn body(r: &Request, f: Format) -> Value {
        serde_json::from_slice(&build(r, f).unwrap().body).unwrap()
    }

    #[test]
    fn chat_bodies_follow_genai_bench_per_format() {
        let r = request(Task::TextToText, &params(r#", "ignore_eos": true"#));
        let http = build(&r, Format::Cohere).unwrap();
        assert_eq!(http.path, "/20231130/actions/chat");
        assert!(http.headers.contains(&(
            "Accept".into(),
            "application/json, text/event-stream".into()
        )));
        assert_eq!(
            body(&r, Format::Cohere),
            json!({"compartmentId": COMPARTMENT,
                   "servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.command-r-plus"},
                   "chatRequest": {"apiFormat": "COHERE", "message": "Hello there", "isStream": true,
                                   "maxTokens": 5, "temperature": 0.1, "topK": 0, "topP": 0,
                                   "frequencyPenalty": 0, "presencePenalty": 0}})
        );
        let mut r = request(Task::ImageTextToText, &params(r#", "temperature": 0.5"#));
        r.image_urls = vec!["data:image/jpeg;base64,AA".into()];
        assert_eq!(
            body(&r, Format::CohereV2)["chatRequest"],
            json!({"apiFormat": "COHEREV2",
                   "messages": [{"role": "USER", "content": [
                       {"type": "TEXT", "text": "Hello there"},
                       {"type": "IMAGE_URL", "imageUrl": {"url": "data:image/jpeg;base64,AA"}}]}],
                   "streamOptions": {"isIncludeUsage": true}, "isStream": true, "maxTokens": 5,
                   "temperature": 0.5, "topK": 0, "topP": 0, "frequencyPenalty": 0,
                   "presencePenalty": 0})
        );
        // GENERIC: genai-bench's snake_case sampling params become OCI's names.
        let mut r = request(
            Task::TextToText,
            &params(r#", "top_p": 0.9, "system_message": "Be brief.", "seed": 7"#),
        );
        r.stream = false;
        assert_eq!(
            body(&r, Format::Generic)["chatRequest"],
            json!({"apiFormat": "GENERIC",
                   "messages": [{"role": "SYSTEM", "content": [{"text": "Be brief.", "type": "TEXT"}]},
                                {"role": "USER", "content": [{"text": "Hello there", "type": "TEXT"}]}],
                   "isStream": false, "maxTokens": 5, "topP": 0.9, "seed": 7,
                   "numGenerations": 1, "topK": 1, "temperature": 0.75})
        );
        let http = build(&r, Format::Generic).unwrap();
        assert!(
            http.headers
                .contains(&("Accept".into(), "application/json".into()))
        );
        // A dedicated endpoint instead of the on-demand model.
        let r = request(
            Task::TextToText,
            &params(r#", "servingType": "DEDICATED", "endpointId": "ocid1.endpoint.x""#),
        );
        assert_eq!(
            body(&r, Format::Generic)["servingMode"],
            json!({"servingType": "DEDICATED", "endpointId": "ocid1.endpoint.x"})
        );
    }

    #[test]
    fn cohere_format_turns_conversations_into_chat_history_and_images_into_v2() {
        let mut r = request(Task::TextToText, &params(""));
        r.messages = vec![
            crate::model::Message {
                role: "user".into(),
                content: "Hi".into(),
            },
            crate::model::Message {
                role: "assistant".into(),
                content: "Hello!".into(),
            },
            crate::model::Message {
                role: "user".into(),
                content: "And now?".into(),
            },
        ];
        let c = body(&r, Format::Cohere)["chatRequest"].clone();
        assert_eq!(c["message"], "And now?");
        assert_eq!(
            c["chatHistory"],
            json!([{"role": "USER", "message": "Hi"}, {"role": "CHATBOT", "message": "Hello!"}])
        );
        let mut r = request(Task::ImageTextToText, &params(""));
        r.image_urls = vec!["data:image/png;base64,AA".into()];
        let c = body(&r, Format::Cohere)["chatRequest"].clone();
        assert_eq!(c["apiFormat"], "COHEREV2");
        assert_eq!(c["messages"][0]["content"][1]["type"], "IMAGE_URL");
    }

    #[test]
    fn embed_and_rerank_bodies() {
        let r = request(Task::TextToEmbeddings, &params(""));
        let http = build(&r, Format::Cohere).unwrap();
        assert_eq!(http.path, "/20231130/actions/embedText");
        assert_eq!(
            body(&r, Format::Cohere),
            json!({"inputs": ["a", "b"],
                   "servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.command-r-plus"},
                   "compartmentId": COMPARTMENT, "truncate": "NONE", "inputType": "SEARCH_DOCUMENT"})
        );
        let mut r = request(Task::ImageToEmbeddings, &params(r#", "truncate": "END""#));
        r.image_urls = vec!["data:image/png;base64,AA".into()];
        let b = body(&r, Format::Cohere);
        assert_eq!(b["inputs"], json!(["data:image/png;base64,AA"]));
        assert_eq!(b["inputType"], "IMAGE");
        assert_eq!(b["truncate"], "END");
        r.image_urls.push("data:image/png;base64,BB".into());
        assert!(
            build(&r, Format::Cohere)
                .unwrap_err()
                .contains("one image per request")
        );
        let r = request(Task::TextToRerank, &params(r#", "top_n": 1"#));
        let http = build(&r, Format::Cohere).unwrap();
        assert_eq!(http.path, "/20231130/actions/rerankText");
        assert_eq!(
            body(&r, Format::Cohere),
            json!({"input": "q", "compartmentId": COMPARTMENT,
                   "servingMode": {"servingType": "ON_DEMAND", "modelId": "cohere.command-r-plus"},
                   "documents": ["a", "b"], "topN": 1})
        );
    }

    #[test]
    fn bad_params_and_tasks_say_what_to_do() {
        let err = |json: &str| check_params(&params::parse(json).unwrap(), &mut NoLog).unwrap_err();
        assert!(err("{}").contains("compartmentId"));
        assert!(err(r#"{"compartmentId": 3}"#).contains("OCID string"));
        assert!(
            err(&params(r#", "servingType": "DEDICATED""#)).contains("endpointId"),
            "dedicated without endpoint"
        );
        assert!(err(&params(r#", "servingType": "SHARED""#)).contains("ON_DEMAND"));
        assert!(err(&params(r#", "use_prompt_format": true"#)).contains("use_prompt_format"));
        let r = request(Task::TextToSpeech, &params(""));
        assert!(
            build(&r, Format::Cohere)
                .unwrap_err()
                .contains("oci-openai")
        );
        assert!(Format::of("cohere").is_err());
        assert!(
            Format::of("oci-openai")
                .unwrap_err()
                .contains("plugin of its own")
        );
        assert_eq!(Format::of("OCI-Cohere-V2"), Ok(Format::CohereV2));
    }

    #[test]
    fn snake_case_becomes_camel_case() {
        assert_eq!(camel("top_p"), "topP");
        assert_eq!(camel("frequency_penalty"), "frequencyPenalty");
        assert_eq!(camel("topK"), "topK");
        assert_eq!(camel("_x"), "_x");
    }
}
