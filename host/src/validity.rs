//! Whether a run measured the server or the client: a verdict from what the
//! client recorded about itself. A run whose client could not keep up
//! (late sends, a backlog between chunk arrival and parsing, a saturated
//! CPU) is marked invalid, with the reasons, in the summary and the JSON.

use serde::{Deserialize, Serialize};

use crate::metrics::{RequestRecord, RunInfo};

/// Limits a valid run stays within (`--validity-*` flags).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Thresholds {
    /// Open loop: p99 of how late the dispatcher woke for a slot, ms.
    pub max_pacing_error_ms: f64,
    /// Open loop: p99 of the client's own send lag (send lag minus time
    /// spent waiting for the concurrency cap), ms.
    pub max_send_lag_ms: f64,
    /// p99 of body hand-over to parsed events, ms.
    pub max_parse_delay_ms: f64,
    /// Client CPU use as a fraction of the machine's cores.
    pub max_client_cpu: f64,
    /// Open loop without a cap: achieved / requested rate must reach this.
    pub min_rate_ratio: f64,
    /// Closed loop: the share of the workers' time spent waiting for a
    /// prompt (concurrency × wall time) must stay below this.
    #[serde(default = "default_max_prompt_wait")]
    pub max_prompt_wait: f64,
}

fn default_max_prompt_wait() -> f64 {
    Thresholds::default().max_prompt_wait
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_pacing_error_ms: 10.0,
            max_send_lag_ms: 50.0,
            max_parse_delay_ms: 20.0,
            max_client_cpu: 0.9,
            min_rate_ratio: 0.95,
            max_prompt_wait: 0.05,
        }
    }
}

/// What the verdict was computed from (ms unless named otherwise).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Measures {
    /// Open loop: dispatcher wake-up minus scheduled time, p50 / p99 / max.
    pub pacing_error_p50_ms: Option<f64>,
    pub pacing_error_p99_ms: Option<f64>,
    pub pacing_error_max_ms: Option<f64>,
    /// Open loop: actual minus scheduled send, p50 / p99.
    pub send_lag_p50_ms: Option<f64>,
    pub send_lag_p99_ms: Option<f64>,
    /// Open loop: send lag less the wait for the concurrency cap, p99.
    pub client_send_lag_p99_ms: Option<f64>,
    /// Open loop: wait for the concurrency cap, p99.
    pub cap_wait_p99_ms: Option<f64>,
    /// Body hand-over to parsed events, p50 / p99 / max over all hand-overs.
    pub parse_delay_p50_ms: Option<f64>,
    pub parse_delay_p99_ms: Option<f64>,
    pub parse_delay_max_ms: Option<f64>,
    /// Process CPU time over wall time, in cores.
    pub client_cpu_cores: Option<f64>,
    /// `client_cpu_cores` over the cores available.
    pub client_cpu_fraction: Option<f64>,
    /// Cores available to the process.
    pub cores: Option<f64>,
    /// Open loop: achieved over requested rate.
    pub rate_ratio: Option<f64>,
    /// Closed loop: the workers' wait for prompts, p99 (ms) and as a share
    /// of concurrency × wall time.
    #[serde(default)]
    pub prompt_wait_p99_ms: Option<f64>,
    #[serde(default)]
    pub prompt_wait_fraction: Option<f64>,
    /// Open loop: the rate of the drawn schedule over the requests sent
    /// (req/s), which `rate_ratio` compares the achieved rate with.
    #[serde(default)]
    pub scheduled_rate: Option<f64>,
    /// CPU used by other processes during the run, in cores.
    #[serde(default)]
    pub other_processes_cpu_cores: Option<f64>,
}

/// A run's verdict.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Validity {
    /// Whether every measure stayed within its threshold.
    pub valid: bool,
    /// Why not, one line per measure out of bounds.
    pub reasons: Vec<String>,
    /// The measures.
    pub measures: Measures,
    /// The thresholds applied.
    pub thresholds: Option<Thresholds>,
}

/// Cores this process may use.
pub fn cores() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

/// CPU time (user + system) this process has used so far.
pub fn process_cpu_time() -> Option<std::time::Duration> {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return None;
    }
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec.max(0) as u64)
            + std::time::Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Some(tv(ru.ru_utime) + tv(ru.ru_stime))
}

/// CPU time (busy, all states but idle and iowait) of the whole machine so
/// far, from the first line of `/proc/stat`; `None` off Linux.
pub fn machine_cpu_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| v.get(*i))
        .sum::<u64>();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| std::time::Duration::from_secs_f64(busy as f64 / hz as f64))
}

/// CPU use measured over less than this (seconds) is start-up noise, not a
/// verdict on the client.
const MIN_CPU_WINDOW_S: f64 = 1.0;

/// Other processes using more than this share of the cores during a run
/// are named in the verdict: the machine was busy, not only the client.
const BUSY_MACHINE_SHARE: f64 = 0.25;

fn p(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i] * 1000.0)
}

fn sorted(v: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = v.filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Judge a run from its records (all of them: warmup included, since the
/// client's health matters for every request sent).
pub fn judge(records: &[RequestRecord], info: &RunInfo) -> Validity {
    let t = info.thresholds;
    let pacing = sorted(records.iter().filter_map(|r| r.pacing_error));
    let lag = sorted(records.iter().filter_map(|r| r.send_lag));
    let client_lag = sorted(
        records
            .iter()
            .filter_map(|r| Some(r.send_lag? - r.cap_wait.unwrap_or(0.0))),
    );
    let cap = sorted(records.iter().filter_map(|r| r.cap_wait));
    let parse = sorted(records.iter().flat_map(|r| r.parse_delays.iter().copied()));
    let waits: Vec<f64> = records.iter().filter_map(|r| r.prompt_wait).collect();
    let slots = info.num_concurrency * info.wall_duration;
    let prompt_wait_fraction = (info.open_loop.is_none() && !waits.is_empty() && slots > 0.0)
        .then(|| waits.iter().sum::<f64>() / slots);
    let waits = sorted(waits.into_iter());
    let cores = cores();
    let mut m = Measures {
        pacing_error_p50_ms: p(&pacing, 0.5),
        pacing_error_p99_ms: p(&pacing, 0.99),
        pacing_error_max_ms: pacing.last().map(|x| x * 1000.0),
        send_lag_p50_ms: p(&lag, 0.5),
        send_lag_p99_ms: p(&lag, 0.99),
        client_send_lag_p99_ms: p(&client_lag, 0.99),
        cap_wait_p99_ms: p(&cap, 0.99),
        parse_delay_p50_ms: p(&parse, 0.5),
        parse_delay_p99_ms: p(&parse, 0.99),
        parse_delay_max_ms: parse.last().map(|x| x * 1000.0),
        client_cpu_cores: info.client_cpu_cores,
        client_cpu_fraction: info.client_cpu_cores.map(|c| c / cores),
        cores: Some(cores),
        rate_ratio: None,
        prompt_wait_p99_ms: p(&waits, 0.99),
        prompt_wait_fraction,
        scheduled_rate: None,
        other_processes_cpu_cores: None,
    };
    let mut reasons = Vec::new();
    let mut check = |v: Option<f64>, max: f64, what: &str, flag: &str| {
        if let Some(v) = v.filter(|v| *v > max) {
            reasons.push(format!("{what} {v:.2} exceeds {max} ({flag})"));
        }
    };
    check(
        m.pacing_error_p99_ms,
        t.max_pacing_error_ms,
        "the dispatcher woke late for its slots: pacing error p99 (ms)",
        "--validity-max-pacing-error-ms",
    );
    check(
        m.client_send_lag_p99_ms,
        t.max_send_lag_ms,
        "requests left late, not counting the concurrency cap: send lag p99 (ms)",
        "--validity-max-send-lag-ms",
    );
    check(
        m.parse_delay_p99_ms,
        t.max_parse_delay_ms,
        "response bodies waited to be parsed: hand-over-to-parse delay p99 (ms)",
        "--validity-max-parse-delay-ms",
    );
    // CPU over a sub-second run is dominated by thread start-up: a run of
    // refused connections that lasted 0 s is not a saturated client.
    if info.wall_duration >= MIN_CPU_WINDOW_S {
        check(
            m.client_cpu_fraction,
            t.max_client_cpu,
            "the client's CPU was saturated: CPU use (fraction of cores)",
            "--validity-max-client-cpu",
        );
    }
    check(
        m.prompt_wait_fraction,
        t.max_prompt_wait,
        "workers waited for the prompt sampler, so the concurrency was not held: \
         share of worker time",
        "--validity-max-prompt-wait",
    );
    if let Some(o) = &info.open_loop {
        // Judged against the schedule that was drawn, not the nominal rate:
        // a gamma or Poisson draw of a few hundred arrivals can be 10% off
        // its mean rate with a client that kept every appointment.
        let achieved = crate::metrics::achieved_rate(records);
        let drawn = crate::metrics::scheduled_rate(records);
        m.scheduled_rate = drawn;
        m.rate_ratio = achieved.zip(drawn).map(|(a, d)| a / d);
        if o.max_concurrency.is_none()
            && let Some(r) = m.rate_ratio.filter(|r| *r < t.min_rate_ratio)
        {
            reasons.push(format!(
                "the achieved rate was {:.1}% of the drawn schedule's {:.2} req/s (requested {} req/s), \
                 below {}% (--validity-min-rate-ratio)",
                r * 100.0,
                drawn.unwrap_or(0.0),
                o.requested_qps,
                t.min_rate_ratio * 100.0
            ));
        }
    }
    // Other processes' load: a late client on a busy machine is the
    // machine's doing; say so rather than blame the client alone.
    if info.wall_duration >= MIN_CPU_WINDOW_S
        && let (Some(all), Some(ours)) = (info.machine_cpu_cores, info.client_cpu_cores)
    {
        let others = (all - ours).max(0.0);
        m.other_processes_cpu_cores = Some(others);
        if !reasons.is_empty() && others / cores > BUSY_MACHINE_SHARE {
            reasons.push(format!(
                "the machine was busy: other processes used {others:.2} of its {cores} cores \
                 during the run, so the client may have been starved by them"
            ));
        }
    }
    Validity {
        valid: reasons.is_empty(),
        reasons,
        measures: m,
        thresholds: Some(t),
    }
}

/// What a run's results say about whether it measured anything.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Successful requests in the measured window.
    pub completed: u64,
    /// Failed requests in the measured window.
    pub failed: u64,
    /// Length of the measured window, seconds.
    pub window_s: f64,
    /// Median end-to-end latency of the successful requests, seconds.
    pub median_e2e_s: Option<f64>,
}

/// Add the verdicts on the run's outcome: a run where nothing succeeded
/// measured nothing of the server, and throughput over a window shorter
/// than a typical request (too few requests left after warmup and
/// cooldown) is an artefact, not a rate.
pub fn judge_outcome(v: &mut Validity, o: Outcome, top_error: Option<&str>) {
    if o.completed == 0 {
        let why = match (o.failed, top_error) {
            (0, _) => "no request completed (none was sent, or all were cancelled)".to_string(),
            (n, Some(e)) => format!("all {n} requests failed; most common error: {e}"),
            (n, None) => format!("all {n} requests failed"),
        };
        v.reasons
            .push(format!("{why}: the run measured nothing of the server"));
    } else if let Some(m) = o.median_e2e_s
        && o.window_s < m
    {
        v.reasons.push(format!(
            "the measured window ({:.3} s, {} successful requests) is shorter than a typical request \
             (median e2e {:.3} s): its throughput is not a rate; send more requests \
             (--max-requests-per-run) or lower --warmup-ratio/--cooldown-ratio",
            o.window_s, o.completed, m
        ));
    }
    v.valid = v.reasons.is_empty();
}

/// `--validity-*` flags.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Validity (when a run measured the client, not the server)")]
pub struct ValidityArgs {
    /// A run is invalid if the dispatcher's pacing error p99 exceeds this (ms, open loop).
    #[arg(long, default_value_t = Thresholds::default().max_pacing_error_ms, value_parser = parse_nonneg)]
    pub validity_max_pacing_error_ms: f64,
    /// A run is invalid if the client's send lag p99 (cap wait excluded) exceeds this (ms, open loop).
    #[arg(long, default_value_t = Thresholds::default().max_send_lag_ms, value_parser = parse_nonneg)]
    pub validity_max_send_lag_ms: f64,
    /// A run is invalid if the delay from handing a body to the parser to its parsed events exceeds this at p99 (ms).
    #[arg(long, default_value_t = Thresholds::default().max_parse_delay_ms, value_parser = parse_nonneg)]
    pub validity_max_parse_delay_ms: f64,
    /// A run is invalid if the client used more than this fraction of the machine's cores.
    #[arg(long, default_value_t = Thresholds::default().max_client_cpu, value_parser = parse_nonneg)]
    pub validity_max_client_cpu: f64,
    /// An uncapped open-loop run is invalid if achieved/requested rate is below this.
    #[arg(long, default_value_t = Thresholds::default().min_rate_ratio, value_parser = parse_nonneg)]
    pub validity_min_rate_ratio: f64,
    /// A closed-loop run is invalid if its workers spent more than this share of their time waiting for prompts.
    #[arg(long, default_value_t = Thresholds::default().max_prompt_wait, value_parser = parse_nonneg)]
    pub validity_max_prompt_wait: f64,
}

impl ValidityArgs {
    /// The thresholds the flags set.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            max_pacing_error_ms: self.validity_max_pacing_error_ms,
            max_send_lag_ms: self.validity_max_send_lag_ms,
            max_parse_delay_ms: self.validity_max_parse_delay_ms,
            max_client_cpu: self.validity_max_client_cpu,
            min_rate_ratio: self.validity_min_rate_ratio,
            max_prompt_wait: self.validity_max_prompt_wait,
        }
    }
}

fn parse_nonneg(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a non-negative number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RunInfo;

    fn info(open: bool, cpu: Option<f64>) -> RunInfo {
        RunInfo {
            scenario: "D(1,1)".into(),
            num_concurrency: 1.0,
            batch_size: 1,
            iteration_type: "qps".into(),
            warmup_ratio: 0.0,
            cooldown_ratio: 0.0,
            stream: true,
            wall_duration: 1.0,
            interrupted: false,
            character_token_ratio: 4.0,
            open_loop: open.then_some(crate::metrics::OpenLoop {
                requested_qps: 10.0,
                distribution: crate::load::Distribution::Constant,
                burstiness: 1.0,
                max_concurrency: None,
                seed: 0,
            }),
            slos: Vec::new(),
            slo_attainment: 0.99,
            thresholds: Thresholds::default(),
            client_cpu_cores: cpu,
            machine_cpu_cores: None,
            run_start_unix_s: 0.0,
            run_start_monotonic_s: None,
            shard: None,
        }
    }

    fn rec(start: f64, lag: f64, cap: f64, parse_ms: f64) -> RequestRecord {
        let v = serde_json::json!({
            "ttft": 0.1, "tpot": 0.01, "e2e_latency": 1.0, "output_latency": 0.9,
            "output_inference_speed": 100.0, "num_input_tokens": 1, "num_output_tokens": 2,
            "total_tokens": 3, "input_throughput": 1.0, "output_throughput": 1.0,
            "error_code": null, "error_message": null, "error_kind": null,
            "server_prompt_tokens": null, "num_reasoning_tokens": null,
            "output_tokens_source": "usage", "plugin": "p", "start_offset": start,
            "excluded": null, "send_lag": lag, "cap_wait": cap, "pacing_error": 0.0001,
            "end_offset": start + 1.0
        });
        let mut r: RequestRecord = serde_json::from_value(v).unwrap();
        r.parse_delays = vec![parse_ms / 1000.0];
        r
    }

    #[test]
    fn a_keeping_up_client_is_valid() {
        let rs: Vec<_> = (0..20)
            .map(|i| rec(i as f64 * 0.1, 0.001, 0.0, 0.5))
            .collect();
        let v = judge(&rs, &info(true, Some(0.1)));
        assert!(v.valid, "{:?}", v.reasons);
        assert!((v.measures.rate_ratio.unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn each_rule_names_its_flag() {
        // Late sends.
        let rs: Vec<_> = (0..20)
            .map(|i| rec(i as f64 * 0.1, 0.2, 0.0, 0.5))
            .collect();
        let v = judge(&rs, &info(true, None));
        assert!(!v.valid);
        assert!(
            v.reasons[0].contains("--validity-max-send-lag-ms"),
            "{:?}",
            v.reasons
        );
        // The same lag spent waiting for the cap is the user's choice.
        let rs: Vec<_> = (0..20)
            .map(|i| rec(i as f64 * 0.1, 0.2, 0.199, 0.5))
            .collect();
        assert!(judge(&rs, &info(true, None)).valid);
        // A parse backlog.
        let rs: Vec<_> = (0..20)
            .map(|i| rec(i as f64 * 0.1, 0.0, 0.0, 80.0))
            .collect();
        let v = judge(&rs, &info(false, None));
        assert!(v.reasons[0].contains("--validity-max-parse-delay-ms"));
        // A saturated CPU.
        let v = judge(&[], &info(false, Some(cores())));
        assert!(v.reasons[0].contains("--validity-max-client-cpu"));
        // Half the drawn schedule's rate: due every 0.1 s, sent every 0.2 s
        // (the lag spent on the cap, so only the rate rule fires).
        let rs: Vec<_> = (0..20)
            .map(|i| {
                let lag = i as f64 * 0.1;
                rec(i as f64 * 0.2, lag, lag, 0.5)
            })
            .collect();
        let v = judge(&rs, &info(true, None));
        assert!(
            v.reasons[0].contains("--validity-min-rate-ratio"),
            "{:?}",
            v.reasons
        );
        assert!((v.measures.scheduled_rate.unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_rate_is_judged_against_the_drawn_schedule_not_the_nominal_rate() {
        // 10 req/s asked, the draw came out at 8 req/s and every request
        // left on time: the client kept up.
        let rs: Vec<_> = (0..20)
            .map(|i| rec(i as f64 * 0.125, 0.0, 0.0, 0.5))
            .collect();
        let v = judge(&rs, &info(true, None));
        assert!(v.valid, "{:?}", v.reasons);
        assert!((v.measures.rate_ratio.unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn cpu_over_a_sub_second_run_is_not_a_verdict() {
        let mut i = info(false, Some(cores()));
        i.wall_duration = 0.01;
        assert!(judge(&[], &i).valid);
        i.wall_duration = 2.0;
        assert!(!judge(&[], &i).valid);
    }

    #[test]
    fn a_busy_machine_is_named_when_the_client_fell_behind() {
        let rs: Vec<_> = (0..20)
            .map(|i| rec(i as f64 * 0.1, 0.0, 0.0, 80.0))
            .collect();
        let mut i = info(false, Some(0.1));
        i.machine_cpu_cores = Some(0.1 + cores() * 0.8);
        let v = judge(&rs, &i);
        assert!(
            v.reasons.iter().any(|r| r.contains("the machine was busy")),
            "{:?}",
            v.reasons
        );
        // Others' load alone does not make a keeping-up run invalid.
        let rs: Vec<_> = (0..20)
            .map(|i| rec(i as f64 * 0.1, 0.0, 0.0, 0.5))
            .collect();
        assert!(judge(&rs, &i).valid);
    }

    #[test]
    fn outcomes_that_measured_nothing_are_invalid() {
        let o = |completed, failed, window_s, median| Outcome {
            completed,
            failed,
            window_s,
            median_e2e_s: median,
        };
        let mut v = Validity {
            valid: true,
            ..Validity::default()
        };
        judge_outcome(&mut v, o(0, 5, 1.0, None), Some("403 http ×5: bad key"));
        assert!(!v.valid);
        assert!(
            v.reasons[0].contains("all 5 requests failed"),
            "{:?}",
            v.reasons
        );
        assert!(v.reasons[0].contains("bad key"));
        let mut v = Validity {
            valid: true,
            ..Validity::default()
        };
        judge_outcome(&mut v, o(1, 0, 0.01, Some(0.5)), None);
        assert!(!v.valid);
        assert!(v.reasons[0].contains("shorter than a typical request"));
        let mut v = Validity {
            valid: true,
            ..Validity::default()
        };
        judge_outcome(&mut v, o(10, 1, 5.0, Some(0.5)), None);
        assert!(v.valid, "{:?}", v.reasons);
    }

    #[test]
    fn workers_starved_of_prompts_make_a_closed_loop_run_invalid() {
        // 4 workers over 10 s: 40 worker-seconds; 10 requests each waited
        // 0.3 s for a prompt, 7.5% of the time.
        let mut i = info(false, None);
        i.num_concurrency = 4.0;
        i.wall_duration = 10.0;
        let waited = |w: f64| -> Vec<RequestRecord> {
            (0..10)
                .map(|k| {
                    let mut r = rec(k as f64, 0.0, 0.0, 0.5);
                    r.send_lag = None;
                    r.cap_wait = None;
                    r.prompt_wait = Some(w);
                    r
                })
                .collect()
        };
        let v = judge(&waited(0.3), &i);
        assert!(!v.valid);
        assert!((v.measures.prompt_wait_fraction.unwrap() - 0.075).abs() < 1e-9);
        assert!(
            v.reasons[0].contains("--validity-max-prompt-wait"),
            "{:?}",
            v.reasons
        );
        // A prompt always ready: valid.
        let v = judge(&waited(0.0001), &i);
        assert!(v.valid, "{:?}", v.reasons);
        assert!((v.measures.prompt_wait_p99_ms.unwrap() - 0.1).abs() < 1e-6);
    }
}
