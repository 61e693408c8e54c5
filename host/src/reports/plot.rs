//! genai-bench's plots: a grid of panels described by its plot-config JSON
//! (`{"layout": {rows, cols, figsize}, "plots": [{title, x_field, y_field |
//! y_fields, x_label, y_label, plot_type, position, y_scale}]}`), the
//! built-in presets (`2x4_default` ...), one series per group, written as
//! PNG and SVG with genai-bench's file names. Text in PNGs uses an embedded
//! DejaVu Sans, so no system font lookup is needed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context as _, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use serde::Deserialize;

use super::{Experiment, Run, STAT_NAMES, Unit, field_value, fmt_num};

/// genai-bench's `sanitize_string` for plot file names: `/` and `,` become
/// `_`, parentheses go (spaces stay, as in its file names).
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '(' | ')'))
        .map(|c| if matches!(c, '/' | ',') { '_' } else { c })
        .collect()
}

/// One y series of a multi-line panel.
#[derive(Debug, Clone, Deserialize)]
pub struct YFieldSpec {
    /// Field path.
    pub field: String,
    /// Legend label.
    pub label: Option<String>,
    /// Colour name (matplotlib's basic names or `#rrggbb`).
    pub color: Option<String>,
    /// `-`, `--`, `-.` or `:` (drawn solid or dashed).
    pub linestyle: Option<String>,
}

/// One panel.
#[derive(Debug, Clone, Deserialize)]
pub struct PlotSpec {
    /// Panel title.
    pub title: String,
    /// Field path of x.
    pub x_field: String,
    /// Field path of y (single line).
    pub y_field: Option<String>,
    /// Several y fields (multi-line).
    pub y_fields: Option<Vec<YFieldSpec>>,
    /// Axis labels (default: the field paths).
    pub x_label: Option<String>,
    pub y_label: Option<String>,
    /// `line`, `scatter` or `bar`.
    #[serde(default = "default_plot_type")]
    pub plot_type: String,
    /// `[row, col]` in the grid.
    pub position: (u32, u32),
    /// `linear` or `log`.
    pub y_scale: Option<String>,
}

fn default_plot_type() -> String {
    "line".into()
}

/// Grid layout.
#[derive(Debug, Clone, Deserialize)]
pub struct PlotLayout {
    #[serde(default = "two")]
    pub rows: u32,
    #[serde(default = "four")]
    pub cols: u32,
    /// Figure size in inches (100 px each), as matplotlib's figsize.
    pub figsize: Option<(f64, f64)>,
}

fn two() -> u32 {
    2
}
fn four() -> u32 {
    4
}

impl Default for PlotLayout {
    fn default() -> Self {
        PlotLayout {
            rows: 2,
            cols: 4,
            figsize: None,
        }
    }
}

/// genai-bench's plot configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct PlotConfig {
    #[serde(default)]
    pub layout: PlotLayout,
    pub plots: Vec<PlotSpec>,
}

/// genai-bench 0.0.5's presets, verbatim.
const PRESETS_JSON: &str = include_str!("plot_presets.json");

/// Names of the built-in presets.
pub fn preset_names() -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(PRESETS_JSON).expect("valid presets");
    v.as_object().unwrap().keys().cloned().collect()
}

/// Known aggregated fields, for validating a config's field paths.
const AGG_FIELDS: &[&str] = &[
    "num_concurrency",
    "batch_size",
    "run_duration",
    "mean_output_throughput_tokens_per_s",
    "mean_input_throughput_tokens_per_s",
    "mean_total_tokens_throughput_tokens_per_s",
    "mean_total_chars_per_hour",
    "requests_per_second",
    "requests_per_minute",
    "error_rate",
    "num_error_requests",
    "num_completed_requests",
    "num_requests",
    "total_arrivals",
    "arrival_requests_per_second",
];
const STAT_METRICS: &[&str] = &[
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
    "inter_chunk_latency",
];

fn known_field(path: &str) -> bool {
    if let Some(rest) = path.strip_prefix("stats.") {
        let mut it = rest.split('.');
        let (m, s, extra) = (it.next(), it.next(), it.next());
        return extra.is_none()
            && m.is_some_and(|m| STAT_METRICS.contains(&m))
            && s.is_some_and(|s| STAT_NAMES.contains(&s));
    }
    AGG_FIELDS.contains(&path)
}

impl PlotConfig {
    /// A built-in preset (`2x4_default`, `simple_2x2`, ...).
    pub fn preset(name: &str) -> anyhow::Result<PlotConfig> {
        let v: serde_json::Value = serde_json::from_str(PRESETS_JSON)?;
        let p = v.get(name).ok_or_else(|| {
            anyhow!(
                "unknown --preset {name:?}: use one of {}",
                preset_names().join(", ")
            )
        })?;
        let c: PlotConfig = serde_json::from_value(p.clone())?;
        c.validate()?;
        Ok(c)
    }

    /// Read and validate a plot-config JSON file.
    pub fn from_file(path: &Path) -> anyhow::Result<PlotConfig> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read --plot-config {}", path.display()))?;
        let c: PlotConfig = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "--plot-config {} is not a genai-bench plot config \
                 ({{\"layout\": {{\"rows\", \"cols\", \"figsize\"}}, \"plots\": [{{\"title\", \"x_field\", \
                 \"y_field\" | \"y_fields\", \"position\", ...}}]}})",
                path.display()
            )
        })?;
        c.validate()
            .with_context(|| format!("in --plot-config {}", path.display()))?;
        Ok(c)
    }

    /// genai-bench's checks: grid bounds, unique positions, one of
    /// y_field/y_fields, plot types and scales; plus known field paths.
    pub fn validate(&self) -> anyhow::Result<()> {
        let l = &self.layout;
        if !(1..=5).contains(&l.rows) || !(1..=6).contains(&l.cols) {
            bail!(
                "layout {}x{} is out of range: rows must be 1-5 and cols 1-6",
                l.rows,
                l.cols
            );
        }
        if self.plots.is_empty() {
            bail!("\"plots\" is empty: give at least one plot");
        }
        let mut seen = Vec::new();
        for p in &self.plots {
            let (r, c) = p.position;
            if r >= l.rows || c >= l.cols {
                bail!(
                    "plot {:?}: position ({r}, {c}) exceeds layout bounds ({}, {})",
                    p.title,
                    l.rows - 1,
                    l.cols - 1
                );
            }
            if seen.contains(&p.position) {
                bail!("plot {:?}: duplicate plot position ({r}, {c})", p.title);
            }
            seen.push(p.position);
            match (&p.y_field, &p.y_fields) {
                (Some(_), Some(_)) => bail!(
                    "plot {:?}: cannot specify both y_field and y_fields; use one or the other",
                    p.title
                ),
                (None, None) => bail!(
                    "plot {:?}: must specify either y_field or y_fields with at least one field",
                    p.title
                ),
                (None, Some(v)) if v.is_empty() => bail!(
                    "plot {:?}: must specify either y_field or y_fields with at least one field",
                    p.title
                ),
                _ => {}
            }
            if !matches!(p.plot_type.as_str(), "line" | "scatter" | "bar") {
                bail!(
                    "plot {:?}: plot_type must be one of line, scatter, bar, got {:?}",
                    p.title,
                    p.plot_type
                );
            }
            if let Some(s) = &p.y_scale
                && !matches!(s.as_str(), "linear" | "log")
            {
                bail!(
                    "plot {:?}: y_scale must be 'linear' or 'log', got {s:?}",
                    p.title
                );
            }
            for f in std::iter::once(&p.x_field).chain(p.y_specs().iter().map(|y| &y.field)) {
                if !known_field(f) {
                    bail!(
                        "plot {:?}: unknown field {f:?}; use an aggregated metric ({}) or \
                         stats.<metric>.<stat> with metric one of {} and stat one of {}",
                        p.title,
                        AGG_FIELDS.join(", "),
                        STAT_METRICS.join(", "),
                        STAT_NAMES.join(", ")
                    );
                }
            }
        }
        Ok(())
    }
}

impl PlotSpec {
    /// The y series of the panel.
    pub fn y_specs(&self) -> Vec<YFieldSpec> {
        match (&self.y_fields, &self.y_field) {
            (Some(v), _) => v.clone(),
            (None, Some(f)) => vec![YFieldSpec {
                field: f.clone(),
                label: None,
                color: None,
                linestyle: None,
            }],
            _ => Vec::new(),
        }
    }
}

/// Which files to write.
#[derive(Debug, Clone, Copy)]
pub struct Formats {
    pub png: bool,
    pub svg: bool,
}

impl Formats {
    /// PNG and SVG.
    pub fn both() -> Formats {
        Formats {
            png: true,
            svg: true,
        }
    }
}

/// What `write_plots` draws.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// `traffic_scenario` (one figure, a series per model × scenario ×
    /// task), `none` (a figure per scenario), or a field (`model`, `task`,
    /// or any experiment metadata field: a figure per scenario, a series per
    /// value).
    pub group_key: String,
    pub config: PlotConfig,
    pub unit: Unit,
    pub formats: Formats,
}

/// A line of runs, ordered by iteration value.
pub struct Series<'a> {
    pub label: String,
    pub exp: &'a Experiment,
    pub runs: Vec<&'a Run>,
}

/// A figure: a grid of panels over some series.
pub struct Figure<'a> {
    /// File name prefix (`traffic_scenario`, `<scenario>_group_by_<key>`, ...).
    pub prefix: String,
    pub title: String,
    pub series: Vec<Series<'a>>,
}

fn group_value(exp: &Experiment, run: &Run, key: &str) -> String {
    match key {
        "model" => run.model.clone(),
        "task" => run.task.clone(),
        "traffic_scenario" => run.agg.scenario.clone(),
        k => exp.meta_str(k),
    }
}

/// Split the runs of `exps` into figures and series per `group_key`; runs
/// of different models, scenarios or tasks never share a series.
pub fn figures<'a>(exps: &'a [Experiment], group_key: &str) -> Vec<Figure<'a>> {
    let mut all: Vec<(&'a Experiment, &'a Run)> = Vec::new();
    for e in exps {
        for r in &e.runs {
            all.push((e, r));
        }
    }
    let distinct = |f: &dyn Fn(&Experiment, &Run) -> String| {
        let mut v: Vec<String> = all.iter().map(|(e, r)| f(e, r)).collect();
        v.sort();
        v.dedup();
        v.len()
    };
    let many_models = distinct(&|_, r| r.model.clone()) > 1;
    let many_tasks = distinct(&|_, r| r.task.clone()) > 1;
    let many_exps = exps.len() > 1;
    // Series identity: (experiment, model, scenario, task, group value).
    let mut figs: Vec<Figure<'a>> = Vec::new();
    for (e, r) in &all {
        let (prefix, title) = match group_key {
            "traffic_scenario" => (
                "traffic_scenario".to_string(),
                "Grouped by Traffic Scenario".to_string(),
            ),
            "none" => (
                format!("single_analysis_{}", sanitize(&r.agg.scenario)),
                format!("Single Scenario Analysis: {}", r.agg.scenario),
            ),
            k => (
                format!("{}_group_by_{k}", sanitize(&r.agg.scenario)),
                format!("Traffic Scenario: {}", r.agg.scenario),
            ),
        };
        let mut label = match group_key {
            "traffic_scenario" => format!("Scenario: {}", r.agg.scenario),
            "none" => r.model.clone(),
            k => format!("{k}: {}", group_value(e, r, k)),
        };
        if many_models && !matches!(group_key, "none" | "model") {
            label.push_str(&format!(" · {}", r.model));
        }
        if many_tasks && group_key != "task" {
            label.push_str(&format!(" · {}", r.task));
        }
        if many_exps && group_key == "traffic_scenario" {
            label.push_str(&format!(" · {}", e.name()));
        }
        let fig = match figs.iter_mut().position(|f| f.prefix == prefix) {
            Some(i) => &mut figs[i],
            None => {
                figs.push(Figure {
                    prefix,
                    title,
                    series: Vec::new(),
                });
                figs.last_mut().unwrap()
            }
        };
        let same = |s: &Series| {
            s.label == label
                && s.runs[0].model == r.model
                && s.runs[0].agg.scenario == r.agg.scenario
                && s.runs[0].task == r.task
        };
        match fig.series.iter_mut().find(|s| same(s)) {
            Some(s) => s.runs.push(r),
            None => fig.series.push(Series {
                label,
                exp: e,
                runs: vec![r],
            }),
        }
    }
    for f in &mut figs {
        for s in &mut f.series {
            s.runs
                .sort_by(|a, b| a.iteration_value().total_cmp(&b.iteration_value()));
        }
    }
    figs
}

static FONT: Once = Once::new();

/// Whether a font with CJK glyphs was registered as [`CJK_FAMILY`].
static CJK_FONT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The family name CJK text is drawn with (when a CJK font was found).
pub const CJK_FAMILY: &str = "sans-serif-cjk";

/// System fonts with Chinese, Japanese and Korean glyphs, tried in order
/// (Debian's fonts-wqy-microhei, fonts-noto-cjk, fonts-droid-fallback);
/// `GENAI_BENCH_CJK_FONT` names another.
const CJK_FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
];

/// Register the embedded font once (plotters' `ab_glyph` text rendering),
/// and a system CJK font if there is one: DejaVu Sans has no CJK glyphs.
pub fn ensure_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font("sans-serif", style, bytes)
                .map_err(|_| ())
                .expect("embedded DejaVu Sans is a valid font");
        }
        let env = std::env::var("GENAI_BENCH_CJK_FONT").ok();
        for path in env
            .iter()
            .map(String::as_str)
            .chain(CJK_FONT_PATHS.iter().copied())
        {
            let Ok(data) = std::fs::read(path) else {
                continue;
            };
            // Registered fonts live as long as the process.
            let data: &'static [u8] = Box::leak(data.into_boxed_slice());
            let ok = [FontStyle::Normal, FontStyle::Bold]
                .into_iter()
                .all(|style| plotters::style::register_font(CJK_FAMILY, style, data).is_ok());
            if ok {
                CJK_FONT.store(true, std::sync::atomic::Ordering::Relaxed);
                break;
            }
        }
    });
}

/// Whether `s` has Chinese, Japanese or Korean characters.
pub fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| {
        matches!(c as u32,
            0x3000..=0x303F | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
            | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF | 0x20000..=0x2FA1F)
    })
}

/// The font family for a plot whose texts are `texts`: the CJK font when
/// one of them needs it and one was found (it has Latin glyphs too), else
/// the embedded DejaVu Sans. Without a CJK font such text draws as boxes
/// in PNGs (SVGs leave the choice to the viewer); said once.
pub fn family_for<'a>(texts: impl IntoIterator<Item = &'a str>) -> &'static str {
    ensure_font();
    if !texts.into_iter().any(has_cjk) {
        return "sans-serif";
    }
    if CJK_FONT.load(std::sync::atomic::Ordering::Relaxed) {
        return CJK_FAMILY;
    }
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "a plot label has CJK characters but no CJK font was found; PNG plots show them \
             as boxes. Install one (Debian: apt-get install fonts-wqy-microhei) or set \
             GENAI_BENCH_CJK_FONT=/path/to/font.ttf"
        );
    });
    "sans-serif"
}

/// matplotlib's tab10 palette.
pub const PALETTE: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn named_color(name: &str) -> Option<RGBColor> {
    let n = name.trim().to_ascii_lowercase();
    if let Some(hex) = n.strip_prefix('#')
        && hex.len() == 6
    {
        let p = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        return Some(RGBColor(p(0)?, p(2)?, p(4)?));
    }
    Some(match n.as_str() {
        "blue" | "b" | "tab:blue" => PALETTE[0],
        "orange" | "tab:orange" => PALETTE[1],
        "green" | "g" | "tab:green" => PALETTE[2],
        "red" | "r" | "tab:red" => PALETTE[3],
        "purple" | "tab:purple" => PALETTE[4],
        "brown" | "tab:brown" => PALETTE[5],
        "pink" | "tab:pink" => PALETTE[6],
        "gray" | "grey" | "tab:gray" => PALETTE[7],
        "olive" | "tab:olive" => PALETTE[8],
        "cyan" | "c" | "tab:cyan" => PALETTE[9],
        "black" | "k" => RGBColor(0, 0, 0),
        "magenta" | "m" => RGBColor(255, 0, 255),
        "yellow" | "y" => RGBColor(204, 204, 0),
        _ => return None,
    })
}

/// Text of an HTTP status, as Python's `HTTPStatus(code).phrase`.
pub fn status_label(code: &str) -> String {
    let phrase = match code.parse::<u16>().ok().and_then(|c| {
        hyper::StatusCode::from_u16(c)
            .ok()
            .and_then(|s| s.canonical_reason())
    }) {
        Some(p) => p,
        None => return code.to_string(),
    };
    format!("{code} {phrase}")
}

fn pe<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Axis range with a margin; a degenerate range is widened.
fn padded(min: f64, max: f64) -> (f64, f64) {
    if !min.is_finite() || !max.is_finite() {
        return (0.0, 1.0);
    }
    if (max - min).abs() < 1e-12 {
        let d = if min.abs() > 1e-12 {
            min.abs() * 0.1
        } else {
            1.0
        };
        return (min - d, max + d);
    }
    let m = (max - min) * 0.08;
    (min - m, max + m)
}

/// Scale of text in a panel of height `h` px.
fn font_px(h: u32, base: f64) -> u32 {
    ((h as f64 / 600.0).clamp(1.0, 1.6) * base).round() as u32
}

/// A caption font that fits `title` in `width` pixels: the usual size,
/// smaller for a long title (never below 9 px); the title itself is cut
/// with an ellipsis only beyond that. (report.html shows every title
/// whole under its plot.)
fn fitted_caption(title: &str, width: u32, h: u32) -> (String, u32) {
    // Average sans-serif glyph width is about 0.55 of the font size.
    let chars = title.chars().count().max(1) as f64;
    let room = width as f64 * 0.94;
    let size = font_px(h, 22.0) as f64;
    let fit = (room / (chars * 0.55)).floor();
    if fit >= size {
        return (title.to_string(), size as u32);
    }
    if fit >= 9.0 {
        return (title.to_string(), fit as u32);
    }
    let keep = (room / (9.0 * 0.55)) as usize;
    let cut: String = title.chars().take(keep.saturating_sub(1)).collect();
    (format!("{}…", cut.trim_end()), 9)
}

/// genai-bench's axis label for a field path (`stats.e2e_latency.mean` →
/// "E2E Latency (MEAN)"), with its unit: the time unit for latencies,
/// tokens/s for token rates, req/s, tokens or bytes/s.
pub fn field_label(field: &str, unit: &str) -> String {
    let parts: Vec<&str> = field.split('.').collect();
    let (metric, base) = if parts.first() == Some(&"stats") && parts.len() > 1 {
        let metric = parts[1];
        let mut label = python_title(&metric.replace('_', " "));
        if let Some(stat) = parts.get(2) {
            label.push_str(&format!(" ({})", stat.to_ascii_uppercase()));
        }
        (metric, label)
    } else {
        let last = parts.last().copied().unwrap_or(field);
        (last, python_title(&field.replace(['_', '.'], " ")))
    };
    let suffix = if [
        "ttft",
        "tpot",
        "e2e_latency",
        "output_latency",
        "inter_chunk_latency",
        "send_lag",
    ]
    .iter()
    .any(|f| metric.contains(f))
    {
        Some(unit.to_string())
    } else if metric.contains("throughput") && metric.contains("audio") {
        Some("bytes/s".into())
    } else if metric.contains("throughput")
        || metric.contains("inference_speed")
        || metric.ends_with("tokens_per_s")
    {
        Some("tokens/s".into())
    } else if metric.contains("requests_per_second") || metric == "rps" || metric == "qps" {
        Some("req/s".into())
    } else if metric.starts_with("num_") && metric.ends_with("tokens") || metric == "total_tokens" {
        Some("tokens".into())
    } else {
        None
    };
    match suffix {
        Some(u) if !base.ends_with(&format!("({u})")) => format!("{base} ({u})"),
        _ => base,
    }
}

/// Python's `str.title()`: a letter after a non-letter is upper case, any
/// other lower case (`e2e latency` → `E2E Latency`).
fn python_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if prev_letter {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            prev_letter = true;
        } else {
            out.push(c);
            prev_letter = false;
        }
    }
    out
}

/// Draw one panel of `fig` onto `area`.
pub fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &PlotSpec,
    fig: &Figure,
    unit: Unit,
) -> anyhow::Result<()> {
    let (w, h) = area.dim_in_pixel();
    let (title, title_px) = fitted_caption(&spec.title, w, h);
    let family = family_for(
        std::iter::once(spec.title.as_str())
            .chain(fig.series.iter().map(|s| s.label.as_str()))
            .chain(fig.title.as_str().split('\n')),
    );
    let title_font = (family, title_px).into_font();
    let label_font = (family, font_px(h, 16.0)).into_font();
    let small_font = (family, font_px(h, 13.0)).into_font();
    let log = spec.y_scale.as_deref() == Some("log");
    let ys = spec.y_specs();
    let x_label = spec
        .x_label
        .clone()
        .unwrap_or_else(|| field_label(&spec.x_field, unit.as_str()));
    let y_label = spec.y_label.clone().unwrap_or_else(|| {
        ys.iter()
            .map(|y| field_label(&y.field, unit.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let multi_y = ys.len() > 1;

    if spec.plot_type == "bar" {
        return draw_bars(area, spec, fig, unit, &x_label, &y_label);
    }

    // (label, colour, dashed, points with the iteration value of each).
    type Line = (String, RGBColor, bool, Vec<(f64, f64, f64)>);
    let mut lines: Vec<Line> = Vec::new();
    let mut ci = 0usize;
    for s in &fig.series {
        for y in &ys {
            let pts: Vec<(f64, f64, f64)> = s
                .runs
                .iter()
                .filter_map(|r| {
                    let x = field_value(s.exp, r, &spec.x_field, unit)?;
                    let v = field_value(s.exp, r, &y.field, unit)?;
                    if log {
                        (v > 0.0).then(|| (x, v.log10(), r.iteration_value()))
                    } else {
                        Some((x, v, r.iteration_value()))
                    }
                })
                .filter(|(x, v, _)| x.is_finite() && v.is_finite())
                .collect();
            let color = y
                .color
                .as_deref()
                .and_then(named_color)
                .filter(|_| fig.series.len() == 1)
                .unwrap_or(PALETTE[ci % PALETTE.len()]);
            ci += 1;
            let label = match (multi_y, fig.series.len() > 1) {
                (true, true) => format!(
                    "{} · {}",
                    s.label,
                    y.label
                        .clone()
                        .unwrap_or_else(|| field_label(&y.field, unit.as_str()))
                ),
                (true, false) => y
                    .label
                    .clone()
                    .unwrap_or_else(|| field_label(&y.field, unit.as_str())),
                _ => s.label.clone(),
            };
            let dashed = matches!(y.linestyle.as_deref(), Some("--" | "-." | ":"));
            lines.push((label, color, dashed, pts));
        }
    }
    let all: Vec<&(f64, f64, f64)> = lines.iter().flat_map(|l| l.3.iter()).collect();
    if all.is_empty() {
        area.titled(&spec.title, title_font)
            .map_err(pe)?
            .draw(&Text::new(
                format!(
                    "no data for {}",
                    ys.iter()
                        .map(|y| y.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (20, 40),
                label_font,
            ))
            .map_err(pe)?;
        return Ok(());
    }
    let (x0, x1) = padded(
        all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min),
        all.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max),
    );
    let ymin = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let ymax = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let (y0, y1) = if log {
        padded(ymin, ymax)
    } else {
        padded(ymin.min(0.0), ymax)
    };
    // Head room for the legend (upper left), so it hides no point.
    let y1 = y1 + (y1 - y0) * (0.06 + 0.06 * lines.len() as f64);
    let mut chart = ChartBuilder::on(area)
        .caption(&title, title_font)
        .margin(font_px(h, 12.0))
        .x_label_area_size(font_px(h, 50.0))
        .y_label_area_size(font_px(h, 80.0))
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(pe)?;
    let y_fmt = |v: &f64| {
        if log {
            short(10f64.powf(*v))
        } else {
            short(*v)
        }
    };
    chart
        .configure_mesh()
        .x_desc(&x_label)
        .y_desc(&y_label)
        .axis_desc_style(label_font.clone())
        .label_style(small_font.clone())
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&y_fmt)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    let annotate_y = spec.x_field == "num_concurrency";
    for (label, color, dashed, pts) in &lines {
        if pts.is_empty() {
            continue;
        }
        let color = *color;
        let style = color.stroke_width(2);
        let xy: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1)).collect();
        if spec.plot_type == "line" {
            let anno = if *dashed {
                chart
                    .draw_series(DashedLineSeries::new(xy.clone(), 8, 5, style))
                    .map_err(pe)?
            } else {
                chart
                    .draw_series(LineSeries::new(xy.clone(), style))
                    .map_err(pe)?
            };
            anno.label(label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
            chart
                .draw_series(xy.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(pe)?;
        } else {
            chart
                .draw_series(xy.iter().map(|p| Circle::new(*p, 5, color.filled())))
                .map_err(pe)?
                .label(label.as_str())
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        // Annotate points with the concurrency (or y when x is concurrency).
        let font = small_font.clone().color(&RGBColor(60, 60, 60));
        chart
            .draw_series(pts.iter().map(|p| {
                let text = if annotate_y {
                    y_fmt(&p.1)
                } else {
                    fmt_num(p.2)
                };
                EmptyElement::at((p.0, p.1)) + Text::new(text, (5, -15), font.clone())
            }))
            .map_err(pe)?;
    }
    chart
        .configure_series_labels()
        .label_font(small_font)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(pe)?;
    Ok(())
}

/// Bars over the distinct x values; `error_rate` bars are stacked by HTTP
/// status (genai-bench's "Error Rates by HTTP Status").
fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &PlotSpec,
    fig: &Figure,
    unit: Unit,
    x_label: &str,
    y_label: &str,
) -> anyhow::Result<()> {
    let (w, h) = area.dim_in_pixel();
    let (title, title_px) = fitted_caption(&spec.title, w, h);
    let family = family_for(
        std::iter::once(spec.title.as_str())
            .chain(fig.series.iter().map(|s| s.label.as_str()))
            .chain(fig.title.as_str().split('\n')),
    );
    let title_font = (family, title_px).into_font();
    let label_font = (family, font_px(h, 16.0)).into_font();
    let small_font = (family, font_px(h, 13.0)).into_font();
    let ys = spec.y_specs();
    let errors = ys.len() == 1 && ys[0].field == "error_rate";
    let mut xs: Vec<f64> = fig
        .series
        .iter()
        .flat_map(|s| {
            s.runs
                .iter()
                .filter_map(|r| field_value(s.exp, r, &spec.x_field, unit))
        })
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    // (legend label, colour, series index, [(category, bottom, top)]).
    type Bars = (String, RGBColor, usize, Vec<(usize, f64, f64)>);
    let mut bars: Vec<Bars> = Vec::new();
    let cat = |x: f64| xs.iter().position(|v| *v == x);
    let mut ci = 0usize;
    for (si, s) in fig.series.iter().enumerate() {
        if errors {
            let mut codes: Vec<String> = s
                .runs
                .iter()
                .flat_map(|r| r.agg.error_codes_frequency.keys().cloned())
                .collect();
            codes.sort_by_key(|c| c.parse::<i64>().unwrap_or(i64::MAX));
            codes.dedup();
            let mut bottoms = vec![0.0; xs.len()];
            for code in codes {
                let mut rects = Vec::new();
                for r in &s.runs {
                    let Some(c) = field_value(s.exp, r, &spec.x_field, unit).and_then(cat) else {
                        continue;
                    };
                    let n = r.agg.error_codes_frequency.get(&code).copied().unwrap_or(0);
                    let rate = if r.agg.num_requests > 0 {
                        n as f64 / r.agg.num_requests as f64
                    } else {
                        0.0
                    };
                    rects.push((c, bottoms[c], bottoms[c] + rate));
                    bottoms[c] += rate;
                }
                let mut label = status_label(&code);
                if fig.series.len() > 1 {
                    label = format!("{label} ({})", s.label);
                }
                bars.push((label, PALETTE[ci % PALETTE.len()], si, rects));
                ci += 1;
            }
        } else {
            for y in &ys {
                let rects = s
                    .runs
                    .iter()
                    .filter_map(|r| {
                        let c = cat(field_value(s.exp, r, &spec.x_field, unit)?)?;
                        Some((c, 0.0, field_value(s.exp, r, &y.field, unit)?))
                    })
                    .collect();
                let color = y
                    .color
                    .as_deref()
                    .and_then(named_color)
                    .unwrap_or(PALETTE[ci % PALETTE.len()]);
                let label = if ys.len() > 1 {
                    format!(
                        "{} · {}",
                        s.label,
                        y.label.clone().unwrap_or(y.field.clone())
                    )
                } else {
                    s.label.clone()
                };
                bars.push((label, color, si, rects));
                ci += 1;
            }
        }
    }
    let top = bars
        .iter()
        .flat_map(|b| b.3.iter().map(|r| r.2))
        .fold(0.0f64, f64::max);
    let y1 = if top > 0.0 { top * 1.15 } else { 1.0 };
    let n = xs.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(&title, title_font)
        .margin(font_px(h, 12.0))
        .x_label_area_size(font_px(h, 50.0))
        .y_label_area_size(font_px(h, 80.0))
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0.0f64..y1)
        .map_err(pe)?;
    let xs_fmt = xs.clone();
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style(label_font.clone())
        .label_style(small_font.clone())
        .x_labels(n + 1)
        .x_label_formatter(&move |v| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < xs_fmt.len() {
                fmt_num(xs_fmt[i as usize])
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| short(*v))
        .disable_x_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    let nseries = fig.series.len().max(1) as f64;
    let width = 0.8 / nseries;
    for (label, color, si, rects) in &bars {
        let color = *color;
        let off = -0.4 + *si as f64 * width;
        chart
            .draw_series(rects.iter().map(|(c, b, t)| {
                let x = *c as f64 + off;
                Rectangle::new([(x, *b), (x + width * 0.95, *t)], color.filled())
            }))
            .map_err(pe)?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    if bars.is_empty() || top == 0.0 {
        let msg = if errors { "no errors" } else { "no data" };
        chart
            .draw_series(std::iter::once(Text::new(
                msg.to_string(),
                ((n as f64 - 1.0) / 2.0 - 0.1, y1 * 0.5),
                label_font.clone(),
            )))
            .map_err(pe)?;
    }
    if !bars.is_empty() {
        chart
            .configure_series_labels()
            .label_font(small_font)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(pe)?;
    }
    Ok(())
}

/// A short tick label.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{:.0}", v)
    } else if a >= 1.0 {
        let s = format!("{:.2}", v);
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else if a >= 0.001 {
        let s = format!("{:.4}", v);
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.2e}")
    }
}

/// Draw a whole figure (suptitle and grid) onto `root`.
pub fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    config: &PlotConfig,
    fig: &Figure,
    unit: Unit,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(pe)?;
    let (_, h) = root.dim_in_pixel();
    let per_row = h / config.layout.rows.max(1);
    // A single panel (individual plot files) carries its own title only.
    let body = if config.plots.len() == 1 && config.layout.rows * config.layout.cols == 1 {
        root.clone()
    } else {
        let family = family_for(
            std::iter::once(fig.title.as_str()).chain(fig.series.iter().map(|s| s.label.as_str())),
        );
        root.titled(&fig.title, (family, font_px(per_row, 26.0)).into_font())
            .map_err(pe)?
    };
    let cells = body.split_evenly((config.layout.rows as usize, config.layout.cols as usize));
    for spec in &config.plots {
        let (r, c) = spec.position;
        let cell = &cells[(r * config.layout.cols + c) as usize];
        draw_panel(cell, spec, fig, unit).with_context(|| format!("panel {:?}", spec.title))?;
    }
    root.present().map_err(pe)?;
    Ok(())
}

/// Pixel size of a figure: matplotlib's figsize at 100 dpi.
pub fn figure_size(config: &PlotConfig) -> (u32, u32) {
    let l = &config.layout;
    let (w, h) = l
        .figsize
        .unwrap_or((8.0 * l.cols as f64, 6.0 * l.rows as f64));
    (
        (w * 100.0).clamp(200.0, 8000.0) as u32,
        (h * 100.0).clamp(200.0, 6000.0) as u32,
    )
}

/// A figure as an SVG document.
pub fn figure_svg(
    config: &PlotConfig,
    fig: &Figure,
    unit: Unit,
    size: (u32, u32),
) -> anyhow::Result<String> {
    ensure_font();
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        draw_figure(&root, config, fig, unit)?;
    }
    Ok(s)
}

fn write_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, size).into_drawing_area();
    draw(&root)?;
    root.present()
        .map_err(|e| anyhow!("cannot write {}: {e:?}", path.display()))?;
    Ok(())
}

/// A single-panel config for panel `spec` (individual plot files).
fn single(spec: &PlotSpec) -> PlotConfig {
    let mut s = spec.clone();
    s.position = (0, 0);
    PlotConfig {
        layout: PlotLayout {
            rows: 1,
            cols: 1,
            figsize: Some((10.0, 6.0)),
        },
        plots: vec![s],
    }
}

/// Write every figure of `exps` into `out_dir`: per figure
/// `<prefix>_combined_plots_<rows>x<cols>.{png,svg}` and each panel as
/// `<prefix>_<title>.{png,svg}`. Returns the paths written.
pub fn write_plots(
    exps: &[Experiment],
    out_dir: &Path,
    opts: &PlotOptions,
) -> anyhow::Result<Vec<PathBuf>> {
    ensure_font();
    opts.config.validate()?;
    let figs = figures(exps, &opts.group_key);
    if figs.is_empty() {
        bail!(
            "no run files to plot: the experiment folder holds no <scenario>_..._time_<secs>s.json"
        );
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut written = Vec::new();
    let l = &opts.config.layout;
    for fig in &figs {
        let mut jobs: Vec<(String, PlotConfig)> = vec![(
            format!("{}_combined_plots_{}x{}", fig.prefix, l.rows, l.cols),
            opts.config.clone(),
        )];
        for spec in &opts.config.plots {
            jobs.push((
                format!("{}_{}", fig.prefix, sanitize(&spec.title)),
                single(spec),
            ));
        }
        for (stem, cfg) in jobs {
            let size = figure_size(&cfg);
            if opts.formats.png {
                let p = out_dir.join(format!("{stem}.png"));
                write_png(&p, size, |root| draw_figure(root, &cfg, fig, opts.unit))?;
                written.push(p);
            }
            if opts.formats.svg {
                let p = out_dir.join(format!("{stem}.svg"));
                let svg = figure_svg(&cfg, fig, opts.unit, size)?;
                std::fs::write(&p, svg).with_context(|| format!("cannot write {}", p.display()))?;
                written.push(p);
            }
        }
    }
    Ok(written)
}

/// An empirical CDF chart (x: value, y: fraction of requests) as SVG, one
/// line per `(label, values)`.
pub fn cdf_svg(
    title: &str,
    x_label: &str,
    series: &[(String, Vec<f64>)],
    size: (u32, u32),
) -> anyhow::Result<String> {
    ensure_font();
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        root.fill(&WHITE).map_err(pe)?;
        let (w, h) = root.dim_in_pixel();
        let (title, title_px) = fitted_caption(title, w, h);
        let family = family_for(
            std::iter::once(title.as_str()).chain(series.iter().map(|(l, _)| l.as_str())),
        );
        let all: Vec<f64> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
        if all.is_empty() {
            root.titled(&title, (family, title_px).into_font())
                .map_err(pe)?
                .draw(&Text::new(
                    "no successful requests".to_string(),
                    (20, 40),
                    (family, font_px(h, 16.0)).into_font(),
                ))
                .map_err(pe)?;
            root.present().map_err(pe)?;
            drop(root);
            return Ok(s);
        }
        let (x0, x1) = padded(
            all.iter().copied().fold(f64::INFINITY, f64::min).min(0.0),
            all.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, (family, title_px).into_font())
            .margin(font_px(h, 12.0))
            .x_label_area_size(font_px(h, 50.0))
            .y_label_area_size(font_px(h, 70.0))
            .build_cartesian_2d(x0.max(0.0)..x1, 0.0f64..1.02)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("fraction of requests")
            .axis_desc_style((family, font_px(h, 16.0)).into_font())
            .label_style((family, font_px(h, 13.0)).into_font())
            .x_label_formatter(&|v| short(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(pe)?;
        for (i, (label, vals)) in series.iter().enumerate() {
            if vals.is_empty() {
                continue;
            }
            let mut v = vals.clone();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            let mut pts = Vec::with_capacity(v.len() * 2);
            for (k, x) in v.iter().enumerate() {
                pts.push((*x, k as f64 / n));
                pts.push((*x, (k + 1) as f64 / n));
            }
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(pe)?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font((family, font_px(h, 13.0)).into_font())
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(pe)?;
        root.present().map_err(pe)?;
    }
    Ok(s)
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn labels_follow_genai_bench_and_carry_units() {
        assert_eq!(
            field_label("stats.e2e_latency.mean", "s"),
            "E2E Latency (MEAN) (s)"
        );
        assert_eq!(field_label("stats.ttft.p99", "ms"), "Ttft (P99) (ms)");
        assert_eq!(
            field_label("mean_output_throughput_tokens_per_s", "s"),
            "Mean Output Throughput Tokens Per S (tokens/s)"
        );
        assert_eq!(
            field_label("requests_per_second", "s"),
            "Requests Per Second (req/s)"
        );
        assert_eq!(field_label("num_concurrency", "s"), "Num Concurrency");
        assert_eq!(
            field_label("stats.num_input_tokens.mean", "s"),
            "Num Input Tokens (MEAN) (tokens)"
        );
        assert_eq!(
            field_label("stats.audio_throughput.mean", "s"),
            "Audio Throughput (MEAN) (bytes/s)"
        );
    }

    /// A CJK model name draws with real glyphs: the CJK family renders
    /// differently from DejaVu Sans, which has only a "missing" box for
    /// them. Needs a CJK font (tests/setup.sh installs fonts-wqy-microhei).
    #[test]
    fn cjk_labels_get_a_cjk_font() {
        let name = "通义千问 7B";
        assert_eq!(
            family_for([name]),
            CJK_FAMILY,
            "no CJK font found: run tests/setup.sh (fonts-wqy-microhei) or set GENAI_BENCH_CJK_FONT"
        );
        assert_eq!(family_for(["model-a", "E2E Latency"]), "sans-serif");
        let draw = |family: &str| {
            let mut buf = vec![0u8; 200 * 40 * 3];
            {
                let root = BitMapBackend::with_buffer(&mut buf, (200, 40)).into_drawing_area();
                root.fill(&WHITE).unwrap();
                root.draw(&Text::new(name, (2, 4), (family, 24).into_font()))
                    .unwrap();
            }
            buf
        };
        let (cjk, dejavu) = (draw(CJK_FAMILY), draw("sans-serif"));
        assert!(cjk.iter().any(|&b| b < 128), "the CJK text drew nothing");
        assert_ne!(
            cjk, dejavu,
            "CJK glyphs look like DejaVu's missing-glyph boxes"
        );
    }

    #[test]
    fn long_captions_shrink_then_cut() {
        let (t, px) = fitted_caption("Short", 700, 440);
        assert_eq!((t.as_str(), px), ("Short", 22));
        let long =
            "Output Inference Speed per Request vs Total Throughput Input + Output of Server";
        let (t, px) = fitted_caption(long, 700, 440);
        assert_eq!(t, long);
        assert!((9..22).contains(&px), "{px}");
        let very = long.repeat(3);
        let (t, px) = fitted_caption(&very, 700, 440);
        assert_eq!(px, 9);
        assert!(t.ends_with('…') && t.chars().count() < very.chars().count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_default_has_genai_bench_titles() {
        for name in preset_names() {
            PlotConfig::preset(&name).unwrap();
        }
        let c = PlotConfig::preset("2x4_default").unwrap();
        assert_eq!((c.layout.rows, c.layout.cols), (2, 4));
        assert_eq!(c.plots.len(), 8);
        assert!(
            c.plots
                .iter()
                .any(|p| p.title == "Error Rates by HTTP Status vs Concurrency")
        );
        assert_eq!(figure_size(&c), (3200, 1200));
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let bad = |j: &str| {
            let c: PlotConfig = serde_json::from_str(j).unwrap();
            format!("{:#}", c.validate().unwrap_err())
        };
        let e = bad(
            r#"{"layout":{"rows":1,"cols":1},"plots":[{"title":"a","x_field":"num_concurrency","y_field":"error_rate","position":[0,1]}]}"#,
        );
        assert!(e.contains("exceeds layout bounds"), "{e}");
        let e = bad(
            r#"{"plots":[{"title":"a","x_field":"num_concurrency","y_field":"stats.ttft.p42","position":[0,0]}]}"#,
        );
        assert!(e.contains("unknown field \"stats.ttft.p42\""), "{e}");
        let e = bad(r#"{"plots":[{"title":"a","x_field":"num_concurrency","position":[0,0]}]}"#);
        assert!(e.contains("y_field or y_fields"), "{e}");
        let e = bad(
            r#"{"plots":[{"title":"a","x_field":"num_concurrency","y_field":"error_rate","plot_type":"pie","position":[0,0]}]}"#,
        );
        assert!(e.contains("plot_type"), "{e}");
    }

    #[test]
    fn status_labels_match_python() {
        assert_eq!(status_label("503"), "503 Service Unavailable");
        assert_eq!(status_label("-1"), "-1");
    }
}
