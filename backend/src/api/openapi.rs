//! The OpenAPI document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations as the router registers them (so a route cannot exist undocumented), and
//! served at `GET /api/v1/openapi.json`.

use std::sync::OnceLock;

use axum::{Json, extract::State};
use utoipa::OpenApi as _;

use super::AppState;

/// The document as generated, set when the router is built; each answer adds what the
/// server's flags guard ([`super::guard::describe`]).
pub(crate) static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();

/// The document's frame: title, version, tags. Paths are added by the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Cinder",
        description = "Cinder's HTTP API: push, scrape and query pprof profiles. Errors are JSON `{error, detail, field}`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(
        crate::api::TopReport,
        crate::api::TopReportRow,
        crate::api::FlamegraphReport,
        crate::api::FlameNode
    )),
    tags(
        (name = "ingest", description = "storing profiles"),
        (name = "query", description = "reading profiles back"),
        (name = "compat", description = "the push shapes of Pyroscope and Parca agents"),
        (name = "targets", description = "scrape targets: health, and changes at runtime"),
        (name = "meta", description = "health, metrics, Cinder's own profile and this document"),
    )
)]
pub(crate) struct ApiDoc;

/// The base document, before the router adds its paths.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/v1/openapi.json`: security as this server's `--api-token`/`--auth-reads` say.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub(crate) async fn document(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    let doc = DOCUMENT.get().cloned().unwrap_or_default();
    Json(super::guard::describe_document(
        &doc,
        state.api_token.is_some(),
        state.security.auth_reads,
    ))
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt as _;

    use crate::api::{AppState, openapi, router};

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

    fn generated() -> String {
        serde_json::to_string_pretty(&openapi()).unwrap() + "\n"
    }

    /// Without a token nothing is guarded; with one, the served document is the committed one.
    #[tokio::test]
    async fn the_served_document_declares_security_as_the_flags_say() {
        let served = |state: AppState| async move {
            let request = Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap();
            let response = router(state).oneshot(request).await.unwrap();
            let body = axum::body::to_bytes(response.into_body(), 1 << 24)
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        };
        let open = served(AppState::new()).await;
        assert!(!open.to_string().contains("\"security\""));
        let token = AppState::new().with_api_token(Some("t".into()));
        let doc = serde_json::to_value(openapi()).unwrap();
        assert_eq!(served(token.clone()).await, doc);
        assert!(doc["paths"]["/api/v1/targets"]["post"]["security"].is_array());
        assert!(doc["paths"]["/api/v1/targets"]["post"]["responses"]["415"].is_object());
        assert!(doc["paths"]["/api/v1/targets"]["get"]["security"].is_null());
        let reads = token.with_auth_reads(true);
        let auth = Request::get("/api/v1/openapi.json")
            .header("authorization", "Bearer t")
            .body(Body::empty())
            .unwrap();
        let response = router(reads).oneshot(auth).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(doc["paths"]["/api/v1/targets"]["get"]["security"].is_array());
        assert!(doc["paths"]["/ready"]["get"]["security"].is_null());
    }

    /// `docs/openapi.json` is the generated document; `CINDER_BLESS=1` rewrites it.
    #[test]
    fn committed_document_is_in_sync() {
        let doc = generated();
        if std::env::var_os("CINDER_BLESS").is_some() {
            std::fs::write(COMMITTED, &doc).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == doc,
            "docs/openapi.json is out of date; run: CINDER_BLESS=1 cargo test -p backend --lib openapi"
        );
    }

    #[test]
    fn profile_type_schema_has_the_served_fields() {
        let served: shared::query::ProfileType = "process_cpu:samples:count:cpu:nanoseconds:delta"
            .parse()
            .unwrap();
        let json = serde_json::to_value(&served).unwrap();
        let mut served_keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        served_keys.sort();
        let doc = serde_json::to_value(openapi()).unwrap();
        let props = doc["components"]["schemas"]["ProfileTypeJson"]["properties"]
            .as_object()
            .unwrap();
        let mut doc_keys: Vec<&String> = props.keys().collect();
        doc_keys.sort();
        assert_eq!(served_keys, doc_keys);
    }

    /// Every documented path is routed (no 404/405), and the served document is the generated one.
    #[tokio::test]
    async fn every_documented_route_exists_and_the_document_is_served() {
        let app = router(AppState::new().with_api_token(Some("t".into())));
        let doc = serde_json::to_value(openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 12, "{:?}", paths.keys());
        for (path, item) in paths {
            let uri = path.replace("{name}", "job");
            for method in item.as_object().unwrap().keys() {
                let request = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .body(Body::empty())
                    .unwrap();
                let status = app.clone().oneshot(request).await.unwrap().status();
                assert!(
                    status != 404 && status != 405,
                    "{method} {uri} is documented but answers {status}"
                );
            }
        }
        let request = Request::get("/api/v1/nope").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 404, "unknown API routes are JSON 404s");
        let request = Request::get("/api/v1/openapi.json")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, doc);
    }
}
