//! The UI as plain HTTP: content types, cache headers, compression, SPA fallback, health.

use crate::harness::{Cinder, Http, Resp, prerequisite, ui_dir};

fn client() -> Http {
    Http::new()
}

fn header<'a>(resp: &'a Resp, name: &str) -> &'a str {
    resp.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[test]
fn health_endpoints_answer() {
    let server = Cinder::start(&[]);
    let http = client();
    assert_eq!(
        http.get(&format!("{}/healthy", server.url()), false).status,
        200
    );
    assert_eq!(
        http.get(&format!("{}/ready", server.url()), false).status,
        200
    );
    let unknown = http.get(&format!("{}/api/v1/nope", server.url()), false);
    assert_eq!(unknown.status, 404);
    let body: serde_json::Value = serde_json::from_slice(&unknown.body).unwrap();
    assert_eq!(body["error"], "not found");
}

#[test]
fn the_ui_is_served_with_types_caching_compression_and_spa_fallback() {
    let Some(_) = prerequisite("the UI built by trunk (CINDER_E2E_UI_DIR)", ui_dir()) else {
        return;
    };
    let server = Cinder::start(&[]);
    let http = client();
    let index = http.get(&format!("{}/", server.url()), true);
    assert_eq!(index.status, 200);
    assert!(header(&index, "content-type").starts_with("text/html"));
    assert_eq!(header(&index, "cache-control"), "no-cache");
    assert_eq!(header(&index, "content-encoding"), "gzip");

    // Client-side routes get the same app.
    let plain_index = http.get(&format!("{}/", server.url()), false).body;
    for route in ["/targets", "/compare"] {
        let page = http.get(&format!("{}{route}", server.url()), false);
        assert_eq!(page.status, 200, "{route}");
        assert_eq!(page.body, plain_index, "{route} should serve index.html");
    }
    let html = String::from_utf8(plain_index).unwrap();
    let wasm = asset_named(&html, "_bg.wasm").expect("index.html names a .wasm");
    let resp = http.get(&format!("{}/{wasm}", server.url()), true);
    assert_eq!(resp.status, 200);
    assert_eq!(header(&resp, "content-type"), "application/wasm");
    assert!(header(&resp, "cache-control").contains("immutable"));
    assert_eq!(header(&resp, "content-encoding"), "gzip");

    assert_eq!(
        http.get(&format!("{}/missing-file.js", server.url()), false)
            .status,
        404
    );
}

/// Finds an asset path ending in `suffix` inside index.html.
fn asset_named(html: &str, suffix: &str) -> Option<String> {
    let end = html.find(suffix)? + suffix.len();
    let start = html[..end].rfind(['"', '\'', '/'])? + 1;
    Some(html[start..end].to_owned())
}
