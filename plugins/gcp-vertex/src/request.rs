//! Vertex AI request bodies, in genai-bench's `GCPVertexUser` shapes.

use serde_json::{Map, Value, json};

use crate::model::{HttpRequest, Log, NoLog, Request, StreamBody, Task};
use plugin_kit::params;

/// Params Vertex refuses as unknown fields, or that the host controls.
const NOT_SENT: [&str; 4] = ["ignore_eos", "min_tokens", "stream", "custom_messages"];

/// Params that belong in `generationConfig` (genai-bench's mapping).
const GENERATION: [(&str, &str); 3] = [
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("top_k", "topK"),
];

/// Checks `--additional-request-params`.
pub fn check_params(p: &Map<String, Value>, log: &mut dyn Log) -> Result<(), String> {
    params::check_common(p, log)?;
    params::refuse_prompt_format(p, "Vertex takes contents and parts")?;
    Ok(())
}

/// Builds the HTTP request for one benchmark request.
pub fn build(request: &Request) -> Result<HttpRequest, String> {
    let p = params::parse(&request.params_json)?;
    check_params(&p, &mut NoLog)?;
    let project = request.option("gcp-project-id").ok_or(
        "Vertex needs a project: --gcp-project-id, GCP_PROJECT_ID, or a project_id in the \
         service account file",
    )?;
    let location = request.option("gcp-location").unwrap_or("us-central1");
    let model_path = format!(
        "/v1/projects/{}/locations/{}/publishers/google/models/{}",
        params::path_segment(project, b"@"),
        params::path_segment(location, b"@"),
        params::path_segment(&request.model, b"@")
    );
    let mut body = Map::new();
    let (path, streams) = match request.task {
        Task::TextToText | Task::ImageTextToText => {
            let mut parts = vec![json!({"text": request.prompt})];
            for url in &request.image_urls {
                let (media, data) = url
                    .strip_prefix("data:")
                    .and_then(|r| r.split_once(','))
                    .and_then(|(m, d)| m.strip_suffix(";base64").map(|m| (m, d)))
                    .ok_or("Vertex takes images inline: a base64 data: URL is needed")?;
                parts.push(json!({"inlineData": {"mimeType": media, "data": data}}));
            }
            body.insert("contents".into(), json!([{"parts": parts}]));
            let mut config = Map::new();
            if let Some(n) = request.max_tokens {
                config.insert("maxOutputTokens".into(), json!(n));
            }
            for (ours, theirs) in GENERATION {
                if let Some(v) = p.get(ours) {
                    config.insert(theirs.into(), v.clone());
                }
            }
            body.insert("generationConfig".into(), Value::Object(config));
            if request.stream {
                (format!("{model_path}:streamGenerateContent?alt=sse"), true)
            } else {
                (format!("{model_path}:generateContent"), false)
            }
        }
        Task::TextToEmbeddings => {
            let instances: Vec<Value> = request
                .documents
                .iter()
                .map(|d| json!({"content": d}))
                .collect();
            body.insert("instances".into(), Value::Array(instances));
            (format!("{model_path}:predict"), false)
        }
        t => return Err(format!("Vertex has no {t:?} request here")),
    };
    for (k, v) in &p {
        let generation = GENERATION.iter().any(|(ours, _)| ours == k);
        let embedding = request.task == Task::TextToEmbeddings;
        if NOT_SENT.contains(&k.as_str()) || v.is_null() || (generation && !embedding) {
            continue;
        }
        if embedding {
            // Embedding parameters go in `parameters` (genai-bench).
            body.entry("parameters")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("an object")
                .insert(k.clone(), v.clone());
        } else {
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
        path,
        headers,
        body,
        stream_body: StreamBody::Sniff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(task: Task, stream: bool) -> Request {
        Request {
            task,
            model: "gemini-2.0-flash".into(),
            prompt: "Hello there".into(),
            messages: Vec::new(),
            image_urls: Vec::new(),
            documents: vec!["a".into(), "b".into()],
            query: String::new(),
            image_output: None,
            max_tokens: Some(5),
            stream,
            params_json: r#"{"ignore_eos": true, "temperature": 0.2, "safetySettings": []}"#.into(),
            backend: "gcp-vertex".into(),
            backend_options: vec![
                ("gcp-project-id".into(), "proj".into()),
                ("gcp-location".into(), "europe-west4".into()),
            ],
        }
    }

    fn body(r: &Request) -> Value {
        serde_json::from_slice(&build(r).unwrap().body).unwrap()
    }

    #[test]
    fn gemini_and_embedding_requests() {
        let r = request(Task::TextToText, true);
        assert_eq!(
            build(&r).unwrap().path,
            "/v1/projects/proj/locations/europe-west4/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            body(&r),
            json!({"contents": [{"parts": [{"text": "Hello there"}]}],
                   "generationConfig": {"maxOutputTokens": 5, "temperature": 0.2},
                   "safetySettings": []})
        );
        let r = request(Task::TextToText, false);
        assert!(build(&r).unwrap().path.ends_with(":generateContent"));
        let mut r = request(Task::ImageTextToText, true);
        r.image_urls = vec!["data:image/jpeg;base64,AAAA".into()];
        assert_eq!(
            body(&r)["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/jpeg", "data": "AAAA"}})
        );
        let r = request(Task::TextToEmbeddings, false);
        assert!(build(&r).unwrap().path.ends_with(":predict"));
        assert_eq!(
            body(&r),
            json!({"instances": [{"content": "a"}, {"content": "b"}],
                   "parameters": {"temperature": 0.2, "safetySettings": []}})
        );
        let mut r = request(Task::TextToText, true);
        r.backend_options.clear();
        assert!(build(&r).unwrap_err().contains("needs a project"));
    }
}
