//! Every response shape the Baseten plugin handles, parsed through the real
//! runtime, fed whole, split at every byte boundary and byte by byte: the
//! events must be identical however the body is split.

use genai_bench::plugin::{Event, Task, Usage};

use crate::common::{baseten, head, parse_chunks};

fn content(s: &str) -> Event {
    Event::Content(s.into())
}

fn usage(p: u64, c: u64) -> Event {
    Event::Usage(Usage {
        prompt_tokens: Some(p),
        completion_tokens: Some(c),
        reasoning_tokens: None,
    })
}

/// Parse `body` whole, at every split point, and one byte at a time; all
/// must give `expected`.
async fn check_all_splits(
    ct: &str,
    task: Task,
    stream: bool,
    status: u16,
    body: &[u8],
    expected: &[Event],
) {
    let plugin = baseten();
    let h = head(status, ct, task, stream);
    let whole = parse_chunks(&plugin, &h, &[body])
        .await
        .expect("parse whole");
    assert_eq!(whole, expected, "whole body");
    for k in 1..body.len() {
        let split = parse_chunks(&plugin, &h, &[&body[..k], &body[k..]])
            .await
            .expect("parse split");
        assert_eq!(split, expected, "split at byte {k}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    let one_by_one = parse_chunks(&plugin, &h, &bytes)
        .await
        .expect("parse bytes");
    assert_eq!(one_by_one, expected, "byte by byte");
}

const SSE: &str = "text/event-stream";

#[tokio::test]
async fn openai_sse_with_role_chunk_usage_and_done() {
    let _machine = crate::common::shared_machine().await;
    let body = concat!(
        "data: {\"id\":\"1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "data: {\"id\":\"1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo é\"}}]}\n\n",
        "data: {\"id\":\"1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":null},\"finish_reason\":\"length\"}]}\n\n",
        "data: {\"id\":\"1\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":2,\"total_tokens\":10}}\n\n",
        "data: [DONE]\n\n"
    );
    check_all_splits(
        SSE,
        Task::TextToText,
        true,
        200,
        body.as_bytes(),
        &[content("Hel"), content("lo é"), usage(8, 2), Event::End],
    )
    .await;
}

#[tokio::test]
async fn sse_without_space_comments_keepalives_and_crlf() {
    let _machine = crate::common::shared_machine().await;
    let body = concat!(
        ": keep-alive\r\n\r\n",
        "event: message\r\n",
        "data:{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n",
        ":\r\n\r\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\r\n\r\n",
        "data:[DONE]\r\n\r\n"
    );
    check_all_splits(
        SSE,
        Task::TextToText,
        true,
        200,
        body.as_bytes(),
        &[content("a"), content("b"), usage(3, 2), Event::End],
    )
    .await;
}

#[tokio::test]
async fn reasoning_content_and_reasoning_fields() {
    let _machine = crate::common::shared_machine().await;
    let body = concat!(
        "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"Thinking...\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"reasoning\":\"more\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"The sky is blue\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9,\"completion_tokens_details\":{\"reasoning_tokens\":4}}}\n\n",
        "data: [DONE]\n\n"
    );
    check_all_splits(
        SSE,
        Task::TextToText,
        true,
        200,
        body.as_bytes(),
        &[
            Event::Reasoning("Thinking...".into()),
            Event::Reasoning("more".into()),
            content("The sky is blue"),
            Event::Usage(Usage {
                prompt_tokens: Some(5),
                completion_tokens: Some(9),
                reasoning_tokens: Some(4),
            }),
            Event::End,
        ],
    )
    .await;
}

#[tokio::test]
async fn error_object_inside_a_200_stream() {
    let _machine = crate::common::shared_machine().await;
    let body = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n",
        "data: {\"error\":{\"code\":429,\"message\":\"rate limited\"}}\n\n"
    );
    check_all_splits(
        SSE,
        Task::TextToText,
        true,
        200,
        body.as_bytes(),
        &[
            content("x"),
            Event::Error {
                code: Some(429),
                message: "rate limited".into(),
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn last_sse_line_without_newline_is_flushed_at_finish() {
    let _machine = crate::common::shared_machine().await;
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"tail\"}}]}";
    check_all_splits(
        SSE,
        Task::TextToText,
        true,
        200,
        body.as_bytes(),
        &[content("tail")],
    )
    .await;
}

/// Adjacent content events merged.
fn merged(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for e in events {
        match (out.last_mut(), e) {
            (Some(Event::Content(a)), Event::Content(b)) => a.push_str(&b),
            (_, e) => out.push(e),
        }
    }
    out
}

#[tokio::test]
async fn plain_text_streaming_is_emitted_as_it_arrives() {
    let _machine = crate::common::shared_machine().await;
    // Bare tokens without newlines: each chunk's text is an event of its own,
    // so the first token is timed when it arrives, not at the end.
    let plugin = baseten();
    let h = head(200, "text/plain", Task::TextToText, true);
    let chunks: [&[u8]; 4] = [b"tok1", b" tok2", b" tok\xc3", b"\xa9"];
    let events = parse_chunks(&plugin, &h, &chunks).await.unwrap();
    assert_eq!(
        events,
        vec![
            content("tok1"),
            content(" tok2"),
            content(" tok"),
            content("\u{e9}"),
            // The body ended cleanly: a complete plain-text answer.
            Event::End
        ]
    );
    // However the body is split, the text is the same.
    let body = "First line\nsecond line\n\nlast \u{e9}".as_bytes();
    let expected = vec![
        content("First line\nsecond line\n\nlast \u{e9}"),
        Event::End,
    ];
    for k in 0..=body.len() {
        let ev = parse_chunks(&plugin, &h, &[&body[..k], &body[k..]])
            .await
            .unwrap();
        assert_eq!(merged(ev), expected, "split at {k}");
    }
}

#[tokio::test]
async fn non_streaming_openai_json() {
    let _machine = crate::common::shared_machine().await;
    let body = r#"{"choices":[{"message":{"content":"This is the generated response"}}],"usage":{"prompt_tokens":10,"completion_tokens":50,"total_tokens":60}}"#;
    check_all_splits(
        "application/json",
        Task::TextToText,
        false,
        200,
        body.as_bytes(),
        &[
            content("This is the generated response"),
            usage(10, 50),
            Event::End,
        ],
    )
    .await;
}

#[tokio::test]
async fn non_streaming_plain_text_body() {
    let _machine = crate::common::shared_machine().await;
    check_all_splits(
        "text/plain",
        Task::TextToText,
        false,
        200,
        b"This is a plain text response",
        &[content("This is a plain text response"), Event::End],
    )
    .await;
}

#[tokio::test]
async fn json_bodies_with_alternative_fields() {
    let _machine = crate::common::shared_machine().await;
    for field in ["text", "output", "response", "generated_text"] {
        let body = format!("{{\"{field}\": \"Response from {field} field\"}}");
        check_all_splits(
            "application/json",
            Task::TextToText,
            false,
            200,
            body.as_bytes(),
            &[content(&format!("Response from {field} field")), Event::End],
        )
        .await;
    }
}

#[tokio::test]
async fn streaming_request_answered_with_whole_json() {
    let _machine = crate::common::shared_machine().await;
    let body = r#"{"output": "not streamed after all"}"#;
    check_all_splits(
        "application/json",
        Task::TextToText,
        true,
        200,
        body.as_bytes(),
        &[content("not streamed after all"), Event::End],
    )
    .await;
}

#[tokio::test]
async fn http_error_body_becomes_an_error_event() {
    let _machine = crate::common::shared_machine().await;
    let body = r#"{"error": {"message": "Invalid API key", "code": 401}}"#;
    let events = parse_chunks(
        &baseten(),
        &head(401, "application/json", Task::TextToText, true),
        &[body.as_bytes()],
    )
    .await
    .unwrap();
    assert_eq!(
        events,
        vec![Event::Error {
            code: Some(401),
            message: "Invalid API key".into()
        }]
    );
}

#[tokio::test]
async fn embeddings_response_gives_usage() {
    let _machine = crate::common::shared_machine().await;
    let body = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"m","usage":{"prompt_tokens":12,"total_tokens":12}}"#;
    let events = parse_chunks(
        &baseten(),
        &head(200, "application/json", Task::TextToEmbeddings, false),
        &[body.as_bytes()],
    )
    .await
    .unwrap();
    assert_eq!(
        events,
        vec![
            Event::Usage(Usage {
                prompt_tokens: Some(12),
                completion_tokens: None,
                reasoning_tokens: None
            }),
            Event::End
        ]
    );
}

#[tokio::test]
async fn malformed_json_in_a_stream_is_a_parse_error() {
    let _machine = crate::common::shared_machine().await;
    let body = "data: {\"choices\": [\n\n";
    let err = parse_chunks(
        &baseten(),
        &head(200, SSE, Task::TextToText, true),
        &[body.as_bytes()],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("malformed JSON"), "{err}");
    assert!(err.to_string().contains("baseten"), "{err}");
}

#[tokio::test]
async fn empty_non_streaming_body_is_an_error() {
    let _machine = crate::common::shared_machine().await;
    let err = parse_chunks(
        &baseten(),
        &head(200, "application/json", Task::TextToText, false),
        &[b"  "],
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}
