//! The OpenAI plugin (`--api-backend openai|vllm|sglang`) through the
//! binary, over real HTTP: the exact bodies sent per backend, the paths under
//! `--api-base`, the key as `Bearer`, and the metrics measured against the
//! simulator's OpenAI routes.

use std::process::{Command, Output};

use genai_bench::simulator::{self, LengthDist, SimConfig};
use serde_json::{Value, json};

use crate::benchmark::{Bench, KEY, records, test_tokenizer};
use crate::common::server::{Canned, Received, TestServer};

/// `benchmark --api-backend BACKEND` against `base`, with the test key,
/// tokenizer and folder; `extra` flags after them.
fn command(b: &Bench, backend: &str, base: &str, extra: &[&str]) -> Command {
    let mut c = crate::common::genai_bench();
    c.args(["benchmark", "--api-backend", backend, "--api-base", base])
        .args(["--api-model-name", "test-model", "--model-tokenizer"])
        .arg(test_tokenizer())
        .arg("--experiment-base-dir")
        .arg(b.folder().parent().unwrap())
        .args(["--experiment-folder-name", "exp"])
        // The server's request list then holds only the runs' requests.
        .arg("--no-preflight")
        .args(extra);
    c
}

async fn output(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

async fn run_ok(c: Command) -> Output {
    let out = output(c).await;
    crate::common::assert_success(&out);
    out
}

/// An OpenAI answer with `max_tokens` tokens: SSE with a separate usage
/// chunk (vLLM style) when streaming, one JSON body otherwise; embeddings
/// get an embeddings body.
fn openai_answer(req: &Received) -> Canned {
    let body = req.json();
    if req.path.ends_with("/v1/embeddings") {
        let n = body["input"].as_array().map_or(0, Vec::len);
        let data: Vec<Value> = (0..n)
            .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2]}))
            .collect();
        let v = json!({"object": "list", "data": data, "model": "test-model",
                       "usage": {"prompt_tokens": 7, "total_tokens": 7}});
        return Canned::new(200, "application/json", vec![v.to_string().into_bytes()]);
    }
    let n = body["max_tokens"].as_u64().unwrap_or(8) as usize;
    if !body["stream"].as_bool().unwrap_or(false) {
        let v = json!({
            "choices": [{"message": {"role": "assistant", "content": " tok".repeat(n)},
                         "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": n}
        });
        return Canned::new(200, "application/json", vec![v.to_string().into_bytes()]);
    }
    let mut chunks = vec![
        b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n".to_vec(),
    ];
    for _ in 0..n {
        chunks.push(b"data: {\"choices\":[{\"delta\":{\"content\":\" tok\"}}]}\n\n".to_vec());
    }
    chunks.push(
        format!(
            "data: {{\"choices\":[{{\"delta\":{{}},\"finish_reason\":\"length\"}}]}}\n\n\
             data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":{n}}}}}\n\n\
             data: [DONE]\n\n"
        )
        .into_bytes(),
    );
    Canned::new(200, "text/event-stream", chunks)
}

/// The body without its sampled prompt, which is checked separately.
fn without_prompt(mut body: Value) -> (Value, Value) {
    let messages = body["messages"].take();
    body.as_object_mut().unwrap().remove("messages");
    (body, messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_bodies_follow_each_backends_ignore_eos_rule() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(openai_answer).await;
    // (backend, body without messages, streaming)
    let cases = [
        (
            "vllm",
            json!({"model": "test-model", "max_tokens": 20, "temperature": 0.0, "stream": true,
                   "min_tokens": 20, "ignore_eos": true,
                   "stream_options": {"include_usage": true}}),
            true,
        ),
        (
            "SGLang",
            json!({"model": "test-model", "max_tokens": 20, "temperature": 0.0, "stream": false,
                   "min_tokens": 20, "ignore_eos": true}),
            false,
        ),
        (
            "openai",
            json!({"model": "test-model", "max_tokens": 20, "temperature": 0.0, "stream": true,
                   "min_tokens": 20, "stream_options": {"include_usage": true}}),
            true,
        ),
    ];
    for (backend, want, stream) in cases {
        server.received.lock().unwrap().clear();
        let b = Bench::new();
        let mut extra = vec![
            "--api-key",
            KEY,
            "--traffic-scenario",
            "D(40,20)",
            "--max-requests-per-run",
            "3",
            "--num-concurrency",
            "1",
        ];
        if !stream {
            extra.push("--disable-streaming");
        }
        run_ok(command(&b, backend, &server.base, &extra)).await;
        let received = server.received.lock().unwrap().clone();
        assert_eq!(received.len(), 3, "{backend}");
        for r in &received {
            assert_eq!(r.method, "POST");
            assert_eq!(r.path, "/v1/chat/completions", "{backend}");
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {KEY}").as_str())
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
            let (rest, messages) = without_prompt(r.json());
            assert_eq!(rest, want, "{backend}");
            let messages = messages.as_array().unwrap();
            assert_eq!(messages.len(), 1, "{backend}");
            assert_eq!(messages[0]["role"], "user");
            assert!(!messages[0]["content"].as_str().unwrap().is_empty());
        }
        let meta = b.metadata();
        assert_eq!(meta["api_backend"], backend.to_ascii_lowercase());
        assert_eq!(meta["plugin"]["name"], "openai");
        assert_eq!(meta["plugin"]["world"], "genai-bench:backend/plugin@0.5.0");
        for (_, run) in b.runs() {
            for rec in records(&run) {
                assert_eq!(rec["error_code"], Value::Null, "{backend}: {rec}");
                assert_eq!(rec["num_output_tokens"], 20, "{backend}: {rec}");
                assert_eq!(rec["num_input_tokens"], 40, "{backend}: {rec}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_message_images_and_embeddings_bodies() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(openai_answer).await;
    // A system message, and an --api-base with a path prefix.
    let b = Bench::new();
    let base = format!("{}/proxy", server.base);
    run_ok(command(
        &b,
        "openai",
        &base,
        &[
            "--api-key",
            KEY,
            "--traffic-scenario",
            "D(30,5)",
            "--max-requests-per-run",
            "1",
            "--num-concurrency",
            "1",
            "--additional-request-params",
            r#"{"system_message": "Be brief.", "top_p": 0.5}"#,
        ],
    ))
    .await;
    let r = server.received.lock().unwrap().pop().unwrap();
    assert_eq!(r.path, "/proxy/v1/chat/completions");
    let (rest, messages) = without_prompt(r.json());
    assert_eq!(
        rest,
        json!({"model": "test-model", "max_tokens": 5, "temperature": 0.0, "stream": true,
               "top_p": 0.5, "min_tokens": 5, "stream_options": {"include_usage": true}})
    );
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(messages[1]["role"], "user");
    assert_eq!(messages.as_array().unwrap().len(), 2);

    // Images as OpenAI content parts.
    let b = Bench::new();
    run_ok(command(
        &b,
        "vllm",
        &server.base,
        &[
            "--api-key",
            KEY,
            "--task",
            "image-text-to-text",
            "--traffic-scenario",
            "I(64,32,2)",
            "--max-requests-per-run",
            "1",
            "--num-concurrency",
            "1",
        ],
    ))
    .await;
    let r = server.received.lock().unwrap().pop().unwrap();
    let body = r.json();
    let parts = body["messages"][0]["content"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!(parts[0]["type"], "text");
    for p in &parts[1..] {
        assert_eq!(p["type"], "image_url");
        assert!(
            p["image_url"]["url"]
                .as_str()
                .unwrap()
                .starts_with("data:image/")
        );
    }
    for (_, run) in b.runs() {
        for rec in records(&run) {
            assert_eq!(rec["error_code"], Value::Null, "{rec}");
        }
    }

    // Embeddings go to /v1/embeddings with genai-bench's body.
    let b = Bench::new();
    run_ok(command(
        &b,
        "sglang",
        &server.base,
        &[
            "--api-key",
            KEY,
            "--task",
            "text-to-embeddings",
            "--traffic-scenario",
            "E(16)",
            "--batch-size",
            "3",
            "--max-requests-per-run",
            "1",
            "--num-concurrency",
            "1",
        ],
    ))
    .await;
    let r = server.received.lock().unwrap().pop().unwrap();
    assert_eq!(r.path, "/v1/embeddings");
    let body = r.json();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["encoding_format"], "float");
    assert_eq!(body["input"].as_array().unwrap().len(), 3);
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    for (_, run) in b.runs() {
        for rec in records(&run) {
            assert_eq!(rec["error_code"], Value::Null, "{rec}");
            assert_eq!(rec["num_input_tokens"], 48, "{rec}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_simulator_ignore_eos_decides_the_output_length() {
    let _machine = crate::common::shared_machine().await;
    // The simulator stops at 5 tokens unless told to ignore EOS.
    let sim = simulator::start(SimConfig {
        api_key: Some(KEY.into()),
        seed: Some(5),
        output_tokens: Some(LengthDist::Constant { tokens: 5 }),
        ..SimConfig::zero_delay()
    })
    .await
    .unwrap();
    for (backend, params, want) in [
        // vLLM and SGLang get ignore_eos (and min_tokens): the full 30.
        ("vllm", "{}", 30),
        ("sglang", "{}", 30),
        // OpenAI gets neither (min_tokens dropped by the user): the
        // server's own length.
        ("openai", r#"{"min_tokens": null}"#, 5),
    ] {
        let b = Bench::new();
        run_ok(command(
            &b,
            backend,
            &sim.base_url(),
            &[
                "--api-key",
                KEY,
                "--traffic-scenario",
                "D(50,30)",
                "--max-requests-per-run",
                "4",
                "--num-concurrency",
                "2",
                "--additional-request-params",
                params,
            ],
        ))
        .await;
        let runs = b.runs();
        assert_eq!(runs.len(), 1);
        let recs = records(&runs[0].1);
        assert_eq!(recs.len(), 4, "{backend}");
        for rec in recs {
            assert_eq!(rec["error_code"], Value::Null, "{backend}: {rec}");
            assert_eq!(rec["num_output_tokens"], want, "{backend}: {rec}");
            assert!(rec["ttft"].as_f64().unwrap() > 0.0, "{backend}: {rec}");
            assert!(
                rec["e2e_latency"].as_f64().unwrap() >= rec["ttft"].as_f64().unwrap(),
                "{rec}"
            );
        }
        let agg = &runs[0].1["aggregated_metrics"];
        assert_eq!(agg["num_completed_requests"], 4, "{backend}: {agg}");
    }
    let truth = sim.ground_truth();
    assert!(truth.iter().all(|t| t.route == "/v1/chat/completions"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_genai_benchs_rules() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(openai_answer).await;
    let flags = [
        "--traffic-scenario",
        "D(20,3)",
        "--max-requests-per-run",
        "1",
        "--num-concurrency",
        "1",
    ];
    // No key at all: refused before anything is sent, naming the ways to pass one.
    let b = Bench::new();
    let out = output(command(&b, "vllm", &server.base, &flags)).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no API key")
            && err.contains("--api-key")
            && err.contains("MODEL_API_KEY")
            && err.contains("OPENAI_API_KEY")
            && err.contains("Authorization: Bearer <key>"),
        "{err}"
    );
    assert!(server.received.lock().unwrap().is_empty());

    // OPENAI_API_KEY, then MODEL_API_KEY over it, then --model-api-key over all.
    let mut c = command(&b, "openai", &server.base, &flags);
    c.env("OPENAI_API_KEY", "from-openai-env");
    run_ok(c).await;
    let mut c = command(&Bench::new(), "openai", &server.base, &flags);
    c.env("OPENAI_API_KEY", "from-openai-env")
        .env("MODEL_API_KEY", "from-model-env");
    run_ok(c).await;
    let b = Bench::new();
    let mut c = command(&b, "openai", &server.base, &flags);
    c.env("MODEL_API_KEY", "from-model-env").args([
        "--api-key",
        "from-flag",
        "--model-api-key=from-model-flag",
    ]);
    let out = run_ok(c).await;
    // Neither key, used or not, is written anywhere.
    let cmd = b.metadata()["cmd"].as_str().unwrap().to_string();
    assert!(cmd.contains("--model-api-key=[REDACTED]"), "{cmd}");
    for secret in ["from-flag", "from-model-flag"] {
        assert!(!cmd.contains(secret), "{cmd}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    }
    let auth: Vec<String> = server
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(
        auth,
        [
            "Bearer from-openai-env",
            "Bearer from-model-env",
            "Bearer from-model-flag"
        ]
    );
}

#[test]
fn builtin_backend_names_match_the_plugins_info() {
    let _machine = crate::common::shared_machine_blocking();
    for b in genai_bench::plugin::builtin::BUILTIN_PLUGINS {
        let p = crate::common::runtime().load_builtin(b.name).unwrap();
        assert_eq!(p.info().name, b.name);
        assert_eq!(p.info().backends, b.backends, "{}", b.name);
        for alias in b.backends {
            let q = crate::common::runtime().load_builtin(alias).unwrap();
            assert_eq!(q.sha256(), p.sha256(), "{alias}");
            assert!(q.info().serves(alias));
        }
    }
    let err = crate::common::runtime()
        .load_builtin("tgi")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("baseten, openai, vllm, sglang") && err.contains("--plugin"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_folder_is_named_after_the_backend_asked_for() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(openai_answer).await;
    let base = tempfile::tempdir().unwrap();
    let mut c = crate::common::genai_bench();
    c.args([
        "benchmark",
        "--api-backend",
        "vllm",
        "--api-base",
        &server.base,
    ])
    .args(["--api-key", "k", "--api-model-name", "test-model"])
    .arg("--model-tokenizer")
    .arg(test_tokenizer())
    .arg("--experiment-base-dir")
    .arg(base.path())
    .args(["--traffic-scenario", "D(16,4)", "--num-concurrency", "1"])
    .args(["--max-requests-per-run", "1"]);
    run_ok(c).await;
    let names: Vec<String> = std::fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("vllm_text-to-text_"), "{names:?}");
}
