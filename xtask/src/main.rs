//! Cinder's developer commands, run as `cargo xtask <command>`:
//!
//! - `run [-- cinder args]`: build the UI and the server, start Cinder on 127.0.0.1:7070.
//! - `test`: the whole suite, what CI runs: `cargo fmt --check`, clippy with `-D warnings`
//!   (the frontend for wasm32 too), the UI build, the one-file binary (UI embedded),
//!   `cargo test`, schemathesis against the one-file binary and a bounded fuzzing run,
//!   with per-phase timings at the end.
//! - `dist`: the release binary `target/release/cinder` with the UI embedded; a second run
//!   with nothing changed takes seconds.
//! - `fuzz [SECONDS]`: every cargo-fuzz target for SECONDS (default 60) each ([`fuzz`]).
//! - `schema`: schemathesis against a running cinder's OpenAPI document ([`schema`]).
//!
//! Each installs what it needs when it is missing ([`tools`]), idempotently and quietly
//! when it is already there.

#![allow(clippy::print_stdout)] // a command-line tool: stdout is its output

mod tools;
mod ui;

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::tools::WASM_TARGET;

mod fuzz;
mod memory;
mod schema;

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("dist") => dist(),
        Some("fuzz") => fuzz::command(&args[1..]),
        Some("idle-memory") => memory::command(&args[1..]),
        Some("schema") => schema::run(),
        Some("tools") => tools::ensure_build_tools().and_then(|_| tools::ensure_test_tools()),
        _ => {
            eprintln!(
                "usage: cargo xtask <run [-- cinder args] | test [-- cargo test args] | dist | fuzz [SECONDS] | idle-memory [MINUTES] [--bin PATH] [--every SECONDS] [--out DIR] | schema | tools>"
            );
            std::process::exit(2);
        }
    };
    if let Err(err) = result {
        eprintln!("xtask: {err:#}");
        std::process::exit(1);
    }
}

/// The workspace root (the parent of this package's folder).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(args: &[String]) -> Result<()> {
    tools::ensure_build_tools()?;
    let ui = ui::build(false)?;
    let passthrough = args.iter().skip_while(|a| *a == "--");
    let mut cmd = cargo();
    cmd.args(["run", "--package", "backend", "--bin", "cinder", "--"])
        .arg("--ui-dir")
        .arg(&ui);
    cmd.args(passthrough);
    step("starting cinder on http://127.0.0.1:7070 (Ctrl-C stops it)");
    status(&mut cmd)
}

/// Named steps and how long each took; the table is printed when dropped (so also when
/// a step fails).
#[derive(Default)]
struct Phases(Vec<(String, Duration)>, Option<Instant>);

impl Phases {
    /// Runs one step, timing it.
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.1.get_or_insert_with(Instant::now);
        step(&format!("phase: {name}"));
        let start = Instant::now();
        let result = f();
        self.0.push((name.to_owned(), start.elapsed()));
        result.with_context(|| format!("phase {name:?} failed"))
    }
}

impl Drop for Phases {
    fn drop(&mut self) {
        let Some(start) = self.1 else { return };
        eprintln!("xtask: phase timings:");
        for (name, took) in &self.0 {
            eprintln!("xtask: {:>8.1} s  {name}", took.as_secs_f64());
        }
        eprintln!("xtask: {:>8.1} s  total", start.elapsed().as_secs_f64());
    }
}

/// A background step, joined later as a phase of its own (its wait is what it costs).
fn background(f: impl FnOnce() -> Result<()> + Send + 'static) -> thread::JoinHandle<Result<()>> {
    thread::spawn(f)
}

fn join(handle: thread::JoinHandle<Result<()>>) -> Result<()> {
    handle
        .join()
        .map_err(|_| anyhow!("a background step panicked"))?
}

fn test(args: &[String]) -> Result<()> {
    let mut phases = Phases::default();
    // Installs overlap with the checks: the Debian packages and the wasm target mostly
    // download, the cargo tools compile while rustfmt and clippy run.
    let downloads = background(|| {
        tools::ensure_wasm_target()?;
        tools::ensure_test_tools()?;
        schema::ensure_schemathesis()
    });
    let cargo_tools = background(tools::ensure_cargo_tools);
    phases.run("cargo fmt --check", fmt_check)?;
    phases.run("clippy (workspace, native)", clippy_native)?;
    phases.run(
        "wait: wasm target, Chromium, Go, moto, schemathesis",
        || join(downloads),
    )?;
    phases.run("clippy (frontend, wasm32)", clippy_wasm)?;
    phases.run("wait: trunk, wasm-bindgen-cli", || join(cargo_tools))?;
    let ui = phases.run("UI build (trunk)", || ui::build(false))?;
    let bin = phases.run("one-file binary (UI embedded)", || one_file_binary(&ui))?;
    phases.run("cargo test", || cargo_test(args, &ui, &bin))?;
    phases.run("schemathesis (one-file binary)", || schema::check(&bin))?;
    phases.run("fuzzing (20 s a target)", || fuzz::run_all(20).map(drop))
}

fn fmt_check() -> Result<()> {
    status(cargo().args(["fmt", "--all", "--check"]))
        .context("formatting differs: run `cargo fmt --all`")
}

fn clippy_native() -> Result<()> {
    status(cargo().args([
        "clippy",
        "--quiet",
        "--workspace",
        "--exclude",
        "frontend",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

/// The frontend (and `shared`, which it builds) for the target it runs on.
fn clippy_wasm() -> Result<()> {
    status(cargo().args([
        "clippy",
        "--quiet",
        "--package",
        "frontend",
        "--package",
        "shared",
        "--target",
        WASM_TARGET,
        "--",
        "-D",
        "warnings",
    ]))
}

/// `cinder` with `ui` embedded, copied to `target/one-file/cinder`, for the smoke test.
/// Built with the `dev` profile (it reuses the test build's dependencies) unless
/// `CINDER_ONE_FILE_PROFILE` names another, e.g. `ci` (release without LTO).
fn one_file_binary(ui: &Path) -> Result<PathBuf> {
    let profile = env::var("CINDER_ONE_FILE_PROFILE").unwrap_or_else(|_| "dev".into());
    status(
        cargo()
            .args(["build", "--quiet", "--profile", &profile])
            .args([
                "--package",
                "backend",
                "--bin",
                "cinder",
                "--features",
                "embed-ui",
            ])
            .env("CINDER_UI_DIST", ui),
    )?;
    let dir = if profile == "dev" { "debug" } else { &profile };
    let built = root().join("target").join(dir).join("cinder");
    let copy = root().join("target/one-file/cinder");
    std::fs::create_dir_all(copy.parent().expect("a folder"))?;
    // A copy: the test build that follows rebuilds target/debug/cinder without the UI.
    std::fs::copy(&built, &copy).with_context(|| format!("copying {}", built.display()))?;
    Ok(copy)
}

fn cargo_test(args: &[String], ui: &Path, bin: &Path) -> Result<()> {
    let skip_log = root().join("target/test-skips.log");
    let _ = std::fs::remove_file(&skip_log);
    let passthrough = args.iter().skip_while(|a| *a == "--");
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--exclude", "frontend"])
        .args(passthrough)
        .env("CINDER_E2E_UI_DIR", ui)
        .env("CINDER_E2E_ONE_FILE_BIN", bin)
        .env("CINDER_E2E_MOTO", tools::moto_server())
        .env("CINDER_E2E_PYTHON", tools::venv_python())
        .env("CINDER_SKIP_LOG", &skip_log)
        // This command installs the browser and Go, so tests needing them must not skip.
        // The real-world corpus beside the repository is required only under CI=true.
        .env("CINDER_E2E_REQUIRE", "1");
    run_counting_tests(&mut cmd, &skip_log)
}

/// Runs `cargo test`, passing its output through, and ends with one line that adds up
/// every test binary's `test result:`; tests that skipped (they pass, and write a line to
/// `skip_log`) are counted as skipped, not passed, and listed.
fn run_counting_tests(cmd: &mut Command, skip_log: &Path) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count_before(rest, " passed");
            failed += count_before(rest, " failed");
        }
    }
    let status = child.wait()?;
    let skips = skipped_tests(skip_log);
    for (test, reason) in &skips {
        println!("skipped: {test} ({reason})");
    }
    let skipped = skips.len() as u64;
    println!(
        "summary: {} passed, {failed} failed, {skipped} skipped",
        passed.saturating_sub(skipped)
    );
    if !status.success() {
        bail!("the test suite failed ({status})");
    }
    Ok(())
}

/// The tests that skipped, one per line `name<TAB>reason` (a test may skip once only).
fn skipped_tests(log: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut tests: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(t, r)| (t.to_owned(), r.to_owned()))
        .collect();
    tests.sort();
    tests.dedup_by(|a, b| a.0 == b.0);
    tests
}

/// In `ok. 12 passed; 0 failed; …`, the number before `word`.
fn count_before(text: &str, word: &str) -> u64 {
    let Some(end) = text.find(word) else { return 0 };
    text[..end]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn dist() -> Result<()> {
    let mut phases = Phases::default();
    phases.run("tools", || {
        tools::ensure_build_tools()?;
        tools::ensure_wasm_opt()
    })?;
    let ui = phases.run("UI build (trunk, release)", || ui::build(true))?;
    phases.run("target/release/cinder (LTO, UI embedded)", || {
        status(
            cargo()
                .args([
                    "build",
                    "--release",
                    "--package",
                    "backend",
                    "--bin",
                    "cinder",
                    "--features",
                    "embed-ui",
                ])
                .env("CINDER_UI_DIST", &ui),
        )
    })?;
    let bin = root().join("target/release/cinder");
    let size = std::fs::metadata(&bin)
        .with_context(|| format!("{} was not built", bin.display()))?
        .len();
    step(&format!(
        "done: {} ({:.1} MiB)",
        bin.display(),
        size as f64 / 1_048_576.0
    ));
    Ok(())
}

fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| OsStr::new("cargo").to_owned()))
}

fn step(message: &str) {
    eprintln!("xtask: {message}");
}

fn status(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_result_lines_are_counted() {
        let line = "ok. 12 passed; 3 failed; 1 ignored; 0 measured; 0 filtered out";
        assert_eq!(count_before(line, " passed"), 12);
        assert_eq!(count_before(line, " failed"), 3);
        assert_eq!(count_before("FAILED. 0 passed", " failed"), 0);
    }

    #[test]
    fn each_skipped_test_counts_once() {
        let log = env::temp_dir().join(format!("xtask-skips-{}", std::process::id()));
        std::fs::write(
            &log,
            "a::x\tGo is missing\nb::y\tcorpus\na::x\tGo is missing\n",
        )
        .unwrap();
        let skips = skipped_tests(&log);
        assert_eq!(skips.len(), 2, "{skips:?}");
        assert_eq!(skips[0], ("a::x".to_owned(), "Go is missing".to_owned()));
        std::fs::remove_file(&log).unwrap();
    }
}
