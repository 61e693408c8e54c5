//! Open-loop load: arrival schedules at a requested rate, SLOs and goodput,
//! and how a load is split between shards (several load-generator machines).

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution as _, Exp, Gamma};
use serde::Serialize;

use crate::metrics::RequestRecord;

/// Inter-arrival distribution of an open-loop run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Fixed gaps of 1/rate.
    Constant,
    /// Exponential gaps (a Poisson process), mean 1/rate.
    Poisson,
    /// Gamma gaps with shape = burstiness and mean 1/rate (as vLLM
    /// bench_serving): burstiness < 1 is burstier than Poisson, > 1 smoother.
    Gamma,
}

impl Distribution {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::Constant => "constant",
            Distribution::Poisson => "poisson",
            Distribution::Gamma => "gamma",
        }
    }
}

/// Most scheduled requests precomputed for one run (memory bound: 8 bytes each).
pub const MAX_SCHEDULED: u64 = 50_000_000;

/// Send times of an open-loop run, seconds from the run start, ascending:
/// the first request at 0, then cumulative gaps drawn from `dist` with
/// `StdRng` seeded by `seed` (same seed, same schedule). Stops at `n`
/// requests or at the first time at or after `horizon` seconds.
pub fn schedule(
    rate: f64,
    dist: Distribution,
    burstiness: f64,
    seed: u64,
    n: u64,
    horizon: f64,
) -> Vec<f64> {
    assert!(
        rate > 0.0 && burstiness > 0.0,
        "validated by the flag parsers"
    );
    let n = n.min(MAX_SCHEDULED);
    let mut rng = StdRng::seed_from_u64(seed);
    let exp = Exp::new(rate).expect("rate > 0");
    let gamma = Gamma::new(burstiness, 1.0 / (rate * burstiness)).expect("shape, scale > 0");
    let mut out = Vec::with_capacity(n.min(1 << 20) as usize);
    let mut t = 0.0f64;
    while (out.len() as u64) < n && t < horizon {
        out.push(t);
        t += match dist {
            Distribution::Constant => 1.0 / rate,
            Distribution::Poisson => exp.sample(&mut rng),
            Distribution::Gamma => gamma.sample(&mut rng),
        };
    }
    out
}

/// A latency metric an SLO can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SloMetric {
    /// Time to first token.
    Ttft,
    /// Time per output token.
    Tpot,
    /// End-to-end latency.
    E2e,
}

/// One service-level objective: `metric <= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slo {
    /// What is bounded.
    pub metric: SloMetric,
    /// Bound, seconds.
    pub threshold_s: f64,
}

impl std::fmt::Display for Slo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.metric {
            SloMetric::Ttft => "ttft",
            SloMetric::Tpot => "tpot",
            SloMetric::E2e => "e2e",
        };
        write!(f, "{name}<={}ms", self.threshold_s * 1000.0)
    }
}

/// Parse a duration with a unit: `500ms`, `1.5s`, `250us`; a bare number
/// is milliseconds (as vLLM's `--goodput`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, factor) = if let Some(v) = t.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = t.strip_suffix("us") {
        (v, 1e-6)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1.0)
    } else {
        (t, 1e-3)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v * factor <= 86_400.0 => {
            Ok(Duration::from_secs_f64(v * factor))
        }
        _ => Err(format!(
            "'{s}' is not a positive duration such as 500ms, 1.5s or 250us (a bare number is ms)"
        )),
    }
}

/// Parse `--slo ttft=500ms` (metrics: ttft, tpot, e2e); `ttft<=500ms`,
/// as result files write SLOs, is accepted too.
pub fn parse_slo(s: &str) -> Result<Slo, String> {
    let (k, v) = s
        .split_once("<=")
        .or_else(|| s.split_once('='))
        .ok_or_else(|| {
            format!(
                "'{s}' is not an SLO; expected METRIC=DURATION, e.g. ttft=500ms, tpot=50ms, e2e=10s"
            )
        })?;
    let metric = match k.trim().to_ascii_lowercase().as_str() {
        "ttft" => SloMetric::Ttft,
        "tpot" => SloMetric::Tpot,
        "e2e" | "e2el" | "e2e_latency" => SloMetric::E2e,
        other => {
            return Err(format!(
                "unknown SLO metric '{other}' in '{s}'; use ttft, tpot or e2e"
            ));
        }
    };
    Ok(Slo {
        metric,
        threshold_s: parse_duration(v)?.as_secs_f64(),
    })
}

/// Whether a request met every SLO. Failed requests never do; an SLO on a
/// metric that was not measured (TTFT without streaming) is not met.
/// Latencies are the corrected ones (from the scheduled send time) when
/// the run was open loop, so a request that waited to be sent pays for it.
pub fn meets_all(r: &RequestRecord, slos: &[Slo]) -> bool {
    if !r.ok() {
        return false;
    }
    slos.iter().all(|s| {
        let v = match s.metric {
            SloMetric::Ttft => r.ttft_corrected.or(r.ttft),
            SloMetric::Tpot => r.tpot,
            SloMetric::E2e => r.e2e_latency_corrected.or(r.e2e_latency),
        };
        v.is_some_and(|v| v <= s.threshold_s)
    })
}

/// Goodput of a run: requests meeting every SLO.
#[derive(Debug, Clone, Serialize)]
pub struct Goodput {
    /// The SLOs, as `metric<=Nms`.
    pub slos: Vec<String>,
    /// Requests (in the stats window, errors included) meeting every SLO.
    pub num_good_requests: u64,
    /// Good requests over all requests in the window (SLO attainment).
    pub attainment: f64,
    /// Good requests per second over the run duration.
    pub goodput_requests_per_second: f64,
    /// The attainment a run must reach to meet the SLOs (`--slo-attainment`).
    pub required_attainment: f64,
    /// Whether `attainment >= required_attainment`.
    pub meets_slo: bool,
}

/// Goodput of the records kept in the stats (not excluded, not cancelled).
pub fn goodput(kept: &[&RequestRecord], slos: &[Slo], duration: f64, required: f64) -> Goodput {
    let good = kept.iter().filter(|r| meets_all(r, slos)).count() as u64;
    let attainment = if kept.is_empty() {
        0.0
    } else {
        good as f64 / kept.len() as f64
    };
    Goodput {
        slos: slos.iter().map(|s| s.to_string()).collect(),
        num_good_requests: good,
        attainment,
        goodput_requests_per_second: if duration > 0.0 {
            good as f64 / duration
        } else {
            0.0
        },
        required_attainment: required,
        meets_slo: !kept.is_empty() && attainment >= required,
    }
}

/// Which part of the load a process generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// From 0.
    pub index: u32,
    /// Shards in all.
    pub count: u32,
}

impl Shard {
    /// The whole load.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// This shard's share of an integer total: `total / count`, plus one
    /// for the first `total % count` shards, so the shares add up exactly.
    pub fn share(&self, total: u64) -> u64 {
        let (n, i) = (u64::from(self.count), u64::from(self.index));
        total / n + u64::from(i < total % n)
    }

    /// This shard's share of a rate: `rate / count`.
    pub fn share_rate(&self, rate: f64) -> f64 {
        rate / f64::from(self.count)
    }

    /// Whether this is the whole load.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule() {
        let a = schedule(20.0, Distribution::Poisson, 1.0, 7, 500, f64::INFINITY);
        let b = schedule(20.0, Distribution::Poisson, 1.0, 7, 500, f64::INFINITY);
        let c = schedule(20.0, Distribution::Poisson, 1.0, 8, 500, f64::INFINITY);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a[0], 0.0);
        assert!(a.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn rates_and_shapes_are_right() {
        let n = 20_000;
        let mean_gap = |v: &[f64]| v.last().unwrap() / (v.len() - 1) as f64;
        let c = schedule(50.0, Distribution::Constant, 1.0, 1, 101, f64::INFINITY);
        assert!((c[100] - 2.0).abs() < 1e-9);
        let p = schedule(50.0, Distribution::Poisson, 1.0, 1, n, f64::INFINITY);
        assert!(
            (mean_gap(&p) - 0.02).abs() < 0.02 * 0.03,
            "{}",
            mean_gap(&p)
        );
        // Gamma: mean 1/rate whatever the shape; coefficient of variation
        // 1/sqrt(shape).
        for shape in [0.25, 1.0, 4.0] {
            let g = schedule(50.0, Distribution::Gamma, shape, 3, n, f64::INFINITY);
            let gaps: Vec<f64> = g.windows(2).map(|w| w[1] - w[0]).collect();
            let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let sd =
                (gaps.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / gaps.len() as f64).sqrt();
            assert!((m - 0.02).abs() < 0.02 * 0.05, "shape {shape}: mean {m}");
            let cv = sd / m;
            let want = 1.0 / f64::sqrt(shape);
            assert!((cv - want).abs() < want * 0.08, "shape {shape}: cv {cv}");
        }
    }

    #[test]
    fn horizon_bounds_the_schedule() {
        let s = schedule(10.0, Distribution::Constant, 1.0, 0, 1000, 2.0);
        assert_eq!(s.len(), 20);
    }

    #[test]
    fn slos_parse_with_units() {
        assert_eq!(
            parse_slo("ttft=500ms").unwrap(),
            Slo {
                metric: SloMetric::Ttft,
                threshold_s: 0.5
            }
        );
        assert_eq!(parse_slo("e2e=2s").unwrap().threshold_s, 2.0);
        assert_eq!(parse_slo("TPOT=50").unwrap().threshold_s, 0.05);
        assert!((parse_slo("tpot=250us").unwrap().threshold_s - 250e-6).abs() < 1e-12);
        assert!(parse_slo("ttft").unwrap_err().contains("METRIC=DURATION"));
        assert!(
            parse_slo("itl=5ms")
                .unwrap_err()
                .contains("unknown SLO metric")
        );
        assert!(
            parse_slo("ttft=-1ms")
                .unwrap_err()
                .contains("positive duration")
        );
        assert!(parse_slo("ttft=fast").is_err());
        let slo = parse_slo("e2e=1.5s").unwrap();
        assert_eq!(parse_slo(&slo.to_string()).unwrap(), slo);
    }

    #[test]
    fn shares_add_up() {
        for count in 1..=5u32 {
            for total in [0u64, 1, 7, 64, 100] {
                let sum: u64 = (0..count)
                    .map(|index| Shard { index, count }.share(total))
                    .sum();
                assert_eq!(sum, total);
            }
        }
        assert_eq!(Shard { index: 0, count: 3 }.share(7), 3);
        assert_eq!(Shard { index: 2, count: 3 }.share(7), 2);
    }
}
