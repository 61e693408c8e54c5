//! Live progress while a run goes on, and the summary table after it.
//!
//! Updates are cheap (atomics and a small ring under a mutex, touched by the
//! collector thread, never by the network tasks); rendering happens on a
//! timer, twice a second on a terminal, every 10 s otherwise.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::metrics::{AggregatedMetrics, RequestRecord};

/// Counters of the run in progress.
pub struct Progress {
    label: Mutex<String>,
    max_requests: AtomicU64,
    started: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    recent: Mutex<VecDeque<(Instant, Option<f64>, u64)>>,
    run_started: Mutex<Instant>,
    tty: bool,
    /// Between two renders (`--metrics-refresh-interval`).
    period: Duration,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Progress that renders on stderr.
    pub fn new() -> Self {
        let tty = std::io::stderr().is_terminal();
        Progress {
            label: Mutex::new(String::new()),
            max_requests: AtomicU64::new(0),
            started: AtomicU64::new(0),
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            run_started: Mutex::new(Instant::now()),
            tty,
            period: if tty {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(10)
            },
        }
    }

    /// Renders every `period` instead of the default.
    pub fn with_period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// Start counting a new run.
    pub fn begin_run(&self, label: String, max_requests: u64) {
        *self.label.lock().unwrap() = label;
        self.max_requests.store(max_requests, Ordering::Relaxed);
        self.started.store(0, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        self.recent.lock().unwrap().clear();
        *self.run_started.lock().unwrap() = Instant::now();
    }

    /// A request was sent.
    pub fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// A request completed.
    pub fn record(&self, r: &RequestRecord) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if !r.ok() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut recent = self.recent.lock().unwrap();
        recent.push_back((Instant::now(), r.ttft, r.num_output_tokens.unwrap_or(0)));
        if recent.len() > 2048 {
            recent.pop_front();
        }
    }

    /// One status line.
    pub fn line(&self) -> String {
        let now = Instant::now();
        let recent = self.recent.lock().unwrap();
        // Last 10 s: current TTFT (median) and output token rate.
        let window = Duration::from_secs(10);
        let in_window: Vec<_> = recent
            .iter()
            .filter(|(t, _, _)| now.duration_since(*t) <= window)
            .collect();
        let mut ttfts: Vec<f64> = in_window.iter().filter_map(|(_, t, _)| *t).collect();
        ttfts.sort_by(f64::total_cmp);
        let ttft = ttfts
            .get(ttfts.len() / 2)
            .map(|t| format!("{:.0} ms", t * 1000.0))
            .unwrap_or_else(|| "-".into());
        let elapsed = now.duration_since(*self.run_started.lock().unwrap());
        let span = elapsed.min(window).as_secs_f64().max(0.001);
        let tokens: u64 = in_window.iter().map(|(_, _, n)| n).sum();
        format!(
            "{} | {}/{} done, {} in flight, {} errors | TTFT p50 {} | {:.0} output tok/s | {:.0}s",
            self.label.lock().unwrap(),
            self.done.load(Ordering::Relaxed),
            self.max_requests.load(Ordering::Relaxed),
            self.started
                .load(Ordering::Relaxed)
                .saturating_sub(self.done.load(Ordering::Relaxed)),
            self.errors.load(Ordering::Relaxed),
            ttft,
            tokens as f64 / span,
            elapsed.as_secs_f64(),
        )
    }

    /// Render until `done` resolves.
    pub async fn render_until(&self, done: impl std::future::Future<Output = ()>) {
        tokio::pin!(done);
        let mut tick = tokio::time::interval(self.period);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut done => break,
                _ = tick.tick() => self.render(),
            }
        }
        if self.tty {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }

    fn render(&self) {
        if self.tty {
            eprint!("\r\x1b[2K{}", self.line());
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{}", self.line());
        }
    }
}

fn fmt_opt(v: Option<f64>, scale: f64, digits: usize) -> String {
    v.map(|x| format!("{:.*}", digits, x * scale))
        .unwrap_or_else(|| "n/a".into())
}

/// The summary table printed after a run (latencies in ms).
pub fn summary_table(title: &str, a: &AggregatedMetrics) -> String {
    let s = &a.stats;
    let mut out = String::new();
    out.push_str(&format!("\n{title}\n"));
    out.push_str(&format!(
        "  requests: {} ok, {} errors (error rate {:.1}%), {:.2} req/s, {:.1} req/min over {:.1} s{}\n",
        a.num_completed_requests,
        a.num_error_requests,
        a.error_rate * 100.0,
        a.requests_per_second,
        a.requests_per_minute,
        a.run_duration,
        if a.interrupted { " (interrupted)" } else { "" }
    ));
    if !a.error_kinds_frequency.is_empty() {
        let kinds: Vec<String> = a
            .error_kinds_frequency
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let codes: Vec<String> = a
            .error_codes_frequency
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "  errors by cause: {}; by code: {}\n",
            kinds.join(", "),
            codes.join(", ")
        ));
        for e in &a.top_errors {
            out.push_str(&format!(
                "    {}\n",
                crate::plugin::sandbox::display_safe(&e.summary(), 400)
            ));
        }
    }
    if a.num_cancelled_requests > 0 {
        out.push_str(&format!(
            "  cancelled in flight (not counted as errors or in the stats): {}\n",
            a.num_cancelled_requests
        ));
    }
    if a.num_output_tokens_from_tokenizer > 0 {
        out.push_str(&format!(
            "  note: the server reported no usage for {} requests; their output tokens were counted with the tokenizer\n",
            a.num_output_tokens_from_tokenizer
        ));
    }
    out.push_str(&format!(
        "  throughput: output {:.1} tok/s, input {:.1} tok/s, total {:.1} tok/s\n",
        a.mean_output_throughput_tokens_per_s,
        a.mean_input_throughput_tokens_per_s,
        a.mean_total_tokens_throughput_tokens_per_s
    ));
    if let (Some(req), Some(o)) = (a.requested_qps, &a.arrivals) {
        out.push_str(&format!(
            "  open loop: requested {:.2} req/s ({}{}{}), achieved {}, {} sent\n",
            req,
            o.distribution.as_str(),
            if o.distribution == crate::load::Distribution::Gamma {
                format!(" burstiness {}", o.burstiness)
            } else {
                String::new()
            },
            o.max_concurrency
                .map(|c| format!(", at most {c} in flight"))
                .unwrap_or_default(),
            a.achieved_qps
                .map(|q| format!("{q:.2} req/s"))
                .unwrap_or_else(|| "n/a".into()),
            a.total_arrivals.unwrap_or(0),
        ));
    }
    if let Some(g) = &a.goodput {
        out.push_str(&format!(
            "  goodput: {:.2} req/s; {} of {} requests ({:.1}%) met {} -> {} (needs {:.1}%)\n",
            g.goodput_requests_per_second,
            g.num_good_requests,
            a.num_requests,
            g.attainment * 100.0,
            g.slos.join(", "),
            if g.meets_slo {
                "meets the SLOs"
            } else {
                "MISSES the SLOs"
            },
            g.required_attainment * 100.0,
        ));
    }
    let v = &a.validity;
    if v.valid {
        out.push_str("  validity: valid (the client kept up)\n");
    } else {
        out.push_str(&format!(
            "  validity: INVALID, the run did not measure the server: {}\n",
            crate::plugin::sandbox::display_safe(&v.reasons.join("; "), 2000)
        ));
    }
    out.push_str("  metric                      mean        p50        p90        p99\n");
    let row = |name: &str, f: &crate::metrics::StatField, scale: f64, digits: usize| {
        format!(
            "  {name:<22} {:>10} {:>10} {:>10} {:>10}\n",
            fmt_opt(f.mean, scale, digits),
            fmt_opt(f.p50, scale, digits),
            fmt_opt(f.p90, scale, digits),
            fmt_opt(f.p99, scale, digits)
        )
    };
    if a.ttft_measured {
        out.push_str(&row("TTFT (ms)", &s.ttft, 1000.0, 1));
        if !s.ttft_corrected.is_empty() {
            out.push_str(&row("TTFT corrected (ms)", &s.ttft_corrected, 1000.0, 1));
        }
        out.push_str(&row("TPOT (ms)", &s.tpot, 1000.0, 2));
        out.push_str(&row("inter-chunk (ms)", &s.inter_chunk_latency, 1000.0, 2));
    } else {
        out.push_str("  TTFT / TPOT            not measured (non-streaming)\n");
    }
    out.push_str(&row("E2E latency (ms)", &s.e2e_latency, 1000.0, 1));
    if !s.e2e_latency_corrected.is_empty() {
        out.push_str(&row(
            "E2E corrected (ms)",
            &s.e2e_latency_corrected,
            1000.0,
            1,
        ));
        out.push_str(&row("send lag (ms)", &s.send_lag, 1000.0, 2));
    }
    out.push_str(&row(
        "output speed (tok/s)",
        &s.output_inference_speed,
        1.0,
        1,
    ));
    out.push_str(&row("input tokens", &s.num_input_tokens, 1.0, 0));
    out.push_str(&row("output tokens", &s.num_output_tokens, 1.0, 0));
    out
}
