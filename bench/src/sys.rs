//! Process CPU time and resident memory, from `/proc`.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat`'s time fields: `USER_HZ`, which Linux fixes at
/// 100 for every architecture's user-space ABI.
const USER_HZ: f64 = 100.0;

/// Page size assumed for `/proc/self/statm` (4 KiB on x86_64 and the usual aarch64 kernels).
const PAGE: u64 = 4096;

/// User + system CPU time of the whole process (every thread) so far, or `None` off Linux.
pub(crate) fn cpu_time() -> Option<Duration> {
    stat_cpu_time("/proc/self/stat")
}

/// User + system CPU time of the calling thread so far, or `None` off Linux.
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    stat_cpu_time("/proc/thread-self/stat")
}

fn stat_cpu_time(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, so 11 and 12 after the state (field 3).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / USER_HZ))
}

/// Resident set size of the process in bytes, or `None` off Linux.
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_advances_with_work() {
        let Some(before) = cpu_time() else { return };
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = cpu_time().unwrap_or_default();
        assert!(after > before, "{before:?} -> {after:?}");
    }

    #[test]
    fn rss_is_positive() {
        if let Some(rss) = rss_bytes() {
            assert!(rss > 0);
        }
    }
}
