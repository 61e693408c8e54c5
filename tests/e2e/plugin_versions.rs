//! The versioning policy: a host keeps loading plugins built against older
//! contract versions. `tests/plugins/legacy-v0_1`, `legacy-v0_3` and
//! `legacy-v0_4` are built with wit-bindgen against the frozen
//! `wit/v0.1.0/`, `wit/v0.3.0/` and `wit/v0.4.0/` and must keep
//! benchmarking in every later host; an unknown version is refused with the
//! versions the host loads.

use genai_bench::plugin::{ContractVersion, PluginOrigin};
use genai_bench::simulator::{self, SimConfig};
use serde_json::Value;

use crate::benchmark::{Bench, KEY, records};
use crate::common::{runtime, test_plugin_path};

fn legacy_bytes() -> Vec<u8> {
    std::fs::read(test_plugin_path("legacy_v0_1_plugin")).unwrap()
}

/// The legacy component with every `@0.1.0` rewritten to `@{version}` (same
/// length, so the binary stays well-formed): a plugin of another contract.
fn with_version(version: &str) -> Vec<u8> {
    assert_eq!(version.len(), 5);
    let (from, to) = (b"@0.1.0".as_slice(), format!("@{version}").into_bytes());
    let mut bytes = legacy_bytes();
    let mut i = 0;
    let mut n = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(&to);
            n += 1;
        }
        i += 1;
    }
    assert!(n > 0);
    bytes
}

/// `requests` requests of `D(40,12)` at concurrency 2 through the plugin at
/// `plugin`, against `url`; the finished benchmark (its files).
async fn bench_through(plugin: &std::path::Path, url: &str, requests: u32) -> Bench {
    let b = Bench::new();
    let n = requests.to_string();
    let mut c = b.command_url(
        url,
        &[
            "--traffic-scenario",
            "D(40,12)",
            "--max-requests-per-run",
            &n,
            "--num-concurrency",
            "2",
        ],
    );
    c.arg("--plugin").arg(plugin);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    crate::common::assert_success(&out);
    b
}

/// The records of a benchmark's one run through a plugin of `contract`,
/// after checking there are `n`, all successful, of 12 output tokens each.
fn all_ok(b: &Bench, contract: &str, n: usize) -> Vec<Value> {
    assert_eq!(
        b.metadata()["plugin"]["world"],
        format!("genai-bench:backend/plugin@{contract}")
    );
    let runs = b.runs();
    let recs = records(&runs[0].1).clone();
    assert_eq!(recs.len(), n);
    for r in &recs {
        assert_eq!(r["error_code"], Value::Null, "{r}");
        assert_eq!(r["num_output_tokens"], 12, "{r}");
    }
    recs
}

#[test]
fn a_0_1_0_plugin_loads_and_is_adapted() {
    let _machine = crate::common::shared_machine_blocking();
    let p = runtime()
        .load_file(&test_plugin_path("legacy_v0_1_plugin"))
        .unwrap();
    assert_eq!(p.contract(), ContractVersion::V0_1);
    assert_eq!(p.info().name, "legacy");
    assert!(p.info().backends.is_empty());
    assert!(
        p.world()
            .exports
            .contains(&"genai-bench:backend/backend@0.1.0".to_string())
    );
    // The current plugins are 0.5.0.
    assert_eq!(
        crate::common::baseten().contract(),
        ContractVersion::CURRENT
    );
}

#[test]
fn unknown_contract_versions_are_refused_naming_the_supported_ones() {
    let _machine = crate::common::shared_machine_blocking();
    for version in ["9.0.0", "0.0.1"] {
        let err = runtime()
            .load_bytes(
                &with_version(version),
                PluginOrigin::Bytes(format!("v{version}")),
            )
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("contract version {version}"))
                && msg.contains("this host loads versions 0.5.0, 0.4.0, 0.3.0, 0.2.0, 0.1.0"),
            "{msg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_1_0_plugin_benchmarks_the_simulator_in_todays_host() {
    let _machine = crate::common::shared_machine().await;
    let sim = simulator::start(SimConfig {
        api_key: Some(KEY.into()),
        seed: Some(9),
        ..SimConfig::zero_delay()
    })
    .await
    .unwrap();
    let legacy = test_plugin_path("legacy_v0_1_plugin");
    let b = bench_through(&legacy, &sim.base_url(), 5).await;
    let meta = b.metadata();
    assert_eq!(meta["plugin"]["name"], "legacy");
    assert_eq!(meta["plugin"]["world"], "genai-bench:backend/plugin@0.1.0");
    let runs = b.runs();
    assert_eq!(runs.len(), 1);
    let recs = records(&runs[0].1);
    assert_eq!(recs.len(), 5);
    for r in recs {
        assert_eq!(r["error_code"], Value::Null, "{r}");
        assert_eq!(r["num_output_tokens"], 12, "{r}");
        assert!(r["ttft"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(
        sim.ground_truth()
            .iter()
            .all(|t| t.route == "/v1/chat/completions" && t.status == 200)
    );

    // `plugin inspect` names the contract it was built against.
    let out = crate::common::genai_bench()
        .args(["plugin", "inspect"])
        .arg(&legacy)
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "contract:    0.1.0 (older; this host loads 0.5.0, 0.4.0, 0.3.0, 0.2.0, 0.1.0)"
        ),
        "{text}"
    );
    assert!(
        text.contains("world:       genai-bench:backend/plugin@0.1.0"),
        "{text}"
    );
}

/// A 0.3.0 plugin's `feed` takes one chunk: the host feeds a body's batch
/// to it a call per chunk, and its events keep their chunks' arrival times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_3_0_plugin_is_fed_a_chunk_per_call_and_times_like_a_current_one() {
    let _machine = crate::common::shared_machine().await;
    let p = runtime()
        .load_file(&test_plugin_path("legacy_v0_3_plugin"))
        .unwrap();
    assert_eq!(p.contract(), ContractVersion::V0_3);
    assert_eq!(p.info().name, "legacy-v0-3");
    // TTFT 30 ms, then a token every 10 ms, one chunk each: a plugin that
    // got the whole body at once without per-chunk times would put every
    // token at the body's end.
    let sim = simulator::start(SimConfig {
        api_key: Some(KEY.into()),
        seed: Some(5),
        ttft_base_ms: 30.0,
        prefill_us_per_token: 0.0,
        itl: simulator::LatencyDist::Constant { ms: 10.0 },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let b = bench_through(&test_plugin_path("legacy_v0_3_plugin"), &sim.base_url(), 4).await;
    for r in all_ok(&b, "0.3.0", 4) {
        let ttft = r["ttft"].as_f64().unwrap();
        let e2e = r["e2e_latency"].as_f64().unwrap();
        // First token at ~30 ms, the last ~110 ms later.
        assert!((0.025..0.080).contains(&ttft), "{r}");
        assert!(e2e - ttft > 0.090, "{r}");
        let tpot = r["tpot"].as_f64().unwrap();
        assert!((0.008..0.015).contains(&tpot), "{r}");
    }
}

/// A 0.4.0 plugin's parser runs in the instance that built the request
/// (its parser may keep state from `build-request`; this one refuses to
/// parse anywhere else), while a current plugin's parser gets a fresh one:
/// the host keeps the older lifecycle for older plugins, streaming and not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0_4_0_plugin_parses_in_the_instance_that_built_the_request() {
    let _machine = crate::common::shared_machine().await;
    let p = runtime()
        .load_file(&test_plugin_path("legacy_v0_4_plugin"))
        .unwrap();
    assert_eq!(p.contract(), ContractVersion::V0_4);
    assert!(!p.contract().parses_apart());
    assert!(ContractVersion::CURRENT.parses_apart());
    assert_eq!(p.info().name, "legacy-v0-4");
    let sim = simulator::start(SimConfig {
        api_key: Some(KEY.into()),
        seed: Some(6),
        ..SimConfig::zero_delay()
    })
    .await
    .unwrap();
    let plugin = test_plugin_path("legacy_v0_4_plugin");
    let b = bench_through(&plugin, &sim.base_url(), 4).await;
    all_ok(&b, "0.4.0", 4);

    // The same plugin's parser in an instance that built nothing refuses:
    // the check above could not pass by accident.
    let mut inst = p.instantiate(1).await.unwrap();
    inst.begin_response(&genai_bench::plugin::ResponseHead {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        task: genai_bench::plugin::Task::TextToText,
        stream: true,
    })
    .await
    .unwrap();
    let err = inst.finish().await.unwrap_err();
    assert!(
        err.to_string().contains("did not build the request"),
        "{err}"
    );
}
