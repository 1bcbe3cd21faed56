//! The analysis a profiler user expects, in a real headless Chromium against a real
//! `cinder` fed real profiles: the exact top table of a trimmed flame graph (checked
//! against `report=top`), the sandwich view, the flame-graph node menu, keyboard
//! navigation, and the metrics graph's legend and empty state.

use std::collections::HashMap;

use fantoccini::actions::{InputSource as _, MOUSE_BUTTON_RIGHT, MouseActions, PointerAction};
use serde_json::Value;

use crate::{
    browser::Browser,
    harness::{Cinder, Http, enc},
    ui_pages::{
        blocking, fill, ingest_file, locate, move_mouse, poll, setup, text_of, type_id,
        wait_for_flame,
    },
};

/// The time of the fib profile, unix ms.
const FIB_MS: i64 = 1_626_441_030_776;
const HOUR: i64 = 3_600_000;

/// Ingests the fib profile as job `fib` (and `instance`, when given); false to skip.
fn ingest_fib(server: &Cinder, instance: Option<&str>) -> bool {
    let labels = match instance {
        Some(i) => format!("__name__=process_cpu&job=fib&instance={i}"),
        None => "__name__=process_cpu&job=fib".to_owned(),
    };
    ingest_file(server, "parca__fib.pb.gz", &labels)
}

/// The fib CPU expression and the query string of an Explore view of it.
fn fib_view(server: &Cinder) -> (String, String) {
    let cpu = type_id(server, "cpu", "nanoseconds");
    let expression = format!("{cpu}{{job=\"fib\"}}");
    let query = format!(
        "expression_a={}&from_a={}&to_a={}",
        enc(&expression),
        FIB_MS - HOUR,
        FIB_MS + HOUR
    );
    (expression, query)
}

/// `GET /api/v1/query?…` of the fib merge, with extra parameters, as JSON.
fn api_query(server: &Cinder, expression: &str, extra: &str) -> Value {
    let url = format!(
        "{}/api/v1/query?query={}&start={}&end={}&{extra}",
        server.url(),
        enc(expression),
        FIB_MS - HOUR,
        FIB_MS + HOUR
    );
    let resp = blocking(|| Http::new().get(&url, false));
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    resp.json()
}

/// The top table's rows as shown: function → (flat, cum).
async fn table_rows(browser: &Browser) -> Vec<(String, i64, i64)> {
    let rows = browser
        .eval(
            "return [...document.querySelectorAll('[data-testid=top-table] tbody tr')] \
             .map(r => [r.dataset.function, Number(r.dataset.flat), Number(r.dataset.cum)])",
        )
        .await;
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_i64().unwrap(),
                r[2].as_i64().unwrap(),
            )
        })
        .collect()
}

/// `report=top` rows: function → (flat, cum).
fn server_rows(top: &Value) -> HashMap<String, (i64, i64)> {
    top["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                (r["flat"].as_i64().unwrap(), r["cum"].as_i64().unwrap()),
            )
        })
        .collect()
}

/// Asserts every shown row has the server's exact values and the table is complete.
fn assert_exact(shown: &[(String, i64, i64)], server: &HashMap<String, (i64, i64)>) {
    assert_eq!(shown.len(), server.len().min(200), "rows: {shown:?}");
    for (function, flat, cum) in shown {
        assert_eq!(
            server.get(function),
            Some(&(*flat, *cum)),
            "{function}: the table shows flat {flat}, cum {cum}"
        );
    }
}

async fn data_of(browser: &Browser, testid: &str, key: &str) -> Value {
    browser
        .eval(&format!(
            "const e = document.querySelector('[data-testid={testid}]'); return e ? e.dataset.{key} ?? null : null"
        ))
        .await
}

async fn search_param(browser: &Browser, name: &str) -> Vec<String> {
    let v = browser
        .eval(&format!(
            "return new URLSearchParams(location.search).getAll({name:?})"
        ))
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_top_table_stays_exact_when_the_flame_graph_is_trimmed() {
    let Some((browser, server)) = setup("exact-top").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("exact-top");
    if !ingest_fib(&server, None) {
        return;
    }
    let (expression, query) = fib_view(&server);
    // A budget of 40 nodes trims the ~400-node fib tree hard.
    browser
        .open(
            &format!("{}/?{query}&max_nodes=40", server.url()),
            "page-explore",
        )
        .await;
    wait_for_flame(&browser).await;
    let trimmed = text_of(&browser, "trimmed").await;
    assert!(trimmed.contains("folded into \"other\""), "{trimmed}");
    poll(
        &browser,
        "return document.querySelector('[data-testid=top-table]').dataset.source",
        |v| v == "server",
    )
    .await;
    let top = api_query(&server, &expression, "report=top&limit=100000");
    let exact = server_rows(&top);
    assert!(exact.len() > 40, "fib has more functions than the budget");
    let shown = table_rows(&browser).await;
    assert!(shown.iter().all(|(f, _, _)| f != "other"), "no folded row");
    assert_exact(&shown, &exact);

    // A filter is a round trip with the filter: still exact.
    let requests = "return performance.getEntriesByType('resource').filter(e => e.name.includes('report=top')).length";
    let before = browser.eval(requests).await.as_u64().unwrap();
    fill(&browser, "filter-hide", "math/big").await;
    browser
        .eval("document.querySelector('[data-testid=filter-hide]').dispatchEvent(new Event('change'))")
        .await;
    poll(&browser, requests, |v| v.as_u64() > Some(before)).await;
    poll(
        &browser,
        "return document.querySelector('[data-testid=top-table]').dataset.source",
        |v| v == "server",
    )
    .await;
    let hidden = server_rows(&api_query(
        &server,
        &expression,
        "report=top&limit=100000&hide=math/big",
    ));
    assert!(hidden.keys().all(|f| !f.contains("math/big")));
    let shown = table_rows(&browser).await;
    assert_exact(&shown, &hidden);

    // Untrimmed, the browser computes the same table itself, with no request.
    browser
        .open(&format!("{}/?{query}", server.url()), "page-explore")
        .await;
    wait_for_flame(&browser).await;
    assert_eq!(
        data_of(&browser, "top-table", "source").await,
        "browser",
        "an untrimmed flame graph needs no report=top"
    );
    assert_exact(&table_rows(&browser).await, &exact);
}

/// The stacks of the fib merge (root first, by name) and a function that is on some
/// stack twice (recursive), from `report=stacks&format=json`.
fn recursive_function(server: &Cinder, expression: &str) -> String {
    let stacks = api_query(server, expression, "report=stacks&format=json");
    let frames = stacks["frames"].as_array().unwrap();
    let name = |id: &Value| {
        frames[id.as_u64().unwrap() as usize]["function"]
            .as_str()
            .unwrap()
    };
    for stack in stacks["stacks"].as_array().unwrap() {
        let names: Vec<&str> = stack["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(name)
            .collect();
        for (i, n) in names.iter().enumerate() {
            if names[i + 1..].contains(n) {
                return (*n).to_owned();
            }
        }
    }
    panic!("the fib profile has no recursive function")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandwich_view_merges_callers_and_callees_and_lives_in_the_url() {
    let Some((browser, server)) = setup("sandwich").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("sandwich");
    if !ingest_fib(&server, None) {
        return;
    }
    let (expression, query) = fib_view(&server);
    let function = recursive_function(&server, &expression);
    let cum = server_rows(&api_query(&server, &expression, "report=top&limit=100000"))[&function].1;
    browser
        .open(&format!("{}/?{query}", server.url()), "page-explore")
        .await;
    wait_for_flame(&browser).await;

    // From the top table.
    let click = format!(
        "[...document.querySelectorAll('[data-testid=top-table] tbody tr')] \
         .find(r => r.dataset.function === {function:?}) \
         .querySelector('[data-testid=top-sandwich]').click()"
    );
    browser.eval(&click).await;
    browser.wait_for("sandwich").await;
    assert_eq!(text_of(&browser, "sandwich-function").await, function);
    poll(
        &browser,
        "return new URLSearchParams(location.search).get('sandwich')",
        |v| v.as_str() == Some(function.as_str()),
    )
    .await;
    // Both sides hold every stack through the function once: its exact cum, recursion
    // included.
    for pane in ["sandwich-callers", "sandwich-callees"] {
        let total = poll(
            &browser,
            &format!("return Number(document.querySelector('[data-testid={pane}]').dataset.total)"),
            |v| v.as_i64().is_some_and(|t| t > 0),
        )
        .await;
        assert_eq!(total.as_i64(), Some(cum), "{pane} of {function}");
        let nodes = data_of(&browser, pane, "nodes").await;
        assert!(
            nodes.as_str().unwrap().parse::<u64>().unwrap() > 2,
            "{pane} has callers/callees: {nodes}"
        );
    }
    let summary = text_of(&browser, "sandwich-total").await;
    assert!(summary.contains("% of total"), "{summary}");

    // The URL restores it.
    let url = browser.eval("return location.href").await;
    browser.client.goto("about:blank").await.unwrap();
    browser.open(url.as_str().unwrap(), "sandwich").await;
    let total = poll(
        &browser,
        "return Number(document.querySelector('[data-testid=sandwich-callees]').dataset.total)",
        |v| v.as_i64().is_some_and(|t| t > 0),
    )
    .await;
    assert_eq!(total.as_i64(), Some(cum));

    // Close.
    browser
        .wait_for("sandwich-close")
        .await
        .click()
        .await
        .unwrap();
    poll(
        &browser,
        "return !document.querySelector('[data-testid=sandwich]') && !location.search.includes('sandwich=')",
        |v| v == true,
    )
    .await;
}

/// Right-clicks the widest drawn node named `name` and waits for its menu.
async fn open_menu(browser: &Browser, name: &str) {
    move_mouse(browser, locate(browser, name).await).await;
    let right = MouseActions::new("mouse".into())
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_RIGHT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_RIGHT,
        });
    browser.client.perform_actions(right).await.unwrap();
    let menu = text_of(browser, "flame-menu").await;
    assert!(menu.contains(name), "menu of {name}: {menu}");
}

#[tokio::test(flavor = "multi_thread")]
async fn flame_nodes_have_focus_sandwich_copy_and_hide_actions() {
    let Some((browser, server)) = setup("node-actions").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("node-actions");
    if !ingest_fib(&server, None) {
        return;
    }
    let (expression, query) = fib_view(&server);
    let tree = api_query(&server, &expression, "report=flamegraph");
    let hide = widest(widest(&tree["root"]))["name"]
        .as_str()
        .unwrap()
        .to_owned();
    browser
        .open(&format!("{}/?{query}", server.url()), "page-explore")
        .await;
    let nodes = wait_for_flame(&browser).await;
    let name = "main.calculateFib";

    open_menu(&browser, name).await;
    browser.wait_for("menu-copy").await.click().await.unwrap();
    let copied = text_of(&browser, "flame-copied").await;
    assert!(copied.contains(name), "{copied}");
    assert!(
        browser
            .eval("return !document.querySelector('[data-testid=flame-menu]')")
            .await
            == true,
        "an action closes the menu"
    );

    open_menu(&browser, name).await;
    browser.wait_for("menu-focus").await.click().await.unwrap();
    let crumbs = text_of(&browser, "flame-breadcrumbs").await;
    assert!(crumbs.contains(name), "{crumbs}");
    poll(
        &browser,
        "return new URLSearchParams(location.search).getAll('zoom')",
        |v| {
            v.as_array()
                .is_some_and(|z| z.last().and_then(Value::as_str) == Some(name))
        },
    )
    .await;
    browser.wait_for("flame-reset").await.click().await.unwrap();

    open_menu(&browser, name).await;
    browser
        .wait_for("menu-sandwich")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(&browser, "sandwich-function").await, name);
    browser
        .wait_for("sandwich-close")
        .await
        .click()
        .await
        .unwrap();

    // Hide: the frame goes into `hide`, and out of the graph.
    open_menu(&browser, &hide).await;
    browser.wait_for("menu-hide").await.click().await.unwrap();
    poll(
        &browser,
        "return new URLSearchParams(location.search).getAll('hide')",
        |v| {
            v.as_array()
                .is_some_and(|h| h.iter().any(|x| x.as_str() == Some(hide.as_str())))
        },
    )
    .await;
    assert_eq!(
        browser
            .eval("return document.querySelector('[data-testid=filter-hide]').value")
            .await,
        hide.as_str()
    );
    poll(
        &browser,
        "return Number(document.querySelector('[data-testid=flamegraph]').dataset.nodes)",
        |v| v.as_u64().is_some_and(|n| n > 1 && n < nodes),
    )
    .await;
    assert!(
        browser
            .eval(&format!("return window.__cinderFlame.locate({hide:?})"))
            .await
            .is_null()
    );
    assert_eq!(search_param(&browser, "hide").await, [hide]);
}

/// Sends one WebDriver key to the focused canvas.
async fn press(browser: &Browser, key: char) {
    let canvas = browser.wait_for("flamegraph").await;
    canvas.send_keys(&key.to_string()).await.unwrap();
}

const ARROW_DOWN: char = '\u{E015}';
const ARROW_UP: char = '\u{E013}';
const ARROW_RIGHT: char = '\u{E014}';
const ARROW_LEFT: char = '\u{E012}';
const ENTER: char = '\u{E007}';

/// The name of the widest child of `node` (a `report=flamegraph` node).
fn widest(node: &Value) -> &Value {
    node["children"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|c| c["total"].as_i64().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn arrow_keys_move_between_flame_nodes_and_enter_zooms() {
    let Some((browser, server)) = setup("keyboard").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("keyboard");
    if !ingest_fib(&server, None) {
        return;
    }
    let (expression, query) = fib_view(&server);
    let tree = api_query(&server, &expression, "report=flamegraph");
    let first = widest(&tree["root"]);
    let second = widest(first);
    browser
        .open(&format!("{}/?{query}", server.url()), "page-explore")
        .await;
    wait_for_flame(&browser).await;
    browser
        .eval(
            "document.querySelector('[data-testid=flamegraph]').scrollIntoView({block: 'center'})",
        )
        .await;
    let selected = || data_of(&browser, "flamegraph", "selected");

    press(&browser, ARROW_DOWN).await;
    assert_eq!(selected().await, "root", "the cursor starts at the root");
    press(&browser, ARROW_DOWN).await;
    assert_eq!(selected().await, first["name"]);
    let tooltip = text_of(&browser, "flame-tooltip").await;
    assert!(
        tooltip.contains(first["name"].as_str().unwrap()),
        "the cursor shows its tooltip: {tooltip}"
    );
    press(&browser, ARROW_DOWN).await;
    assert_eq!(selected().await, second["name"]);
    // Right moves along the row (unless at its end); left comes back.
    press(&browser, ARROW_RIGHT).await;
    if selected().await != second["name"] {
        press(&browser, ARROW_LEFT).await;
        assert_eq!(selected().await, second["name"]);
    }
    press(&browser, ARROW_UP).await;
    assert_eq!(selected().await, first["name"]);
    press(&browser, ARROW_DOWN).await;
    press(&browser, ENTER).await;
    let path = [
        first["name"].as_str().unwrap().to_owned(),
        second["name"].as_str().unwrap().to_owned(),
    ];
    poll(
        &browser,
        "return new URLSearchParams(location.search).getAll('zoom')",
        |v| v.as_array().is_some_and(|z| z.len() == 2),
    )
    .await;
    assert_eq!(search_param(&browser, "zoom").await, path);
    let crumbs = text_of(&browser, "flame-breadcrumbs").await;
    assert!(crumbs.contains(&path[1]), "{crumbs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_legend_isolates_a_series_that_a_reload_keeps() {
    let Some((browser, server)) = setup("legend").await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("legend");
    // 22 series that differ only by instance.
    for i in 0..22 {
        if !ingest_fib(&server, Some(&format!("i{i:02}"))) {
            return;
        }
    }
    let (_, query) = fib_view(&server);
    browser
        .open(&format!("{}/?{query}", server.url()), "page-explore")
        .await;
    let legend = text_of(&browser, "metrics-legend").await;
    // Only what differs: the instance, not the job.
    assert!(legend.contains("instance=\"i00\""), "{legend}");
    assert!(!legend.contains("job="), "{legend}");
    let entries = "return document.querySelectorAll('[data-testid=legend-entry]').length";
    assert_eq!(browser.eval(entries).await, 20, "the top 20 are listed");
    assert_eq!(text_of(&browser, "legend-more").await, "+2 more");
    let lines = "return document.querySelectorAll('[data-testid=metrics-line]').length";
    assert_eq!(browser.eval(lines).await, 20);

    // A click isolates one series; the URL keeps it.
    browser
        .eval("[...document.querySelectorAll('[data-testid=legend-entry]')][3].click()")
        .await;
    poll(&browser, lines, |v| v == 1).await;
    let isolated = search_param(&browser, "series").await;
    assert_eq!(isolated.len(), 1);
    assert!(isolated[0].contains("instance=\"i03\""), "{isolated:?}");
    let url = browser.eval("return location.href").await;
    browser.client.goto("about:blank").await.unwrap();
    browser.open(url.as_str().unwrap(), "metrics-legend").await;
    poll(&browser, lines, |v| v == 1).await;
    let pressed = browser
        .eval("return [...document.querySelectorAll('[data-testid=legend-entry][aria-pressed=true]')].map(e => e.textContent)")
        .await;
    assert_eq!(pressed, serde_json::json!(["instance=\"i03\""]));

    // Hover names the series and its value.
    let graph = browser.wait_for("metrics-graph").await;
    let hover = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
        element: graph,
        duration: None,
        x: 0.0,
        y: 0.0,
    });
    browser.client.perform_actions(hover).await.unwrap();
    let readout = text_of(&browser, "metrics-readout").await;
    assert!(
        readout.contains("instance=\"i03\": ") && readout.contains("cores"),
        "{readout}"
    );
    // The y ticks have units.
    let ticks = browser
        .eval("return [...document.querySelectorAll('[data-testid=metrics-graph] .tick')].map(t => t.textContent)")
        .await;
    assert!(
        ticks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().ends_with("cores")),
        "{ticks}"
    );

    // A click on the isolated entry shows all again.
    browser
        .eval("document.querySelector('[data-testid=legend-entry][aria-pressed=true]').click()")
        .await;
    poll(&browser, lines, |v| v == 20).await;

    // No data: it says so, with no axes.
    let empty = format!(
        "{}/?expression_a={}",
        server.url(),
        enc(&format!(
            "{}{{job=\"fib\"}}",
            type_id(&server, "cpu", "nanoseconds")
        ))
    );
    browser.open(&empty, "metrics-empty").await;
    poll(
        &browser,
        "return document.querySelector('[data-testid=metrics-empty]').textContent",
        |v| {
            v.as_str()
                .is_some_and(|t| t.starts_with("No data in this range"))
        },
    )
    .await;
    assert!(
        browser
            .eval("return !document.querySelector('[data-testid=metrics-graph]')")
            .await
            == true
    );
}
