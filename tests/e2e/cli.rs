//! The `genai-bench` binary itself.

use std::process::Command;

fn bin() -> Command {
    crate::common::genai_bench()
}

#[test]
fn plugin_inspect_baseten_prints_metadata_and_world() {
    let _machine = crate::common::shared_machine_blocking();
    let out = bin()
        .args(["plugin", "inspect", "baseten"])
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("name:        baseten"), "{text}");
    assert!(
        text.contains("text-to-text, image-text-to-text, text-to-embeddings"),
        "{text}"
    );
    assert!(
        text.contains("auth:        Authorization: Api-Key <key>"),
        "{text}"
    );
    assert!(
        text.contains("world:       genai-bench:backend/plugin@0.5.0"),
        "{text}"
    );
    assert!(text.contains("genai-bench:backend/backend@0.5.0"), "{text}");
    assert!(text.contains("limits:"), "{text}");
    // The limit flags are shown as they will apply.
    let out = bin()
        .args([
            "plugin",
            "inspect",
            "baseten",
            "--plugin-memory-mb",
            "64",
            "--plugin-memory-total-mb",
            "512",
            "--plugin-cpu-ms",
            "50",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "memory 64 MiB per instance (all memories and tables) and 512 MiB for all instances together, 50 ms CPU"
        ),
        "{text}"
    );
}

#[test]
fn plugin_inspect_json_and_second_load_uses_the_cache() {
    let _machine = crate::common::shared_machine_blocking();
    let run = || {
        let out = bin()
            .args(["plugin", "inspect", "--json", "baseten"])
            .output()
            .unwrap();
        crate::common::assert_success(&out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let _first = run();
    let second = run();
    assert_eq!(second["name"], "baseten");
    assert_eq!(second["auth"]["header"]["prefix"], "Api-Key ");
    assert_eq!(second["compiled_from_cache"], true);
}

#[test]
fn inspect_refuses_what_is_not_a_component() {
    let _machine = crate::common::shared_machine_blocking();
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    // A minimal core module: magic + version 1.
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = bin()
        .args(["plugin", "inspect", core.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("core WebAssembly module, not a component"),
        "{err}"
    );

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"hello").unwrap();
    let out = bin()
        .args(["plugin", "inspect", junk.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly file"));

    let out = bin()
        .args(["plugin", "inspect", "no-such-backend"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a built-in plugin"));
}

#[test]
fn demo_runs_offline_and_writes_an_experiment() {
    let _machine = crate::common::shared_machine_blocking();
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["demo", "--seconds-per-run", "2.5", "--experiment-base-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let folders: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1);
    let files: Vec<_> = std::fs::read_dir(&folders[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert!(folders[0].join("report.html").is_file(), "no HTML report");
    // Metadata plus 2 scenarios x 3 concurrency levels.
    assert_eq!(files.len(), 7, "{files:?}");
    for f in files
        .iter()
        .filter(|f| f.file_name().unwrap() != "experiment_metadata.json")
    {
        let run: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let agg = &run["aggregated_metrics"];
        assert!(
            agg["num_completed_requests"].as_u64().unwrap() >= 1,
            "{}",
            f.display()
        );
        assert_eq!(agg["num_error_requests"], 0, "{}", f.display());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[run 6/6]"), "{stderr}");
}

#[test]
fn benchmark_help_is_grouped_and_shows_defaults_and_values() {
    let out = bin().args(["benchmark", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for heading in [
        "API:",
        "Model:",
        "Experiment:",
        "Traffic and sampling:",
        "Server:",
        "Request rate, SLOs and sweeps:",
        "Several machines:",
    ] {
        assert!(help.lines().any(|l| l == heading), "no {heading}: {help}");
    }
    assert!(help.contains("[default: 1 2 4 8"), "{help}");
    assert!(help.contains("[default: 100]"), "{help}");
    assert!(help.contains("text-to-embeddings"), "{help}");
    // Piped, so plain text.
    assert!(!help.contains('\u{1b}'));
}
