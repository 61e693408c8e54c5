//! The sandbox holds: each attack a hostile plugin can make fails only its
//! own request (or its own load) with a typed error naming the limit, within
//! a bound on time and memory, while the host goes on.
//!
//! The plugins are `tests/plugins/hostile` (misbehaving on demand),
//! `tests/plugins/hostile-sleepy` (its `info` sleeps) and real plugins with
//! attack sections added (`common::attack`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use genai_bench::plugin::{
    Event, LoadedPlugin, PluginError, PluginErrorKind, PluginLimits, PluginRuntime, RuntimeOptions,
    Task,
};

use crate::common::attack::{self, run_measured};
use crate::common::{chat_request, head, test_plugin_path};

const CHUNK: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n";

/// A runtime of its own with `limits` (compiled plugins still come from the
/// shared test cache).
fn runtime_with(limits: PluginLimits) -> PluginRuntime {
    PluginRuntime::new(RuntimeOptions {
        max_instances: 32,
        cache_dir: Some(crate::common::cache_dir()),
        limits,
        compiler: None,
        ..RuntimeOptions::default()
    })
    .expect("plugin runtime")
}

/// The default limits, as a user gets them.
fn defaults() -> PluginLimits {
    PluginLimits::default()
}

fn hostile_in(rt: &PluginRuntime) -> Arc<LoadedPlugin> {
    rt.load_file(&test_plugin_path("hostile_plugin"))
        .expect("load hostile plugin")
}

fn params(mode: &str) -> String {
    if mode == "none" {
        return "{}".into();
    }
    format!(r#"{{"hostile": "{mode}"}}"#)
}

/// One request in `mode`: validate, build, construct the parser, feed
/// `chunks` chunks, finish; the events (or the first error) and how long
/// it took.
async fn request(
    plugin: &Arc<LoadedPlugin>,
    mode: &str,
    chunks: usize,
) -> (Result<Vec<Event>, PluginError>, Duration) {
    let started = Instant::now();
    let r = async {
        let mut inst = plugin.instantiate(7).await?;
        let p = params(mode);
        inst.validate_params(&p)
            .await?
            .expect("the hostile plugin accepts its modes");
        inst.build_request(&chat_request("x", Some(4), true, &p))
            .await?;
        inst.begin_response(&head(200, "text/event-stream", Task::TextToText, true))
            .await?;
        let mut events = Vec::new();
        for _ in 0..chunks {
            events.extend(inst.feed(CHUNK).await?);
        }
        events.extend(inst.finish().await?);
        Ok(events)
    }
    .await;
    (r, started.elapsed())
}

fn expect_error(
    mode: &str,
    r: Result<Vec<Event>, PluginError>,
    kind: PluginErrorKind,
    says: &str,
) -> PluginError {
    let err = r.expect_err(mode);
    assert_eq!(err.kind, kind, "{mode}: {err}");
    assert!(err.message.contains(says), "{mode}: {err}");
    assert!(err.to_string().contains("hostile 0.1.0"), "{mode}: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_wait_in_any_call() {
    let _machine = crate::common::shared_machine().await;
    let rt = runtime_with(defaults());
    let plugin = hostile_in(&rt);
    // An hour's sleep (subscribe-duration + block), a blocking pollable
    // and `poll` on it, in every export and the parser's destructor: the
    // sandbox's pollables are ready at once, so each returns.
    for mode in [
        "sleep-validate",
        "sleep-build",
        "sleep-new",
        "sleep-feed",
        "sleep-finish",
        "sleep-drop",
        "block-feed",
        "poll-feed",
    ] {
        let (r, took) = request(&plugin, mode, 2).await;
        let events = r.unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(events, vec![Event::Content("ok".into()); 2], "{mode}");
        assert!(took < Duration::from_secs(2), "{mode} took {took:?}");
    }
    // `info` runs at load: a plugin sleeping there loads at once too.
    let started = Instant::now();
    let sleepy = rt
        .load_file(&test_plugin_path("hostile_sleepy"))
        .expect("the sleepy plugin loads");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sleepy.info().name, "hostile");
    // With clocks frozen, waiting for time to pass is an endless loop: the
    // CPU limit ends it.
    let (r, took) = request(&plugin, "clock-spin-feed", 1).await;
    expect_error(
        "clock-spin-feed",
        r,
        PluginErrorKind::Timeout,
        "CPU time limit of 200 ms",
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_has_a_wall_clock_bound() {
    let _machine = crate::common::shared_machine().await;
    // The CPU limit out of reach, so only the wall clock can end the loop.
    let rt = runtime_with(PluginLimits {
        call_timeout: Duration::from_secs(60),
        call_wall_timeout: Duration::from_millis(300),
        ..defaults()
    });
    let plugin = hostile_in(&rt);
    for mode in ["loop-build", "loop-feed"] {
        let (r, took) = request(&plugin, mode, 1).await;
        expect_error(
            mode,
            r,
            PluginErrorKind::WallTimeout,
            "wall-clock limit of 300 ms",
        );
        assert!(took < Duration::from_secs(3), "{mode} took {took:?}");
    }
    // The instance is discarded: nothing more runs in it.
    let mut inst = plugin.instantiate(1).await.unwrap();
    inst.build_request(&chat_request("x", Some(4), true, &params("loop-feed")))
        .await
        .unwrap();
    inst.begin_response(&head(200, "text/event-stream", Task::TextToText, true))
        .await
        .unwrap();
    assert_eq!(
        inst.feed(CHUNK).await.unwrap_err().kind,
        PluginErrorKind::WallTimeout
    );
    assert_eq!(
        inst.finish().await.unwrap_err().kind,
        PluginErrorKind::Poisoned
    );
    // The same plugin still serves a well-behaved request.
    let (r, _) = request(&plugin, "none", 1).await;
    assert_eq!(r.unwrap(), vec![Event::Content("ok".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_work_between_epoch_checks_is_charged() {
    let _machine = crate::common::shared_machine().await;
    let rt = runtime_with(defaults());
    let plugin = hostile_in(&rt);
    // 64 MiB memory.fill per loop turn: one epoch check per turn used to
    // count as one 2 ms tick however long the fill took.
    let (r, took) = request(&plugin, "fill-loop", 1).await;
    expect_error(
        "fill-loop",
        r,
        PluginErrorKind::Timeout,
        "CPU time limit of 200 ms",
    );
    assert!(
        took < Duration::from_millis(1500),
        "fill-loop took {took:?}"
    );
    // 64 MiB (and 1 TiB) asks of wasi:random fail the call at once.
    for mode in ["random-loop", "random-big"] {
        let (r, took) = request(&plugin, mode, 1).await;
        expect_error(mode, r, PluginErrorKind::OutputLimit, "wasi:random");
        assert!(took < Duration::from_secs(1), "{mode} took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_is_not_the_systems_entropy() {
    let _machine = crate::common::shared_machine().await;
    let plugin = crate::common::hostile();
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let mut inst = plugin.instantiate(1).await.unwrap();
        let out = inst
            .build_request(&chat_request("x", Some(4), true, &params("random-report")))
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        let random = body["random"].as_str().unwrap().to_string();
        assert_eq!(random.len(), 32, "{body}");
        bodies.push((
            random,
            body["insecure_random"].as_str().unwrap().to_string(),
        ));
    }
    // Every instance sees the same bytes: nothing secret, nothing to learn.
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_capped_per_request_not_only_per_call() {
    let _machine = crate::common::shared_machine().await;
    let rt = runtime_with(PluginLimits {
        max_text_bytes_per_request: 32 << 20,
        max_events_per_request: 200_000,
        ..defaults()
    });
    let plugin = hostile_in(&rt);
    // 15 MiB of text per feed, under the 16 MiB per-call cap: the third
    // feed brings the response past 32 MiB.
    let mut inst = plugin.instantiate(1).await.unwrap();
    inst.build_request(&chat_request("x", Some(4), true, &params("text-flood")))
        .await
        .unwrap();
    inst.begin_response(&head(200, "text/event-stream", Task::TextToText, true))
        .await
        .unwrap();
    inst.feed(CHUNK).await.unwrap();
    inst.feed(CHUNK).await.unwrap();
    let err = inst.feed(CHUNK).await.unwrap_err();
    assert_eq!(err.kind, PluginErrorKind::OutputLimit, "{err}");
    assert!(err.message.contains("32 MiB per request"), "{err}");
    // 65,000 one-byte events per feed: the fourth feed passes 200,000.
    let (r, _) = request(&plugin, "event-flood", 4).await;
    expect_error(
        "event-flood",
        r,
        PluginErrorKind::OutputLimit,
        "limit of 200000 per request",
    );
    let (r, _) = request(&plugin, "event-flood", 3).await;
    assert_eq!(r.unwrap().len(), 195_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_must_answer_one_list_per_chunk() {
    let _machine = crate::common::shared_machine().await;
    let plugin = crate::common::hostile();
    let mut inst = plugin.instantiate(1).await.unwrap();
    inst.build_request(&chat_request("x", Some(4), true, &params("wrong-lists")))
        .await
        .unwrap();
    inst.begin_response(&head(200, "text/event-stream", Task::TextToText, true))
        .await
        .unwrap();
    // Three chunks in one call; the plugin answers two lists. Pairing them
    // with the first two chunks would move events to the wrong times.
    let bytes = CHUNK.repeat(3);
    let ends: Vec<u32> = (1..=3).map(|i| (i * CHUNK.len()) as u32).collect();
    let err = inst.feed_batch(&bytes, &ends).await.unwrap_err();
    // The plugin's fault (not a malformed server answer).
    assert_eq!(err.kind, PluginErrorKind::Refused, "{err}");
    assert!(
        err.message.contains("2 lists of events for 3 chunks"),
        "{err}"
    );
    // The instance is not entered again.
    let again = inst.finish().await.unwrap_err();
    assert_eq!(again.kind, PluginErrorKind::Poisoned, "{again}");
    // An honest batch: one list per chunk, each chunk's token in its own.
    let mut inst = plugin.instantiate(2).await.unwrap();
    inst.build_request(&chat_request("x", Some(4), true, &params("none")))
        .await
        .unwrap();
    inst.begin_response(&head(200, "text/event-stream", Task::TextToText, true))
        .await
        .unwrap();
    let lists = inst.feed_batch(&bytes, &ends).await.unwrap();
    assert_eq!(lists.len(), 3);
    assert!(lists.iter().all(|l| l.len() == 1), "{lists:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_may_send_only_ordinary_requests() {
    let _machine = crate::common::shared_machine().await;
    let plugin = crate::common::hostile();
    for (mode, kind, says) in [
        (
            "big-header",
            PluginErrorKind::OutputLimit,
            "bytes of headers",
        ),
        (
            "many-small-headers",
            PluginErrorKind::OutputLimit,
            "bytes of headers",
        ),
        ("lower-method", PluginErrorKind::Refused, "method \"post\""),
        (
            "connect-method",
            PluginErrorKind::Refused,
            "method \"CONNECT\"",
        ),
        ("trace-method", PluginErrorKind::Refused, "method \"trace\""),
        ("odd-method", PluginErrorKind::Refused, "method \"FROB\""),
        ("encoded-dotdot", PluginErrorKind::Refused, "encoded"),
        ("encoded-slash", PluginErrorKind::Refused, "encoded"),
        ("backslash-enc", PluginErrorKind::Refused, "encoded"),
    ] {
        let mut inst = plugin.instantiate(1).await.unwrap();
        let err = inst
            .build_request(&chat_request("x", Some(4), true, &params(mode)))
            .await
            .expect_err(mode);
        assert_eq!(err.kind, kind, "{mode}: {err}");
        assert!(err.message.contains(says), "{mode}: {err}");
    }
    // An error message built to forge log lines and drive a terminal is
    // shown as one inert line.
    let mut inst = plugin.instantiate(1).await.unwrap();
    let err = inst
        .build_request(&chat_request("x", Some(4), true, &params("forge-err")))
        .await
        .unwrap_err();
    let shown = err.to_string();
    for bad in ['\n', '\r', '\u{1b}', '\u{7}', '\u{2028}', '\u{202e}'] {
        assert!(!shown.contains(bad), "{bad:?} in {shown:?}");
    }
    assert!(shown.contains("refused\\n2026-12-02"), "{shown}");
}

/// A runtime with the default memory cap that compiles in the binary, as
/// the CLI does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_memories_count_against_one_cap() {
    let _machine = crate::common::shared_machine().await;
    let real = std::fs::read(test_plugin_path("hostile_plugin")).unwrap();
    // 8 memories of 100 MiB, each under the 128 MiB cap, every page
    // written: 800 MB if each memory were capped alone.
    let evil = attack::with_extra_memories(&real, 8, 100);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memories.wasm");
    std::fs::write(&path, &evil).unwrap();
    // Writing 100 MiB takes a while on a busy machine: a roomy CPU budget
    // keeps this test about the memory cap.
    let rt = runtime_with(PluginLimits {
        call_timeout: Duration::from_secs(5),
        ..defaults()
    });
    let err = rt.load_file(&path).expect_err("refused at load");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("memory limit of 128 MiB per instance, all memories and tables together"),
        "{msg}"
    );
    // Many small memories: over the count limit.
    let many = dir.path().join("many.wasm");
    std::fs::write(&many, attack::with_extra_memories(&real, 34, 1)).unwrap();
    let msg = format!("{:#}", rt.load_file(&many).expect_err("refused at load"));
    assert!(msg.contains("memories"), "{msg}");
    // The conformance kit says so too, and the process stays small.
    let mut cmd = crate::common::genai_bench();
    cmd.args(["plugin", "check", "--plugin-cpu-ms", "5000"])
        .arg(&path);
    let m = run_measured(cmd, Duration::from_secs(120));
    eprintln!(
        "many memories: plugin check exit {:?}, {:.2} s, peak RSS {:.0} MiB",
        m.status.code(),
        m.wall.as_secs_f64(),
        m.max_rss_mib
    );
    assert!(!m.status.success(), "{}", m.stdout);
    let text = format!("{}{}", m.stdout, m.stderr);
    assert!(text.contains("memory limit"), "{text}");
    assert!(m.max_rss_mib < 400.0, "peak RSS {:.0} MiB", m.max_rss_mib);
}

/// Each instance under its own cap, many together over the machine: the
/// process-wide budget refuses the growth that would pass it (that request
/// fails with a memory error naming the budget), and a dropped instance
/// gives its memory back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_together_stay_within_the_memory_budget() {
    let _machine = crate::common::shared_machine().await;
    // 48 MiB held per `hold-build` instance: one fits in 96 MiB, two do not.
    let rt = runtime_with(PluginLimits {
        memory_total_bytes: 96 << 20,
        call_timeout: Duration::from_secs(5),
        ..defaults()
    });
    let plugin = hostile_in(&rt);
    let req = chat_request("x", Some(4), true, &params("hold-build"));
    let mut a = plugin.instantiate(1).await.unwrap();
    a.build_request(&req).await.expect("one holder fits");
    let held = rt.memory_in_use();
    assert!(held >= 48 << 20, "{held}");
    let mut b = plugin.instantiate(2).await.unwrap();
    let err = b
        .build_request(&req)
        .await
        .expect_err("a second holder passes the budget");
    assert_eq!(err.kind, PluginErrorKind::OutOfMemory, "{err}");
    assert!(
        err.message
            .contains("budget of 96 MiB for all of them together (--plugin-memory-total-mb)"),
        "{err}"
    );
    // The refused growth was not charged; the first holder still works.
    assert!(
        rt.memory_in_use() < held + (8 << 20),
        "{}",
        rt.memory_in_use()
    );
    a.begin_response(&head(200, "text/event-stream", Task::TextToText, true))
        .await
        .unwrap();
    assert_eq!(
        a.feed(CHUNK).await.unwrap(),
        vec![Event::Content("ok".into())]
    );
    // Dropped instances give their memory back: the next holder fits.
    drop(a);
    drop(b);
    assert_eq!(rt.memory_in_use(), 0);
    let mut c = plugin.instantiate(3).await.unwrap();
    c.build_request(&req)
        .await
        .expect("room again once the others are gone");
    drop(c);
    assert_eq!(rt.memory_in_use(), 0);
    // An unbounded hoarder meets the smaller of the two caps (here the
    // budget), and gives everything back when its instance goes.
    let (r, _) = request(&plugin, "alloc-build", 0).await;
    expect_error(
        "alloc-build",
        r,
        PluginErrorKind::OutOfMemory,
        "budget of 96 MiB for all of them together",
    );
    assert_eq!(rt.memory_in_use(), 0);
}

/// The event text the host keeps for a response in flight is host memory a
/// plugin decides on: it draws on the same budget while the instance lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_the_host_keeps_draws_on_the_memory_budget() {
    let _machine = crate::common::shared_machine().await;
    // `text-flood` answers 15 MiB of text in one call: within these caps.
    let roomy = PluginLimits {
        max_text_bytes_per_request: 32 << 20,
        call_timeout: Duration::from_secs(5),
        ..defaults()
    };
    let flood = |rt: &PluginRuntime| {
        let plugin = hostile_in(rt);
        async move {
            let mut inst = plugin.instantiate(1).await.unwrap();
            let p = params("text-flood");
            let body = inst
                .build_request(&chat_request("x", Some(4), true, &p))
                .await
                .unwrap()
                .body
                .len();
            inst.begin_response(&head(200, "text/event-stream", Task::TextToText, true))
                .await
                .unwrap();
            let r = inst.feed(CHUNK).await;
            (inst, body, r)
        }
    };
    let rt = runtime_with(roomy);
    let (inst, body, r) = flood(&rt).await;
    let text: usize = r
        .unwrap()
        .iter()
        .map(|e| match e {
            Event::Content(s) => s.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(text, 15 << 20);
    // Memories never shrink: what the instance holds is its peak, with
    // the request body and the text the host keeps.
    let peak = inst.peak_memory_bytes();
    assert_eq!(rt.memory_in_use(), peak + body + text);
    drop(inst);
    assert_eq!(rt.memory_in_use(), 0);
    // Room for the instance's memory, not for its text as well.
    let rt = runtime_with(budget_for(peak, roomy));
    let (inst, _, r) = flood(&rt).await;
    expect_over_budget(r, "bytes of event text");
    assert_eq!(
        rt.memory_in_use(),
        peak + body,
        "the refused text is not charged"
    );
    drop(inst);
    assert_eq!(rt.memory_in_use(), 0);
}

/// `limits` with a budget room for an instance of `peak` bytes, not for
/// the megabytes it then asks the host to keep.
fn budget_for(peak: usize, limits: PluginLimits) -> PluginLimits {
    PluginLimits {
        memory_total_bytes: peak + (8 << 20),
        ..limits
    }
}

/// The call failed on the budget of all instances, for `what`.
fn expect_over_budget<T: std::fmt::Debug>(r: Result<T, PluginError>, what: &str) {
    let err = r.expect_err("over the budget");
    assert_eq!(err.kind, PluginErrorKind::OutOfMemory, "{err}");
    assert!(
        err.message.contains(what)
            && err
                .message
                .contains("for all of them together (--plugin-memory-total-mb)"),
        "{err}"
    );
}

/// A request body is host memory a plugin decides on too (the host holds it
/// until the response ends): it draws on the budget with the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_draw_on_the_memory_budget() {
    let _machine = crate::common::shared_machine().await;
    // `huge-body` builds a 100 MiB body: within these caps.
    let roomy = PluginLimits {
        max_request_body: 128 << 20,
        call_timeout: Duration::from_secs(5),
        ..defaults()
    };
    let build = |rt: &PluginRuntime| {
        let plugin = hostile_in(rt);
        async move {
            let mut inst = plugin.instantiate(1).await.unwrap();
            let p = params("huge-body");
            let r = inst
                .build_request(&chat_request("x", Some(4), true, &p))
                .await
                .map(|out| out.body.len());
            (inst, r)
        }
    };
    let rt = runtime_with(roomy);
    let (inst, r) = build(&rt).await;
    let body = r.unwrap();
    assert_eq!(body, 100 << 20);
    let peak = inst.peak_memory_bytes();
    assert_eq!(rt.memory_in_use(), peak + body);
    drop(inst);
    assert_eq!(rt.memory_in_use(), 0);
    let rt = runtime_with(budget_for(peak, roomy));
    let (inst, r) = build(&rt).await;
    expect_over_budget(r, "a body of 104857600 bytes");
    assert_eq!(rt.memory_in_use(), peak, "the refused body is not charged");
    drop(inst);
    assert_eq!(rt.memory_in_use(), 0);
}

/// The same through the binary, where every request holds 48 MiB for its
/// whole response: with a 96 MiB budget only one at a time can, the others
/// fail with the budget named, every request is recorded and the process
/// stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_holds_through_the_binary() {
    use genai_bench::simulator::{self, LatencyDist, SimConfig};
    let _machine = crate::common::shared_machine().await;
    let sim = simulator::start(SimConfig {
        ttft_base_ms: 20.0,
        prefill_us_per_token: 0.0,
        itl: LatencyDist::Constant { ms: 2.0 },
        seed: Some(3),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/", sim.base_url());
    let plugin = test_plugin_path("hostile_plugin");
    let b = crate::benchmark::Bench::new();
    let cmd = b.command_url(
        &url,
        &[
            "--plugin",
            plugin.to_str().unwrap(),
            "--traffic-scenario",
            "D(16,16)",
            "--num-concurrency",
            "4",
            "--max-requests-per-run",
            "12",
            "--plugin-memory-total-mb",
            "96",
            "--additional-request-params",
            r#"{"hostile": "hold-build"}"#,
        ],
    );
    let m = tokio::task::spawn_blocking(move || run_measured(cmd, Duration::from_secs(120)))
        .await
        .unwrap();
    // More than a tenth fail: exit status 3 (--max-error-rate).
    assert_eq!(m.status.code(), Some(3), "{}", m.stderr);
    let runs = b.runs();
    let recs = crate::benchmark::records(&runs[0].1);
    assert_eq!(recs.len(), 12, "every request is recorded");
    let (failed, ok): (Vec<_>, Vec<_>) = recs.iter().partition(|r| !r["error_kind"].is_null());
    assert!(
        !failed.is_empty() && !ok.is_empty(),
        "{} failed",
        failed.len()
    );
    for r in &failed {
        assert_eq!(r["error_kind"], "plugin", "{r}");
        let msg = r["error_message"].as_str().unwrap();
        assert!(msg.contains("for all of them together"), "{msg}");
    }
    for r in &ok {
        assert!(r["num_output_tokens"].as_u64().unwrap() > 0, "{r}");
    }
    eprintln!(
        "memory budget through the binary: {} failed, {} ok, {:.2} s, peak RSS {:.0} MiB",
        failed.len(),
        ok.len(),
        m.wall.as_secs_f64(),
        m.max_rss_mib
    );
    // Four holders at once would be ~200 MiB of plugin memory alone.
    assert!(m.max_rss_mib < 190.0, "peak RSS {:.0} MiB", m.max_rss_mib);
    sim.shutdown_within(Duration::from_secs(2)).await.unwrap();
}

#[test]
fn plugin_inspect_shows_a_hostile_description_inert() {
    let _machine = crate::common::shared_machine_blocking();
    let out = crate::common::genai_bench()
        .args(["plugin", "inspect"])
        .arg(test_plugin_path("hostile_plugin"))
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    for bad in ['\u{1b}', '\u{7}', '\r', '\u{202e}', '\u{2028}'] {
        assert!(!text.contains(bad), "{bad:?} in {text:?}");
    }
    // The forged "(verified)" line stays inside the description's line.
    let sha_lines = text
        .lines()
        .filter(|l| l.trim_start().starts_with("sha256"))
        .count();
    assert_eq!(sha_lines, 1, "{text}");
    assert!(text.contains("\\u{1b}]52;c;"), "{text}");
}

/// The compiled-plugin cache of a fresh runtime in `dir` and its one entry
/// after loading `wasm`.
fn cached_entry(dir: &std::path::Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("a cache entry")
}

fn cache_runtime(dir: &std::path::Path) -> PluginRuntime {
    PluginRuntime::new(RuntimeOptions {
        max_instances: 8,
        cache_dir: Some(dir.to_path_buf()),
        compiler: None,
        ..RuntimeOptions::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compiled_plugin_cache_cannot_be_planted() {
    use std::os::unix::fs::PermissionsExt;
    let _machine = crate::common::shared_machine().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("plugins");
    let hostile = std::fs::read(test_plugin_path("hostile_plugin")).unwrap();
    let baseten = std::fs::read(test_plugin_path("baseten_plugin")).unwrap();
    let origin = || genai_bench::plugin::PluginOrigin::Bytes("t".into());

    // The folder is created private, whatever the umask.
    let rt = cache_runtime(&dir);
    let h = rt.load_bytes(&hostile, origin()).unwrap();
    assert!(!h.from_cache());
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let key_mode = std::fs::metadata(dir.join("cache.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);
    let hostile_entry = cached_entry(&dir);
    let planted = std::fs::read(&hostile_entry).unwrap();
    std::fs::remove_file(&hostile_entry).unwrap();
    let b = cache_runtime(&dir).load_bytes(&baseten, origin()).unwrap();
    assert!(!b.from_cache());
    let baseten_entry = cached_entry(&dir);
    assert!(
        cache_runtime(&dir)
            .load_bytes(&baseten, origin())
            .unwrap()
            .from_cache()
    );

    // Another plugin's genuine entry under this plugin's name: refused (the
    // tag binds the component's hash), compiled afresh, and it is baseten
    // that runs.
    std::fs::write(&baseten_entry, &planted).unwrap();
    let b = cache_runtime(&dir).load_bytes(&baseten, origin()).unwrap();
    assert!(!b.from_cache());
    assert_eq!(b.info().name, "baseten");
    // Native code written by someone without the key: refused.
    let native = wasmtime::Engine::default()
        .precompile_component(&hostile)
        .unwrap();
    std::fs::write(&baseten_entry, &native).unwrap();
    let b = cache_runtime(&dir).load_bytes(&baseten, origin()).unwrap();
    assert!(!b.from_cache());
    assert_eq!(b.info().name, "baseten");
    // A symlink in place of an entry is not followed.
    std::fs::remove_file(&baseten_entry).unwrap();
    let elsewhere = root.path().join("elsewhere.cwasm");
    std::fs::write(&elsewhere, &planted).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &baseten_entry).unwrap();
    let b = cache_runtime(&dir).load_bytes(&baseten, origin()).unwrap();
    assert!(!b.from_cache());
    assert_eq!(b.info().name, "baseten");
    // An entry others may write is not trusted, even with a valid tag.
    std::fs::remove_file(&baseten_entry).unwrap();
    cache_runtime(&dir).load_bytes(&baseten, origin()).unwrap();
    let entry = cached_entry(&dir);
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(
        !cache_runtime(&dir)
            .load_bytes(&baseten, origin())
            .unwrap()
            .from_cache()
    );

    // A folder others may write, or a key others may read: the cache is
    // not used at all, and plugins still load.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let b = cache_runtime(&dir).load_bytes(&baseten, origin()).unwrap();
    assert!(!b.from_cache());
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(
        dir.join("cache.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let b = cache_runtime(&dir).load_bytes(&baseten, origin()).unwrap();
    assert!(!b.from_cache());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_capped_in_size() {
    let _machine = crate::common::shared_machine().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("plugins");
    let rt = PluginRuntime::new(RuntimeOptions {
        max_instances: 8,
        cache_dir: Some(dir.clone()),
        cache_max_bytes: 1,
        compiler: None,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let origin = || genai_bench::plugin::PluginOrigin::Bytes("t".into());
    rt.load_bytes(
        &std::fs::read(test_plugin_path("hostile_plugin")).unwrap(),
        origin(),
    )
    .unwrap();
    rt.load_bytes(
        &std::fs::read(test_plugin_path("baseten_plugin")).unwrap(),
        origin(),
    )
    .unwrap();
    let entries = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cwasm")
        })
        .count();
    assert_eq!(entries, 0, "entries over the cap are evicted");
}

#[test]
fn the_pin_is_the_bytes_that_run() {
    let _machine = crate::common::shared_machine_blocking();
    let rt = crate::common::runtime();
    let hostile = std::fs::read(test_plugin_path("hostile_plugin")).unwrap();
    let baseten = std::fs::read(test_plugin_path("baseten_plugin")).unwrap();
    let pin = genai_bench::plugin::sha256_hex(&hostile);
    let dir = tempfile::tempdir().unwrap();
    // A FIFO gives each reader different bytes: the pinned plugin to a
    // first read, another to a second. Read once, the pin holds.
    let fifo = dir.path().join("plugin.wasm");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid path and mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let writer = {
        let (fifo, first, second) = (fifo.clone(), hostile.clone(), baseten.clone());
        std::thread::spawn(move || {
            std::fs::write(&fifo, &first).unwrap();
            // Let the first reader drain and close, then serve the other
            // plugin to a second reader, if one comes within 2 s.
            std::thread::sleep(Duration::from_millis(300));
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags_nonblocking()
                    .open(&fifo)
                {
                    Ok(mut f) => {
                        let _ = std::io::Write::write_all(&mut f, &second);
                        return true;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            false
        })
    };
    let loaded = rt.load_file_pinned(&fifo, Some(&pin)).unwrap();
    assert_eq!(loaded.sha256(), pin);
    assert_eq!(loaded.info().name, "hostile");
    assert!(!writer.join().unwrap(), "the plugin file was read twice");
    // Other bytes under the pin: refused, naming both hashes.
    let other = dir.path().join("other.wasm");
    std::fs::write(&other, &baseten).unwrap();
    let err = format!("{:#}", rt.load_file_pinned(&other, Some(&pin)).unwrap_err());
    assert!(err.contains(&pin) && err.contains("refusing"), "{err}");
    // An empty file is checked like any other.
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"").unwrap();
    let err = format!("{:#}", rt.load_file_pinned(&empty, Some(&pin)).unwrap_err());
    assert!(err.contains("--plugin-sha256"), "{err}");
}

/// Opening a FIFO for writing without a reader fails at once instead of
/// blocking.
trait NonBlocking {
    fn custom_flags_nonblocking(&mut self) -> &mut Self;
}

impl NonBlocking for std::fs::OpenOptions {
    fn custom_flags_nonblocking(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

#[test]
fn oversized_and_slow_to_compile_components_are_refused() {
    let _machine = crate::common::shared_machine_blocking();
    let real = std::fs::read(test_plugin_path("hostile_plugin")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Over the size limit: refused before compiling.
    let big = dir.path().join("big.wasm");
    std::fs::write(&big, attack::with_padding(&real, 2 << 20)).unwrap();
    let out = crate::common::genai_bench()
        .args(["plugin", "inspect", "--plugin-max-size-mb", "1"])
        .arg(&big)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("over the limit of 1 MiB (--plugin-max-size-mb)"),
        "{stderr}"
    );
    // Slow to compile: the compiler process is stopped at the limit.
    let slow = dir.path().join("slow.wasm");
    std::fs::write(&slow, attack::with_slow_module(&real, 400, 2000)).unwrap();
    let mut cmd = crate::common::genai_bench();
    cmd.args(["plugin", "inspect", "--plugin-compile-timeout", "1"])
        .arg(&slow);
    let m = run_measured(cmd, Duration::from_secs(60));
    eprintln!(
        "slow compile: exit {:?}, {:.2} s, peak RSS {:.0} MiB",
        m.status.code(),
        m.wall.as_secs_f64(),
        m.max_rss_mib
    );
    assert!(!m.status.success());
    assert!(
        m.stderr
            .contains("did not compile within 1 s (--plugin-compile-timeout)"),
        "{}",
        m.stderr
    );
    assert!(m.wall < Duration::from_secs(10), "{:?}", m.wall);
}

/// Through the binary, against the simulator: a third of the requests
/// attack (`hostile_share`). They fail with a typed error naming the limit,
/// the others keep their results, the run file holds every request, and the
/// process ends within its bound and under a stated peak RSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_through_the_binary_fail_alone() {
    use genai_bench::simulator::{self, LatencyDist, SimConfig};
    let _machine = crate::common::shared_machine().await;
    let sim = simulator::start(SimConfig {
        ttft_base_ms: 5.0,
        prefill_us_per_token: 0.0,
        itl: LatencyDist::Constant { ms: 1.0 },
        seed: Some(3),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/", sim.base_url());
    let plugin = test_plugin_path("hostile_plugin");
    let mut table = Vec::new();
    for (mode, says, extra) in [
        ("text-flood", Some("MiB per request"), &[][..]),
        // A body arrives in one `feed` call here (18 chunks, handed over
        // when it ends): its 65,000 events pass the per-call cap and break
        // the per-request one.
        (
            "event-flood",
            Some("per request"),
            &["--plugin-max-events-per-request", "50000"][..],
        ),
        ("fill-loop", Some("CPU time limit"), &[][..]),
        ("clock-spin-feed", Some("CPU time limit"), &[][..]),
        ("random-loop", Some("wasi:random"), &[][..]),
        ("sleep-feed", None, &[][..]),
        ("sleep-drop", None, &[][..]),
    ] {
        let b = crate::benchmark::Bench::new();
        let params = format!(r#"{{"hostile": "{mode}", "hostile_share": 3}}"#);
        let mut args = vec![
            "--plugin",
            plugin.to_str().unwrap(),
            "--traffic-scenario",
            "D(16,16)",
            "--num-concurrency",
            "4",
            "--max-requests-per-run",
            "12",
            "--additional-request-params",
            &params,
        ];
        args.extend_from_slice(extra);
        let cmd = b.command_url(&url, &args);
        let m = tokio::task::spawn_blocking(move || run_measured(cmd, Duration::from_secs(120)))
            .await
            .unwrap();
        // The process ends on its own: status 0, or 3 when the failed
        // requests (a third) pass --max-error-rate.
        let want = if says.is_some() { 3 } else { 0 };
        assert_eq!(m.status.code(), Some(want), "{mode}: {}", m.stderr);
        let runs = b.runs();
        assert_eq!(runs.len(), 1, "{mode}");
        let recs = crate::benchmark::records(&runs[0].1);
        assert_eq!(recs.len(), 12, "{mode}: every request is recorded");
        let (failed, ok): (Vec<_>, Vec<_>) = recs.iter().partition(|r| !r["error_kind"].is_null());
        for r in &ok {
            assert!(r["num_output_tokens"].as_u64().unwrap() > 0, "{mode}: {r}");
        }
        match says {
            Some(says) => {
                assert!(
                    !failed.is_empty() && !ok.is_empty(),
                    "{mode}: {} failed",
                    failed.len()
                );
                for r in &failed {
                    assert_eq!(r["error_kind"], "plugin", "{mode}: {r}");
                    let msg = r["error_message"].as_str().unwrap();
                    assert!(msg.contains(says), "{mode}: {msg}");
                }
            }
            None => assert!(failed.is_empty(), "{mode}: {failed:?}"),
        }
        table.push(format!(
            "{mode:<16} {:>2} failed {:>2} ok  {:>6.2} s  peak RSS {:>4.0} MiB",
            failed.len(),
            ok.len(),
            m.wall.as_secs_f64(),
            m.max_rss_mib
        ));
        assert!(m.wall < Duration::from_secs(60), "{mode}: {:?}", m.wall);
        assert!(
            m.max_rss_mib < 400.0,
            "{mode}: peak RSS {:.0} MiB",
            m.max_rss_mib
        );
    }
    eprintln!("attack through the binary:\n{}", table.join("\n"));
    sim.shutdown_within(Duration::from_secs(2)).await.unwrap();
}
