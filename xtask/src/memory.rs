//! `cargo xtask idle-memory [MINUTES] [--bin PATH] [--every SECONDS] [--out DIR]`: the resident memory
//! of a `cinder` binary at idle, the way issue 15 measures it. It starts the binary in an
//! empty folder (so it scrapes itself), adds the project's Go target
//! (`tests/targets/go-pprof-target`) through the targets API, opens the UI in headless
//! Chromium, and samples the server's `VmRSS` every `--every` seconds (default 30) for
//! MINUTES (default 30). At the end it saves Cinder's own heap profile
//! (`/debug/pprof/heap`) beside the samples in `--out` (default `target/idle-memory/`), for
//! `go tool pprof -top`. Every process it starts is killed when it ends, also on failure.
//!
//! Without `--bin` it builds `cinder` with the UI embedded in the `ci` profile (release
//! without LTO): `target/ci/cinder`.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, root, status, step, tools, ui};

/// What the command was asked to do.
struct Options {
    minutes: f64,
    every: Duration,
    bin: Option<PathBuf>,
    out: PathBuf,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        minutes: 30.0,
        every: Duration::from_secs(30),
        bin: None,
        out: root().join("target/idle-memory"),
    };
    let mut args = args.iter().filter(|a| *a != "--");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bin" => options.bin = Some(args.next().context("--bin needs a path")?.into()),
            "--out" => options.out = args.next().context("--out needs a folder")?.into(),
            "--every" => {
                let secs: u64 = args.next().context("--every needs seconds")?.parse()?;
                options.every = Duration::from_secs(secs.max(1));
            }
            minutes => {
                options.minutes = minutes
                    .parse()
                    .with_context(|| format!("{minutes:?} is not a number of minutes"))?;
            }
        }
    }
    Ok(options)
}

/// Runs the measurement; see the module docs.
pub(crate) fn command(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let bin = match options.bin.clone() {
        Some(bin) => {
            std::fs::canonicalize(&bin).with_context(|| format!("--bin {}", bin.display()))?
        }
        None => build_ci_binary()?,
    };
    let out = options.out.clone();
    std::fs::create_dir_all(&out)?;
    let data = out.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    let go = start_go_target()?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let cinder = Guard(
        Command::new(&bin)
            .current_dir(&data)
            .args(["--listen", &addr, "--otlp-grpc-listen", "off"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(out.join("cinder.log"))?)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?,
    );
    wait_ready(&addr)?;
    let body = format!(r#"{{"job":"go","address":"{}"}}"#, go.1);
    let (code, answer) = http(&addr, "POST", "/api/v1/targets", Some(&body))?;
    if code != 201 {
        bail!("adding the Go target answered {code}: {answer}");
    }
    let _browser = open_ui(&addr, &out)?;
    step(&format!(
        "sampling VmRSS of {} (pid {}) every {} s for {} min",
        bin.display(),
        cinder.0.id(),
        options.every.as_secs(),
        options.minutes
    ));
    let csv = sample(cinder.0.id(), &options, &out)?;
    let (code, heap) = http_bytes(&addr, "GET", "/debug/pprof/heap", None)?;
    if code == 200 {
        std::fs::write(out.join("heap.pb.gz"), heap)?;
    }
    step(&format!(
        "samples in {}; heap profile in {} (go tool pprof -top -sample_index=inuse_space FILE)",
        csv.display(),
        out.join("heap.pb.gz").display()
    ));
    drop(go);
    Ok(())
}

/// `target/ci/cinder` with the release UI embedded.
fn build_ci_binary() -> Result<PathBuf> {
    tools::ensure_build_tools()?;
    tools::ensure_wasm_opt()?;
    let ui = ui::build(true)?;
    status(
        cargo()
            .args(["build", "--profile", "ci", "--package", "backend"])
            .args(["--bin", "cinder", "--features", "embed-ui"])
            .env("CINDER_UI_DIST", &ui),
    )?;
    Ok(root().join("target/ci/cinder"))
}

/// Samples the resident memory of `pid` until the time is up; writes and returns the CSV.
fn sample(pid: u32, options: &Options, out: &Path) -> Result<PathBuf> {
    let csv = out.join("rss.csv");
    let mut file = std::fs::File::create(&csv)?;
    writeln!(file, "seconds,rss_mib,hwm_mib")?;
    let start = Instant::now();
    let end = Duration::from_secs_f64(options.minutes * 60.0);
    loop {
        let (rss, hwm) = rss_kib(pid)?;
        let at = start.elapsed().as_secs();
        let line = format!("{at},{:.1},{:.1}", rss as f64 / 1024.0, hwm as f64 / 1024.0);
        writeln!(file, "{line}")?;
        step(&format!(
            "t={at:>5} s  VmRSS {:>7.1} MiB  VmHWM {:>7.1} MiB",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ));
        if start.elapsed() >= end {
            return Ok(csv);
        }
        thread::sleep(options.every.min(end.saturating_sub(start.elapsed())));
    }
}

/// `VmRSS` and `VmHWM` of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// A child process killed (with its process group) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill")
            .args(["--", &format!("-{pid}")])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Builds and starts the Go target on a free port: the guard and its address.
fn start_go_target() -> Result<(Guard, String)> {
    let script = root().join("tests/targets/go-pprof-target/run.sh");
    let mut child = Command::new(script)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("starting tests/targets/go-pprof-target/run.sh (needs go)")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let guard = Guard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    // go-pprof-target listening on http://127.0.0.1:PORT pid=PID
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .with_context(|| format!("the Go target said {line:?}"))?
        .to_owned();
    Ok((guard, addr))
}

/// Headless Chromium on the UI's Explore page, in a profile folder of its own.
fn open_ui(addr: &str, out: &Path) -> Result<Guard> {
    let profile = out.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let child = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{addr}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting chromium")?;
    Ok(Guard(child))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_ready(addr: &str) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if matches!(http(addr, "GET", "/ready", None), Ok((200, _))) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(200));
    }
    bail!("cinder at {addr} was not ready within 60 s")
}

/// One HTTP/1.1 request (connection closed after it): the status and the body as text.
fn http(addr: &str, method: &str, path: &str, json: Option<&str>) -> Result<(u16, String)> {
    let (code, body) = http_bytes(addr, method, path, json)?;
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

fn http_bytes(addr: &str, method: &str, path: &str, json: Option<&str>) -> Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = json.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("an HTTP answer without headers")?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("an HTTP answer without a status")?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok((code, dechunk(&answer[split + 4..])));
    }
    Ok((code, answer[split + 4..].to_vec()))
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            break;
        }
        body.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_a_chunked_body() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }

    #[test]
    fn parses_minutes_and_flags() {
        let args: Vec<String> = ["--", "2.5", "--every", "5", "--bin", "/x/cinder"]
            .map(String::from)
            .into();
        let o = parse(&args).unwrap();
        assert_eq!(o.minutes, 2.5);
        assert_eq!(o.every, Duration::from_secs(5));
        assert_eq!(o.bin, Some(PathBuf::from("/x/cinder")));
        assert!(parse(&["ten".to_owned()]).is_err());
    }
}
