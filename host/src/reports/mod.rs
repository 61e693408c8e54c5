//! Reports from an experiment folder: genai-bench's Excel workbook
//! (`excel`), its plot grid (`plot`) and a self-contained HTML report
//! (`report`). This module loads a folder written by `benchmark` (or by the
//! Python genai-bench) into typed runs; the submodules render them.

pub mod commands;
pub mod excel;
pub mod html;
pub mod plot;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::Value;

/// Latency fields whose values are in the experiment's time unit (the
/// others, throughputs and token counts, are unit-free).
pub const TIME_FIELDS: &[&str] = &[
    "ttft",
    "tpot",
    "e2e_latency",
    "output_latency",
    "inter_chunk_latency",
];

/// The statistics of one metric, as in `aggregated_metrics.stats.<metric>`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Stat {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
    pub sum: Option<f64>,
    pub p25: Option<f64>,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// The statistic names genai-bench's `--metric-percentile` accepts.
pub const PERCENTILES: &[&str] = &["mean", "p25", "p50", "p75", "p90", "p95", "p99"];
/// Every statistic of a `Stat`, in file order.
pub const STAT_NAMES: &[&str] = &[
    "min", "max", "mean", "stddev", "sum", "p25", "p50", "p75", "p90", "p95", "p99",
];

impl Stat {
    /// One statistic by genai-bench's name (`mean`, `p90`, ...).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "min" => self.min,
            "max" => self.max,
            "mean" => self.mean,
            "stddev" => self.stddev,
            "sum" => self.sum,
            "p25" => self.p25,
            "p50" => self.p50,
            "p75" => self.p75,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            _ => None,
        }
    }
}

/// The fields of `aggregated_metrics` the reports use (genai-bench's names).
#[derive(Debug, Clone, Deserialize)]
pub struct Aggregated {
    pub scenario: String,
    #[serde(default)]
    pub num_concurrency: f64,
    #[serde(default)]
    pub batch_size: f64,
    #[serde(default = "default_iteration_type")]
    pub iteration_type: String,
    #[serde(default)]
    pub run_duration: f64,
    #[serde(default)]
    pub mean_output_throughput_tokens_per_s: f64,
    #[serde(default)]
    pub mean_input_throughput_tokens_per_s: f64,
    #[serde(default)]
    pub mean_total_tokens_throughput_tokens_per_s: f64,
    #[serde(default)]
    pub requests_per_second: f64,
    #[serde(default)]
    pub error_codes_frequency: BTreeMap<String, u64>,
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default)]
    pub num_error_requests: u64,
    #[serde(default)]
    pub num_completed_requests: u64,
    #[serde(default)]
    pub num_requests: u64,
    #[serde(default)]
    pub stats: BTreeMap<String, Stat>,
}

fn default_iteration_type() -> String {
    "num_concurrency".into()
}

/// One run file of the experiment.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run file's name.
    pub file_name: String,
    /// The model, from the file name (`<scenario>_<task>_<model>_...`),
    /// else the experiment's `model`.
    pub model: String,
    /// The task (from the experiment metadata).
    pub task: String,
    /// Typed view of `aggregated_metrics` (latencies in the source unit).
    pub agg: Aggregated,
    /// `aggregated_metrics` as written, for arbitrary field paths.
    pub raw: Value,
    /// The fields of `individual_request_metrics` the reports read.
    pub requests: Vec<RequestRow>,
    /// The run's `validity` verdict ({valid, reasons, measures}) if assessed.
    pub validity: Option<Value>,
}

/// genai-bench's `RequestLevelMetrics` fields, in its order: the Excel
/// sheet's per-request columns, and what a [`RequestRow`] keeps.
pub const REQUEST_FIELDS: &[&str] = &[
    "ttft",
    "tpot",
    "e2e_latency",
    "output_latency",
    "output_inference_speed",
    "num_input_tokens",
    "num_output_tokens",
    "num_reasoning_tokens",
    "total_tokens",
    "input_throughput",
    "output_throughput",
    "audio_throughput",
    "error_code",
    "error_message",
];

/// The fields of a request's record the reports read ([`REQUEST_FIELDS`],
/// and whether it was left out as warm-up or cool-down), as a compact row:
/// a run of 20,000 requests held as JSON trees took ~2.6 KB a request, every
/// key allocated again in each.
#[derive(Debug, Clone)]
pub struct RequestRow {
    values: Box<[Value]>,
    excluded: bool,
}

impl RequestRow {
    /// `field`'s value (`null` when the record had none); `None` for a field
    /// not in [`REQUEST_FIELDS`].
    pub fn get(&self, field: &str) -> Option<&Value> {
        REQUEST_FIELDS
            .iter()
            .position(|f| *f == field)
            .map(|i| &self.values[i])
    }

    /// Whether the request was warm-up or cool-down (not in the stats).
    pub fn excluded(&self) -> bool {
        self.excluded
    }
}

/// Reads the record's [`REQUEST_FIELDS`] and `excluded` straight from the
/// JSON, skipping the rest, so a run file's records are never built as
/// trees (a 20,000-request file as a tree was the peak of a run's memory).
impl<'de> serde::Deserialize<'de> for RequestRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RequestRow;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a request record (a JSON object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RequestRow, A::Error> {
                let mut values = vec![Value::Null; REQUEST_FIELDS.len()].into_boxed_slice();
                let mut excluded = false;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if let Some(i) = REQUEST_FIELDS.iter().position(|f| *f == key) {
                        values[i] = map.next_value()?;
                    } else if key == "excluded" {
                        excluded = !map.next_value::<Value>()?.is_null();
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(RequestRow { values, excluded })
            }
        }
        d.deserialize_map(V)
    }
}

/// What the reports read of a run file.
#[derive(serde::Deserialize)]
struct RunFileView {
    aggregated_metrics: Option<Value>,
    #[serde(default)]
    individual_request_metrics: Option<Vec<RequestRow>>,
    #[serde(default)]
    validity: Option<Value>,
}

impl Run {
    /// Concurrency (or batch size) of the run, per its iteration type.
    pub fn iteration_value(&self) -> f64 {
        if self.agg.iteration_type == "batch_size" {
            self.agg.batch_size
        } else {
            self.agg.num_concurrency
        }
    }

    /// A short name: `model · scenario · concurrency N`.
    pub fn label(&self) -> String {
        format!(
            "{} · {} · {} {}",
            self.model,
            self.agg.scenario,
            iteration_label(&self.agg.iteration_type).to_lowercase(),
            fmt_num(self.iteration_value())
        )
    }
}

/// "Concurrency" or "Batch Size", as genai-bench's sheets say; "QPS" for
/// open-loop runs (requests per second asked for).
pub fn iteration_label(iteration_type: &str) -> &'static str {
    match iteration_type {
        "batch_size" => "Batch Size",
        "qps" => "QPS",
        _ => "Concurrency",
    }
}

/// A number without a trailing `.0` when integral.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Time unit of latencies in files and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds.
    S,
    /// Milliseconds.
    Ms,
}

impl Unit {
    /// Parse `s` / `ms` (case-insensitive, as genai-bench).
    pub fn parse(s: &str) -> anyhow::Result<Unit> {
        match s.to_ascii_lowercase().as_str() {
            "s" => Ok(Unit::S),
            "ms" => Ok(Unit::Ms),
            other => bail!("unknown time unit {other:?}: use 's' or 'ms'"),
        }
    }
    /// `s` or `ms`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::S => "s",
            Unit::Ms => "ms",
        }
    }
    fn per_second(self) -> f64 {
        match self {
            Unit::S => 1.0,
            Unit::Ms => 1000.0,
        }
    }
}

/// A loaded experiment folder.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The folder.
    pub folder: PathBuf,
    /// `experiment_metadata.json` as written.
    pub metadata: Value,
    /// Unit of latencies in the run files.
    pub source_unit: Unit,
    /// Runs, ordered by model, scenario (metadata order) and iteration value.
    pub runs: Vec<Run>,
}

/// genai-bench's loader pattern for run files:
/// `^.+_.+_(?:concurrency|batch_size)_\d+_time_\d+s\.json$`.
pub fn is_run_file(name: &str) -> bool {
    parse_run_file_name(name).is_some()
}

/// Split a run file name into (prefix before the iteration type, value).
fn parse_run_file_name(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix("s.json")?;
    let (head, secs) = stem.rsplit_once("_time_")?;
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (head, value) = head.rsplit_once('_')?;
    let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let prefix = if let Some(p) = head.strip_suffix("_qps") {
        // Open-loop runs: a rate, possibly fractional (`_qps_2.5_`).
        let (int, frac) = value.split_once('.').unwrap_or((value, "0"));
        if !digits(int) || !digits(frac) {
            return None;
        }
        p
    } else {
        if !digits(value) {
            return None;
        }
        head.strip_suffix("_num_concurrency")
            .or_else(|| head.strip_suffix("_batch_size"))
            .or_else(|| head.strip_suffix("_concurrency"))?
    };
    // `.+_.+`: at least scenario and something after it.
    let (a, b) = prefix.split_once('_')?;
    (!a.is_empty() && !b.is_empty()).then_some((prefix, value))
}

/// The model part of `<scenario>_<task>_<model>` (the scenario is
/// sanitised and may hold underscores, so the task anchors the split).
fn model_from_prefix(prefix: &str, task: &str) -> Option<String> {
    let needle = format!("_{task}_");
    let at = prefix.find(&needle)?;
    let model = &prefix[at + needle.len()..];
    (!model.is_empty()).then(|| model.to_string())
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", path.display()))
}

impl Experiment {
    /// Load `folder`: its `experiment_metadata.json` and every run file.
    pub fn load(folder: &Path) -> anyhow::Result<Experiment> {
        let meta_path = folder.join("experiment_metadata.json");
        if !folder.is_dir() {
            bail!(
                "{} is not a folder: pass an experiment folder written by `genai-bench benchmark`",
                folder.display()
            );
        }
        if !meta_path.is_file() {
            bail!(
                "{} has no experiment_metadata.json: pass an experiment folder written by \
                 `genai-bench benchmark` (one holding experiment_metadata.json and the run files)",
                folder.display()
            );
        }
        let metadata = read_json(&meta_path)?;
        // `report .` names the experiment after the real folder.
        let folder = &folder
            .canonicalize()
            .unwrap_or_else(|_| folder.to_path_buf());
        let source_unit = match metadata.get("metrics_time_unit").and_then(Value::as_str) {
            Some(u) => Unit::parse(u).with_context(|| format!("in {}", meta_path.display()))?,
            None => Unit::S,
        };
        let task = metadata
            .get("task")
            .and_then(Value::as_str)
            .unwrap_or("text-to-text")
            .to_string();
        let default_model = metadata
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("model")
            .to_string();
        let mut names: Vec<String> = std::fs::read_dir(folder)
            .with_context(|| format!("cannot list {}", folder.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_run_file(n))
            .collect();
        names.sort();
        let mut runs = Vec::new();
        for name in names {
            let path = folder.join(&name);
            // Streamed from the file: neither its bytes nor its records'
            // trees are held at once.
            let file = std::fs::File::open(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let v: RunFileView = serde_json::from_reader(std::io::BufReader::new(file))
                .with_context(|| {
                    format!(
                        "{} is not a run file of genai-bench (valid JSON with aggregated_metrics and \
                         individual_request_metrics records)",
                        path.display()
                    )
                })?;
            let raw = v
                .aggregated_metrics
                .with_context(|| format!("{} has no aggregated_metrics", path.display()))?;
            let agg: Aggregated = serde_json::from_value(raw.clone()).with_context(|| {
                format!(
                    "{}: aggregated_metrics does not have genai-bench's fields",
                    path.display()
                )
            })?;
            let requests = v.individual_request_metrics.unwrap_or_default();
            let validity = v
                .validity
                .or_else(|| raw.get("validity").cloned())
                .filter(|x| !x.is_null());
            let (prefix, _) = parse_run_file_name(&name).expect("filtered above");
            let model = model_from_prefix(prefix, &task).unwrap_or_else(|| default_model.clone());
            runs.push(Run {
                file_name: name,
                model,
                task: task.clone(),
                agg,
                raw,
                requests,
                validity,
            });
        }
        let order = scenario_order(&metadata);
        runs.sort_by(|a, b| {
            let ka = order.iter().position(|s| *s == a.agg.scenario);
            let kb = order.iter().position(|s| *s == b.agg.scenario);
            (a.model.as_str(), ka.unwrap_or(usize::MAX), &a.agg.scenario)
                .cmp(&(b.model.as_str(), kb.unwrap_or(usize::MAX), &b.agg.scenario))
                .then(a.iteration_value().total_cmp(&b.iteration_value()))
        });
        Ok(Experiment {
            folder: folder.to_path_buf(),
            metadata,
            source_unit,
            runs,
        })
    }

    /// Load `folder` if it is an experiment, else every experiment folder
    /// directly inside it (genai-bench's `plot --experiments-folder`).
    pub fn load_many(folder: &Path) -> anyhow::Result<Vec<Experiment>> {
        if folder.join("experiment_metadata.json").is_file() {
            return Ok(vec![Experiment::load(folder)?]);
        }
        let mut subs: Vec<PathBuf> = std::fs::read_dir(folder)
            .with_context(|| format!("cannot list {}", folder.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("experiment_metadata.json").is_file())
            .collect();
        subs.sort();
        if subs.is_empty() {
            bail!(
                "{} holds no experiment_metadata.json, nor do its sub-folders: pass an \
                 experiment folder written by `genai-bench benchmark` or a folder of them",
                folder.display()
            );
        }
        subs.iter().map(|p| Experiment::load(p)).collect()
    }

    /// The folder's name (`<folder>_summary.xlsx` etc.).
    pub fn name(&self) -> String {
        self.folder
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "experiment".into())
    }

    /// A metadata field as text (`None`/missing as genai-bench prints it).
    pub fn meta_str(&self, key: &str) -> String {
        match self.metadata.get(key) {
            None | Some(Value::Null) => "None".into(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }
    }

    /// The experiment's iteration type.
    pub fn iteration_type(&self) -> String {
        self.metadata
            .get("iteration_type")
            .and_then(Value::as_str)
            .unwrap_or("num_concurrency")
            .to_string()
    }

    /// Factor turning a source-unit latency into `unit`.
    pub fn time_factor(&self, unit: Unit) -> f64 {
        unit.per_second() / self.source_unit.per_second()
    }

    /// Distinct models, in run order.
    pub fn models(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for r in &self.runs {
            if !v.contains(&r.model) {
                v.push(r.model.clone());
            }
        }
        v
    }
}

/// Scenario order of genai-bench's sheets: its five named scenarios first,
/// then the experiment's own in metadata order.
pub fn scenario_order(metadata: &Value) -> Vec<String> {
    let listed: Vec<String> = metadata
        .get("traffic_scenario")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut out: Vec<String> = excel::SCENARIO_MAP
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| listed.contains(k))
        .collect();
    for s in listed {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// genai-bench's `--filter-criteria`: a JSON object of
/// `experiment_metadata.json` fields and the values an experiment must
/// have. `traffic_scenario` may be one scenario or a list; it keeps those
/// scenarios' runs and drops the others.
#[derive(Debug, Clone, Default)]
pub struct Filter(serde_json::Map<String, Value>);

impl Filter {
    /// Parse the flag's JSON.
    pub fn parse(s: &str) -> anyhow::Result<Filter> {
        let v: Value = serde_json::from_str(s).map_err(|e| {
            anyhow::anyhow!(
                "--filter-criteria is not valid JSON ({e}): give an object such as \
                 '{{\"model\": \"Qwen/Qwen3-8B\", \"traffic_scenario\": [\"D(100,100)\"]}}'"
            )
        })?;
        match v {
            Value::Object(m) => Ok(Filter(m)),
            other => bail!(
                "--filter-criteria must be a JSON object of experiment_metadata.json fields and \
                 values, not {other}"
            ),
        }
    }

    /// Whether no criteria were given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keep `exp` if its metadata matches (removing runs of scenarios the
    /// filter leaves out); otherwise say why not.
    pub fn apply(&self, exp: &mut Experiment) -> Result<(), String> {
        for (key, want) in &self.0 {
            let Some(have) = exp.metadata.get(key) else {
                return Err(format!("it has no metadata field {key:?}"));
            };
            if key == "traffic_scenario" {
                let wanted: Vec<&str> = match want {
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    v => v.as_str().into_iter().collect(),
                };
                let kept: Vec<Value> = have
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s.as_str().is_some_and(|s| wanted.contains(&s)))
                    .cloned()
                    .collect();
                if kept.is_empty() {
                    return Err(format!("none of its scenarios {have} is in {want}"));
                }
                exp.metadata[key.as_str()] = Value::Array(kept);
                exp.runs
                    .retain(|r| wanted.contains(&r.agg.scenario.as_str()));
            } else if !same_value(have, want) {
                return Err(format!("its {key} is {have}, not {want}"));
            }
        }
        Ok(())
    }

    /// Keep the experiments that match; an error naming each one's reason
    /// if none does.
    pub fn select(&self, exps: Vec<Experiment>) -> anyhow::Result<Vec<Experiment>> {
        if self.is_empty() {
            return Ok(exps);
        }
        let mut kept = Vec::new();
        let mut why = Vec::new();
        for mut e in exps {
            match self.apply(&mut e) {
                Ok(()) => kept.push(e),
                Err(reason) => {
                    tracing::info!(
                        "--filter-criteria leaves out {}: {reason}",
                        e.folder.display()
                    );
                    why.push(format!("{}: {reason}", e.name()));
                }
            }
        }
        if kept.is_empty() {
            bail!(
                "no experiment matches --filter-criteria {}: {}",
                Value::Object(self.0.clone()),
                why.join("; ")
            );
        }
        Ok(kept)
    }
}

/// JSON equality, with numbers compared by value (`1` matches `1.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

/// A field path, its value as shown, and its type (Python's name).
pub type Field = (String, String, &'static str);

/// genai-bench's `plot --list-fields`: every aggregated-metrics field of
/// `run` that holds a value, with the value and its type (Python's names),
/// direct fields first, then `stats.<metric>.<stat>`.
pub fn list_fields(run: &Run) -> (Vec<Field>, Vec<Field>) {
    fn type_name(v: &Value) -> &'static str {
        match v {
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_i64() || n.is_u64() => "int",
            Value::Number(_) => "float",
            Value::String(_) => "str",
            Value::Array(_) => "list",
            Value::Object(_) => "dict",
            Value::Null => "None",
        }
    }
    fn shown(v: &Value) -> String {
        let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        if s.chars().count() > 60 {
            format!("{}...", s.chars().take(57).collect::<String>())
        } else {
            s
        }
    }
    let mut direct = Vec::new();
    let mut stats = Vec::new();
    if let Value::Object(m) = &run.raw {
        for (k, v) in m {
            if k == "stats" {
                for (metric, fields) in v.as_object().into_iter().flatten() {
                    for (stat, x) in fields.as_object().into_iter().flatten() {
                        if !x.is_null() {
                            stats.push((format!("stats.{metric}.{stat}"), shown(x), type_name(x)));
                        }
                    }
                }
            } else if !v.is_null() {
                direct.push((k.clone(), shown(v), type_name(v)));
            }
        }
    }
    direct.sort();
    stats.sort();
    (direct, stats)
}

/// Resolve a field path (`requests_per_second`, `stats.ttft.p90`) of a
/// run's aggregated metrics to a number in `unit`.
pub fn field_value(exp: &Experiment, run: &Run, path: &str, unit: Unit) -> Option<f64> {
    let mut v = &run.raw;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    let x = v.as_f64().or_else(|| v.as_bool().map(|b| b as u8 as f64))?;
    let scaled = path
        .strip_prefix("stats.")
        .and_then(|rest| rest.split('.').next())
        .is_some_and(|m| TIME_FIELDS.contains(&m));
    Some(if scaled { x * exp.time_factor(unit) } else { x })
}

/// Files written by one report command.
#[derive(Debug, Default)]
pub struct Written {
    /// Paths, in the order written.
    pub files: Vec<PathBuf>,
}

/// After a benchmark: the summary workbook, the default plots and the HTML
/// report, each in the experiment folder. A failure is logged as a warning
/// with its cause; the results themselves are already on disk.
pub fn write_all_after_benchmark(folder: &Path) {
    let exp = match Experiment::load(folder) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("no reports for {}: {e:#}", folder.display());
            return;
        }
    };
    if exp.runs.is_empty() {
        return;
    }
    let unit = exp.source_unit;
    let xlsx = folder.join(format!("{}_summary.xlsx", exp.name()));
    if let Err(e) = excel::write_workbook(&exp, &xlsx, "mean", unit) {
        tracing::warn!("could not write {}: {e:#}", xlsx.display());
    }
    let plots = plot::PlotOptions {
        group_key: "traffic_scenario".into(),
        config: plot::PlotConfig::preset("2x4_default").expect("built-in preset"),
        unit,
        formats: plot::Formats::both(),
    };
    if let Err(e) = plot::write_plots(std::slice::from_ref(&exp), folder, &plots) {
        tracing::warn!("could not write plots in {}: {e:#}", folder.display());
    }
    let html = folder.join(html::REPORT_FILE);
    match html::write_report(&exp, &html) {
        Ok(()) => eprintln!("report: {}", html.display()),
        Err(e) => tracing::warn!("could not write {}: {e:#}", html.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_file_names_match_genai_bench_loader() {
        let n = "D100_100_text-to-text_zai-org_GLM-4.6_num_concurrency_1_time_300s.json";
        assert!(is_run_file(n));
        let (prefix, v) = parse_run_file_name(n).unwrap();
        assert_eq!(v, "1");
        assert_eq!(
            model_from_prefix(prefix, "text-to-text").as_deref(),
            Some("zai-org_GLM-4.6")
        );
        assert!(is_run_file(
            "E_text-to-embeddings_m_batch_size_4_time_3s.json"
        ));
        assert!(!is_run_file("experiment_metadata.json"));
        assert!(!is_run_file("D1_1_t_m_num_concurrency_1_time_3s.json.tmp"));
        assert!(!is_run_file("D1_1_t_m_num_concurrency_x_time_3s.json"));
        // Open-loop runs, with whole and fractional rates.
        assert!(is_run_file("D1_1_t_m_qps_2.5_time_3s.json"));
        assert!(is_run_file("D1_1_t_m_qps_4_time_3s.json"));
        assert!(!is_run_file("D1_1_t_m_qps_2._time_3s.json"));
        assert!(!is_run_file("D1_1_t_m_num_concurrency_2.5_time_3s.json"));
    }

    #[test]
    fn request_rows_keep_every_request_field_and_the_exclusion() {
        // Read straight from the text, nested values skipped.
        let row: RequestRow = serde_json::from_str(
            r#"{"ttft": 0.5, "error_message": "boom", "excluded": "warmup",
                "prompt_wait": 0.1, "chunks": [{"t": 1}], "meta": {"a": [1, 2]}}"#,
        )
        .unwrap();
        assert_eq!(row.get("ttft"), Some(&serde_json::json!(0.5)));
        assert_eq!(row.get("error_message"), Some(&serde_json::json!("boom")));
        // Every column of the request sheet is there, null when absent.
        for f in REQUEST_FIELDS {
            assert!(row.get(f).is_some(), "{f}");
        }
        assert_eq!(row.get("tpot"), Some(&Value::Null));
        assert_eq!(row.get("prompt_wait"), None);
        assert!(row.excluded());
        let row: RequestRow = serde_json::from_str(r#"{"excluded": null}"#).unwrap();
        assert!(!row.excluded());
        assert!(serde_json::from_str::<RequestRow>("[1]").is_err());
    }
}

#[cfg(test)]
mod fixture_tests;
