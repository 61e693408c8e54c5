//! Reports from a hand-written experiment folder: two models, two
//! scenarios, errors in one run, a validity verdict on another.

use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook};
use serde_json::{Value, json};

use super::plot::{Formats, PlotConfig, PlotOptions};
use super::*;

fn stat(mean: f64) -> Value {
    json!({"min": mean * 0.5, "max": mean * 2.0, "mean": mean, "stddev": mean * 0.1,
           "sum": mean * 10.0, "p25": mean * 0.8, "p50": mean, "p75": mean * 1.1,
           "p90": mean * 1.3, "p95": mean * 1.5, "p99": mean * 1.9})
}

fn run(scenario: &str, conc: u32, ttft: f64, errors: u64, validity: Option<Value>) -> Value {
    let rps = conc as f64 * 0.9;
    let mut requests: Vec<Value> = (0..10)
        .map(|i| {
            json!({"ttft": ttft * (0.5 + i as f64 / 10.0), "tpot": 0.01, "e2e_latency": 1.0 + i as f64 / 10.0,
                   "output_latency": 0.9, "output_inference_speed": 100.0, "num_input_tokens": 100,
                   "num_output_tokens": 100, "total_tokens": 200, "input_throughput": 1000.0,
                   "output_throughput": 100.0, "error_code": null, "error_message": null,
                   "excluded": null})
        })
        .collect();
    for _ in 0..errors {
        requests.push(json!({"ttft": null, "e2e_latency": null, "error_code": 503,
                             "error_message": "Service Unavailable"}));
    }
    let mut v = json!({
        "aggregated_metrics": {
            "scenario": scenario, "num_concurrency": conc as f64, "batch_size": 1,
            "iteration_type": "num_concurrency", "run_duration": 10.0,
            "mean_output_throughput_tokens_per_s": 100.0 * rps,
            "mean_input_throughput_tokens_per_s": 100.0 * rps,
            "mean_total_tokens_throughput_tokens_per_s": 200.0 * rps,
            "mean_total_chars_per_hour": 1.0, "requests_per_second": rps,
            "error_codes_frequency": if errors > 0 { json!({"503": errors}) } else { json!({}) },
            "error_rate": errors as f64 / (10 + errors) as f64, "num_error_requests": errors,
            "num_completed_requests": 10, "num_requests": 10 + errors,
            "total_arrivals": null, "arrival_requests_per_second": null,
            "stats": {"ttft": stat(ttft), "tpot": stat(0.01), "e2e_latency": stat(1.5),
                      "output_latency": stat(1.4), "output_inference_speed": stat(100.0 / conc as f64 * 2.0),
                      "num_input_tokens": stat(100.0), "num_output_tokens": stat(100.0),
                      "total_tokens": stat(200.0), "input_throughput": stat(1000.0),
                      "output_throughput": stat(100.0), "inter_chunk_latency": stat(0.01)}
        },
        "individual_request_metrics": requests,
        "_time_unit": "s"
    });
    if let Some(val) = validity {
        v["validity"] = val;
    }
    v
}

/// A folder with models `model-a` and `x<b>y` (a name that needs escaping).
pub fn fixture(dir: &Path) {
    let meta = json!({
        "cmd": "genai-bench benchmark", "benchmark_version": "0.1.0", "api_backend": "baseten",
        "auth_config": {}, "api_model_name": "model-a,x<b>y", "server_model_tokenizer": "t",
        "model": "model-a", "task": "text-to-text", "num_concurrency": [1, 4], "batch_size": [1],
        "iteration_type": "num_concurrency", "traffic_scenario": ["D(100,100)", "N(480,240)/(300,150)"],
        "additional_request_params": {}, "server_engine": null, "server_version": null,
        "server_gpu_type": "H100", "server_gpu_count": "8", "max_time_per_run_s": 60.0,
        "max_requests_per_run": 10, "experiment_folder_name": dir.display().to_string(),
        "metrics_time_unit": "s", "dataset_path": "None", "character_token_ratio": 4.0
    });
    std::fs::write(dir.join("experiment_metadata.json"), meta.to_string()).unwrap();
    let verdict =
        json!({"valid": false, "reasons": ["client saturated <cpu>"], "measures": {"cpu": 0.97}});
    for (model, ttft0) in [("model-a", 0.1), ("x<b>y", 0.2)] {
        for (scen, s) in [
            ("D(100,100)", "D100_100"),
            ("N(480,240)/(300,150)", "N480_240_300_150"),
        ] {
            for c in [1u32, 4] {
                let errors = if c == 4 && model == "model-a" { 2 } else { 0 };
                let validity = (c == 4 && scen.starts_with('D')).then(|| verdict.clone());
                let v = run(scen, c, ttft0 * c as f64, errors, validity);
                let name = format!("{s}_text-to-text_{model}_num_concurrency_{c}_time_10s.json");
                std::fs::write(dir.join(name), v.to_string()).unwrap();
            }
        }
    }
}

fn cell_str(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        Data::Float(f) => format!("{f}"),
        Data::Int(i) => format!("{i}"),
        other => format!("{other:?}"),
    }
}

#[test]
fn loads_runs_with_models_from_file_names() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let exp = Experiment::load(t.path()).unwrap();
    assert_eq!(exp.runs.len(), 8);
    assert_eq!(
        exp.models(),
        vec!["model-a".to_string(), "x<b>y".to_string()]
    );
    // genai-bench's five scenarios come first, in its order.
    assert_eq!(exp.runs[0].agg.scenario, "N(480,240)/(300,150)");
    assert!(exp.runs.iter().filter(|r| r.validity.is_some()).count() == 2);
    let e = Experiment::load(&t.path().join("nope")).unwrap_err();
    assert!(format!("{e:#}").contains("experiment folder"), "{e:#}");
}

#[test]
fn workbook_has_genai_bench_sheets_headers_and_values() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let exp = Experiment::load(t.path()).unwrap();
    let path = t.path().join("out.xlsx");
    excel::write_workbook(&exp, &path, "p90", Unit::Ms).unwrap();
    let mut wb: Xlsx<_> = open_workbook(&path).unwrap();
    assert_eq!(
        wb.sheet_names(),
        excel::SHEETS
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );

    let app = wb.worksheet_range("Appendix").unwrap();
    let headers: Vec<String> = app.rows().next().unwrap().iter().map(cell_str).collect();
    assert_eq!(
        headers,
        [
            "GPU Type",
            "Use Case",
            "Concurrency",
            "TTFT (ms)",
            "Output Inference Speed per Request (tokens/s)",
            "Output Throughput of Server (tokens/s)",
            "End-to-End Latency per Request (ms)",
            "Request Throughput (RPS)",
            "Total Throughput (Input + Output) of Server (tokens/s)",
            "Model"
        ]
    );
    // First row: model-a, Scenario 1, concurrency 1: TTFT p90 in ms.
    let row: Vec<&Data> = app.rows().nth(1).unwrap().iter().collect();
    assert_eq!(cell_str(row[0]), "8xH100");
    assert_eq!(cell_str(row[1]), "Scenario 1: Fusion N(480,240)/(300,150)");
    assert_eq!(row[2], &Data::Float(1.0));
    let want = exp.runs[0].agg.stats["ttft"].p90.unwrap() * 1000.0;
    match row[3] {
        Data::Float(f) => assert!((f - want).abs() < 1e-9, "{f} vs {want}"),
        other => panic!("TTFT cell is {other:?}"),
    }
    assert_eq!(cell_str(row[9]), "model-a");
    // Both models are listed, each with its own rows.
    let models: Vec<String> = app.rows().skip(1).map(|r| cell_str(&r[9])).collect();
    assert_eq!(models.iter().filter(|m| *m == "x<b>y").count(), 4);

    let sum = wb.worksheet_range("Summary").unwrap();
    let h: Vec<String> = sum.rows().next().unwrap().iter().map(cell_str).collect();
    assert_eq!(
        &h[..4],
        [
            "GPU Type",
            "Use Case",
            "Concurrency at target speed (>10 tokens/s)",
            "Total Throughput (tokens/min)"
        ]
    );
    assert_eq!(sum.rows().count(), 1 + 4, "one row per model × scenario");

    let agg = wb
        .worksheet_range("Aggregated Metrics for Each Run")
        .unwrap();
    let h: Vec<String> = agg.rows().next().unwrap().iter().map(cell_str).collect();
    assert_eq!(&h[..3], ["scenario", "num_concurrency", "run_duration"]);
    assert!(h.contains(&"ttft (ms)".to_string()), "{h:?}");
    let ind = wb.worksheet_range("Individual Request Metrics").unwrap();
    assert_eq!(ind.rows().count(), 1 + 8 * 10 + 2 * 2);
    // Written row by row: each run's first row carries its scenario, its
    // iteration value as a number, and its first request's values.
    let rows: Vec<Vec<Data>> = ind.rows().map(|r| r.to_vec()).collect();
    assert_eq!(cell_str(&rows[0][2]), "ttft (ms)");
    let mut at = 1;
    for run in &exp.runs {
        assert_eq!(cell_str(&rows[at][0]), run.agg.scenario, "row {at}");
        assert_eq!(rows[at][1], Data::Float(run.iteration_value()), "row {at}");
        if let Some(ttft) = run.requests[0].get("ttft").and_then(|v| v.as_f64()) {
            match rows[at][2] {
                Data::Float(f) => assert!((f - ttft * 1000.0).abs() < 1e-9, "row {at}: {f}"),
                ref other => panic!("row {at}: ttft cell {other:?}"),
            }
        }
        // The rest of the run's rows leave the merged cells empty.
        if run.requests.len() > 1 {
            assert_eq!(rows[at + 1][0], Data::Empty, "row {}", at + 1);
        }
        assert_eq!(cell_str(&rows[at][2 + REQUEST_FIELDS.len()]), run.model);
        at += run.requests.len();
    }
    let md = wb.worksheet_range("Experiment Metadata").unwrap();
    assert_eq!(cell_str(&md.rows().next().unwrap()[0]), "cmd");

    let e = excel::write_workbook(&exp, &path, "p42", Unit::S).unwrap_err();
    assert!(format!("{e}").contains("--metric-percentile"), "{e}");
}

#[test]
fn plots_png_and_svg_keep_models_apart() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let exps = vec![Experiment::load(t.path()).unwrap()];
    let out = t.path().join("plots");
    let opts = PlotOptions {
        group_key: "traffic_scenario".into(),
        config: PlotConfig::preset("2x4_default").unwrap(),
        unit: Unit::S,
        formats: Formats::both(),
    };
    let files = plot::write_plots(&exps, &out, &opts).unwrap();
    assert_eq!(files.len(), 2 * 9);
    let png = out.join("traffic_scenario_combined_plots_2x4.png");
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let reader = dec.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (3200, 1200));
    let svg = std::fs::read_to_string(out.join("traffic_scenario_combined_plots_2x4.svg")).unwrap();
    for title in [
        "Output Inference Speed per Request vs Output Throughput of Server",
        "TTFT vs Output Throughput of Server",
        "Error Rates by HTTP Status vs Concurrency",
        "P99 E2E Latency per Request vs RPS",
        "503 Service Unavailable",
        "Grouped by Traffic Scenario",
    ] {
        assert!(svg.contains(title), "{title} missing");
    }
    // Four series: 2 models × 2 scenarios, labelled apart; names escaped.
    assert!(svg.contains("Scenario: D(100,100) · model-a"));
    assert!(svg.contains("Scenario: D(100,100) · x&lt;b&gt;y"));
    assert!(!svg.contains("x<b>y"));
    assert!(
        out.join("traffic_scenario_TTFT vs Output Throughput of Server.png")
            .is_file()
    );
}

#[test]
fn custom_plot_config_is_honoured() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let cfg_path = t.path().join("cfg.json");
    std::fs::write(
        &cfg_path,
        r#"{"layout": {"rows": 1, "cols": 2, "figsize": [12, 5]},
            "plots": [
              {"title": "My TTFT", "x_field": "num_concurrency", "y_fields": [
                 {"field": "stats.ttft.mean", "label": "Mean", "color": "blue"},
                 {"field": "stats.ttft.p99", "label": "P99", "color": "red", "linestyle": "--"}],
               "plot_type": "line", "position": [0, 0], "y_scale": "log"},
              {"title": "My RPS", "x_field": "num_concurrency", "y_field": "requests_per_second",
               "plot_type": "scatter", "position": [0, 1]}]}"#,
    )
    .unwrap();
    let exps = vec![Experiment::load(t.path()).unwrap()];
    let opts = PlotOptions {
        group_key: "model".into(),
        config: PlotConfig::from_file(&cfg_path).unwrap(),
        unit: Unit::Ms,
        formats: Formats {
            png: true,
            svg: true,
        },
    };
    plot::write_plots(&exps, t.path(), &opts).unwrap();
    // group_key model: a figure per scenario, a line per model.
    let svg = std::fs::read_to_string(
        t.path()
            .join("D100_100_group_by_model_combined_plots_1x2.svg"),
    )
    .unwrap();
    assert!(svg.contains("My TTFT") && svg.contains("My RPS"));
    assert!(svg.contains("model: model-a · P99"), "multi-line labels");
    assert!(svg.contains("Traffic Scenario: D(100,100)"));
    let png = t
        .path()
        .join("N480_240_300_150_group_by_model_combined_plots_1x2.png");
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    assert_eq!(dec.read_info().unwrap().info().width, 1200);
}

#[test]
fn html_report_is_self_contained_and_escaped() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let exp = Experiment::load(t.path()).unwrap();
    let html = html::render(&exp).unwrap();
    assert!(!html.contains("x<b>y"), "model name not escaped");
    assert!(html.contains("x&lt;b&gt;y"));
    assert!(html.contains("client saturated &lt;cpu&gt;"));
    assert!(html.contains("not valid") && html.contains("not assessed"));
    assert!(html.contains("TTFT distribution (CDF)"));
    assert!(!html.contains("http://") || !html.contains("src=\"http"));
    assert!(!html.contains("<script src") && !html.contains("<link"));
    let plots = html.matches("<figure class=\"plot\"").count();
    assert!(html.contains(&format!("data-plots=\"{plots}\"")));
    assert_eq!(plots, 8 + 3);
}

#[test]
fn filter_criteria_selects_experiments_and_scenarios() {
    let root = tempfile::tempdir().unwrap();
    for (name, gpu) in [("a", "H100"), ("b", "A100")] {
        let d = root.path().join(name);
        std::fs::create_dir(&d).unwrap();
        fixture(&d);
        let p = d.join("experiment_metadata.json");
        let mut m: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        m["server_gpu_type"] = json!(gpu);
        std::fs::write(&p, m.to_string()).unwrap();
    }
    let all = || Experiment::load_many(root.path()).unwrap();
    assert_eq!(all().len(), 2);

    // A metadata value: one experiment left, all its runs.
    let f = Filter::parse(r#"{"server_gpu_type": "A100"}"#).unwrap();
    let kept = f.select(all()).unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].folder.ends_with("b"));
    assert_eq!(kept[0].runs.len(), 8);

    // A scenario list keeps those scenarios' runs (and metadata) only;
    // numbers match by value.
    let f = Filter::parse(
        r#"{"traffic_scenario": ["D(100,100)", "D(1,1)"], "max_requests_per_run": 10.0}"#,
    )
    .unwrap();
    let kept = f.select(all()).unwrap();
    assert_eq!(kept.len(), 2);
    for e in &kept {
        assert_eq!(e.runs.len(), 4);
        assert!(e.runs.iter().all(|r| r.agg.scenario == "D(100,100)"));
        assert_eq!(e.metadata["traffic_scenario"], json!(["D(100,100)"]));
    }
    let f = Filter::parse(r#"{"traffic_scenario": "N(480,240)/(300,150)"}"#).unwrap();
    assert!(
        f.select(all()).unwrap()[0]
            .runs
            .iter()
            .all(|r| r.agg.scenario.starts_with('N'))
    );

    // Nothing matches: the error says why, per experiment.
    let e = Filter::parse(r#"{"server_gpu_type": "B200"}"#)
        .unwrap()
        .select(all())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no experiment matches"), "{e}");
    assert!(
        e.contains("its server_gpu_type is \"H100\", not \"B200\""),
        "{e}"
    );
    let e = Filter::parse(r#"{"gpu": "B200"}"#)
        .unwrap()
        .select(all())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no metadata field \"gpu\""), "{e}");

    // Not an object, not JSON.
    for bad in ["[1]", "{'model': 'x'}"] {
        let e = Filter::parse(bad).unwrap_err().to_string();
        assert!(e.contains("--filter-criteria"), "{e}");
    }
}

#[test]
fn list_fields_shows_what_a_plot_config_can_use() {
    let t = tempfile::tempdir().unwrap();
    fixture(t.path());
    let exp = Experiment::load(t.path()).unwrap();
    let (direct, stats) = list_fields(&exp.runs[0]);
    let find = |v: &[Field], k: &str| -> (String, &'static str) {
        v.iter()
            .find(|f| f.0 == k)
            .map(|f| (f.1.clone(), f.2))
            .unwrap_or_else(|| panic!("{k} missing from {v:?}"))
    };
    assert_eq!(find(&direct, "num_requests").1, "int");
    assert_eq!(find(&direct, "requests_per_second").1, "float");
    assert_eq!(
        find(&direct, "scenario"),
        (exp.runs[0].agg.scenario.clone(), "str")
    );
    // Null fields are left out, as genai-bench does.
    assert!(!direct.iter().any(|f| f.0 == "total_arrivals"));
    assert_eq!(find(&stats, "stats.ttft.p99").1, "float");
    assert!(stats.iter().all(|f| f.0.starts_with("stats.")));
    // Every listed stat resolves for plotting.
    for (path, _, _) in &stats {
        assert!(
            field_value(&exp, &exp.runs[0], path, Unit::S).is_some(),
            "{path}"
        );
    }
}
