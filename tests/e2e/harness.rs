//! Starting and stopping a real `cinder` process on a free port with a temporary data dir.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// The `cinder` binary cargo built for these tests.
pub fn cinder_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cinder")
}

/// True when `cargo xtask test` asked for every tool to be present (the built UI,
/// Chromium, chromedriver, Go): it installs them, so a test must not skip for want of one.
pub fn required() -> bool {
    std::env::var_os("CINDER_E2E_REQUIRE").is_some_and(|v| v == "1")
}

/// True under CI (`CI=true`): the real-world corpus beside the repository must be there.
/// Anywhere else it is an extra, and tests that need it skip.
pub fn corpus_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true")
}

/// Skips (returns `None` after a notice) or fails, depending on [`required`].
pub fn prerequisite<T>(what: &str, value: Option<T>) -> Option<T> {
    if value.is_none() {
        assert!(
            !required(),
            "{what} is missing, and CINDER_E2E_REQUIRE=1 says it must be there"
        );
        skipped(what);
    }
    value
}

/// The real-world corpus `../shared/testdata/pprof`, or `None` after a skip notice; fails
/// instead when [`corpus_required`].
pub fn corpus() -> Option<PathBuf> {
    let dir = shared_pprof_dir();
    if dir.is_none() {
        assert!(
            !corpus_required(),
            "the corpus {} is missing, and CI=true says it must be there",
            shared_dir().join("testdata/pprof").display()
        );
        skipped("the real-world corpus (../shared/testdata/pprof)");
    }
    dir
}

/// Says that the current test skips, on stderr and, when `cargo xtask test` asks for it
/// with `CINDER_SKIP_LOG`, as a line `test name<TAB>reason` in that file (it counts them).
pub fn skipped(what: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_owned();
    eprintln!("SKIPPED: {what} is missing");
    if let Some(log) = std::env::var_os("CINDER_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            // One write per line: tests run in parallel and append to the same file.
            let _ = file.write_all(format!("{test}\t{what} is missing\n").as_bytes());
        }
    }
}

/// The UI folder trunk built (`cargo xtask test` passes it in `CINDER_E2E_UI_DIR`).
pub fn ui_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CINDER_E2E_UI_DIR").map(PathBuf::from)?;
    dir.join("index.html").is_file().then_some(dir)
}

/// A running `cinder`; killed when dropped.
pub struct Cinder {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data dir (kept across [`Cinder::restart`]).
    pub data_dir: PathBuf,
    args: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Cinder {
    /// Starts cinder with a fresh temporary data dir and the given extra arguments.
    pub fn start(extra: &[&str]) -> Cinder {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, addr) = spawn(&data_dir, &args);
        Cinder {
            child,
            addr,
            data_dir,
            args,
            _tmp: Some(tmp),
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id (for /proc and signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the process (no chance to flush anything) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process with SIGTERM (it flushes its head first) and waits for it.
    pub fn terminate(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Starts again on the same data dir (on a new port) after [`Cinder::terminate`].
    pub fn start_again(&mut self) {
        let (child, addr) = spawn(&self.data_dir, &self.args);
        self.child = child;
        self.addr = addr;
    }

    /// Kills and starts again on the same data dir (on a new port).
    pub fn restart(&mut self) {
        self.kill();
        let (child, addr) = spawn(&self.data_dir, &self.args);
        self.child = child;
        self.addr = addr;
    }
}

impl Drop for Cinder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns cinder on port 0, reads the bound address from its log, waits for `/ready`.
fn spawn(data_dir: &Path, extra: &[String]) -> (Child, SocketAddr) {
    let mut cmd = Command::new(cinder_bin());
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra);
    if let Some(ui) = ui_dir()
        && !extra.iter().any(|a| a == "--ui-dir")
    {
        cmd.arg("--ui-dir").arg(ui);
    }
    // Fixtures carry fixed historical times (real profiles, 2023 timestamps): keep every
    // past time unless a test sets its own --retention (a flag beats the environment).
    cmd.env("CINDER_LOG_LEVEL", "info")
        .env("CINDER_RETENTION", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn cinder");
    let addr = read_listen_addr(&mut child);
    wait_ready(addr);
    (child, addr)
}

/// Follows cinder's stderr (forwarding it to ours) until it logs `listen=ADDR`.
fn read_listen_addr(child: &mut Child) -> SocketAddr {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[cinder] {line}");
            if !sent && let Some(addr) = parse_listen(&line) {
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("cinder did not log its listen address within 20 s")
}

fn parse_listen(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listen=")? + "listen=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("http://{addr}/ready");
    while Instant::now() < deadline {
        if let Ok(200) = raw_http::status_of(&url) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("cinder at {addr} was not ready within 60 s");
}

/// Tiny blocking HTTP GET for the harness (no runtime needed).
mod raw_http {
    use std::io::{Read as _, Write as _};

    /// Returns the status code of `GET url` (http only).
    pub fn status_of(url: &str) -> std::io::Result<u16> {
        let rest = url.strip_prefix("http://").expect("http url");
        let (host, path) = rest
            .split_once('/')
            .map(|(h, p)| (h, format!("/{p}")))
            .unwrap_or((rest, "/".into()));
        let mut stream = std::net::TcpStream::connect(host)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        let code = std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|c| c.parse().ok());
        code.ok_or_else(|| std::io::Error::other("bad status line"))
    }
}

/// A small blocking HTTP client (its own runtime) so tests read top to bottom.
pub struct Http(::reqwest::Client, tokio::runtime::Runtime);

/// A whole response.
pub struct Resp {
    pub status: u16,
    pub headers: ::reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (panics with the body text if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Http {
    pub fn new() -> Http {
        // reqwest is built with rustls without a default crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Http(::reqwest::Client::new(), rt)
    }

    /// GET, optionally asking for gzip.
    pub fn get(&self, url: &str, gzip: bool) -> Resp {
        let mut req = self.0.get(url);
        if gzip {
            req = req.header("accept-encoding", "gzip");
        }
        self.send(req)
    }

    /// POST a body.
    pub fn post(&self, url: &str, body: Vec<u8>) -> Resp {
        self.send(self.0.post(url).body(body))
    }

    /// POST, returning an error instead of panicking when the server is gone.
    pub fn try_post(&self, url: &str, body: Vec<u8>) -> Result<Resp, String> {
        self.1.block_on(async {
            let resp = self
                .0
                .post(url)
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
            Ok(Resp {
                status,
                headers,
                body,
            })
        })
    }

    /// The client, to build requests with headers for [`Http::send_with`].
    pub fn raw(&self) -> &::reqwest::Client {
        &self.0
    }

    /// Sends a request built on [`Http::raw`].
    pub fn send_with(&self, req: ::reqwest::RequestBuilder) -> Resp {
        self.send(req)
    }

    fn send(&self, req: ::reqwest::RequestBuilder) -> Resp {
        self.1.block_on(async {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.expect("body").to_vec();
            Resp {
                status,
                headers,
                body,
            }
        })
    }
}

/// The folder beside the repository that may hold the real-world corpus: `../shared`,
/// or `CINDER_SHARED_DIR` (point it at an empty folder to run as a bare clone would).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("CINDER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// `testdata/pprof` of [`shared_dir`], if present.
pub fn shared_pprof_dir() -> Option<PathBuf> {
    let dir = shared_dir().join("testdata/pprof");
    dir.join("expected.json").is_file().then_some(dir)
}

/// The project's own Go scrape target, `tests/targets/go-pprof-target/run.sh`.
pub fn go_target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/targets/go-pprof-target")
}

/// Whether `go version` runs.
pub fn have_go() -> bool {
    Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Go target's `run.sh` when Go is installed.
pub fn go_target_script() -> Option<PathBuf> {
    let script = go_target_dir().join("run.sh");
    (script.is_file() && have_go()).then_some(script)
}

/// URL-encodes a query parameter value.
pub fn enc(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
