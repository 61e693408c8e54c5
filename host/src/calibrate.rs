//! `genai-bench calibrate`: how far this machine's client can be trusted.
//!
//! Starts the built-in simulator in-process with ground truth on, then runs
//! closed-loop benchmarks through the Baseten plugin at rising concurrency.
//! For each level it compares the client's median TTFT and TPOT with the
//! simulator's record of when each token left, and reads the run's
//! validity verdict. The first level where the error exceeds the tolerance
//! or the verdict is "invalid" is where the client becomes the bottleneck.
//!
//! The simulator shares the process (and the CPU) with the client, so the
//! CPU measure includes it and the load found is a conservative bound.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser};
use serde_json::Value;

use crate::benchmark::{BenchmarkArgs, Overrides};
use crate::simulator::{LatencyDist, SimConfig};

/// Flags of `genai-bench calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Concurrency levels to try, in order; repeatable.
    #[arg(long, num_args = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub num_concurrency: Vec<u32>,
    /// Seconds per level.
    #[arg(long, default_value_t = 3.0, value_parser = parse_seconds)]
    pub seconds_per_level: f64,
    /// Output tokens per request.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub output_tokens: u32,
    /// Simulated inter-token latency, ms.
    #[arg(long, default_value_t = 5.0)]
    pub itl_ms: f64,
    /// Largest tolerated |client - truth| median TTFT, ms.
    #[arg(long, default_value_t = 5.0)]
    pub max_ttft_error_ms: f64,
    /// Largest tolerated |client - truth| median TPOT, ms.
    #[arg(long, default_value_t = 0.5)]
    pub max_tpot_error_ms: f64,
    /// Keep going after the bottleneck is found.
    #[arg(long)]
    pub all_levels: bool,
    /// Where the runs' experiment folder goes (default: a temporary folder).
    #[arg(long)]
    pub experiment_base_dir: Option<PathBuf>,
    /// Thresholds of the validity verdict.
    #[command(flatten)]
    pub validity: crate::validity::ValidityArgs,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds between 0 and 3600"
        )),
    }
}

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: BenchmarkArgs,
}

/// One level's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LevelResult {
    /// Requests in flight.
    pub concurrency: u32,
    /// Completed requests per second.
    pub requests_per_second: f64,
    /// Client median TTFT, ms.
    pub client_ttft_ms: f64,
    /// Simulator median TTFT, ms.
    pub truth_ttft_ms: f64,
    /// Client median TPOT, ms.
    pub client_tpot_ms: f64,
    /// Simulator median TPOT, ms.
    pub truth_tpot_ms: f64,
    /// Process CPU use, cores.
    pub cpu_cores: Option<f64>,
    /// Validity verdict and reasons.
    pub valid: bool,
    /// Why the level counts as client-bound, if it does.
    pub bottleneck: Option<String>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Run the calibration.
pub fn run(args: CalibrateArgs) -> anyhow::Result<ExitCode> {
    let io = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("io")
        .build()?;
    io.block_on(calibrate(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn calibrate(args: CalibrateArgs) -> anyhow::Result<Vec<LevelResult>> {
    let levels = if args.num_concurrency.is_empty() {
        vec![1, 8, 32, 128]
    } else {
        args.num_concurrency.clone()
    };
    let sim = crate::simulator::start(SimConfig {
        ttft_base_ms: 50.0,
        prefill_us_per_token: 0.0,
        itl: LatencyDist::Constant { ms: args.itl_ms },
        seed: Some(3),
        keep_ground_truth: true,
        ..SimConfig::default()
    })
    .await?;
    let base = format!("{}/environments/production/predict", sim.base_url());
    let tmp = tempdir()?;
    let base_dir = args
        .experiment_base_dir
        .clone()
        .unwrap_or_else(|| tmp.clone());
    let cache = crate::plugin::default_cache_root().unwrap_or_else(std::env::temp_dir);
    let tokenizer =
        tokio::task::spawn_blocking(move || crate::tokenizer::builtin_demo_tokenizer(&cache))
            .await??;
    let folder = format!("calibrate_{}", crate::benchmark::timestamp_compact());
    eprintln!(
        "calibrate: simulator at {base} (TTFT 50 ms, {} ms per token, {} tokens), {} s per level",
        args.itl_ms, args.output_tokens, args.seconds_per_level
    );
    let mut results = Vec::new();
    let mut bottleneck = None;
    for &c in &levels {
        sim.take_ground_truth();
        let scenario = format!("D(32,{})", args.output_tokens);
        let minutes = format!("{}", args.seconds_per_level / 60.0);
        let v = &args.validity;
        let argv: Vec<String> = vec![
            "benchmark".into(),
            "--api-backend".into(),
            "baseten".into(),
            "--api-base".into(),
            base.clone(),
            "--api-key".into(),
            "calibrate".into(),
            "--api-model-name".into(),
            "calibrate".into(),
            "--model".into(),
            "calibrate".into(),
            "--traffic-scenario".into(),
            scenario,
            "--num-concurrency".into(),
            c.to_string(),
            "--max-requests-per-run".into(),
            "1000000".into(),
            "--max-time-per-run".into(),
            minutes,
            "--additional-request-params".into(),
            r#"{"ignore_eos": true}"#.into(),
            "--experiment-base-dir".into(),
            base_dir.join(&folder).display().to_string(),
            "--experiment-folder-name".into(),
            format!("c{c}"),
            // The simulator's ground truth must hold only the run's requests.
            "--no-preflight".into(),
            "--validity-max-pacing-error-ms".into(),
            v.validity_max_pacing_error_ms.to_string(),
            "--validity-max-send-lag-ms".into(),
            v.validity_max_send_lag_ms.to_string(),
            "--validity-max-parse-delay-ms".into(),
            v.validity_max_parse_delay_ms.to_string(),
            "--validity-max-client-cpu".into(),
            v.validity_max_client_cpu.to_string(),
        ];
        let bench = Wrap::try_parse_from(argv)?.args;
        let outcome = crate::benchmark::execute(
            bench,
            Overrides {
                tokenizer: Some(tokenizer.clone()),
                ..Overrides::default()
            },
        )
        .await?;
        let truth = sim.take_ground_truth();
        let file = std::fs::read_dir(&outcome.folder)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                // The run's JSON, not the metadata or the reports beside it.
                p.extension().is_some_and(|e| e == "json")
                    && p.file_name()
                        .is_some_and(|n| n != "experiment_metadata.json")
            })
            .ok_or_else(|| anyhow::anyhow!("level {c} wrote no run file"))?;
        let run: Value = serde_json::from_slice(&std::fs::read(file)?)?;
        let recs = run["individual_request_metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ok = |r: &&Value| r["error_kind"].is_null();
        let client_ttft = median(
            recs.iter()
                .filter(ok)
                .filter_map(|r| r["ttft"].as_f64())
                .map(|x| x * 1e3)
                .collect(),
        );
        let client_tpot = median(
            recs.iter()
                .filter(ok)
                .filter_map(|r| r["tpot"].as_f64())
                .map(|x| x * 1e3)
                .collect(),
        );
        let mut t_ttft = Vec::new();
        let mut t_tpot = Vec::new();
        for t in truth
            .iter()
            .filter(|t| t.outcome == crate::simulator::Outcome::Complete)
        {
            let tok: Vec<_> = t.chunks.iter().filter(|c| c.tokens > 0).collect();
            let (Some(f), Some(l)) = (tok.first(), tok.last()) else {
                continue;
            };
            let n: u64 = tok.iter().map(|c| u64::from(c.tokens)).sum();
            t_ttft.push(f.t_us as f64 / 1e3);
            if n > 1 {
                t_tpot.push((l.t_us - f.t_us) as f64 / 1e3 / (n - 1) as f64);
            }
        }
        let (truth_ttft, truth_tpot) = (median(t_ttft), median(t_tpot));
        let agg = &run["aggregated_metrics"];
        let valid = agg["validity"]["valid"].as_bool().unwrap_or(false);
        let mut why = Vec::new();
        if (client_ttft - truth_ttft).abs() > args.max_ttft_error_ms || client_ttft.is_nan() {
            why.push(format!("TTFT error {:+.2} ms", client_ttft - truth_ttft));
        }
        if (client_tpot - truth_tpot).abs() > args.max_tpot_error_ms || client_tpot.is_nan() {
            why.push(format!("TPOT error {:+.3} ms", client_tpot - truth_tpot));
        }
        if !valid {
            for r in agg["validity"]["reasons"].as_array().into_iter().flatten() {
                why.push(r.as_str().unwrap_or("").to_string());
            }
        }
        let res = LevelResult {
            concurrency: c,
            requests_per_second: agg["requests_per_second"].as_f64().unwrap_or(0.0),
            client_ttft_ms: client_ttft,
            truth_ttft_ms: truth_ttft,
            client_tpot_ms: client_tpot,
            truth_tpot_ms: truth_tpot,
            cpu_cores: agg["validity"]["measures"]["client_cpu_cores"].as_f64(),
            valid,
            bottleneck: (!why.is_empty()).then(|| why.join("; ")),
        };
        let stop = res.bottleneck.is_some() && !args.all_levels;
        if res.bottleneck.is_some() && bottleneck.is_none() {
            bottleneck = Some(c);
        }
        results.push(res);
        if stop {
            break;
        }
    }
    sim.shutdown().await?;
    println!("{}", table(&results));
    match bottleneck {
        Some(c) => println!(
            "the client becomes the bottleneck at concurrency {c} on this machine ({}); trust results below it",
            results
                .iter()
                .find(|r| r.concurrency == c)
                .and_then(|r| r.bottleneck.clone())
                .unwrap_or_default()
        ),
        None => println!(
            "the client kept up at every level tried (up to concurrency {}); try higher with --num-concurrency",
            levels.last().copied().unwrap_or(0)
        ),
    }
    if args.experiment_base_dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(results)
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("genai-bench-calibrate-{}", std::process::id()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}

/// The calibration table.
pub fn table(rows: &[LevelResult]) -> String {
    let mut s = String::from(
        "concurrency    req/s  TTFT client/truth (ms)  TPOT client/truth (ms)  CPU cores  verdict\n",
    );
    for r in rows {
        s.push_str(&format!(
            "{:>11} {:>8.1}  {:>9.2} / {:<9.2}   {:>8.3} / {:<8.3}    {:>8}  {}\n",
            r.concurrency,
            r.requests_per_second,
            r.client_ttft_ms,
            r.truth_ttft_ms,
            r.client_tpot_ms,
            r.truth_tpot_ms,
            r.cpu_cores
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "n/a".into()),
            match &r.bottleneck {
                None => "ok".to_string(),
                Some(w) => format!("CLIENT-BOUND: {w}"),
            }
        ));
    }
    s
}
