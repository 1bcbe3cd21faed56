//! Starting and stopping a real `cinder` process on a free port with a temporary data dir.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// The `cinder` binary cargo built for these tests, or the one `CINDER_E2E_BIN` names
/// (benchmarks run a release server under the debug test binary this way).
pub fn cinder_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("CINDER_E2E_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cinder").to_owned())
    })
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

/// moto's S3 server: `CINDER_E2E_MOTO` (what `cargo xtask test` installs), else the
/// project's venv `.tools/venv/bin/moto_server`. Never whatever is on PATH.
pub fn moto_bin() -> Option<PathBuf> {
    let path = std::env::var_os("CINDER_E2E_MOTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/moto_server")
        });
    path.is_file().then_some(path)
}

/// The project venv's Python with pyarrow: `CINDER_E2E_PYTHON` (what `cargo xtask test`
/// installs), else `.tools/venv/bin/python` when it can import pyarrow.
pub fn pyarrow_python() -> Option<PathBuf> {
    let path = std::env::var_os("CINDER_E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python"));
    let imports = Command::new(&path)
        .args(["-c", "import pyarrow"])
        .status()
        .is_ok_and(|s| s.success());
    imports.then_some(path)
}

/// A running moto S3 server on a free loopback port; killed when dropped. Its state is
/// in memory: [`Moto::start_again`] brings up an empty server on the same port.
pub struct Moto {
    child: Option<Child>,
    bin: PathBuf,
    env: Vec<(String, String)>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Moto {
    /// Starts moto (or skips, see [`prerequisite`]) with extra environment variables, e.g.
    /// `INITIAL_NO_AUTH_ACTION_COUNT=0` to make it check credentials.
    pub fn start(env: &[(&str, &str)]) -> Option<Moto> {
        let bin = prerequisite("moto_server (cargo xtask tools installs it)", moto_bin())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut moto = Moto {
            child: None,
            bin,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            port,
        };
        moto.start_again();
        Some(moto)
    }

    /// `127.0.0.1:PORT`, as Thanos' `endpoint` key wants it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server (its buckets go with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts an empty server on the same port and waits until it answers.
    pub fn start_again(&mut self) {
        self.stop();
        let child = Command::new(&self.bin)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while raw_http::status_of(&format!("http://{}/", self.endpoint())).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a bucket (moto takes unsigned requests unless told to check credentials).
    pub fn create_bucket(&self, http: &Http, name: &str) {
        let url = format!("http://{}/{name}", self.endpoint());
        let resp = http.send_with(http.raw().put(url));
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    }

    /// `(key, size)` of every object in `bucket` (one page of up to 1000 keys).
    pub fn list(&self, http: &Http, bucket: &str) -> Vec<(String, u64)> {
        let url = format!("http://{}/{bucket}?list-type=2", self.endpoint());
        let resp = http.get(&url, false);
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
        let xml = String::from_utf8_lossy(&resp.body).into_owned();
        assert!(
            xml.contains("<IsTruncated>false"),
            "more than one page: {xml}"
        );
        xml.split("<Contents>")
            .skip(1)
            .map(|c| {
                (
                    between(c, "<Key>", "</Key>"),
                    between(c, "<Size>", "</Size>").parse().expect("size"),
                )
            })
            .collect()
    }

    /// The bytes of one object, read with the credentials the tests upload with (moto
    /// keeps objects private to them).
    /// An object's bytes (`None` when it is not there).
    pub fn get(&self, _http: &Http, bucket: &str, key: &str) -> Option<Vec<u8>> {
        use object_store::ObjectStoreExt as _;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://{}", self.endpoint()))
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("an S3 client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let object = store.get(&object_store::path::Path::from(key)).await.ok()?;
            Some(object.bytes().await.ok()?.to_vec())
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn between(text: &str, open: &str, close: &str) -> String {
    let start = text.find(open).expect("open tag") + open.len();
    let end = start + text[start..].find(close).expect("close tag");
    text[start..end].to_owned()
}

/// Starts cinder expecting it to fail; returns its exit code and stderr.
pub fn start_failing(data_dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(cinder_bin())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--otlp-grpc-listen",
            "off",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env("CINDER_LOG_LEVEL", "error")
        .output()
        .expect("run cinder");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
