//! `genai-bench benchmark`: flags, validation, and the run matrix
//! (model × traffic scenario × concurrency), writing an experiment folder.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Map, Value, json};

use crate::metrics::{RunInfo, aggregate};
use crate::plugin::swap::{PluginSlot, SwapCheck, WatchOptions, watch_plugin_file};
use crate::plugin::{BenchRequest, LoadedPlugin, PluginRuntime, RuntimeOptions, Task};
use crate::progress::{Progress, summary_table};
use crate::results::{ExperimentDir, FolderName, RunFile, TimeUnit, run_file_name};
use crate::sampling::{Dataset, Sampler};
use crate::scenarios::Scenario;
use crate::scheduler::{RunSpec, Stop, interrupt_channel, run_closed_loop, run_open_loop};
use crate::tokenizer::TokenCounter;
use crate::transport::{Secret, Target, Transport};

/// genai-bench's default concurrency levels.
const DEFAULT_CONCURRENCY: &[u32] = &[1, 2, 4, 8, 16, 32, 64, 128, 256];
/// genai-bench's default batch sizes (embeddings).
const DEFAULT_BATCH_SIZE: &[u32] = &[1, 2, 4, 8, 24, 48, 96];

/// Flags of `genai-bench benchmark`, compatible with genai-bench's.
#[derive(Debug, Clone, Args)]
pub struct BenchmarkArgs {
    /// API backend: a built-in plugin's name or one of the extra names it
    /// serves (`baseten`, `openai`, `vllm`, `sglang`; see `plugin list`).
    #[arg(
        help_heading = "API",
        long,
        default_value = "baseten",
        ignore_case = true
    )]
    pub api_backend: String,
    /// Load the backend from this WebAssembly component instead of a built-in one.
    #[arg(help_heading = "API", long, value_name = "PATH.wasm")]
    pub plugin: Option<PathBuf>,
    /// Endpoint base URL. Baseten uses it verbatim as the full URL.
    #[arg(help_heading = "API", long)]
    pub api_base: Option<String>,
    /// API key; else MODEL_API_KEY, else BASETEN_API_KEY (baseten) or
    /// OPENAI_API_KEY (openai, vllm, sglang).
    #[arg(
        help_heading = "API",
        long,
        env = "MODEL_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Model API key (genai-bench's name); takes precedence over --api-key.
    #[arg(help_heading = "API", long, hide_env_values = true)]
    pub model_api_key: Option<String>,
    /// Model name(s) sent in requests; repeat to benchmark several models.
    #[arg(help_heading = "API", long, required = true, num_args = 1)]
    pub api_model_name: Vec<String>,
    /// Tokenizer: a local tokenizer.json, a folder with one, or a Hugging Face model id.
    #[arg(help_heading = "Model", long)]
    pub model_tokenizer: Option<String>,
    /// Display name of the model in results (default: last part of --model-tokenizer).
    #[arg(help_heading = "Model", long)]
    pub model: Option<String>,
    /// Task to benchmark: text-to-text, image-text-to-text,
    /// text-to-embeddings (case-insensitive).
    #[arg(help_heading = "Model", long, default_value = "text-to-text", value_parser = parse_task)]
    pub task: Task,
    /// Most requests per run [default: 100].
    #[arg(help_heading = "Experiment", long, value_parser = clap::value_parser!(u64).range(1..), allow_negative_numbers = true)]
    pub max_requests_per_run: Option<u64>,
    /// Longest time per run, in minutes (as genai-bench) [default: 10]; a
    /// bound: requests still in flight then are cancelled and recorded.
    #[arg(help_heading = "Experiment", long, value_parser = parse_minutes, allow_hyphen_values = true)]
    pub max_time_per_run: Option<f64>,
    /// Concurrency levels (requests in flight); repeatable [default: 1 2 4 8
    /// 16 32 64 128 256].
    #[arg(help_heading = "Experiment", long, num_args = 1, value_parser = clap::value_parser!(u32).range(1..=100_000), allow_negative_numbers = true)]
    pub num_concurrency: Vec<u32>,
    /// Batch sizes for embeddings (documents per request); repeatable
    /// [default: 1 2 4 8 24 48 96].
    #[arg(help_heading = "Experiment", long, num_args = 1, value_parser = clap::value_parser!(u32).range(1..=100_000), allow_negative_numbers = true)]
    pub batch_size: Vec<u32>,
    /// Traffic scenarios, e.g. D(100,100), N(480,240)/(300,150); repeatable
    /// [default: the task's own set, as genai-bench's].
    #[arg(help_heading = "Traffic and sampling", long, num_args = 1, value_parser = parse_scenario)]
    pub traffic_scenario: Vec<Scenario>,
    /// Extra request parameters as a JSON object, e.g. '{"temperature": 0.7}'.
    #[arg(help_heading = "Traffic and sampling", long, default_value = "{}", value_parser = parse_params)]
    pub additional_request_params: Map<String, Value>,
    /// Ask for non-streaming responses (TTFT is then not measured).
    #[arg(help_heading = "Traffic and sampling", long)]
    pub disable_streaming: bool,
    /// Dataset: a .txt/.csv/.json/.jsonl file of prompts, or a folder/file of images.
    #[arg(help_heading = "Traffic and sampling", long)]
    pub dataset_path: Option<PathBuf>,
    /// Column of the prompt in a CSV/JSON/JSONL dataset.
    #[arg(help_heading = "Traffic and sampling", long)]
    pub dataset_prompt_column: Option<String>,
    /// Column of the image in a CSV/JSON/JSONL dataset (a path relative to
    /// the file, an http(s):// or data: URL, or a JSON list of those).
    #[arg(help_heading = "Traffic and sampling", long)]
    pub dataset_image_column: Option<String>,
    /// genai-bench's dataset configuration file (JSON: source, prompt_column,
    /// image_column); replaces --dataset-path and its column flags.
    #[arg(help_heading = "Traffic and sampling", long, value_name = "PATH",
          conflicts_with_all = ["dataset_path", "dataset_prompt_column", "dataset_image_column"])]
    pub dataset_config: Option<PathBuf>,
    /// Every prompt starts with the same prefix of this many tokens (for
    /// prefix-cache benchmarks); text-to-text, D/N/U scenarios, at most the
    /// scenario's smallest input (N: mean - 3 sd).
    #[arg(help_heading = "Traffic and sampling", long, conflicts_with = "prefix_ratio",
          value_parser = clap::value_parser!(u32), allow_negative_numbers = true)]
    pub prefix_len: Option<u32>,
    /// Every prompt starts with a shared prefix of this fraction of its
    /// input tokens, in [0, 1]; text-to-text, D scenarios only.
    #[arg(help_heading = "Traffic and sampling", long, value_parser = parse_unit_interval, allow_negative_numbers = true)]
    pub prefix_ratio: Option<f64>,
    /// What the runs iterate over. As in genai-bench the task decides:
    /// batch_size for text-to-embeddings, num_concurrency otherwise (another
    /// value is noted and overridden).
    #[arg(help_heading = "Experiment", long, value_enum, ignore_case = true)]
    pub iteration_type: Option<IterationType>,
    /// Folder of genai_bench.log, the run's full log (default: the
    /// experiment folder).
    #[arg(help_heading = "Experiment", long)]
    pub log_dir: Option<PathBuf>,
    /// Closed loop: clients started per second at the start of each run
    /// (default: all at once; genai-bench starts them over its first second).
    #[arg(help_heading = "Distributed (genai-bench's Locust options)", long,
          value_parser = parse_spawn_rate, allow_negative_numbers = true)]
    pub spawn_rate: Option<f64>,
    /// genai-bench's Locust worker processes. Not needed here: one process
    /// drives thousands of streams; for more than one machine use
    /// --shard-count/--shard-index and `merge`. Values above 0 are noted.
    #[arg(
        help_heading = "Distributed (genai-bench's Locust options)",
        long,
        default_value_t = 0
    )]
    pub num_workers: u32,
    /// genai-bench's Locust master port. No master/worker protocol runs
    /// here, so no port is opened; accepted for compatibility.
    #[arg(
        help_heading = "Distributed (genai-bench's Locust options)",
        long,
        default_value_t = 5557
    )]
    pub master_port: u16,
    /// Seconds between refreshes of the live progress line (default 0.5 on a
    /// terminal, 10 otherwise).
    #[arg(help_heading = "Experiment", long, value_parser = parse_positive_secs, allow_negative_numbers = true)]
    pub metrics_refresh_interval: Option<f64>,
    /// Fraction of each run's first requests left out of the stats, in [0, 1).
    #[arg(help_heading = "Experiment", long, default_value_t = 0.0, value_parser = parse_ratio, allow_negative_numbers = true)]
    pub warmup_ratio: f64,
    /// Fraction of each run's last requests left out of the stats, in [0, 1).
    #[arg(help_heading = "Experiment", long, default_value_t = 0.0, value_parser = parse_ratio, allow_negative_numbers = true)]
    pub cooldown_ratio: f64,
    /// Unit of latencies in result files.
    #[arg(help_heading = "Experiment", long, value_enum, default_value = "s")]
    pub metrics_time_unit: TimeUnit,
    /// Parent folder of the experiment folder (default: current directory).
    #[arg(help_heading = "Experiment", long)]
    pub experiment_base_dir: Option<PathBuf>,
    /// Experiment folder name (default: <backend>_<task>_<model>_<timestamp>).
    #[arg(help_heading = "Experiment", long)]
    pub experiment_folder_name: Option<String>,
    /// Serving engine, recorded in the metadata.
    #[arg(help_heading = "Server", long)]
    pub server_engine: Option<String>,
    /// Serving engine version, recorded in the metadata.
    #[arg(help_heading = "Server", long)]
    pub server_version: Option<String>,
    /// GPU type, recorded in the metadata.
    #[arg(help_heading = "Server", long)]
    pub server_gpu_type: Option<String>,
    /// GPU count, recorded in the metadata.
    #[arg(help_heading = "Server", long)]
    pub server_gpu_count: Option<String>,
    /// Whole-request timeout in seconds.
    #[arg(help_heading = "API", long, default_value_t = 600.0, value_parser = parse_positive_secs, allow_negative_numbers = true)]
    pub request_timeout: f64,
    /// Seed for prompt sampling (same seed, same prompts).
    #[arg(help_heading = "Traffic and sampling", long, default_value_t = 42)]
    pub seed: u64,
    /// Reload `--plugin PATH` when the file changes, while the benchmark runs
    /// (SIGHUP reloads it too, with or without this flag). A new version is
    /// compiled and checked first; requests in flight finish on the old one.
    #[arg(
        help_heading = "Plugin file",
        long,
        requires = "plugin",
        conflicts_with = "plugin_sha256"
    )]
    pub watch: bool,
    /// How often `--watch` looks at the plugin file, in seconds.
    #[arg(help_heading = "Plugin file", long, default_value_t = 0.5, value_parser = parse_positive_secs, value_name = "SECS", allow_negative_numbers = true)]
    pub watch_interval: f64,
    /// Refuse to run unless the plugin's SHA-256 (see `plugin inspect`) is this.
    #[arg(help_heading = "Plugin file", long, value_name = "HEX", value_parser = parse_sha256)]
    pub plugin_sha256: Option<String>,
    /// Limits every plugin instance runs under.
    #[command(flatten)]
    pub plugin_limits: crate::plugin::limits::LimitArgs,
    /// Open loop: requests per second, one run per level; repeatable. Without
    /// --num-concurrency only these runs are made.
    #[arg(help_heading = "Request rate, SLOs and sweeps", long, num_args = 1, value_parser = parse_qps, allow_negative_numbers = true)]
    pub qps_level: Vec<f64>,
    /// Open loop: inter-arrival distribution.
    #[arg(
        help_heading = "Request rate, SLOs and sweeps",
        long,
        value_enum,
        default_value = "poisson"
    )]
    pub distribution: crate::load::Distribution,
    /// Open loop, gamma: shape of the gaps (1 = Poisson, < 1 burstier, > 1 smoother).
    #[arg(help_heading = "Request rate, SLOs and sweeps", long, default_value_t = 1.0, value_parser = parse_burstiness)]
    pub burstiness: f64,
    /// Open loop: most requests in flight; a request due while all are busy
    /// waits (the wait counts in its send lag and corrected latency).
    #[arg(help_heading = "Request rate, SLOs and sweeps", long, value_parser = clap::value_parser!(u32).range(1..=100_000), allow_negative_numbers = true)]
    pub max_concurrency: Option<u32>,
    /// Service-level objective, METRIC=DURATION with METRIC ttft, tpot or e2e
    /// (e.g. ttft=500ms, tpot=50ms, e2e=10s); repeatable. Adds goodput.
    #[arg(help_heading = "Request rate, SLOs and sweeps", long, num_args = 1, value_parser = crate::load::parse_slo)]
    pub slo: Vec<crate::load::Slo>,
    /// Fraction of requests that must meet every --slo for a run to meet the SLOs.
    #[arg(help_heading = "Request rate, SLOs and sweeps", long, default_value_t = 0.9, value_parser = parse_fraction, allow_negative_numbers = true)]
    pub slo_attainment: f64,
    /// Find the highest concurrency (and the highest QPS) meeting the --slo:
    /// levels run in ascending order until one fails, then up to
    /// --sweep-bisect runs bisect between the last passing and the first failing level.
    #[arg(help_heading = "Request rate, SLOs and sweeps", long)]
    pub sweep: bool,
    /// Extra runs of the --sweep bisection.
    #[arg(
        help_heading = "Request rate, SLOs and sweeps",
        long,
        default_value_t = 3
    )]
    pub sweep_bisect: u32,
    /// This process's shard, from 0 (default: $JOB_COMPLETION_INDEX, else 0).
    #[arg(help_heading = "Several machines", long, env = "JOB_COMPLETION_INDEX")]
    pub shard_index: Option<u32>,
    /// Number of shards the load is split between (one process each).
    #[arg(help_heading = "Several machines", long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub shard_count: u32,
    /// Thresholds of the per-run validity verdict.
    #[command(flatten)]
    pub validity: crate::validity::ValidityArgs,
    /// Cloud model credentials (genai-bench's cloud backends).
    #[command(flatten)]
    pub cloud: crate::cloud::CloudAuthArgs,
    /// Result upload (genai-bench's storage options).
    #[command(flatten)]
    pub upload: crate::upload::UploadArgs,
    /// Exit with status 3 (after writing every result) when any run's error
    /// rate is above this fraction; 1 never fails on errors.
    #[arg(help_heading = "Experiment", long, default_value_t = DEFAULT_MAX_ERROR_RATE, value_parser = parse_fraction, allow_negative_numbers = true)]
    pub max_error_rate: f64,
    /// Skip the one request sent before the first run to check that the
    /// endpoint answers (URL, key, model name, format); it is not recorded.
    #[arg(help_heading = "API", long)]
    pub no_preflight: bool,
}

/// genai-bench's log file name.
pub const LOG_FILE_NAME: &str = "genai_bench.log";

/// Default `--max-error-rate`: more than one request in ten failing means
/// the latency figures describe the survivors, not the server.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.1;

/// Exit status of a benchmark whose runs had too many failed requests.
pub const EXIT_ERROR_RATE: u8 = 3;

fn parse_qps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 10_000.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a request rate in (0, 10000] requests per second"
        )),
    }
}

fn parse_burstiness(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1000.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a burstiness in (0, 1000] (1 = Poisson, below 1 burstier)"
        )),
    }
}

/// genai-bench's `--iteration-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IterationType {
    /// Runs iterate over --num-concurrency.
    #[value(name = "num_concurrency")]
    NumConcurrency,
    /// Runs iterate over --batch-size (embeddings, rerank).
    #[value(name = "batch_size")]
    BatchSize,
}

fn parse_unit_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a ratio in [0, 1], e.g. 0.5")),
    }
}

fn parse_spawn_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1_000_000.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a spawn rate: clients started per second, above 0 (e.g. 10)"
        )),
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("'{s}' is not a fraction in (0, 1], e.g. 0.9")),
    }
}

/// One level of the run matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Level {
    /// Closed loop with this many requests in flight.
    Concurrency(u32),
    /// Embeddings: documents per request, at concurrency 1.
    Batch(u32),
    /// Open loop at this many requests per second.
    Qps(f64),
}

impl Level {
    /// genai-bench's `iteration_type` (`qps` for open loop, as genai-bench's fork).
    pub fn iteration_type(&self) -> &'static str {
        match self {
            Level::Concurrency(_) => "num_concurrency",
            Level::Batch(_) => "batch_size",
            Level::Qps(_) => "qps",
        }
    }
    /// The level as a number.
    pub fn value(&self) -> f64 {
        match *self {
            Level::Concurrency(c) | Level::Batch(c) => f64::from(c),
            Level::Qps(q) => q,
        }
    }
    /// The level as written in file names.
    pub fn value_str(&self) -> String {
        match *self {
            Level::Concurrency(c) | Level::Batch(c) => c.to_string(),
            Level::Qps(q) => format!("{q}"),
        }
    }
    fn midpoint(lo: Level, hi: Level) -> Option<Level> {
        match (lo, hi) {
            (Level::Concurrency(a), Level::Concurrency(b)) if b > a + 1 => {
                Some(Level::Concurrency(a + (b - a) / 2))
            }
            // Rates: stop when the bracket is within 5%.
            (Level::Qps(a), Level::Qps(b)) if b > a * 1.05 => {
                Some(Level::Qps(((a + b) / 2.0 * 1000.0).round() / 1000.0))
            }
            _ => None,
        }
    }
}

fn parse_sha256(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s)
    } else {
        Err(format!(
            "'{s}' is not a SHA-256: 64 hex digits, as `genai-bench plugin inspect` prints"
        ))
    }
}

fn parse_task(s: &str) -> Result<Task, String> {
    // Case-insensitive, as genai-bench's click choice.
    s.to_ascii_lowercase().parse()
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    s.parse::<Scenario>().map_err(|e| e.to_string())
}

fn parse_minutes(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        // Up to a year: larger values would overflow deadline arithmetic.
        Ok(v) if v > 0.0 && v <= 525_600.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of minutes between 0 and 525600 (e.g. 10 or 0.5)"
        )),
    }
}

/// Stops the plugin watcher when the benchmark ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn parse_positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds between 0 and 86400"
        )),
    }
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a ratio in [0, 1), e.g. 0.1")),
    }
}

fn parse_params(s: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(format!(
            "expected a JSON object such as '{{\"temperature\": 0.7}}', got {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            }
        )),
        Err(e) => Err(format!(
            "not valid JSON ({e}); expected an object such as '{{\"temperature\": 0.7}}'"
        )),
    }
}

/// Everything `run` needs that a demo or test may preset instead of flags.
#[derive(Default)]
pub struct Overrides {
    /// Use this tokenizer instead of loading `--model-tokenizer`.
    pub tokenizer: Option<TokenCounter>,
    /// Use this plugin runtime's plugin instead of loading one.
    pub plugin: Option<(Arc<PluginRuntime>, Arc<LoadedPlugin>)>,
}

/// Entry point of `genai-bench benchmark`.
pub fn run(args: BenchmarkArgs) -> anyhow::Result<ExitCode> {
    let io = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("io")
        .build()?;
    io.block_on(run_async(args, Overrides::default()))
}

/// A benchmark's outcome.
pub struct BenchmarkOutcome {
    /// The experiment folder.
    pub folder: PathBuf,
    /// Whether the user interrupted it.
    pub interrupted: bool,
    /// Runs whose error rate was above `--max-error-rate`, one line each
    /// (label, rate, most common error).
    pub too_many_errors: Vec<String>,
}

/// Run the benchmark on the current (multi-thread) runtime.
pub async fn run_async(args: BenchmarkArgs, overrides: Overrides) -> anyhow::Result<ExitCode> {
    let max_error_rate = args.max_error_rate;
    let outcome = execute(args, overrides).await?;
    {
        use std::io::Write as _;
        // A closed stdout (a reader that went away) must not turn a finished
        // benchmark into a panic.
        let _ = writeln!(std::io::stdout(), "results: {}", outcome.folder.display());
    }
    if outcome.interrupted {
        return Ok(ExitCode::from(130));
    }
    if !outcome.too_many_errors.is_empty() {
        eprintln!(
            "error: {} run(s) had an error rate above --max-error-rate {max_error_rate}: {}",
            outcome.too_many_errors.len(),
            outcome.too_many_errors.join("; ")
        );
        return Ok(ExitCode::from(EXIT_ERROR_RATE));
    }
    Ok(ExitCode::SUCCESS)
}

/// Worker threads of the plugin executor: one per core, 1 to 4. (One per
/// two cores cut the client's CPU per token on 2 cores by 14% at 64 streams
/// and 6% at 256, fewer threads to wake per hand-over, but when the cores
/// are saturated, at 1024 streams, the one low-priority thread fell behind:
/// hand-over-to-parse delay p99 103 -> 296 ms.)
pub fn plugin_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
}

/// Validate, then run every run of the matrix and write the experiment folder.
pub async fn execute(
    args: BenchmarkArgs,
    overrides: Overrides,
) -> anyhow::Result<BenchmarkOutcome> {
    crate::logging::capture();
    if let Some(dir) = &args.log_dir {
        crate::logging::log_to_file(&dir.join(LOG_FILE_NAME))
            .context("--log-dir: genai_bench.log cannot be written there")?;
    }
    let mut plan = Plan::from_args(&args)?;
    for secret in args
        .cloud
        .secrets()
        .into_iter()
        .chain(args.upload.secrets())
    {
        crate::plugin::register_secret(secret);
    }
    let uploader = args.upload.plan()?;
    if args.num_workers > 0 {
        tracing::warn!(
            "--num-workers {}: no worker processes are started; this one process drives every \
             request (thousands of streams per core). To spread load over machines, run one \
             process per machine with --shard-count N --shard-index i and combine them with \
             `genai-bench merge`",
            args.num_workers
        );
    } else if args.master_port != 5557 {
        tracing::warn!(
            "--master-port {}: no master/worker protocol runs here, so no port is opened",
            args.master_port
        );
    }

    // Plugin calls get a runtime of their own, so no plugin work ever runs on
    // the threads that take timestamps, and at a lower CPU priority, so a
    // burst of parsing never keeps those threads waiting for a core.
    let plugin_rt = PluginExecutor(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(plugin_threads())
            .thread_name("plugin")
            .on_thread_start(crate::plugin::lower_thread_priority)
            .enable_time()
            .build()?,
    ));
    let max_conc = plan.max_in_flight(&args);
    let most = crate::plugin::MAX_INSTANCES - crate::plugin::SPARE_INSTANCES;
    if max_conc > most {
        bail!(
            "{max_conc} requests in flight is more than one client process holds ({most}: one \
             sandboxed plugin instance per request). Split the load between processes with \
             --shard-count N and --shard-index i (see `merge`), or lower --num-concurrency / \
             --max-concurrency"
        );
    }
    raise_open_files_limit(u64::from(max_conc))?;
    let (runtime, plugin) = match overrides.plugin {
        Some(p) => p,
        None => {
            let args2 = args.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let runtime = Arc::new(PluginRuntime::new(RuntimeOptions {
                    max_instances: max_conc.saturating_add(crate::plugin::SPARE_INSTANCES),
                    limits: args2.plugin_limits.to_limits(),
                    ..RuntimeOptions::default()
                })?);
                // A pinned plugin is checked before anything of it runs, on
                // the very bytes that are then compiled.
                let pin = args2.plugin_sha256.as_deref();
                let plugin = match &args2.plugin {
                    Some(path) => runtime.load_file_pinned(path, pin)?,
                    None => {
                        if let Some(b) = crate::plugin::builtin::find(&args2.api_backend) {
                            crate::plugin::check_pin(b.wasm, pin)?;
                        }
                        runtime.load_builtin(&args2.api_backend)?
                    }
                };
                Ok((runtime, plugin))
            })
            .await??
        }
    };
    let backend = selected_backend(&args, plugin.info());
    for w in args
        .cloud
        .unused_warnings(&args.api_backend.to_ascii_lowercase())
    {
        tracing::warn!("{w}");
    }
    tracing::info!("plugin limits: {}", plugin.limits().summary());
    tracing::info!(
        "plugin {} ({}), {}",
        plugin.label(),
        plugin.origin(),
        if plugin.from_cache() {
            "from the compiled-plugin cache"
        } else {
            "compiled"
        }
    );
    if !plugin.info().tasks.contains(&args.task) {
        bail!(
            "--task {} is not supported by plugin {}; it supports: {}",
            args.task,
            plugin.label(),
            plugin
                .info()
                .tasks
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let api_key = resolve_key(&args, &plugin)?;
    if let Some(k) = api_key.expose() {
        crate::plugin::register_secret(k);
    }
    // Cloud credentials of the plugin's scheme, before anything is sent.
    let credentials = crate::auth::Credentials::for_scheme(
        plugin.info().auth.as_ref(),
        api_key.clone(),
        &args.cloud,
    )?;
    // Vertex: the project of the service account unless one is given.
    if let Some(project) = credentials
        .gcp
        .as_ref()
        .and_then(|g| g.account().project_id.clone())
        && !plan
            .backend_options
            .iter()
            .any(|(k, _)| k == "gcp-project-id")
    {
        plan.backend_options
            .push(("gcp-project-id".to_string(), project));
    }

    // Ask the plugin whether the params make sense, before any run starts.
    {
        let p = plugin.clone();
        let params = Value::Object(args.additional_request_params.clone()).to_string();
        let verdict = plugin_rt
            .spawn(async move {
                let mut inst = p.instantiate(0).await?;
                inst.validate_params(&params).await
            })
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Err(msg) = verdict {
            bail!(
                "--additional-request-params refused by plugin {}: {msg}",
                plugin.label()
            );
        }
    }

    let tokenizer = match overrides.tokenizer {
        Some(t) => t,
        None => {
            let spec = args.model_tokenizer.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "--model-tokenizer is required: a local tokenizer.json, a folder with one, or a Hugging Face model id such as Qwen/Qwen3-30B-A3B-Instruct-2507"
                )
            })?;
            tokio::task::spawn_blocking(move || TokenCounter::load(&spec)).await??
        }
    };
    let dataset = match (&args.dataset_path, &args.dataset_config) {
        (Some(p), _) => Some(Arc::new(
            Dataset::load_with_images(
                p,
                args.dataset_prompt_column.as_deref(),
                args.dataset_image_column.as_deref(),
            )
            .with_context(|| format!("--dataset-path {}", p.display()))?,
        )),
        (None, Some(c)) => Some(Arc::new(
            crate::sampling::DatasetConfig::from_file(c)?.load(c)?,
        )),
        (None, None) => {
            if args.dataset_prompt_column.is_some() || args.dataset_image_column.is_some() {
                tracing::warn!(
                    "--dataset-prompt-column and --dataset-image-column apply to --dataset-path, \
                     which is not given; they are ignored"
                );
            }
            None
        }
    };

    // Requests take their plugin from the slot; with --watch (or on SIGHUP)
    // a checked new version of the file replaces it between requests.
    let plugins = PluginSlot::new(plugin.clone());
    let watcher = match &args.plugin {
        Some(path) => {
            let check = SwapCheck {
                task: args.task,
                model: plan.models.first().cloned().unwrap_or_default(),
                stream: plan.stream,
                params_json: Value::Object(args.additional_request_params.clone()).to_string(),
                backend: backend.clone(),
                backend_options: plan.backend_options.clone(),
            };
            let options = WatchOptions {
                poll: args
                    .watch
                    .then(|| Duration::from_secs_f64(args.watch_interval)),
                sighup: true,
                pin: args.plugin_sha256.clone(),
            };
            let task = watch_plugin_file(
                runtime.clone(),
                path.clone(),
                plugins.clone(),
                check,
                options,
                plugin_rt.handle().clone(),
            )?;
            if args.watch {
                tracing::info!(
                    "watching {} for new plugin versions (every {}s; SIGHUP reloads at once)",
                    path.display(),
                    args.watch_interval
                );
            }
            Some(AbortOnDrop(task))
        }
        None => None,
    };

    let base = url::Url::parse(plan.api_base.as_str())?;
    let mut target = Target::new(base, api_key.clone());
    target.credentials = Arc::new(credentials);
    target.timeout = Duration::from_secs_f64(args.request_timeout);
    let client = Transport::client_for(max_conc as usize)?;
    // A Google access token before the first request, renewed meanwhile.
    let _token_refresher = target.credentials.start(&client).await?.map(AbortOnDrop);
    let transport = Transport::new(client, target, plugin_rt.handle().clone());

    if !args.no_preflight {
        preflight(
            &args, &plan, &tokenizer, &dataset, &transport, &plugins, &backend,
        )
        .await?;
    }

    let base_dir = match &args.experiment_base_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let dir = match &args.experiment_folder_name {
        Some(name) => ExperimentDir::create(&base_dir, name, FolderName::Given)?,
        None => ExperimentDir::create(
            &base_dir,
            // Named after the backend asked for (`vllm_...`), as genai-bench.
            &plan.default_folder_name(&args, &backend),
            FolderName::Default,
        )?,
    };
    if args.log_dir.is_none() {
        // The log belongs with the results it explains.
        crate::logging::log_to_file(&dir.path.join(LOG_FILE_NAME))?;
    }
    let char_ratio = crate::sampling::character_token_ratio(&tokenizer);
    let mut metadata = plan.metadata(&args, &plugin, &dir, &api_key, char_ratio);
    dir.write_metadata(&metadata)?;

    let (_stop_tx, stop_rx) = interrupt_channel(Duration::from_secs(5));
    let progress = Arc::new(match args.metrics_refresh_interval {
        Some(secs) => Progress::new().with_period(Duration::from_secs_f64(secs)),
        None => Progress::new(),
    });
    let total_runs =
        plan.models.len() * plan.scenarios.len() * plan.groups.iter().map(Vec::len).sum::<usize>();
    let mut run_no = 0;
    let mut interrupted = false;
    let mut failure: Option<String> = None;
    let mut too_many_errors: Vec<String> = Vec::new();
    let count_tokens: Arc<dyn Fn(&str) -> u64 + Send + Sync> = {
        let t = tokenizer.clone();
        Arc::new(move |s: &str| t.count(s) as u64)
    };
    let env = RunEnv {
        args: &args,
        plan: &plan,
        tokenizer: &tokenizer,
        dataset: &dataset,
        transport: &transport,
        plugins: &plugins,
        backend: &backend,
        progress: &progress,
        stop_rx: &stop_rx,
        dir: &dir,
        count_tokens: &count_tokens,
        char_ratio,
        total_runs,
    };
    let mut sweeps = Vec::new();
    'runs: for model in &plan.models {
        for scenario in &plan.scenarios {
            for group in &plan.groups {
                // (level, meets the SLOs) of every run of this group; a run
                // the client could not keep up with (invalid) says nothing
                // about the server, so it does not count as meeting them.
                let mut tried: Vec<(Level, bool)> = Vec::new();
                let mut invalid: Vec<Level> = Vec::new();
                let mut queue: std::collections::VecDeque<Level> = group.iter().copied().collect();
                let mut bisections = 0;
                loop {
                    let level = match queue.pop_front() {
                        Some(l) => l,
                        None if plan.sweep && bisections < args.sweep_bisect => {
                            let (lo, hi) = sweep_bracket(&tried);
                            match lo.zip(hi).and_then(|(lo, hi)| Level::midpoint(lo, hi)) {
                                Some(mid) => {
                                    bisections += 1;
                                    mid
                                }
                                None => break,
                            }
                        }
                        None => break,
                    };
                    run_no += 1;
                    let r = run_one(&env, model, scenario, level, run_no).await?;
                    let meets = r.meets_slo && r.valid;
                    if !r.valid {
                        invalid.push(level);
                    }
                    tried.push((level, meets));
                    // Keep the bracket ordered for the bisection.
                    tried.sort_by(|a, b| a.0.value().total_cmp(&b.0.value()));
                    if r.error_rate > args.max_error_rate {
                        too_many_errors.push(format!(
                            "{} error rate {:.2}{}",
                            r.label,
                            r.error_rate,
                            r.top_error
                                .as_deref()
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        ));
                    }
                    if let Some(e) = r.source_error {
                        failure = Some(format!("run {} stopped early: {e}", r.label));
                        break 'runs;
                    }
                    if r.all_failed && !plan.sweep {
                        // Every request failed: the next levels would only
                        // repeat it (a bad key, a wrong URL, a server down).
                        failure = Some(format!(
                            "every request of {} failed{}; the remaining runs were not started",
                            r.label,
                            r.top_error
                                .as_deref()
                                .map(|e| format!(" (most common: {e})"))
                                .unwrap_or_default()
                        ));
                        break 'runs;
                    }
                    if r.interrupted || *stop_rx.borrow() != Stop::Run {
                        interrupted = true;
                        break 'runs;
                    }
                    if plan.sweep && !meets {
                        // Higher levels of a failing one are not run.
                        queue.clear();
                    }
                }
                if plan.sweep {
                    let best = sweep_bracket(&tried).0;
                    let kind = group.first().map(|l| l.iteration_type()).unwrap_or("");
                    let mut line = match best {
                        Some(b) => format!(
                            "sweep {model} {scenario}: highest {kind} meeting the SLOs ({}) is {}",
                            slo_text(&args),
                            b.value_str()
                        ),
                        None => format!(
                            "sweep {model} {scenario}: no {kind} level met the SLOs ({})",
                            slo_text(&args)
                        ),
                    };
                    if !invalid.is_empty() {
                        let levels: Vec<String> = invalid.iter().map(|l| l.value_str()).collect();
                        line.push_str(&format!(
                            "; {kind} {} could not be measured (the client did not keep up: see the \
                             run's validity), so the server may take more from a stronger client \
                             or several shards",
                            levels.join(", ")
                        ));
                    }
                    eprintln!("\n{line}");
                    sweeps.push(json!({
                        "model": model,
                        "scenario": scenario.to_string(),
                        "iteration_type": kind,
                        "slo": args.slo.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                        "slo_attainment": args.slo_attainment,
                        "best": best.map(|b| b.value()),
                        "levels": tried.iter().map(|(l, m)| json!({
                            "value": l.value(),
                            "meets_slo": m,
                            "valid": !invalid.contains(l),
                        })).collect::<Vec<_>>(),
                    }));
                }
            }
        }
    }
    if plan.sweep {
        metadata["sweep"] = json!(sweeps);
    }
    metadata["interrupted"] = json!(interrupted);
    metadata["runs_completed"] = json!(run_no);
    metadata["finished_at"] = json!(chrono_like_now());
    metadata["error"] = json!(failure);
    drop(watcher);
    // Which plugin versions served, in order (more than one after a hot swap).
    metadata["plugins_served"] = json!(plugins.history());
    dir.write_metadata(&metadata)?;
    // Workbook, plots and HTML report; a failure there only warns.
    crate::reports::write_all_after_benchmark(&dir.path);
    drop(transport);
    drop(plugin_rt);
    let mut upload_error = None;
    if let Some(up) = &uploader {
        if interrupted {
            tracing::warn!(
                "interrupted: results are not uploaded; they are in {}",
                dir.path.display()
            );
        } else {
            match up.upload_folder(&dir.path).await {
                Ok(r) => tracing::info!(
                    "uploaded {} files ({} bytes) to {}",
                    r.objects,
                    r.bytes,
                    r.location
                ),
                Err(e) => upload_error = Some(format!("{e:#}")),
            }
        }
    }
    if let Some(f) = failure {
        bail!("{f}; results so far are in {}", dir.path.display());
    }
    if let Some(e) = upload_error {
        bail!(
            "--upload-results: {e}; the results are in {}",
            dir.path.display()
        );
    }
    Ok(BenchmarkOutcome {
        folder: dir.path,
        interrupted,
        too_many_errors,
    })
}

/// `values` without repeats (first occurrence kept): a repeated level or
/// scenario would run twice and its second result file replace the first.
fn dedup_kept_order<T: Clone>(values: &[T], flag: &str, key: impl Fn(&T) -> String) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let k = key(v);
        if seen.insert(k.clone()) {
            out.push(v.clone());
        } else {
            tracing::warn!("{flag} {k} is given more than once; it runs once");
        }
    }
    out
}

/// One request before the matrix, not recorded: a bad key, a wrong URL or
/// model name, a server that is down or speaks another format stop the
/// benchmark here with the server's own words, rather than after a matrix
/// of runs that all failed. A busy answer (429, 503) is retried twice.
async fn preflight(
    args: &BenchmarkArgs,
    plan: &Plan,
    tokenizer: &TokenCounter,
    dataset: &Option<Arc<Dataset>>,
    transport: &Transport,
    plugins: &Arc<PluginSlot>,
    backend: &str,
) -> anyhow::Result<()> {
    let (Some(model), Some(scenario)) = (plan.models.first(), plan.scenarios.first()) else {
        return Ok(());
    };
    let mut sampler = Sampler::new(
        args.task,
        *scenario,
        tokenizer.clone(),
        dataset.clone(),
        // Not the runs' seed: the preflight prompt is not the first run's.
        args.seed ^ 0x5eed_f11e,
        args.additional_request_params.clone(),
    )
    .with_context(|| format!("preparing traffic scenario {scenario}"))?;
    let s = tokio::task::spawn_blocking(move || sampler.sample()).await??;
    let req = BenchRequest {
        task: args.task,
        model: model.clone(),
        prompt: s.prompt,
        messages: Vec::new(),
        image_urls: s.image_urls,
        documents: s.documents,
        query: s.query,
        image_output: s.image_output,
        // A short answer is enough to see the format; less cost on a paid
        // endpoint.
        max_tokens: s.max_tokens.map(|m| m.min(PREFLIGHT_MAX_TOKENS)),
        stream: plan.stream,
        params_json: Value::Object(s.params).to_string(),
        backend: backend.to_string(),
        backend_options: plan.backend_options.clone(),
    };
    let plugin = plugins.current();
    let url = plan.api_base.as_str();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        let ex = transport.execute(&plugin, req.clone(), 0).await;
        let Some(e) = ex.error else {
            tracing::info!(
                "preflight: {url} answered in {:.2} s (status {})",
                started.elapsed().as_secs_f64(),
                ex.status.map(|s| s.to_string()).unwrap_or_default()
            );
            return Ok(());
        };
        let busy = matches!(
            e.kind,
            crate::transport::ErrorKind::Http(429) | crate::transport::ErrorKind::Http(503)
        );
        if busy && attempt < 3 {
            tracing::warn!("preflight: {url} is busy ({}); retrying in 2 s", e.code);
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        bail!(
            "the endpoint cannot be used: the preflight request to {url} failed ({} {}): {}\n\
             nothing was run. Check --api-base, the API key (--api-key or MODEL_API_KEY), \
             --api-model-name and --api-backend; --no-preflight skips this check",
            e.kind.name(),
            e.code,
            crate::plugin::sandbox::display_safe(&e.message, 600)
        );
    }
}

/// Raise the soft limit of open files to what `in_flight` connections need
/// (one socket each, plus room for files), or refuse with what to do.
fn raise_open_files_limit(in_flight: u64) -> anyhow::Result<()> {
    let need = in_flight + 256;
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Ok(());
    }
    if rl.rlim_cur >= need as libc::rlim_t {
        return Ok(());
    }
    if rl.rlim_max < need as libc::rlim_t {
        bail!(
            "{in_flight} requests in flight need about {need} open files, but this process may \
             open at most {} (`ulimit -Hn`); raise the hard limit or split the load with --shard-count",
            rl.rlim_max
        );
    }
    rl.rlim_cur = need as libc::rlim_t;
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
        bail!(
            "could not raise the open-files limit to {need} for {in_flight} requests in flight: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// `max_tokens` of the preflight request.
const PREFLIGHT_MAX_TOKENS: u32 = 16;

/// Corpora larger than this are tokenized lazily rather than before the
/// first run (a dataset of hundreds of MB would take minutes).
const MAX_WARM_CORPUS_BYTES: usize = 64 << 20;

/// Where tokenized corpora are kept between processes.
fn corpus_cache_dir() -> Option<std::path::PathBuf> {
    crate::plugin::default_cache_root().map(|d| d.join("corpus"))
}

/// What every run of a benchmark shares.
struct RunEnv<'a> {
    args: &'a BenchmarkArgs,
    plan: &'a Plan,
    tokenizer: &'a TokenCounter,
    dataset: &'a Option<Arc<Dataset>>,
    transport: &'a Transport,
    plugins: &'a Arc<PluginSlot>,
    backend: &'a str,
    progress: &'a Arc<Progress>,
    stop_rx: &'a tokio::sync::watch::Receiver<Stop>,
    dir: &'a ExperimentDir,
    count_tokens: &'a Arc<dyn Fn(&str) -> u64 + Send + Sync>,
    char_ratio: f64,
    total_runs: usize,
}

/// What the run loop needs to know of a finished run.
struct RunResult {
    label: String,
    meets_slo: bool,
    /// The validity verdict: whether the client kept up.
    valid: bool,
    source_error: Option<String>,
    interrupted: bool,
    /// Failed over sent (cancelled requests not counted).
    error_rate: f64,
    /// Requests were sent and none succeeded.
    all_failed: bool,
    /// The most common failure, one line.
    top_error: Option<String>,
}

/// Of levels tried (ascending), the lowest that missed the SLOs and the
/// highest below it that met them: the bracket a sweep bisects, and its
/// answer (a pass above a failure is not trusted).
fn sweep_bracket(tried: &[(Level, bool)]) -> (Option<Level>, Option<Level>) {
    let hi = tried.iter().find(|t| !t.1).map(|t| t.0);
    let lo = tried
        .iter()
        .filter(|t| t.1 && hi.is_none_or(|h| t.0.value() < h.value()))
        .map(|t| t.0)
        .next_back();
    (lo, hi)
}

fn slo_text(args: &BenchmarkArgs) -> String {
    args.slo
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run one level of the matrix, write its file and print its summary.
async fn run_one(
    env: &RunEnv<'_>,
    model: &str,
    scenario: &Scenario,
    level: Level,
    run_no: usize,
) -> anyhow::Result<RunResult> {
    let (args, plan) = (env.args, env.plan);
    let shard = plan.shard;
    let (concurrency, batch_size) = match level {
        Level::Batch(b) => (1, b),
        Level::Concurrency(c) => (shard.share(u64::from(c)) as u32, 1),
        Level::Qps(_) => (0, 1),
    };
    let label = format!(
        "[run {run_no}/{}] {model} {scenario} {}={}{}",
        env.total_runs,
        level.iteration_type(),
        level.value_str(),
        if shard.is_whole() {
            String::new()
        } else {
            format!(" (shard {}/{})", shard.index, shard.count)
        }
    );
    let max_requests = shard.share(plan.max_requests);
    if (matches!(level, Level::Concurrency(_)) && concurrency == 0) || max_requests == 0 {
        eprintln!("{label}: nothing for this shard to send (its share is 0); run skipped");
        return Ok(RunResult {
            label,
            meets_slo: true,
            valid: true,
            source_error: None,
            interrupted: false,
            error_rate: 0.0,
            all_failed: false,
            top_error: None,
        });
    }
    // Shards draw different prompts and arrivals.
    let seed = args
        .seed
        .wrapping_add(u64::from(shard.index).wrapping_mul(1_000_003));
    let mut sampler = Sampler::new(
        args.task,
        *scenario,
        env.tokenizer.clone(),
        env.dataset.clone(),
        seed.wrapping_add(run_no as u64),
        args.additional_request_params.clone(),
    )
    .with_context(|| format!("preparing traffic scenario {scenario}"))?;
    if let Some(prefix) = shared_prefix(args) {
        let tokens = prefix
            .tokens_for(scenario)
            .map_err(|e| anyhow::anyhow!(e))?;
        sampler.set_shared_prefix(tokens)?;
    }
    sampler.batch_size = batch_size as usize;
    // Tokenize the prompt corpus before the clock starts: a chunk first
    // touched mid-run costs milliseconds, enough to starve the workers of
    // prompts at high load (read from disk after the first time).
    let mut sampler = tokio::task::spawn_blocking(move || -> anyhow::Result<Sampler> {
        let big = sampler
            .text_corpus()
            .is_some_and(|c| c.len_bytes() > MAX_WARM_CORPUS_BYTES);
        if big {
            tracing::info!(
                "the prompt corpus is over {} MB: it is tokenized as prompts need it",
                MAX_WARM_CORPUS_BYTES >> 20
            );
        } else if let Some(w) = sampler.warm_up(corpus_cache_dir().as_deref())?
            && w.secs > 0.0
        {
            let how = if w.from_cache {
                "read from the cache"
            } else {
                "tokenized (once per tokenizer; cached)"
            };
            tracing::info!(
                "prompt corpus for {}: {how} in {:.2} s",
                sampler.tokenizer().name(),
                w.secs
            );
        }
        Ok(sampler)
    })
    .await??;
    let model_name = model.to_string();
    let backend = env.backend.to_string();
    let task = args.task;
    let stream = plan.stream;
    let backend_options = plan.backend_options.clone();
    let source = move || -> anyhow::Result<(BenchRequest, Option<u64>)> {
        let s = sampler.sample()?;
        Ok((
            BenchRequest {
                task,
                model: model_name.clone(),
                prompt: s.prompt,
                messages: Vec::new(),
                image_urls: s.image_urls,
                documents: s.documents,
                query: s.query,
                image_output: s.image_output,
                max_tokens: s.max_tokens,
                stream,
                params_json: Value::Object(s.params).to_string(),
                backend: backend.clone(),
                backend_options: backend_options.clone(),
            },
            s.num_input_tokens,
        ))
    };
    let open_loop = match level {
        Level::Qps(q) => Some(crate::metrics::OpenLoop {
            requested_qps: shard.share_rate(q),
            distribution: args.distribution,
            burstiness: args.burstiness,
            max_concurrency: args
                .max_concurrency
                .map(|c| (shard.share(u64::from(c)) as u32).max(1)),
            seed,
        }),
        _ => None,
    };
    let arrivals = open_loop.as_ref().map(|o| {
        Arc::new(crate::load::schedule(
            o.requested_qps,
            o.distribution,
            o.burstiness,
            seed,
            max_requests,
            plan.max_time.as_secs_f64(),
        ))
    });
    let expected = arrivals
        .as_ref()
        .map(|a| a.len() as u64)
        .unwrap_or(max_requests);
    env.progress.begin_run(label.clone(), expected);
    let spec = RunSpec {
        concurrency,
        max_requests,
        max_time: plan.max_time,
        task: args.task,
        stream: plan.stream,
        arrivals,
        max_concurrency: open_loop.as_ref().and_then(|o| o.max_concurrency),
        spawn_rate: args.spawn_rate,
    };
    let outcome = {
        let transport = env.transport;
        let plugin = env.plugins.clone();
        let count = env.count_tokens.clone();
        let stop = env.stop_rx.clone();
        let progress = env.progress.clone();
        let open = spec.arrivals.is_some();
        let run = async move {
            if open {
                run_open_loop(
                    transport,
                    plugin,
                    Box::new(source),
                    spec,
                    count,
                    stop,
                    progress,
                )
                .await
            } else {
                run_closed_loop(
                    transport,
                    plugin,
                    Box::new(source),
                    spec,
                    count,
                    stop,
                    progress,
                )
                .await
            }
        };
        tokio::pin!(run);
        let mut result = None;
        let render = env.progress.render_until(async {
            result = Some((&mut run).await);
        });
        render.await;
        result.expect("run completed")
    };
    let mut records = outcome.records;
    let info = RunInfo {
        scenario: scenario.to_string(),
        num_concurrency: match level {
            Level::Qps(_) => open_loop.as_ref().map(|o| o.requested_qps).unwrap_or(0.0),
            _ => f64::from(concurrency),
        },
        batch_size,
        iteration_type: level.iteration_type().to_string(),
        warmup_ratio: args.warmup_ratio,
        cooldown_ratio: args.cooldown_ratio,
        stream: plan.stream && args.task.generates_text(),
        wall_duration: outcome.wall.as_secs_f64(),
        interrupted: outcome.interrupted,
        character_token_ratio: env.char_ratio,
        open_loop,
        slos: args.slo.clone(),
        slo_attainment: args.slo_attainment,
        thresholds: args.validity.thresholds(),
        client_cpu_cores: outcome.client_cpu_cores,
        machine_cpu_cores: outcome.machine_cpu_cores,
        run_start_unix_s: outcome.run_start_unix_s,
        run_start_monotonic_s: outcome.run_start_monotonic_s,
        shard: (!shard.is_whole()).then_some(shard),
    };
    let agg = aggregate(&mut records, &info);
    if !records.is_empty() {
        let secs = outcome.wall.as_secs_f64().round() as u64;
        let file = run_file_name(
            &scenario.to_string(),
            args.task.as_str(),
            &plan.display_model(args, model),
            level.iteration_type(),
            level.value_str(),
            secs,
        );
        let run = RunFile::new(&agg, &records, args.metrics_time_unit)?;
        let path = env.dir.write_run(&file, &run)?;
        tracing::debug!("wrote {}", path.display());
    }
    let table = summary_table(&label, &agg);
    eprintln!("{table}");
    crate::logging::file_only(&table);
    Ok(RunResult {
        label,
        meets_slo: agg.goodput.as_ref().is_some_and(|g| g.meets_slo),
        valid: agg.validity.valid,
        source_error: outcome.source_error,
        interrupted: outcome.interrupted,
        error_rate: agg.error_rate,
        all_failed: agg.num_requests > 0 && agg.num_completed_requests == 0,
        top_error: agg
            .top_errors
            .first()
            .map(|e| crate::plugin::sandbox::display_safe(&e.summary(), 300)),
    })
}

/// The plugin executor runtime; shut down without blocking, so it can be
/// dropped on any path out of the async benchmark (errors included).
struct PluginExecutor(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for PluginExecutor {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("runtime present until drop")
    }
}

impl Drop for PluginExecutor {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The `--api-backend` name the plugin is told about (`request.backend`):
/// the user's choice when the plugin serves it, else the plugin's own name
/// (a `--plugin` file with the default `--api-backend`).
pub(crate) fn selected_backend(args: &BenchmarkArgs, info: &crate::plugin::PluginInfo) -> String {
    let chosen = args.api_backend.to_ascii_lowercase();
    if info.serves(&chosen) {
        chosen
    } else {
        tracing::debug!(
            "plugin {} does not serve --api-backend {chosen}; telling it '{}'",
            info.name,
            info.name
        );
        info.name.clone()
    }
}

/// `--prefix-len` or `--prefix-ratio`, if given.
fn shared_prefix(args: &BenchmarkArgs) -> Option<crate::scenarios::SharedPrefix> {
    use crate::scenarios::SharedPrefix;
    match (args.prefix_len, args.prefix_ratio) {
        (Some(n), _) => Some(SharedPrefix::Len(n)),
        (None, Some(r)) => Some(SharedPrefix::Ratio(r)),
        (None, None) => None,
    }
}

/// genai-bench's key rules: `--model-api-key`, else `--api-key`, else
/// `MODEL_API_KEY`, else the backend's own variable (`BASETEN_API_KEY`,
/// `OPENAI_API_KEY`).
fn resolve_key(args: &BenchmarkArgs, plugin: &LoadedPlugin) -> anyhow::Result<Secret> {
    let non_empty = |k: &Option<String>| k.clone().filter(|k| !k.trim().is_empty());
    let mut key = non_empty(&args.model_api_key).or_else(|| non_empty(&args.api_key));
    let env_fallback = match plugin.info().name.as_str() {
        "baseten" => Some("BASETEN_API_KEY"),
        "openai" => Some("OPENAI_API_KEY"),
        _ => None,
    };
    if key.is_none()
        && let Some(var) = env_fallback
    {
        key = non_empty(&std::env::var(var).ok());
    }
    if key.is_none()
        && let Some(crate::plugin::AuthScheme::Header(h)) = &plugin.info().auth
    {
        bail!(
            "no API key: pass --api-key (or --model-api-key) or set MODEL_API_KEY{} (plugin {} sends it as '{}: {}<key>')",
            match env_fallback {
                Some(var) => format!(" or {var}"),
                None => String::new(),
            },
            plugin.label(),
            h.name,
            h.prefix
        );
    }
    Ok(Secret::new(key))
}

/// The run matrix and limits after validation.
struct Plan {
    api_base: url::Url,
    models: Vec<String>,
    scenarios: Vec<Scenario>,
    iteration_type: &'static str,
    iteration_values: Vec<u32>,
    /// Levels run in turn; one group per kind (concurrency, then QPS), each
    /// ascending when sweeping.
    groups: Vec<Vec<Level>>,
    max_requests: u64,
    max_time: Duration,
    stream: bool,
    sweep: bool,
    shard: crate::load::Shard,
    /// Non-secret backend settings for plugins (Azure deployment, ...).
    backend_options: Vec<(String, String)>,
}

impl Plan {
    fn from_args(args: &BenchmarkArgs) -> anyhow::Result<Plan> {
        // genai-bench: --azure-endpoint (AZURE_OPENAI_ENDPOINT) is the base
        // of azure-openai requests, whatever --api-base says.
        let azure_endpoint = args
            .api_backend
            .eq_ignore_ascii_case("azure-openai")
            .then(|| {
                args.cloud
                    .azure_endpoint
                    .clone()
                    .or_else(|| crate::aws::env("AZURE_OPENAI_ENDPOINT"))
            })
            .flatten();
        // Bedrock's endpoint follows the region, as boto3's does.
        let bedrock_endpoint = (args.api_backend.eq_ignore_ascii_case("aws-bedrock")
            && args.api_base.is_none())
        .then(|| {
            let region = args
                .cloud
                .aws_region
                .clone()
                .or_else(|| crate::aws::env("AWS_REGION"))
                .or_else(|| crate::aws::env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into());
            format!("https://bedrock-runtime.{region}.amazonaws.com")
        });
        // Vertex's endpoint follows the location.
        let vertex_endpoint = (args.api_backend.eq_ignore_ascii_case("gcp-vertex")
            && args.api_base.is_none())
        .then(|| {
            let location = args
                .cloud
                .gcp_location
                .clone()
                .or_else(|| crate::aws::env("GCP_LOCATION"))
                .unwrap_or_else(|| "us-central1".into());
            format!("https://{location}-aiplatform.googleapis.com")
        });
        // OCI Generative AI's endpoint follows the region (--region, else
        // the OCI config profile's).
        let is_oci = args.api_backend.to_ascii_lowercase().starts_with("oci-");
        let oci_endpoint = (is_oci && args.api_base.is_none())
            .then(|| {
                crate::oci::region(&args.cloud)
                    .map(|r| crate::oci::default_api_base(&args.api_backend, &r))
            })
            .flatten();
        if is_oci && args.api_base.is_none() && oci_endpoint.is_none() {
            bail!(
                "--api-base is required for {}, or a region to derive it from: --region \
                 (e.g. us-chicago-1) or `region` in the OCI config profile",
                args.api_backend
            );
        }
        let api_base = azure_endpoint
            .as_deref()
            .or(args.api_base.as_deref())
            .or(bedrock_endpoint.as_deref())
            .or(vertex_endpoint.as_deref())
            .or(oci_endpoint.as_deref())
            .ok_or_else(|| {
            anyhow::anyhow!("--api-base is required: the endpoint URL, e.g. https://model-xxxx.api.baseten.co/environments/production/predict")
        })?;
        let api_base = url::Url::parse(api_base).map_err(|e| {
            anyhow::anyhow!("--api-base '{api_base}' is not a valid URL ({e}); expected e.g. https://model-xxxx.api.baseten.co/environments/production/predict")
        })?;
        if !matches!(api_base.scheme(), "http" | "https") {
            bail!("--api-base '{api_base}' must be an http:// or https:// URL");
        }
        if args.warmup_ratio + args.cooldown_ratio >= 1.0 {
            bail!(
                "--warmup-ratio {} plus --cooldown-ratio {} must be below 1.0, or no request is left to measure",
                args.warmup_ratio,
                args.cooldown_ratio
            );
        }
        let has_dataset = args.dataset_path.is_some() || args.dataset_config.is_some();
        if let Some(c) = &args.dataset_config {
            // Checked before anything is sent, like every other flag.
            crate::sampling::DatasetConfig::from_file(c)?;
        }
        let scenarios = if args.traffic_scenario.is_empty() {
            if has_dataset {
                vec![Scenario::Dataset]
            } else {
                Scenario::default_for(args.task)
            }
        } else {
            dedup_kept_order(&args.traffic_scenario, "--traffic-scenario", |s| {
                s.to_string()
            })
        };
        for s in &scenarios {
            s.validate_for(args.task)
                .map_err(|e| anyhow::anyhow!("--traffic-scenario {s}: {e}"))?;
            if matches!(s, Scenario::Dataset) && !has_dataset {
                bail!("--traffic-scenario dataset needs --dataset-path or --dataset-config");
            }
        }
        if let Some(prefix) = shared_prefix(args) {
            if args.task != Task::TextToText {
                bail!(
                    "{} only applies to --task text-to-text, not {}",
                    prefix.flag(),
                    args.task
                );
            }
            for s in &scenarios {
                prefix
                    .tokens_for(s)
                    .map_err(|e| anyhow::anyhow!("--traffic-scenario {s}: {e}"))?;
            }
        }
        let forced = if args.task.iterates_batches() {
            IterationType::BatchSize
        } else {
            IterationType::NumConcurrency
        };
        if let Some(asked) = args.iteration_type
            && asked != forced
        {
            tracing::warn!(
                "--iteration-type {}: {} runs iterate over {} (as genai-bench)",
                match asked {
                    IterationType::BatchSize => "batch_size",
                    IterationType::NumConcurrency => "num_concurrency",
                },
                args.task,
                match forced {
                    IterationType::BatchSize => "--batch-size",
                    IterationType::NumConcurrency => "--num-concurrency",
                }
            );
        }
        let (iteration_type, values) = if forced == IterationType::BatchSize {
            if !args.num_concurrency.is_empty() {
                tracing::warn!(
                    "--num-concurrency is ignored for text-to-embeddings: runs iterate over --batch-size at concurrency 1 (as genai-bench)"
                );
            }
            let v = if args.batch_size.is_empty() {
                DEFAULT_BATCH_SIZE.to_vec()
            } else {
                dedup_kept_order(&args.batch_size, "--batch-size", |b| b.to_string())
            };
            ("batch_size", v)
        } else {
            let v = if args.num_concurrency.is_empty() {
                DEFAULT_CONCURRENCY.to_vec()
            } else {
                dedup_kept_order(&args.num_concurrency, "--num-concurrency", |c| {
                    c.to_string()
                })
            };
            ("num_concurrency", v)
        };
        let max_requests = args.max_requests_per_run.unwrap_or_else(|| {
            tracing::warn!("--max-requests-per-run not given: using 100 requests per run");
            100
        });
        let max_time_min = args.max_time_per_run.unwrap_or_else(|| {
            tracing::warn!("--max-time-per-run not given: using 10 minutes per run");
            10.0
        });
        let stream = !args.disable_streaming;
        let mut groups = Vec::new();
        if iteration_type == "batch_size" {
            groups.push(values.iter().map(|&b| Level::Batch(b)).collect::<Vec<_>>());
        } else if args.qps_level.is_empty() || !args.num_concurrency.is_empty() {
            groups.push(values.iter().map(|&c| Level::Concurrency(c)).collect());
        }
        if !args.qps_level.is_empty() {
            if iteration_type == "batch_size" {
                bail!(
                    "--qps-level is not supported with --task text-to-embeddings (runs iterate over --batch-size)"
                );
            }
            let qps = dedup_kept_order(&args.qps_level, "--qps-level", |q| q.to_string());
            groups.push(qps.iter().map(|&q| Level::Qps(q)).collect());
        } else if args.max_concurrency.is_some() {
            bail!(
                "--max-concurrency caps open-loop runs; give --qps-level too (closed-loop runs use --num-concurrency)"
            );
        }
        if !stream
            && args
                .slo
                .iter()
                .any(|s| s.metric != crate::load::SloMetric::E2e)
        {
            bail!(
                "--slo ttft/tpot cannot be judged with --disable-streaming (TTFT is not measured); use --slo e2e=..."
            );
        }
        let sweep = args.sweep;
        if sweep {
            if args.slo.is_empty() {
                bail!("--sweep needs at least one --slo, e.g. --slo ttft=500ms");
            }
            if args.shard_count > 1 {
                bail!(
                    "--sweep cannot run sharded (each shard would decide alone); run it on one machine, or shard fixed levels and merge"
                );
            }
            for g in &mut groups {
                g.sort_by(|a, b| a.value().total_cmp(&b.value()));
                g.dedup();
            }
        }
        let index = args.shard_index.unwrap_or(0);
        if index >= args.shard_count {
            bail!(
                "--shard-index {index} (or JOB_COMPLETION_INDEX) must be below --shard-count {}",
                args.shard_count
            );
        }
        Ok(Plan {
            api_base,
            models: dedup_kept_order(&args.api_model_name, "--api-model-name", |m| m.clone()),
            scenarios,
            iteration_type,
            iteration_values: values,
            groups,
            max_requests,
            max_time: Duration::from_secs_f64(max_time_min * 60.0),
            stream,
            sweep,
            shard: crate::load::Shard {
                index,
                count: args.shard_count,
            },
            backend_options: crate::auth::backend_options(&args.cloud, None),
        })
    }

    /// Most requests this process may have in flight (sizes the connection
    /// pool and the plugin instance pool).
    fn max_in_flight(&self, args: &BenchmarkArgs) -> u32 {
        let mut m = 1u32;
        for l in self.groups.iter().flatten() {
            m = m.max(match *l {
                Level::Concurrency(c) => c,
                Level::Batch(_) => 1,
                // Uncapped open loop: room for ~20 s of arrivals.
                Level::Qps(q) => args
                    .max_concurrency
                    .unwrap_or(((q * 20.0).ceil() as u32).clamp(256, 2048)),
            });
        }
        m
    }

    fn display_model(&self, args: &BenchmarkArgs, api_model: &str) -> String {
        if self.models.len() > 1 {
            return api_model.to_string();
        }
        args.model
            .clone()
            .or_else(|| {
                args.model_tokenizer.as_ref().map(|t| {
                    t.trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or(t)
                        .trim_end_matches(".json")
                        .to_string()
                })
            })
            .unwrap_or_else(|| api_model.to_string())
    }

    fn default_folder_name(&self, args: &BenchmarkArgs, backend: &str) -> String {
        let mut parts = vec![backend.to_string()];
        if let Some(e) = &args.server_engine {
            parts.push(e.clone());
        }
        if let Some(v) = &args.server_version {
            parts.push(v.clone());
        }
        parts.push(args.task.as_str().to_string());
        parts.push(crate::results::sanitize(
            &self.display_model(args, &self.models[0]),
        ));
        parts.push(timestamp_compact());
        parts.join("_")
    }

    fn metadata(
        &self,
        args: &BenchmarkArgs,
        plugin: &LoadedPlugin,
        dir: &ExperimentDir,
        key: &Secret,
        char_ratio: f64,
    ) -> Value {
        let (conc, batch): (Vec<u32>, Vec<u32>) = if self.iteration_type == "batch_size" {
            (vec![1], self.iteration_values.clone())
        } else {
            (self.iteration_values.clone(), vec![1])
        };
        let mut meta = json!({
            "cmd": redacted_command_line(key),
            "benchmark_version": env!("CARGO_PKG_VERSION"),
            "api_backend": selected_backend(args, plugin.info()),
            "auth_config": args.cloud.auth_config(),
            "api_model_name": self.models.join(","),
            "server_model_tokenizer": args.model_tokenizer,
            "model": self.display_model(args, &self.models[0]),
            "task": args.task.as_str(),
            "num_concurrency": conc,
            "batch_size": batch,
            "iteration_type": self.iteration_type,
            "traffic_scenario": self.scenarios.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "additional_request_params": args.additional_request_params,
            "server_engine": args.server_engine,
            "server_version": args.server_version,
            "server_gpu_type": args.server_gpu_type,
            "server_gpu_count": args.server_gpu_count,
            // An integer, as genai-bench's `ExperimentMetadata` wants; the
            // exact bound of a fractional --max-time-per-run is beside it.
            "max_time_per_run_s": self.max_time.as_secs_f64().round() as u64,
            "max_time_per_run_exact_s": self.max_time.as_secs_f64(),
            "max_requests_per_run": self.max_requests,
            "experiment_folder_name": dir.path.display().to_string(),
            "metrics_time_unit": args.metrics_time_unit.as_str(),
            "dataset_path": dataset_path_shown(args),
            "character_token_ratio": char_ratio,
            "api_base": key.redact(self.api_base.as_str()),
            "disable_streaming": args.disable_streaming,
            "warmup_ratio": args.warmup_ratio,
            "cooldown_ratio": args.cooldown_ratio,
            "request_timeout_s": args.request_timeout,
            "seed": args.seed,
            "plugin": {
                "name": plugin.info().name,
                "version": plugin.info().version,
                "sha256": plugin.sha256(),
                "origin": plugin.origin().to_string(),
                "world": plugin.contract().world(),
            },
            "started_at": chrono_like_now(),
            "interrupted": false,
        });
        // Open-loop, SLO, validity and shard settings.
        let extra = json!({
            "qps_level": args.qps_level,
            "distribution": args.distribution.as_str(),
            "burstiness": args.burstiness,
            "max_concurrency": args.max_concurrency,
            "slo": args.slo.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "slo_attainment": args.slo_attainment,
            "validity_thresholds": args.validity.thresholds(),
            "shard": {"index": self.shard.index, "count": self.shard.count},
            "prefix_len": args.prefix_len,
            "prefix_ratio": args.prefix_ratio,
            "dataset_config": args.dataset_config.as_ref().map(|p| p.display().to_string()),
            "spawn_rate": args.spawn_rate,
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut meta, extra) {
            m.extend(e);
        }
        meta
    }
}

/// `dataset_path` of the metadata: the file given directly or through
/// `--dataset-config`, else genai-bench's `"None"`.
fn dataset_path_shown(args: &BenchmarkArgs) -> String {
    if let Some(p) = &args.dataset_path {
        return p.display().to_string();
    }
    args.dataset_config
        .as_ref()
        .and_then(|c| {
            crate::sampling::DatasetConfig::from_file(c)
                .ok()
                .map(|d| d.dataset_path(c).display().to_string())
        })
        .unwrap_or_else(|| "None".into())
}

/// Flags whose value is a secret: never written to the metadata.
pub const SECRET_FLAGS: &[&str] = &[
    "--api-key",
    "--model-api-key",
    "--aws-secret-access-key",
    "--aws-session-token",
    "--azure-ad-token",
    "--security-token",
    "--storage-aws-secret-access-key",
    "--storage-aws-session-token",
    "--storage-azure-account-key",
    "--storage-azure-connection-string",
    "--storage-azure-sas-token",
    "--github-token",
];

/// The command line with the API key's value replaced.
fn redacted_command_line(key: &Secret) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for a in std::env::args() {
        if hide_next {
            out.push("[REDACTED]".to_string());
            hide_next = false;
            continue;
        }
        if SECRET_FLAGS.contains(&a.as_str()) {
            hide_next = true;
            out.push(a);
        } else if let Some((flag, _)) = a.split_once('=')
            && SECRET_FLAGS.contains(&flag)
        {
            out.push(format!("{flag}=[REDACTED]"));
        } else {
            out.push(key.redact(&a));
        }
    }
    out.join(" ")
}

/// `YYYYmmdd_HHMMSS` in UTC, as genai-bench's folder names.
pub fn timestamp_compact() -> String {
    let (y, mo, d, h, mi, s) = utc_now();
    format!("{y:04}{mo:02}{d:02}_{h:02}{mi:02}{s:02}")
}

fn chrono_like_now() -> String {
    let (y, mo, d, h, mi, s) = utc_now();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// UTC calendar time from the system clock (civil-from-days algorithm).
fn utc_now() -> (i64, u32, u32, u32, u32, u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_must_be_an_object() {
        assert!(parse_params("{\"temperature\": 0.7}").is_ok());
        assert!(parse_params("[1]").unwrap_err().contains("an array"));
        assert!(
            parse_params("{oops")
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn ratios_and_minutes_are_checked() {
        assert!(parse_ratio("0.1").is_ok());
        assert!(parse_ratio("1").is_err());
        assert!(parse_ratio("-0.1").is_err());
        assert!(parse_minutes("0.5").is_ok());
        assert!(parse_minutes("0").is_err());
        assert!(parse_minutes("ten").is_err());
    }

    #[test]
    fn sweep_brackets_below_the_first_failure() {
        use Level::Concurrency as C;
        assert_eq!(
            sweep_bracket(&[(C(1), true), (C(8), true), (C(64), false)]),
            (Some(C(8)), Some(C(64)))
        );
        assert_eq!(
            sweep_bracket(&[(C(1), true), (C(2), false), (C(17), true)]),
            (Some(C(1)), Some(C(2)))
        );
        assert_eq!(sweep_bracket(&[(C(1), false)]), (None, Some(C(1))));
        assert_eq!(Level::midpoint(C(8), C(64)), Some(C(36)));
        assert_eq!(Level::midpoint(C(8), C(9)), None);
        assert_eq!(Level::midpoint(Level::Qps(10.0), Level::Qps(10.4)), None);
    }

    #[test]
    fn utc_date_is_plausible() {
        let (y, m, d, h, mi, s) = utc_now();
        assert!(y >= 2024 && (1..=12).contains(&m) && (1..=31).contains(&d));
        assert!(h < 24 && mi < 60 && s < 60);
    }
}
