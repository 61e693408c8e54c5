use serde_json::json;

use super::*;

fn request(task: Task, stream: bool, params: &str, backend: &str) -> Request {
    Request {
        task,
        model: "m".into(),
        prompt: "Hello".into(),
        messages: Vec::new(),
        image_urls: Vec::new(),
        documents: Vec::new(),
        query: String::new(),
        image_output: None,
        max_tokens: Some(100),
        stream,
        params_json: params.to_owned(),
        backend: backend.to_owned(),
        backend_options: Vec::new(),
    }
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&build(r).unwrap().body).unwrap()
}

/// Top-level keys in the order sent (the body is built in order; a
/// `preserve_order`-free serde_json map would sort them).
fn keys(r: &Request) -> Vec<String> {
    let text = String::from_utf8(build(r).unwrap().body).unwrap();
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(&text);
    struct Keys<'o>(&'o mut Vec<String>);
    impl<'de> serde::de::Visitor<'de> for Keys<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(k) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                self.0.push(k);
            }
            Ok(())
        }
    }
    serde::Deserializer::deserialize_map(&mut de, Keys(&mut out)).unwrap();
    out
}

#[test]
fn chat_streaming_vllm() {
    let r = request(Task::TextToText, true, "{}", "vllm");
    let http = build(&r).unwrap();
    assert_eq!(http.method, "POST");
    assert_eq!(http.path, "/v1/chat/completions");
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
               "max_tokens": 100, "temperature": 0.0, "stream": true, "ignore_eos": true,
               "stream_options": {"include_usage": true}})
    );
    assert_eq!(
        keys(&r),
        [
            "model",
            "messages",
            "max_tokens",
            "temperature",
            "stream",
            "ignore_eos",
            "stream_options"
        ]
    );
}

#[test]
fn ignore_eos_rules_per_backend() {
    // The sampler's params for an output-controlled scenario.
    let sampled = r#"{"min_tokens": 100, "ignore_eos": true}"#;
    for backend in ["vllm", "sglang", "SGLang"] {
        let b = body(&request(Task::TextToText, true, sampled, backend));
        assert_eq!(b["ignore_eos"], json!(true), "{backend}");
        assert_eq!(b["min_tokens"], json!(100), "{backend}");
        // A user's explicit value wins over the default.
        let b = body(&request(
            Task::TextToText,
            true,
            r#"{"ignore_eos": false}"#,
            backend,
        ));
        assert_eq!(b["ignore_eos"], json!(false), "{backend}");
        // No output length: the default is false.
        let mut r = request(Task::TextToText, false, "{}", backend);
        r.max_tokens = None;
        assert_eq!(body(&r)["ignore_eos"], json!(false), "{backend}");
    }
    for backend in ["openai", "", "other"] {
        let b = body(&request(Task::TextToText, true, sampled, backend));
        assert!(b.get("ignore_eos").is_none(), "{backend}: {b}");
        // min_tokens is sent to every backend, as genai-bench does.
        assert_eq!(b["min_tokens"], json!(100), "{backend}");
    }
}

#[test]
fn chat_non_streaming_with_params() {
    let mut r = request(
        Task::TextToText,
        false,
        r#"{"temperature": 0.7, "top_p": 0.9, "stream": true, "max_tokens": 7,
            "stream_options": {"x": 1}, "min_tokens": 3}"#,
        "openai",
    );
    r.max_tokens = None;
    let http = build(&r).unwrap();
    assert_eq!(http.headers.len(), 1);
    assert_eq!(
        body(&r),
        json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}],
               "max_tokens": 7, "temperature": 0.7, "stream": false,
               "top_p": 0.9, "stream_options": {"x": 1}, "min_tokens": 3})
    );
    assert_eq!(
        &keys(&r)[..5],
        ["model", "messages", "max_tokens", "temperature", "stream"]
    );
}

#[test]
fn stream_options_override_user_value() {
    let r = request(
        Task::TextToText,
        true,
        r#"{"stream_options": {"x": 1}}"#,
        "openai",
    );
    assert_eq!(body(&r)["stream_options"], json!({"include_usage": true}));
}

#[test]
fn system_message() {
    let r = request(
        Task::TextToText,
        true,
        r#"{"system_message": "Be brief."}"#,
        "openai",
    );
    let b = body(&r);
    assert_eq!(
        b["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    );
    assert!(b.get("system_message").is_none());

    let mut r = request(
        Task::ImageTextToText,
        true,
        r#"{"system_message": "Describe."}"#,
        "vllm",
    );
    r.image_urls = vec!["data:image/png;base64,AA".into()];
    assert_eq!(
        body(&r)["messages"],
        json!([{"role": "system", "content": "Describe."},
               {"role": "user", "content": [
                   {"type": "text", "text": "Hello"},
                   {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}])
    );

    // A conversation that has its own system message keeps it alone.
    let mut r = request(
        Task::TextToText,
        false,
        r#"{"system_message": "ignored"}"#,
        "openai",
    );
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
    r.messages.remove(0);
    assert_eq!(
        body(&r)["messages"],
        json!([{"role": "system", "content": "ignored"}, {"role": "user", "content": "u"}])
    );
}

#[test]
fn images_and_custom_messages() {
    let mut r = request(Task::ImageTextToText, true, "{}", "sglang");
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
    let r = request(
        Task::TextToText,
        false,
        r#"{"custom_messages": [{"role": "user", "content": "x"}]}"#,
        "openai",
    );
    let b = body(&r);
    assert_eq!(b["messages"], json!([{"role": "user", "content": "x"}]));
    assert!(b.get("custom_messages").is_none());
}

#[test]
fn embeddings() {
    let mut r = request(
        Task::TextToEmbeddings,
        true,
        r#"{"dimensions": 8, "stream": true}"#,
        "vllm",
    );
    r.documents = vec!["a".into(), "b".into()];
    let http = build(&r).unwrap();
    assert_eq!(http.path, "/v1/embeddings");
    assert_eq!(http.headers.len(), 1);
    assert_eq!(
        body(&r),
        json!({"model": "m", "input": ["a", "b"], "encoding_format": "float", "dimensions": 8})
    );
    let r = request(
        Task::TextToEmbeddings,
        false,
        r#"{"encoding_format": "base64"}"#,
        "openai",
    );
    assert_eq!(body(&r)["encoding_format"], json!("base64"));
}

#[test]
fn bad_params_are_errors_not_panics() {
    for params in [
        "[]",
        "nope",
        r#"{"use_prompt_format": true}"#,
        r#"{"temperature": -2}"#,
        r#"{"system_message": []}"#,
    ] {
        assert!(build(&request(Task::TextToText, true, params, "openai")).is_err());
    }
}

#[test]
fn escapes_text() {
    let mut r = request(Task::TextToText, false, "{}", "openai");
    r.prompt = "quote \" newline \n tab \t é \u{1}".into();
    assert_eq!(body(&r)["messages"][0]["content"], json!(r.prompt));
}

#[test]
fn rerank_image_and_speech_bodies_follow_genai_bench() {
    let mut r = request(Task::TextToRerank, false, r#"{"top_n": 2}"#, "vllm");
    r.query = "which?".into();
    r.documents = vec!["a".into(), "b".into()];
    let h = build(&r).unwrap();
    assert_eq!(h.path, RERANK_PATH);
    assert_eq!(
        body(&r),
        json!({"model": "m", "query": "which?", "documents": ["a", "b"], "top_n": 2})
    );

    let mut r = request(
        Task::TextToImage,
        false,
        r#"{"quality": "hd", "n": 9, "style": "vivid"}"#,
        "openai",
    );
    r.image_output = Some((1024, 512, 2));
    assert_eq!(build(&r).unwrap().path, IMAGES_PATH);
    let b = body(&r);
    assert_eq!(
        b,
        json!({"model": "m", "prompt": "Hello", "n": 2, "style": "vivid", "size": "1024x512", "quality": "hd"})
    );
    assert_eq!(
        keys(&r),
        ["model", "prompt", "n", "style", "size", "quality"]
    );

    let r = request(
        Task::TextToSpeech,
        true,
        r#"{"response_format": "wav"}"#,
        "openai",
    );
    assert_eq!(build(&r).unwrap().path, SPEECH_PATH);
    assert_eq!(
        body(&r),
        json!({"model": "m", "input": "Hello", "voice": "alloy", "response_format": "wav"})
    );
    let r = request(Task::TextToSpeech, true, r#"{"voice": "nova"}"#, "openai");
    assert_eq!(body(&r)["voice"], "nova");
}

#[test]
fn together_defaults_ignore_eos_as_vllm() {
    let r = request(Task::TextToText, true, "{}", "together");
    assert_eq!(body(&r)["ignore_eos"], true);
}

#[test]
fn azure_puts_the_deployment_in_the_path_and_no_model_in_the_body() {
    let mut r = request(
        Task::TextToText,
        true,
        r#"{"ignore_eos": true}"#,
        "azure-openai",
    );
    r.backend_options = vec![
        ("azure-deployment".into(), "gpt 4o".into()),
        ("azure-api-version".into(), "2024-06-01".into()),
    ];
    let h = build(&r).unwrap();
    assert_eq!(
        h.path,
        "/openai/deployments/gpt%204o/chat/completions?api-version=2024-06-01"
    );
    let b = body(&r);
    assert!(b.get("model").is_none(), "{b}");
    assert_eq!(b["ignore_eos"], true);
    assert_eq!(b["stream_options"]["include_usage"], true);
    // Without the option, the model names the deployment (genai-bench).
    let mut r = request(Task::TextToEmbeddings, false, "{}", "azure-openai");
    r.documents = vec!["a".into()];
    assert_eq!(
        build(&r).unwrap().path,
        "/openai/deployments/m/embeddings?api-version=2024-02-01"
    );
    assert_eq!(
        body(&r),
        json!({"input": ["a"], "encoding_format": "float"})
    );
    let r = request(Task::TextToSpeech, false, "{}", "azure-openai");
    assert!(build(&r).is_err());
}
