//! A real headless Chromium driven through chromedriver, and the UI tests that use it.
//! A failing test leaves a screenshot under `target/tmp/screenshots/`.

use std::{
    net::TcpListener,
    path::PathBuf,
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
    driver: Child,
    _profile: tempfile::TempDir,
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
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
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
            driver,
            _profile: profile,
        })
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

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
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
