//! The query bench's `http` case: an hour of 10 targets as a client sees it. The release
//! `cinder` binary runs in a fresh data folder (an empty `--config`, so it scrapes
//! nothing, itself included); 4 concurrent pushers send the 3,600 re-stamped profiles to
//! `POST /api/v1/ingest` in time order; 2 s after the last acknowledgement, 7
//! `report=stacks` merges of the whole hour are timed from connect to the last byte.
//! No flush or compaction is forced: the server's own maintenance runs as it would.

use std::{
    fs,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use backend::ingest::DEFAULT_MAX_UNCOMPRESSED;
use proto::{Message as _, Profile};
use shared::{ipc, view::encode};

use crate::{
    PROFILE_NAME, STEP_MS, STEPS, TARGETS, TYPE_ID, figure, gzip, instance, ms, note, pct, steps,
};

const PUSHERS: usize = 4;
const MERGES: usize = 7;
const SETTLE: Duration = Duration::from_secs(2);

/// The server under test: killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `cinder` binary: `QUERY_BENCH_BIN`, or `target/release/cinder` beside this bench.
pub(crate) fn binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("QUERY_BENCH_BIN") {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe()?;
    // target/release/deps/query-HASH → target/release/cinder
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .context("bench path")?
        .join("cinder");
    anyhow::ensure!(
        bin.is_file(),
        "{} missing (cargo build --release --bin cinder, or QUERY_BENCH_BIN)",
        bin.display()
    );
    Ok(bin)
}

fn start(bin: &Path, dir: &Path) -> Result<Server> {
    start_with(bin, dir, "")
}

/// Starts `bin` in `dir` with `config` as its `--config` file; waits until it is ready.
pub(crate) fn start_with(bin: &Path, dir: &Path, config: &str) -> Result<Server> {
    let config_path = dir.join("config.yaml");
    fs::write(&config_path, config)?;
    let config = config_path;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(bin)
        .arg("--listen")
        .arg(&addr)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .args(["--otlp-grpc-listen", "off", "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("cinder.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if matches!(request(&server.addr, "GET", "/ready", &[]), Ok((200, _))) {
            note(&format!("server {}", bin.display()));
            return Ok(server);
        }
        thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("{} was not ready within 60 s", bin.display())
}

/// One HTTP/1.0 request (so the answer is not chunked): status and body.
pub(crate) fn request(addr: &str, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    Ok((code, answer[split + 4..].to_vec()))
}

/// Runs the case for the profile at `path`; prints `kv` figures and notes.
pub(crate) fn case(path: &Path) -> Result<()> {
    let bin = match binary() {
        Ok(bin) => bin,
        Err(e) => {
            note(&format!("http case skipped: {e:#}"));
            return Ok(());
        }
    };
    let mut profile: Profile = proto::read(&fs::read(path)?, DEFAULT_MAX_UNCOMPRESSED)?;
    figure("samples", profile.sample.len());
    let steps = steps();
    let mut bodies = Vec::with_capacity(STEPS);
    for &t in &steps {
        profile.time_nanos = t * 1_000_000;
        profile.duration_nanos = STEP_MS * 1_000_000;
        bodies.push(gzip(&profile.encode_to_vec())?);
    }
    figure("gz_bytes", bodies[0].len());
    let dir = tempfile::tempdir()?;
    let server = start(&bin, dir.path())?;
    let (elapsed, mut latencies, total) = push_all(&server.addr, &bodies)?;
    latencies.sort();
    figure("ingest_s", format!("{:.2}", elapsed.as_secs_f64()));
    figure(
        "push_ms",
        format!(
            "{:.1} / {:.1}",
            ms(pct(&latencies, 50)),
            ms(pct(&latencies, 99))
        ),
    );
    thread::sleep(SETTLE);
    let query = format!("{TYPE_ID}{{}}");
    let uri = format!(
        "/api/v1/query?query={}&start={}&end={}",
        encode(&query),
        steps[0],
        steps[STEPS - 1]
    );
    let mut times = Vec::with_capacity(MERGES);
    let mut last = Vec::new();
    for _ in 0..MERGES {
        let start = Instant::now();
        let (code, body) = request(&server.addr, "GET", &uri, &[])?;
        times.push(start.elapsed());
        anyhow::ensure!(code == 200, "merge answered {code}");
        last = body;
    }
    let ordered: Vec<String> = times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
    times.sort();
    figure(
        "merge_hour",
        format!("{:.1} / {:.1}", ms(pct(&times, 50)), ms(times[MERGES - 1])),
    );
    figure("reps", MERGES);
    note(&format!("merges in order (ms): {}", ordered.join(", ")));
    let decoded = ipc::decode_stacks(&last)?;
    note(&format!(
        "hour merge total {}, acknowledged total {total}{}",
        decoded.meta.total,
        if decoded.meta.total == total {
            ", equal"
        } else {
            ", DIFFERENT"
        }
    ));
    figure("arrow_bytes", last.len());
    figure("server_rss", server_rss(&server)?);
    Ok(())
}

/// 4 threads push every (step, target) in time order; returns the wall time, each push's
/// latency and the acknowledged total of [`TYPE_ID`].
fn push_all(addr: &str, bodies: &[Vec<u8>]) -> Result<(Duration, Vec<Duration>, i64)> {
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(STEPS * TARGETS));
    let total = Mutex::new(0i64);
    let start = Instant::now();
    thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..PUSHERS)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= STEPS * TARGETS {
                            return Ok(());
                        }
                        let (step, target) = (i / TARGETS, i % TARGETS);
                        let path = format!(
                            "/api/v1/ingest?__name__={PROFILE_NAME}&job=bench&instance={}",
                            instance(target)
                        );
                        let began = Instant::now();
                        let (code, answer) = request(addr, "POST", &path, &bodies[step])?;
                        let took = began.elapsed();
                        anyhow::ensure!(
                            code == 200,
                            "push {i} answered {code}: {}",
                            String::from_utf8_lossy(&answer)
                        );
                        *total.lock().unwrap() += acknowledged(&answer)?;
                        latencies.lock().unwrap().push(took);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("pusher panicked")?;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed();
    Ok((
        elapsed,
        latencies.into_inner().unwrap(),
        total.into_inner().unwrap(),
    ))
}

/// The `total` of [`TYPE_ID`] in an ingest answer.
fn acknowledged(answer: &[u8]) -> Result<i64> {
    let json: serde_json::Value = serde_json::from_slice(answer)?;
    Ok(json["profile_types"]
        .as_array()
        .context("profile_types")?
        .iter()
        .filter(|t| t["profile_type"] == TYPE_ID)
        .filter_map(|t| t["total"].as_i64())
        .sum())
}

/// "VmRSS / VmHWM" of the server in MiB.
fn server_rss(server: &Server) -> Result<String> {
    let (rss, hwm) = rss_mib(server)?;
    Ok(format!("{rss:.0} / {hwm:.0}"))
}

/// (VmRSS, VmHWM) of the server in MiB.
pub(crate) fn rss_mib(server: &Server) -> Result<(f64, f64)> {
    let status = fs::read_to_string(format!("/proc/{}/status", server.child.id()))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}
