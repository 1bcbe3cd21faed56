//! `cargo xtask fuzz [SECONDS]` and the fuzz step of `cargo xtask test`: every cargo-fuzz
//! target in `fuzz/` for a bounded time each, seeded with the committed seeds and, for
//! pprof, the real profiles of `../shared/testdata/pprof` when present.
//!
//! Only the stable toolchain is assumed: `RUSTC_BOOTSTRAP=1` lets cargo-fuzz pass its
//! `-Z` flags, and `--sanitizer none` keeps builds small (the fuzzed crates forbid unsafe
//! code). See docs/fuzzing.md.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    root, step,
    tools::{ensure_cargo_tool, ensure_debian_packages},
};

/// The cargo-fuzz release installed.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Every target of `fuzz/Cargo.toml`.
pub(crate) const TARGETS: &[&str] = &["pprof", "query", "wal", "pyroscope", "parca"];

/// What one target's run did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) target: &'static str,
    pub(crate) executions: u64,
    pub(crate) seconds: f64,
}

/// `cargo xtask fuzz [SECONDS]`.
pub(crate) fn command(args: &[String]) -> Result<()> {
    let seconds = match args.first() {
        None => 60,
        Some(text) => text
            .parse()
            .with_context(|| format!("SECONDS must be a whole number, not {text:?}"))?,
    };
    run_all(seconds).map(drop)
}

/// Runs every target for `seconds` each; fails on the first crash (libFuzzer leaves the
/// input in `fuzz/artifacts/<target>/`).
pub(crate) fn run_all(seconds: u64) -> Result<Vec<Run>> {
    // libfuzzer-sys compiles libFuzzer's C++ sources.
    ensure_debian_packages(&[("c++", "g++")])?;
    ensure_cargo_tool(
        "cargo-fuzz",
        "cargo-fuzz",
        CARGO_FUZZ_VERSION,
        &["--locked"],
    )?;
    let started = Instant::now();
    let mut runs = Vec::new();
    for target in TARGETS {
        runs.push(run_one(target, seconds)?);
    }
    let total: u64 = runs.iter().map(|r| r.executions).sum();
    for run in &runs {
        println!(
            "fuzz: {:<9} {:>12} executions in {:.0} s, no crash",
            run.target, run.executions, run.seconds
        );
    }
    println!(
        "fuzz: {total} executions in total; {:.0} s with builds",
        started.elapsed().as_secs_f64()
    );
    Ok(runs)
}

fn run_one(target: &'static str, seconds: u64) -> Result<Run> {
    let fuzz_dir = root().join("fuzz");
    let corpus = root().join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&corpus).context("creating the corpus folder")?;
    let mut dirs: Vec<PathBuf> = vec![corpus];
    dirs.extend(seed_dirs(target));
    step(&format!("fuzzing {target} for {seconds} s"));
    let started = Instant::now();
    let output = Command::new("cargo")
        .current_dir(&fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("CARGO_TARGET_DIR")
        .args(["fuzz", "run", "--sanitizer", "none", target])
        .args(&dirs)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running cargo fuzz run {target}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "fuzz target {target} failed ({}); its input is in fuzz/artifacts/{target}/:\n{}",
            output.status,
            tail.join("\n")
        );
    }
    Ok(Run {
        target,
        executions: executions(&log)
            .with_context(|| format!("no execution count in the output of {target}"))?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The committed seeds, and the shared real profiles for pprof.
fn seed_dirs(target: &str) -> Vec<PathBuf> {
    let mut dirs = vec![root().join("fuzz/seeds").join(target)];
    if target == "pprof" {
        dirs.push(root().join("../shared/testdata/pprof"));
    }
    dirs.into_iter().filter(|d| Path::is_dir(d)).collect()
}

/// libFuzzer's `stat::number_of_executed_units: N` (or `Done N runs`).
fn executions(log: &str) -> Option<u64> {
    let stat = log.lines().find_map(|l| {
        l.strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    stat.or_else(|| {
        log.lines().rev().find_map(|l| {
            let rest = l.split("Done ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_counts_are_read_from_libfuzzer_output() {
        let log = "#1024 pulse cov: 10\nDone 123456 runs in 31 second(s)\nstat::number_of_executed_units: 123457\n";
        assert_eq!(executions(log), Some(123457));
        assert_eq!(executions("Done 99 runs in 1 second(s)\n"), Some(99));
        assert_eq!(executions("crash\n"), None);
    }
}
