//! The faults the simulator injects on demand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::rng::Rng;

/// One kind of fault. Its name (as in `--fault-rate`, `"sim_fault"` and
/// `x-sim-fault`) is what `Display` and serde write.
///
/// The mid-stream kinds act after half of the response's tokens (at least
/// one) have been sent. On a non-streaming response they act on the one
/// body instead: `reset` sends half of it and aborts, `cut` sends half and
/// ends cleanly, `malformed` sends broken JSON, `error-in-stream` sends a
/// 200 whose body is an error object, `stall` delays the body after the
/// headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    /// 429 with `Retry-After: 1`.
    #[serde(rename = "429")]
    TooManyRequests,
    /// 500.
    #[serde(rename = "500")]
    InternalError,
    /// 503.
    #[serde(rename = "503")]
    Unavailable,
    /// 401 when the request has no `Authorization` header, else 403.
    #[serde(rename = "auth")]
    Auth,
    /// The connection is aborted mid-body, without the chunked terminator
    /// (HTTP/1) or with a stream reset (HTTP/2).
    #[serde(rename = "reset")]
    Reset,
    /// The stream ends cleanly mid-way: no finish chunk, no `[DONE]`.
    #[serde(rename = "cut")]
    Cut,
    /// One event of broken JSON mid-stream; the stream then goes on.
    #[serde(rename = "malformed")]
    Malformed,
    /// A `data: {"error": ...}` event mid-stream of a 200, then `[DONE]`.
    #[serde(rename = "error-in-stream")]
    ErrorInStream,
    /// No bytes for the stall time mid-stream.
    #[serde(rename = "stall")]
    Stall,
    /// Response headers held back for the stall time.
    #[serde(rename = "slow-headers")]
    SlowHeaders,
}

impl FaultKind {
    /// Every kind, in the order rates are drawn.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::TooManyRequests,
        FaultKind::InternalError,
        FaultKind::Unavailable,
        FaultKind::Auth,
        FaultKind::Reset,
        FaultKind::Cut,
        FaultKind::Malformed,
        FaultKind::ErrorInStream,
        FaultKind::Stall,
        FaultKind::SlowHeaders,
    ];

    /// The name used on the command line, in requests and in the ground truth.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::TooManyRequests => "429",
            FaultKind::InternalError => "500",
            FaultKind::Unavailable => "503",
            FaultKind::Auth => "auth",
            FaultKind::Reset => "reset",
            FaultKind::Cut => "cut",
            FaultKind::Malformed => "malformed",
            FaultKind::ErrorInStream => "error-in-stream",
            FaultKind::Stall => "stall",
            FaultKind::SlowHeaders => "slow-headers",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// A fault drawn at random for a fraction `probability` of requests.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRate {
    /// The fault.
    pub kind: FaultKind,
    /// In [0, 1]. The rates of all kinds add up to at most 1: one request
    /// gets at most one fault.
    pub probability: f64,
}

impl FromStr for FaultRate {
    type Err = String;

    /// `KIND=P`, e.g. `429=0.05`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, p) = s
            .split_once('=')
            .ok_or_else(|| format!("fault rate {s:?} must be KIND=P, e.g. 429=0.05"))?;
        let kind = kind.parse()?;
        let probability: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("fault rate {s:?}: {p:?} is not a number"))?;
        if !(0.0..=1.0).contains(&probability) {
            return Err(format!("fault rate {s:?}: P must be in [0, 1]"));
        }
        Ok(FaultRate { kind, probability })
    }
}

/// Checks that every probability is in [0, 1] and that they sum to at most 1.
pub(crate) fn validate_rates(rates: &[FaultRate]) -> Result<(), String> {
    let mut sum = 0.0;
    for r in rates {
        if !(0.0..=1.0).contains(&r.probability) {
            return Err(format!(
                "fault rate {}={}: the probability must be in [0, 1]",
                r.kind, r.probability
            ));
        }
        sum += r.probability;
    }
    // A little slack for decimal fractions such as 0.7 + 0.2 + 0.1.
    if sum > 1.0 + 1e-9 {
        return Err(format!(
            "fault rates add up to {sum}, more than 1: a request gets at most one fault"
        ));
    }
    Ok(())
}

/// Draws at most one fault from the rates; one uniform draw per request
/// keeps the choice deterministic under a seed.
pub(crate) fn draw(rates: &[FaultRate], rng: &mut Rng) -> Option<FaultKind> {
    if rates.is_empty() {
        return None;
    }
    let u = rng.f64();
    let mut acc = 0.0;
    for r in rates {
        acc += r.probability;
        if u < acc {
            return Some(r.kind);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>().unwrap(), k);
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.name())
            );
        }
        assert!("nope".parse::<FaultKind>().is_err());
    }

    #[test]
    fn rates_parse_and_validate() {
        let r: FaultRate = "429=0.25".parse().unwrap();
        assert_eq!(r.kind, FaultKind::TooManyRequests);
        assert_eq!(r.probability, 0.25);
        assert!("429".parse::<FaultRate>().is_err());
        assert!("429=1.5".parse::<FaultRate>().is_err());
        assert!("x=0.1".parse::<FaultRate>().is_err());
        let ok = [r, "reset=0.75".parse().unwrap()];
        assert!(validate_rates(&ok).is_ok());
        let too_much = [r, "reset=0.8".parse().unwrap()];
        assert!(validate_rates(&too_much).is_err());
    }

    #[test]
    fn draw_follows_rates() {
        let rates = ["500=0.5".parse().unwrap()];
        let mut rng = Rng::new(3);
        let hits = (0..10_000)
            .filter(|_| draw(&rates, &mut rng).is_some())
            .count();
        assert!((4_500..5_500).contains(&hits), "{hits}");
    }
}
