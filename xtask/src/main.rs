//! Cinder's developer commands, run as `cargo xtask <command>`:
//!
//! - `run [-- cinder args]`: build the UI and the server, start Cinder on 127.0.0.1:7070.
//! - `test`: the whole test suite (what CI runs).
//! - `dist`: the release binary `target/release/cinder` with the UI embedded.
//! - `fuzz [SECONDS]`: every cargo-fuzz target for SECONDS (default 60) each ([`fuzz`]).
//! - `schema`: schemathesis against a running cinder's OpenAPI document ([`schema`]).
//!
//! Each installs what it needs when it is missing (the wasm target, trunk, wasm-bindgen-cli
//! at the version in Cargo.lock, Chromium and chromedriver, Go, wasm-opt), idempotently and
//! quietly when it is already there.

#![allow(clippy::print_stdout)] // a command-line tool: stdout is its output

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

mod fuzz;
mod schema;

const TRUNK_VERSION: &str = "0.21.14";
const BINARYEN_NPM_VERSION: &str = "132.0.0";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("dist") => dist(),
        Some("fuzz") => fuzz::command(&args[1..]),
        Some("schema") => schema::run(),
        Some("tools") => ensure_build_tools().and_then(|_| ensure_test_tools()),
        _ => {
            eprintln!(
                "usage: cargo xtask <run [-- cinder args] | test [-- cargo test args] | dist | fuzz [SECONDS] | schema | tools>"
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
    ensure_build_tools()?;
    let ui = build_ui(false)?;
    let passthrough = args.iter().skip_while(|a| *a == "--");
    let mut cmd = cargo();
    cmd.args(["run", "--package", "backend", "--bin", "cinder", "--"])
        .arg("--ui-dir")
        .arg(&ui);
    cmd.args(passthrough);
    step("starting cinder on http://127.0.0.1:7070 (Ctrl-C stops it)");
    status(&mut cmd)
}

fn test(args: &[String]) -> Result<()> {
    ensure_build_tools()?;
    ensure_test_tools()?;
    step("checking that `shared` builds for wasm32");
    status(cargo().args([
        "check",
        "--quiet",
        "--package",
        "shared",
        "--target",
        WASM_TARGET,
    ]))?;
    let ui = build_ui(false)?;
    step("running the test suite");
    let passthrough = args.iter().skip_while(|a| *a == "--");
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--exclude", "frontend"])
        .args(passthrough)
        .env("CINDER_E2E_UI_DIR", &ui)
        // In this command the browser, Go and the shared test data are part of the suite:
        // tests that would skip without them must fail instead.
        .env("CINDER_E2E_REQUIRE", "1");
    run_counting_tests(&mut cmd)?;
    fuzz::run_all(30).map(drop)
}

/// Runs `cargo test`, passing its output through, and ends with one line that adds up
/// every test binary's `test result:` (the last binaries are doc-tests, often empty).
fn run_counting_tests(cmd: &mut Command) -> Result<()> {
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
    println!("summary: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("the test suite failed ({status})");
    }
    Ok(())
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
    ensure_build_tools()?;
    ensure_wasm_opt()?;
    let ui = build_ui(true)?;
    step("building target/release/cinder with the UI embedded");
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
    )?;
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

/// Builds the UI with trunk into `target/ui-dist` (debug) or `target/ui-dist-release`.
fn build_ui(release: bool) -> Result<PathBuf> {
    let dist = root().join(if release {
        "target/ui-dist-release"
    } else {
        "target/ui-dist"
    });
    step(&format!(
        "building the UI with trunk ({})",
        if release { "release" } else { "debug" }
    ));
    let mut cmd = Command::new("trunk");
    cmd.current_dir(root())
        .args(["build", "--offline", "--dist"])
        .arg(&dist);
    if release {
        cmd.arg("--release");
    }
    cmd.env("PATH", tool_path()?);
    // trunk calls cargo; make sure no outer cargo's settings leak into that build.
    cmd.env_remove("CARGO_TARGET_DIR").env_remove("RUSTFLAGS");
    status(&mut cmd).context("trunk build failed")?;
    Ok(dist)
}

fn ensure_build_tools() -> Result<()> {
    ensure_wasm_target()?;
    ensure_cargo_tool("trunk", "trunk", TRUNK_VERSION, true)?;
    let bindgen = wasm_bindgen_version_in_lock()?;
    // wasm-bindgen-cli's own lockfile wants a crate the registry lacks: install unlocked.
    ensure_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", &bindgen, false)
}

fn ensure_test_tools() -> Result<()> {
    ensure_debian_packages(&[
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
        ("go", "golang-go"),
    ])
}

fn ensure_wasm_target() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    step(&format!("installing the {WASM_TARGET} target"));
    status(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Installs `krate` at exactly `version` unless `bin --version` already reports it.
fn ensure_cargo_tool(bin: &str, krate: &str, version: &str, locked: bool) -> Result<()> {
    let current = Command::new(bin).arg("--version").output().ok();
    let current = current
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if current.split_whitespace().nth(1) == Some(version) {
        return Ok(());
    }
    step(&format!(
        "installing {krate} {version} (once per machine; takes minutes)"
    ));
    let mut cmd = Command::new("cargo");
    cmd.args(["install", krate, "--version", version, "--quiet"]);
    if locked {
        cmd.arg("--locked");
    }
    // The install must not inherit this workspace's target dir or profile settings.
    cmd.current_dir(env::temp_dir())
        .env_remove("CARGO_TARGET_DIR");
    status(&mut cmd)
}

/// The wasm-bindgen version Cargo.lock pins: the CLI must be exactly that.
fn wasm_bindgen_version_in_lock() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            let version = lines.next().unwrap_or_default();
            if let Some(v) = version
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
            {
                return Ok(v.to_owned());
            }
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package")
}

/// Installs Debian packages whose command is missing (one apt-get run for all of them).
fn ensure_debian_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(cmd, _)| which(cmd).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    let sudo = if is_root() { None } else { which("sudo") };
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = match &sudo {
            Some(sudo) => {
                let mut c = Command::new(sudo);
                c.arg("apt-get");
                c
            }
            None => Command::new("apt-get"),
        };
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null());
        status(&mut cmd)
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    apt(&args)
}

/// wasm-opt from npm's binaryen (Debian's binaryen 108 produces a broken app).
fn ensure_wasm_opt() -> Result<()> {
    let bin = wasm_opt_dir().join("wasm-opt");
    let current = Command::new(&bin).arg("--version").output().ok();
    let current = current
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let major = BINARYEN_NPM_VERSION.split('.').next().unwrap_or_default();
    if current.contains(&format!("version {major}")) {
        return Ok(());
    }
    step(&format!(
        "installing wasm-opt (npm binaryen@{BINARYEN_NPM_VERSION}) into .tools/npm"
    ));
    let prefix = root().join(".tools/npm");
    std::fs::create_dir_all(&prefix)?;
    status(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg(format!("binaryen@{BINARYEN_NPM_VERSION}")),
    )
}

fn wasm_opt_dir() -> PathBuf {
    root().join(".tools/npm/node_modules/.bin")
}

/// PATH for trunk: the project's own wasm-opt first, then cargo's bin dir, then the rest.
fn tool_path() -> Result<std::ffi::OsString> {
    let mut dirs = vec![wasm_opt_dir()];
    if let Some(home) = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
    {
        dirs.push(home.join("bin"));
    }
    dirs.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
    Ok(env::join_paths(dirs)?)
}

fn which(cmd: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
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
