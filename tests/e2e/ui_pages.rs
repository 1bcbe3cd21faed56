//! The UI's pages in a real headless Chromium against a real `cinder` fed the project's
//! generated profiles ([`crate::fixtures`]):
//! Explore (flame graph, tooltip, search, share link), Compare (a diff) and Targets (the
//! form creates a target that turns healthy; a bad address shows the field's error).

use std::{
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{
    Locator,
    actions::{InputSource as _, MouseActions, PointerAction},
};
use serde_json::Value;

use crate::{
    browser::Browser,
    fixtures,
    harness::{Cinder, Http, corpus, enc, go_target_script, prerequisite, ui_dir},
};

/// Everything a UI test needs, or `None` (after a skip notice).
pub(crate) async fn setup(name: &'static str) -> Option<(Browser, Cinder)> {
    prerequisite("the UI built by trunk (CINDER_E2E_UI_DIR)", ui_dir())?;
    let browser = Browser::start().await?;
    let _ = name;
    Some((browser, Cinder::start(&[])))
}

/// Runs the blocking test client inside an async test.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Posts a generated profile ([`crate::fixtures`]) with these labels.
fn ingest_fixture(server: &Cinder, body: Vec<u8>, labels: &str) {
    let url = format!("{}/api/v1/ingest?{labels}", server.url());
    let resp = blocking(|| Http::new().post(&url, body));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
}

/// Posts a real profile from `../shared/testdata/pprof` with these labels.
pub(crate) fn ingest_file(server: &Cinder, file: &str, labels: &str) -> bool {
    let Some(dir) = corpus() else {
        return false;
    };
    let body = std::fs::read(dir.join(file)).expect("read profile");
    ingest_fixture(server, body, labels);
    true
}

/// The id of the stored profile type with this sample type and unit.
pub(crate) fn type_id(server: &Cinder, sample_type: &str, unit: &str) -> String {
    let url = format!("{}/api/v1/profile-types", server.url());
    let types = blocking(|| Http::new().get(&url, false).json());
    let found = types
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["sample_type"] == sample_type && t["sample_unit"] == unit);
    found.unwrap_or_else(|| panic!("no {sample_type}/{unit} type in {types}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Polls `script` (which returns a value) until `done` accepts it, 30 s at most.
pub(crate) async fn poll(browser: &Browser, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = browser.eval(script).await;
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting: {script} is still {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the flame graph has drawn data, and returns its node count.
pub(crate) async fn wait_for_flame(browser: &Browser) -> u64 {
    let nodes = poll(
        browser,
        "const c = document.querySelector('[data-testid=flamegraph]'); \
         return c ? Number(c.dataset.nodes || 0) : 0",
        |v| v.as_u64().unwrap_or(0) > 1,
    )
    .await;
    nodes.as_u64().unwrap()
}

/// The viewport point at the centre of the widest node named `name` (scrolled into view).
pub(crate) async fn locate(browser: &Browser, name: &str) -> (f64, f64) {
    let script = format!(
        "document.querySelector('[data-testid=flamegraph]').scrollIntoView({{block: 'center'}}); \
         return window.__cinderFlame.locate({name:?})"
    );
    let point = browser.eval(&script).await;
    let xy = point
        .as_array()
        .unwrap_or_else(|| panic!("{name} is not drawn"));
    (xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap())
}

/// Moves the real mouse pointer to a viewport point.
pub(crate) async fn move_mouse(browser: &Browser, (x, y): (f64, f64)) {
    let actions = MouseActions::new("mouse".into()).then(PointerAction::MoveTo {
        duration: None,
        x: x.round(),
        y: y.round(),
    });
    browser
        .client
        .perform_actions(actions)
        .await
        .expect("move the mouse");
}

/// The fill colour of the canvas a few pixels under the centre of node `name`.
async fn pixel_under(browser: &Browser, name: &str) -> Vec<u64> {
    let (x, y) = locate(browser, name).await;
    let script = format!(
        "const c = document.querySelector('[data-testid=flamegraph]'); \
         const r = c.getBoundingClientRect(); const k = c.width / r.width; \
         const p = c.getContext('2d').getImageData(Math.round(({x} - r.left) * k), \
             Math.round(({y} + 7 - r.top) * k), 1, 1).data; return [p[0], p[1], p[2]]"
    );
    let rgb = browser.eval(&script).await;
    rgb.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// Saves a screenshot under `target/tmp/screenshots/` when `CINDER_E2E_SCREENSHOTS` is set
/// (to look at the pages; failures always leave one).
pub(crate) async fn keep_screenshot(browser: &Browser, name: &str) {
    if std::env::var_os("CINDER_E2E_SCREENSHOTS").is_none() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let png = browser.client.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

pub(crate) async fn text_of(browser: &Browser, testid: &str) -> String {
    browser.wait_for(testid).await.text().await.unwrap()
}

/// The text of `testid` once it contains `wanted` (what it last read after 10 s): for
/// text that an answer replaces, such as completions.
pub(crate) async fn text_with(browser: &Browser, testid: &str, wanted: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let text = text_of(browser, testid).await;
        if text.contains(wanted) || started.elapsed() > std::time::Duration::from_secs(10) {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The time of the fib profile, unix ms.
const FIB_MS: i64 = fixtures::FIB_MS;
const HOUR: i64 = 3_600_000;

#[tokio::test(flavor = "multi_thread")]
async fn explore_draws_a_flame_graph_with_tooltip_search_and_a_link_that_restores_the_view() {
    let Some((browser, server)) = setup("explore").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("explore");
    ingest_fixture(&server, fixtures::fib(), "__name__=process_cpu&job=fib");
    let cpu = type_id(&server, "cpu", "nanoseconds");
    let expression = format!("{cpu}{{job=\"fib\"}}");
    let url = format!(
        "{}/?expression_a={}&from_a={}&to_a={}",
        server.url(),
        enc(&expression),
        FIB_MS - HOUR,
        FIB_MS + HOUR
    );
    browser.open(&url, "page-explore").await;
    wait_for_flame(&browser).await;
    browser.wait_for("metrics-graph").await;
    let top = text_of(&browser, "top-table").await;
    assert!(top.contains("main.calculateFib"), "top table: {top}");

    // The tooltip of the node under the pointer names the function and its shares.
    move_mouse(&browser, locate(&browser, "main.calculateFib").await).await;
    let tooltip = text_of(&browser, "flame-tooltip").await;
    assert!(tooltip.contains("main.calculateFib"), "tooltip: {tooltip}");
    keep_screenshot(&browser, "explore").await;
    assert!(
        tooltip.contains("% of total") && tooltip.contains("% of parent"),
        "tooltip: {tooltip}"
    );
    assert!(
        tooltip.contains("main.go"),
        "tooltip shows the file: {tooltip}"
    );

    // Filters apply in the browser: no new request, a different tree.
    let queries = "return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/query?')).length";
    let (requests, nodes) = (browser.eval(queries).await, wait_for_flame(&browser).await);
    fill(&browser, "filter-hide", "math/big").await;
    browser.eval("document.querySelector('[data-testid=filter-hide]').dispatchEvent(new Event('change'))").await;
    let fewer = poll(
        &browser,
        "return Number(document.querySelector('[data-testid=flamegraph]').dataset.nodes)",
        |v| v.as_u64().is_some_and(|n| n < nodes),
    )
    .await;
    assert!(fewer.as_u64().unwrap() > 1);
    assert_eq!(
        browser.eval(queries).await,
        requests,
        "a filter must not refetch"
    );
    fill(&browser, "filter-hide", "").await;
    browser.eval("document.querySelector('[data-testid=filter-hide]').dispatchEvent(new Event('change'))").await;
    poll(
        &browser,
        "return Number(document.querySelector('[data-testid=flamegraph]').dataset.nodes)",
        |v| v.as_u64() == Some(nodes),
    )
    .await;

    // The top table sorts by any column; a row click focuses its function.
    browser.wait_for("sort-cum").await.click().await.unwrap();
    poll(&browser, "return location.search", |v| {
        v.as_str().is_some_and(|s| s.contains("sort=-cum"))
    })
    .await;
    let first_row = browser
        .eval("return document.querySelector('[data-testid=top-table] tbody tr td').textContent")
        .await;
    assert_eq!(
        first_row, "main.calculateFib",
        "by cum, the caller of everything comes first"
    );
    browser
        .eval("document.querySelector('[data-testid=top-table] tbody tr').click()")
        .await;
    let crumbs = text_of(&browser, "flame-breadcrumbs").await;
    assert!(crumbs.contains("main.calculateFib"), "{crumbs}");
    browser.wait_for("flame-reset").await.click().await.unwrap();
    poll(
        &browser,
        "return !document.querySelector('[data-testid=flame-breadcrumbs]')",
        |v| v == true,
    )
    .await;

    // Search highlights the matches (others are dimmed) and shows their share.
    let before = pixel_under(&browser, "main.calculateFib").await;
    browser
        .client
        .find(Locator::Css("[data-testid=flame-search]"))
        .await
        .unwrap()
        .send_keys("calculateFib")
        .await
        .unwrap();
    let share = poll(
        &browser,
        "return document.querySelector('[data-testid=search-share]').textContent",
        |v| v.as_str().is_some_and(|s| s.contains("% of total")),
    )
    .await;
    assert!(
        !share
            .as_str()
            .unwrap()
            .starts_with("calculateFib matched: 0.00%"),
        "{share}"
    );
    assert_eq!(
        pixel_under(&browser, "main.calculateFib").await,
        before,
        "a match keeps its colour"
    );
    assert_eq!(
        pixel_under(&browser, "root").await,
        [220, 220, 220],
        "a miss is dimmed"
    );

    // Zoom into the function by clicking it; the breadcrumbs show the path.
    let point = locate(&browser, "main.calculateFib").await;
    move_mouse(&browser, point).await;
    browser
        .client
        .perform_actions(
            MouseActions::new("mouse".into())
                .then(PointerAction::Down {
                    button: fantoccini::actions::MOUSE_BUTTON_LEFT,
                })
                .then(PointerAction::Up {
                    button: fantoccini::actions::MOUSE_BUTTON_LEFT,
                }),
        )
        .await
        .unwrap();
    let crumbs = text_of(&browser, "flame-breadcrumbs").await;
    assert!(
        crumbs.contains("main.calculateFib"),
        "breadcrumbs: {crumbs}"
    );
    let drawn = browser
        .eval("return document.querySelector('[data-testid=flamegraph]').dataset.drawn")
        .await;

    // The copied link opens the same view in a fresh page.
    browser.eval("window.scrollTo(0, 0)").await;
    browser.wait_for("copy-link").await.click().await.unwrap();
    let link = browser
        .eval("return document.querySelector('[data-testid=share-link]').value")
        .await;
    let link = link.as_str().unwrap().to_owned();
    assert!(
        link.contains("search=calculateFib") && link.contains("zoom="),
        "{link}"
    );
    browser.client.goto("about:blank").await.unwrap();
    browser.open(&link, "page-explore").await;
    wait_for_flame(&browser).await;
    assert_eq!(
        browser
            .eval("return document.querySelector('[data-testid=flame-search]').value")
            .await,
        "calculateFib"
    );
    let restored = poll(
        &browser,
        "return document.querySelector('[data-testid=search-share]').textContent",
        |v| v.as_str().is_some_and(|s| s.contains("% of total")),
    )
    .await;
    assert_eq!(restored, share);
    assert_eq!(text_of(&browser, "flame-breadcrumbs").await, crumbs);
    assert_eq!(
        browser
            .eval("return document.querySelector('[data-testid=flamegraph]').dataset.drawn")
            .await,
        drawn
    );
    // `/` focuses the search box; Esc resets the zoom.
    browser.eval("document.activeElement.blur(); document.body.dispatchEvent(new KeyboardEvent('keydown', {key: '/', bubbles: true}))").await;
    assert_eq!(
        browser
            .eval("return document.activeElement.dataset.testid")
            .await,
        "flame-search"
    );
    browser.eval("document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}))").await;
    poll(
        &browser,
        "return !document.querySelector('[data-testid=flame-breadcrumbs]')",
        |v| v == true,
    )
    .await;

    // Flame orientation puts the root at the bottom; invert puts leaves at the root.
    let (_, root_top) = locate(&browser, "root").await;
    browser
        .wait_for("flame-orientation")
        .await
        .click()
        .await
        .unwrap();
    let flipped = poll(
        &browser,
        "return window.__cinderFlame.locate('root')",
        |v| v[1].as_f64().is_some_and(|y| y > root_top + 50.0),
    )
    .await;
    assert!(flipped[1].as_f64().unwrap() > root_top);
    browser
        .wait_for("flame-orientation")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for("flame-invert")
        .await
        .click()
        .await
        .unwrap();
    poll(&browser, "return location.search", |v| {
        v.as_str().is_some_and(|s| s.contains("invert=true"))
    })
    .await;
    // A leaf such as math/big.addVV is now a child of the root.
    poll(
        &browser,
        "return window.__cinderFlame.locate('math/big.addVV')",
        |v| v[1].as_f64().is_some_and(|y| y < root_top + 40.0),
    )
    .await;
    browser
        .wait_for("flame-invert")
        .await
        .click()
        .await
        .unwrap();

    // Group by a label: the server adds a node per group under the root.
    fill(&browser, "group-by", "job").await;
    browser
        .eval("document.querySelector('[data-testid=group-by]').dispatchEvent(new Event('change'))")
        .await;
    poll(
        &browser,
        "return window.__cinderFlame.locate('job=\"fib\"')",
        |v| !v.is_null(),
    )
    .await;

    // The metrics graph: a drag merges a range, a click picks the single profile.
    let graph = browser.wait_for("metrics-graph").await;
    let left = fantoccini::actions::MOUSE_BUTTON_LEFT;
    let at = |x: f64| PointerAction::MoveToElement {
        element: graph.clone(),
        duration: None,
        x,
        y: 0.0,
    };
    let drag = MouseActions::new("mouse".into())
        .then(at(-300.0))
        .then(PointerAction::Down { button: left })
        .then(at(300.0))
        .then(PointerAction::Up { button: left });
    browser.client.perform_actions(drag).await.unwrap();
    poll(&browser, "return location.search", |v| {
        v.as_str()
            .is_some_and(|s| s.contains("merge_from_a=") && s.contains("merge_to_a="))
    })
    .await;
    let click = MouseActions::new("mouse".into())
        .then(at(0.0))
        .then(PointerAction::Down { button: left })
        .then(PointerAction::Up { button: left });
    browser.client.perform_actions(click).await.unwrap();
    // CPU is a delta type: the point is a bucket of profiles, and the click merges it.
    let bucket = poll(
        &browser,
        "const p = new URLSearchParams(location.search); \
         return [Number(p.get('merge_from_a')), Number(p.get('merge_to_a'))]",
        |v| v[1].as_f64().unwrap_or(0.0) - v[0].as_f64().unwrap_or(0.0) < 100_000.0,
    )
    .await;
    let (from, to) = (bucket[0].as_i64().unwrap(), bucket[1].as_i64().unwrap());
    assert!(
        from <= FIB_MS && FIB_MS <= to,
        "{from}..{to} misses the profile"
    );
    wait_for_flame(&browser).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn explore_says_so_when_the_range_is_empty() {
    let Some((browser, server)) = setup("explore-empty").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("explore-empty");
    ingest_fixture(&server, fixtures::fib(), "__name__=process_cpu&job=fib");
    let cpu = type_id(&server, "cpu", "nanoseconds");
    // The last hour holds nothing: the profile is from 2021.
    let url = format!(
        "{}/?expression_a={}",
        server.url(),
        enc(&format!("{cpu}{{}}"))
    );
    browser.open(&url, "page-explore").await;
    let hint = text_of(&browser, "empty-hint").await;
    assert!(
        hint.contains("No data for this selector in this range"),
        "{hint}"
    );
    // …and no flame graph of nothing (a lone root bar) beneath it. The hint and the
    // hiding follow the same signal in separate effects, so the hiding may come a moment
    // later: wait for it (a flame graph that stays fails the poll).
    let shown = poll(
        &browser,
        "const c = document.querySelector('[data-testid=flamegraph]'); \
         return !!c && c.getClientRects().length > 0",
        |v| *v == serde_json::json!(false),
    )
    .await;
    assert_eq!(
        shown,
        serde_json::json!(false),
        "an empty answer draws no flame graph"
    );
    // The selector box completes label names, then values, of the series in the range.
    let url = format!(
        "{}/?expression_a={}&from_a={}&to_a={}",
        server.url(),
        enc(&format!("{cpu}{{}}")),
        FIB_MS - HOUR,
        FIB_MS + HOUR
    );
    browser.open(&url, "page-explore").await;
    let selector = browser.wait_for("selector-a").await;
    selector.clear().await.unwrap();
    selector.send_keys("{jo").await.unwrap();
    let names = text_with(&browser, "suggestions-a", "job").await;
    assert!(names.contains("job"), "{names}");
    browser
        .eval("document.querySelector('[data-testid=suggestions-a] button').click()")
        .await;
    let values = text_with(&browser, "suggestions-a", "fib").await;
    assert!(values.contains("fib"), "{values}");
    browser
        .eval("document.querySelector('[data-testid=suggestions-a] button').click()")
        .await;
    assert_eq!(
        browser
            .eval("return document.querySelector('[data-testid=selector-a]').value")
            .await,
        "{job=\"fib\""
    );
    // A bad selector is an inline error with the server's message.
    let url = format!(
        "{}/?expression_a={}",
        server.url(),
        enc(&format!("{cpu}{{job=~\"(\"}}"))
    );
    browser.open(&url, "page-explore").await;
    let error = text_of(&browser, "error").await;
    assert!(!error.is_empty());
}

/// Two heap profiles of one series, 6 s apart (job `many`).
fn ingest_two_heap_profiles(server: &Cinder) {
    for i in 0..2 {
        ingest_fixture(server, fixtures::heap(i), "__name__=memory&job=many");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_types_show_the_latest_profile_by_default() {
    let Some((browser, server)) = setup("snapshot").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("snapshot");
    ingest_two_heap_profiles(&server);
    let inuse = type_id(&server, "inuse_space", "bytes");
    let url = format!(
        "{}/?expression_a={}&from_a=1644509000000&to_a=1644510000000",
        server.url(),
        enc(&format!("{inuse}{{}}"))
    );
    browser.open(&url, "page-explore").await;
    wait_for_flame(&browser).await;
    let search = browser.eval("return location.search").await;
    assert!(
        search
            .as_str()
            .unwrap()
            .contains("selection_a=1644509278338"),
        "{search}"
    );
    browser.wait_for("selected-point").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_renders_a_diff_of_two_profiles() {
    let Some((browser, server)) = setup("compare").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("compare");
    ingest_two_heap_profiles(&server);
    let alloc = type_id(&server, "alloc_space", "bytes");
    let expression = format!("{alloc}{{job=\"many\"}}");
    let (from, to) = (1_644_509_000_000i64, 1_644_510_000_000i64);
    let url = format!(
        "{}/api/v1/query_range?query={}&start={from}&end={to}",
        server.url(),
        enc(&expression)
    );
    let range = blocking(|| Http::new().get(&url, false).json());
    let points = range["series"][0]["points"].as_array().unwrap();
    let (t_a, t_b) = (&points[0]["t"], &points[points.len() - 1]["t"]);
    let url = format!(
        "{}/compare?expression_a={e}&from_a={from}&to_a={to}&selection_a={t_a}\
         &expression_b={e}&from_b={from}&to_b={to}&selection_b={t_b}",
        server.url(),
        e = enc(&expression)
    );
    browser.open(&url, "page-compare").await;
    wait_for_flame(&browser).await;
    browser.wait_for("diff-scale").await;
    move_mouse(&browser, locate(&browser, "root").await).await;
    let tooltip = text_of(&browser, "flame-tooltip").await;
    assert!(
        tooltip.contains("baseline") && tooltip.contains("change"),
        "{tooltip}"
    );
    keep_screenshot(&browser, "compare").await;
    // Absolute colouring is one click away and lands in the URL.
    browser.wait_for("diff-scale").await.click().await.unwrap();
    poll(&browser, "return location.search", |v| {
        v.as_str().is_some_and(|s| s.contains("diff=absolute"))
    })
    .await;
}

/// The project's Go scrape target (`tests/targets/go-pprof-target`), killed when dropped.
struct GoTarget(Child, String);

impl Drop for GoTarget {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_go_target() -> Option<GoTarget> {
    let script = prerequisite("Go (golang-go) for the Go target", go_target_script())?;
    let mut child = Command::new("bash")
        .arg(&script)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Go target");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the Go target's first line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    Some(GoTarget(child, addr))
}

pub(crate) async fn fill(browser: &Browser, testid: &str, text: &str) {
    let input = browser.wait_for(testid).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_targets_form_adds_a_target_that_turns_healthy_and_shows_field_errors() {
    let Some((browser, server)) = setup("targets").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("targets");
    browser
        .open(&format!("{}/targets", server.url()), "target-form")
        .await;

    // A bad address: the API's 400 names the field, shown beside it.
    fill(&browser, "target-job", "ui-bad").await;
    fill(&browser, "target-address", "localhost:6060/debug").await;
    browser.wait_for("target-save").await.click().await.unwrap();
    let error = text_of(&browser, "error-address").await;
    assert!(!error.is_empty());

    let Some(target) = start_go_target() else {
        return;
    };
    fill(&browser, "target-job", "ui-go").await;
    fill(&browser, "target-address", &target.1).await;
    fill(&browser, "target-interval", "1s").await;
    browser.wait_for("target-save").await.click().await.unwrap();
    let row = format!("[data-testid=target-row][data-url*='{}']", target.1);
    let listed =
        format!("const r = document.querySelector(\"{row}\"); return r ? r.dataset.health : null");
    poll(&browser, &listed, |v| !v.is_null()).await;
    // Healthy once scraped (the poll gives up after 30 s).
    poll(&browser, &listed, |v| v == "up").await;
    keep_screenshot(&browser, "targets").await;

    // Edit it (the form is filled from the target), then delete it.
    browser
        .eval(&format!(
            "document.querySelector(\"{row} [data-testid=target-edit]\").click()"
        ))
        .await;
    poll(
        &browser,
        "return document.querySelector('[data-testid=target-address]').value",
        |v| v == target.1.as_str(),
    )
    .await;
    fill(&browser, "target-interval", "2s").await;
    browser.wait_for("target-save").await.click().await.unwrap();
    poll(
        &browser,
        "return document.querySelector('[data-testid=target-form] h2').textContent",
        |v| v == "Add a target",
    )
    .await;
    browser
        .eval(&format!(
            "document.querySelector(\"{row} [data-testid=target-delete]\").click()"
        ))
        .await;
    poll(&browser, &listed, |v| v.is_null()).await;
}
