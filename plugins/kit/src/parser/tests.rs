use super::*;
use crate::model::NoLog;
use crate::model::StreamBody;

fn head(status: u16, task: Task, stream: bool, headers: &[(&str, &str)]) -> ResponseHead {
    ResponseHead {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        task,
        stream,
        stream_body: StreamBody::Sniff,
        dialect: crate::model::Dialect::OpenAi,
    }
}

fn stream_head() -> ResponseHead {
    head(200, Task::TextToText, true, &[])
}

fn plain_head() -> ResponseHead {
    head(200, Task::TextToText, false, &[])
}

/// Events and the error (if any) for `body` fed as `chunks`.
type Outcome = (Vec<Event>, Option<String>);

fn run_chunks(head: &ResponseHead, chunks: &[&[u8]]) -> Outcome {
    let mut parser = Parser::new(head, &mut NoLog);
    let mut events = Vec::new();
    for chunk in chunks {
        match parser.feed(chunk, &mut NoLog) {
            Ok(e) => events.extend(e),
            Err(e) => return (events, Some(e)),
        }
    }
    match parser.finish(&mut NoLog) {
        Ok(e) => events.extend(e),
        Err(e) => return (events, Some(e)),
    }
    (events, None)
}

/// Runs `body` whole, split at every byte boundary, and byte by byte; all
/// must agree. Returns the outcome.
fn run(head: &ResponseHead, body: &str) -> Outcome {
    let body = body.as_bytes();
    let whole = run_chunks(head, &[body]);
    for cut in 0..=body.len() {
        let (a, b) = body.split_at(cut);
        assert_eq!(run_chunks(head, &[a, b]), whole, "split at {cut}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(run_chunks(head, &bytes), whole, "byte by byte");
    whole
}

/// Adjacent content events merged: plain text is emitted as it arrives, so
/// only its concatenation is independent of where the body was split.
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

/// Like `run` for plain-text streams: every split gives the same text.
fn run_text(head: &ResponseHead, body: &str) -> Outcome {
    let b = body.as_bytes();
    let (whole, err) = run_chunks(head, &[b]);
    let whole = merged(whole);
    for cut in 0..=b.len() {
        let (x, y) = b.split_at(cut);
        let (ev, e) = run_chunks(head, &[x, y]);
        assert_eq!(
            (merged(ev), e),
            (whole.clone(), err.clone()),
            "split at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = b.chunks(1).collect();
    let (ev, e) = run_chunks(head, &bytes);
    assert_eq!(
        (merged(ev), e),
        (whole.clone(), err.clone()),
        "byte by byte"
    );
    (whole, err)
}

fn ok(head: &ResponseHead, body: &str) -> Vec<Event> {
    let (events, err) = run(head, body);
    assert_eq!(err, None, "events so far: {events:?}");
    events
}

fn content(s: &str) -> Event {
    Event::Content(s.to_owned())
}

fn reasoning(s: &str) -> Event {
    Event::Reasoning(s.to_owned())
}

fn usage(p: Option<u64>, c: Option<u64>, r: Option<u64>) -> Event {
    Event::Usage(Usage {
        prompt_tokens: p,
        completion_tokens: c,
        reasoning_tokens: r,
    })
}

fn error(code: Option<i32>, message: &str) -> Event {
    Event::Error(ApiError {
        code,
        message: message.to_owned(),
    })
}

const OPENAI_STREAM: &str = concat!(
    "data: {\"id\":\"1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\\n\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":null},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"1\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":2,\"total_tokens\":10}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn sse_openai_stream() {
    assert_eq!(
        ok(&stream_head(), OPENAI_STREAM),
        vec![
            content("Hel"),
            content("lo é\n"),
            usage(Some(8), Some(2), None),
            Event::End
        ]
    );
}

#[test]
fn sse_with_crlf_comments_and_fields() {
    let body = ": keep-alive\r\nevent: message\r\nid: 7\r\nretry: 100\r\n\r\ndata:{\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\ndata: [DONE]\r\n";
    assert_eq!(ok(&stream_head(), body), vec![content("a"), Event::End]);
}

#[test]
fn sse_by_content_type_header() {
    let h = head(
        200,
        Task::TextToText,
        true,
        &[("content-type", "text/event-stream; charset=utf-8")],
    );
    // `d` alone would be undecided without the header.
    assert_eq!(
        ok(&h, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}"),
        vec![content("x")]
    );
}

#[test]
fn sse_reasoning_content_usage_order() {
    let body = concat!(
        "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"think\"}}]}\n",
        "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"\",\"reasoning\":\"more\"}}]}\n",
        "data: {\"choices\":[{\"delta\":{\"reasoning\":\"r\",\"content\":\"c\"}}],",
        "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,",
        "\"completion_tokens_details\":{\"reasoning_tokens\":3}}}\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"z\",\"usage\":{\"completion_tokens\":4}}}]}\n",
    );
    assert_eq!(
        ok(&stream_head(), body),
        vec![
            reasoning("think"),
            reasoning("more"),
            reasoning("r"),
            content("c"),
            usage(Some(1), Some(2), Some(3)),
            content("z"),
            usage(None, Some(4), None),
        ]
    );
}

#[test]
fn sse_completions_text_and_message() {
    let body = concat!(
        "data: {\"choices\":[{\"text\":\"t\",\"index\":0}]}\n",
        "data: {\"choices\":[{\"message\":{\"content\":\"m\"}}]}\n",
    );
    assert_eq!(ok(&stream_head(), body), vec![content("t"), content("m")]);
}

#[test]
fn sse_error_event() {
    let body = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n",
        "data: {\"error\":{\"code\":429,\"message\":\"slow down\"}}\n",
        "data: {\"error\":{\"code\":\"503\",\"message\":\"busy\"}}\n",
        "data: {\"error\":{\"code\":\"overloaded\",\"type\":\"x\"}}\n",
        "data: {\"error\":\"plain\"}\n",
        "data: {\"error\":null,\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n",
    );
    assert_eq!(
        ok(&stream_head(), body),
        vec![
            content("a"),
            error(Some(429), "slow down"),
            error(Some(503), "busy"),
            error(None, r#"{"code":"overloaded","type":"x"}"#),
            error(None, "plain"),
            content("b"),
        ]
    );
}

#[test]
fn sse_plain_text_payloads_and_odd_json() {
    let body = concat!(
        "data: hello\n",
        "data:  world\n",
        "data:\n",
        "data: [1, 2]\n",
        "data: [not json\n",
        "data: {\"choices\":\"nope\",\"usage\":5}\n",
        "data: {\"choices\":[{\"delta\":{\"content\":7}}]}\n",
        "data: {\"choices\":[1]}\n",
        "data: {\"a\":1,\"a\":2,\"choices\":[{\"delta\":{\"content\":\"dup\"}}]}\n",
        "garbage line\n",
    );
    assert_eq!(
        ok(&stream_head(), body),
        vec![
            content("hello"),
            content(" world"),
            content("[not json"),
            content("dup")
        ]
    );
}

#[test]
fn sse_malformed_json_is_an_error_after_earlier_events() {
    let body = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n",
        "data: {\"choices\": [oops\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"never\"}}]}\n",
    );
    let (events, err) = run(&stream_head(), body);
    assert_eq!(events, vec![content("a")]);
    assert_eq!(
        err.as_deref(),
        Some("malformed JSON in event stream: {\"choices\": [oops")
    );
}

#[test]
fn sse_last_line_without_newline_and_split_utf8() {
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"日本\"}}]}\ndata: ü";
    assert_eq!(
        ok(&stream_head(), body),
        vec![content("日本"), content("ü")]
    );
}

#[test]
fn sse_invalid_utf8_is_lossy() {
    let mut body = b"data: {\"choices\":[{\"delta\":{\"content\":\"a".to_vec();
    body.push(0xff);
    body.extend_from_slice(b"b\"}}]}\ndata: x");
    body.push(0xfe);
    body.push(b'\n');
    let (events, err) = run_chunks(&stream_head(), &[&body]);
    assert_eq!(err, None);
    assert_eq!(events, vec![content("a\u{fffd}b"), content("x\u{fffd}")]);
}

#[test]
fn sse_detection_waits_for_prefix() {
    // `d`, `da`, ... could still be `data:`; the answer must not depend on
    // where the body was cut.
    assert_eq!(ok(&stream_head(), "  \n data: x\n"), vec![content("x")]);
    assert_eq!(ok(&stream_head(), "retry: 5\ndata: y"), vec![content("y")]);
    // A plain-text body is complete when it ends: `End` at the end.
    assert_eq!(
        run_text(&stream_head(), "dat"),
        (vec![content("dat"), Event::End], None)
    );
    assert_eq!(
        run_text(&stream_head(), "datum\nfoo"),
        (vec![content("datum\nfoo"), Event::End], None)
    );
}

#[test]
fn plain_text_stream() {
    let body = "Hello\n\n   \nworld\r\n tail é";
    assert_eq!(
        run_text(&stream_head(), body),
        (vec![content(body), Event::End], None)
    );
    assert_eq!(
        run_text(&stream_head(), "x\n  \n"),
        (vec![content("x\n  \n"), Event::End], None)
    );
    // Text is emitted per chunk, not held back until a newline.
    let (events, _) = run_chunks(&stream_head(), &[b"tok1", b" tok2", b" tok3"]);
    assert_eq!(
        events,
        vec![
            content("tok1"),
            content(" tok2"),
            content(" tok3"),
            Event::End
        ]
    );
    // A multi-byte character split across chunks is held back until whole.
    let (events, _) = run_chunks(&stream_head(), &[b"a\xc3", b"\xa9b"]);
    assert_eq!(events, vec![content("a"), content("\u{e9}b"), Event::End]);
}

#[test]
fn streaming_request_answered_with_json() {
    let body = " {\"choices\":[{\"message\":{\"content\":\"whole\",\"reasoning_content\":\"r\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n";
    assert_eq!(
        ok(&stream_head(), body),
        vec![
            reasoning("r"),
            content("whole"),
            usage(Some(3), Some(1), None),
            Event::End
        ]
    );
    let sse_header = head(
        200,
        Task::TextToText,
        true,
        &[("content-type", "text/event-stream")],
    );
    // The content type is trusted: a JSON body under an event-stream type
    // has no event in it, and no end (the host counts it incomplete).
    assert_eq!(ok(&sse_header, "{\"text\":\"t\"}"), vec![]);
}

#[test]
fn empty_bodies() {
    for h in [stream_head(), plain_head()] {
        for body in ["", " \r\n\t"] {
            let (events, err) = run(&h, body);
            assert!(events.is_empty());
            assert_eq!(err.as_deref(), Some("empty response body"));
        }
    }
    let sse_header = head(
        200,
        Task::TextToText,
        true,
        &[("content-type", "text/event-stream")],
    );
    assert_eq!(
        run(&sse_header, "").1.as_deref(),
        Some("empty response body")
    );
}

#[test]
fn whole_openai_response() {
    let body = r#"{"choices":[{"message":{"role":"assistant","content":"This is it","reasoning":"why"}}],
                  "usage":{"prompt_tokens":10,"completion_tokens":50,"total_tokens":60}}"#;
    assert_eq!(
        ok(&plain_head(), body),
        vec![
            reasoning("why"),
            content("This is it"),
            usage(Some(10), Some(50), None),
            Event::End
        ]
    );
    assert_eq!(
        ok(&plain_head(), r#"{"choices":[{"text":"completion"}]}"#),
        vec![content("completion"), Event::End]
    );
    // No content at all (e.g. only tool calls) is not an error.
    assert_eq!(
        ok(
            &plain_head(),
            r#"{"choices":[{"message":{"content":null}}]}"#
        ),
        vec![Event::End]
    );
    assert_eq!(ok(&plain_head(), r#"{"choices":[]}"#), vec![Event::End]);
}

#[test]
fn whole_alternative_fields() {
    for key in ["text", "output", "response", "generated_text"] {
        assert_eq!(
            ok(&plain_head(), &format!(r#"{{"{key}": "from {key}"}}"#)),
            vec![content(&format!("from {key}")), Event::End]
        );
    }
    assert_eq!(
        ok(
            &plain_head(),
            r#"{"text": "", "output": 5, "response": "r"}"#
        ),
        vec![content("r"), Event::End]
    );
    assert_eq!(ok(&plain_head(), r#"{"text": ""}"#), vec![Event::End]);
    assert_eq!(
        ok(&plain_head(), r#"[{"generated_text": "tgi"}]"#),
        vec![content("tgi"), Event::End]
    );
    assert_eq!(
        ok(&plain_head(), r#""just a string""#),
        vec![content("just a string"), Event::End]
    );
    assert_eq!(
        ok(
            &plain_head(),
            r#"{"output": "o", "usage": {"completion_tokens": 2}}"#
        ),
        vec![content("o"), usage(None, Some(2), None), Event::End]
    );
}

#[test]
fn whole_unknown_json_falls_back_to_its_text() {
    // A custom model (a Truss `predict` returning any dict) answers JSON
    // the parser has no field for: its text is the answer, as genai-bench
    // counts it, never a failed request.
    let body = r#"{"completion": "hi there", "usage": {"completion_tokens": 2}}"#;
    assert_eq!(
        run(&plain_head(), body),
        (
            vec![content(body), usage(None, Some(2), None), Event::End],
            None
        )
    );
    for body in [r#"{"foo": 1}"#, "[1, 2]", "42", "null", r#"[{"x": 1}]"#] {
        let (events, err) = run(&plain_head(), body);
        assert_eq!(err, None, "{body}");
        assert_eq!(events, vec![content(body), Event::End], "{body}");
    }
}

#[test]
fn whole_error_object() {
    assert_eq!(
        ok(
            &plain_head(),
            r#"{"error": {"code": 400, "message": "bad"}}"#
        ),
        vec![error(Some(400), "bad"), Event::End]
    );
}

#[test]
fn whole_plain_text() {
    assert_eq!(
        ok(&plain_head(), "  This is a plain text response\n"),
        vec![content("This is a plain text response"), Event::End]
    );
    assert_eq!(
        ok(&plain_head(), "{\"truncated\": "),
        vec![content("{\"truncated\":"), Event::End]
    );
    // A stream sent to a non-streaming request is taken as text, as specified.
    assert_eq!(
        ok(&plain_head(), "data: x\n"),
        vec![content("data: x"), Event::End]
    );
}

#[test]
fn embeddings() {
    let body = r#"{"object":"list","data":[{"embedding":[0.1,0.2,-3e-5],"index":0}],"usage":{"prompt_tokens":4,"total_tokens":4}}"#;
    for stream in [false, true] {
        let h = head(200, Task::TextToEmbeddings, stream, &[]);
        assert_eq!(ok(&h, body), vec![usage(Some(4), None, None), Event::End]);
    }
}

#[test]
fn http_errors() {
    let cases = [
        (
            r#"{"error": {"message": "model not found", "code": 404}}"#,
            "model not found",
        ),
        (r#"{"error": "Unauthorized"}"#, "Unauthorized"),
        (r#"{"detail": "Not Found"}"#, "Not Found"),
        (
            r#"{"detail": [{"loc": ["body"], "msg": "bad"}]}"#,
            r#"[{"loc":["body"],"msg":"bad"}]"#,
        ),
        (r#"{"message": "m"}"#, "m"),
        (r#"{"other": 1}"#, r#"{"other": 1}"#),
        ("  upstream connect error \n", "upstream connect error"),
        ("", "empty response body"),
        ("data: {\"x\": 1}\n\n", "data: {\"x\": 1}"),
    ];
    for (stream, status) in [(true, 401), (false, 503)] {
        for (body, message) in cases {
            let h = head(status, Task::TextToText, stream, &[]);
            assert_eq!(
                ok(&h, body),
                vec![error(Some(i32::from(status)), message)],
                "{body}"
            );
        }
    }
    let long = format!("  {}  ", "é".repeat(700));
    let events = ok(&head(500, Task::TextToText, false, &[]), &long);
    let Event::Error(e) = &events[0] else {
        panic!()
    };
    assert_eq!(e.message.chars().count(), 500);
}

#[test]
fn http_error_body_is_capped() {
    let mut parser = Parser::new(&head(500, Task::TextToText, true, &[]), &mut NoLog);
    let chunk = vec![b'x'; 1 << 19];
    for _ in 0..8 {
        parser.feed(&chunk, &mut NoLog).unwrap();
    }
    assert!(parser.buf.len() <= HTTP_ERROR_BODY_CAP);
    let events = parser.finish(&mut NoLog).unwrap();
    let Event::Error(e) = &events[0] else {
        panic!()
    };
    assert_eq!(e.message.len(), 500);
}

#[test]
fn error_is_sticky() {
    let mut parser = Parser::new(&stream_head(), &mut NoLog);
    assert!(parser.feed(b"data: {bad\n", &mut NoLog).is_err());
    assert!(parser.feed(b"data: x\n", &mut NoLog).is_err());
    assert!(parser.finish(&mut NoLog).is_err());
}

#[test]
fn never_panics_on_noise() {
    // Deterministic pseudo-random bytes drawn mostly from JSON/SSE syntax.
    let alphabet = b"data: {}[]\",:\n\r choices delta content usage 0123 error \xff\xc3";
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..300 {
        let len = round % 120;
        let body: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                alphabet[(seed % alphabet.len() as u64) as usize]
            })
            .collect();
        for h in [
            stream_head(),
            plain_head(),
            head(500, Task::TextToText, true, &[]),
        ] {
            let (whole, e1) = run_chunks(&h, &[&body]);
            let (a, b) = body.split_at(body.len() / 2);
            let (split, e2) = run_chunks(&h, &[a, b]);
            // Plain text may arrive in more pieces; its text must not change.
            assert_eq!((merged(split), e2), (merged(whole), e1));
        }
    }
}

/// Native cost of one typical one-token SSE chunk; run with
/// `cargo test --release -p baseten-plugin -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn bench_one_token_chunk() {
    let chunk = br#"data: {"id":"chatcmpl-9f1c2d3e4b5a","object":"chat.completion.chunk","created":1732700000,"model":"Qwen3-30B-A3B-Instruct-2507-FP8","choices":[{"index":0,"delta":{"content":" world"},"logprobs":null,"finish_reason":null}]}

"#;
    let mut parser = Parser::new(&stream_head(), &mut NoLog);
    parser.feed(b"data: [DONE]\n", &mut NoLog).unwrap();
    let n = 200_000;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let events = parser
            .feed(std::hint::black_box(chunk), &mut NoLog)
            .unwrap();
        assert_eq!(events.len(), 1);
    }
    let per = start.elapsed() / n;
    println!("feed of a one-token SSE chunk: {per:?}");
}

/// Found by fuzzing (fuzz/baseten_feed): an invalid byte earlier in a chunk
/// must not make a multi-byte character at the chunk's end decode as two
/// replacement characters.
#[test]
fn plain_text_with_invalid_bytes_and_a_split_character() {
    let head = head(
        200,
        Task::TextToText,
        true,
        &[("content-type", "text/plain")],
    );
    let body: &[u8] = b"a\xff b \xc5\x84 c\xe2\x82";
    let whole = merged(run_chunks(&head, &[body]).0);
    assert_eq!(
        whole,
        vec![content("a\u{fffd} b \u{144} c\u{fffd}"), Event::End]
    );
    for cut in 0..=body.len() {
        let (a, b) = body.split_at(cut);
        assert_eq!(
            merged(run_chunks(&head, &[a, b]).0),
            whole,
            "split at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(merged(run_chunks(&head, &bytes).0), whole, "byte by byte");
}

/// The server dialects the OpenAI plugin meets (genai-bench's fixtures).
mod dialects {
    use super::*;

    #[test]
    fn vllm_separate_usage_chunk() {
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a b\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":10}}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(
            ok(&stream_head(), body),
            vec![content("a b"), usage(Some(5), Some(10), None), Event::End]
        );
    }

    #[test]
    fn sglang_usage_on_the_finish_chunk() {
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}],",
            "\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(
            ok(&stream_head(), body),
            vec![content("x"), usage(Some(2), Some(1), None), Event::End]
        );
    }

    #[test]
    fn openai_null_content_and_reasoning_tokens() {
        let body = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null}}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":null},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,",
            "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(
            ok(&stream_head(), body),
            vec![
                content("Hello"),
                usage(Some(8), Some(1), Some(0)),
                Event::End
            ]
        );
    }
}

fn typed_head(content_type: &str, stream_body: StreamBody) -> ResponseHead {
    let mut h = head(
        200,
        Task::TextToText,
        true,
        &[("content-type", content_type)],
    );
    h.stream_body = stream_body;
    h
}

/// Baseten's prompt format: a Truss model streams its generated text raw,
/// as `application/octet-stream`. Whatever the text starts with, it is
/// text, emitted with the chunk it arrived in (TTFT at the first byte).
#[test]
fn prompt_format_streams_are_text_from_the_first_byte() {
    for ct in ["application/octet-stream", "text/plain; charset=utf-8"] {
        let h = typed_head(ct, StreamBody::PlainText);
        for first in [
            "[",
            "{",
            ":",
            "event:",
            "id:",
            "i",
            "re",
            "d",
            "data: {\"x\": 1}",
        ] {
            let mut p = Parser::new(&h, &mut NoLog);
            let events = p.feed(first.as_bytes(), &mut NoLog).unwrap();
            assert_eq!(events, vec![content(first)], "{ct}: {first:?}");
            assert_eq!(
                p.feed(b" more", &mut NoLog).unwrap(),
                vec![content(" more")]
            );
            assert_eq!(p.finish(&mut NoLog).unwrap(), vec![Event::End], "{first:?}");
        }
    }
    // Without a content type, the request format decides too.
    let mut h = stream_head();
    h.stream_body = StreamBody::PlainText;
    assert_eq!(
        run_text(&h, "{\"a\": 1}"),
        (vec![content("{\"a\": 1}"), Event::End], None)
    );
}

/// Chat formats keep reading SSE sent as octet-stream (a Truss model that
/// wraps an OpenAI server yields its SSE bytes from a generator).
#[test]
fn chat_format_octet_stream_sse_is_still_sse() {
    let h = typed_head("application/octet-stream", StreamBody::Sniff);
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n";
    assert_eq!(ok(&h, body), vec![content("hi"), Event::End]);
}

/// A stream is complete only when the format says so.
#[test]
fn sse_completeness_comes_from_done_or_a_finish_reason() {
    let h = typed_head("text/event-stream", StreamBody::Sniff);
    let tok = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n";
    let fin = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\n";
    // Cut off: text, then nothing that says the answer is done.
    assert_eq!(ok(&h, tok), vec![content("a")]);
    // A finish reason without [DONE]: complete (one End, at the end).
    assert_eq!(
        ok(&h, &format!("{tok}{fin}")),
        vec![content("a"), Event::End]
    );
    // Both: one End, from [DONE].
    assert_eq!(
        ok(&h, &format!("{tok}{fin}data: [DONE]\n\n")),
        vec![content("a"), Event::End]
    );
    // An empty event stream is an empty body.
    assert_eq!(run(&h, " \n").1.as_deref(), Some("empty response body"));
}

#[test]
fn rerank_and_image_answers() {
    let rerank =
        r#"{"id":"r","results":[{"index":1,"relevance_score":0.9}],"usage":{"total_tokens":17}}"#;
    let h = head(200, Task::TextToRerank, false, &[]);
    assert_eq!(
        ok(&h, rerank),
        vec![usage(Some(17), None, None), Event::End]
    );
    let cohere = r#"{"results":[],"meta":{"billed_units":{"input_tokens":9}}}"#;
    assert_eq!(ok(&h, cohere), vec![usage(Some(9), None, None), Event::End]);

    let h = head(200, Task::TextToImage, false, &[]);
    let images = r#"{"created":1,"data":[{"url":"https://x/1.png"},{"b64_json":"AAAA"}]}"#;
    assert_eq!(ok(&h, images), vec![Event::Images(2), Event::End]);
    let (_, err) = run(&h, r#"{"data":[]}"#);
    assert!(err.unwrap().contains("empty `data`"));
    let (events, err) = run(&h, r#"{"error":{"message":"content policy","code":400}}"#);
    assert_eq!(err, None);
    assert!(matches!(&events[0], Event::Error(e) if e.message == "content policy"));
}

#[test]
fn speech_counts_audio_bytes_as_they_arrive() {
    let h = head(
        200,
        Task::TextToSpeech,
        true,
        &[("content-type", "audio/mpeg")],
    );
    let (events, err) = run_chunks(&h, &[b"ID3\x04", b"", b"\xff\xfb\x90"]);
    assert_eq!(err, None);
    assert_eq!(events, vec![Event::Audio(4), Event::Audio(3), Event::End]);
    let (_, err) = run_chunks(&h, &[]);
    assert_eq!(err.as_deref(), Some("empty audio body"));
    // An error status is read as an error report, not as audio.
    let h = head(429, Task::TextToSpeech, true, &[]);
    let (events, _) = run_chunks(&h, &[br#"{"error":{"message":"slow down"}}"#]);
    assert!(matches!(&events[0], Event::Error(e) if e.message == "slow down"));
}

/// OCI Generative AI's three chat stream formats, its whole answers and
/// its embed / rerank results.
mod oci {
    use super::*;

    fn oci_head(task: Task, stream: bool, content_type: &str) -> ResponseHead {
        let mut h = head(200, task, stream, &[("content-type", content_type)]);
        h.dialect = crate::model::Dialect::Oci;
        h
    }

    #[test]
    fn cohere_v1_stream_counts_pieces_not_the_repeated_final_text() {
        let body = concat!(
            "data: {\"apiFormat\":\"COHERE\",\"text\":\" one\"}\n\n",
            "data: {\"apiFormat\":\"COHERE\",\"text\":\" two\"}\n\n",
            "data: {\"apiFormat\":\"COHERE\",\"text\":\" one two\",\"finishReason\":\"MAX_TOKENS\"}\n\n",
        );
        let h = oci_head(Task::TextToText, true, "text/event-stream");
        assert_eq!(
            ok(&h, body),
            vec![content(" one"), content(" two"), Event::End]
        );
    }

    #[test]
    fn cohere_v2_and_generic_streams_carry_usage() {
        let v2 = concat!(
            "data: {\"apiFormat\":\"COHEREV2\",\"message\":{\"role\":\"ASSISTANT\",\"content\":[{\"type\":\"THINKING\",\"thinking\":\"hm\"}]}}\n\n",
            "data: {\"apiFormat\":\"COHEREV2\",\"message\":{\"role\":\"ASSISTANT\",\"content\":[{\"type\":\"TEXT\",\"text\":\" one\"}]}}\n\n",
            "data: {\"apiFormat\":\"COHEREV2\",\"finishReason\":\"MAX_TOKENS\",\"usage\":{\"promptTokens\":7,\"completionTokens\":5,\"totalTokens\":12}}\n\n",
        );
        let h = oci_head(Task::TextToText, true, "text/event-stream");
        assert_eq!(
            ok(&h, v2),
            vec![
                reasoning("hm"),
                content(" one"),
                usage(Some(7), Some(5), None),
                Event::End
            ]
        );
        // GENERIC sends the usage after the finish reason, on its own;
        // without completionTokens, total less prompt.
        let generic = concat!(
            "data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"content\":[{\"type\":\"TEXT\",\"text\":\" one\"}]}}\n\n",
            "data: {\"index\":0,\"message\":{\"role\":\"ASSISTANT\",\"content\":[]},\"finishReason\":\"length\"}\n\n",
            "data: {\"usage\":{\"promptTokens\":7,\"totalTokens\":12}}\n\n",
        );
        assert_eq!(
            ok(&h, generic),
            vec![content(" one"), usage(Some(7), Some(5), None), Event::End]
        );
        // Cut off before any finish reason: no end marker (counted incomplete).
        let cut = "data: {\"index\":0,\"message\":{\"content\":[{\"type\":\"TEXT\",\"text\":\" one\"}]}}\n\n";
        assert_eq!(ok(&h, cut), vec![content(" one")]);
    }

    #[test]
    fn stream_errors_are_errors() {
        let h = oci_head(Task::TextToText, true, "text/event-stream");
        let (events, err) = run(
            &h,
            "data: {\"code\":\"400\",\"message\":\"Please pass a valid model\"}\n\n",
        );
        assert_eq!(events, vec![error(Some(400), "Please pass a valid model")]);
        assert_eq!(err, None);
        let failed = "data: {\"apiFormat\":\"COHEREV2\",\"finishReason\":\"ERROR_TOXIC\"}\n\n";
        assert!(matches!(&ok(&h, failed)[0], Event::Error(e) if e.message.contains("ERROR_TOXIC")));
        let (_, err) = run(&h, "data: {not json\n\n");
        assert!(err.unwrap().contains("malformed JSON in OCI event stream"));
    }

    #[test]
    fn whole_chat_answers_of_each_format() {
        let h = oci_head(Task::TextToText, false, "application/json");
        let generic = r#"{"modelId":"m","chatResponse":{"apiFormat":"GENERIC","choices":[{"index":0,"message":{"role":"ASSISTANT","content":[{"type":"TEXT","text":"Hi"}]},"finishReason":"stop"}],"usage":{"promptTokens":3,"completionTokens":1,"totalTokens":4}}}"#;
        assert_eq!(
            ok(&h, generic),
            vec![content("Hi"), usage(Some(3), Some(1), None), Event::End]
        );
        let v1 = r#"{"chatResponse":{"apiFormat":"COHERE","text":"Hi there","finishReason":"COMPLETE"}}"#;
        assert_eq!(ok(&h, v1), vec![content("Hi there"), Event::End]);
        let v2 = r#"{"chatResponse":{"apiFormat":"COHEREV2","message":{"content":[{"type":"TEXT","text":"Yo"}]},"finishReason":"COMPLETE","usage":{"promptTokens":2,"completionTokens":1}}}"#;
        assert_eq!(
            ok(&h, v2),
            vec![content("Yo"), usage(Some(2), Some(1), None), Event::End]
        );
        let (_, err) = run(&h, r#"{"modelId":"m"}"#);
        assert!(err.unwrap().contains("no chatResponse"));
    }

    #[test]
    fn embed_and_rerank_results_must_hold_their_lists() {
        let h = oci_head(Task::TextToEmbeddings, false, "application/json");
        let embed =
            r#"{"id":"e","embeddings":[[0.1,0.2]],"usage":{"promptTokens":2,"totalTokens":2}}"#;
        assert_eq!(ok(&h, embed), vec![usage(Some(2), None, None), Event::End]);
        let (_, err) = run(&h, r#"{"id":"e"}"#);
        assert!(err.unwrap().contains("no `embeddings` list"));
        let h = oci_head(Task::TextToRerank, false, "application/json");
        assert_eq!(
            ok(
                &h,
                r#"{"documentRanks":[{"index":0,"relevanceScore":0.8}]}"#
            ),
            vec![Event::End]
        );
        let (_, err) = run(&h, r#"{"embeddings":[]}"#);
        assert!(err.unwrap().contains("no `documentRanks` list"));
        // An HTTP error is read as the shared parser reads any.
        let mut h = oci_head(Task::TextToRerank, false, "application/json");
        h.status = 401;
        let (events, _) = run(
            &h,
            r#"{"code":"NotAuthenticated","message":"The required information to complete authentication was not provided."}"#,
        );
        assert!(matches!(&events[0], Event::Error(e) if e.message.contains("authentication")));
    }
}

/// Contract 0.5.0 parses in another instance than the build: the body
/// type chosen at build time must survive its trip through the note.
#[test]
fn the_stream_body_choice_survives_the_parser_note() {
    for body in [StreamBody::Sniff, StreamBody::PlainText] {
        assert_eq!(StreamBody::from_note(body.note()), body);
    }
    assert_eq!(StreamBody::from_note("something else"), StreamBody::Sniff);
    assert_ne!(StreamBody::PlainText.note(), StreamBody::Sniff.note());
}
