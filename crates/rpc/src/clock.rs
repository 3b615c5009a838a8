//! The one wall-clock read of the node and the off-chain engines. Chain time comes from blocks;
//! this is for staleness bounds, block timestamps and liveness, and tests inject their own
//! `now_ms` instead of calling it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock Unix milliseconds now (0 if the clock reads before 1970).
#[must_use]
pub fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Wall-clock Unix seconds now (0 if the clock reads before 1970).
#[must_use]
pub fn wall_clock_secs() -> u64 {
    wall_clock_ms() / 1_000
}
