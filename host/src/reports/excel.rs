//! genai-bench's Excel workbook (`analysis/excel_report.py` of genai-bench
//! 0.0.5): sheets Summary, Appendix, Experiment Metadata, Aggregated Metrics
//! for Each Run and Individual Request Metrics, with its headers. Runs of
//! different models stay apart: each sheet has a `Model` column after
//! genai-bench's own columns.

use std::path::Path;

use anyhow::{Context as _, bail};
use rust_xlsxwriter::{Format, FormatAlign, Workbook, Worksheet};
use serde_json::Value;

use super::{
    Experiment, PERCENTILES, REQUEST_FIELDS, Run, TIME_FIELDS, Unit, fmt_num, iteration_label,
};

/// genai-bench's display names of its five standard scenarios.
pub const SCENARIO_MAP: &[(&str, &str)] = &[
    (
        "N(480,240)/(300,150)",
        "Scenario 1: Fusion N(480,240)/(300,150)",
    ),
    ("D(100,100)", "Scenario 2: Chatbot/Dialog D(100,100)"),
    ("D(100,1000)", "Scenario 3: Generation Heavy D(100,1000)"),
    ("D(2000,200)", "Scenario 4: Typical RAG D(2000,200)"),
    ("D(7800,200)", "Scenario 5: Heavier RAG D(7800,200)"),
];

/// The sheet names, in order.
pub const SHEETS: &[&str] = &[
    "Summary",
    "Appendix",
    "Experiment Metadata",
    "Aggregated Metrics for Each Run",
    "Individual Request Metrics",
];

/// genai-bench's scalar `AggregatedMetrics` fields after scenario and the
/// iteration value, in its order.
const AGG_FIELDS: &[&str] = &[
    "run_duration",
    "mean_output_throughput_tokens_per_s",
    "mean_input_throughput_tokens_per_s",
    "mean_total_tokens_throughput_tokens_per_s",
    "requests_per_second",
    "error_codes_frequency",
    "error_rate",
    "num_error_requests",
    "num_completed_requests",
    "num_requests",
];

/// genai-bench's `ExperimentMetadata` fields, in its order.
const METADATA_FIELDS: &[&str] = &[
    "cmd",
    "benchmark_version",
    "api_backend",
    "auth_config",
    "api_model_name",
    "server_model_tokenizer",
    "model",
    "task",
    "num_concurrency",
    "batch_size",
    "iteration_type",
    "traffic_scenario",
    "additional_request_params",
    "server_engine",
    "server_version",
    "server_gpu_type",
    "server_gpu_count",
    "max_time_per_run_s",
    "max_requests_per_run",
    "experiment_folder_name",
    "metrics_time_unit",
    "dataset_path",
    "character_token_ratio",
];

/// The display name of a scenario in the Use Case column.
pub fn use_case(scenario: &str) -> String {
    SCENARIO_MAP
        .iter()
        .find(|(k, _)| *k == scenario)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| scenario.to_string())
}

/// `"(s)"` becomes `"(ms)"` when the output unit is milliseconds.
fn unit_label(label: &str, unit: Unit) -> String {
    match unit {
        Unit::S => label.to_string(),
        Unit::Ms => label.replace("(s)", "(ms)"),
    }
}

/// Runs grouped by (model, scenario), in sheet order.
fn groups(exp: &Experiment) -> Vec<Vec<&Run>> {
    let mut out: Vec<Vec<&Run>> = Vec::new();
    for r in &exp.runs {
        match out.last_mut() {
            Some(g) if g[0].model == r.model && g[0].agg.scenario == r.agg.scenario => g.push(r),
            _ => out.push(vec![r]),
        }
    }
    out
}

fn write_opt(
    ws: &mut Worksheet,
    row: u32,
    col: u16,
    v: Option<f64>,
    f: &Format,
) -> anyhow::Result<()> {
    match v {
        Some(x) if x.is_finite() => {
            ws.write_number_with_format(row, col, x, f)?;
        }
        _ => {}
    }
    Ok(())
}

fn write_value(ws: &mut Worksheet, row: u32, col: u16, v: &Value) -> anyhow::Result<()> {
    match v {
        Value::Null => {}
        Value::Bool(b) => {
            ws.write_boolean(row, col, *b)?;
        }
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                ws.write_number(row, col, x)?;
            }
        }
        Value::String(s) => {
            ws.write_string(row, col, s)?;
        }
        other => {
            ws.write_string(row, col, serde_json::to_string_pretty(other)?)?;
        }
    }
    Ok(())
}

fn header(ws: &mut Worksheet, headers: &[String], bold: &Format) -> anyhow::Result<()> {
    for (i, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, i as u16, h, bold)?;
        ws.set_column_width(i as u16, (h.len().min(40) + 2) as f64)?;
    }
    Ok(())
}

/// Merge `col` over rows `first..=last` keeping `text`, top-aligned.
fn merge(
    ws: &mut Worksheet,
    first: u32,
    last: u32,
    col: u16,
    text: &str,
    f: &Format,
) -> anyhow::Result<()> {
    if last > first {
        ws.merge_range(first, col, last, col, text, f)?;
    } else {
        ws.write_string_with_format(first, col, text, f)?;
    }
    Ok(())
}

/// Write the workbook of `exp` to `path`, statistics at `percentile`
/// (`mean`, `p25` ... `p99`), latencies in `unit`.
pub fn write_workbook(
    exp: &Experiment,
    path: &Path,
    percentile: &str,
    unit: Unit,
) -> anyhow::Result<()> {
    if !PERCENTILES.contains(&percentile) {
        bail!(
            "unknown --metric-percentile {percentile:?}: use one of {}",
            PERCENTILES.join(", ")
        );
    }
    if exp.runs.is_empty() {
        bail!(
            "{} has no run files (<scenario>_<task>_<model>_num_concurrency_<N>_time_<secs>s.json): \
             nothing to put in a workbook",
            exp.folder.display()
        );
    }
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let num = Format::new().set_num_format("#,##0.00");
    let top = Format::new().set_align(FormatAlign::Top);
    let wrap = Format::new().set_text_wrap();
    let tf = exp.time_factor(unit);
    let iter_type = exp.iteration_type();
    let is_embedding = exp.meta_str("task").ends_with("-to-embeddings");
    let gpu = format!(
        "{}x{}",
        exp.meta_str("server_gpu_count"),
        exp.meta_str("server_gpu_type")
    );
    let stat = |r: &Run, m: &str| r.agg.stats.get(m).and_then(|s| s.get(percentile));
    let groups = groups(exp);

    // Summary: the largest iteration value still above the target speed,
    // stopping once throughput saturates (genai-bench's rule).
    {
        let ws = wb.add_worksheet().set_name("Summary")?;
        let threshold = if is_embedding { 100 } else { 10 };
        let col3 = if iter_type == "batch_size" {
            format!("Batch Size at target throughput (>{threshold} tokens/s)")
        } else {
            format!("Concurrency at target speed (>{threshold} tokens/s)")
        };
        let headers: Vec<String> = vec![
            "GPU Type".into(),
            "Use Case".into(),
            col3,
            "Total Throughput (tokens/min)".into(),
            "Model".into(),
        ];
        header(ws, &headers, &bold)?;
        let mut row = 1u32;
        for g in &groups {
            let mut best: Option<&Run> = None;
            for r in g {
                let v = if is_embedding {
                    Some(r.agg.mean_total_tokens_throughput_tokens_per_s)
                } else {
                    stat(r, "output_inference_speed")
                };
                if v.is_some_and(|v| v > threshold as f64) {
                    if let Some(prev) = best
                        && r.iteration_value() > prev.iteration_value()
                        && saturated(r, prev)
                    {
                        break;
                    }
                    best = Some(r);
                }
            }
            ws.write_string(row, 1, use_case(&g[0].agg.scenario))?;
            match best {
                Some(b) => {
                    ws.write_number(row, 2, b.iteration_value())?;
                    ws.write_number_with_format(
                        row,
                        3,
                        b.agg.mean_total_tokens_throughput_tokens_per_s * 60.0,
                        &num,
                    )?;
                }
                None => {
                    ws.write_string(row, 2, "N/A")?;
                    ws.write_string(row, 3, "N/A")?;
                }
            }
            ws.write_string(row, 4, &g[0].model)?;
            row += 1;
        }
        merge(ws, 1, row - 1, 0, &gpu, &top)?;
        ws.set_column_width(1, 40)?;
    }

    // Appendix: one row per run at the chosen percentile.
    {
        let ws = wb.add_worksheet().set_name("Appendix")?;
        let mut headers: Vec<String> = vec![
            "GPU Type".into(),
            "Use Case".into(),
            iteration_label(&iter_type).into(),
            unit_label("TTFT (s)", unit),
        ];
        if is_embedding {
            headers.extend([
                unit_label("End-to-End Latency per Request (s)", unit),
                "Request Throughput (RPS)".into(),
                "Total Throughput (Input + Output) of Server (tokens/s)".into(),
            ]);
        } else {
            headers.extend([
                "Output Inference Speed per Request (tokens/s)".into(),
                "Output Throughput of Server (tokens/s)".into(),
                unit_label("End-to-End Latency per Request (s)", unit),
                "Request Throughput (RPS)".into(),
                "Total Throughput (Input + Output) of Server (tokens/s)".into(),
            ]);
        }
        headers.push("Model".into());
        header(ws, &headers, &bold)?;
        let model_col = (headers.len() - 1) as u16;
        let mut row = 1u32;
        for g in &groups {
            let first = row;
            for r in g {
                ws.write_number(row, 2, r.iteration_value())?;
                write_opt(ws, row, 3, stat(r, "ttft").map(|v| v * tf), &num)?;
                let mut vals: Vec<Option<f64>> = Vec::new();
                if !is_embedding {
                    vals.push(stat(r, "output_inference_speed"));
                    vals.push(Some(r.agg.mean_output_throughput_tokens_per_s));
                }
                vals.push(stat(r, "e2e_latency").map(|v| v * tf));
                vals.push(Some(r.agg.requests_per_second));
                vals.push(Some(r.agg.mean_total_tokens_throughput_tokens_per_s));
                for (i, v) in vals.into_iter().enumerate() {
                    write_opt(ws, row, 4 + i as u16, v, &num)?;
                }
                ws.write_string(row, model_col, &r.model)?;
                row += 1;
            }
            merge(ws, first, row - 1, 1, &use_case(&g[0].agg.scenario), &top)?;
        }
        merge(ws, 1, row - 1, 0, &gpu, &top)?;
        ws.set_column_width(1, 40)?;
    }

    // Experiment Metadata: genai-bench's fields first, then this tool's.
    {
        let ws = wb.add_worksheet().set_name("Experiment Metadata")?;
        let mut keys: Vec<String> = METADATA_FIELDS.iter().map(|s| s.to_string()).collect();
        if let Some(obj) = exp.metadata.as_object() {
            keys.extend(
                obj.keys()
                    .filter(|k| !METADATA_FIELDS.contains(&k.as_str()))
                    .cloned(),
            );
        }
        for (i, k) in keys.iter().enumerate() {
            let row = i as u32;
            ws.write_string_with_format(row, 0, k, &bold)?;
            let v = exp.metadata.get(k).cloned().unwrap_or(Value::Null);
            let text = match &v {
                Value::Array(a) => a
                    .iter()
                    .map(|x| match x {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                Value::Object(_) => serde_json::to_string_pretty(&v)?,
                _ => {
                    write_value(ws, row, 1, &v)?;
                    continue;
                }
            };
            ws.write_string(row, 1, text)?;
        }
        ws.set_column_width(0, 28)?;
        ws.set_column_width(1, 60)?;
    }

    // Aggregated Metrics for Each Run: scalars, then each metric's stats as JSON.
    {
        let ws = wb
            .add_worksheet()
            .set_name("Aggregated Metrics for Each Run")?;
        let stat_fields: Vec<&str> = REQUEST_FIELDS
            .iter()
            .copied()
            .filter(|f| !matches!(*f, "error_code" | "error_message"))
            .collect();
        let mut headers: Vec<String> = vec!["scenario".into(), iter_type.clone()];
        headers.extend(AGG_FIELDS.iter().map(|s| s.to_string()));
        for f in &stat_fields {
            headers.push(if TIME_FIELDS.contains(f) {
                unit_label(&format!("{f} (s)"), unit)
            } else {
                f.to_string()
            });
        }
        headers.push("model".into());
        header(ws, &headers, &bold)?;
        for (i, r) in exp.runs.iter().enumerate() {
            let row = i as u32 + 1;
            ws.write_string(row, 0, &r.agg.scenario)?;
            ws.write_number(row, 1, r.iteration_value())?;
            let mut col = 2u16;
            for f in AGG_FIELDS {
                write_value(ws, row, col, r.raw.get(*f).unwrap_or(&Value::Null))?;
                col += 1;
            }
            for f in &stat_fields {
                let mut s = r.raw.get("stats").and_then(|s| s.get(*f)).cloned().unwrap_or_else(|| {
                    serde_json::json!({"min": null, "max": null, "mean": null, "stddev": null, "sum": null,
                        "p25": null, "p50": null, "p75": null, "p90": null, "p95": null, "p99": null})
                });
                if TIME_FIELDS.contains(f)
                    && let Some(obj) = s.as_object_mut()
                {
                    for x in obj.values_mut() {
                        if let Some(n) = x.as_f64() {
                            *x = serde_json::json!(n * tf);
                        }
                    }
                }
                ws.write_string_with_format(row, col, serde_json::to_string_pretty(&s)?, &wrap)?;
                col += 1;
            }
            ws.write_string(row, col, &r.model)?;
        }
    }

    // Individual Request Metrics: every request of every run, written row
    // by row to a temporary file (constant-memory mode) rather than held as
    // cells: ~1.4 KB a request otherwise, the largest part of the process's
    // peak memory after a long run. Rows go in order, so each run's merged
    // cells are written before its rows.
    {
        let ws = wb
            .add_worksheet_with_constant_memory()
            .context(
                "cannot create the temporary file the per-request sheet is written to \
                 (set TMPDIR to a writable folder)",
            )?
            .set_name("Individual Request Metrics")?;
        let mut headers: Vec<String> = vec!["scenario".into(), iter_type.clone()];
        for f in REQUEST_FIELDS {
            headers.push(if TIME_FIELDS.contains(f) {
                unit_label(&format!("{f} (s)"), unit)
            } else {
                f.to_string()
            });
        }
        headers.push("model".into());
        header(ws, &headers, &bold)?;
        let model_col = (headers.len() - 1) as u16;
        let mut row = 1u32;
        for r in &exp.runs {
            let Some(n) = u32::try_from(r.requests.len()).ok().filter(|&n| n > 0) else {
                continue;
            };
            let (first, last) = (row, row + n - 1);
            merge(ws, first, last, 0, &r.agg.scenario, &top)?;
            if last > first {
                ws.merge_range(first, 1, last, 1, &fmt_num(r.iteration_value()), &top)?;
            }
            // A merged range holds text; keep the number in its cell.
            ws.write_number_with_format(first, 1, r.iteration_value(), &top)?;
            for rec in &r.requests {
                for (i, f) in REQUEST_FIELDS.iter().enumerate() {
                    let col = 2 + i as u16;
                    let v = rec.get(f).unwrap_or(&Value::Null);
                    match (TIME_FIELDS.contains(f), v.as_f64()) {
                        (true, Some(x)) => {
                            ws.write_number(row, col, x * tf)?;
                        }
                        _ => write_value(ws, row, col, v)?,
                    }
                }
                ws.write_string(row, model_col, &r.model)?;
                row += 1;
            }
        }
    }

    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    wb.save(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// genai-bench's saturation test: total throughput and RPS both within 5%
/// of the previous qualifying run.
fn saturated(cur: &Run, prev: &Run) -> bool {
    let rel = |a: f64, b: f64| {
        if b == 0.0 {
            f64::INFINITY
        } else {
            (a - b).abs() / b
        }
    };
    rel(
        cur.agg.mean_total_tokens_throughput_tokens_per_s,
        prev.agg.mean_total_tokens_throughput_tokens_per_s,
    ) < 0.05
        && rel(cur.agg.requests_per_second, prev.agg.requests_per_second) < 0.05
}
