//! A self-contained HTML report of one experiment: inline CSS and SVG, no
//! network, no external script. Summary tables per run, genai-bench's plot
//! grid, latency distributions (CDFs over individual requests) and each
//! run's validity verdict. Every text taken from files is escaped.
//!
//! A tiny inline script checks the page once loaded (every plot is an
//! `<svg>` with a size, no script error) and marks `<body
//! data-rendered="ok">`; errors are written into `#render-errors`. Tests
//! read both with headless Chromium's `--dump-dom`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use super::plot::{self, PlotConfig};
use super::{Experiment, Run, Unit, fmt_num};

/// File name of the report in the experiment folder.
pub const REPORT_FILE: &str = "report.html";

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c9cfdb;font-size:13px}
main{padding:10px 28px 40px;max-width:1500px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:14px 18px;margin:16px 0}
h2{font-size:18px;margin:4px 0 12px}
h3{font-size:15px;margin:14px 0 8px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #e1e4ea;padding:4px 8px;text-align:right}
th{background:#f0f2f5;font-weight:600}
td.k,th.k{text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
.plot{margin:0}
.plot figcaption{font-size:13px;color:#4a5263;padding:4px 2px;overflow-wrap:anywhere}
.plot svg{width:100%;height:auto;display:block;border:1px solid #eceef2}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600}
.ok{background:#d9f2e3;color:#11643a}.bad{background:#fbe0e0;color:#8a1c1c}.na{background:#eceef2;color:#505968}
.run{border-top:1px solid #e1e4ea;padding-top:8px;margin-top:12px}
ul.reasons{margin:4px 0 4px 18px;font-size:13px}
#render-errors{color:#8a1c1c;white-space:pre-wrap}
"#;

/// Self-check: every plot is a sized `<svg>`, no script error; the verdict
/// goes into `data-rendered` on `<body>`.
const SCRIPT: &str = r#"
(function(){
  var errs=[];
  function note(m){errs.push(String(m));var e=document.getElementById('render-errors');if(e){e.textContent=errs.join('\n');}document.body.setAttribute('data-rendered','error');}
  window.onerror=function(msg,src,line){note('error: '+msg+' at '+line);};
  window.addEventListener('error',function(ev){if(ev.target&&ev.target!==window){note('resource failed: '+(ev.target.src||ev.target.href||ev.target.tagName));}},true);
  document.addEventListener('DOMContentLoaded',function(){
    var plots=document.querySelectorAll('.plot');
    var expected=parseInt(document.body.getAttribute('data-plots')||'0',10);
    if(plots.length!==expected){note('expected '+expected+' plots, found '+plots.length);}
    for(var i=0;i<plots.length;i++){
      var s=plots[i].querySelector('svg');
      if(!s){note('plot '+i+' has no svg');continue;}
      var r=s.getBoundingClientRect();
      if(!(r.width>50&&r.height>50)){note('plot '+i+' is not drawn ('+r.width+'x'+r.height+')');}
      if(s.querySelectorAll('text').length===0){note('plot '+i+' has no text');}
    }
    if(errs.length===0){document.body.setAttribute('data-rendered','ok');}
  });
})();
"#;

/// An SVG from plotters, made to scale with its container.
fn responsive(svg: &str) -> String {
    // plotters writes `<svg width="W" height="H" viewBox="0 0 W H" ...>`;
    // drop the fixed size so CSS sets the width.
    let Some(end) = svg.find('>') else {
        return svg.to_string();
    };
    let (head, rest) = svg.split_at(end);
    let mut h = head.to_string();
    for attr in ["width", "height"] {
        if let Some(i) = h.find(&format!(" {attr}=\"")) {
            let j = h[i + attr.len() + 3..]
                .find('"')
                .map(|j| i + attr.len() + 3 + j + 1);
            if let Some(j) = j {
                h.replace_range(i..j, "");
            }
        }
    }
    format!("{h}{rest}")
}

fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "—".into(),
    }
}

/// Successful, measured requests' values of `field` (warmup/cooldown left
/// out), in seconds × `factor`.
fn request_values(run: &Run, field: &str, factor: f64) -> Vec<f64> {
    run.requests
        .iter()
        .filter(|r| r.get("error_code").is_none_or(Value::is_null))
        .filter(|r| !r.excluded())
        .filter_map(|r| r.get(field).and_then(Value::as_f64))
        .map(|v| v * factor)
        .collect()
}

fn validity_html(run: &Run) -> String {
    let Some(v) = &run.validity else {
        return r#"<p>Validity: <span class="badge na">not assessed</span></p>"#.into();
    };
    let mut o = String::new();
    let badge = match v.get("valid").and_then(Value::as_bool) {
        Some(true) => r#"<span class="badge ok">valid</span>"#,
        Some(false) => r#"<span class="badge bad">not valid</span>"#,
        None => r#"<span class="badge na">not assessed</span>"#,
    };
    let _ = write!(o, "<p>Validity: {badge}</p>");
    if let Some(reasons) = v.get("reasons").and_then(Value::as_array)
        && !reasons.is_empty()
    {
        o.push_str(r#"<ul class="reasons">"#);
        for r in reasons {
            let t = match r {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(o, "<li>{}</li>", esc(&t));
        }
        o.push_str("</ul>");
    }
    if let Some(m) = v.get("measures").and_then(Value::as_object)
        && !m.is_empty()
    {
        o.push_str("<table><tr><th class=k>measure</th><th>value</th></tr>");
        for (k, val) in m {
            let t = match val {
                Value::String(s) => s.clone(),
                Value::Number(n) => n
                    .as_f64()
                    .map(|x| {
                        if x.fract() == 0.0 {
                            fmt_num(x)
                        } else {
                            format!("{x:.4}")
                        }
                    })
                    .unwrap_or_else(|| n.to_string()),
                other => other.to_string(),
            };
            let _ = write!(
                o,
                "<tr><td class=k>{}</td><td>{}</td></tr>",
                esc(k),
                esc(&t)
            );
        }
        o.push_str("</table>");
    }
    o
}

fn run_html(exp: &Experiment, run: &Run, unit: Unit) -> String {
    let tf = exp.time_factor(unit);
    let u = unit.as_str();
    let a = &run.agg;
    let mut o = String::new();
    let _ = write!(o, r#"<div class="run"><h3>{}</h3>"#, esc(&run.label()));
    let _ = write!(
        o,
        "<table><tr><th>requests</th><th>completed</th><th>errors</th><th>error rate</th>\
         <th>duration (s)</th><th>RPS</th><th>output tokens/s</th><th>total tokens/s</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        a.num_requests,
        a.num_completed_requests,
        a.num_error_requests,
        num(Some(a.error_rate), 3),
        num(Some(a.run_duration), 2),
        num(Some(a.requests_per_second), 3),
        num(Some(a.mean_output_throughput_tokens_per_s), 1),
        num(Some(a.mean_total_tokens_throughput_tokens_per_s), 1),
    );
    if !a.error_codes_frequency.is_empty() {
        o.push_str("<p>Errors: ");
        let parts: Vec<String> = a
            .error_codes_frequency
            .iter()
            .map(|(c, n)| format!("{} × {n}", esc(&plot::status_label(c))))
            .collect();
        o.push_str(&parts.join(", "));
        o.push_str("</p>");
    }
    // What the failures said, most frequent first: the server's own words
    // are what a user acts on.
    if let Some(top) = run.raw.get("top_errors").and_then(Value::as_array)
        && !top.is_empty()
    {
        o.push_str("<table class=\"errors\"><tr><th>count</th><th>kind</th><th>code</th><th class=k>message</th></tr>");
        for e in top {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=k>{}</td></tr>",
                e.get("count").and_then(Value::as_u64).unwrap_or(0),
                esc(e.get("kind").and_then(Value::as_str).unwrap_or("")),
                e.get("code").and_then(Value::as_i64).unwrap_or(0),
                esc(e.get("message").and_then(Value::as_str).unwrap_or("")),
            );
        }
        o.push_str("</table>");
    }
    let metrics: &[(&str, &str, bool)] = &[
        ("ttft", "TTFT", true),
        ("tpot", "TPOT", true),
        ("e2e_latency", "E2E latency", true),
        ("output_latency", "output latency", true),
        ("inter_chunk_latency", "inter-chunk latency", true),
        ("output_inference_speed", "output speed (tokens/s)", false),
        ("num_input_tokens", "input tokens", false),
        ("num_output_tokens", "output tokens", false),
    ];
    o.push_str("<table><tr><th class=k>metric</th>");
    for s in ["mean", "min", "p50", "p90", "p95", "p99", "max"] {
        let _ = write!(o, "<th>{s}</th>");
    }
    o.push_str("</tr>");
    for (key, name, time) in metrics {
        let Some(st) = a.stats.get(*key) else {
            continue;
        };
        if st.mean.is_none() {
            continue;
        }
        let (f, label, d) = if *time {
            (
                tf,
                format!("{name} ({u})"),
                if unit == Unit::Ms { 1 } else { 4 },
            )
        } else {
            (1.0, name.to_string(), 1)
        };
        let _ = write!(o, "<tr><td class=k>{}</td>", esc(&label));
        for s in ["mean", "min", "p50", "p90", "p95", "p99", "max"] {
            let _ = write!(o, "<td>{}</td>", num(st.get(s).map(|v| v * f), d));
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    o.push_str(&validity_html(run));
    o.push_str("</div>");
    o
}

/// The report as an HTML document.
pub fn render(exp: &Experiment) -> anyhow::Result<String> {
    let unit = exp.source_unit;
    let u = unit.as_str();
    let mut plots: Vec<(String, String)> = Vec::new();

    // genai-bench's default grid, one panel per plot.
    let config = PlotConfig::preset("2x4_default")?;
    let exps = std::slice::from_ref(exp);
    let figs = plot::figures(exps, "traffic_scenario");
    if let Some(fig) = figs.first() {
        for spec in &config.plots {
            let mut s = spec.clone();
            s.position = (0, 0);
            if unit == Unit::Ms {
                s.y_label = s.y_label.map(|l| l.replace("(s)", "(ms)"));
            }
            let cfg = PlotConfig {
                layout: plot::PlotLayout {
                    rows: 1,
                    cols: 1,
                    figsize: Some((7.0, 4.4)),
                },
                plots: vec![s],
            };
            let svg = plot::figure_svg(&cfg, fig, unit, (700, 440))?;
            plots.push((spec.title.clone(), svg));
        }
    }

    // Latency distributions over individual requests.
    let mut dists: Vec<(String, String)> = Vec::new();
    let tf = exp.time_factor(unit);
    for (field, name) in [
        ("ttft", "TTFT"),
        ("e2e_latency", "E2E latency"),
        ("tpot", "TPOT"),
    ] {
        let series: Vec<(String, Vec<f64>)> = exp
            .runs
            .iter()
            .map(|r| (r.label(), request_values(r, field, tf)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let title = format!("{name} distribution (CDF)");
        let svg = plot::cdf_svg(&title, &format!("{name} ({u})"), &series, (700, 440))?;
        dists.push((title, svg));
    }

    let name = exp.name();
    let models = exp.models();
    let n_plots = plots.len() + dists.len();
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>genai-bench report: {}</title><style>{CSS}</style><script>{SCRIPT}</script></head>\
         <body data-plots=\"{n_plots}\"><header><h1>genai-bench report: {}</h1><p>{} · {} · {} run(s) · latencies in {u}</p></header><main>\
         <pre id=\"render-errors\"></pre>",
        esc(&name),
        esc(&name),
        esc(&models.join(", ")),
        esc(&exp.meta_str("api_backend")),
        exp.runs.len(),
    );

    // Experiment summary.
    o.push_str("<section><h2>Experiment</h2><table>");
    for key in [
        "api_backend",
        "api_model_name",
        "task",
        "traffic_scenario",
        "num_concurrency",
        "max_requests_per_run",
        "max_time_per_run_s",
        "server_engine",
        "server_gpu_type",
        "started_at",
        "finished_at",
        "benchmark_version",
    ] {
        let Some(v) = exp.metadata.get(key) else {
            continue;
        };
        let t = match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect::<Vec<_>>()
                .join(", "),
            Value::Null => "None".into(),
            other => other.to_string(),
        };
        let _ = write!(
            o,
            "<tr><th class=k>{}</th><td class=k>{}</td></tr>",
            esc(key),
            esc(&t)
        );
    }
    o.push_str("</table></section>");

    // One row per run: the Appendix view.
    o.push_str(
        "<section><h2>Runs</h2><table><tr><th class=k>model</th><th class=k>scenario</th><th>",
    );
    o.push_str(super::iteration_label(&exp.iteration_type()));
    let _ = write!(
        o,
        "</th><th>TTFT mean ({u})</th><th>E2E p90 ({u})</th><th>output speed (tokens/s)</th>\
         <th>output throughput (tokens/s)</th><th>RPS</th><th>error rate</th><th class=k>validity</th></tr>"
    );
    for r in &exp.runs {
        let st = |m: &str, s: &str| r.agg.stats.get(m).and_then(|x| x.get(s));
        let d = if unit == Unit::Ms { 1 } else { 4 };
        let verdict = match r
            .validity
            .as_ref()
            .and_then(|v| v.get("valid"))
            .and_then(Value::as_bool)
        {
            Some(true) => r#"<span class="badge ok">valid</span>"#,
            Some(false) => r#"<span class="badge bad">not valid</span>"#,
            None => r#"<span class="badge na">not assessed</span>"#,
        };
        let _ = write!(
            o,
            "<tr><td class=k>{}</td><td class=k>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=k>{verdict}</td></tr>",
            esc(&r.model),
            esc(&r.agg.scenario),
            fmt_num(r.iteration_value()),
            num(st("ttft", "mean").map(|v| v * tf), d),
            num(st("e2e_latency", "p90").map(|v| v * tf), d),
            num(st("output_inference_speed", "mean"), 1),
            num(Some(r.agg.mean_output_throughput_tokens_per_s), 1),
            num(Some(r.agg.requests_per_second), 3),
            num(Some(r.agg.error_rate), 3),
        );
    }
    o.push_str("</table></section>");

    o.push_str("<section><h2>Plots</h2><div class=\"grid\">");
    for (title, svg) in &plots {
        let _ = write!(
            o,
            "<figure class=\"plot\" title=\"{}\">{}<figcaption>{}</figcaption></figure>",
            esc(title),
            responsive(svg),
            esc(title)
        );
    }
    o.push_str("</div></section>");

    o.push_str("<section><h2>Latency distributions</h2><div class=\"grid\">");
    for (title, svg) in &dists {
        let _ = write!(
            o,
            "<figure class=\"plot\" title=\"{}\">{}<figcaption>{}</figcaption></figure>",
            esc(title),
            responsive(svg),
            esc(title)
        );
    }
    o.push_str("</div></section>");

    o.push_str("<section><h2>Runs in detail</h2>");
    for r in &exp.runs {
        o.push_str(&run_html(exp, r, unit));
    }
    o.push_str("</section></main></body></html>\n");
    Ok(o)
}

/// Render and write the report of `exp` to `path`.
pub fn write_report(exp: &Experiment, path: &Path) -> anyhow::Result<()> {
    let html = render(exp)?;
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, html).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn responsive_svg_drops_fixed_size() {
        let s = responsive(
            r#"<svg width="700" height="440" viewBox="0 0 700 440" xmlns="x"><g/></svg>"#,
        );
        assert_eq!(s, r#"<svg viewBox="0 0 700 440" xmlns="x"><g/></svg>"#);
    }
}
