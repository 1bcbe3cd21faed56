//! What the benchmark binaries share.

use std::fs;

/// A `kB` field of /proc/self/status, such as `VmHWM:` (peak RSS).
pub(crate) fn status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
