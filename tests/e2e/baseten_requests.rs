//! Request payloads of the Baseten plugin, built through the real runtime and
//! compared as JSON with the spec's examples.

use genai_bench::plugin::{BenchRequest, Message, OutboundRequest, Task};
use serde_json::{Value, json};

use crate::common::{baseten, chat_request};

async fn build(req: &BenchRequest) -> OutboundRequest {
    let mut inst = baseten().instantiate(1).await.expect("instantiate");
    inst.build_request(req).await.expect("build-request")
}

async fn body(req: &BenchRequest) -> Value {
    let out = build(req).await;
    serde_json::from_slice(&out.body).expect("body is JSON")
}

#[tokio::test]
async fn chat_streaming_payload_matches_the_spec() {
    let _machine = crate::common::shared_machine().await;
    let req = chat_request("Hello, world!", Some(100), true, r#"{"temperature": 0.7}"#);
    let out = build(&req).await;
    assert_eq!(out.method, reqwest::Method::POST);
    assert_eq!(out.path, "", "Baseten posts to --api-base as given");
    assert!(
        out.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v == "application/json")
    );
    let b: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        b,
        json!({
            "model": "test-model",
            "messages": [{"role": "user", "content": "Hello, world!"}],
            "max_tokens": 100,
            "temperature": 0.7,
            "ignore_eos": true,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[tokio::test]
async fn chat_non_streaming_has_no_stream_options() {
    let _machine = crate::common::shared_machine().await;
    let req = chat_request("Hi", Some(50), false, r#"{"temperature": 0.7}"#);
    assert_eq!(
        body(&req).await,
        json!({
            "model": "test-model",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 50,
            "temperature": 0.7,
            "ignore_eos": true,
            "stream": false
        })
    );
}

#[tokio::test]
async fn prompt_format_payload_matches_the_spec() {
    let _machine = crate::common::shared_machine().await;
    let req = chat_request(
        "Hello, world!",
        Some(100),
        true,
        r#"{"use_prompt_format": true, "temperature": 0.7}"#,
    );
    assert_eq!(
        body(&req).await,
        json!({"prompt": "Hello, world!", "max_tokens": 100, "temperature": 0.7, "stream": true})
    );
    let req = chat_request(
        "Hello",
        Some(10),
        false,
        r#"{"use_prompt_format": true, "temperature": 0.7}"#,
    );
    assert_eq!(
        body(&req).await,
        json!({"prompt": "Hello", "max_tokens": 10, "temperature": 0.7, "stream": false})
    );
}

#[tokio::test]
async fn image_request_uses_content_parts() {
    let _machine = crate::common::shared_machine().await;
    let mut req = chat_request(
        "Describe this image",
        Some(100),
        true,
        r#"{"temperature": 0.7}"#,
    );
    req.task = Task::ImageTextToText;
    req.model = "vision-model".into();
    req.image_urls = vec![
        "data:image/jpeg;base64,base64_image_data".into(),
        "data:image/png;base64,AAAA".into(),
    ];
    assert_eq!(
        body(&req).await,
        json!({
            "model": "vision-model",
            "messages": [{
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this image"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,base64_image_data"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]
            }],
            "max_tokens": 100,
            "temperature": 0.7,
            "ignore_eos": true,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[tokio::test]
async fn image_request_with_prompt_format_is_refused() {
    let _machine = crate::common::shared_machine().await;
    let mut req = chat_request("x", Some(1), true, r#"{"use_prompt_format": true}"#);
    req.task = Task::ImageTextToText;
    req.image_urls = vec!["data:image/png;base64,AAAA".into()];
    let mut inst = baseten().instantiate(1).await.unwrap();
    let err = inst.build_request(&req).await.unwrap_err();
    assert!(err.to_string().contains("baseten"), "{err}");
}

#[tokio::test]
async fn custom_messages_are_sent_as_given() {
    let _machine = crate::common::shared_machine().await;
    let params = r#"{"custom_messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}], "temperature": 0.5}"#;
    let req = chat_request("ignored prompt", Some(20), true, params);
    let b = body(&req).await;
    assert_eq!(
        b["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}])
    );
    assert!(
        b.get("custom_messages").is_none(),
        "custom_messages must not be forwarded: {b}"
    );
}

#[tokio::test]
async fn conversation_messages_from_the_host_are_used() {
    let _machine = crate::common::shared_machine().await;
    let mut req = chat_request("ignored", Some(5), false, "{}");
    req.messages = vec![
        Message {
            role: "system".into(),
            content: "sys".into(),
        },
        Message {
            role: "user".into(),
            content: "hi".into(),
        },
    ];
    let b = body(&req).await;
    assert_eq!(
        b["messages"],
        json!([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}])
    );
}

#[tokio::test]
async fn stream_and_use_prompt_format_are_never_forwarded() {
    let _machine = crate::common::shared_machine().await;
    // A user's "stream": false must not override the host's streaming choice.
    let req = chat_request(
        "x",
        Some(8),
        true,
        r#"{"stream": false, "top_p": 0.9, "temperature": 0.7}"#,
    );
    let b = body(&req).await;
    assert_eq!(b["stream"], json!(true));
    assert_eq!(b["top_p"], json!(0.9));
    assert_eq!(b["stream_options"], json!({"include_usage": true}));

    let req = chat_request(
        "x",
        Some(8),
        false,
        r#"{"stream": true, "use_prompt_format": true, "top_k": 5}"#,
    );
    let b = body(&req).await;
    assert_eq!(b["stream"], json!(false));
    assert_eq!(b["top_k"], json!(5));
    assert!(b.get("use_prompt_format").is_none(), "{b}");
    assert!(b.get("stream_options").is_none(), "{b}");
}

#[tokio::test]
async fn params_override_defaults_and_pass_through() {
    let _machine = crate::common::shared_machine().await;
    let req = chat_request(
        "x",
        Some(100),
        true,
        r#"{"max_tokens": 7, "ignore_eos": false, "min_tokens": 7, "stream_options": {"include_usage": false}, "seed": 3}"#,
    );
    let b = body(&req).await;
    assert_eq!(b["max_tokens"], json!(7));
    assert_eq!(b["ignore_eos"], json!(false));
    assert_eq!(b["min_tokens"], json!(7));
    assert_eq!(b["seed"], json!(3));
    // Usage in the stream is what makes output token counts exact.
    assert_eq!(b["stream_options"], json!({"include_usage": true}));
    assert_eq!(b["temperature"], json!(0.0));
}

#[tokio::test]
async fn no_max_tokens_means_null_and_no_ignore_eos() {
    let _machine = crate::common::shared_machine().await;
    let req = chat_request("x", None, false, "{}");
    let b = body(&req).await;
    assert_eq!(b["max_tokens"], Value::Null);
    assert_eq!(b["ignore_eos"], json!(false));
}

#[tokio::test]
async fn embeddings_payload_goes_to_the_same_url() {
    let _machine = crate::common::shared_machine().await;
    let mut req = chat_request("", None, false, "{}");
    req.task = Task::TextToEmbeddings;
    req.documents = vec!["first doc".into(), "second doc".into()];
    let out = build(&req).await;
    assert_eq!(out.path, "");
    let b: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        b,
        json!({"model": "test-model", "input": ["first doc", "second doc"], "encoding_format": "float"})
    );
}

#[tokio::test]
async fn bad_params_are_refused_with_a_message() {
    let _machine = crate::common::shared_machine().await;
    let mut inst = baseten().instantiate(1).await.unwrap();
    for (params, needle) in [
        ("[1, 2]", "object"),
        (r#"{"use_prompt_format": "yes"}"#, "use_prompt_format"),
        (r#"{"temperature": "hot"}"#, "temperature"),
        (r#"{"temperature": -1}"#, "temperature"),
        (r#"{"max_tokens": 0}"#, "max_tokens"),
        (r#"{"custom_messages": "hi"}"#, "custom_messages"),
        (
            r#"{"custom_messages": [{"role": "user", "content": "x"}], "use_prompt_format": true}"#,
            "custom_messages",
        ),
    ] {
        let r = inst.validate_params(params).await.expect("call succeeds");
        let msg = r.expect_err(params);
        assert!(msg.contains(needle), "{params}: {msg}");
    }
    for ok in [
        "{}",
        r#"{"temperature": 0.7}"#,
        r#"{"use_prompt_format": true, "temperature": 0.7}"#,
        r#"{"stream": false, "top_p": 0.5, "max_tokens": null}"#,
    ] {
        inst.validate_params(ok)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{ok} refused: {e}"));
    }
}
