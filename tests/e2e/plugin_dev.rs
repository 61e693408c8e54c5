//! `genai-bench plugin check` and `plugin new` through the binary: the
//! shipped plugins pass the check with their fixtures, a misbehaving plugin
//! fails it with a list of what failed, and a freshly scaffolded plugin
//! builds and passes it in every language.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::benchmark::{Bench, KEY, records};
use crate::common::{genai_bench, test_plugin_path};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn check(plugin: &str, extra: &[&str]) -> (Output, Value) {
    let out = genai_bench()
        .current_dir(workspace())
        .args(["plugin", "check", "--json", plugin])
        .args(extra)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plugin check printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, report)
}

fn assert_passes(plugin: &str, extra: &[&str], min_fixtures: usize) -> Value {
    let (out, report) = check(plugin, extra);
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["failures"].as_array().unwrap().len(), 0);
    let passed: Vec<&str> = report["passed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let fixtures = passed.iter().filter(|p| p.starts_with("fixture ")).count();
    assert!(fixtures >= min_fixtures, "{passed:#?}");
    assert!(passed.iter().any(|p| p.starts_with("metadata:")));
    assert!(passed.iter().any(|p| p.starts_with("requests:")));
    for call in ["build-request", "feed", "finish", "response-parser new"] {
        let c = &report["calls"][call];
        assert!(c["count"].as_u64().unwrap() > 0, "{call}: {report:#}");
        assert!(c["max_ms"].as_f64().unwrap() >= c["median_ms"].as_f64().unwrap());
        assert!(c["peak_memory_bytes"].as_u64().unwrap() > 0, "{call}");
    }
    report
}

#[test]
fn the_shipped_plugins_pass_the_check() {
    let _machine = crate::common::shared_machine_blocking();
    // Fixtures found by default under plugins/<name>/fixtures.
    let r = assert_passes("openai", &[], 9);
    assert!(
        r["passed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("4 backend names")),
        "{r:#}"
    );
    assert_passes("baseten", &["--fixtures", "plugins/baseten/fixtures"], 9);
    assert_passes(
        "azure-openai",
        &["--fixtures", "plugins/azure-openai/fixtures"],
        2,
    );
    assert_passes("cohere", &["--fixtures", "plugins/cohere/fixtures"], 4);
    assert_passes(
        "gcp-vertex",
        &["--fixtures", "plugins/gcp-vertex/fixtures"],
        3,
    );
    // Bedrock's bodies follow the model family: the checks name a model
    // of each task's family.
    assert_passes(
        "aws-bedrock",
        &[
            "--fixtures",
            "plugins/aws-bedrock/fixtures",
            "--model",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "--model",
            "text-to-embeddings=amazon.titan-embed-text-v2:0",
        ],
        3,
    );
    // OCI requests need a compartment: the check takes it as a benchmark does.
    let compartment = r#"{"compartmentId": "ocid1.compartment.oc1..check"}"#;
    let r = assert_passes(
        "oci-genai",
        &[
            "--fixtures",
            "plugins/oci/fixtures",
            "--additional-request-params",
            compartment,
        ],
        7,
    );
    assert!(r["passed"].to_string().contains("3 backend names"), "{r:#}");
    assert_passes(
        "oci-openai",
        &[
            "--fixtures",
            "plugins/oci-openai/fixtures",
            "--additional-request-params",
            compartment,
        ],
        2,
    );
    // Without it, validate-params says what is missing.
    let (out, report) = check("oci-genai", &["--fixtures", "plugins/oci/fixtures"]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert!(
        report["failures"].to_string().contains("compartmentId"),
        "{report:#}"
    );
    // The text report names every call with its time and memory.
    let out = genai_bench()
        .current_dir(workspace())
        .args(["plugin", "check", "openai"])
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PASSED"), "{text}");
    assert!(
        text.contains("median") && text.contains("peak memory"),
        "{text}"
    );
}

#[test]
fn a_misbehaving_plugin_fails_the_check_with_what_failed() {
    let _machine = crate::common::shared_machine_blocking();
    let hostile = test_plugin_path("hostile_plugin");
    let hostile = hostile.to_str().unwrap();
    // Its simple parser misses reasoning and in-stream errors.
    let (out, report) = check(hostile, &["--fixtures", "plugins/openai/fixtures"]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(report["ok"], false);
    let failures: Vec<&str> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("fixture reasoning-content.json: expected")),
        "{failures:#?}"
    );

    // A parser that puts a call's events in its last list: the events are
    // right, their chunks (times) are not.
    let late = tempfile::tempdir().unwrap();
    std::fs::write(
        late.path().join("late.json"),
        serde_json::json!({
            "headers": {"x-hostile": "late-lists", "content-type": "text/event-stream"},
            "body_lines": [
                r#"data: {"choices":[{"delta":{"content":"a"}}]}"#, "",
                r#"data: {"choices":[{"delta":{"content":"b"}}]}"#, "",
                "data: [DONE]", "",
            ],
            "expect": [{"content": "ab"}, "end"],
        })
        .to_string(),
    )
    .unwrap();
    let (out, report) = check(hostile, &["--fixtures", late.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("fixture late.json") && failures.contains("in the wrong list"),
        "{report:#}"
    );

    // A parser that loops, and one that panics, are caught by the limits.
    let dir = tempfile::tempdir().unwrap();
    for mode in ["loop-feed", "panic-feed"] {
        std::fs::write(
            dir.path().join(format!("{mode}.json")),
            format!(
                r#"{{"headers": {{"x-hostile": "{mode}"}}, "body": "data: [DONE]\n",
                    "expect": ["end"]}}"#
            ),
        )
        .unwrap();
    }
    let (out, report) = check(
        hostile,
        &[
            "--fixtures",
            dir.path().to_str().unwrap(),
            "--plugin-cpu-ms",
            "20",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let failures = report["failures"].to_string();
    assert!(
        failures.contains("loop-feed.json") && failures.contains("CPU time limit of 20 ms"),
        "{failures}"
    );
    assert!(
        failures.contains("panic-feed.json") && failures.contains("panicked"),
        "{failures}"
    );

    // Not a plugin at all.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let (out, report) = check(junk.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        report["failures"][0]
            .as_str()
            .unwrap()
            .contains("does not load"),
        "{report:#}"
    );
}

#[test]
fn plugin_new_refuses_bad_names_and_non_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    let out = genai_bench()
        .args(["plugin", "new", "--lang", "rust", "Bad Name", "--dir"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plugin name \"Bad Name\" is invalid"));
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let out = genai_bench()
        .args(["plugin", "new", "--lang", "js", "ok", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
}

/// `plugin new --lang LANG NAME` into a fixed folder under target/ (so a
/// rebuild reuses the cached dependencies), replacing an earlier one.
fn scaffold(lang: &str, name: &str) -> PathBuf {
    let dir = workspace()
        .join("target/scaffold-test")
        .join(lang)
        .join(name);
    if dir.exists() {
        // Keep the Rust build cache, which lives beside it.
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let out = genai_bench()
        .args(["plugin", "new", "--lang", lang, name, "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("genai-bench plugin check"), "{text}");
    assert!(dir.join("wit/backend.wit").exists());
    assert!(dir.join("fixtures/stream.json").exists());
    dir
}

fn run(c: &mut Command, what: &str) {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The scaffold's plugin must pass the check with its own fixtures, and
/// benchmark the simulator (it speaks /v1/completions, which serve-sim serves).
fn check_and_benchmark(wasm: &Path, dir: &Path) {
    let report = assert_passes(
        wasm.to_str().unwrap(),
        &["--fixtures", dir.join("fixtures").to_str().unwrap()],
        4,
    );
    assert!(
        report["plugin"]
            .as_str()
            .unwrap()
            .contains("contract 0.5.0")
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sim = genai_bench::simulator::start(genai_bench::simulator::SimConfig {
            api_key: Some(KEY.into()),
            seed: Some(4),
            ..genai_bench::simulator::SimConfig::zero_delay()
        })
        .await
        .unwrap();
        let b = Bench::new();
        let mut c = b.command_url(
            &sim.base_url(),
            &[
                "--traffic-scenario",
                "D(30,8)",
                "--max-requests-per-run",
                "3",
                "--num-concurrency",
                "1",
            ],
        );
        c.arg("--plugin").arg(wasm);
        let out = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        crate::common::assert_success(&out);
        let runs = b.runs();
        for r in records(&runs[0].1) {
            assert_eq!(r["error_code"], Value::Null, "{r}");
            assert_eq!(r["num_output_tokens"], 8, "{r}");
        }
        assert!(
            sim.ground_truth()
                .iter()
                .all(|t| t.route == "/v1/completions" && t.status == 200)
        );
    });
}

#[test]
fn a_new_rust_plugin_builds_and_passes_the_check() {
    let _machine = crate::common::shared_machine_blocking();
    let dir = scaffold("rust", "my-api");
    // Outside this workspace the scaffold's own config links the plugin
    // with room for a request (here the workspace's does the same).
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    assert!(
        config.contains("link-arg=--initial-memory=2097152"),
        "{config}"
    );
    // Same dependency versions as this workspace, and its registry cache.
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let target = workspace().join("target/scaffold-test/rust-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let clean = |c: &mut Command| {
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            c.env_remove(var);
        }
        c.current_dir(&dir).env("CARGO_TARGET_DIR", &target);
    };
    let mut test = Command::new(&cargo);
    test.args(["test", "--offline", "--quiet"]);
    clean(&mut test);
    run(&mut test, "cargo test of the new plugin");
    let mut build = Command::new(&cargo);
    build.args([
        "build",
        "--offline",
        "--release",
        "--target",
        "wasm32-wasip2",
    ]);
    clean(&mut build);
    run(&mut build, "cargo build of the new plugin");
    let wasm = target.join("wasm32-wasip2/release/my_api_plugin.wasm");
    check_and_benchmark(&wasm, &dir);
}

/// A tool for the Python or JavaScript scaffold: the env var, else where
/// `plugins/build-other-languages.sh` installs it; a clear failure if absent.
fn tool(var: &str, defaults: &[&str], install: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    for d in defaults {
        let pattern = workspace().join(d);
        // One `*` level is enough for target/js-tools/<plugin>/node_modules.
        let s = pattern.to_str().unwrap();
        let found = match s.split_once('*') {
            None => pattern.exists().then(|| pattern.clone()),
            Some((head, tail)) => std::fs::read_dir(head).ok().and_then(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| PathBuf::from(format!("{}{tail}", e.path().display())))
                    .find(|p| p.exists())
            }),
        };
        if let Some(p) = found {
            return p;
        }
    }
    panic!("{var} is not set and no tool was found at {defaults:?}: {install}");
}

#[test]
fn a_new_python_plugin_builds_and_passes_the_check() {
    let _machine = crate::common::shared_machine_blocking();
    let cpy = tool(
        "GENAI_BENCH_COMPONENTIZE_PY",
        &["target/py-tools/bin/componentize-py"],
        "install componentize-py 0.25.1 (python3 -m venv target/py-tools && target/py-tools/bin/pip install componentize-py==0.25.1), as .ci/run does",
    );
    let dir = scaffold("python", "my-py-api");
    run(
        Command::new("python3")
            .args(["-m", "unittest", "-q", "test_logic"])
            .current_dir(&dir),
        "the Python unit tests",
    );
    run(
        Command::new(&cpy)
            .args(["-d", "wit", "-w", "plugin", "bindings", "build/bindings"])
            .current_dir(&dir),
        "componentize-py bindings",
    );
    run(
        Command::new(&cpy)
            .args([
                "-d",
                "wit",
                "-w",
                "plugin",
                "componentize",
                "backend",
                "-p",
                ".",
                "-p",
                "build/bindings",
                "-o",
                "my_py_api_plugin.wasm",
            ])
            .current_dir(&dir),
        "componentize-py componentize",
    );
    check_and_benchmark(&dir.join("my_py_api_plugin.wasm"), &dir);
}

#[test]
fn a_new_js_plugin_builds_and_passes_the_check() {
    let _machine = crate::common::shared_machine_blocking();
    let cjs = tool(
        "GENAI_BENCH_COMPONENTIZE_JS",
        &[
            "target/js-tools/*/node_modules/.bin/componentize-js",
            "plugins/*/node_modules/.bin/componentize-js",
        ],
        "install @bytecodealliance/componentize-js 0.23.0 (npm ci in target/js-tools/<plugin>), as .ci/run does",
    );
    let dir = scaffold("js", "my-js-api");
    run(
        Command::new("node")
            .args(["--test", "test.mjs"])
            .current_dir(&dir),
        "the JavaScript unit tests",
    );
    run(
        Command::new(&cjs)
            .args([
                "--wit",
                "wit",
                "--world-name",
                "plugin",
                "-d",
                "http",
                "fetch-event",
                "-o",
                "my_js_api_plugin.wasm",
                "plugin.js",
            ])
            .current_dir(&dir),
        "componentize-js",
    );
    check_and_benchmark(&dir.join("my_js_api_plugin.wasm"), &dir);
}
