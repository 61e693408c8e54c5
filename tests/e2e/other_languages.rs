//! The plugins written in Python (`plugins/tgi-python`, Hugging Face TGI)
//! and JavaScript (`plugins/ollama-js`, Ollama), built by
//! `plugins/build-other-languages.sh` into `target/plugins-other/`: through
//! the real binary against the simulator and the tests' own server (exact
//! request bodies, API errors, `plugin inspect`), and through the real
//! runtime with every response split at every byte.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use genai_bench::plugin::{Event, LoadedPlugin, Task, Usage};
use genai_bench::simulator::{self, RequestFormat, SimConfig};
use serde_json::{Value, json};

use crate::benchmark::{Bench, KEY, records};
use crate::common::server::{Canned, Received, TestServer};
use crate::common::{assert_success, head, parse_chunks, runtime};

const BUILD_SCRIPT: &str = "plugins/build-other-languages.sh";

/// `target/plugins-other/NAME.wasm`; fails naming the build step when it
/// is missing (CI builds it before the tests).
fn wasm(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins-other")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the Python and JavaScript plugins first with `bash {BUILD_SCRIPT}` \
         (it installs componentize-py and componentize-js; `bash .ci/run` runs it before the tests)",
        path.display()
    );
    warm_cli_cache(name, &path);
    path
}

/// Loads the plugin once through the binary, so that with a cold cache the
/// tests running in parallel do not each compile it (seconds of CPU for a
/// 12-18 MB component): the others wait here and then read the cache.
fn warm_cli_cache(name: &str, path: &std::path::Path) {
    static WARMED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warmed = WARMED.lock().unwrap_or_else(|e| e.into_inner());
    if warmed.iter().any(|n| n == name) {
        return;
    }
    let out = crate::common::genai_bench()
        .args(["plugin", "inspect"])
        .arg(path)
        .output()
        .unwrap();
    assert_success(&out);
    warmed.push(name.to_owned());
}

fn loaded(name: &'static str, cell: &'static OnceLock<Arc<LoadedPlugin>>) -> Arc<LoadedPlugin> {
    cell.get_or_init(|| {
        runtime()
            .load_file(&wasm(name))
            .unwrap_or_else(|e| panic!("load {name}.wasm: {e:#}"))
    })
    .clone()
}

fn tgi() -> Arc<LoadedPlugin> {
    static P: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    loaded("tgi", &P)
}

fn ollama() -> Arc<LoadedPlugin> {
    static P: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    loaded("ollama", &P)
}

/// `Bench`'s command with `--plugin` (which replaces `--api-backend`), at
/// concurrency 1 unless `extra` says otherwise.
async fn bench(b: &Bench, plugin: &str, base: &str, extra: &[&str]) {
    assert_success(&bench_output(b, plugin, base, extra).await);
}

async fn bench_output(b: &Bench, plugin: &str, base: &str, extra: &[&str]) -> std::process::Output {
    // Failures are injected on purpose here; the exit status on errors
    // has tests of its own (honest.rs).
    let mut args = vec!["--plugin", plugin, "--max-error-rate", "1"];
    if !extra.contains(&"--num-concurrency") {
        args.extend(["--num-concurrency", "1"]);
    }
    args.extend_from_slice(extra);
    let mut c = b.command_url(base, &args);
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

fn path_str(p: PathBuf) -> String {
    p.to_str().unwrap().to_owned()
}

async fn sim() -> simulator::SimHandle {
    simulator::start(SimConfig {
        keep_ground_truth: true,
        seed: Some(5),
        ..SimConfig::zero_delay()
    })
    .await
    .unwrap()
}

/// Every record of every run: no error, exactly `out` output tokens counted
/// from the server's usage, the server's prompt count, TTFT iff streaming.
fn check_runs(b: &Bench, requests: usize, out: u64, streaming: bool) {
    let runs = b.runs();
    assert_eq!(runs.len(), 1);
    let recs = records(&runs[0].1);
    assert_eq!(recs.len(), requests);
    for r in recs {
        assert_eq!(r["error_code"], Value::Null, "{r}");
        assert_eq!(r["error_kind"], Value::Null, "{r}");
        assert_eq!(r["num_output_tokens"], out, "{r}");
        assert_eq!(r["output_tokens_source"], "usage", "{r}");
        assert!(r["server_prompt_tokens"].as_u64().unwrap() > 0, "{r}");
        if streaming {
            let ttft = r["ttft"].as_f64().expect("TTFT measured");
            assert!(ttft > 0.0 && ttft <= r["e2e_latency"].as_f64().unwrap());
        } else {
            // Not streamed: the first token came with the whole answer.
            assert_eq!(r["streamed"], false, "{r}");
            assert_eq!(r["ttft"], r["e2e_latency"], "{r}");
        }
    }
    assert_eq!(runs[0].1["aggregated_metrics"]["num_error_requests"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_benchmarks_the_simulator_streaming_and_not() {
    let _m = crate::common::shared_machine().await;
    let plugin = path_str(wasm("tgi"));
    let s = sim().await;
    let base = s.base_url();
    for (streaming, extra) in [(true, None), (false, Some("--disable-streaming"))] {
        let b = Bench::new();
        let mut args = vec![
            "--traffic-scenario",
            "D(40,12)",
            "--num-concurrency",
            "2",
            "--max-requests-per-run",
            "6",
            "--additional-request-params",
            r#"{"temperature": 0.7, "top_p": 0.9}"#,
        ];
        args.extend(extra);
        bench(&b, &plugin, &base, &args).await;
        check_runs(&b, 6, 12, streaming);
        let gt = s.take_ground_truth();
        assert_eq!(gt.len(), 6);
        let route = if streaming {
            "/generate_stream"
        } else {
            "/generate"
        };
        for t in &gt {
            assert_eq!(t.route, route);
            assert_eq!(t.format, Some(RequestFormat::Tgi));
            assert_eq!((t.status, t.output_tokens, t.stream), (200, 12, streaming));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_benchmarks_the_simulator_chat_generate_and_not_streaming() {
    let _m = crate::common::shared_machine().await;
    let plugin = path_str(wasm("ollama"));
    let s = sim().await;
    let base = s.base_url();
    for (streaming, route, format, extra) in [
        (true, "/api/chat", RequestFormat::OllamaChat, vec![]),
        (
            false,
            "/api/chat",
            RequestFormat::OllamaChat,
            vec!["--disable-streaming"],
        ),
        (
            true,
            "/api/generate",
            RequestFormat::OllamaGenerate,
            vec![
                "--additional-request-params",
                r#"{"use_prompt_format": true}"#,
            ],
        ),
    ] {
        let b = Bench::new();
        let mut args = vec![
            "--traffic-scenario",
            "D(40,12)",
            "--num-concurrency",
            "2",
            "--max-requests-per-run",
            "6",
        ];
        args.extend(extra);
        bench(&b, &plugin, &base, &args).await;
        check_runs(&b, 6, 12, streaming);
        let gt = s.take_ground_truth();
        assert_eq!(gt.len(), 6);
        for t in &gt {
            assert_eq!((t.route.as_str(), t.format), (route, Some(format)));
            assert_eq!((t.status, t.output_tokens, t.stream), (200, 12, streaming));
        }
    }
}

/// A TGI stream of `n` tokens with `details`.
fn tgi_stream(n: usize) -> Vec<Vec<u8>> {
    let mut chunks: Vec<Vec<u8>> = (1..=n)
        .map(|i| format!("data:{{\"index\":{i},\"token\":{{\"id\":{i},\"text\":\" tok\",\"logprob\":-1.0,\"special\":false}},\"generated_text\":null,\"details\":null}}\n\n").into_bytes())
        .collect();
    chunks.push(format!("data:{{\"index\":{},\"token\":{{\"id\":2,\"text\":\"</s>\",\"logprob\":0.0,\"special\":true}},\"generated_text\":\"{}\",\"details\":{{\"finish_reason\":\"eos_token\",\"generated_tokens\":{n},\"seed\":null,\"input_length\":7}}}}\n\n", n + 1, " tok".repeat(n)).into_bytes());
    chunks
}

/// An Ollama NDJSON stream (chat or generate) of `n` tokens.
fn ollama_stream(chat: bool, n: usize) -> Vec<Vec<u8>> {
    let piece = |text: &str| {
        if chat {
            format!(r#""message":{{"role":"assistant","content":"{text}"}}"#)
        } else {
            format!(r#""response":"{text}""#)
        }
    };
    let mut chunks: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            format!(
                "{{\"model\":\"m\",\"created_at\":\"2025-01-01T00:00:00Z\",{},\"done\":false}}\n",
                piece(" tok")
            )
            .into_bytes()
        })
        .collect();
    chunks.push(format!("{{\"model\":\"m\",\"created_at\":\"2025-01-01T00:00:00Z\",{},\"done\":true,\"done_reason\":\"length\",\"total_duration\":5,\"prompt_eval_count\":7,\"eval_count\":{n}}}\n", piece("")).into_bytes());
    chunks
}

fn answer(req: &Received) -> Canned {
    match req.path.as_str() {
        "/generate_stream" => Canned::new(200, "text/event-stream", tgi_stream(4)),
        "/api/chat" | "/api/generate" => Canned::new(
            200,
            "application/x-ndjson",
            ollama_stream(req.path == "/api/chat", 4),
        ),
        _ => Canned::new(404, "text/plain", vec![b"no route".to_vec()]),
    }
}

const PARAMS: &str = r#"{"temperature": 0.5, "top_k": 4, "seed": 7, "not_a_param": 1}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_sends_exactly_the_tgi_request() {
    let _m = crate::common::shared_machine().await;
    let plugin = path_str(wasm("tgi"));
    let server = TestServer::start(answer).await;
    let b = Bench::new();
    bench(
        &b,
        &plugin,
        &server.base,
        &[
            "--traffic-scenario",
            "D(30,4)",
            "--max-requests-per-run",
            "2",
            "--additional-request-params",
            PARAMS,
        ],
    )
    .await;
    check_runs(&b, 2, 4, true);
    let req = server.last();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/generate_stream")
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("accept"), Some("text/event-stream"));
    let body = req.json();
    let inputs = body["inputs"].as_str().expect("inputs is the prompt");
    assert!(!inputs.trim().is_empty(), "{body}");
    // min_tokens/ignore_eos (added by the scenario) and unknown keys are
    // not TGI parameters: dropped.
    assert_eq!(
        body,
        json!({"inputs": inputs, "parameters": {"max_new_tokens": 4, "details": true,
               "temperature": 0.5, "top_k": 4, "seed": 7}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_sends_exactly_the_ollama_requests() {
    let _m = crate::common::shared_machine().await;
    let plugin = path_str(wasm("ollama"));
    let server = TestServer::start(answer).await;
    let b = Bench::new();
    bench(
        &b,
        &plugin,
        &server.base,
        &[
            "--traffic-scenario",
            "D(30,4)",
            "--max-requests-per-run",
            "2",
            "--additional-request-params",
            PARAMS,
        ],
    )
    .await;
    check_runs(&b, 2, 4, true);
    let req = server.last();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/api/chat")
    );
    // Ollama has no authentication: the key is not sent anywhere.
    assert_eq!(req.header("authorization"), None);
    assert!(!String::from_utf8_lossy(&req.body).contains(KEY));
    assert_eq!(req.header("accept"), Some("application/x-ndjson"));
    let body = req.json();
    let prompt = body["messages"][0]["content"].as_str().unwrap();
    assert_eq!(
        body,
        json!({"model": "test-model", "messages": [{"role": "user", "content": prompt}],
               "stream": true,
               "options": {"num_predict": 4, "temperature": 0.5, "top_k": 4, "seed": 7}})
    );

    let b = Bench::new();
    bench(
        &b,
        &plugin,
        &server.base,
        &[
            "--traffic-scenario",
            "D(30,4)",
            "--max-requests-per-run",
            "1",
            "--additional-request-params",
            r#"{"use_prompt_format": true, "keep_alive": "5m", "options": {"num_ctx": 2048}}"#,
        ],
    )
    .await;
    check_runs(&b, 1, 4, true);
    let req = server.last();
    assert_eq!(req.path, "/api/generate");
    let body = req.json();
    let prompt = body["prompt"].as_str().unwrap();
    assert_eq!(
        body,
        json!({"model": "test-model", "prompt": prompt, "stream": true, "keep_alive": "5m",
               // JavaScript writes 0.0 as 0, which Ollama reads the same.
               "options": {"num_predict": 4, "temperature": 0, "num_ctx": 2048}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_travel_in_each_format() {
    let _m = crate::common::shared_machine().await;
    let server = TestServer::start(answer).await;
    for name in ["tgi", "ollama"] {
        let b = Bench::new();
        bench(
            &b,
            &path_str(wasm(name)),
            &server.base,
            &[
                "--task",
                "image-text-to-text",
                "--traffic-scenario",
                "I(32,32)",
                "--max-requests-per-run",
                "1",
            ],
        )
        .await;
        let body = server.last().json();
        if name == "tgi" {
            // Markdown images before the prompt, as TGI's vision models read them.
            let inputs = body["inputs"].as_str().unwrap();
            assert!(inputs.starts_with("![](data:image/"), "{}", &inputs[..40]);
        } else {
            // Bare base64 (no data: prefix) in the user message's images.
            let image = body["messages"][0]["images"][0].as_str().unwrap();
            assert!(!image.starts_with("data:"));
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(image)
                .expect("base64");
            assert!(
                bytes.starts_with(&[0xff, 0xd8]) || bytes.starts_with(b"\x89PNG"),
                "not an image"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_counted_as_such() {
    let _m = crate::common::shared_machine().await;
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = TestServer::start(move |req| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tgi = req.path.starts_with("/generate");
        match (tgi, i % 3) {
            (true, 0) => Canned::new(
                422,
                "application/json",
                vec![br#"{"error":"Input validation error: `temperature` must be strictly positive","error_type":"validation"}"#.to_vec()],
            ),
            (true, 1) => {
                let mut chunks = tgi_stream(4);
                chunks.truncate(2);
                chunks.push(br#"data:{"error":"Request failed during generation: Server error: CUDA out of memory","error_type":"generation"}"#.to_vec());
                chunks.push(b"\n\n".to_vec());
                Canned::new(200, "text/event-stream", chunks)
            }
            (false, 0) => Canned::new(
                404,
                "application/json",
                vec![br#"{"error":"model \"test-model\" not found, try pulling it first"}"#.to_vec()],
            ),
            (false, 1) => {
                let mut chunks = ollama_stream(true, 4);
                chunks.truncate(2);
                chunks.push(b"{\"error\":\"an error was encountered while running the model\"}\n".to_vec());
                Canned::new(200, "application/x-ndjson", chunks)
            }
            _ => answer(req),
        }
    })
    .await;
    for name in ["tgi", "ollama"] {
        let b = Bench::new();
        bench(
            &b,
            &path_str(wasm(name)),
            &server.base,
            &[
                "--traffic-scenario",
                "D(20,4)",
                "--max-requests-per-run",
                "6",
            ],
        )
        .await;
        let run = &b.runs()[0].1;
        let agg = &run["aggregated_metrics"];
        assert_eq!(agg["num_requests"], 6, "{name}");
        assert_eq!(agg["num_completed_requests"], 2, "{name}: {agg}");
        let kinds = &agg["error_kinds_frequency"];
        assert_eq!(kinds["http"], 2, "{name}: {kinds}");
        assert_eq!(kinds["api"], 2, "{name}: {kinds}");
        let status = if name == "tgi" { "422" } else { "404" };
        assert_eq!(agg["error_codes_frequency"][status], 2, "{name}: {agg}");
        let messages: Vec<&str> = records(run)
            .iter()
            .filter_map(|r| r["error_message"].as_str())
            .collect();
        let expected = if name == "tgi" {
            [
                "strictly positive (validation)",
                "CUDA out of memory (generation)",
            ]
        } else {
            [
                "not found, try pulling it first",
                "encountered while running the model",
            ]
        };
        for e in expected {
            assert!(
                messages.iter().any(|m| m.contains(e)),
                "{name}: {messages:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_inspect_shows_each_plugins_metadata() {
    let _m = crate::common::shared_machine().await;
    for (name, version, auth, lang) in [
        (
            "tgi",
            "0.1.0",
            json!({"header": {"name": "Authorization", "prefix": "Bearer "}}),
            "Python",
        ),
        ("ollama", "0.1.0", Value::Null, "JavaScript"),
    ] {
        let path = wasm(name);
        let out = tokio::task::spawn_blocking(move || {
            crate::common::genai_bench()
                .args(["plugin", "inspect", "--json"])
                .arg(path)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert_success(&out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["name"], name);
        assert_eq!(v["version"], version);
        assert_eq!(v["auth"], auth);
        // Built against contract 0.2.0 on purpose: older contracts keep loading.
        assert_eq!(v["contract"], "0.2.0");
        assert_eq!(v["tasks"], json!(["text-to-text", "image-text-to-text"]));
        assert!(v["description"].as_str().unwrap().contains(lang), "{v}");
        let imports: Vec<&str> = v["imports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap())
            .collect();
        assert!(
            imports.contains(&"genai-bench:backend/host@0.2.0"),
            "{imports:?}"
        );
        assert!(
            !imports.iter().any(|i| i.starts_with("wasi:http")),
            "{name} must not import wasi:http: {imports:?}"
        );
        assert!(
            v["exports"]
                .as_array()
                .unwrap()
                .contains(&json!("genai-bench:backend/backend@0.2.0"))
        );
    }
}

// ---------------------------------------------------------------- parsing

fn content(s: &str) -> Event {
    Event::Content(s.into())
}

fn usage(p: Option<u64>, c: Option<u64>) -> Event {
    Event::Usage(Usage {
        prompt_tokens: p,
        completion_tokens: c,
        reasoning_tokens: None,
    })
}

/// Parse `body` whole, split at every byte, and byte by byte: all must
/// give `expected`.
async fn check_all_splits(
    plugin: &Arc<LoadedPlugin>,
    status: u16,
    ct: &str,
    stream: bool,
    body: &[u8],
    expected: &[Event],
) {
    let h = head(status, ct, Task::TextToText, stream);
    let whole = parse_chunks(plugin, &h, &[body])
        .await
        .expect("parse whole");
    assert_eq!(whole, expected, "whole body");
    for k in 1..body.len() {
        let split = parse_chunks(plugin, &h, &[&body[..k], &body[k..]])
            .await
            .expect("parse split");
        assert_eq!(split, expected, "split at byte {k}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    let one_by_one = parse_chunks(plugin, &h, &bytes).await.expect("parse bytes");
    assert_eq!(one_by_one, expected, "byte by byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_responses_parse_the_same_however_split() {
    let _m = crate::common::shared_machine().await;
    let p = tgi();
    let stream = concat!(
        ": keep-alive\r\n\r\n",
        "data:{\"index\":1,\"token\":{\"id\":9,\"text\":\"Hel\",\"logprob\":-0.1,\"special\":false},\"generated_text\":null,\"details\":null}\r\n\r\n",
        "data: {\"index\":2,\"token\":{\"id\":8,\"text\":\"lo é\",\"logprob\":-0.2,\"special\":false},\"generated_text\":null,\"details\":null}\n\n",
        "data:{\"index\":3,\"token\":{\"id\":2,\"text\":\"</s>\",\"logprob\":0.0,\"special\":true},\"generated_text\":\"Hello é\",\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":3,\"seed\":null,\"input_length\":6}}\n\n",
    );
    check_all_splits(
        &p,
        200,
        "text/event-stream",
        true,
        stream.as_bytes(),
        &[
            content("Hel"),
            content("lo é"),
            usage(Some(6), Some(3)),
            Event::End,
        ],
    )
    .await;
    let whole = r#"{"generated_text":"Hello é","details":{"finish_reason":"length","generated_tokens":2,"seed":null,"prefill":[{"id":1,"text":"a","logprob":null},{"id":2,"text":"b","logprob":-1.0}],"tokens":[]}}"#;
    check_all_splits(
        &p,
        200,
        "application/json",
        false,
        whole.as_bytes(),
        &[content("Hello é"), usage(Some(2), Some(2)), Event::End],
    )
    .await;
    let error = r#"{"error":"Model is overloaded","error_type":"overloaded"}"#;
    check_all_splits(
        &p,
        429,
        "application/json",
        true,
        error.as_bytes(),
        &[Event::Error {
            code: Some(429),
            message: "Model is overloaded (overloaded)".into(),
        }],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_responses_parse_the_same_however_split() {
    let _m = crate::common::shared_machine().await;
    let p = ollama();
    let chat = concat!(
        "{\"model\":\"m\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hmm\"},\"done\":false}\n",
        "{\"model\":\"m\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\r\n",
        "{\"model\":\"m\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"lo é\"},\"done\":false}\n",
        "{\"model\":\"m\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":9,\"prompt_eval_count\":6,\"eval_count\":3}",
    );
    check_all_splits(
        &p,
        200,
        "application/x-ndjson",
        true,
        chat.as_bytes(),
        &[
            Event::Reasoning("hmm".into()),
            content("Hel"),
            content("lo é"),
            usage(Some(6), Some(3)),
            Event::End,
        ],
    )
    .await;
    // A cached prompt: Ollama leaves prompt_eval_count out.
    let generate = r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","response":"Hello é","done":true,"done_reason":"length","context":[1,2],"eval_count":2}"#;
    check_all_splits(
        &p,
        200,
        "application/json",
        false,
        generate.as_bytes(),
        &[content("Hello é"), usage(None, Some(2)), Event::End],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_faults_reach_each_plugin_in_its_dialect() {
    use genai_bench::simulator::{FaultKind, FaultRate};
    let _m = crate::common::shared_machine().await;
    for (fault, kind, code) in [
        (FaultKind::ErrorInStream, "api", None),
        (FaultKind::Unavailable, "http", Some(503)),
    ] {
        let s = simulator::start(SimConfig {
            keep_ground_truth: true,
            fault_rates: vec![FaultRate {
                kind: fault,
                probability: 1.0,
            }],
            ..SimConfig::zero_delay()
        })
        .await
        .unwrap();
        for name in ["tgi", "ollama"] {
            for streaming in [true, false] {
                let b = Bench::new();
                let mut args = vec![
                    "--traffic-scenario",
                    "D(20,6)",
                    "--max-requests-per-run",
                    "3",
                ];
                if !streaming {
                    args.push("--disable-streaming");
                }
                // Every request fails: the results are written and the
                // exit status says so.
                let out = bench_output(&b, &path_str(wasm(name)), &s.base_url(), &args).await;
                assert!(!out.status.success());
                let run = &b.runs()[0].1;
                for r in records(run) {
                    let what = format!("{name} {fault:?} streaming={streaming}: {r}");
                    assert_eq!(r["error_kind"], kind, "{what}");
                    assert!(
                        r["error_message"]
                            .as_str()
                            .unwrap()
                            .contains("simulated overload"),
                        "{what}"
                    );
                    if let Some(code) = code {
                        assert_eq!(r["error_code"], code, "{what}");
                    }
                }
                assert_eq!(run["aggregated_metrics"]["num_error_requests"], 3);
            }
        }
        let gt = s.ground_truth();
        assert_eq!(gt.len(), 12);
        assert!(gt.iter().all(|t| t.fault == Some(fault)), "{gt:?}");
    }
}
