//! A small seedable PRNG and the samplers the timing model needs.
//!
//! Hand-written rather than taken from `rand` so that a `--seed` gives the
//! same lengths, latencies and text on every build: `rand`'s `StdRng` may
//! change its algorithm between releases.

/// Which per-request stream a generator draws from. Separate streams keep
/// one aspect (say, the text) unchanged when the config of another (the
/// latency distribution) changes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose {
    Length = 1,
    Timing = 2,
    Text = 3,
    Fault = 4,
}

/// xoshiro256++ (Blackman and Vigna), seeded through SplitMix64.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

/// SplitMix64's finaliser: a bijective mix of all 64 bits.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            mix64(state)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The generator for one purpose of the request with id `id`: a pure
    /// function of (seed, id, purpose), so the i-th request draws the same
    /// values whatever the interleaving of concurrent requests.
    pub(crate) fn for_request(seed: u64, id: u64, purpose: Purpose) -> Self {
        let p = purpose as u64;
        Rng::new(mix64(
            seed ^ mix64(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (p << 56)),
        ))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n). Lemire's multiply-shift without the rejection
    /// step: the bias is below 2^-32 for the small `n` used here.
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// Standard normal by Box-Muller (one of the pair is dropped: simpler,
    /// and the cost is immaterial next to an HTTP write).
    pub(crate) fn std_normal(&mut self) -> f64 {
        // 1 - u is in (0, 1], so ln never sees 0.
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::for_request(7, 3, Purpose::Text);
        let mut b = Rng::for_request(7, 3, Purpose::Text);
        let mut c = Rng::for_request(7, 4, Purpose::Text);
        let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
    }

    #[test]
    fn normal_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.std_normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = Rng::new(2);
        assert!((0..10_000).all(|_| r.below(5) < 5));
    }
}
