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
