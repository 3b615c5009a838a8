//! Counters for `/metrics` (Prometheus text format) and `/health`.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Write as _,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Window over which `paystreams_tx_per_second` is averaged: long enough to smooth 1 s blocks,
/// short enough to show a burst ending.
const TPS_WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Metrics {
    height: AtomicU64,
    mempool: AtomicU64,
    transactions: AtomicU64,
    failed: AtomicU64,
    failures_by_code: Mutex<BTreeMap<u32, u64>>,
    /// (commit time, transactions) of the blocks inside the window.
    recent: Mutex<VecDeque<(Instant, u64)>>,
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Metrics {
    pub fn set_height(&self, height: u64) {
        self.height.store(height, Ordering::Relaxed);
    }

    pub fn set_mempool(&self, len: usize) {
        self.mempool.store(as_u64(len), Ordering::Relaxed);
    }

    pub fn record_block(&self, height: u64, txs: usize, failure_codes: &[u32]) {
        self.set_height(height);
        self.transactions.fetch_add(as_u64(txs), Ordering::Relaxed);
        self.failed.fetch_add(as_u64(failure_codes.len()), Ordering::Relaxed);
        if !failure_codes.is_empty() {
            let mut map = self.failures_by_code.lock().unwrap_or_else(PoisonError::into_inner);
            for code in failure_codes {
                let count = map.entry(*code).or_default();
                *count = count.saturating_add(1);
            }
        }
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.push_back((now, as_u64(txs)));
        while recent.front().is_some_and(|(t, _)| now.duration_since(*t) > TPS_WINDOW) {
            recent.pop_front();
        }
    }

    #[must_use]
    pub fn height(&self) -> u64 {
        self.height.load(Ordering::Relaxed)
    }

    /// Transactions per second committed over the last [`TPS_WINDOW`].
    #[must_use]
    pub fn tx_per_second(&self) -> f64 {
        let now = Instant::now();
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let total: u64 = recent.iter().filter(|(t, _)| now.duration_since(*t) <= TPS_WINDOW).map(|(_, n)| *n).sum();
        #[expect(clippy::cast_precision_loss, reason = "a rate for display")]
        let total = total as f64;
        total / TPS_WINDOW.as_secs_f64()
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauges = [
            ("paystreams_block_height", "Height of the latest committed block.", "gauge", self.height()),
            (
                "paystreams_mempool_size",
                "Transactions waiting in the mempool.",
                "gauge",
                self.mempool.load(Ordering::Relaxed),
            ),
            (
                "paystreams_transactions_total",
                "Transactions included in blocks (successful and failed).",
                "counter",
                self.transactions.load(Ordering::Relaxed),
            ),
            (
                "paystreams_transactions_failed_total",
                "Transactions included with a failed receipt.",
                "counter",
                self.failed.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, kind, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP paystreams_tx_per_second Transactions committed per second over the last {} s.\n\
             # TYPE paystreams_tx_per_second gauge\npaystreams_tx_per_second {:.3}",
            TPS_WINDOW.as_secs(),
            self.tx_per_second()
        );
        let _ = writeln!(
            out,
            "# HELP paystreams_transaction_failures_total Failed transactions by error code.\n\
             # TYPE paystreams_transaction_failures_total counter"
        );
        for (code, count) in self.failures_by_code.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "paystreams_transaction_failures_total{{code=\"{code}\"}} {count}");
        }
        out
    }
}
