//! The `excel`, `plot` and `report` commands (genai-bench's flags, plus
//! the experiment folder as a positional argument).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::plot::{Formats, PlotConfig, PlotOptions};
use super::{Experiment, Filter, Unit, excel, html, plot};

fn folder(
    positional: Option<PathBuf>,
    flag: Option<PathBuf>,
    flag_name: &str,
) -> anyhow::Result<PathBuf> {
    match (positional, flag) {
        (Some(a), Some(b)) if a != b => bail!(
            "two experiment folders given ({} and {flag_name} {}): give one",
            a.display(),
            b.display()
        ),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => bail!(
            "no experiment folder: give FOLDER or {flag_name} (a folder written by `genai-bench benchmark`)"
        ),
    }
}

fn unit_or_source(flag: Option<&str>, exp: &Experiment) -> anyhow::Result<Unit> {
    flag.map(Unit::parse)
        .transpose()
        .map(|u| u.unwrap_or(exp.source_unit))
}

/// Arguments of `genai-bench excel`.
#[derive(Debug, Args)]
pub struct ExcelArgs {
    /// The experiment folder (same as --experiment-folder).
    pub folder: Option<PathBuf>,
    /// Path to the folder of one experiment.
    #[arg(long)]
    pub experiment_folder: Option<PathBuf>,
    /// Name of the Excel file, without .xlsx; written into the experiment
    /// folder (default: `<folder>_summary`).
    #[arg(long)]
    pub excel_name: Option<String>,
    /// The statistic the Summary and Appendix sheets show.
    #[arg(long, alias = "percentile", default_value = "mean",
          value_parser = ["mean", "p25", "p50", "p75", "p90", "p95", "p99"])]
    pub metric_percentile: String,
    /// Time unit of latencies in the workbook (default: the experiment's).
    #[arg(long, value_parser = ["s", "ms"], ignore_case = true)]
    pub metrics_time_unit: Option<String>,
}

/// Arguments of `genai-bench plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The experiment folder, or a folder of experiment folders.
    pub folder: Option<PathBuf>,
    /// Same as FOLDER (genai-bench's flag).
    #[arg(long, alias = "experiment-folder")]
    pub experiments_folder: Option<PathBuf>,
    /// Group series by `traffic_scenario` (one figure), `none` (a figure per
    /// scenario), or a field (`model`, `task`, `server_version`, any
    /// experiment_metadata.json field: a figure per scenario). Runs of
    /// different models, scenarios or tasks never share a line.
    #[arg(long, default_value = "traffic_scenario")]
    pub group_key: String,
    /// A genai-bench plot-config JSON file (layout and plots).
    #[arg(long)]
    pub plot_config: Option<PathBuf>,
    /// A built-in preset; overrides --plot-config.
    #[arg(long, value_parser = ["2x4_default", "2x4_tts", "simple_2x2", "multi_line_latency", "single_scenario_analysis"])]
    pub preset: Option<String>,
    /// Time unit of latencies in the plots (default: the experiment's).
    #[arg(long, value_parser = ["s", "ms"], ignore_case = true)]
    pub metrics_time_unit: Option<String>,
    /// Which images to write.
    #[arg(long, default_value = "both", value_parser = ["png", "svg", "both"])]
    pub format: String,
    /// Where to write (default: the experiments folder).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Only validate the plot config (and that its fields hold values in
    /// the experiments' data), draw nothing.
    #[arg(long)]
    pub validate_only: bool,
    /// Plot only experiments whose experiment_metadata.json has these
    /// values, a JSON object: '{"model": "Qwen/Qwen3-8B"}';
    /// `traffic_scenario` may be a list and keeps only those scenarios.
    #[arg(long, value_name = "JSON")]
    pub filter_criteria: Option<String>,
    /// Print the fields a plot config can use, with values from the data,
    /// and exit.
    #[arg(long)]
    pub list_fields: bool,
}

/// Arguments of `genai-bench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The experiment folder (same as --experiment-folder).
    pub folder: Option<PathBuf>,
    /// Path to the folder of one experiment.
    #[arg(long)]
    pub experiment_folder: Option<PathBuf>,
    /// Output file (default: `<folder>/report.html`).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `genai-bench excel`.
pub fn excel(args: ExcelArgs) -> anyhow::Result<ExitCode> {
    let dir = folder(args.folder, args.experiment_folder, "--experiment-folder")?;
    let exp = Experiment::load(&dir)?;
    let unit = unit_or_source(args.metrics_time_unit.as_deref(), &exp)?;
    let name = args
        .excel_name
        .unwrap_or_else(|| format!("{}_summary", exp.name()));
    let name = name.strip_suffix(".xlsx").unwrap_or(&name).to_string();
    if name.is_empty() || name.contains('/') || name.contains('\\') {
        bail!(
            "--excel-name {name:?} must be a file name (no folders): the workbook goes into the experiment folder"
        );
    }
    let path = dir.join(format!("{name}.xlsx"));
    excel::write_workbook(&exp, &path, &args.metric_percentile, unit)?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `genai-bench plot`.
pub fn plot(args: PlotArgs) -> anyhow::Result<ExitCode> {
    let dir = folder(args.folder, args.experiments_folder, "--experiments-folder")?;
    let filter = match &args.filter_criteria {
        Some(s) => Filter::parse(s)?,
        None => Filter::default(),
    };
    if args.list_fields {
        let exps = filter.select(Experiment::load_many(&dir)?)?;
        let Some(run) = exps.iter().find_map(|e| e.runs.first()) else {
            bail!("{} has no run files: no fields to list", dir.display());
        };
        let (direct, stats) = super::list_fields(run);
        println!(
            "Available fields from experiment data in {}:",
            dir.display()
        );
        println!("{}", "=".repeat(70));
        println!(
            "Found {} available fields with actual data (from {}):\n",
            direct.len() + stats.len(),
            run.file_name
        );
        for (title, fields) in [("Direct metrics:", direct), ("Statistical metrics:", stats)] {
            if !fields.is_empty() {
                println!("{title}");
                for (path, value, ty) in fields {
                    println!("  {path:<35} = {value} ({ty})");
                }
                println!();
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = match (&args.preset, &args.plot_config) {
        (Some(p), _) => PlotConfig::preset(p)?,
        (None, Some(f)) => PlotConfig::from_file(f)?,
        (None, None) => PlotConfig::preset("2x4_default")?,
    };
    let exps = filter.select(Experiment::load_many(&dir)?)?;
    let first_run = exps.iter().find_map(|e| e.runs.first().map(|r| (e, r)));
    if args.validate_only {
        // genai-bench checks the fields against the first run's data.
        if let Some((exp, run)) = first_run {
            let missing: Vec<String> = config
                .plots
                .iter()
                .flat_map(|p| {
                    std::iter::once(p.x_field.clone())
                        .chain(p.y_specs().into_iter().map(|y| y.field))
                        .filter(|f| super::field_value(exp, run, f, exp.source_unit).is_none())
                        .map(|f| format!("plot {:?}: field {f:?}", p.title))
                        .collect::<Vec<_>>()
                })
                .collect();
            if !missing.is_empty() {
                bail!(
                    "the plot config names fields with no value in {} (see --list-fields): {}",
                    run.file_name,
                    missing.join("; ")
                );
            }
        }
        println!(
            "plot config is valid: {} plot(s) on a {}x{} grid",
            config.plots.len(),
            config.layout.rows,
            config.layout.cols
        );
        return Ok(ExitCode::SUCCESS);
    }
    let key = args.group_key.as_str();
    if !matches!(key, "traffic_scenario" | "none" | "model" | "task")
        && !exps.iter().any(|e| e.metadata.get(key).is_some())
    {
        bail!(
            "--group-key {key:?} is not a field of experiment_metadata.json: use traffic_scenario, \
             none, model, task or a metadata field such as server_version or api_backend"
        );
    }
    let unit = unit_or_source(args.metrics_time_unit.as_deref(), &exps[0])?;
    let mut config = config;
    if unit == Unit::Ms {
        for p in &mut config.plots {
            p.y_label = p.y_label.take().map(|l| l.replace("(s)", "(ms)"));
            p.x_label = p.x_label.take().map(|l| l.replace("(s)", "(ms)"));
        }
    }
    let formats = match args.format.as_str() {
        "png" => Formats {
            png: true,
            svg: false,
        },
        "svg" => Formats {
            png: false,
            svg: true,
        },
        _ => Formats::both(),
    };
    let out = args.output_dir.unwrap_or_else(|| dir.clone());
    let written = plot::write_plots(
        &exps,
        &out,
        &PlotOptions {
            group_key: args.group_key,
            config,
            unit,
            formats,
        },
    )?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `genai-bench report`.
pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let dir = folder(args.folder, args.experiment_folder, "--experiment-folder")?;
    let exp = Experiment::load(&dir)?;
    if exp.runs.is_empty() {
        bail!(
            "{} has no run files (<scenario>_<task>_<model>_num_concurrency_<N>_time_<secs>s.json): nothing to report",
            dir.display()
        );
    }
    let path = args.output.unwrap_or_else(|| dir.join(html::REPORT_FILE));
    html::write_report(&exp, &path)?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
