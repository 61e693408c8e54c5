//! Measurement accuracy: the benchmark binary against the simulator, whose
//! ground truth says when each token left. The client's mean TTFT and TPOT
//! must agree with the truth.

use std::time::Duration;

use genai_bench::simulator::{self, LatencyDist, SimConfig};
use serde_json::Value;

use crate::benchmark::test_tokenizer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ttft_and_tpot_match_the_ground_truth() {
    let _machine = crate::common::whole_machine().await;
    let sim = simulator::start(SimConfig {
        ttft_base_ms: 200.0,
        prefill_us_per_token: 0.0,
        itl: LatencyDist::Constant { ms: 10.0 },
        seed: Some(11),
        keep_ground_truth: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = format!("{}/environments/production/predict", sim.base_url());
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            crate::common::genai_bench()
                .args(["benchmark", "--api-backend", "baseten", "--api-base", &base])
                .args([
                    "--api-key",
                    "k",
                    "--api-model-name",
                    "m",
                    "--model-tokenizer",
                ])
                .arg(test_tokenizer())
                // No preflight: the ground truth then holds exactly the
                // run's requests, one per record.
                .args(["--no-preflight"])
                .args(["--traffic-scenario", "D(32,100)", "--num-concurrency", "64"])
                .args(["--max-requests-per-run", "128", "--max-time-per-run", "2"])
                // The first wave opens 64 connections, a cost the server's
                // clock cannot see; compare the second wave, on warm ones.
                .args(["--warmup-ratio", "0.5"])
                .arg("--experiment-base-dir")
                .arg(&dir)
                .args(["--experiment-folder-name", "acc"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    crate::common::assert_success(&out);
    let file = std::fs::read_dir(dir.path().join("acc"))
        .unwrap()
        .map(|e| e.unwrap().path())
        // The run file (reports such as report.html sit next to it).
        .find(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().unwrap() != "experiment_metadata.json"
        })
        .unwrap();
    let run: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let stats = &run["aggregated_metrics"]["stats"];
    assert_eq!(run["aggregated_metrics"]["num_completed_requests"], 64);
    let client_ttft = stats["ttft"]["mean"].as_f64().unwrap() * 1e3;
    let client_tpot = stats["tpot"]["mean"].as_f64().unwrap() * 1e3;

    let mut truth = sim.ground_truth();
    assert_eq!(truth.len(), 128);
    // Constant timing: completion order is arrival order, so the second
    // wave by completion is the second wave by arrival.
    truth.sort_by_key(|t| t.id);
    let truth = &truth[64..];
    let (mut ttft_sum, mut tpot_sum) = (0.0, 0.0);
    for t in truth {
        let tok: Vec<_> = t.chunks.iter().filter(|c| c.tokens > 0).collect();
        assert_eq!(tok.iter().map(|c| c.tokens as u64).sum::<u64>(), 100);
        let first = tok.first().unwrap().t_us as f64 / 1e3;
        let last = tok.last().unwrap().t_us as f64 / 1e3;
        ttft_sum += first;
        tpot_sum += (last - first) / 99.0;
    }
    let truth_ttft = ttft_sum / truth.len() as f64;
    let truth_tpot = tpot_sum / truth.len() as f64;
    let (dttft, dtpot) = (client_ttft - truth_ttft, client_tpot - truth_tpot);
    eprintln!(
        "accuracy: client TTFT {client_ttft:.3} ms vs truth {truth_ttft:.3} ms (error {dttft:+.3} ms); \
         client TPOT {client_tpot:.4} ms vs truth {truth_tpot:.4} ms (error {dtpot:+.4} ms)"
    );
    assert!(dttft.abs() <= 2.0, "TTFT error {dttft:.3} ms");
    assert!(dtpot.abs() <= 0.2, "TPOT error {dtpot:.4} ms");
    sim.shutdown_within(Duration::from_secs(2)).await.unwrap();
}
