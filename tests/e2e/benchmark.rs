//! `genai-bench benchmark` through the binary, against HTTP servers on
//! 127.0.0.1: token counts, stop conditions, warmup/cooldown, error classes,
//! Ctrl-C, the result files' schema and key redaction.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::server::{Canned, Received, TestServer};

pub const KEY: &str = "bt-secret-key-0123456789";

/// A tokenizer trained by the tests on part of the built-in corpus, once.
pub fn test_tokenizer() -> PathBuf {
    static T: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-tokenizer");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            let corpus = genai_bench::sampling::corpus::BUILTIN_TEXT;
            let mut end = 400_000.min(corpus.len());
            while !corpus.is_char_boundary(end) {
                end -= 1;
            }
            let tmp = dir.join(format!("tokenizer.{}.json", std::process::id()));
            genai_bench::tokenizer::train_bpe(&corpus[..end], 2000, &tmp).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
        path
    })
    .clone()
}

fn tokenizer() -> genai_bench::tokenizer::TokenCounter {
    genai_bench::tokenizer::TokenCounter::load(test_tokenizer().to_str().unwrap()).unwrap()
}

/// An OpenAI-style streaming answer with exactly `max_tokens` tokens.
pub fn sse_answer(req: &Received, delay: Duration) -> Canned {
    let body = req.json();
    let n = body["max_tokens"].as_u64().unwrap_or(8) as usize;
    let stream = body["stream"].as_bool().unwrap_or(false);
    if !stream {
        let text = " tok".repeat(n);
        let json = serde_json::json!({
            "choices": [{"message": {"content": text}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": n}
        });
        return Canned::new(200, "application/json", vec![json.to_string().into_bytes()]);
    }
    let mut chunks = vec![
        b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n".to_vec(),
    ];
    for _ in 0..n {
        chunks.push(b"data: {\"choices\":[{\"delta\":{\"content\":\" tok\"}}]}\n\n".to_vec());
    }
    chunks.push(
        format!("data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":{n}}}}}\n\ndata: [DONE]\n\n")
            .into_bytes(),
    );
    let mut c = Canned::new(200, "text/event-stream", chunks);
    c.delay = delay;
    c
}

pub struct Bench {
    dir: tempfile::TempDir,
}

impl Bench {
    pub fn new() -> Self {
        Bench {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, server: &TestServer, extra: &[&str]) -> Command {
        self.command_url(
            &format!("{}/environments/production/predict", server.base),
            extra,
        )
    }

    /// The benchmark command against `url`, with the test key, tokenizer
    /// and folder; `extra` flags after them. No preflight request, so the
    /// server sees exactly the run's requests (the preflight has tests of
    /// its own: `honest.rs`, and the spec commands run with it).
    pub fn command_url(&self, url: &str, extra: &[&str]) -> Command {
        let mut c = self.command_url_with_preflight(url, extra);
        c.arg("--no-preflight");
        c
    }

    /// [`Bench::command_url`] with the preflight request, as users run it.
    pub fn command_url_with_preflight(&self, url: &str, extra: &[&str]) -> Command {
        let mut c = crate::common::genai_bench();
        c.args(["benchmark", "--api-backend", "baseten", "--api-base"])
            .arg(url)
            .args([
                "--api-key",
                KEY,
                "--api-model-name",
                "test-model",
                "--model-tokenizer",
            ])
            .arg(test_tokenizer())
            .args(["--experiment-base-dir"])
            .arg(self.dir.path())
            .args(["--experiment-folder-name", "exp"])
            .args(extra);
        c
    }

    fn run(&self, server: &TestServer, extra: &[&str]) -> Output {
        let out = self.command(server, extra).output().unwrap();
        assert!(
            out.status.success(),
            "benchmark failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        out
    }

    pub fn folder(&self) -> PathBuf {
        self.dir.path().join("exp")
    }

    /// The experiment base dir (`--experiment-base-dir`).
    pub fn base(&self) -> &Path {
        self.dir.path()
    }

    pub fn metadata(&self) -> Value {
        read_json(&self.folder().join("experiment_metadata.json"))
    }

    /// Run files, sorted by name.
    pub fn runs(&self) -> Vec<(String, Value)> {
        let mut v: Vec<_> = std::fs::read_dir(self.folder())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                // Reports (xlsx, plots, report.html) sit next to the run files.
                n.ends_with(".json") && n != "experiment_metadata.json"
            })
            .map(|p| {
                (
                    p.file_name().unwrap().to_str().unwrap().to_string(),
                    read_json(&p),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn records(run: &Value) -> &Vec<Value> {
    run["individual_request_metrics"].as_array().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_token_counts_files_and_schema() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::ZERO)).await;
    let b = Bench::new();
    let out = b.run(
        &server,
        &[
            "--traffic-scenario",
            "D(64,16)",
            "--traffic-scenario",
            "P(40,24)/8",
            "--num-concurrency",
            "2",
            "--num-concurrency",
            "4",
            "--max-requests-per-run",
            "12",
            "--max-time-per-run",
            "1",
            "--additional-request-params",
            r#"{"temperature": 0.7}"#,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TTFT (ms)"),
        "summary table missing: {stderr}"
    );

    let runs = b.runs();
    let names: Vec<&str> = runs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(runs.len(), 4, "{names:?}");
    let re = regex_lite(&names);
    assert!(re, "file names do not follow genai-bench: {names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("D64_16_text-to-text_tokenizer_num_concurrency_2_time_"))
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("P40_24_8_text-to-text_tokenizer_num_concurrency_4_time_"))
    );

    let tok = tokenizer();
    for (name, run) in &runs {
        assert_eq!(run["_time_unit"], "s");
        let recs = records(run);
        assert_eq!(recs.len(), 12, "{name}");
        let (input, output) = if name.starts_with("D64") {
            (64, 16)
        } else {
            (64, 8)
        };
        for r in recs {
            assert_eq!(r["error_code"], Value::Null, "{name}: {r}");
            assert_eq!(r["num_input_tokens"], input, "{name}");
            assert_eq!(r["num_output_tokens"], output, "{name}");
            assert!(r["ttft"].as_f64().unwrap() > 0.0);
            assert!(r["e2e_latency"].as_f64().unwrap() >= r["ttft"].as_f64().unwrap());
            assert!(r["tpot"].as_f64().is_some());
            assert_eq!(
                r["plugin"].as_str().unwrap().split(' ').next(),
                Some("baseten")
            );
        }
        let agg = &run["aggregated_metrics"];
        for k in [
            "scenario",
            "num_concurrency",
            "batch_size",
            "iteration_type",
            "run_duration",
            "mean_output_throughput_tokens_per_s",
            "mean_input_throughput_tokens_per_s",
            "mean_total_tokens_throughput_tokens_per_s",
            "mean_total_chars_per_hour",
            "requests_per_second",
            "error_codes_frequency",
            "error_rate",
            "num_error_requests",
            "num_completed_requests",
            "num_requests",
            "stats",
        ] {
            assert!(agg.get(k).is_some(), "aggregated_metrics.{k} missing");
        }
        for field in [
            "ttft",
            "tpot",
            "e2e_latency",
            "output_latency",
            "output_inference_speed",
            "num_input_tokens",
            "num_output_tokens",
            "total_tokens",
            "input_throughput",
            "output_throughput",
        ] {
            for s in [
                "min", "max", "mean", "stddev", "sum", "p25", "p50", "p75", "p90", "p95", "p99",
            ] {
                assert!(
                    agg["stats"][field][s].is_number(),
                    "stats.{field}.{s} in {name}"
                );
            }
        }
        assert_eq!(agg["num_completed_requests"], 12);
        assert_eq!(agg["error_rate"], 0.0);
        assert_eq!(
            agg["stats"]["num_output_tokens"]["sum"],
            (12 * output) as f64
        );
        let expect_tp = (12 * output) as f64 / agg["run_duration"].as_f64().unwrap();
        let tp = agg["mean_output_throughput_tokens_per_s"].as_f64().unwrap();
        assert!(
            (tp - expect_tp).abs() < 1e-6 * expect_tp,
            "{tp} vs {expect_tp}"
        );
    }

    // The prompts the server received have the scenario's exact token count,
    // and P's prefix is shared.
    let got = server.received.lock().unwrap().clone();
    assert_eq!(got.len(), 48);
    let mut prefixes = std::collections::HashSet::new();
    for r in &got {
        let body = r.json();
        let prompt = body["messages"][0]["content"].as_str().unwrap();
        assert_eq!(tok.count(prompt), 64, "prompt: {prompt:?}");
        assert_eq!(body["temperature"], 0.7);
        assert_eq!(body["ignore_eos"], true);
        let max = body["max_tokens"].as_u64().unwrap();
        assert_eq!(body["min_tokens"].as_u64(), Some(max));
        if max == 8 {
            let ids = tok.encode(prompt);
            prefixes.insert(tok.decode(&ids[..40]));
        }
    }
    assert_eq!(prefixes.len(), 1, "P shares one prefix across its requests");

    let m = b.metadata();
    for k in [
        "cmd",
        "benchmark_version",
        "api_backend",
        "auth_config",
        "api_model_name",
        "server_model_tokenizer",
        "model",
        "task",
        "num_concurrency",
        "batch_size",
        "iteration_type",
        "traffic_scenario",
        "additional_request_params",
        "server_engine",
        "server_version",
        "server_gpu_type",
        "server_gpu_count",
        "max_time_per_run_s",
        "max_requests_per_run",
        "experiment_folder_name",
        "metrics_time_unit",
        "dataset_path",
        "character_token_ratio",
    ] {
        assert!(m.get(k).is_some(), "metadata.{k} missing");
    }
    assert_eq!(m["api_backend"], "baseten");
    assert_eq!(m["num_concurrency"], serde_json::json!([2, 4]));
    assert_eq!(
        m["traffic_scenario"],
        serde_json::json!(["D(64,16)", "P(40,24)/8"])
    );
    assert_eq!(m["dataset_path"], "None");
    assert!(m["character_token_ratio"].as_f64().unwrap() > 1.0);
}

/// genai-bench's loader regex for run files.
fn regex_lite(names: &[&str]) -> bool {
    names.iter().all(|n| {
        let Some(rest) = n.strip_suffix("s.json") else {
            return false;
        };
        let Some((head, secs)) = rest.rsplit_once("_time_") else {
            return false;
        };
        let Some((head, value)) = head.rsplit_once('_') else {
            return false;
        };
        secs.chars().all(|c| c.is_ascii_digit())
            && value.chars().all(|c| c.is_ascii_digit() || c == '.')
            && (head.ends_with("_num_concurrency") || head.ends_with("_batch_size"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_and_max_time_stop_a_run() {
    let _machine = crate::common::shared_machine().await;
    // Max requests: exactly N requests reach the server.
    let server = TestServer::start(|r| sse_answer(r, Duration::ZERO)).await;
    let b = Bench::new();
    b.run(
        &server,
        &[
            "--traffic-scenario",
            "D(16,4)",
            "--num-concurrency",
            "3",
            "--max-requests-per-run",
            "7",
            "--max-time-per-run",
            "5",
        ],
    );
    assert_eq!(server.received.lock().unwrap().len(), 7);
    assert_eq!(records(&b.runs()[0].1).len(), 7);

    // Max time: each response takes ~0.5 s; 0.02 min = 1.2 s.
    let server = TestServer::start(|r| sse_answer(r, Duration::from_millis(100))).await;
    let b = Bench::new();
    let t = Instant::now();
    b.run(
        &server,
        &[
            "--traffic-scenario",
            "D(16,4)",
            "--num-concurrency",
            "2",
            "--max-requests-per-run",
            "1000",
            "--max-time-per-run",
            "0.02",
        ],
    );
    let elapsed = t.elapsed();
    let n = records(&b.runs()[0].1).len();
    assert!(
        (2..=12).contains(&n),
        "{n} requests in a 1.2 s run of 0.6 s requests at concurrency 2"
    );
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    assert_eq!(
        server.received.lock().unwrap().len(),
        n,
        "every sent request is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_and_cooldown_are_left_out() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::ZERO)).await;
    let b = Bench::new();
    b.run(
        &server,
        &[
            "--traffic-scenario",
            "D(16,4)",
            "--num-concurrency",
            "1",
            "--max-requests-per-run",
            "20",
            "--warmup-ratio",
            "0.2",
            "--cooldown-ratio",
            "0.1",
        ],
    );
    let run = &b.runs()[0].1;
    let recs = records(run);
    assert_eq!(recs.len(), 20, "excluded requests stay in the records");
    let warm = recs.iter().filter(|r| r["excluded"] == "warmup").count();
    let cool = recs.iter().filter(|r| r["excluded"] == "cooldown").count();
    assert_eq!((warm, cool), (4, 2));
    assert!(recs[..4].iter().all(|r| r["excluded"] == "warmup"));
    assert!(recs[18..].iter().all(|r| r["excluded"] == "cooldown"));
    let agg = &run["aggregated_metrics"];
    assert_eq!(agg["num_requests"], 14);
    assert_eq!(agg["num_warmup_requests"], 4);
    assert_eq!(agg["stats"]["num_output_tokens"]["sum"], 14.0 * 4.0);
    // The duration is the window from the end of warmup to the last kept
    // completion, so it is shorter than the wall time of the run.
    let dur = agg["run_duration"].as_f64().unwrap();
    let wall = agg["run_wall_duration"].as_f64().unwrap();
    assert!(dur > 0.0 && dur < wall, "{dur} vs {wall}");
    let ratio_bad = b
        .command(
            &server,
            &[
                "--traffic-scenario",
                "D(16,4)",
                "--warmup-ratio",
                "0.6",
                "--cooldown-ratio",
                "0.5",
            ],
        )
        .output()
        .unwrap();
    assert!(!ratio_bad.status.success());
    assert!(
        String::from_utf8_lossy(&ratio_bad.stderr)
            .contains("--warmup-ratio 0.6 plus --cooldown-ratio 0.5")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_is_counted_and_no_request_is_lost() {
    let _machine = crate::common::shared_machine().await;
    let n = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start(move |r| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        match i % 6 {
            0 => Canned::new(
                429,
                "application/json",
                vec![br#"{"error": "rate limited"}"#.to_vec()],
            ),
            1 => Canned::new(500, "text/plain", vec![b"boom".to_vec()]),
            2 => Canned::new(
                200,
                "text/event-stream",
                vec![b"data: {\"error\":{\"code\":503,\"message\":\"overloaded\"}}\n\n".to_vec()],
            ),
            3 => Canned::new(
                200,
                "text/event-stream",
                vec![b"data: {\"choices\": [oops\n\n".to_vec()],
            ),
            4 => {
                let mut c = sse_answer(r, Duration::ZERO);
                c.cut_after = Some(2);
                c
            }
            _ => sse_answer(r, Duration::ZERO),
        }
    })
    .await;
    let b = Bench::new();
    b.run(
        &server,
        &[
            "--traffic-scenario",
            "D(16,4)",
            "--num-concurrency",
            "1",
            "--max-requests-per-run",
            "12",
            // Errors are the point here; the exit status has its own test.
            "--max-error-rate",
            "1",
        ],
    );
    let run = &b.runs()[0].1;
    assert_eq!(records(run).len(), 12);
    let agg = &run["aggregated_metrics"];
    assert_eq!(agg["num_requests"], 12);
    assert_eq!(agg["num_completed_requests"], 2);
    assert_eq!(agg["num_error_requests"], 10);
    assert!((agg["error_rate"].as_f64().unwrap() - 10.0 / 12.0).abs() < 1e-9);
    let codes = &agg["error_codes_frequency"];
    assert_eq!(codes["429"], 2);
    assert_eq!(codes["503"], 2);
    let kinds = &agg["error_kinds_frequency"];
    assert_eq!(kinds["http"], 4, "{kinds}");
    assert_eq!(kinds["api"], 2, "{kinds}");
    // Broken JSON from the server is the server's fault, with its status.
    assert_eq!(kinds["malformed"], 2, "{kinds}");
    assert_eq!(codes["200"], 2, "{codes}");
    assert_eq!(kinds["reset"], 2, "{kinds}");

    // Nothing listening: every request is a connect error, the run is still
    // reported (not a crash), and the exit status says it failed.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = TestServer {
        base: format!("http://{}", l.local_addr().unwrap()),
        received: Default::default(),
    };
    drop(l);
    let b = Bench::new();
    let out = b
        .command(
            &dead,
            &[
                "--traffic-scenario",
                "D(16,4)",
                "--num-concurrency",
                "2",
                "--max-requests-per-run",
                "4",
            ],
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let agg = &b.runs()[0].1["aggregated_metrics"];
    assert_eq!(agg["error_kinds_frequency"]["connect"], 4);
    assert_eq!(agg["error_rate"], 1.0);
    assert_eq!(agg["stats"]["ttft"]["mean"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_writes_what_was_measured() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::from_millis(150))).await;
    let b = Bench::new();
    let child = b
        .command(
            &server,
            &[
                "--traffic-scenario",
                "D(16,4)",
                "--num-concurrency",
                "2",
                "--max-requests-per-run",
                "1000",
                "--max-time-per-run",
                "5",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while server.received.lock().unwrap().len() < 6 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "benchmark never sent requests"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = b.runs();
    assert_eq!(runs.len(), 1);
    let recs = records(&runs[0].1);
    assert!(recs.len() >= 4, "{}", recs.len());
    assert_eq!(runs[0].1["aggregated_metrics"]["interrupted"], true);
    assert_eq!(b.metadata()["interrupted"], true);
    // Requests in flight at the interrupt finished within the grace period.
    assert_eq!(recs.len(), server.received.lock().unwrap().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_records_ttft_at_the_whole_answer_and_keeps_it_out_of_the_stats() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::ZERO)).await;
    let b = Bench::new();
    b.run(
        &server,
        &[
            "--traffic-scenario",
            "D(16,5)",
            "--num-concurrency",
            "1",
            "--max-requests-per-run",
            "3",
            "--disable-streaming",
            "--metrics-time-unit",
            "ms",
        ],
    );
    let run = &b.runs()[0].1;
    assert_eq!(run["_time_unit"], "ms");
    for r in records(run) {
        // The whole answer came at once: the first token with it, no
        // output phase (genai-bench's models want the figures on a success).
        assert_eq!(r["streamed"], false);
        assert!(r["e2e_latency"].as_f64().unwrap() > 0.0);
        assert_eq!(r["ttft"], r["e2e_latency"]);
        assert_eq!(r["tpot"], 0.0);
        assert_eq!(r["output_latency"], 0.0);
        assert_eq!(r["num_output_tokens"], 5);
    }
    // ...and none of those placeholders reaches the statistics.
    let agg = &run["aggregated_metrics"];
    assert_eq!(agg["ttft_measured"], false);
    assert_eq!(agg["stats"]["ttft"]["mean"], Value::Null);
    assert_eq!(agg["stats"]["tpot"]["mean"], Value::Null);
    assert!(agg["stats"]["e2e_latency"]["mean"].as_f64().unwrap() > 0.0);
    assert!(
        server
            .received
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.json()["stream"] == false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_appears_in_files_or_logs() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::ZERO)).await;
    let b = Bench::new();
    let out = b
        .command(
            &server,
            &[
                "--traffic-scenario",
                "D(16,4)",
                "--num-concurrency",
                "1",
                "--max-requests-per-run",
                "2",
            ],
        )
        .env("LOG_LEVEL", "DEBUG")
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("request POST"),
        "DEBUG logs each request: {logs}"
    );
    assert!(logs.contains("<redacted>"));
    assert!(!logs.contains(KEY), "key in logs");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY));
    for e in std::fs::read_dir(b.folder()).unwrap() {
        // Every file, the binary reports (xlsx, png) included.
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "key in {}",
            p.display()
        );
    }
    assert!(
        b.metadata()["cmd"]
            .as_str()
            .unwrap()
            .contains("--api-key [REDACTED]")
    );
    // ...while the server did get it, as Baseten expects.
    assert_eq!(
        server.last().header("authorization"),
        Some(format!("Api-Key {KEY}").as_str())
    );

    // MODEL_API_KEY works too, and a missing key is a clear error (in a
    // folder of its own: an experiment folder is never written twice).
    let b = Bench::new();
    let mut c = b.command(
        &server,
        &[
            "--traffic-scenario",
            "D(16,4)",
            "--num-concurrency",
            "1",
            "--max-requests-per-run",
            "1",
        ],
    );
    let args: Vec<String> = c
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let pos = args.iter().position(|a| a == "--api-key").unwrap();
    let mut c2 = Command::new(c.get_program());
    c2.args(args[..pos].iter().chain(args[pos + 2..].iter()));
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => c2.env(k, v),
            None => c2.env_remove(k),
        };
    }
    let missing = c2.output().unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no API key"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    c2.env("MODEL_API_KEY", "env-key-987654");
    let ok = c2.output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        server.last().header("authorization"),
        Some("Api-Key env-key-987654")
    );
    let _ = &mut c;
}

#[test]
fn bad_flags_name_the_flag_the_value_and_what_is_accepted() {
    let _machine = crate::common::shared_machine_blocking();
    let run = |args: &[&str]| {
        let out = crate::common::genai_bench()
            .args([
                "benchmark",
                "--api-base",
                "http://127.0.0.1:9/x",
                "--api-key",
                "k",
                "--api-model-name",
                "m",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&["--traffic-scenario", "Q(1,2)"]);
    assert!(
        e.contains("--traffic-scenario") && e.contains("Q(1,2)") && e.contains("D("),
        "{e}"
    );
    let e = run(&["--task", "text-to-video"]);
    assert!(
        e.contains("text-to-video") && e.contains("text-to-text"),
        "{e}"
    );
    let e = run(&["--num-concurrency", "0"]);
    assert!(e.contains("--num-concurrency") && e.contains('0'), "{e}");
    let e = run(&["--additional-request-params", "[1]"]);
    assert!(
        e.contains("--additional-request-params") && e.contains("JSON object"),
        "{e}"
    );
    let e = run(&["--metrics-time-unit", "h"]);
    assert!(e.contains("--metrics-time-unit") && e.contains("ms"), "{e}");
    let e = run(&["--max-time-per-run", "-1"]);
    assert!(e.contains("--max-time-per-run"), "{e}");
    // A negative number is a bad value of its flag, not "unexpected
    // argument '-1'".
    for flag in [
        "--num-concurrency",
        "--max-requests-per-run",
        "--batch-size",
        "--warmup-ratio",
        "--request-timeout",
        "--qps-level",
    ] {
        let e = run(&[flag, "-1"]);
        assert!(
            e.contains(flag) && e.contains("-1") && !e.contains("unexpected argument"),
            "{flag}: {e}"
        );
    }
    // Tasks are case-insensitive, as genai-bench's: the error is about
    // something else (no API key), not the task.
    let e = run(&["--task", "Text-To-Text"]);
    assert!(!e.contains("--task"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_pin_and_limits_are_flags() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::ZERO)).await;
    let sha = crate::common::baseten().sha256().to_string();
    let base = [
        "--traffic-scenario",
        "D(16,4)",
        "--num-concurrency",
        "1",
        "--max-requests-per-run",
        "1",
    ];

    let b = Bench::new();
    let mut args = base.to_vec();
    args.extend(["--plugin-sha256", sha.as_str()]);
    b.run(&server, &args);

    let wrong = "0".repeat(64);
    let mut args = base.to_vec();
    args.extend(["--plugin-sha256", wrong.as_str()]);
    let out = b.command(&server, &args).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pinned by --plugin-sha256") && err.contains(&sha),
        "{err}"
    );

    // A 1 MiB memory cap is too small for the plugin: the error names the
    // plugin, its version and the limit.
    let mut args = base.to_vec();
    args.extend(["--plugin-memory-mb", "1"]);
    let out = b.command(&server, &args).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("memory limit of 1 MiB"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drawn_scenarios_record_what_was_sent() {
    let _machine = crate::common::shared_machine().await;
    let tok = tokenizer();
    for scenario in ["N(60,20)/(12,4)", "U(20,80)/(3,9)", "U(50,7)"] {
        let server = TestServer::start(|r| sse_answer(r, Duration::ZERO)).await;
        let b = Bench::new();
        b.run(
            &server,
            &[
                "--traffic-scenario",
                scenario,
                "--num-concurrency",
                "2",
                "--max-requests-per-run",
                "16",
            ],
        );
        let run = &b.runs()[0].1;
        // Records and requests pair up as multisets: input tokens are the
        // prompt's exact count, output tokens the max_tokens asked for.
        let mut recorded: Vec<(u64, u64)> = records(run)
            .iter()
            .map(|r| {
                (
                    r["num_input_tokens"].as_u64().unwrap(),
                    r["num_output_tokens"].as_u64().unwrap(),
                )
            })
            .collect();
        let mut sent: Vec<(u64, u64)> = server
            .received
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                let body = r.json();
                let prompt = body["messages"][0]["content"].as_str().unwrap().to_string();
                (
                    tok.count(&prompt) as u64,
                    body["max_tokens"].as_u64().unwrap(),
                )
            })
            .collect();
        recorded.sort();
        sent.sort();
        assert_eq!(recorded, sent, "{scenario}");
        let distinct: std::collections::HashSet<_> = sent.iter().map(|s| s.0).collect();
        assert!(
            distinct.len() > 3,
            "{scenario}: lengths are drawn, got {distinct:?}"
        );
        for (input, output) in &sent {
            match scenario {
                "U(20,80)/(3,9)" => {
                    assert!(
                        (20..=80).contains(input) && (3..=9).contains(output),
                        "{input} {output}"
                    )
                }
                "U(50,7)" => assert!((1..=50).contains(input) && (1..=7).contains(output)),
                _ => assert!(*input >= 1 && *output >= 1),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_quoting_an_echoed_key_in_its_log_is_redacted() {
    let _machine = crate::common::shared_machine().await;
    // A server that echoes the key it was sent back into the stream.
    let server = TestServer::start(|r| {
        let key = r.header("authorization").unwrap_or("").to_string();
        let line = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"echo {key}\"}}}}]}}\n\ndata: [DONE]\n\n"
        );
        Canned::new(200, "text/event-stream", vec![line.into_bytes()])
    })
    .await;
    let b = Bench::new();
    let plugin = crate::common::test_plugin_path("hostile_plugin");
    let out = b
        .command(
            &server,
            &[
                "--plugin",
                plugin.to_str().unwrap(),
                "--traffic-scenario",
                "D(16,4)",
                "--num-concurrency",
                "1",
                "--max-requests-per-run",
                "2",
                "--additional-request-params",
                r#"{"hostile": "log-body"}"#,
            ],
        )
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("server said:"),
        "the plugin's warning is shown: {logs}"
    );
    assert!(logs.contains("<redacted>"), "{logs}");
    assert!(
        !logs.contains(KEY),
        "key leaked through a plugin log: {logs}"
    );
}

/// The hostile plugin's `trap-some` rule: FNV-1a of the prompt, 0 mod 10.
fn traps(prompt: &str) -> bool {
    let h = prompt.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    h % 10 == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_trapping_on_some_requests_loses_no_other_measurement() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::from_millis(2))).await;
    let b = Bench::new();
    let plugin = crate::common::test_plugin_path("hostile_plugin");
    let out = b
        .command(
            &server,
            &[
                "--plugin",
                plugin.to_str().unwrap(),
                "--traffic-scenario",
                "D(24,6)",
                "--num-concurrency",
                "32",
                "--max-requests-per-run",
                "200",
                "--additional-request-params",
                r#"{"hostile": "trap-some"}"#,
                // Traps are the point: no exit status 3 for them.
                "--max-error-rate",
                "1",
            ],
        )
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let expected_traps = server
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| traps(r.json()["messages"][0]["content"].as_str().unwrap()))
        .count();
    assert!(expected_traps > 0, "some prompts hash to a trap");
    let run = &b.runs()[0].1;
    let recs = records(run);
    assert_eq!(recs.len(), 200, "every request is recorded");
    let plugin_errors: Vec<_> = recs
        .iter()
        .filter(|r| r["error_kind"] == "plugin")
        .collect();
    assert_eq!(plugin_errors.len(), expected_traps);
    for e in &plugin_errors {
        let msg = e["error_message"].as_str().unwrap();
        assert!(
            msg.contains("hostile 0.1.0") && msg.contains("panicked"),
            "{msg}"
        );
    }
    for r in recs.iter().filter(|r| r["error_kind"].is_null()) {
        assert_eq!(r["num_output_tokens"], 6, "{r}");
        assert_eq!(r["num_input_tokens"], 24, "{r}");
        assert!(r["ttft"].as_f64().unwrap() > 0.0);
    }
    let agg = &run["aggregated_metrics"];
    assert_eq!(agg["num_completed_requests"], (200 - expected_traps) as u64);
    assert_eq!(
        agg["error_kinds_frequency"]["plugin"],
        expected_traps as u64
    );
    assert!(b.metadata()["plugin"]["name"] == "hostile");
}
