//! `genai-bench merge`: combine the experiment folders of several
//! load-generator processes (shards, see `--shard-index`) into one, as if a
//! single client had sent every request.
//!
//! Runs are matched by file name (the `_time_<secs>s.json` suffix aside).
//! Per-request metrics are recomputed from the union of the records, so
//! their percentiles are exact; records are aligned on the wall clock
//! (`run_start_unix_s`), throughputs use the union of the shards' stats
//! windows; counts add up. Inter-chunk latency has no per-request record:
//! its moments are combined exactly from the shards' and its percentiles
//! come from the sum of their lossless HDR histograms, which is what a
//! single run would have computed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::metrics::{RequestRecord, RunInfo, StatField, summarize};
use crate::results::{
    ExperimentDir, HISTOGRAMS, TimeUnit, decode_histogram, encode_histogram, run_json, write_json,
};

/// Flags of `genai-bench merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Experiment folder to write the merged results to (created).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Experiment folders to merge, e.g. one per shard.
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Merge folders even when they are not parts of one experiment
    /// (different backend, task, model, scenarios, levels or settings).
    #[arg(long)]
    pub force: bool,
}

/// One shard's file of one run.
struct ShardRun {
    dir: PathBuf,
    json: Value,
}

/// Entry point of `genai-bench merge`.
pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let n = merge(&args.output, &args.dirs, args.force)?;
    println!(
        "merged {n} runs from {} folders into {}",
        args.dirs.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_key(file: &str) -> Option<String> {
    let stem = file.strip_suffix("s.json")?;
    let i = stem.rfind("_time_")?;
    stem[i + 6..]
        .chars()
        .all(|c| c.is_ascii_digit())
        .then(|| stem[..i].to_string())
}

/// Merge `dirs` into `out`; returns the number of runs written.
pub fn merge(out: &Path, dirs: &[PathBuf], force: bool) -> anyhow::Result<usize> {
    let mut runs: BTreeMap<String, Vec<ShardRun>> = BTreeMap::new();
    let mut metas = Vec::new();
    for d in dirs {
        if crate::results::in_use(d) {
            bail!(
                "{} is being written by a running benchmark; merge it when that run has finished",
                d.display()
            );
        }
        let meta_path = d.join("experiment_metadata.json");
        let meta: Value =
            serde_json::from_slice(&std::fs::read(&meta_path).with_context(|| {
                format!(
                    "{} is not an experiment folder: cannot read {}",
                    d.display(),
                    meta_path.display()
                )
            })?)
            .with_context(|| format!("{} is not valid JSON", meta_path.display()))?;
        metas.push((d.clone(), meta));
        let mut entries: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("cannot list {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(key) = run_key(name) else { continue };
            let json: Value = serde_json::from_slice(&std::fs::read(&p)?)
                .with_context(|| format!("{} is not valid JSON", p.display()))?;
            runs.entry(key).or_default().push(ShardRun {
                dir: d.clone(),
                json,
            });
        }
    }
    check_shards(&metas)?;
    if !force {
        check_related(&metas)?;
    }
    if runs.is_empty() {
        bail!(
            "no run files (*_time_<secs>s.json) in {}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("--output {} has no folder name", out.display()))?;
    // Never into an existing folder: that would overwrite its metadata.
    let dir = ExperimentDir::create(parent, name, crate::results::FolderName::Given)?;
    let char_ratio = metas
        .iter()
        .find_map(|(_, m)| m["character_token_ratio"].as_f64())
        .unwrap_or(0.0);
    let mut written = 0;
    for (key, shards) in &runs {
        let (file_json, secs) =
            merge_run(shards, char_ratio).with_context(|| format!("merging run {key}"))?;
        dir.write_run(&format!("{key}_time_{secs}s.json"), &file_json)?;
        written += 1;
    }
    let mut meta = metas[0].1.clone();
    meta["merged_from"] = json!(
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
    );
    meta["experiment_folder_name"] = json!(dir.path.display().to_string());
    meta["shard"] = json!({"index": 0, "count": 1, "merged_shards": metas.len()});
    write_json(&dir.path.join("experiment_metadata.json"), &meta)?;
    Ok(written)
}

/// Refuse folders that are the same shard twice, or shards of different splits.
fn check_shards(metas: &[(PathBuf, Value)]) -> anyhow::Result<()> {
    let mut seen: BTreeMap<u64, &Path> = BTreeMap::new();
    let mut count = None;
    for (d, m) in metas {
        let (Some(i), Some(c)) = (m["shard"]["index"].as_u64(), m["shard"]["count"].as_u64())
        else {
            continue;
        };
        if c == 1 {
            continue;
        }
        if let Some(prev) = count.replace(c)
            && prev != c
        {
            bail!(
                "{} is shard {i} of {c}, but another folder is a shard of {prev}: merge shards of one split only",
                d.display()
            );
        }
        if let Some(other) = seen.insert(i, d) {
            bail!(
                "{} and {} are both shard {i}: each shard must be merged once",
                other.display(),
                d.display()
            );
        }
    }
    if let Some(c) = count
        && (seen.len() as u64) < c
    {
        tracing::warn!(
            "merging {} of {c} shards: the result covers only part of the load",
            seen.len()
        );
    }
    Ok(())
}

/// Settings that shards of one experiment share; folders that differ in any
/// of them measured different things, and one merged figure would mix them.
const SHARED_SETTINGS: &[&str] = &[
    "api_backend",
    "api_base",
    "api_model_name",
    "task",
    "traffic_scenario",
    "num_concurrency",
    "batch_size",
    "iteration_type",
    "qps_level",
    "distribution",
    "additional_request_params",
    "disable_streaming",
    "max_requests_per_run",
    "dataset_path",
];

fn check_related(metas: &[(PathBuf, Value)]) -> anyhow::Result<()> {
    let Some((first_dir, first)) = metas.first() else {
        return Ok(());
    };
    for (d, m) in &metas[1..] {
        for key in SHARED_SETTINGS {
            if m[key] != first[key] {
                bail!(
                    "{} and {} are not parts of one experiment: their {key} differs ({} vs {}). \
                     Merge only the shards of one split (--shard-count); --force merges anyway",
                    first_dir.display(),
                    d.display(),
                    first[key],
                    m[key]
                );
            }
        }
    }
    Ok(())
}

fn unit_of(run: &Value) -> TimeUnit {
    if run["_time_unit"].as_str() == Some("ms") {
        TimeUnit::Milliseconds
    } else {
        TimeUnit::Seconds
    }
}

/// Back to seconds: the latency fields a run file scaled by its time unit.
fn unscale(v: &mut Value, factor: f64) {
    if factor == 1.0 {
        return;
    }
    let Value::Object(map) = v else { return };
    for (k, val) in map.iter_mut() {
        if !crate::results::TIME_FIELDS.contains(&k.as_str()) {
            continue;
        }
        match val {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    *val = json!(x / factor);
                }
            }
            Value::Object(stat) => {
                for s in stat.values_mut() {
                    if let Some(x) = s.as_f64() {
                        *s = json!(x / factor);
                    }
                }
            }
            _ => {}
        }
    }
}

fn merge_run(shards: &[ShardRun], char_ratio: f64) -> anyhow::Result<(Value, u64)> {
    let unit = unit_of(&shards[0].json);
    let t0 = shards
        .iter()
        .filter_map(|s| s.json["aggregated_metrics"]["run_start_unix_s"].as_f64())
        .fold(f64::INFINITY, f64::min);
    if !t0.is_finite() {
        bail!(
            "a run file has no aggregated_metrics.run_start_unix_s; it was not written by a version that supports merge"
        );
    }
    let mut records: Vec<RequestRecord> = Vec::new();
    let (mut window_start, mut window_end) = (f64::INFINITY, 0.0f64);
    let mut histos: BTreeMap<&str, hdrhistogram::Histogram<u64>> = BTreeMap::new();
    let mut itl_parts: Vec<(u64, StatField)> = Vec::new();
    let mut conc = 0.0;
    let mut requested = None::<f64>;
    let mut interrupted = false;
    let mut reasons = Vec::new();
    let mut all_valid = true;
    let mut cpu = None::<f64>;
    for s in shards {
        let agg = &s.json["aggregated_metrics"];
        let factor = if unit_of(&s.json) == TimeUnit::Milliseconds {
            1000.0
        } else {
            1.0
        };
        let delta = agg["run_start_unix_s"].as_f64().unwrap_or(t0) - t0;
        let mut shard_recs = Vec::new();
        for r in s.json["individual_request_metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mut r = r.clone();
            unscale(&mut r, factor);
            let mut rec: RequestRecord = serde_json::from_value(r).with_context(|| {
                format!("a request record in {} is not readable", s.dir.display())
            })?;
            rec.start_offset = rec.start_offset.map(|x| x + delta);
            rec.scheduled_offset = rec.scheduled_offset.map(|x| x + delta);
            rec.end_offset += delta;
            shard_recs.push(rec);
        }
        let ws = agg["window_start_offset"].as_f64().unwrap_or(0.0) + delta;
        window_start = window_start.min(ws);
        let kept_end = shard_recs
            .iter()
            .filter(|r| r.excluded.is_none() && r.error_kind.as_deref() != Some("cancelled"))
            .map(|r| r.end_offset)
            .fold(ws, f64::max);
        window_end = window_end.max(kept_end);
        records.extend(shard_recs);
        conc += agg["num_concurrency"].as_f64().unwrap_or(0.0);
        if let Some(q) = agg["requested_qps"].as_f64() {
            requested = Some(requested.unwrap_or(0.0) + q);
        }
        interrupted |= agg["interrupted"].as_bool().unwrap_or(false);
        if let Some(c) = agg["validity"]["measures"]["client_cpu_cores"].as_f64() {
            cpu = Some(cpu.unwrap_or(0.0).max(c));
        }
        if agg["validity"]["valid"].as_bool() == Some(false) {
            all_valid = false;
            let shard = agg["shard"]["index"]
                .as_u64()
                .map(|i| format!("shard {i}"))
                .unwrap_or_else(|| s.dir.display().to_string());
            for r in agg["validity"]["reasons"].as_array().into_iter().flatten() {
                reasons.push(format!("{shard}: {}", r.as_str().unwrap_or("")));
            }
        }
        for name in HISTOGRAMS {
            if let Some(b64) = s.json["histograms"][*name].as_str() {
                let h = decode_histogram(b64)
                    .with_context(|| format!("histogram {name} in {}", s.dir.display()))?;
                // A decoded histogram has a fixed range; the sum grows.
                histos
                    .entry(name)
                    .or_insert_with(|| crate::metrics::hdr_of(&[]))
                    .add(&h)
                    .map_err(|e| anyhow::anyhow!("cannot add histograms: {e:?}"))?;
            }
        }
        let mut itl = agg["stats"]["inter_chunk_latency"].clone();
        if factor != 1.0 {
            let mut wrap = json!({"inter_chunk_latency": itl});
            unscale(&mut wrap, factor);
            itl = wrap["inter_chunk_latency"].take();
        }
        let count = s.json["histograms"]["inter_chunk_latency"]
            .as_str()
            .and_then(|b| decode_histogram(b).ok())
            .map(|h| h.len())
            .unwrap_or(0);
        if count > 0 {
            itl_parts.push((count, serde_json::from_value(itl).unwrap_or_default()));
        }
    }
    records.sort_by(|a, b| a.end_offset.total_cmp(&b.end_offset));
    let first = &shards[0].json["aggregated_metrics"];
    let thresholds =
        serde_json::from_value(first["validity"]["thresholds"].clone()).unwrap_or_default();
    let open_loop = first["arrivals"]
        .as_object()
        .map(|o| crate::metrics::OpenLoop {
            requested_qps: requested.unwrap_or(0.0),
            distribution: serde_json::from_value(o["distribution"].clone())
                .unwrap_or(crate::load::Distribution::Poisson),
            burstiness: o["burstiness"].as_f64().unwrap_or(1.0),
            max_concurrency: None,
            seed: o["seed"].as_u64().unwrap_or(0),
        });
    let slos = first["goodput"]["slos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().and_then(|s| crate::load::parse_slo(s).ok()))
        .collect();
    let wall = records.iter().map(|r| r.end_offset).fold(0.0f64, f64::max);
    let info = RunInfo {
        scenario: first["scenario"].as_str().unwrap_or("").to_string(),
        num_concurrency: conc,
        batch_size: first["batch_size"].as_u64().unwrap_or(1) as u32,
        iteration_type: first["iteration_type"]
            .as_str()
            .unwrap_or("num_concurrency")
            .to_string(),
        warmup_ratio: 0.0,
        cooldown_ratio: 0.0,
        stream: first["ttft_measured"].as_bool().unwrap_or(true),
        wall_duration: wall,
        interrupted,
        character_token_ratio: char_ratio,
        open_loop,
        slos,
        slo_attainment: first["goodput"]["required_attainment"]
            .as_f64()
            .unwrap_or(0.9),
        thresholds,
        client_cpu_cores: cpu,
        machine_cpu_cores: None,
        run_start_unix_s: t0,
        run_start_monotonic_s: None,
        shard: None,
    };
    let mut agg = summarize(
        &records,
        window_start.min(window_end),
        Some(window_end),
        &info,
    );
    // Inter-chunk gaps: exact moments from the shards, percentiles from
    // the summed histogram.
    if let Some(h) = histos.get("inter_chunk_latency") {
        agg.stats.inter_chunk_latency = combine(&itl_parts, h);
    }
    if !all_valid {
        agg.validity.valid = false;
        agg.validity.reasons.extend(reasons);
    }
    let mut out = run_json(&agg, &records, unit)?;
    let mut hs = serde_json::Map::new();
    for (name, h) in &histos {
        hs.insert(name.to_string(), json!(encode_histogram(h)?));
    }
    hs.insert("unit".into(), json!("ns"));
    out["histograms"] = Value::Object(hs);
    out["merged_shards"] = json!(shards.len());
    Ok((out, wall.round() as u64))
}

/// Combine summaries of disjoint parts: exact count-weighted moments and
/// extremes; percentiles from the merged histogram, clamped to the extremes.
fn combine(parts: &[(u64, StatField)], h: &hdrhistogram::Histogram<u64>) -> StatField {
    let n: u64 = parts.iter().map(|p| p.0).sum();
    if n == 0 {
        return StatField::default();
    }
    let sum: f64 = parts.iter().filter_map(|p| p.1.sum).sum();
    let mean = sum / n as f64;
    let var = parts
        .iter()
        .map(|(k, f)| {
            let (m, sd) = (f.mean.unwrap_or(0.0), f.stddev.unwrap_or(0.0));
            *k as f64 * (sd * sd + (m - mean) * (m - mean))
        })
        .sum::<f64>()
        / n as f64;
    let min = parts
        .iter()
        .filter_map(|p| p.1.min)
        .fold(f64::INFINITY, f64::min);
    let max = parts
        .iter()
        .filter_map(|p| p.1.max)
        .fold(f64::NEG_INFINITY, f64::max);
    let q =
        |p: f64| Some((h.value_at_quantile(p) as f64 / crate::metrics::HDR_SCALE).clamp(min, max));
    StatField {
        min: Some(min),
        max: Some(max),
        mean: Some(mean),
        stddev: Some(var.sqrt()),
        sum: Some(sum),
        p25: q(0.25),
        p50: q(0.50),
        p75: q(0.75),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_keys_drop_the_time_suffix() {
        assert_eq!(
            run_key("D1_2_text-to-text_m_qps_50_time_2s.json").as_deref(),
            Some("D1_2_text-to-text_m_qps_50")
        );
        assert_eq!(run_key("experiment_metadata.json"), None);
    }

    #[test]
    fn combined_moments_are_exact() {
        let a = [0.1, 0.2, 0.3];
        let b = [0.5, 0.9];
        let all: Vec<f64> = a.iter().chain(b.iter()).copied().collect();
        let whole = crate::metrics::stat_field_hdr(&all);
        let parts = [
            (3, crate::metrics::stat_field_hdr(&a)),
            (2, crate::metrics::stat_field_hdr(&b)),
        ];
        let mut h = crate::metrics::hdr_of(&a);
        h.add(crate::metrics::hdr_of(&b)).unwrap();
        let c = combine(&parts, &h);
        assert!((c.mean.unwrap() - whole.mean.unwrap()).abs() < 1e-12);
        assert!((c.stddev.unwrap() - whole.stddev.unwrap()).abs() < 1e-12);
        assert_eq!(c.p50, whole.p50);
        assert_eq!(c.p99, whole.p99);
        assert_eq!((c.min, c.max), (whole.min, whole.max));
    }
}
