//! Signing in from the UI: with `--api-token` and `--auth-reads`, the Targets page says the
//! token is missing, the header's sign-in field keeps it for the tab, and then the page
//! lists targets and its form creates one, in a real headless Chromium.

use serde_json::json;

use crate::{
    browser::Browser,
    harness::{Cinder, Http, prerequisite, ui_dir},
    ui_pages::{blocking, poll},
};

async fn fill(browser: &Browser, testid: &str, text: &str) {
    let input = browser.wait_for(testid).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_targets_form_works_after_signing_in_with_the_api_token() {
    if prerequisite("the UI built by trunk (CINDER_E2E_UI_DIR)", ui_dir()).is_none() {
        return;
    }
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = Cinder::start(&["--api-token", "s3cret", "--auth-reads"]);
    let _shot = browser.screenshot_on_panic("ui-auth");
    browser
        .open(&format!("{}/targets", server.url()), "target-form")
        .await;

    // Not signed in: the list is refused with the server's 401 message.
    let error = browser.wait_for("error").await.text().await.unwrap();
    assert!(error.contains("unauthorized"), "{error}");

    fill(&browser, "api-token", "s3cret").await;
    browser
        .wait_for("sign-in-button")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for("sign-out").await;
    // The page's next refresh carries the token: the self-scrape target is listed.
    poll(
        &browser,
        "return document.querySelectorAll('[data-testid=target-row]').length",
        |v| v.as_u64().is_some_and(|n| n >= 1),
    )
    .await;

    // The form creates a target (a JSON POST with the bearer token).
    fill(&browser, "target-job", "ui-auth").await;
    fill(&browser, "target-address", "127.0.0.1:9").await;
    browser.wait_for("target-save").await.click().await.unwrap();
    let row = "[data-testid=target-row][data-url*='127.0.0.1:9']";
    poll(
        &browser,
        &format!("return document.querySelector(\"{row}\") !== null"),
        |v| v == &json!(true),
    )
    .await;
    let listed = blocking(|| {
        let http = Http::new();
        let req = http
            .raw()
            .get(format!("{}/api/v1/targets", server.url()))
            .bearer_auth("s3cret");
        http.send_with(req).json()
    });
    assert!(
        listed.to_string().contains("\"job\":\"ui-auth\""),
        "{listed}"
    );

    // The token stays for the tab across a reload; signing out forgets it.
    browser
        .open(&format!("{}/targets", server.url()), "sign-out")
        .await;
    let stored = browser
        .eval("return sessionStorage.getItem('cinder-api-token')")
        .await;
    assert_eq!(stored, json!("s3cret"));
    browser.wait_for("sign-out").await.click().await.unwrap();
    browser.wait_for("sign-in").await;
    let stored = browser
        .eval("return sessionStorage.getItem('cinder-api-token')")
        .await;
    assert!(stored.is_null(), "{stored}");
}
