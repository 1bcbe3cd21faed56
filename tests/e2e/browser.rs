//! A real headless Chromium driven through chromedriver, and the UI tests that use it.
//! A failing test leaves a screenshot under `target/tmp/screenshots/`.
//!
//! chromedriver runs in a process group of its own, and Chromium (which it starts) in that
//! group too; a drop guard kills the whole group, and any process still naming the test's
//! profile folder, so no browser outlives its test, also when the test fails or panics.

use std::{
    net::TcpListener,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::harness::{Cinder, prerequisite, ui_dir};

/// Chromium flags for running as root on a machine with no network but loopback.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// A chromedriver process and one browser session; both end when dropped.
pub struct Browser {
    pub client: Client,
    // Dropped before the profile folder: the processes go first.
    _driver: ProcessGroup,
    _profile: tempfile::TempDir,
}

/// A process started in a new process group, and everything in that group: killed
/// (SIGKILL) and reaped when dropped, also while a test panics. Processes that left the
/// group but whose command line names `marker` (the browser's profile folder) go too.
pub struct ProcessGroup {
    child: Child,
    marker: String,
}

impl ProcessGroup {
    /// Spawns `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut Command, marker: &Path) -> std::io::Result<ProcessGroup> {
        let child = cmd.process_group(0).spawn()?;
        Ok(ProcessGroup {
            child,
            marker: marker.display().to_string(),
        })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in pids_naming(&self.marker) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Processes whose command line contains `marker`.
pub fn pids_naming(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .collect()
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names
        .iter()
        .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver and a fresh Chromium profile; `None` (after a notice) if absent.
    pub async fn start() -> Option<Browser> {
        let driver_bin = prerequisite("chromedriver", find_program(&["chromedriver"]))?;
        let chromium = prerequisite("chromium", find_program(&["chromium", "chromium-browser"]))?;
        let port = free_port();
        let profile = tempfile::tempdir().expect("profile dir");
        let driver = ProcessGroup::spawn(
            Command::new(driver_bin)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            profile.path(),
        )
        .expect("spawn chromedriver");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let client = connect(port, caps).await;
        Some(Browser {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    /// The browser's profile folder (every Chromium process names it).
    pub fn profile_dir(&self) -> &Path {
        self._profile.path()
    }

    /// Opens `url` and waits until the element with `data-testid=testid` exists.
    pub async fn open(&self, url: &str, testid: &str) {
        self.client.goto(url).await.expect("goto");
        self.wait_for(testid).await;
    }

    /// Waits (30 s at most) for the element with this `data-testid`.
    pub async fn wait_for(&self, testid: &str) -> fantoccini::elements::Element {
        let css = format!("[data-testid=\"{testid}\"]");
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(&css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} appeared: {e}"))
    }

    /// Runs a script in the page and returns its JSON result.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("execute script")
    }

    /// Saves a screenshot if the current test is panicking (call from a drop guard).
    pub fn screenshot_on_panic(&self, name: &'static str) -> ScreenshotOnPanic<'_> {
        ScreenshotOnPanic {
            browser: self,
            name,
        }
    }
}

/// Takes a screenshot when dropped during a panic.
pub struct ScreenshotOnPanic<'a> {
    browser: &'a Browser,
    name: &'static str,
}

impl Drop for ScreenshotOnPanic<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        let path = dir.join(format!("{}.png", self.name));
        let shot = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(self.browser.client.screenshot())
        });
        if let Ok(png) = shot {
            let _ = std::fs::create_dir_all(&dir);
            if std::fs::write(&path, png).is_ok() {
                eprintln!("screenshot of the failure: {}", path.display());
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects to chromedriver, retrying while it starts up.
async fn connect(port: u16, caps: serde_json::Map<String, serde_json::Value>) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{port}");
    loop {
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps.clone());
        match builder.connect(&url).await {
            Ok(client) => return client,
            Err(err) if Instant::now() > deadline => {
                panic!("cannot start a Chromium session: {err}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shell_is_drawn_by_wasm_and_routes_reload_into_the_app() {
    if prerequisite("the UI built by trunk (CINDER_E2E_UI_DIR)", ui_dir()).is_none() {
        return;
    }
    let Some(browser) = Browser::start().await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("shell");
    let server = Cinder::start(&[]);

    browser
        .open(&format!("{}/", server.url()), "shell-header")
        .await;
    browser.wait_for("page-explore").await;
    let nav: Vec<String> = {
        let links = browser
            .client
            .find_all(Locator::Css(".shell-nav a"))
            .await
            .unwrap();
        let mut texts = Vec::new();
        for link in links {
            texts.push(link.text().await.unwrap());
        }
        texts
    };
    assert_eq!(nav, ["Explore", "Compare", "Targets"]);

    // A reload on a client-side route comes back into the same app.
    browser
        .open(&format!("{}/targets", server.url()), "page-targets")
        .await;
    // Navigation inside the app changes the page without a reload.
    browser
        .client
        .find(Locator::LinkText("Compare"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_for("page-compare").await;
    assert_eq!(
        browser.client.current_url().await.unwrap().path(),
        "/compare"
    );

    // The theme toggle flips <html data-theme>.
    let before = browser
        .eval("return document.documentElement.dataset.theme")
        .await;
    browser
        .wait_for("theme-toggle")
        .await
        .click()
        .await
        .unwrap();
    let after = browser
        .eval("return document.documentElement.dataset.theme")
        .await;
    assert_ne!(before, after, "theme did not change");
    assert!(after == "dark" || after == "light", "theme is {after}");
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped: it holds no memory).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_test_leaves_no_browser_behind() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.client.goto("about:blank").await.expect("goto");
    let marker = browser.profile_dir().display().to_string();
    let pids = pids_naming(&marker);
    assert!(
        pids.len() >= 2,
        "Chromium's processes name their profile folder: {pids:?}"
    );
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _browser = browser;
        panic!("a test failing while its browser runs (on purpose)");
    }));
    assert!(outcome.is_err());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| !is_gone(p)).collect();
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after the guard: {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one-file binary (UI embedded) that `cargo xtask test` builds with the `ci` profile
/// and names in `CINDER_E2E_ONE_FILE_BIN`.
fn one_file_bin() -> Option<PathBuf> {
    let bin = PathBuf::from(std::env::var_os("CINDER_E2E_ONE_FILE_BIN")?);
    bin.is_file().then_some(bin)
}

/// Cinder's own function names: its library (`backend::…`) and binary (`cinder::…`),
/// also as the implementing type of a trait method (`<backend::… as …>::…`).
fn is_cinder_function(name: &str) -> bool {
    let name = name.trim_start_matches('<');
    name.starts_with("backend::") || name.starts_with("cinder::")
}

/// `Some(())` once `GET /healthy` on `port` answers.
fn raw_get_ok(port: u16) -> Option<()> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(
            format!("GET /healthy HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    (&head[9..12] == b"200").then_some(())
}

/// The functions of the flame graph the page drew (listed by its top table), once it has
/// drawn one.
async fn drawn_functions(browser: &Browser) -> Vec<String> {
    let names = browser
        .eval(
            "const c = document.querySelector('[data-testid=flamegraph]'); \
             if (!c || Number(c.dataset.nodes || 0) <= 1) return []; \
             return [...document.querySelectorAll('[data-testid=top-table] tbody tr td:first-child')]\
             .map(td => td.textContent)",
        )
        .await;
    let mut names: Vec<String> = names
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    names
}

/// The README's promise, as a newcomer meets it: the one-file binary started in an empty
/// folder with no flag but `--listen` profiles itself, and Explore draws a flame graph of
/// Cinder's own functions within 20 s. This is also the one-file binary's smoke test.
#[tokio::test(flavor = "multi_thread")]
async fn the_one_file_binary_shows_its_own_flame_graph_within_20_s() {
    let Some(bin) = prerequisite(
        "the one-file binary (CINDER_E2E_ONE_FILE_BIN)",
        one_file_bin(),
    ) else {
        return;
    };
    let Some(browser) = Browser::start().await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("one-file");
    let empty = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = Instant::now();
    let _cinder = ProcessGroup::spawn(
        Command::new(&bin)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(empty.path())
            .env_remove("CINDER_LOG_LEVEL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
        empty.path(),
    )
    .expect("start the one-file binary");
    let url = format!("http://127.0.0.1:{port}/");
    // Open the page once the server answers (a load is not restarted: the app polls).
    while raw_get_ok(port).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the one-file binary did not answer within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser
        .client
        .goto(&url)
        .await
        .expect("open the embedded UI");
    let mut own = Vec::new();
    while started.elapsed() < Duration::from_secs(20) {
        own = drawn_functions(&browser).await;
        own.retain(|n| is_cinder_function(n));
        if own.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = started.elapsed();
    let expression = browser.eval("return location.search").await;
    eprintln!("own functions drawn after {took:?} ({expression}): {own:?}");
    assert!(
        own.len() >= 5,
        "after {took:?}, the flame graph shows {} of Cinder's functions: {own:?} ({expression})",
        own.len()
    );
    assert!(
        empty.path().join("data").is_dir(),
        "the default data dir is ./data"
    );
    the_untouched_page_follows_the_suggested_type(&browser, port).await;
}

/// A fresh page that opened on the heap (stored seconds before the first CPU profile)
/// moves on to CPU time once the server suggests it, within a few of the page's polls.
async fn the_untouched_page_follows_the_suggested_type(browser: &Browser, port: u16) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let types_url = format!("http://127.0.0.1:{port}/api/v1/profile-types");
    let started = Instant::now();
    let suggested = loop {
        let body = reqwest::get(&types_url)
            .await
            .expect("GET profile-types")
            .bytes()
            .await
            .expect("the profile types' body");
        let types: serde_json::Value =
            serde_json::from_slice(&body).expect("profile types are JSON");
        let first = types[0]["name"].as_str().unwrap_or_default().to_owned();
        if first.contains("cpu") || started.elapsed() > Duration::from_secs(30) {
            break first;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if !suggested.contains("cpu") {
        eprintln!("the server never suggested CPU within 30 s (idle CPU profiles): {suggested}");
        return;
    }
    let suggested_at = Instant::now();
    let mut search = String::new();
    while suggested_at.elapsed() < Duration::from_secs(10) {
        search = browser.eval("return location.search").await.to_string();
        if search.contains("process_cpu") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the server suggests CPU, but the untouched page still shows {search}");
}
