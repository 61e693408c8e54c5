//! Reports of a real experiment (the binary against the simulator): the
//! HTML report renders in headless Chromium with no error and a non-blank
//! screenshot, and the Python genai-bench 0.0.5 reads our folder with its
//! own `excel` and `plot` commands.
//!
//! Needs Debian's `chromium` (`apt-get install -y chromium`) and a venv
//! with genai-bench 0.0.5 in `target/py-genai-bench` (both installed by
//! `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use calamine::{Data, Reader, Xlsx, open_workbook};
use genai_bench::simulator::{self, FaultKind, FaultRate, LatencyDist, SimConfig};
use serde_json::Value;

use crate::benchmark::{Bench, KEY};

/// A small experiment: two scenarios × concurrency 1 and 4, ~5% 503s.
async fn experiment(b: &Bench) -> PathBuf {
    let sim = simulator::start(SimConfig {
        api_key: Some(KEY.into()),
        seed: Some(11),
        ttft_base_ms: 5.0,
        itl: LatencyDist::constant(1.0),
        fault_rates: vec![FaultRate {
            kind: FaultKind::Unavailable,
            probability: 0.05,
        }],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/environments/production/predict", sim.base_url());
    let mut c = b.command_url(
        &url,
        &[
            "--traffic-scenario",
            "D(64,16)",
            "--traffic-scenario",
            "D(32,24)",
            "--num-concurrency",
            "1",
            "--num-concurrency",
            "4",
            "--max-requests-per-run",
            "24",
            // Fractional minutes: genai-bench's metadata model still reads
            // `max_time_per_run_s` (an integer).
            "--max-time-per-run",
            "0.75",
        ],
    );
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    crate::common::assert_success(&out);
    b.folder()
}

fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser"] {
        if let Ok(o) = Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            && o.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        }
    }
    panic!(
        "chromium is not installed: the HTML report test loads the report in headless \
         Chromium; install it with `apt-get install -y chromium` (.ci/run does)"
    );
}

fn headless(profile: &Path) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.canonicalize().unwrap().display())
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Decode a PNG: (width, height, RGBA pixels).
fn decode_png(p: &Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        other => panic!("{}: unexpected colour type {other:?}", p.display()),
    };
    (info.width, info.height, rgba)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_renders_in_chromium_without_errors() {
    let _machine = crate::common::shared_machine().await;
    let b = Bench::new();
    let folder = experiment(&b).await;
    // Written at the end of the benchmark, with the workbook and plots.
    for f in [
        "report.html",
        "exp_summary.xlsx",
        "traffic_scenario_combined_plots_2x4.png",
        "traffic_scenario_combined_plots_2x4.svg",
    ] {
        assert!(folder.join(f).is_file(), "{f} missing after the benchmark");
    }
    std::fs::remove_file(folder.join("report.html")).unwrap();
    let out = crate::common::genai_bench()
        .arg("report")
        .arg(&folder)
        .output()
        .unwrap();
    crate::common::assert_success(&out);
    let report = folder.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    // Self-contained: nothing fetched (SVG's xmlns is a name, not a fetch).
    for bad in ["src=", "href=", "url(", "<link", "@import"] {
        assert!(!html.contains(bad), "the report references {bad}...");
    }

    let profile = tempfile::tempdir().unwrap();
    let dom = tokio::task::spawn_blocking({
        let report = report.clone();
        let profile = profile.path().to_path_buf();
        move || {
            headless(&profile)
                .arg("--dump-dom")
                .arg(file_url(&report))
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    ok(&dom, "chromium --dump-dom");
    let dom = String::from_utf8_lossy(&dom.stdout);
    let errors = dom
        .split("<pre id=\"render-errors\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .expect("the report has its error box");
    assert_eq!(errors, "", "the page reported errors");
    assert!(
        dom.contains("data-rendered=\"ok\""),
        "the page's self-check did not pass: {}",
        &dom[..dom.len().min(600)]
    );
    // Every run carries its validity verdict, and the report shows it.
    assert!(dom.contains("D(64,16)"), "the scenario is in the report");
    assert!(
        !dom.contains("not assessed")
            && (dom.contains("class=\"badge ok\"") || dom.contains("class=\"badge bad\"")),
        "each run's verdict is shown"
    );

    // Screenshot: the right size and not blank.
    let (w, h) = (1280u32, 2200u32);
    let shot = profile.path().join("report.png");
    let out = tokio::task::spawn_blocking({
        let report = report.clone();
        let profile = profile.path().to_path_buf();
        let shot = shot.clone();
        move || {
            headless(&profile)
                .arg(format!("--window-size={w},{h}"))
                .arg(format!("--screenshot={}", shot.display()))
                .arg(file_url(&report))
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    ok(&out, "chromium --screenshot");
    let (sw, sh, px) = decode_png(&shot);
    assert_eq!((sw, sh), (w, h));
    let keep = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::copy(&shot, keep.join("report-screenshot.png")).unwrap();
    // The plots (below the tables) are drawn: many colours, lines and text.
    let mut colours = std::collections::HashSet::new();
    let mut non_white = 0usize;
    let lower = &px[(sw * sh / 3 * 4) as usize..];
    for p in lower.chunks(4) {
        colours.insert((p[0] >> 3, p[1] >> 3, p[2] >> 3));
        if p[0] < 235 || p[1] < 235 || p[2] < 235 {
            non_white += 1;
        }
    }
    let frac = non_white as f64 / (lower.len() / 4) as f64;
    assert!(
        colours.len() > 40,
        "screenshot looks blank: {} colours",
        colours.len()
    );
    assert!(frac > 0.03, "screenshot looks blank: {:.3} non-white", frac);
    // The tool's plot palette (tab10 blue and orange lines) is on screen.
    let has = |r: u8, g: u8, b: u8| {
        lower
            .chunks(4)
            .any(|p| p[0].abs_diff(r) < 12 && p[1].abs_diff(g) < 12 && p[2].abs_diff(b) < 12)
    };
    assert!(
        has(31, 119, 180) && has(255, 127, 14),
        "plot lines not visible"
    );
}

fn python_genai_bench() -> PathBuf {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/py-genai-bench/bin/genai-bench");
    assert!(
        p.is_file(),
        "{} is missing: the compatibility test runs the Python genai-bench 0.0.5; create it with \
         `python3 -m venv target/py-genai-bench && target/py-genai-bench/bin/pip install genai-bench==0.0.5` \
         (.ci/run does)",
        p.display()
    );
    p
}

fn num(d: &Data) -> f64 {
    match d {
        Data::Float(f) => *f,
        Data::Int(i) => *i as f64,
        other => panic!("not a number: {other:?}"),
    }
}

/// Validates an experiment folder with genai-bench 0.0.5's own models:
/// `ExperimentMetadata`, `AggregatedMetrics` and `RequestLevelMetrics` (the
/// last refuses a successful record with any `null` field).
pub const PYDANTIC_CHECK: &str = r#"
import glob, json, os, sys
from genai_bench.protocol import ExperimentMetadata
from genai_bench.metrics.metrics import AggregatedMetrics, RequestLevelMetrics
d = sys.argv[1]
with open(os.path.join(d, "experiment_metadata.json")) as f:
    ExperimentMetadata.model_validate(json.load(f))
n = 0
for path in sorted(glob.glob(os.path.join(d, "*_time_*s.json"))):
    with open(path) as f:
        run = json.load(f)
    AggregatedMetrics.model_validate(run["aggregated_metrics"])
    for r in run["individual_request_metrics"]:
        RequestLevelMetrics.model_validate(r)
        n += 1
print("validated", n)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_genai_bench_reads_our_experiment_folder() {
    let py = python_genai_bench();
    let _machine = crate::common::shared_machine().await;
    let b = Bench::new();
    let ours = experiment(&b).await;
    // Only what `benchmark` wrote as results: metadata and run files.
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("exp");
    std::fs::create_dir(&folder).unwrap();
    let mut runs: Vec<(String, Value)> = Vec::new();
    for e in std::fs::read_dir(&ours).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".json") {
            std::fs::copy(&p, folder.join(&name)).unwrap();
            if name != "experiment_metadata.json" {
                runs.push((
                    name,
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
                ));
            }
        }
    }
    assert_eq!(runs.len(), 4);

    // genai-bench's own pydantic models accept every file as written.
    let python = std::path::Path::new(&py).with_file_name("python");
    let out = Command::new(&python)
        .arg("-c")
        .arg(PYDANTIC_CHECK)
        .arg(&folder)
        .output()
        .unwrap();
    ok(&out, "genai-bench's pydantic models");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("validated"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let run_py = |args: &[&str]| {
        let mut c = Command::new(&py);
        c.args(args)
            .current_dir(work.path())
            .env("ENABLE_UI", "false");
        c.output().unwrap()
    };
    let f = folder.to_str().unwrap();
    let out = run_py(&[
        "excel",
        "--experiment-folder",
        f,
        "--excel-name",
        "py",
        "--metric-percentile",
        "p90",
    ]);
    ok(&out, "python genai-bench excel");
    let xlsx = folder.join("py.xlsx");
    assert!(
        xlsx.is_file(),
        "genai-bench excel wrote no workbook: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut wb: Xlsx<_> = open_workbook(&xlsx).unwrap();
    let app = wb.worksheet_range("Appendix").unwrap();
    let rows: Vec<Vec<Data>> = app.rows().map(|r| r.to_vec()).collect();
    assert_eq!(rows[0][3], Data::String("TTFT (s)".into()));
    assert_eq!(rows.len(), 1 + 4, "one Appendix row per run");
    // Every run's p90 TTFT and RPS, as the Python tool read them.
    for (name, run) in &runs {
        let agg = &run["aggregated_metrics"];
        let conc = agg["num_concurrency"].as_f64().unwrap();
        let ttft = agg["stats"]["ttft"]["p90"].as_f64().unwrap();
        let rps = agg["requests_per_second"].as_f64().unwrap();
        let found = rows[1..].iter().any(|r| {
            num(&r[2]) == conc
                && (num(&r[3]) - ttft).abs() < 1e-12
                && (num(&r[7]) - rps).abs() < 1e-9
        });
        assert!(
            found,
            "{name}: TTFT p90 {ttft} / RPS {rps} not in the Python workbook: {rows:?}"
        );
    }
    let ind = wb.worksheet_range("Individual Request Metrics").unwrap();
    let total: usize = runs
        .iter()
        .map(|(_, r)| r["individual_request_metrics"].as_array().unwrap().len())
        .sum();
    assert_eq!(ind.rows().count(), 1 + total);

    let out = run_py(&[
        "plot",
        "--experiments-folder",
        f,
        "--group-key",
        "traffic_scenario",
    ]);
    ok(&out, "python genai-bench plot");
    let log =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !log.contains("Falling back"),
        "the flexible plotter failed on our data:\n{log}"
    );
    assert!(
        !log.contains("Error plotting"),
        "a panel failed on our data:\n{log}"
    );
    let png = folder.join("traffic_scenario_combined_plots_2x4.png");
    assert!(png.is_file(), "genai-bench plot wrote no grid:\n{log}");
    let (w, h, _) = decode_png(&png);
    assert_eq!((w, h), (3200, 1200));
    assert!(
        folder
            .join("traffic_scenario_TTFT vs Output Throughput of Server.png")
            .is_file()
    );

    // `plot --list-fields`: every field genai-bench lists from our data,
    // ours lists too. Both read the first run of the same filtered folder.
    // (Types are not compared: Python names its schema's, ours the JSON's.)
    let fields = |stdout: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(stdout)
            .lines()
            .filter_map(|l| {
                let (path, _) = l.strip_prefix("  ")?.split_once(" = ")?;
                Some(path.trim().to_string())
            })
            .collect()
    };
    let filter = r#"{"traffic_scenario": ["D(32,24)"]}"#;
    let out = run_py(&[
        "plot",
        "--experiments-folder",
        f,
        "--group-key",
        "traffic_scenario",
        "--filter-criteria",
        filter,
        "--list-fields",
    ]);
    ok(&out, "python genai-bench plot --list-fields");
    let theirs = fields(&out.stdout);
    assert!(
        theirs.len() > 30,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = crate::common::genai_bench()
        .args(["plot", f, "--filter-criteria", filter, "--list-fields"])
        .output()
        .unwrap();
    ok(&out, "genai-bench plot --list-fields");
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    let mine = fields(&out.stdout);
    for path in &theirs {
        assert!(mine.contains(path), "{path} missing from ours:\n{listed}");
    }
    assert!(listed.contains("D(32,24)"), "{listed}");
    assert!(!listed.contains("D(64,16)"), "{listed}");
}

#[test]
fn report_commands_name_what_is_wrong() {
    let t = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = crate::common::genai_bench().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let empty = t.path().to_str().unwrap();
    for cmd in ["excel", "report"] {
        let e = run(&[cmd, empty]);
        assert!(e.contains("experiment_metadata.json"), "{cmd}: {e}");
    }
    let e = run(&["plot", empty]);
    assert!(e.contains("experiment_metadata.json"), "{e}");
    let cfg = t.path().join("cfg.json");
    std::fs::write(&cfg, r#"{"plots": [{"title": "x", "x_field": "num_concurrency", "y_field": "stats.ttft.p42", "position": [0, 0]}]}"#).unwrap();
    let e = run(&["plot", empty, "--plot-config", cfg.to_str().unwrap()]);
    assert!(e.contains("unknown field \"stats.ttft.p42\""), "{e}");
    let e = run(&["excel"]);
    assert!(e.contains("no experiment folder"), "{e}");
}
