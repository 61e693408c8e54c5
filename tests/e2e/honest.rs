//! Honest results under failure: what a user acts on must say what
//! happened. The binary against HTTP servers on 127.0.0.1 that refuse,
//! fail, stall or hang up; each case of a failed run looking valid, a run
//! outliving its time limit, results overwritten or a crash on input.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::benchmark::{Bench, records, sse_answer};
use crate::common::server::{Canned, TestServer};

fn url(server: &TestServer) -> String {
    format!("{}/environments/production/predict", server.base)
}

async fn output(mut cmd: Command) -> (std::process::Output, Duration) {
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (out, t.elapsed())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn forbidden() -> Canned {
    Canned::new(
        403,
        "application/json",
        vec![br#"{"detail":"Invalid API key for model abc123"}"#.to_vec()],
    )
}

const SMALL_RUN: &[&str] = &[
    "--traffic-scenario",
    "D(16,4)",
    "--max-requests-per-run",
    "6",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_stops_at_the_preflight_with_the_servers_message() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|_| forbidden()).await;
    let b = Bench::new();
    let mut args = SMALL_RUN.to_vec();
    args.extend(["--num-concurrency", "1", "--num-concurrency", "4"]);
    let (out, took) = output(b.command_url_with_preflight(&url(&server), &args)).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("preflight"), "{err}");
    assert!(err.contains("Invalid API key for model abc123"), "{err}");
    assert!(err.contains("http 403"), "{err}");
    // Redirected logs are plain text: no colour escape codes.
    assert!(!err.contains('\u{1b}'), "{err:?}");
    // One request, no folder: nothing was run.
    assert_eq!(server.received.lock().unwrap().len(), 1);
    assert!(!b.folder().exists());
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_stops_at_the_preflight() {
    let _machine = crate::common::shared_machine().await;
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let b = Bench::new();
    let mut args = SMALL_RUN.to_vec();
    args.extend(["--num-concurrency", "1"]);
    let (out, _) =
        output(b.command_url_with_preflight(&format!("http://127.0.0.1:{port}/predict"), &args))
            .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("preflight") && err.contains("connect"),
        "{err}"
    );
    assert!(!b.folder().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_where_every_request_failed_is_invalid_loud_and_stops_the_matrix() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|_| forbidden()).await;
    let b = Bench::new();
    let mut args = SMALL_RUN.to_vec();
    args.extend(["--num-concurrency", "1", "--num-concurrency", "2"]);
    let (out, _) = output(b.command_url(&url(&server), &args)).await;
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    // The server's own words, with their count, on the terminal.
    assert!(
        err.contains("403 http ×6: Invalid API key for model abc123"),
        "{err}"
    );
    assert!(err.contains("validity: INVALID"), "{err}");
    assert!(err.contains("the remaining runs were not started"), "{err}");
    // The first level ran, the second did not.
    let runs = b.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(server.received.lock().unwrap().len(), 6);
    let a = &runs[0].1["aggregated_metrics"];
    assert_eq!(a["validity"]["valid"], false);
    let reasons = a["validity"]["reasons"].to_string();
    assert!(reasons.contains("all 6 requests failed"), "{reasons}");
    assert_eq!(a["top_errors"][0]["count"], 6);
    assert_eq!(a["top_errors"][0]["code"], 403);
    // The report shows the errors and no "valid" badge.
    let html = std::fs::read_to_string(b.folder().join("report.html")).unwrap();
    assert!(html.contains("Invalid API key for model abc123"));
    assert!(!html.contains(r#"<span class="badge ok">valid</span>"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_rate_above_the_limit_exits_non_zero_after_writing_results() {
    let _machine = crate::common::shared_machine().await;
    let n = Arc::new(AtomicUsize::new(0));
    let server = {
        let n = n.clone();
        TestServer::start(move |r| {
            // Every third request fails.
            if n.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
                Canned::new(500, "text/plain", vec![b"worker crashed".to_vec()])
            } else {
                sse_answer(r, Duration::ZERO)
            }
        })
        .await
    };
    let mut args = SMALL_RUN.to_vec();
    args.extend(["--num-concurrency", "1"]);
    let b = Bench::new();
    let (out, _) = output(b.command_url(&url(&server), &args)).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("above --max-error-rate 0.1"), "{err}");
    assert!(err.contains("worker crashed"), "{err}");
    let runs = b.runs();
    assert_eq!(records(&runs[0].1).len(), 6);
    assert!(b.folder().join("report.html").exists());

    // The same run passes with a limit it stays within.
    n.store(0, Ordering::SeqCst);
    let b = Bench::new();
    args.extend(["--max-error-rate", "0.5"]);
    let (out, _) = output(b.command_url(&url(&server), &args)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_time_per_run_bounds_a_run_against_a_stalling_server() {
    let _machine = crate::common::shared_machine().await;
    // Headers at once, then a token every 30 s: a stalled server. Then one
    // that trickles a token every 20 ms for over a minute: the run's
    // deadline is looked at only when its timer fires, not at each token's
    // wake-up, and must cut it all the same.
    for (delay, scenario) in [
        (Duration::from_secs(30), "D(16,4)"),
        (Duration::from_millis(20), "D(16,4000)"),
    ] {
        let server = TestServer::start(move |r| {
            let mut c = sse_answer(r, Duration::ZERO);
            c.delay = delay;
            c
        })
        .await;
        let b = Bench::new();
        let (out, took) = output(b.command_url(
            &url(&server),
            &[
                "--traffic-scenario",
                scenario,
                "--num-concurrency",
                "3",
                "--max-requests-per-run",
                "100",
                // 3 s, with the default 600 s request timeout.
                "--max-time-per-run",
                "0.05",
            ],
        ))
        .await;
        let err = stderr(&out);
        assert!(took < Duration::from_secs(12), "{delay:?}: {took:?}: {err}");
        let runs = b.runs();
        let recs = records(&runs[0].1);
        assert_eq!(recs.len(), 3, "{delay:?}: the three requests in flight");
        for r in recs {
            assert_eq!(r["error_kind"], "cancelled", "{delay:?}: {r}");
            assert!(
                r["error_message"]
                    .as_str()
                    .unwrap()
                    .contains("--max-time-per-run"),
                "{r}"
            );
            assert!(r["end_offset"].as_f64().unwrap() <= 3.1, "{delay:?}: {r}");
        }
        let a = &runs[0].1["aggregated_metrics"];
        assert_eq!(a["num_cancelled_requests"], 3);
        assert_eq!(a["num_requests"], 0);
        assert_eq!(a["validity"]["valid"], false);
        assert!(err.contains("no request completed"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_over_a_window_shorter_than_a_request_is_flagged() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::from_millis(20))).await;
    let b = Bench::new();
    // 4 requests at once, 90% warmup: one request's tail is the window.
    let (out, _) = output(b.command_url(
        &url(&server),
        &[
            "--traffic-scenario",
            "D(16,4)",
            "--num-concurrency",
            "4",
            "--max-requests-per-run",
            "4",
            "--warmup-ratio",
            "0.9",
        ],
    ))
    .await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let a = &b.runs()[0].1["aggregated_metrics"];
    assert_eq!(a["validity"]["valid"], false, "{a}");
    let reasons = a["validity"]["reasons"].to_string();
    assert!(
        reasons.contains("shorter than a typical request"),
        "{reasons}"
    );
}

/// A small benchmark into `base`, with the folder name given or default.
fn bench_in(base: &std::path::Path, url: &str, folder: Option<&str>) -> Command {
    let mut c = crate::common::genai_bench();
    c.args(["benchmark", "--api-backend", "baseten", "--api-base"])
        .arg(url)
        .args(["--api-key", crate::benchmark::KEY, "--api-model-name", "m"])
        .arg("--model-tokenizer")
        .arg(crate::benchmark::test_tokenizer())
        .arg("--experiment-base-dir")
        .arg(base)
        .args(["--no-preflight", "--num-concurrency", "1"])
        .args(SMALL_RUN);
    if let Some(f) = folder {
        c.args(["--experiment-folder-name", f]);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_folders_are_never_overwritten() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::ZERO)).await;
    let b = Bench::new();
    let mut args = SMALL_RUN.to_vec();
    args.extend(["--num-concurrency", "1"]);
    let (out, _) = output(b.command_url(&url(&server), &args)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::read(b.folder().join("experiment_metadata.json")).unwrap();

    // The same --experiment-folder-name again: refused, nothing touched.
    let (out, _) = output(b.command_url(&url(&server), &args)).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read(b.folder().join("experiment_metadata.json")).unwrap(),
        meta
    );
    assert_eq!(b.runs().len(), 1);

    // Not a folder name.
    for bad in ["", "..", "a/b"] {
        let (out, _) = output(bench_in(b.base(), &url(&server), Some(bad))).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(err.contains("is not a folder name"), "{err}");
    }

    // Default names: two benchmarks started in the same second get two
    // folders.
    let base = tempfile::tempdir().unwrap();
    let mut cmds = Vec::new();
    for _ in 0..2 {
        let mut c = bench_in(base.path(), &url(&server), None);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        cmds.push(c.spawn().unwrap());
    }
    for c in cmds {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let folders: Vec<_> = std::fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("experiment_metadata.json").exists())
        .collect();
    assert_eq!(folders.len(), 2, "{folders:?}");

    // A repeated scenario runs once.
    let b = Bench::new();
    let mut args = SMALL_RUN.to_vec();
    args.extend(["--traffic-scenario", "D(16,4)", "--num-concurrency", "1"]);
    let (out, _) = output(b.command_url(&url(&server), &args)).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("given more than once"), "{err}");
    assert_eq!(b.runs().len(), 1);
    assert_eq!(records(&b.runs()[0].1).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_refuses_an_existing_output_and_unrelated_experiments() {
    let _machine = crate::common::shared_machine().await;
    let server = TestServer::start(|r| sse_answer(r, Duration::ZERO)).await;
    let mut args = SMALL_RUN.to_vec();
    args.extend(["--num-concurrency", "1"]);
    let a = Bench::new();
    let (out, _) = output(a.command_url(&url(&server), &args)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let other = Bench::new();
    let mut cmd = other.command_url(&url(&server), &args);
    cmd.args(["--api-model-name", "another-model"]);
    let (out, _) = output(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let merge = |out_dir: &std::path::Path, force: bool| {
        let mut c = crate::common::genai_bench();
        c.arg("merge").arg("--output").arg(out_dir);
        if force {
            c.arg("--force");
        }
        c.arg(a.folder()).arg(other.folder());
        c.output().unwrap()
    };
    // Into an existing experiment: refused, its metadata untouched.
    let meta = std::fs::read(a.folder().join("experiment_metadata.json")).unwrap();
    let out = merge(&a.folder(), true);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(a.folder().join("experiment_metadata.json")).unwrap(),
        meta
    );
    // Unrelated experiments (another model): refused unless forced.
    let target = a.base().join("merged");
    let out = merge(&target, false);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not parts of one experiment"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists());
    let out = merge(&target, true);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_concurrency_beyond_one_process_is_refused_at_start() {
    let b = Bench::new();
    let out = b
        .command_url(
            "http://127.0.0.1:9/predict",
            &["--num-concurrency", "20000", "--max-requests-per-run", "1"],
        )
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("20000 requests in flight"), "{err}");
    assert!(err.contains("--shard-count"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_closed_stdout_ends_a_printing_command_quietly() {
    let mut child = crate::common::genai_bench()
        .args(["plugin", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the command writes (`| head -0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_a_plugin_instance_rather_than_fail() {
    use genai_bench::plugin::{PluginRuntime, RuntimeOptions};
    let _machine = crate::common::shared_machine().await;
    let (rt, plugin) = tokio::task::spawn_blocking(|| {
        let rt = Arc::new(
            PluginRuntime::new(RuntimeOptions {
                max_instances: 8,
                cache_dir: Some(crate::common::cache_dir()),
                ..RuntimeOptions::default()
            })
            .unwrap(),
        );
        let p = rt.load_builtin("baseten").unwrap();
        (rt, p)
    })
    .await
    .unwrap();
    // Every instance of the pool in use.
    let mut held = Vec::new();
    for i in 0..8 {
        held.push(plugin.instantiate(i).await.unwrap());
    }
    let p = plugin.clone();
    let waiting = tokio::spawn(async move { p.instantiate(99).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the ninth instance did not wait");
    // One request ends: the waiting one gets its instance.
    held.pop();
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("an instance within 10 s")
        .unwrap();
    assert!(got.is_ok(), "{got:?}");
    drop(held);
    drop(rt);
}
