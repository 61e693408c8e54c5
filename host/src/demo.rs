//! `genai-bench demo`: the simulator in-process on a free loopback port and a
//! short benchmark through the Baseten plugin against it. No network, no
//! credentials; the README's first command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser};

use crate::benchmark::{BenchmarkArgs, Overrides};
use crate::simulator::{LatencyDist, SimConfig};

/// Flags of `genai-bench demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Seconds per run (2 scenarios × 3 concurrency levels).
    #[arg(long, default_value_t = 4.0, value_parser = parse_seconds)]
    pub seconds_per_run: f64,
    /// Parent folder of the experiment folder (default: current directory).
    #[arg(long)]
    pub experiment_base_dir: Option<PathBuf>,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds between 0 and 3600"
        )),
    }
}

/// Parses benchmark flags given as a list, as if typed after `benchmark`.
#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: BenchmarkArgs,
}

/// Run the demo.
pub fn run(demo: DemoArgs) -> anyhow::Result<ExitCode> {
    let io = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("io")
        .build()?;
    io.block_on(async move {
        let sim = crate::simulator::start(SimConfig {
            ttft_base_ms: 40.0,
            prefill_us_per_token: 50.0,
            itl: LatencyDist::Normal { mean: 4.0, sd: 0.5 },
            load_factor: 0.01,
            seed: Some(7),
            api_key: Some("demo-key".into()),
            ..SimConfig::default()
        })
        .await?;
        let base = format!("{}/environments/production/predict", sim.base_url());
        eprintln!(
            "demo: simulated Baseten endpoint at {base} (TTFT ~40 ms + prefill, ~4 ms per token)"
        );
        let cache = crate::plugin::default_cache_root().unwrap_or_else(std::env::temp_dir);
        let tokenizer =
            tokio::task::spawn_blocking(move || crate::tokenizer::builtin_demo_tokenizer(&cache))
                .await??;
        let minutes = format!("{}", demo.seconds_per_run / 60.0);
        let mut argv: Vec<String> = [
            "benchmark",
            "--api-backend",
            "baseten",
            "--api-base",
            &base,
            "--api-key",
            "demo-key",
            "--api-model-name",
            "demo-model",
            "--model",
            "demo-model",
            "--task",
            "text-to-text",
            "--traffic-scenario",
            "D(200,100)",
            "--traffic-scenario",
            "N(480,240)/(300,150)",
            "--num-concurrency",
            "1",
            "--num-concurrency",
            "4",
            "--num-concurrency",
            "16",
            "--max-requests-per-run",
            "400",
            "--max-time-per-run",
            &minutes,
            "--additional-request-params",
            r#"{"temperature": 0.7}"#,
            "--server-engine",
            "genai-bench-sim",
            "--experiment-folder-name",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.push(format!("demo_{}", crate::benchmark::timestamp_compact()));
        if let Some(d) = &demo.experiment_base_dir {
            argv.push("--experiment-base-dir".into());
            argv.push(d.display().to_string());
        }
        let args = Wrap::try_parse_from(argv)?.args;
        let outcome = crate::benchmark::run_async(
            args,
            Overrides {
                tokenizer: Some(tokenizer),
                ..Overrides::default()
            },
        )
        .await;
        sim.shutdown().await?;
        outcome
    })
}
