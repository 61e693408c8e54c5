//! Cohere v2 request bodies, in genai-bench's `CohereUser` order.

use serde_json::{Map, Value, json};

use crate::model::{HttpRequest, Log, Request, StreamBody, Task};
use plugin_kit::params;

/// Params the plugin consumes or that Cohere does not take.
const NOT_SENT: [&str; 4] = ["stream", "ignore_eos", "min_tokens", "custom_messages"];

/// Checks `--additional-request-params`.
pub fn check_params(p: &Map<String, Value>, log: &mut dyn Log) -> Result<(), String> {
    params::check_common(p, log)?;
    params::refuse_prompt_format(p, "Cohere takes chat messages")?;
    if let Some(t) = p.get("input_type")
        && !t.is_string()
    {
        return Err(format!(
            "input_type must be a string such as \"search_document\", got {t}"
        ));
    }
    Ok(())
}

/// Builds the HTTP request for one benchmark request.
pub fn build(request: &Request) -> Result<HttpRequest, String> {
    let p = params::parse(&request.params_json)?;
    check_params(&p, &mut crate::model::NoLog)?;
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    let (path, streams) = match request.task {
        Task::TextToText => {
            let messages = match p.get("custom_messages") {
                Some(m) => m.clone(),
                None => json!([{"role": "user", "content": request.prompt}]),
            };
            body.insert("messages".into(), messages);
            body.insert("stream".into(), json!(request.stream));
            if let Some(n) = request.max_tokens {
                body.insert("max_tokens".into(), json!(n));
            }
            ("/v2/chat", request.stream)
        }
        Task::TextToEmbeddings => {
            body.insert("texts".into(), json!(request.documents));
            body.insert("input_type".into(), json!("CLUSTERING"));
            body.insert("embedding_types".into(), json!(["float"]));
            body.insert("truncate".into(), json!("END"));
            ("/v2/embed", false)
        }
        Task::ImageToEmbeddings => {
            body.insert("images".into(), json!(request.image_urls));
            body.insert("input_type".into(), json!("IMAGE"));
            body.insert("embedding_types".into(), json!(["float"]));
            body.insert("truncate".into(), json!("END"));
            ("/v2/embed", false)
        }
        t => return Err(format!("Cohere has no {t:?} endpoint here")),
    };
    for (k, v) in &p {
        if !NOT_SENT.contains(&k.as_str()) && !v.is_null() {
            body.insert(k.clone(), v.clone());
        }
    }
    let body = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| format!("cannot encode the body: {e}"))?;
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if streams {
        headers.push(("Accept".to_owned(), "text/event-stream".to_owned()));
    }
    Ok(HttpRequest {
        method: "POST".to_owned(),
        path: path.to_owned(),
        headers,
        body,
        stream_body: StreamBody::Sniff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(task: Task, params: &str) -> Request {
        Request {
            task,
            model: "command-r".into(),
            prompt: "Hello there".into(),
            messages: Vec::new(),
            image_urls: vec!["data:image/jpeg;base64,AAAA".into()],
            documents: vec!["a".into(), "b".into()],
            query: String::new(),
            image_output: None,
            max_tokens: Some(5),
            stream: true,
            params_json: params.into(),
            backend: "cohere".into(),
            backend_options: Vec::new(),
        }
    }

    fn body(r: &Request) -> Value {
        serde_json::from_slice(&build(r).unwrap().body).unwrap()
    }

    #[test]
    fn bodies_follow_genai_bench_with_the_output_length() {
        let r = request(
            Task::TextToText,
            r#"{"ignore_eos": true, "temperature": 0.3}"#,
        );
        assert_eq!(build(&r).unwrap().path, "/v2/chat");
        assert_eq!(
            body(&r),
            json!({"model": "command-r", "messages": [{"role": "user", "content": "Hello there"}],
                   "stream": true, "max_tokens": 5, "temperature": 0.3})
        );
        let r = request(Task::TextToEmbeddings, "{}");
        assert_eq!(build(&r).unwrap().path, "/v2/embed");
        assert_eq!(
            body(&r),
            json!({"model": "command-r", "texts": ["a", "b"], "input_type": "CLUSTERING",
                   "embedding_types": ["float"], "truncate": "END"})
        );
        let r = request(Task::ImageToEmbeddings, r#"{"input_type": "image"}"#);
        let b = body(&r);
        assert_eq!(b["images"], json!(["data:image/jpeg;base64,AAAA"]));
        assert_eq!(b["input_type"], "image");
        assert!(build(&request(Task::TextToSpeech, "{}")).is_err());
    }
}
