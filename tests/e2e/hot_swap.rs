//! Hot swap: a plugin file replaced while a benchmark runs (`--watch`, and
//! SIGHUP). New requests move to the new version once it passed its checks,
//! requests in flight finish on the old one, a broken file is refused, and
//! no request fails.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::benchmark::{Bench, records, sse_answer};
use crate::common::server::TestServer;
use crate::common::test_plugin_path;

const OLD: &str = "baseten 0.1.0";
const NEW: &str = "baseten 0.1.1-next";

/// Replace `dst` atomically, as a deploy tool would.
fn install(src_bytes: &[u8], dst: &Path) {
    let tmp = dst.with_extension("partial");
    std::fs::write(&tmp, src_bytes).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

/// The benchmark as a child process, its stderr collected line by line.
struct Running {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(mut cmd: std::process::Command) -> Self {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().unwrap();
        let lines = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Running {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Wait until a stderr line contains `needle`; fail with the log if not.
    fn wait_for_log(&self, needle: &str, within: Duration) {
        let t = Instant::now();
        while t.elapsed() < within {
            if self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no log line with {needle:?} within {within:?}:\n{}",
            self.log()
        );
    }

    fn finish(mut self) -> String {
        let status = self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        let log = self.log();
        assert!(status.success(), "benchmark failed:\n{log}");
        log
    }
}

fn wait_for_requests(server: &TestServer, n: usize) {
    let t = Instant::now();
    while server.received.lock().unwrap().len() < n {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the benchmark never sent {n} requests"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Records' plugin labels; checks that no request failed.
fn served_by(b: &Bench) -> Vec<String> {
    let runs = b.runs();
    assert_eq!(runs.len(), 1);
    let recs = records(&runs[0].1);
    assert_eq!(recs.len(), 120, "every request is recorded");
    for r in recs {
        assert!(
            r["error_kind"].is_null(),
            "no request fails during a swap: {r}"
        );
        assert_eq!(r["num_output_tokens"], 6, "{r}");
    }
    recs.iter()
        .map(|r| {
            r["plugin"]
                .as_str()
                .expect("each record names its plugin")
                .to_string()
        })
        .collect()
}

fn bench_command(
    b: &Bench,
    server: &TestServer,
    plugin: &Path,
    extra: &[&str],
) -> std::process::Command {
    let mut args = vec![
        "--plugin",
        plugin.to_str().unwrap(),
        "--traffic-scenario",
        "D(24,6)",
        "--num-concurrency",
        "4",
        "--max-requests-per-run",
        "120",
    ];
    args.extend_from_slice(extra);
    b.command_url(
        &format!("{}/environments/production/predict", server.base),
        &args,
    )
}

#[test]
fn watch_swaps_a_changed_plugin_mid_run_and_refuses_a_broken_one() {
    let _machine = crate::common::shared_machine_blocking();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // ~8 chunks x 15 ms per request: 30 waves of 4 last about 4 s.
    let server = rt.block_on(TestServer::start(|r| {
        sse_answer(r, Duration::from_millis(15))
    }));
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(test_plugin_path("baseten_plugin"), &plugin).unwrap();
    let b = Bench::new();
    let run = Running::start(bench_command(
        &b,
        &server,
        &plugin,
        &["--watch", "--watch-interval", "0.05"],
    ));
    run.wait_for_log("watching", Duration::from_secs(60));
    wait_for_requests(&server, 12);

    // A broken "new version": refused, and the run goes on with the old one.
    install(b"\0asm\x0d\0\x01\0 definitely not a component", &plugin);
    run.wait_for_log("hot swap refused", Duration::from_secs(30));
    let sent_at_refusal = server.received.lock().unwrap().len();
    assert!(
        sent_at_refusal < 100,
        "the swap test needs the run to still be going"
    );

    install(
        &std::fs::read(test_plugin_path("baseten_next")).unwrap(),
        &plugin,
    );
    run.wait_for_log(
        &format!("hot swap: {OLD} -> {NEW}"),
        Duration::from_secs(30),
    );
    let log = run.finish();
    assert!(
        log.contains(&format!("keeping {OLD}")) && log.contains("plugin.wasm"),
        "the refusal names the file and the version kept:\n{log}"
    );

    let served = served_by(&b);
    let old = served.iter().filter(|p| *p == OLD).count();
    let new = served.iter().filter(|p| *p == NEW).count();
    assert!(
        old >= 12 && new > 0,
        "both versions served: {old} old, {new} new"
    );
    assert_eq!(old + new, 120, "only the two versions served: {served:?}");
    let meta = b.metadata();
    let history: Vec<&str> = meta["plugins_served"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history[0].starts_with(OLD) && history[1].starts_with(NEW),
        "{history:?}"
    );
}

#[cfg(unix)]
#[test]
fn sighup_reloads_the_plugin_file_without_watch() {
    let _machine = crate::common::shared_machine_blocking();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(TestServer::start(|r| {
        sse_answer(r, Duration::from_millis(15))
    }));
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(test_plugin_path("baseten_plugin"), &plugin).unwrap();
    let b = Bench::new();
    let run = Running::start(bench_command(&b, &server, &plugin, &[]));
    wait_for_requests(&server, 12);
    // Without --watch a changed file alone changes nothing...
    install(
        &std::fs::read(test_plugin_path("baseten_next")).unwrap(),
        &plugin,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!run.log().contains("hot swap:"), "{}", run.log());
    // ...until SIGHUP.
    let pid = run.child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    run.wait_for_log(
        &format!("hot swap: {OLD} -> {NEW}"),
        Duration::from_secs(30),
    );
    run.finish();
    let served = served_by(&b);
    assert!(
        served.iter().any(|p| p == OLD) && served.iter().any(|p| p == NEW),
        "{served:?}"
    );
}

/// A pinned run never runs other code: SIGHUP after the file was replaced
/// reloads nothing, says why, and every request is served by the pin.
#[cfg(unix)]
#[test]
fn sighup_never_swaps_out_a_pinned_plugin() {
    let _machine = crate::common::shared_machine_blocking();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(TestServer::start(|r| {
        sse_answer(r, Duration::from_millis(15))
    }));
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("plugin.wasm");
    let bytes = std::fs::read(test_plugin_path("baseten_plugin")).unwrap();
    std::fs::write(&plugin, &bytes).unwrap();
    let pin = genai_bench::plugin::sha256_hex(&bytes);
    let b = Bench::new();
    let run = Running::start(bench_command(
        &b,
        &server,
        &plugin,
        &["--plugin-sha256", &pin],
    ));
    wait_for_requests(&server, 12);
    install(
        &std::fs::read(test_plugin_path("baseten_next")).unwrap(),
        &plugin,
    );
    let pid = run.child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    run.wait_for_log("pinned by --plugin-sha256", Duration::from_secs(30));
    let log = run.finish();
    assert!(!log.contains("hot swap:"), "{log}");
    let served = served_by(&b);
    assert!(served.iter().all(|p| p == OLD), "{served:?}");
}
