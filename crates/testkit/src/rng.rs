//! One seeded random source for tests and benchmarks: splitmix64, no dependency. A test that
//! draws random choices prints its seed (or takes `PAYSTREAMS_SEED`) so a failure replays.

use std::time::{SystemTime, UNIX_EPOCH};

/// splitmix64.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Seeded from `PAYSTREAMS_SEED` when set, else from the clock; prints the seed with
    /// `what` so a failing run can be replayed.
    #[must_use]
    pub fn from_env_or_clock(what: &str) -> Self {
        let seed = std::env::var("PAYSTREAMS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| u64::from(d.subsec_nanos()) ^ d.as_secs())
        });
        eprintln!("{what}: seed {seed} (replay with PAYSTREAMS_SEED={seed})");
        Self(seed)
    }

    pub const fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for test choices (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }

    /// `true` with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
