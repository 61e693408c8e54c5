//! The built-in LLM endpoint simulator over real HTTP on 127.0.0.1: every
//! route and format, each fault, determinism with a seed, and timing.

use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use genai_bench::simulator::{
    self, FaultKind, GroundTruth, LatencyDist, Outcome, RequestFormat, SimArgs, SimConfig,
    SimHandle,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{shared_machine, whole_machine};

async fn sim(config: SimConfig) -> SimHandle {
    simulator::start(config).await.expect("start simulator")
}

fn fast() -> SimConfig {
    SimConfig {
        seed: Some(1),
        ..SimConfig::zero_delay()
    }
}

fn client() -> reqwest::Client {
    // Plain HTTP only: skipping the platform's root certificates makes a
    // client cheap enough to build per request.
    reqwest::Client::builder()
        .tls_certs_only([])
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn post(h: &SimHandle, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", h.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(max_tokens: u32, stream: bool, usage: bool) -> Value {
    let mut b = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "say a few words please"}],
        "max_tokens": max_tokens,
        "ignore_eos": true,
        "stream": stream,
    });
    if usage {
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

fn request_id(resp: &reqwest::Response) -> u64 {
    resp.headers()["x-sim-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The `data:` payloads of an SSE body.
fn sse(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// Content of chat chunks joined, number of content chunks.
fn chat_content(events: &[String]) -> (String, usize) {
    let mut text = String::new();
    let mut n = 0;
    for e in events.iter().filter(|e| *e != "[DONE]") {
        let v: Value = serde_json::from_str(e).unwrap();
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str()
            && !c.is_empty()
        {
            text.push_str(c);
            n += 1;
        }
    }
    (text, n)
}

/// Waits for the ground truth of request `id` (written when hyper drops
/// the body, which can be just after the client saw the end).
async fn truth(h: &SimHandle, id: u64) -> GroundTruth {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(gt) = h.ground_truth().into_iter().find(|g| g.id == id) {
            return gt;
        }
        assert!(
            Instant::now() < deadline,
            "no ground truth for request {id}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn health_and_unknown_routes() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let c = client();
    let r = c
        .get(format!("{}/health", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(format!("{}/nope", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .get(format!("{}/v1/chat/completions", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(h.base_url().starts_with("http://127.0.0.1:"));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn chat_non_streaming() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let r = post(&h, "/v1/chat/completions", chat(7, false, false)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = request_id(&r);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "m");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(text.split_whitespace().count(), 7);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(v["usage"]["total_tokens"], 12);
    let gt = truth(&h, id).await;
    assert_eq!(gt.route, "/v1/chat/completions");
    assert_eq!(gt.format, Some(RequestFormat::Chat));
    assert!(!gt.stream);
    assert_eq!((gt.status, gt.input_tokens, gt.output_tokens), (200, 5, 7));
    assert_eq!(gt.outcome, Outcome::Complete);
    assert_eq!(gt.chunks.len(), 1);
}

#[tokio::test]
async fn chat_streaming_with_usage() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let r = post(&h, "/v1/chat/completions", chat(12, true, true)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let id = request_id(&r);
    let events = sse(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let (text, chunks) = chat_content(&events);
    assert_eq!(text.split_whitespace().count(), 12);
    assert_eq!(chunks, 12);
    // role + 12 tokens + finish + usage + [DONE]
    assert_eq!(events.len(), 16);
    let finish: Value = serde_json::from_str(&events[13]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "length");
    let usage: Value = serde_json::from_str(&events[14]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17})
    );
    let gt = truth(&h, id).await;
    assert!(gt.stream);
    assert_eq!(gt.output_tokens, 12);
    assert_eq!(gt.outcome, Outcome::Complete);
}

#[tokio::test]
async fn chat_streaming_without_usage() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let r = post(&h, "/v1/chat/completions", chat(3, true, false)).await;
    let events = sse(&r.text().await.unwrap());
    assert!(events.iter().all(|e| !e.contains("usage")), "{events:?}");
    // role + 3 tokens + finish + [DONE]
    assert_eq!(events.len(), 6);
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn completions_both_ways() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let body = json!({"model": "m", "prompt": "one two", "max_tokens": 4, "ignore_eos": true});
    let v: Value = post(&h, "/v1/completions", body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(
        v["choices"][0]["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        4
    );
    assert_eq!(v["usage"]["prompt_tokens"], 2);

    let mut body = body;
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let events = sse(&post(&h, "/v1/completions", body)
        .await
        .text()
        .await
        .unwrap());
    let parsed: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = parsed
        .iter()
        .filter_map(|v| v["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 4);
    // 4 tokens + finish + usage, no role chunk.
    assert_eq!(parsed.len(), 6);
    assert_eq!(parsed[4]["choices"][0]["finish_reason"], "length");
    assert_eq!(parsed[5]["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn predict_prompt_format() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    for path in ["/environments/production/predict", "/predict", "/"] {
        let v: Value = post(&h, path, json!({"prompt": "a b c", "max_tokens": 6}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["text"].as_str().unwrap().split_whitespace().count(), 6);
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        assert_eq!(v["usage"]["completion_tokens"], 6);
    }
    let r = post(
        &h,
        "/environments/production/predict",
        json!({"prompt": "a b c", "max_tokens": 9, "stream": true}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let id = request_id(&r);
    let text = r.text().await.unwrap();
    assert_eq!(text.split_whitespace().count(), 9, "{text}");
    assert!(!text.contains("data:"));
    let gt = truth(&h, id).await;
    assert_eq!(gt.format, Some(RequestFormat::Prompt));
    assert_eq!(gt.output_tokens, 9);
}

#[tokio::test]
async fn predict_chat_and_embeddings() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let r = post(&h, "/environments/production/predict", chat(5, true, true)).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events = sse(&r.text().await.unwrap());
    assert_eq!(chat_content(&events).0.split_whitespace().count(), 5);
    assert!(events.iter().any(|e| e.contains("\"usage\"")));

    let v: Value = post(
        &h,
        "/environments/production/predict",
        json!({"model": "e", "input": ["x y", "z"], "encoding_format": "float"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn embeddings() {
    let _machine = shared_machine().await;
    let h = sim(SimConfig {
        embedding_dims: 16,
        ..fast()
    })
    .await;
    let r = post(
        &h,
        "/v1/embeddings",
        json!({"model": "e", "input": ["one two three", "four"]}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = request_id(&r);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "e");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(d["object"], "embedding");
        assert_eq!(d["index"], i);
        assert_eq!(d["embedding"].as_array().unwrap().len(), 16);
    }
    assert_eq!(v["usage"], json!({"prompt_tokens": 4, "total_tokens": 4}));
    let gt = truth(&h, id).await;
    assert_eq!(gt.format, Some(RequestFormat::Embeddings));
    assert_eq!(gt.input_tokens, 4);
}

#[tokio::test]
async fn output_length_rules() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    // No max_tokens: the default length.
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let v: Value = post(&h, "/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 128);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["model"], "genai-bench-sim");

    let h = sim(SimConfig {
        output_tokens: Some("constant:5".parse().unwrap()),
        ..fast()
    })
    .await;
    let mut body = chat(50, false, false);
    body["ignore_eos"] = json!(false);
    let v: Value = post(&h, "/v1/chat/completions", body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    body["min_tokens"] = json!(50);
    let v: Value = post(&h, "/v1/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 50);
    let v: Value = post(&h, "/v1/chat/completions", chat(50, false, false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["usage"]["completion_tokens"], 50,
        "ignore_eos forces max_tokens"
    );
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let c = client();
    for body in [
        "not json".to_owned(),
        json!({"messages": "hi"}).to_string(),
        json!({"messages": [{"content": "x"}], "max_tokens": -3}).to_string(),
        json!({"messages": [{"content": "x"}], "sim_fault": "bogus"}).to_string(),
    ] {
        let r = c
            .post(format!("{}/v1/chat/completions", h.base_url()))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(r.headers().contains_key("x-sim-request-id"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], 400);
        assert!(v["error"]["message"].as_str().unwrap().len() > 3);
    }
    let r = c
        .post(format!("{}/v1/chat/completions", h.base_url()))
        .header("x-sim-fault", "nope")
        .json(&chat(1, false, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn status_faults() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let c = client();
    // By body parameter.
    let mut body = chat(3, true, true);
    body["sim_fault"] = json!("429");
    let r = post(&h, "/v1/chat/completions", body).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    let id = request_id(&r);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 429);
    assert_eq!(truth(&h, id).await.fault, Some(FaultKind::TooManyRequests));
    // By header.
    for (kind, status) in [
        ("500", StatusCode::INTERNAL_SERVER_ERROR),
        ("503", StatusCode::SERVICE_UNAVAILABLE),
        ("auth", StatusCode::UNAUTHORIZED),
    ] {
        let r = c
            .post(format!("{}/v1/chat/completions", h.base_url()))
            .header("x-sim-fault", kind)
            .json(&chat(3, false, false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{kind}");
        let id = request_id(&r);
        assert_eq!(truth(&h, id).await.fault, Some(kind.parse().unwrap()));
    }
    // auth with a key present: 403.
    let r = c
        .post(format!("{}/v1/chat/completions", h.base_url()))
        .header("x-sim-fault", "auth")
        .bearer_auth("whatever")
        .json(&chat(3, false, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn fault_rates() {
    let _machine = shared_machine().await;
    let h = sim(SimConfig {
        fault_rates: vec!["503=1".parse().unwrap()],
        ..fast()
    })
    .await;
    for _ in 0..3 {
        let r = post(&h, "/v1/chat/completions", chat(2, false, false)).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let h = sim(SimConfig {
        fault_rates: vec!["500=0.5".parse().unwrap()],
        ..fast()
    })
    .await;
    let mut errors = 0;
    for _ in 0..100 {
        let r = post(&h, "/v1/chat/completions", chat(1, false, false)).await;
        if r.status() == StatusCode::INTERNAL_SERVER_ERROR {
            errors += 1;
        }
    }
    assert!((25..=75).contains(&errors), "{errors}");
    let recorded = h
        .ground_truth()
        .iter()
        .filter(|g| g.fault == Some(FaultKind::InternalError))
        .count();
    assert_eq!(recorded, errors);
}

/// A config with 2 ms between tokens, so a fault's tokens travel in
/// frames of their own.
fn paced() -> SimConfig {
    SimConfig {
        ttft_base_ms: 1.0,
        prefill_us_per_token: 0.0,
        itl: LatencyDist::constant(2.0),
        seed: Some(1),
        ..SimConfig::default()
    }
}

fn with_fault(mut body: Value, kind: &str) -> Value {
    body["sim_fault"] = json!(kind);
    body
}

#[tokio::test]
async fn reset_fault_breaks_the_body() {
    let _machine = shared_machine().await;
    let h = sim(paced()).await;
    let r = post(
        &h,
        "/v1/chat/completions",
        with_fault(chat(10, true, true), "reset"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let id = request_id(&r);
    let mut stream = r.bytes_stream();
    let mut got = Vec::new();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => got.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "a reset must surface as a body error");
    let text = String::from_utf8(got).unwrap();
    let events = sse(&text);
    assert!(!events.contains(&"[DONE]".to_owned()));
    assert_eq!(
        chat_content(&events).1,
        5,
        "half the tokens before the reset"
    );
    let gt = truth(&h, id).await;
    assert_eq!(gt.fault, Some(FaultKind::Reset));
    assert_eq!(gt.outcome, Outcome::Reset);
    assert_eq!(gt.output_tokens, 5);

    // Not streamed: half the body, then the abort.
    let r = post(
        &h,
        "/v1/chat/completions",
        with_fault(chat(10, false, false), "reset"),
    )
    .await;
    assert!(r.bytes().await.is_err());
}

#[tokio::test]
async fn cut_fault_ends_without_done() {
    let _machine = shared_machine().await;
    let h = sim(paced()).await;
    let r = post(
        &h,
        "/v1/chat/completions",
        with_fault(chat(10, true, true), "cut"),
    )
    .await;
    let id = request_id(&r);
    let events = sse(&r.text().await.unwrap());
    assert!(!events.contains(&"[DONE]".to_owned()));
    assert!(!events.iter().any(|e| e.contains("finish_reason\":\"")));
    assert_eq!(chat_content(&events).1, 5);
    let gt = truth(&h, id).await;
    assert_eq!(
        (gt.fault, gt.outcome),
        (Some(FaultKind::Cut), Outcome::Complete)
    );

    let r = post(
        &h,
        "/v1/chat/completions",
        with_fault(chat(10, false, false), "cut"),
    )
    .await;
    let body = r.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err());
}

#[tokio::test]
async fn malformed_fault_sends_one_bad_chunk() {
    let _machine = shared_machine().await;
    let h = sim(paced()).await;
    let r = post(
        &h,
        "/v1/chat/completions",
        with_fault(chat(10, true, true), "malformed"),
    )
    .await;
    let events = sse(&r.text().await.unwrap());
    let bad: Vec<&String> = events
        .iter()
        .filter(|e| *e != "[DONE]" && serde_json::from_str::<Value>(e).is_err())
        .collect();
    assert_eq!(bad.len(), 1, "{events:?}");
    let good: Vec<String> = events
        .iter()
        .filter(|e| serde_json::from_str::<Value>(e).is_ok() || *e == "[DONE]")
        .cloned()
        .collect();
    assert_eq!(chat_content(&good).1, 10);
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn error_in_stream_fault() {
    let _machine = shared_machine().await;
    let h = sim(paced()).await;
    let r = post(
        &h,
        "/v1/chat/completions",
        with_fault(chat(10, true, true), "error-in-stream"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let events = sse(&r.text().await.unwrap());
    let errors: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|v| v.get("error").is_some())
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0],
        json!({"error": {"code": 503, "message": "simulated overload"}})
    );
    assert_eq!(chat_content(&events).1, 5);
    let pos = events.iter().position(|e| e.contains("\"error\"")).unwrap();
    assert_eq!(events[pos + 1..], ["[DONE]".to_owned()]);
}

/// Chunk arrival times (since the request was sent) and the bytes.
async fn timed_chunks(r: reqwest::Response, sent: Instant) -> Vec<(Duration, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stream = r.bytes_stream();
    while let Some(b) = stream.next().await {
        out.push((sent.elapsed(), b.unwrap().to_vec()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_fault_delays_bytes() {
    let _machine = whole_machine().await;
    let h = sim(paced()).await;
    let mut body = with_fault(chat(10, true, false), "stall");
    body["sim_stall_secs"] = json!(0.3);
    let sent = Instant::now();
    let r = post(&h, "/v1/chat/completions", body).await;
    let id = request_id(&r);
    let chunks = timed_chunks(r, sent).await;
    let max_gap = chunks.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
    // Below 300 ms only by how late the chunk before the stall was sent.
    assert!(max_gap >= Duration::from_millis(250), "{max_gap:?}");
    let gt = truth(&h, id).await;
    assert_eq!(gt.fault, Some(FaultKind::Stall));
    assert_eq!(gt.output_tokens, 10);
    // Token 6 is due at 1 ms + 5 × 2 ms + 300 ms.
    let mut seen = 0;
    let sixth = gt
        .chunks
        .iter()
        .find(|c| {
            seen += c.tokens;
            seen >= 6
        })
        .unwrap();
    assert!(sixth.t_us >= 311_000, "{:?}", gt.chunks);
    let long_gaps = gt
        .chunks
        .windows(2)
        .filter(|w| w[1].t_us - w[0].t_us >= 250_000)
        .count();
    assert_eq!(long_gaps, 1, "{:?}", gt.chunks);
}

#[tokio::test]
async fn slow_headers_fault() {
    let _machine = shared_machine().await;
    let h = sim(paced()).await;
    let c = client();
    let sent = Instant::now();
    let r = c
        .post(format!("{}/v1/chat/completions", h.base_url()))
        .header("x-sim-fault", "slow-headers")
        .json(&json!({
            "messages": [{"content": "x"}], "max_tokens": 2, "stream": true,
            "sim_stall_secs": 0.3,
        }))
        .send()
        .await
        .unwrap();
    let headers_after = sent.elapsed();
    assert!(
        headers_after >= Duration::from_millis(300),
        "{headers_after:?}"
    );
    let id = request_id(&r);
    assert_eq!(chat_content(&sse(&r.text().await.unwrap())).1, 2);
    let gt = truth(&h, id).await;
    assert_eq!(gt.fault, Some(FaultKind::SlowHeaders));
    assert!(gt.headers_us.unwrap() >= 300_000);
}

#[tokio::test]
async fn api_key_is_checked() {
    let _machine = shared_machine().await;
    let h = sim(SimConfig {
        api_key: Some("sekrit".to_owned()),
        ..fast()
    })
    .await;
    let url = format!("{}/v1/chat/completions", h.base_url());
    let c = client();
    let body = chat(2, false, false);
    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 401);
    let r = c
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(&url)
        .bearer_auth("sekrit")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .post(&url)
        .header("authorization", "Api-Key sekrit")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(format!("{}/health", h.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "health needs no key");
}

/// Texts and lengths of a few requests against a fresh seeded server.
async fn sample_run(seed: u64) -> Vec<(String, u64)> {
    let h = sim(SimConfig {
        seed: Some(seed),
        output_tokens: Some("uniform:3,40".parse().unwrap()),
        itl: "normal:0.2,0.1".parse().unwrap(),
        ttft_base_ms: 0.0,
        prefill_us_per_token: 0.0,
        ..SimConfig::default()
    })
    .await;
    let mut out = Vec::new();
    for i in 0..6 {
        let body = json!({
            "messages": [{"content": "hello"}], "max_tokens": 100, "stream": i % 2 == 0,
        });
        let r = post(&h, "/v1/chat/completions", body).await;
        let text = if i % 2 == 0 {
            chat_content(&sse(&r.text().await.unwrap())).0
        } else {
            let v: Value = r.json().await.unwrap();
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let n = text.split_whitespace().count() as u64;
        out.push((text, n));
    }
    let mut gt = h.ground_truth();
    gt.sort_by_key(|g| g.id);
    let planned: Vec<u64> = gt.iter().map(|g| g.planned_output_tokens).collect();
    let lens: Vec<u64> = out.iter().map(|o| o.1).collect();
    assert_eq!(planned, lens);
    out
}

#[tokio::test]
async fn seed_makes_runs_repeat() {
    let _machine = shared_machine().await;
    let a = sample_run(42).await;
    let b = sample_run(42).await;
    let c = sample_run(43).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let lens: Vec<u64> = a.iter().map(|x| x.1).collect();
    assert!(lens.iter().any(|&n| n != lens[0]), "lengths vary: {lens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing_matches_config() {
    let _machine = whole_machine().await;
    let h = sim(SimConfig {
        ttft_base_ms: 50.0,
        prefill_us_per_token: 0.0,
        itl: LatencyDist::constant(5.0),
        seed: Some(1),
        ..SimConfig::default()
    })
    .await;
    // Scheduling noise on a busy machine only ever delays a chunk, while a
    // timing bug (early sends, drift from relative sleeps) shows in every
    // attempt: so "never early" is checked on every attempt and the tight
    // margins on the best of five.
    let mut attempts = Vec::new();
    for _ in 0..5 {
        let sent = Instant::now();
        let r = post(&h, "/v1/chat/completions", chat(20, true, true)).await;
        let id = request_id(&r);
        let chunks = timed_chunks(r, sent).await;
        let client_total = chunks.last().unwrap().0;
        assert!(
            client_total >= Duration::from_millis(145),
            "{client_total:?}"
        );
        let gt = truth(&h, id).await;
        assert_eq!(gt.output_tokens, 20);
        // The role chunk goes out with the headers, long before the first token.
        assert!(gt.chunks[0].tokens == 0 && gt.chunks[0].t_us < 20_000);
        assert!(gt.headers_us.unwrap() <= gt.chunks[0].t_us);
        // Token k (from 1) is due at 50 + 5 (k - 1) ms; a frame carries
        // tokens up to its last, so it must not leave before that one's due.
        let mut sent_tokens = 0;
        for c in gt.chunks.iter().filter(|c| c.tokens > 0) {
            sent_tokens += u64::from(c.tokens);
            let due = 50_000 + 5_000 * (sent_tokens - 1);
            assert!(c.t_us >= due, "early chunk: {:?}", gt.chunks);
        }
        // Frames may merge tokens that fell due together: the first and
        // last token frames carry the margins.
        let token_chunks: Vec<u64> = gt
            .chunks
            .iter()
            .filter(|c| c.tokens > 0)
            .map(|c| c.t_us)
            .collect();
        let ttft_ms = token_chunks[0] as f64 / 1e3;
        let last_ms = *token_chunks.last().unwrap() as f64 / 1e3;
        let mean_gap_ms = (last_ms - ttft_ms) / 19.0;
        if ttft_ms < 57.0 && (mean_gap_ms - 5.0).abs() < 1.0 {
            return;
        }
        attempts.push((ttft_ms, mean_gap_ms, gt.chunks));
    }
    panic!("no attempt within TTFT 50..57 ms and mean gap 5 ± 1 ms: {attempts:?}");
}

#[tokio::test]
async fn tokens_per_chunk_groups_tokens() {
    let _machine = shared_machine().await;
    let h = sim(SimConfig {
        tokens_per_chunk: 4,
        ..paced()
    })
    .await;
    let r = post(&h, "/v1/chat/completions", chat(10, true, false)).await;
    let id = request_id(&r);
    let events = sse(&r.text().await.unwrap());
    let groups: Vec<usize> = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| {
            let v: Value = serde_json::from_str(e).unwrap();
            let c = v["choices"][0]["delta"]["content"].as_str()?.to_owned();
            (!c.is_empty()).then(|| c.split_whitespace().count())
        })
        .collect();
    assert_eq!(groups, [4, 4, 2]);
    let gt = truth(&h, id).await;
    assert_eq!(gt.output_tokens, 10);
    // A frame holds whole groups (several when they fell due together).
    assert!(
        gt.chunks
            .iter()
            .all(|c| [0, 2, 4, 6, 8, 10].contains(&c.tokens)),
        "{:?}",
        gt.chunks
    );
}

#[tokio::test]
async fn zero_delay_frame_per_group_sends_one_chunk_per_token() {
    let _machine = shared_machine().await;
    let coalesced = sim(fast()).await;
    let per_token = sim(SimConfig {
        frame_per_group: true,
        ..fast()
    })
    .await;
    let frames = |h: &SimHandle| {
        let t = h.ground_truth();
        t.last().unwrap().chunks.len()
    };
    for h in [&coalesced, &per_token] {
        let r = post(h, "/v1/chat/completions", chat(50, true, true)).await;
        let id = request_id(&r);
        // hyper hands the client one body chunk per HTTP chunk.
        let mut stream = r.bytes_stream();
        let mut chunks = 0;
        while let Some(c) = stream.next().await {
            c.unwrap();
            chunks += 1;
        }
        let gt = truth(h, id).await;
        assert_eq!(gt.output_tokens, 50);
        if std::ptr::eq(h, &per_token) {
            // Role, 50 tokens, then the trailer (finish, usage, [DONE]).
            assert_eq!(frames(h), 52, "{:?}", gt.chunks);
            assert!(gt.chunks.iter().all(|c| c.tokens <= 1));
            assert!(chunks >= 52, "client saw {chunks} chunks");
        } else {
            assert!(frames(h) < 10, "zero delay coalesces: {:?}", gt.chunks);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_factor_slows_concurrent_requests() {
    let _machine = whole_machine().await;
    let h = sim(SimConfig {
        ttft_base_ms: 20.0,
        prefill_us_per_token: 0.0,
        itl: LatencyDist::constant(0.0),
        load_factor: 1.0,
        ..SimConfig::default()
    })
    .await;
    // Two slow-headers requests keep the server loaded meanwhile.
    let c = client();
    let url = format!("{}/v1/chat/completions", h.base_url());
    let mut holders = Vec::new();
    for _ in 0..2 {
        let req = c
            .post(&url)
            .json(&json!({"messages": [{"content": "x"}], "max_tokens": 1,
                          "sim_fault": "slow-headers", "sim_stall_secs": 1.0}));
        holders.push(tokio::spawn(req.send()));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.requests_seen() < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let r = post(&h, "/v1/chat/completions", chat(1, false, false)).await;
    let gt = truth(&h, request_id(&r)).await;
    // 3 in flight: 20 ms × (1 + 1 × 2) = 60 ms.
    let t = gt.chunks[0].t_us;
    assert!((59_000..75_000).contains(&t), "{t} µs");
    for hd in holders {
        hd.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn ground_truth_file_and_graceful_shutdown() {
    let _machine = shared_machine().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gt.jsonl");
    let h = sim(SimConfig {
        ground_truth_path: Some(path.clone()),
        keep_ground_truth: false,
        ..paced()
    })
    .await;
    for _ in 0..3 {
        post(&h, "/v1/chat/completions", chat(3, false, false))
            .await
            .bytes()
            .await
            .unwrap();
    }
    // A stream still running when shutdown starts is allowed to finish.
    let r = post(&h, "/v1/chat/completions", chat(40, true, true)).await;
    let reader = tokio::spawn(async move { r.text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(h.ground_truth().is_empty(), "memory copy is off");
    h.shutdown().await.unwrap();
    let text = reader.await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let lines: Vec<GroundTruth> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let streamed = lines.iter().find(|g| g.stream).unwrap();
    assert_eq!(streamed.output_tokens, 40);
    assert_eq!(streamed.outcome, Outcome::Complete);
}

#[tokio::test]
async fn http2_prior_knowledge() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c
        .post(format!("{}/v1/chat/completions", h.base_url()))
        .json(&chat(8, true, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let events = sse(&r.text().await.unwrap());
    assert_eq!(chat_content(&events).1, 8);
}

#[tokio::test]
async fn many_concurrent_streams() {
    let _machine = shared_machine().await;
    let h = sim(fast()).await;
    let c = client();
    let url = format!("{}/v1/chat/completions", h.base_url());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let r = c
                    .post(&url)
                    .json(&chat(50, true, true))
                    .send()
                    .await
                    .unwrap();
                let events = sse(&r.text().await.unwrap());
                assert_eq!(chat_content(&events).0.split_whitespace().count(), 50);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(h.requests_seen(), 320);
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

#[test]
fn sim_args_parse() {
    let cli = Cli::try_parse_from([
        "x",
        "--port",
        "0",
        "--ttft-ms",
        "50",
        "--itl-ms",
        "lognormal:5,2",
        "--output-tokens",
        "uniform:10,20",
        "--fault-rate",
        "429=0.1",
        "--fault-rate",
        "reset=0.2",
        "--seed",
        "7",
        "--tokens-per-chunk",
        "2",
        "--api-key",
        "k",
        "--ground-truth",
        "/tmp/gt.jsonl",
    ])
    .unwrap();
    let c = cli.sim.to_config().unwrap();
    assert_eq!(c.port, 0);
    assert_eq!(c.ttft_base_ms, 50.0);
    assert_eq!(c.itl, LatencyDist::LogNormal { mean: 5.0, sd: 2.0 });
    assert_eq!(c.fault_rates.len(), 2);
    assert_eq!(c.fault_rates[1].kind, FaultKind::Reset);
    assert_eq!((c.seed, c.tokens_per_chunk), (Some(7), 2));
    assert_eq!(c.api_key.as_deref(), Some("k"));
    assert!(!c.keep_ground_truth);

    let z = Cli::try_parse_from(["x", "--zero-delay"]).unwrap();
    let z = z.sim.to_config().unwrap();
    assert_eq!((z.ttft_base_ms, z.itl.mean_ms(), z.port), (0.0, 0.0, 8000));

    assert!(Cli::try_parse_from(["x", "--fault-rate", "429"]).is_err());
    let over =
        Cli::try_parse_from(["x", "--fault-rate", "429=0.7", "--fault-rate", "500=0.7"]).unwrap();
    assert!(over.sim.to_config().is_err());
}

#[tokio::test]
async fn client_leaving_mid_stream_is_recorded() {
    let _machine = shared_machine().await;
    let h = sim(paced()).await;
    let r = post(&h, "/v1/chat/completions", chat(200, true, true)).await;
    let id = request_id(&r);
    let mut stream = r.bytes_stream();
    // The role chunk and the first token, then hang up.
    let mut got = 0;
    while got < 2 {
        stream.next().await.unwrap().unwrap();
        got += 1;
    }
    drop(stream);
    let gt = truth(&h, id).await;
    assert_eq!(gt.outcome, Outcome::Dropped);
    assert!(gt.output_tokens < 200, "{}", gt.output_tokens);
    assert_eq!(gt.planned_output_tokens, 200);
}

#[tokio::test]
async fn tgi_routes() {
    let _m = shared_machine().await;
    let h = sim(fast()).await;
    let body = json!({"inputs": "one two three",
                      "parameters": {"max_new_tokens": 5, "details": true}});
    let r = post(&h, "/generate_stream", body.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let id = request_id(&r);
    let text = r.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data:"))
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(events.len(), 6, "{text}");
    let words: String = events[..5]
        .iter()
        .map(|e| e["token"]["text"].as_str().unwrap())
        .collect();
    let last = &events[5];
    assert_eq!(last["token"]["special"], true);
    assert_eq!(last["generated_text"], words.as_str());
    assert_eq!(
        last["details"],
        json!({"finish_reason": "length", "generated_tokens": 5, "seed": null,
               "input_length": 3})
    );
    let gt = truth(&h, id).await;
    assert_eq!(gt.format, Some(RequestFormat::Tgi));
    assert_eq!((gt.route.as_str(), gt.stream), ("/generate_stream", true));
    assert_eq!((gt.input_tokens, gt.output_tokens), (3, 5));

    let r = post(&h, "/generate", body).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["generated_text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .count(),
        5
    );
    assert_eq!(v["details"]["generated_tokens"], 5);
    // Without `details`, TGI reports none.
    let r = post(
        &h,
        "/generate",
        json!({"inputs": "x", "parameters": {"max_new_tokens": 2}}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert!(v.get("details").is_none(), "{v}");

    // Errors in TGI's shape: 422 for an invalid request, mid-stream events.
    let r = post(
        &h,
        "/generate",
        json!({"inputs": "x", "parameters": {"temperature": 0}}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error_type"], "validation");
    assert!(v["error"].as_str().unwrap().contains("temperature"));
    let r = post(
        &h,
        "/generate_stream",
        json!({"inputs": "x", "parameters": {"max_new_tokens": 4}, "sim_fault": "error-in-stream"}),
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(
        text.ends_with("data:{\"error\":\"simulated overload\",\"error_type\":\"overloaded\"}\n\n"),
        "{text}"
    );
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn ollama_routes() {
    let _m = shared_machine().await;
    let h = sim(fast()).await;
    // Ollama streams when `stream` is missing.
    let r = post(
        &h,
        "/api/chat",
        json!({"model": "llama3.2", "messages": [{"role": "user", "content": "a b c d"}],
               "options": {"num_predict": 4}}),
    )
    .await;
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let id = request_id(&r);
    let lines: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines[..4]
            .iter()
            .all(|l| l["done"] == false && l["model"] == "llama3.2")
    );
    assert_eq!(lines[4]["done"], true);
    assert_eq!(lines[4]["done_reason"], "length");
    assert_eq!(
        (
            lines[4]["prompt_eval_count"].as_u64(),
            lines[4]["eval_count"].as_u64()
        ),
        (Some(4), Some(4))
    );
    let gt = truth(&h, id).await;
    assert_eq!(gt.format, Some(RequestFormat::OllamaChat));
    assert_eq!(gt.output_tokens, 4);

    let r = post(
        &h,
        "/api/generate",
        json!({"model": "m", "prompt": "a b", "stream": false, "options": {"num_predict": 3}}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["response"].as_str().unwrap().split_whitespace().count(),
        3
    );
    assert_eq!(
        (v["done"].as_bool(), v["eval_count"].as_u64()),
        (Some(true), Some(3))
    );

    let r = post(&h, "/api/generate", json!({"prompt": "a"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "model is required"})
    );
    let r = post(
        &h,
        "/api/chat",
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
               "options": {"num_predict": 4}, "sim_fault": "error-in-stream"}),
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(
        text.ends_with("{\"error\":\"simulated overload\"}\n"),
        "{text}"
    );
}
