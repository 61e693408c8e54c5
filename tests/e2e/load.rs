//! Open-loop load, goodput, sweep, validity, shards + merge and calibrate:
//! the binary against the built-in simulator on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Output;

use genai_bench::simulator::{self, LatencyDist, SimConfig, SimHandle};
use serde_json::Value;

use crate::benchmark::Bench;

async fn sim(itl: LatencyDist, load_factor: f64) -> (SimHandle, String) {
    let sim = simulator::start(SimConfig {
        ttft_base_ms: 20.0,
        prefill_us_per_token: 0.0,
        itl,
        load_factor,
        seed: Some(5),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/environments/production/predict", sim.base_url());
    (sim, url)
}

async fn bench(b: &Bench, url: &str, extra: &[&str]) -> Output {
    let mut cmd = b.command_url(url, extra);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run_files(dir: &Path) -> Vec<(String, Value)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name().unwrap() != "experiment_metadata.json"
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

/// numpy's default percentile, as the tool computes it.
fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = p * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_at_the_requested_rate_and_corrects_latency() {
    let _machine = crate::common::whole_machine().await;
    let (sim, url) = sim(LatencyDist::Constant { ms: 2.0 }, 0.0).await;
    let b = Bench::new();
    let out = bench(
        &b,
        &url,
        &[
            "--traffic-scenario",
            "D(16,8)",
            "--qps-level",
            "50",
            "--distribution",
            "constant",
            "--max-requests-per-run",
            "1000",
            "--max-time-per-run",
            "0.0334",
        ],
    )
    .await;
    crate::common::assert_success(&out);
    let runs = run_files(&b.folder());
    assert_eq!(runs.len(), 1);
    let (name, run) = &runs[0];
    assert!(name.contains("_qps_50_time_"), "{name}");
    let a = &run["aggregated_metrics"];
    assert_eq!(a["iteration_type"], "qps");
    assert_eq!(a["requested_qps"], 50.0);
    // 2.004 s at one request every 20 ms: t = 0, 0.02, ..., 2.00.
    assert_eq!(a["total_arrivals"], 101);
    let achieved = a["achieved_qps"].as_f64().unwrap();
    assert!((achieved - 50.0).abs() < 2.5, "achieved {achieved} req/s");
    let recs = run["individual_request_metrics"].as_array().unwrap();
    assert_eq!(recs.len(), 101);
    let mut sched: Vec<f64> = recs
        .iter()
        .map(|r| r["scheduled_offset"].as_f64().unwrap())
        .collect();
    sched.sort_by(f64::total_cmp);
    for (i, s) in sched.iter().enumerate() {
        assert!((s - i as f64 * 0.02).abs() < 1e-6, "slot {i} at {s}");
    }
    // The run is bounded by --max-time-per-run (2.004 s): the last requests
    // (36 ms each) are cut there, recorded as cancelled, out of the stats.
    let cancelled: Vec<&Value> = recs
        .iter()
        .filter(|r| r["error_kind"] == "cancelled")
        .collect();
    assert!(
        !cancelled.is_empty() && cancelled.len() < 6,
        "{}",
        cancelled.len()
    );
    for r in &cancelled {
        assert!(r["start_offset"].as_f64().unwrap() > 1.9, "{r}");
        assert!(r["end_offset"].as_f64().unwrap() <= 2.004 + 0.01, "{r}");
        let msg = r["error_message"].as_str().unwrap();
        assert!(msg.contains("--max-time-per-run"), "{msg}");
    }
    assert_eq!(a["num_cancelled_requests"], cancelled.len());
    assert!(a["run_duration"].as_f64().unwrap() <= 2.004 + 0.01);
    for r in recs.iter().filter(|r| r["error_kind"] != "cancelled") {
        let lag = r["send_lag"].as_f64().unwrap();
        assert!(lag >= 0.0);
        // Actual send = scheduled + lag.
        let start = r["start_offset"].as_f64().unwrap();
        let sched = r["scheduled_offset"].as_f64().unwrap();
        assert!(
            (start - (sched + lag)).abs() < 1e-6,
            "start {start} sched {sched} lag {lag}"
        );
        let e2e = r["e2e_latency"].as_f64().unwrap();
        let e2e_c = r["e2e_latency_corrected"].as_f64().unwrap();
        assert!((e2e_c - e2e - lag).abs() < 1e-9);
        let ttft_c = r["ttft_corrected"].as_f64().unwrap();
        assert!((ttft_c - r["ttft"].as_f64().unwrap() - lag).abs() < 1e-9);
    }
    // The lag distribution is recorded and sane: sending is not late by a
    // whole gap on this idle simulator.
    let lag_p50 = a["stats"]["send_lag"]["p50"].as_f64().unwrap();
    assert!(lag_p50 < 0.02, "send lag p50 {lag_p50}");
    assert!(a["validity"]["measures"]["pacing_error_p99_ms"].is_number());
    assert!(a["validity"]["measures"]["parse_delay_p99_ms"].is_number());
    assert!(a["validity"]["measures"]["client_cpu_cores"].is_number());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("open loop: requested 50.00 req/s (constant)"),
        "{stderr}"
    );
    // Open-loop runs get the same reports as closed-loop ones.
    let files: Vec<String> = std::fs::read_dir(b.folder())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for want in ["_summary.xlsx", "report.html", ".png"] {
        assert!(
            files.iter().any(|f| f.ends_with(want)),
            "no *{want} in {files:?}"
        );
    }
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodput_is_the_count_of_records_meeting_every_slo() {
    let _machine = crate::common::shared_machine().await;
    // 20 tokens at 5 ± 2 ms: e2e around 120 ms, so a 120 ms SLO splits them.
    let (sim, url) = sim(LatencyDist::Normal { mean: 5.0, sd: 2.0 }, 0.0).await;
    let b = Bench::new();
    let out = bench(
        &b,
        &url,
        &[
            "--traffic-scenario",
            "D(16,20)",
            "--qps-level",
            "40",
            "--distribution",
            "poisson",
            "--max-concurrency",
            "64",
            "--max-requests-per-run",
            "60",
            "--max-time-per-run",
            "1",
            "--slo",
            "e2e=120ms",
            "--slo",
            "ttft=1s",
            "--slo-attainment",
            "0.5",
        ],
    )
    .await;
    crate::common::assert_success(&out);
    let runs = run_files(&b.folder());
    let run = &runs[0].1;
    let a = &run["aggregated_metrics"];
    let recs = run["individual_request_metrics"].as_array().unwrap();
    let kept: Vec<&Value> = recs.iter().filter(|r| r["excluded"].is_null()).collect();
    let good = kept
        .iter()
        .filter(|r| {
            r["error_kind"].is_null()
                && r["e2e_latency_corrected"].as_f64().unwrap() <= 0.120
                && r["ttft_corrected"].as_f64().unwrap() <= 1.0
        })
        .count();
    let g = &a["goodput"];
    assert_eq!(g["num_good_requests"].as_u64().unwrap() as usize, good);
    assert!(
        good > 0 && good < kept.len(),
        "the SLO should split the requests: {good} of {}",
        kept.len()
    );
    let attainment = good as f64 / kept.len() as f64;
    assert!(close(g["attainment"].as_f64().unwrap(), attainment));
    assert_eq!(g["meets_slo"].as_bool().unwrap(), attainment >= 0.5);
    let rate = good as f64 / a["run_duration"].as_f64().unwrap();
    assert!(close(
        g["goodput_requests_per_second"].as_f64().unwrap(),
        rate
    ));
    assert_eq!(a["arrivals"]["max_concurrency"], 64);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{good} of {}", kept.len())),
        "{stderr}"
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_reports_the_highest_level_meeting_the_slo() {
    // The SLO margins are ~15%: nothing else may run meanwhile.
    let _machine = crate::common::whole_machine().await;
    // Latency grows with load: x(1 + 0.05 (n - 1)); 20 + 20*5 = 120 ms
    // alone, so a 280 ms SLO holds up to ~22 in flight: 17 passes
    // (216 ms), 33 fails (312 ms).
    let (sim, url) = sim(LatencyDist::Constant { ms: 5.0 }, 0.05).await;
    let b = Bench::new();
    let out = bench(
        &b,
        &url,
        &[
            "--traffic-scenario",
            "D(16,20)",
            "--num-concurrency",
            "64",
            "--num-concurrency",
            "1",
            "--num-concurrency",
            "2",
            "--num-concurrency",
            "128",
            "--max-requests-per-run",
            "400",
            "--warmup-ratio",
            "0.2",
            "--max-time-per-run",
            "0.05",
            "--slo",
            "e2e=280ms",
            "--sweep",
            "--sweep-bisect",
            "2",
            // What is tested is the bisection over the SLO; the debug
            // build's parse delay (~20 ms p99 at 17 in flight here) is the
            // validity tests' subject, and would mark a passing level invalid.
            "--validity-max-parse-delay-ms",
            "500",
        ],
    )
    .await;
    crate::common::assert_success(&out);
    let meta = read_json(&b.folder().join("experiment_metadata.json"));
    let sweep = &meta["sweep"][0];
    let levels = sweep["levels"].as_array().unwrap();
    let tried: Vec<(f64, bool)> = levels
        .iter()
        .map(|l| {
            (
                l["value"].as_f64().unwrap(),
                l["meets_slo"].as_bool().unwrap(),
            )
        })
        .collect();
    // Shown only if an assertion below fails.
    for (n, r) in &run_files(&b.folder()) {
        let a = &r["aggregated_metrics"];
        eprintln!(
            "{n}: e2e p50 {}, {} completed, goodput {}, validity {}",
            a["stats"]["e2e_latency"]["p50"],
            a["num_completed_requests"],
            a["goodput"],
            a["validity"]["reasons"]
        );
    }
    // Ascending, 128 never run (64 failed first), two bisection runs.
    assert!(tried.iter().all(|t| t.0 != 128.0), "{tried:?}");
    assert_eq!(tried.len(), 5, "{tried:?}");
    assert!(tried.contains(&(64.0, false)), "{tried:?}");
    let best = sweep["best"].as_f64().unwrap();
    assert!(best > 2.0 && best < 64.0, "{tried:?}");
    // The best passes; every level above it that ran fails.
    assert!(tried.contains(&(best, true)));
    assert!(
        tried.iter().filter(|t| t.0 > best).all(|t| !t.1),
        "{tried:?}"
    );
    // Its run file says the same.
    let runs = run_files(&b.folder());
    let (_, run) = runs
        .iter()
        .find(|(n, _)| n.contains(&format!("_num_concurrency_{best}_")))
        .unwrap();
    assert_eq!(run["aggregated_metrics"]["goodput"]["meets_slo"], true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("is {best}")), "{stderr}");
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_run_holds_its_concurrency_from_the_first_request() {
    let _machine = crate::common::shared_machine().await;
    // Each request takes at least 400 ms at the server, so the first 64
    // must all have arrived before any one ends. Prompts come from the
    // built-in corpus, cold in this process: if they were made while the
    // clock ran, the first wave would go out at the sampler's pace.
    let sim = simulator::start(SimConfig {
        ttft_base_ms: 400.0,
        prefill_us_per_token: 0.0,
        itl: LatencyDist::Constant { ms: 1.0 },
        keep_ground_truth: true,
        seed: Some(9),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/environments/production/predict", sim.base_url());
    let b = Bench::new();
    let out = bench(
        &b,
        &url,
        &[
            "--traffic-scenario",
            "N(300,40)/(8,2)",
            "--num-concurrency",
            "64",
            "--max-requests-per-run",
            "128",
            "--max-time-per-run",
            "1",
        ],
    )
    .await;
    crate::common::assert_success(&out);
    let mut truth = sim.take_ground_truth();
    truth.sort_by_key(|g| g.arrival_unix_us);
    assert_eq!(truth.len(), 128);
    let first_end = truth
        .iter()
        .map(|g| g.arrival_unix_us + g.end_us.unwrap())
        .min()
        .unwrap();
    let late: Vec<u64> = truth[..64]
        .iter()
        .filter(|g| g.arrival_unix_us >= first_end)
        .map(|g| g.id)
        .collect();
    assert!(
        late.is_empty(),
        "requests {late:?} of the first wave arrived after one had ended"
    );
    // The workers never waited for a prompt long enough to matter, and
    // the run says so.
    let runs = run_files(&b.folder());
    let v = &runs[0].1["aggregated_metrics"]["validity"];
    let share = v["measures"]["prompt_wait_fraction"].as_f64().unwrap();
    assert!(share < 0.05, "{v}");
    let records = runs[0].1["individual_request_metrics"].as_array().unwrap();
    assert!(records.iter().all(|r| r["prompt_wait"].is_number()));
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_client_cannot_keep_up_with_is_invalid() {
    let _machine = crate::common::shared_machine().await;
    let (sim, url) = sim(LatencyDist::Constant { ms: 1.0 }, 0.0).await;
    let b = Bench::new();
    // Any send lag at all is too much: the run must be judged invalid.
    let out = bench(
        &b,
        &url,
        &[
            "--traffic-scenario",
            "D(16,4)",
            "--qps-level",
            "20",
            "--max-requests-per-run",
            "20",
            "--max-time-per-run",
            "1",
            "--validity-max-send-lag-ms",
            "0",
            "--num-concurrency",
            "2",
        ],
    )
    .await;
    crate::common::assert_success(&out);
    let runs = run_files(&b.folder());
    assert_eq!(runs.len(), 2);
    let (_, open) = runs.iter().find(|(n, _)| n.contains("_qps_20_")).unwrap();
    let v = &open["aggregated_metrics"]["validity"];
    assert_eq!(v["valid"], false);
    let reasons = v["reasons"].to_string();
    assert!(reasons.contains("--validity-max-send-lag-ms"), "{reasons}");
    // The closed-loop run gets a verdict too.
    let (_, closed) = runs
        .iter()
        .find(|(n, _)| n.contains("_num_concurrency_2_"))
        .unwrap();
    assert!(closed["aggregated_metrics"]["validity"]["valid"].is_boolean());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("validity: INVALID"), "{stderr}");
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_merge_into_one_run_with_exact_percentiles() {
    let _machine = crate::common::shared_machine().await;
    let (sim, url) = sim(LatencyDist::Normal { mean: 3.0, sd: 1.0 }, 0.0).await;
    let mut children = Vec::new();
    for i in 0..3 {
        let b = Bench::new();
        let mut cmd = b.command_url(
            &url,
            &[
                "--traffic-scenario",
                "D(16,10)",
                "--num-concurrency",
                "7",
                "--qps-level",
                "30",
                "--max-requests-per-run",
                "61",
                "--max-time-per-run",
                "0.1",
                "--shard-count",
                "3",
            ],
        );
        // Shard 1 learns its index as a Kubernetes Indexed Job would tell it,
        // and writes milliseconds.
        if i == 1 {
            cmd.env("JOB_COMPLETION_INDEX", "1")
                .args(["--metrics-time-unit", "ms"]);
        } else {
            cmd.args(["--shard-index", &i.to_string()]);
        }
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        children.push((b, Some(cmd.spawn().unwrap())));
    }
    for (_, c) in &mut children {
        let c = c.take().unwrap();
        let out = tokio::task::block_in_place(|| c.wait_with_output().unwrap());
        crate::common::assert_success(&out);
    }
    let shard_dirs: Vec<PathBuf> = children.iter().map(|(b, _)| b.folder()).collect();
    let out_dir = tempfile::tempdir().unwrap();
    let merged = out_dir.path().join("merged");
    let out = {
        let mut cmd = crate::common::genai_bench();
        cmd.arg("merge")
            .arg("--output")
            .arg(&merged)
            .args(&shard_dirs);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    };
    crate::common::assert_success(&out);
    let shards: Vec<Vec<(String, Value)>> = shard_dirs.iter().map(|d| run_files(d)).collect();
    for s in &shards {
        assert_eq!(s.len(), 2);
    }
    let runs = run_files(&merged);
    assert_eq!(runs.len(), 2);
    for (name, run) in &runs {
        let key = &name[..name.rfind("_time_").unwrap()];
        let a = &run["aggregated_metrics"];
        // Every request of every shard, once: 61 = 21 + 20 + 20.
        let mut union = Vec::new();
        let mut itl = None::<hdrhistogram::Histogram<u64>>;
        let mut ids = 0;
        for s in &shards {
            let (_, r) = s.iter().find(|(n, _)| n.starts_with(key)).unwrap();
            let f = if r["_time_unit"] == "ms" { 1e-3 } else { 1.0 };
            for rec in r["individual_request_metrics"].as_array().unwrap() {
                ids += 1;
                if rec["error_kind"].is_null() {
                    union.push(rec["ttft"].as_f64().unwrap() * f);
                }
            }
            let h = genai_bench::results::decode_histogram(
                r["histograms"]["inter_chunk_latency"].as_str().unwrap(),
            )
            .unwrap();
            itl.get_or_insert_with(|| genai_bench::metrics::hdr_of(&[]))
                .add(&h)
                .unwrap();
        }
        assert_eq!(ids, 61, "{name}");
        assert_eq!(a["num_requests"], 61, "{name}");
        assert_eq!(
            run["individual_request_metrics"].as_array().unwrap().len(),
            61
        );
        assert_eq!(
            a["num_completed_requests"].as_u64().unwrap() as usize,
            union.len()
        );
        for (p, field) in [(0.25, "p25"), (0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
            let want = percentile(union.clone(), p);
            let got = a["stats"]["ttft"][field].as_f64().unwrap();
            assert!(
                close(got, want),
                "{name} ttft {field}: merged {got}, union {want}"
            );
        }
        // The merged histograms are the sum of the shards'.
        let itl = itl.unwrap();
        let merged_itl = genai_bench::results::decode_histogram(
            run["histograms"]["inter_chunk_latency"].as_str().unwrap(),
        )
        .unwrap();
        let buckets = |h: &hdrhistogram::Histogram<u64>| -> Vec<(u64, u64)> {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        assert_eq!(merged_itl.len(), itl.len());
        assert_eq!(buckets(&merged_itl), buckets(&itl));
        let s = &a["stats"]["inter_chunk_latency"];
        let p99 = (itl.value_at_quantile(0.99) as f64 / 1e9)
            .clamp(s["min"].as_f64().unwrap(), s["max"].as_f64().unwrap());
        assert!(close(s["p99"].as_f64().unwrap(), p99), "{name}: {s}");
        let ttft_h =
            genai_bench::results::decode_histogram(run["histograms"]["ttft"].as_str().unwrap())
                .unwrap();
        assert_eq!(ttft_h.len() as usize, union.len());
        if key.contains("_qps_30") {
            assert!(close(a["requested_qps"].as_f64().unwrap(), 30.0));
        } else {
            assert_eq!(a["num_concurrency"], 7.0);
        }
    }
    let meta = read_json(&merged.join("experiment_metadata.json"));
    assert_eq!(meta["merged_from"].as_array().unwrap().len(), 3);
    // The same shard twice is refused.
    let mut cmd = crate::common::genai_bench();
    cmd.arg("merge")
        .arg("--output")
        .arg(out_dir.path().join("twice"))
        .arg(&shard_dirs[0])
        .arg(&shard_dirs[0]);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("both shard 0"));
    drop(children);
    sim.shutdown().await.unwrap();
}

#[test]
fn calibrate_reports_a_table_and_the_bottleneck() {
    let _machine = crate::common::shared_machine_blocking();
    let dir = tempfile::tempdir().unwrap();
    // A zero tolerance: the very first level counts as client-bound.
    let out = crate::common::genai_bench()
        .args([
            "calibrate",
            "--seconds-per-level",
            "1",
            "--num-concurrency",
            "1",
        ])
        .args([
            "--num-concurrency",
            "4",
            "--max-ttft-error-ms",
            "0",
            "--experiment-base-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("TTFT client/truth (ms)"), "{stdout}");
    assert!(stdout.contains("CLIENT-BOUND: TTFT error"), "{stdout}");
    assert!(
        stdout.contains("becomes the bottleneck at concurrency 1"),
        "{stdout}"
    );
    // It stopped there: no row for concurrency 4.
    assert!(
        !stdout.lines().any(|l| l.trim_start().starts_with("4 ")),
        "{stdout}"
    );
    // With a normal tolerance the measured error is small at low load.
    let out = crate::common::genai_bench()
        .args([
            "calibrate",
            "--seconds-per-level",
            "1",
            "--num-concurrency",
            "2",
            "--experiment-base-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("2 "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let nums: Vec<f64> = row
        .split(|c: char| c.is_whitespace() || c == '/')
        .filter_map(|t| t.parse().ok())
        .collect();
    // concurrency, req/s, ttft client, ttft truth, tpot client, tpot truth, ...
    assert!((nums[2] - nums[3]).abs() < 10.0, "{row}");
    assert!((nums[4] - nums[5]).abs() < 1.0, "{row}");
}
