//! Installing what the commands need when it is missing, idempotently and quietly when it
//! is there: the wasm32 target, trunk and wasm-bindgen-cli (from crates.io, into cargo's
//! bin folder), Debian's Chromium, chromedriver and Go, npm's wasm-opt, and PyPI's moto
//! (an S3 server for the object-storage tests) into the project's venv `.tools/venv`.
//!
//! The two cargo tools take most of a fresh machine's first run, so they build cheaply:
//! trunk without its default features (TLS for downloads and an update check; the UI is
//! built `--offline`), both with thin optimisation instead of their release profiles'
//! fat LTO and one codegen unit (they are I/O-bound helpers), and both into one target
//! folder, so the dependencies they share compile once.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{output, root, status, step};

/// The trunk release the UI build is tested with.
pub(crate) const TRUNK_VERSION: &str = "0.21.14";
const BINARYEN_NPM_VERSION: &str = "132.0.0";
/// The target the UI (and `shared`, which it uses) compiles to.
pub(crate) const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The wasm target, trunk and wasm-bindgen-cli.
pub(crate) fn ensure_build_tools() -> Result<()> {
    ensure_wasm_target()?;
    ensure_cargo_tools()
}

/// trunk and wasm-bindgen-cli at their versions.
pub(crate) fn ensure_cargo_tools() -> Result<()> {
    ensure_cargo_tool(
        "trunk",
        "trunk",
        TRUNK_VERSION,
        &["--locked", "--no-default-features"],
    )?;
    let bindgen = wasm_bindgen_version_in_lock()?;
    // wasm-bindgen-cli's own lockfile wants a crate the registry lacks: install unlocked.
    ensure_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", &bindgen, &[])
}

/// The moto release whose S3 server the object-storage tests start.
pub(crate) const MOTO_VERSION: &str = "5.2.5";

/// What the tests run besides cargo: Chromium, chromedriver, Go and moto's S3 server
/// (downloaded at the same time).
pub(crate) fn ensure_test_tools() -> Result<()> {
    // One pip at a time in the venv: pyarrow after moto, beside the Debian packages.
    let moto = std::thread::spawn(|| ensure_moto().and_then(|_| ensure_pyarrow()));
    let debian = ensure_debian_packages(&[
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
        ("go", "golang-go"),
    ]);
    let moto = moto
        .join()
        .map_err(|_| anyhow::anyhow!("installing moto panicked"))?;
    debian.and(moto.map(drop))
}

/// The project's Python venv, `.tools/venv`, created if missing; returns its folder.
pub(crate) fn ensure_venv() -> Result<PathBuf> {
    let venv = root().join(".tools/venv");
    if !venv.join("bin/pip").is_file() {
        status(Command::new("python3").arg("-m").arg("venv").arg(&venv))
            .context("python3 -m venv (Debian: apt-get install python3-venv)")?;
    }
    Ok(venv)
}

/// Installs `requirement` (`package`, optionally with extras) at `version` into the
/// project's venv, making sure its `script` is there: an install cut short (a killed run)
/// leaves the package's metadata without its scripts, and pip then finds the requirement
/// satisfied, so the package itself is reinstalled.
pub(crate) fn pip_install(
    requirement: &str,
    package: &str,
    version: &str,
    script: &Path,
) -> Result<()> {
    let venv = ensure_venv()?;
    let pip = || {
        let mut pip = Command::new(venv.join("bin/pip"));
        pip.args(["install", "--quiet", "--disable-pip-version-check"]);
        pip
    };
    status(pip().arg(format!("{requirement}=={version}")))?;
    if !script.is_file() {
        status(
            pip()
                .args(["--force-reinstall", "--no-deps"])
                .arg(format!("{package}=={version}")),
        )?;
    }
    if !script.is_file() {
        bail!(
            "{package} {version} installed, but {} is missing",
            script.display()
        );
    }
    Ok(())
}

/// `moto_server` of [`MOTO_VERSION`] in `.tools/venv` (what the tests get in
/// `CINDER_E2E_MOTO`); installed from PyPI (`moto[server]`) unless it is there.
pub(crate) fn moto_server() -> PathBuf {
    root().join(".tools/venv/bin/moto_server")
}

fn ensure_moto() -> Result<PathBuf> {
    let venv = root().join(".tools/venv");
    let probe = "import importlib.metadata as m; print(m.version('moto'))";
    let installed =
        output(Command::new(venv.join("bin/python")).args(["-c", probe])).unwrap_or_default();
    if installed.trim() == MOTO_VERSION && moto_server().is_file() {
        return Ok(moto_server());
    }
    step(&format!(
        "installing moto[server] {MOTO_VERSION} into .tools/venv (once per machine)"
    ));
    pip_install("moto[server]", "moto", MOTO_VERSION, &moto_server())?;
    Ok(moto_server())
}

/// The pyarrow release the open-format test reads a block with.
pub(crate) const PYARROW_VERSION: &str = "26.0.1";

/// The venv's Python (what the tests get in `CINDER_E2E_PYTHON`).
pub(crate) fn venv_python() -> PathBuf {
    root().join(".tools/venv/bin/python")
}

/// pyarrow of [`PYARROW_VERSION`] in `.tools/venv`, installed from PyPI unless it is there.
fn ensure_pyarrow() -> Result<()> {
    let probe = || {
        output(
            Command::new(venv_python()).args(["-c", "import pyarrow; print(pyarrow.__version__)"]),
        )
        .unwrap_or_default()
    };
    if probe().trim() == PYARROW_VERSION {
        return Ok(());
    }
    step(&format!(
        "installing pyarrow {PYARROW_VERSION} into .tools/venv (once per machine)"
    ));
    let venv = ensure_venv()?;
    status(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("pyarrow=={PYARROW_VERSION}")),
    )?;
    if probe().trim() != PYARROW_VERSION {
        bail!("pyarrow {PYARROW_VERSION} installed, but the venv's python cannot import it");
    }
    Ok(())
}

/// The wasm32 target of rustup.
pub(crate) fn ensure_wasm_target() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    step(&format!("installing the {WASM_TARGET} target"));
    status(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Installs `krate` at exactly `version` unless `bin --version` already reports it.
pub(crate) fn ensure_cargo_tool(
    bin: &str,
    krate: &str,
    version: &str,
    flags: &[&str],
) -> Result<()> {
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
    cmd.args(["install", krate, "--version", version, "--quiet"])
        .args(flags)
        // One target folder for both tools: what they share builds once.
        .arg("--target-dir")
        .arg(root().join("target/tools-build"));
    // The install must not inherit this workspace's settings, and builds fast.
    cmd.current_dir(env::temp_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1");
    status(&mut cmd)
}

/// The wasm-bindgen version Cargo.lock pins: the CLI must be exactly that.
pub(crate) fn wasm_bindgen_version_in_lock() -> Result<String> {
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
pub(crate) fn ensure_debian_packages(wanted: &[(&str, &str)]) -> Result<()> {
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
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    apt(&args)
}

/// Runs apt-get (through sudo when not root), quietly.
fn apt(args: &[&str]) -> Result<()> {
    let sudo = if is_root() { None } else { which("sudo") };
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
}

/// wasm-opt from npm's binaryen (Debian's binaryen 108 produces a broken app).
pub(crate) fn ensure_wasm_opt() -> Result<()> {
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
pub(crate) fn tool_path() -> Result<std::ffi::OsString> {
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

/// The path of `cmd` on PATH.
pub(crate) fn which(cmd: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}
