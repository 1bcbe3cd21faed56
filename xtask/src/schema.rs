//! `cargo xtask schema` and the schema phase of `cargo xtask test`: a real `cinder` (with
//! an API token) checked against its own `/api/v1/openapi.json` with every check
//! schemathesis has (its default: all of them), so the document says exactly what the server accepts
//! and answers; any failure fails the run. `xtask/schemathesis.toml` lists the few
//! operations whose validity a JSON Schema cannot state (see docs/fuzzing.md), and
//! `xtask/schemathesis_hooks.py` sends protobuf bodies as bytes.
//!
//! schemathesis comes from PyPI into the project's own venv, `.tools/venv`, installed
//! once and reused.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, output, root, status, step};

/// The schemathesis release installed.
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// The token the server under test guards writes with.
const TOKEN: &str = "schemathesis";

/// `cargo xtask schema`: installs schemathesis if needed, builds and starts cinder, runs
/// every check against it.
pub(crate) fn run() -> Result<()> {
    ensure_schemathesis()?;
    status(cargo().args([
        "build",
        "--quiet",
        "--package",
        "backend",
        "--bin",
        "cinder",
    ]))?;
    check(&root().join("target/debug/cinder"))
}

/// Starts `bin` and runs schemathesis against it (installed by [`ensure_schemathesis`]).
pub(crate) fn check(bin: &Path) -> Result<()> {
    let st = schemathesis_bin();
    let server = Server::start(bin)?;
    step(&format!(
        "schemathesis (every check) against cinder at {}",
        server.addr
    ));
    let schema = format!("http://{}/api/v1/openapi.json", server.addr);
    let xtask = root().join("xtask");
    // `/debug/pprof/profile` records Cinder's CPU for up to 5 minutes by design.
    status(
        Command::new(st)
            .arg("--config-file")
            .arg(xtask.join("schemathesis.toml"))
            // Every check is on by default; `--checks all` would also override the
            // config's per-operation exceptions.
            .args(["run", &schema])
            .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
            .env("PYTHONPATH", &xtask)
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .args(["--exclude-path", "/debug/pprof/profile"])
            .args([
                // One worker: hypothesis' lambda descriptions parse source with `ast`,
                // which fails now and then when threads do it at once (Python 3.11).
                "--workers",
                "1",
                "--request-timeout",
                "10",
                "--max-response-time",
                "5",
            ])
            .env("NO_COLOR", "1"),
    )
}

fn schemathesis_bin() -> PathBuf {
    root().join(".tools/venv/bin/schemathesis")
}

/// `.tools/venv/bin/schemathesis` at [`SCHEMATHESIS_VERSION`], installed if missing
/// (a second call finds it and returns at once).
pub(crate) fn ensure_schemathesis() -> Result<()> {
    let st = schemathesis_bin();
    let version = output(Command::new(&st).arg("--version")).unwrap_or_default();
    if version.contains(SCHEMATHESIS_VERSION) {
        return Ok(());
    }
    step(&format!(
        "installing schemathesis {SCHEMATHESIS_VERSION} into .tools/venv (once per machine)"
    ));
    crate::tools::pip_install("schemathesis", "schemathesis", SCHEMATHESIS_VERSION, &st)
}

/// A `cinder` on a free loopback port with a fresh data dir; killed when dropped.
struct Server {
    child: Child,
    addr: String,
    data: PathBuf,
}

impl Server {
    fn start(bin: &Path) -> Result<Server> {
        let data = std::env::temp_dir().join(format!("cinder-schema-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--api-token", TOKEN])
            .arg("--data-dir")
            .arg(&data)
            .env("CINDER_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listen=").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                bail!("cinder did not log its listen address within 30 s");
            }
        };
        let server = Server { child, addr, data };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<()> {
        for _ in 0..600 {
            let ready = std::net::TcpStream::connect(&self.addr).is_ok_and(|mut s| {
                use std::io::{Read as _, Write as _};
                let request = format!(
                    "GET /ready HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut head = [0u8; 12];
                s.write_all(request.as_bytes()).is_ok()
                    && s.read_exact(&mut head).is_ok()
                    && &head[9..12] == b"200"
            });
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("cinder at {} was not ready within 60 s", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
