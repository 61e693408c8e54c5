//! The experiment folder, in genai-bench's layout so tools that read
//! genai-bench results read ours: `experiment_metadata.json` plus one JSON per
//! run named `<scenario>_<task>_<model>_<iteration_type>_<value>_time_<secs>s.json`
//! holding `aggregated_metrics`, `individual_request_metrics` and `_time_unit`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::metrics::{AggregatedMetrics, RequestRecord};

/// Latency fields converted by `--metrics-time-unit ms` (genai-bench's list,
/// plus the inter-chunk latency this tool adds).
pub const TIME_FIELDS: &[&str] = &[
    "ttft",
    "tpot",
    "e2e_latency",
    "output_latency",
    "inter_chunk_latency",
    "send_lag",
    "cap_wait",
    "prompt_wait",
    "pacing_error",
    "ttft_corrected",
    "e2e_latency_corrected",
];

/// Unit of latency fields in result files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum TimeUnit {
    /// Seconds (genai-bench's default).
    #[serde(rename = "s")]
    #[value(name = "s")]
    Seconds,
    /// Milliseconds.
    #[serde(rename = "ms")]
    #[value(name = "ms")]
    Milliseconds,
}

impl TimeUnit {
    /// `s` or `ms`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Milliseconds => "ms",
        }
    }
    fn factor(self) -> f64 {
        match self {
            TimeUnit::Seconds => 1.0,
            TimeUnit::Milliseconds => 1000.0,
        }
    }
}

/// genai-bench's `sanitize_string`: `/` and `,` become `_`, parentheses go.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '(' | ')'))
        .map(|c| if matches!(c, '/' | ',' | ' ') { '_' } else { c })
        .collect()
}

/// Where a run's file goes.
pub fn run_file_name(
    scenario: &str,
    task: &str,
    model: &str,
    iteration_type: &str,
    value: impl std::fmt::Display,
    secs: u64,
) -> String {
    format!(
        "{}_{}_{}_{}_{}_time_{}s.json",
        sanitize(scenario),
        task,
        sanitize(model),
        iteration_type,
        value,
        secs
    )
}

/// Write `value` as pretty JSON, atomically (a reader never sees half a file).
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("json.tmp");
    let write = || -> anyhow::Result<()> {
        // Streamed to the file: a run of many requests is never held whole
        // as text.
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer_pretty(&mut out, value)?;
        out.flush()?;
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn scale_time_fields(v: &mut Value, factor: f64) {
    if factor == 1.0 {
        return;
    }
    let Value::Object(map) = v else { return };
    for (k, val) in map.iter_mut() {
        if !TIME_FIELDS.contains(&k.as_str()) {
            continue;
        }
        match val {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    *val = json!(x * factor);
                }
            }
            Value::Object(stat) => {
                for s in stat.values_mut() {
                    if let Some(x) = s.as_f64() {
                        *s = json!(x * factor);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The JSON of one run, in genai-bench's shape, latencies in `unit`, as a
/// tree (for `merge`, which edits it; a benchmark writes [`RunFile`]).
pub fn run_json(
    aggregated: &AggregatedMetrics,
    records: &[RequestRecord],
    unit: TimeUnit,
) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(RunFile::new(
        aggregated, records, unit,
    )?)?)
}

/// One run file, in genai-bench's shape, latencies in its unit. Serialised
/// record by record: a record is a JSON tree only while it is written
/// (the whole run as one tree took ~5 KB a request, 100 MB at 20,000).
pub struct RunFile<'a> {
    aggregated: Value,
    records: &'a [RequestRecord],
    unit: TimeUnit,
    histograms: Value,
}

impl<'a> RunFile<'a> {
    /// The run of `records` summarised by `aggregated`.
    pub fn new(
        aggregated: &AggregatedMetrics,
        records: &'a [RequestRecord],
        unit: TimeUnit,
    ) -> anyhow::Result<RunFile<'a>> {
        let mut agg = serde_json::to_value(aggregated)?;
        if let Some(stats) = agg.get_mut("stats") {
            scale_time_fields(stats, unit.factor());
        }
        Ok(RunFile {
            aggregated: agg,
            records,
            unit,
            histograms: histograms(records)?,
        })
    }
}

impl Serialize for RunFile<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(Some(4))?;
        // In key order, as a serde_json map writes them.
        m.serialize_entry("_time_unit", self.unit.as_str())?;
        m.serialize_entry("aggregated_metrics", &self.aggregated)?;
        m.serialize_entry("histograms", &self.histograms)?;
        m.serialize_entry(
            "individual_request_metrics",
            &ScaledRecords(self.records, self.unit.factor()),
        )?;
        m.end()
    }
}

/// Records with their latencies in the run's unit, made one at a time.
struct ScaledRecords<'a>(&'a [RequestRecord], f64);

impl Serialize for ScaledRecords<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq as _};
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for r in self.0 {
            let mut v = serde_json::to_value(r).map_err(S::Error::custom)?;
            scale_time_fields(&mut v, self.1);
            seq.serialize_element(&v)?;
        }
        seq.end()
    }
}

/// Names of the latency histograms a run file keeps.
pub const HISTOGRAMS: &[&str] = &[
    "ttft",
    "tpot",
    "e2e_latency",
    "inter_chunk_latency",
    "send_lag",
    "ttft_corrected",
    "e2e_latency_corrected",
];

/// The run's latency distributions as HDR histograms (1 ns units, 3
/// significant digits), each serialised losslessly with the V2 format and
/// base64-encoded, so that `merge` can add several machines' histograms.
/// Same records as the stats: successful, not warmup/cooldown.
pub fn histograms(records: &[RequestRecord]) -> anyhow::Result<Value> {
    let ok: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| r.ok() && r.excluded.is_none())
        .collect();
    let mut out = serde_json::Map::new();
    // Millions of them in a long run: read where they are, not collected.
    let gaps = || ok.iter().flat_map(|r| r.inter_chunk.iter());
    for name in HISTOGRAMS {
        let h = match *name {
            "inter_chunk_latency" => {
                if gaps().next().is_none() {
                    continue;
                }
                crate::metrics::hdr_from(gaps())
            }
            _ => {
                let values: Vec<f64> = match *name {
                    "send_lag" => records
                        .iter()
                        .filter(|r| r.excluded.is_none())
                        .filter_map(|r| r.send_lag)
                        .collect(),
                    _ => ok.iter().filter_map(|r| field(r, name)).collect(),
                };
                if values.is_empty() {
                    continue;
                }
                crate::metrics::hdr_of(&values)
            }
        };
        out.insert(name.to_string(), json!(encode_histogram(&h)?));
    }
    out.insert("unit".into(), json!("ns"));
    Ok(Value::Object(out))
}

fn field(r: &RequestRecord, name: &str) -> Option<f64> {
    match name {
        "ttft" => r.ttft,
        "tpot" => r.tpot,
        "e2e_latency" => r.e2e_latency,
        "ttft_corrected" => r.ttft_corrected,
        "e2e_latency_corrected" => r.e2e_latency_corrected,
        _ => None,
    }
}

/// V2-serialise and base64-encode a histogram.
pub fn encode_histogram(h: &hdrhistogram::Histogram<u64>) -> anyhow::Result<String> {
    use base64::Engine as _;
    use hdrhistogram::serialization::Serializer as _;
    let mut buf = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| anyhow::anyhow!("cannot serialise a histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// The lock file an experiment folder holds while it is written.
pub const LOCK_FILE: &str = ".lock";

/// A folder name, not a path: no separators, not empty, not `.` or `..`.
fn check_folder_name(name: &str) -> anyhow::Result<()> {
    if name.trim().is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        bail!(
            "'{name}' is not a folder name: the experiment folder name must be one non-empty \
             name without '/' (use --experiment-base-dir for where it goes)"
        );
    }
    Ok(())
}

/// Open `path` (created if missing) and take an exclusive `flock` on it
/// without waiting; `None` when another process holds it.
pub fn lock_file(path: &Path) -> anyhow::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd as _;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(Some(f))
    } else {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Whether another process is writing the experiment folder `dir` now.
pub fn in_use(dir: &Path) -> bool {
    let p = dir.join(LOCK_FILE);
    p.exists() && matches!(lock_file(&p), Ok(None))
}

/// Inverse of [`encode_histogram`].
pub fn decode_histogram(s: &str) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .context("a histogram is not valid base64")?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .map_err(|e| anyhow::anyhow!("a histogram is not a valid HDR V2 histogram: {e:?}"))
}

/// An experiment folder being written. The folder is new (never one that
/// existed) and holds an exclusive lock (`.lock`, `flock`) for as long as
/// this value lives, so `merge` and another writer can tell it is in use.
#[derive(Debug, Clone)]
pub struct ExperimentDir {
    /// Absolute path of the folder.
    pub path: PathBuf,
    _lock: std::sync::Arc<std::fs::File>,
}

/// How an experiment folder's name was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderName {
    /// Named by the user: an existing folder of that name is refused.
    Given,
    /// The default, timestamped to the second: `_2`, `_3`, ... is appended
    /// when a run started in the same second already took it.
    Default,
}

impl ExperimentDir {
    /// Create `<base>/<name>`, a new folder, and lock it. A folder that
    /// exists is never written into: results of another experiment would be
    /// overwritten or mixed with these.
    pub fn create(base: &Path, name: &str, how: FolderName) -> anyhow::Result<Self> {
        check_folder_name(name)?;
        std::fs::create_dir_all(base).with_context(|| {
            format!(
                "cannot create --experiment-base-dir {}: check the path and permissions",
                base.display()
            )
        })?;
        let base = base.canonicalize()?;
        let mut n = 1u32;
        let path = loop {
            let candidate = if n == 1 {
                base.join(name)
            } else {
                base.join(format!("{name}_{n}"))
            };
            // create_dir (not _all) fails if the folder exists, atomically:
            // two processes never get the same folder.
            match std::fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if how == FolderName::Given {
                        bail!(
                            "experiment folder {} already exists; results are never written into an \
                             existing folder. Choose another --experiment-folder-name (or --output), \
                             or move that folder away",
                            candidate.display()
                        );
                    }
                    n += 1;
                    if n > 1000 {
                        bail!(
                            "could not find a free experiment folder name like {name}_N in {}",
                            base.display()
                        );
                    }
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot create experiment folder {}", candidate.display())
                    });
                }
            }
        };
        let lock = lock_file(&path.join(LOCK_FILE))?
            .ok_or_else(|| anyhow::anyhow!("{} is locked by another process", path.display()))?;
        Ok(ExperimentDir {
            path,
            _lock: std::sync::Arc::new(lock),
        })
    }

    /// Write `experiment_metadata.json`.
    pub fn write_metadata(&self, metadata: &Value) -> anyhow::Result<()> {
        write_json(&self.path.join("experiment_metadata.json"), metadata)
    }

    /// Write one run's file; returns its path.
    pub fn write_run(&self, file_name: &str, run: &impl Serialize) -> anyhow::Result<PathBuf> {
        let p = self.path.join(file_name);
        write_json(&p, run)?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_genai_bench() {
        assert_eq!(
            run_file_name(
                "D(100,100)",
                "text-to-text",
                "zai-org/GLM-4.6",
                "num_concurrency",
                1,
                300
            ),
            "D100_100_text-to-text_zai-org_GLM-4.6_num_concurrency_1_time_300s.json"
        );
        assert_eq!(sanitize("N(480,240)/(300,150)"), "N480_240_300_150");
    }

    #[test]
    fn histograms_round_trip_losslessly() {
        let h = crate::metrics::hdr_of(&[0.001, 0.5, 0.5, 2.0, 0.000_123]);
        let back = decode_histogram(&encode_histogram(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 5);
    }

    #[test]
    fn ms_scales_only_latencies() {
        let mut v =
            json!({"ttft": 0.5, "num_input_tokens": 10, "tpot": {"mean": 0.01, "p50": null}});
        scale_time_fields(&mut v, 1000.0);
        assert_eq!(v["ttft"], json!(500.0));
        assert_eq!(v["num_input_tokens"], json!(10));
        assert_eq!(v["tpot"]["mean"], json!(10.0));
        assert_eq!(v["tpot"]["p50"], Value::Null);
    }
}
