//! Simulator configuration: the [`SimConfig`] the API takes and the
//! [`SimArgs`] flags the CLI parses into it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::faults::{self, FaultRate};
use super::rng::Rng;

/// A latency distribution in milliseconds; draws are clamped at 0.
///
/// Text form (for flags): `5` or `constant:5`, `normal:MEAN,SD`,
/// `lognormal:MEAN,SD`. For `lognormal`, MEAN and SD are those of the
/// latency itself, not of its logarithm.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "dist")]
pub enum LatencyDist {
    /// Always `ms`.
    Constant {
        /// Milliseconds.
        ms: f64,
    },
    /// Normal with this mean and standard deviation (ms).
    Normal {
        /// Mean, ms.
        mean: f64,
        /// Standard deviation, ms.
        sd: f64,
    },
    /// Log-normal whose own mean and standard deviation are these (ms).
    LogNormal {
        /// Mean, ms.
        mean: f64,
        /// Standard deviation, ms.
        sd: f64,
    },
}

impl LatencyDist {
    /// A constant latency of `ms` milliseconds.
    pub fn constant(ms: f64) -> Self {
        LatencyDist::Constant { ms }
    }

    /// The mean in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        match *self {
            LatencyDist::Constant { ms } => ms,
            LatencyDist::Normal { mean, .. } | LatencyDist::LogNormal { mean, .. } => mean,
        }
    }

    pub(crate) fn is_zero(&self) -> bool {
        matches!(*self, LatencyDist::Constant { ms } if ms == 0.0)
    }

    /// One draw in seconds, never negative.
    pub(crate) fn sample_secs(&self, rng: &mut Rng) -> f64 {
        let ms = match *self {
            LatencyDist::Constant { ms } => ms,
            LatencyDist::Normal { mean, sd } => mean + sd * rng.std_normal(),
            LatencyDist::LogNormal { mean, sd } => {
                if mean <= 0.0 {
                    0.0
                } else {
                    // Moments of the log-normal matched to (mean, sd).
                    let s2 = (1.0 + (sd / mean).powi(2)).ln();
                    let mu = mean.ln() - s2 / 2.0;
                    (mu + s2.sqrt() * rng.std_normal()).exp()
                }
            }
        };
        ms.max(0.0) / 1000.0
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        let (a, b) = match *self {
            LatencyDist::Constant { ms } => (ms, 0.0),
            LatencyDist::Normal { mean, sd } | LatencyDist::LogNormal { mean, sd } => (mean, sd),
        };
        if !(a.is_finite() && b.is_finite() && a >= 0.0 && b >= 0.0) {
            return Err(format!("{what} {self}: values must be finite and >= 0"));
        }
        Ok(())
    }
}

impl fmt::Display for LatencyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LatencyDist::Constant { ms } => write!(f, "constant:{ms}"),
            LatencyDist::Normal { mean, sd } => write!(f, "normal:{mean},{sd}"),
            LatencyDist::LogNormal { mean, sd } => write!(f, "lognormal:{mean},{sd}"),
        }
    }
}

impl FromStr for LatencyDist {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, args) = s.split_once(':').unwrap_or(("constant", s));
        let nums = parse_numbers(s, args)?;
        let d = match (kind.trim().to_ascii_lowercase().as_str(), nums.as_slice()) {
            ("constant", [ms]) => LatencyDist::Constant { ms: *ms },
            ("normal", [mean, sd]) => LatencyDist::Normal {
                mean: *mean,
                sd: *sd,
            },
            ("lognormal", [mean, sd]) => LatencyDist::LogNormal {
                mean: *mean,
                sd: *sd,
            },
            _ => {
                return Err(format!(
                    "latency {s:?}: expected MS, constant:MS, normal:MEAN,SD or lognormal:MEAN,SD"
                ));
            }
        };
        d.validate("latency")?;
        Ok(d)
    }
}

/// A distribution of output lengths in tokens; draws are at least 1.
///
/// Text form: `128` or `constant:128`, `uniform:LO,HI` (inclusive),
/// `normal:MEAN,SD` (rounded).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "dist")]
pub enum LengthDist {
    /// Always `tokens`.
    Constant {
        /// Output tokens.
        tokens: u32,
    },
    /// Uniform over `lo..=hi`.
    Uniform {
        /// Smallest length.
        lo: u32,
        /// Largest length.
        hi: u32,
    },
    /// Normal, rounded to whole tokens.
    Normal {
        /// Mean length.
        mean: f64,
        /// Standard deviation.
        sd: f64,
    },
}

impl LengthDist {
    pub(crate) fn sample(&self, rng: &mut Rng) -> u32 {
        let n = match *self {
            LengthDist::Constant { tokens } => tokens,
            LengthDist::Uniform { lo, hi } => {
                let span = hi.saturating_sub(lo).saturating_add(1);
                lo + rng.below(span)
            }
            LengthDist::Normal { mean, sd } => (mean + sd * rng.std_normal())
                .round()
                .clamp(0.0, u32::MAX as f64) as u32,
        };
        n.max(1)
    }
}

impl fmt::Display for LengthDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LengthDist::Constant { tokens } => write!(f, "constant:{tokens}"),
            LengthDist::Uniform { lo, hi } => write!(f, "uniform:{lo},{hi}"),
            LengthDist::Normal { mean, sd } => write!(f, "normal:{mean},{sd}"),
        }
    }
}

impl FromStr for LengthDist {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, args) = s.split_once(':').unwrap_or(("constant", s));
        let nums = parse_numbers(s, args)?;
        let count = |x: f64| -> Result<u32, String> {
            if x.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&x) {
                Ok(x as u32)
            } else {
                Err(format!("length {s:?}: {x} is not a token count"))
            }
        };
        let d = match (kind.trim().to_ascii_lowercase().as_str(), nums.as_slice()) {
            ("constant", [n]) => LengthDist::Constant { tokens: count(*n)? },
            ("uniform", [lo, hi]) => {
                let (lo, hi) = (count(*lo)?, count(*hi)?);
                if lo > hi {
                    return Err(format!("length {s:?}: LO must not exceed HI"));
                }
                LengthDist::Uniform { lo, hi }
            }
            ("normal", [mean, sd]) if *mean >= 0.0 && *sd >= 0.0 => LengthDist::Normal {
                mean: *mean,
                sd: *sd,
            },
            _ => {
                return Err(format!(
                    "length {s:?}: expected N, constant:N, uniform:LO,HI or normal:MEAN,SD \
                     (non-negative)"
                ));
            }
        };
        Ok(d)
    }
}

fn parse_numbers(whole: &str, args: &str) -> Result<Vec<f64>, String> {
    args.split(',')
        .map(|a| {
            a.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("{whole:?}: {a:?} is not a number"))
        })
        .collect()
}

/// Everything the simulator does, for [`super::start`].
///
/// `SimConfig::default()` binds 127.0.0.1 on any free port with a modest
/// timing model (TTFT 20 ms + 10 µs per input token, 10 ms between tokens);
/// [`SimConfig::zero_delay`] turns every delay off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one ([`super::SimHandle::addr`] tells which).
    pub port: u16,
    /// Model name in responses when the request names none.
    pub model: String,
    /// Fixed part of the time to first token, in ms.
    pub ttft_base_ms: f64,
    /// Prefill cost per input token, in µs, added to the TTFT.
    pub prefill_us_per_token: f64,
    /// Time between consecutive output tokens.
    pub itl: LatencyDist,
    /// Output lengths when the request does not force one (see
    /// [`super`] for the rules). `None`: `max_tokens`, else
    /// `default_output_tokens`.
    pub output_tokens: Option<LengthDist>,
    /// Output length when neither the request nor `output_tokens` gives one.
    pub default_output_tokens: u32,
    /// Load dependence: every delay is multiplied by
    /// `1 + load_factor × (requests in flight − 1)`. 0 turns it off.
    pub load_factor: f64,
    /// Tokens per streamed chunk (≥ 1).
    pub tokens_per_chunk: u32,
    /// With a seed, the i-th request (by arrival) gets the same length,
    /// latencies, text and random fault on every run.
    pub seed: Option<u64>,
    /// Faults drawn at random; see [`FaultRate`].
    pub fault_rates: Vec<FaultRate>,
    /// Length of the `stall` and `slow-headers` faults, in seconds; a
    /// request's `"sim_stall_secs"` overrides it.
    pub stall_secs: f64,
    /// When set, every request except `GET /health` must carry
    /// `Authorization: Bearer <key>` or `Authorization: Api-Key <key>`.
    pub api_key: Option<String>,
    /// Append one JSON line of [`super::GroundTruth`] per finished request here.
    pub ground_truth_path: Option<PathBuf>,
    /// Keep ground truth in memory for [`super::SimHandle::ground_truth`].
    /// Turn off for long runs that only need the file.
    pub keep_ground_truth: bool,
    /// Length of each embedding vector.
    pub embedding_dims: usize,
    /// Send every token group as its own HTTP chunk even when its deadline
    /// has passed, instead of coalescing overdue groups into one frame. With
    /// zero delay this is the worst case for a client: one chunk per token.
    pub frame_per_group: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            model: "genai-bench-sim".to_owned(),
            ttft_base_ms: 20.0,
            prefill_us_per_token: 10.0,
            itl: LatencyDist::constant(10.0),
            output_tokens: None,
            default_output_tokens: 128,
            load_factor: 0.0,
            tokens_per_chunk: 1,
            seed: None,
            fault_rates: Vec::new(),
            stall_secs: 5.0,
            api_key: None,
            frame_per_group: false,
            ground_truth_path: None,
            keep_ground_truth: true,
            embedding_dims: 384,
        }
    }
}

impl SimConfig {
    /// The default config with every delay set to 0: responses go out as
    /// fast as the machine allows.
    pub fn zero_delay() -> Self {
        SimConfig::default().with_zero_delay()
    }

    /// This config with TTFT, prefill and inter-token latency set to 0.
    pub fn with_zero_delay(mut self) -> Self {
        self.ttft_base_ms = 0.0;
        self.prefill_us_per_token = 0.0;
        self.itl = LatencyDist::constant(0.0);
        self
    }

    /// Rejects values the simulator cannot honour.
    pub fn validate(&self) -> anyhow::Result<()> {
        let nonneg = |name: &str, x: f64| {
            if x.is_finite() && x >= 0.0 {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{name} must be finite and >= 0, got {x}"))
            }
        };
        nonneg("ttft_base_ms", self.ttft_base_ms)?;
        nonneg("prefill_us_per_token", self.prefill_us_per_token)?;
        nonneg("load_factor", self.load_factor)?;
        nonneg("stall_secs", self.stall_secs)?;
        self.itl.validate("itl").map_err(anyhow::Error::msg)?;
        if self.tokens_per_chunk == 0 {
            anyhow::bail!("tokens_per_chunk must be at least 1");
        }
        if self.default_output_tokens == 0 {
            anyhow::bail!("default_output_tokens must be at least 1");
        }
        faults::validate_rates(&self.fault_rates).map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// The stall time as a duration, saturating on absurd values.
    pub(crate) fn stall(&self) -> Duration {
        secs(self.stall_secs)
    }
}

/// Seconds to a duration; negative or non-finite values become 0 and huge
/// ones a day, so a bad per-request value cannot panic the server.
pub(crate) fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(86_400.0))
    } else {
        Duration::ZERO
    }
}

/// Flags of `genai-bench serve-sim`; [`SimArgs::to_config`] turns them
/// into a [`SimConfig`].
#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,

    /// Model name in responses when a request names none.
    #[arg(long, default_value = "genai-bench-sim")]
    pub model: String,

    /// Fixed part of the time to first token, in milliseconds.
    #[arg(long, default_value_t = 20.0, value_name = "MS")]
    pub ttft_ms: f64,

    /// Prefill time per input token, in microseconds, added to the TTFT.
    #[arg(long, default_value_t = 10.0, value_name = "US")]
    pub prefill_us_per_token: f64,

    /// Inter-token latency in milliseconds: MS, constant:MS, normal:MEAN,SD
    /// or lognormal:MEAN,SD (mean and sd of the latency itself).
    #[arg(long, default_value = "10", value_name = "DIST")]
    pub itl_ms: LatencyDist,

    /// Output length when the request does not force one (ignore_eos with
    /// max_tokens): N, constant:N, uniform:LO,HI or normal:MEAN,SD, capped
    /// by max_tokens. Without it: max_tokens, else --default-output-tokens.
    #[arg(long, value_name = "DIST")]
    pub output_tokens: Option<LengthDist>,

    /// Output length when neither the request nor --output-tokens gives one.
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub default_output_tokens: u32,

    /// Load dependence: delays are multiplied by 1 + K × (requests in
    /// flight − 1). 0 = off.
    #[arg(long, default_value_t = 0.0, value_name = "K")]
    pub load_factor: f64,

    /// Tokens per streamed chunk.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub tokens_per_chunk: u32,

    /// Seed: the i-th request gets the same length, latencies, text and
    /// random fault on every run.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Set every delay (TTFT, prefill, inter-token latency) to 0.
    #[arg(long)]
    pub zero_delay: bool,

    /// Inject fault KIND into a fraction P of requests (repeatable). KIND:
    /// 429, 500, 503, auth, reset, cut, malformed, error-in-stream, stall,
    /// slow-headers. A request can also ask for one with "sim_fault": KIND
    /// in its JSON body or an x-sim-fault: KIND header.
    #[arg(long = "fault-rate", value_name = "KIND=P")]
    pub fault_rates: Vec<FaultRate>,

    /// Length of the stall and slow-headers faults, in seconds (a request's
    /// "sim_stall_secs" overrides it).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub stall_secs: f64,

    /// Require `Authorization: Bearer KEY` or `Authorization: Api-Key KEY`
    /// (401 without a key, 403 with a wrong one).
    #[arg(long, env = "GENAI_BENCH_SIM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Write one JSON line of ground truth per finished request to PATH.
    #[arg(long, value_name = "PATH")]
    pub ground_truth: Option<PathBuf>,

    /// Length of each embedding vector.
    #[arg(long, default_value_t = 384, value_name = "N")]
    pub embedding_dims: usize,

    /// One HTTP chunk per token group even when tokens are overdue (with
    /// --zero-delay: one chunk per token, the hardest load for a client).
    #[arg(long)]
    pub frame_per_group: bool,
}

impl SimArgs {
    /// The config these flags describe, validated. Ground truth is not kept
    /// in memory: the CLI has no one to hand it to but the file.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let mut config = SimConfig {
            host: self.host,
            port: self.port,
            model: self.model.clone(),
            ttft_base_ms: self.ttft_ms,
            prefill_us_per_token: self.prefill_us_per_token,
            itl: self.itl_ms,
            output_tokens: self.output_tokens,
            default_output_tokens: self.default_output_tokens,
            load_factor: self.load_factor,
            tokens_per_chunk: self.tokens_per_chunk,
            seed: self.seed,
            fault_rates: self.fault_rates.clone(),
            stall_secs: self.stall_secs,
            api_key: self.api_key.clone(),
            ground_truth_path: self.ground_truth.clone(),
            keep_ground_truth: false,
            embedding_dims: self.embedding_dims,
            frame_per_group: self.frame_per_group,
        };
        if self.zero_delay {
            config = config.with_zero_delay();
        }
        config.validate()?;
        Ok(config)
    }
}

impl TryFrom<SimArgs> for SimConfig {
    type Error = anyhow::Error;

    fn try_from(args: SimArgs) -> anyhow::Result<Self> {
        args.to_config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_parses() {
        assert_eq!(
            "5".parse::<LatencyDist>().unwrap(),
            LatencyDist::constant(5.0)
        );
        assert_eq!(
            "normal:5,1".parse::<LatencyDist>().unwrap(),
            LatencyDist::Normal { mean: 5.0, sd: 1.0 }
        );
        assert_eq!(
            "LogNormal: 5, 2".parse::<LatencyDist>().unwrap(),
            LatencyDist::LogNormal { mean: 5.0, sd: 2.0 }
        );
        assert!("normal:5".parse::<LatencyDist>().is_err());
        assert!("-1".parse::<LatencyDist>().is_err());
        assert!("gamma:1,2".parse::<LatencyDist>().is_err());
    }

    #[test]
    fn lognormal_matches_mean_and_sd() {
        let d = LatencyDist::LogNormal { mean: 5.0, sd: 2.0 };
        let mut rng = Rng::new(9);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| d.sample_secs(&mut rng) * 1000.0).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!((mean - 5.0).abs() < 0.05, "{mean}");
        assert!((sd - 2.0).abs() < 0.1, "{sd}");
    }

    #[test]
    fn lengths_parse_and_sample() {
        assert_eq!(
            "64".parse::<LengthDist>().unwrap(),
            LengthDist::Constant { tokens: 64 }
        );
        let u: LengthDist = "uniform:10,12".parse().unwrap();
        let mut rng = Rng::new(1);
        let xs: Vec<u32> = (0..1000).map(|_| u.sample(&mut rng)).collect();
        assert!(xs.iter().all(|x| (10..=12).contains(x)));
        assert!(xs.contains(&10) && xs.contains(&12));
        assert!("uniform:5,1".parse::<LengthDist>().is_err());
        assert!("1.5".parse::<LengthDist>().is_err());
        let n: LengthDist = "normal:0,0".parse().unwrap();
        assert_eq!(n.sample(&mut rng), 1);
    }

    #[test]
    fn config_validation() {
        assert!(SimConfig::default().validate().is_ok());
        let c = SimConfig {
            tokens_per_chunk: 0,
            ..SimConfig::default()
        };
        assert!(c.validate().is_err());
        let c = SimConfig {
            ttft_base_ms: f64::NAN,
            ..SimConfig::default()
        };
        assert!(c.validate().is_err());
        let z = SimConfig::zero_delay();
        assert!(z.itl.is_zero() && z.ttft_base_ms == 0.0);
    }
}
