//! What the benchmark binaries share.

use std::{fs, path::PathBuf};

/// The real-world corpus: `../shared/testdata/pprof` beside the repository, or
/// `$CINDER_SHARED_DIR/testdata/pprof`. The benchmarks measure nothing without it.
pub(crate) fn corpus_dir() -> PathBuf {
    std::env::var_os("CINDER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")))
        .join("testdata/pprof")
}

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
