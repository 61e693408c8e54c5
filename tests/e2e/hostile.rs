//! Hostile plugins: each misbehaviour fails only its own request with a typed
//! error naming the plugin, and the host goes on serving.

use std::time::Instant;

use genai_bench::plugin::{Event, PluginError, PluginErrorKind, Task};

use crate::common::{baseten, chat_request, head, hostile, parse_chunks};

const CHUNK: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n";

/// Build a request in `mode`, then parse one SSE chunk with the same instance.
async fn run_mode(mode: &str) -> Result<Vec<Event>, PluginError> {
    let plugin = hostile();
    let mut inst = plugin.instantiate(9).await?;
    // "none" is a well-behaved request.
    let params = if mode == "none" {
        "{}".to_string()
    } else {
        format!(r#"{{"hostile": "{mode}"}}"#)
    };
    inst.build_request(&chat_request("x", Some(4), true, &params))
        .await?;
    inst.begin_response(&head(200, "text/event-stream", Task::TextToText, true))
        .await?;
    let mut events = inst.feed(CHUNK).await?;
    events.extend(inst.finish().await?);
    Ok(events)
}

async fn expect_kind(mode: &str, kinds: &[PluginErrorKind]) -> PluginError {
    let err = run_mode(mode).await.expect_err(mode);
    assert!(kinds.contains(&err.kind), "{mode}: {err:?}");
    assert!(err.to_string().contains("hostile 0.1.0"), "{mode}: {err}");
    err
}

/// The host is healthy: a normal request through another plugin works.
async fn host_still_serves() {
    let events = parse_chunks(
        &baseten(),
        &head(200, "text/event-stream", Task::TextToText, true),
        &[CHUNK],
    )
    .await
    .expect("baseten still works");
    assert_eq!(events, vec![Event::Content("ok".into())]);
    // And the hostile plugin itself serves a well-behaved request.
    assert_eq!(
        run_mode("none").await.unwrap(),
        vec![Event::Content("ok".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loops_hit_the_cpu_deadline() {
    let _machine = crate::common::shared_machine().await;
    for mode in ["loop-build", "loop-feed"] {
        let err = expect_kind(mode, &[PluginErrorKind::Timeout]).await;
        assert!(err.message.contains("CPU time limit"), "{err}");
    }
    host_still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap() {
    let _machine = crate::common::shared_machine().await;
    for mode in ["alloc-build", "alloc-feed"] {
        let err = expect_kind(mode, &[PluginErrorKind::OutOfMemory]).await;
        assert!(err.message.contains("memory limit"), "{err}");
    }
    host_still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_stack_overflows_fail_the_request() {
    let _machine = crate::common::shared_machine().await;
    expect_kind("panic-build", &[PluginErrorKind::Panic]).await;
    expect_kind("panic-new", &[PluginErrorKind::Panic]).await;
    expect_kind("panic-feed", &[PluginErrorKind::Panic]).await;
    // A Rust guest's shadow stack lives in linear memory, so its overflow
    // can surface as an out-of-bounds trap rather than a wasm stack overflow.
    expect_kind(
        "recurse-feed",
        &[PluginErrorKind::StackOverflow, PluginErrorKind::Trap],
    )
    .await;
    host_still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_and_credentials_belong_to_the_host() {
    let _machine = crate::common::shared_machine().await;
    for mode in [
        "abs-url",
        "other-host",
        "auth-header",
        "host-header",
        "cookie-header",
        "proxy-header",
    ] {
        expect_kind(mode, &[PluginErrorKind::Refused]).await;
    }
    host_still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giant_outputs_are_capped() {
    let _machine = crate::common::shared_machine().await;
    expect_kind("many-headers", &[PluginErrorKind::OutputLimit]).await;
    // The note is held while the response streams, outside any instance.
    let err = expect_kind("huge-note", &[PluginErrorKind::OutputLimit]).await;
    assert!(
        err.to_string()
            .contains("parser note of 1025 bytes, over the contract's limit of 1024 bytes"),
        "{err}"
    );
    expect_kind(
        "huge-body",
        // Filling 100 MB may also run past the CPU deadline first.
        &[
            PluginErrorKind::OutputLimit,
            PluginErrorKind::OutOfMemory,
            PluginErrorKind::Timeout,
        ],
    )
    .await;
    expect_kind(
        "many-events",
        &[
            PluginErrorKind::OutputLimit,
            PluginErrorKind::OutOfMemory,
            PluginErrorKind::Timeout,
        ],
    )
    .await;
    host_still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_grants_no_env_and_no_files() {
    let _machine = crate::common::shared_machine().await;
    // SAFETY: set before any plugin call of this test reads it; the value is
    // only checked for absence from the plugin's output.
    unsafe { std::env::set_var("GENAI_BENCH_TEST_SECRET", "do-not-leak-4242") };
    let plugin = hostile();
    for mode in ["read-env", "read-file"] {
        let mut inst = plugin.instantiate(1).await.unwrap();
        let params = format!(r#"{{"hostile": "{mode}"}}"#);
        let out = inst
            .build_request(&chat_request("x", Some(1), true, &params))
            .await
            .expect("build succeeds");
        let body = String::from_utf8_lossy(&out.body);
        assert!(!body.contains("do-not-leak-4242"), "{mode}: {body}");
        assert!(
            !body.contains("root:"),
            "{mode}: /etc/passwd leaked: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_does_not_block_other_requests() {
    let _machine = crate::common::shared_machine().await;
    let looping = tokio::spawn(async {
        let r = run_mode("loop-feed").await;
        (Instant::now(), r)
    });
    // Give the loop a head start so it is running while we work.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut done_at = Instant::now();
    for _ in 0..20 {
        host_still_serves().await;
        done_at = Instant::now();
    }
    let (loop_done_at, r) = looping.await.unwrap();
    assert_eq!(r.unwrap_err().kind, PluginErrorKind::Timeout);
    assert!(
        done_at < loop_done_at,
        "normal requests waited for the looping plugin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_floods_are_bounded() {
    let _machine = crate::common::shared_machine().await;
    // 100,000 lines of 10 KB with escape sequences: the per-instance budget
    // drops them, and the call still finishes within its CPU limit.
    let r = run_mode("log-flood").await;
    assert!(
        r.is_ok() || matches!(&r, Err(e) if e.kind == PluginErrorKind::Timeout),
        "{r:?}"
    );
    host_still_serves().await;
}

/// Load `bytes` as a plugin file; the error text when it is refused.
fn load_refusal(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = crate::common::runtime()
        .load_file(&path)
        .expect_err("a broken plugin must be refused at load");
    let msg = format!("{err:#}");
    assert!(msg.contains(name), "the refusal names the file: {msg}");
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_that_cannot_work_are_refused_at_load() {
    let _machine = crate::common::shared_machine().await;
    // Not WebAssembly at all.
    let msg = load_refusal("text.wasm", b"#!/bin/sh\nrm -rf /\n");
    assert!(msg.contains("not a WebAssembly file"), "{msg}");
    // A core module, not a component.
    let msg = load_refusal(
        "core.wasm",
        &wat::parse_str("(module (func (export \"run\")))").unwrap(),
    );
    assert!(
        msg.contains("core WebAssembly module, not a component"),
        "{msg}"
    );
    // A truncated component.
    let real = std::fs::read(crate::common::test_plugin_path("baseten_plugin")).unwrap();
    let msg = load_refusal("truncated.wasm", &real[..real.len() / 2]);
    assert!(msg.contains("does not compile"), "{msg}");
    // A real plugin that also imports an interface the host does not
    // provide: its `host` import renamed to `hack` (same length).
    let from = genai_bench::plugin::WIT_WORLD.rsplit('@').next().unwrap();
    let host = format!("genai-bench:backend/host@{from}");
    let hack = format!("genai-bench:backend/hack@{from}");
    let pos = real
        .windows(host.len())
        .position(|w| w == host.as_bytes())
        .expect("the plugin imports the host interface");
    let mut evil = real.clone();
    evil[pos..pos + hack.len()].copy_from_slice(hack.as_bytes());
    let msg = load_refusal("imports.wasm", &evil);
    assert!(
        msg.contains("imports this host does not provide") && msg.contains(&hack),
        "{msg}"
    );
    // A component exporting nothing of the contract.
    let empty = wat::parse_str("(component)").unwrap();
    let msg = load_refusal("empty.wasm", &empty);
    assert!(
        msg.contains("genai-bench:backend"),
        "names the contract: {msg}"
    );
    host_still_serves().await;
}

/// The real Baseten plugin, rebuilt as if against contract version `to`:
/// every `genai-bench:backend` name in it renamed (same length, so the
/// binary stays well-formed).
fn with_contract_version(wasm: &[u8], to: &str) -> Vec<u8> {
    let from = genai_bench::plugin::WIT_WORLD.rsplit('@').next().unwrap();
    assert_eq!(from.len(), to.len());
    let mut out = wasm.to_vec();
    let mut renamed = 0;
    for iface in [
        "backend/backend",
        "backend/host",
        "backend/types",
        "backend/plugin",
        "backend",
    ] {
        let old = format!("genai-bench:{iface}@{from}");
        let new = format!("genai-bench:{iface}@{to}");
        let (old, new) = (old.as_bytes(), new.as_bytes());
        let mut i = 0;
        while let Some(pos) = out[i..].windows(old.len()).position(|w| w == old) {
            out[i + pos..i + pos + old.len()].copy_from_slice(new);
            renamed += 1;
            i += pos + old.len();
        }
    }
    assert!(renamed >= 2, "the plugin names its contract");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_for_another_contract_version_is_refused() {
    let _machine = crate::common::shared_machine().await;
    let real = std::fs::read(crate::common::test_plugin_path("baseten_plugin")).unwrap();
    let from = genai_bench::plugin::WIT_WORLD.rsplit('@').next().unwrap();
    let future: String = std::iter::once('9').chain(from.chars().skip(1)).collect();
    let msg = load_refusal("future.wasm", &with_contract_version(&real, &future));
    assert!(
        msg.contains(&future) && msg.contains(from),
        "names the version it found and the one it wants: {msg}"
    );
    // Through the CLI too: a non-zero exit and the reason, no panic.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.wasm");
    std::fs::write(&path, with_contract_version(&real, &future)).unwrap();
    let out = crate::common::genai_bench()
        .args(["plugin", "inspect"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&future) && !stderr.contains("panicked"),
        "{stderr}"
    );
    host_still_serves().await;
}

/// A merely slow plugin (2 ms of CPU per chunk, more than the plugin
/// thread can keep up with at this concurrency) delays parsing, never a
/// timestamp: every request succeeds and the client's TTFT agrees with the
/// simulator's ground truth of when the first token left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_plugin_delays_parsing_not_timestamps() {
    use genai_bench::simulator::{self, LatencyDist, SimConfig};
    let _machine = crate::common::whole_machine().await;
    let sim = simulator::start(SimConfig {
        ttft_base_ms: 30.0,
        prefill_us_per_token: 0.0,
        itl: LatencyDist::Constant { ms: 5.0 },
        seed: Some(5),
        keep_ground_truth: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let b = crate::benchmark::Bench::new();
    // The hostile plugin speaks OpenAI chat at `v1/chat/completions`.
    let url = format!("{}/", sim.base_url());
    let plugin = crate::common::test_plugin_path("hostile_plugin");
    let out = tokio::task::spawn_blocking({
        let cmd = b.command_url(
            &url,
            &[
                "--plugin",
                plugin.to_str().unwrap(),
                "--traffic-scenario",
                "D(24,32)",
                "--num-concurrency",
                "8",
                "--max-requests-per-run",
                "48",
                "--additional-request-params",
                r#"{"hostile": "slow-feed"}"#,
            ],
        );
        move || {
            let mut cmd = cmd;
            cmd.output().unwrap()
        }
    })
    .await
    .unwrap();
    crate::common::assert_success(&out);
    let runs = b.runs();
    let recs = crate::benchmark::records(&runs[0].1);
    assert_eq!(recs.len(), 48);
    let mut client = 0.0;
    for r in recs {
        assert!(r["error_kind"].is_null(), "{r}");
        // The hostile plugin reports no usage: the tokenizer counts.
        assert!(r["num_output_tokens"].as_u64().unwrap() > 0, "{r}");
        client += r["ttft"].as_f64().unwrap() * 1e3;
    }
    client /= recs.len() as f64;
    let truth = sim.ground_truth();
    assert_eq!(truth.len(), 48);
    let mut truth_ttft = 0.0;
    for t in &truth {
        let first = t.chunks.iter().find(|c| c.tokens > 0).unwrap();
        truth_ttft += first.t_us as f64 / 1e3;
    }
    truth_ttft /= truth.len() as f64;
    // Parsing 32 chunks x 2 ms for 8 requests at once queues ~0.5 s of
    // plugin work per wave; were timestamps taken after parsing, TTFT would
    // carry tens of milliseconds of it.
    let err = client - truth_ttft;
    eprintln!(
        "slow plugin: client TTFT {client:.2} ms, truth {truth_ttft:.2} ms, error {err:+.2} ms"
    );
    assert!(
        err.abs() <= 3.0,
        "TTFT error {err:.2} ms with a slow plugin"
    );
    sim.shutdown_within(std::time::Duration::from_secs(2))
        .await
        .unwrap();
}
