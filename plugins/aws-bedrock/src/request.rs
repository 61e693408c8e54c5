//! Bedrock `InvokeModel` bodies by model family, as genai-bench's
//! `AWSBedrockUser` builds them.

use serde_json::{Map, Value, json};

use crate::model::{HttpRequest, Log, NoLog, Request, StreamBody, Task};
use plugin_kit::params;

/// Params Bedrock models refuse as unknown fields (genai-bench sends them
/// and gets a 400), or that the host controls.
const NOT_SENT: [&str; 4] = ["ignore_eos", "min_tokens", "stream", "custom_messages"];

/// The model families genai-bench distinguishes by model id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `anthropic.claude-*`: the Messages API.
    Claude,
    /// `amazon.titan-*`: `inputText` and `textGenerationConfig`.
    Titan,
    /// `meta.llama*`: `prompt` and `max_gen_len`.
    Llama,
    /// Anything else: `prompt` and `max_tokens`.
    Other,
}

impl Family {
    /// The family of a model id (or inference profile id).
    pub fn of(model: &str) -> Family {
        let m = model.to_ascii_lowercase();
        if m.contains("claude") {
            Family::Claude
        } else if m.contains("titan") {
            Family::Titan
        } else if m.contains("llama") {
            Family::Llama
        } else {
            Family::Other
        }
    }
}

/// Checks `--additional-request-params`.
pub fn check_params(p: &Map<String, Value>, log: &mut dyn Log) -> Result<(), String> {
    params::check_common(p, log)?;
    params::refuse_prompt_format(p, "Bedrock bodies follow the model family")?;
    Ok(())
}

/// `data:image/jpeg;base64,XXXX` as (media type, base64 data).
fn data_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("data:")
        .ok_or("Bedrock takes images inline: a data: URL is needed, not a link")?;
    let (meta, data) = rest
        .split_once(',')
        .ok_or("malformed data: URL (no comma)")?;
    let media = meta
        .strip_suffix(";base64")
        .ok_or("the image data: URL is not base64")?;
    Ok((media, data))
}

/// Builds the HTTP request for one benchmark request.
pub fn build(request: &Request) -> Result<HttpRequest, String> {
    let p = params::parse(&request.params_json)?;
    check_params(&p, &mut NoLog)?;
    let family = Family::of(&request.model);
    let mut body = Map::new();
    let mut streams = request.stream;
    match request.task {
        Task::TextToText | Task::ImageTextToText => match family {
            Family::Claude => {
                body.insert("anthropic_version".into(), json!("bedrock-2023-05-31"));
                let content = if request.image_urls.is_empty() {
                    json!(request.prompt)
                } else {
                    let mut parts = vec![json!({"type": "text", "text": request.prompt})];
                    for url in &request.image_urls {
                        let (media, data) = data_url(url)?;
                        parts.push(json!({"type": "image", "source": {
                            "type": "base64", "media_type": media, "data": data}}));
                    }
                    Value::Array(parts)
                };
                let messages = p
                    .get("custom_messages")
                    .cloned()
                    .unwrap_or_else(|| json!([{"role": "user", "content": content}]));
                body.insert("messages".into(), messages);
                if let Some(n) = request.max_tokens {
                    body.insert("max_tokens".into(), json!(n));
                }
            }
            _ if !request.image_urls.is_empty() => {
                return Err(format!(
                    "images go to Claude models on Bedrock (as genai-bench sends them); \
                     {} is not one",
                    request.model
                ));
            }
            Family::Titan => {
                body.insert("inputText".into(), json!(request.prompt));
                let mut config = Map::new();
                if let Some(n) = request.max_tokens {
                    config.insert("maxTokenCount".into(), json!(n));
                }
                body.insert("textGenerationConfig".into(), Value::Object(config));
            }
            Family::Llama => {
                body.insert("prompt".into(), json!(request.prompt));
                if let Some(n) = request.max_tokens {
                    body.insert("max_gen_len".into(), json!(n));
                }
            }
            Family::Other => {
                body.insert("prompt".into(), json!(request.prompt));
                if let Some(n) = request.max_tokens {
                    body.insert("max_tokens".into(), json!(n));
                }
            }
        },
        Task::TextToEmbeddings => {
            if !request.model.to_ascii_lowercase().contains("titan-embed") {
                return Err(format!(
                    "Bedrock embeddings are Titan's (a model id with titan-embed), as in \
                     genai-bench; {} is not one",
                    request.model
                ));
            }
            body.insert("inputText".into(), json!(request.documents.join(" ")));
            streams = false;
        }
        t => return Err(format!("Bedrock has no {t:?} request here")),
    }
    for (k, v) in &p {
        if !NOT_SENT.contains(&k.as_str()) && !v.is_null() {
            body.insert(k.clone(), v.clone());
        }
    }
    let body = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| format!("cannot encode the body: {e}"))?;
    let id = params::path_segment(&request.model, b"");
    let (path, accept) = if streams {
        (
            format!("/model/{id}/invoke-with-response-stream"),
            "X-Amzn-Bedrock-Accept",
        )
    } else {
        (format!("/model/{id}/invoke"), "Accept")
    };
    Ok(HttpRequest {
        method: "POST".to_owned(),
        path,
        headers: vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (accept.to_owned(), "application/json".to_owned()),
        ],
        body,
        stream_body: StreamBody::Sniff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(task: Task, model: &str, stream: bool) -> Request {
        Request {
            task,
            model: model.into(),
            prompt: "Hello there".into(),
            messages: Vec::new(),
            image_urls: Vec::new(),
            documents: vec!["a".into(), "b".into()],
            query: String::new(),
            image_output: None,
            max_tokens: Some(5),
            stream,
            params_json: r#"{"ignore_eos": true, "min_tokens": 5, "temperature": 0.2}"#.into(),
            backend: "aws-bedrock".into(),
            backend_options: Vec::new(),
        }
    }

    fn body(r: &Request) -> Value {
        serde_json::from_slice(&build(r).unwrap().body).unwrap()
    }

    #[test]
    fn bodies_and_paths_follow_the_model_family() {
        let claude = "anthropic.claude-3-haiku-20240307-v1:0";
        let r = request(Task::TextToText, claude, true);
        let h = build(&r).unwrap();
        assert_eq!(
            h.path,
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream"
        );
        assert!(
            h.headers
                .contains(&("X-Amzn-Bedrock-Accept".into(), "application/json".into()))
        );
        assert_eq!(
            body(&r),
            json!({"anthropic_version": "bedrock-2023-05-31",
                   "messages": [{"role": "user", "content": "Hello there"}],
                   "max_tokens": 5, "temperature": 0.2})
        );
        let r = request(Task::TextToText, "amazon.titan-text-express-v1", false);
        assert_eq!(
            build(&r).unwrap().path,
            "/model/amazon.titan-text-express-v1/invoke"
        );
        assert_eq!(
            body(&r),
            json!({"inputText": "Hello there", "textGenerationConfig": {"maxTokenCount": 5},
                   "temperature": 0.2})
        );
        let r = request(Task::TextToText, "meta.llama3-8b-instruct-v1:0", true);
        assert_eq!(
            body(&r),
            json!({"prompt": "Hello there", "max_gen_len": 5, "temperature": 0.2})
        );
        let r = request(Task::TextToText, "mistral.mistral-7b-instruct-v0:2", true);
        assert_eq!(
            body(&r),
            json!({"prompt": "Hello there", "max_tokens": 5, "temperature": 0.2})
        );

        let mut r = request(Task::ImageTextToText, claude, true);
        r.image_urls = vec!["data:image/jpeg;base64,AAAA".into()];
        assert_eq!(
            body(&r)["messages"][0]["content"][1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}})
        );
        r.model = "meta.llama3-8b-instruct-v1:0".into();
        assert!(build(&r).is_err());

        let r = request(Task::TextToEmbeddings, "amazon.titan-embed-text-v2:0", true);
        assert_eq!(
            build(&r).unwrap().path,
            "/model/amazon.titan-embed-text-v2%3A0/invoke"
        );
        assert_eq!(body(&r), json!({"inputText": "a b", "temperature": 0.2}));
        assert!(build(&request(Task::TextToEmbeddings, "cohere.embed-v3", false)).is_err());
    }
}
