//! The CPU time of the benchmark's own process, for figures of work per operation beside
//! throughput: a ratio of CPU per operation holds steady while other load moves throughput.

use std::time::Duration;

/// The process's CPU time so far (user + system, every thread), from `/proc/self/stat` (Linux;
/// ticks of 1/100 s, the kernel's `USER_HZ` on every Linux architecture in use). `None` where
/// that file is missing or unreadable.
#[must_use]
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at state (field 3);
    // utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(utime.checked_add(stime)?.checked_mul(10)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu().expect("Linux has /proc/self/stat");
        // Spin until at least two ticks of CPU are charged (no sleep: sleeping charges none).
        let mut x = 0_u64;
        while process_cpu().expect("readable").saturating_sub(before) < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        assert!(process_cpu().expect("readable") >= before + Duration::from_millis(20));
    }
}
