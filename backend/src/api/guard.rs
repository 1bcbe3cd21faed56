//! What a request must satisfy before a handler sees it: the `Host` it names (DNS
//! rebinding), where it comes from (CSRF: `Sec-Fetch-Site`, `Origin`), the API token, and
//! for the targets API a JSON `Content-Type`.
//!
//! The checks run after routing, on the documented (path, method) pairs only, so a wrong
//! method still gets its 405 and an unknown path its 404.

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    sync::OnceLock,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, Method, header},
    middleware::Next,
    response::{IntoResponse as _, Response},
};

use super::{ApiError, AppState};

/// Agent protocols whose handlers check the token themselves, to answer in the protocol's
/// own error shape (Connect's `unauthenticated`, OTLP's `Status` with code 16).
const OWN_AUTH_ERRORS: [&str; 3] = [
    "/push.v1.PusherService/Push",
    "/v1development/profiles",
    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
];

/// Reads that stay open with `--auth-reads`.
const ALWAYS_OPEN: [&str; 2] = ["/healthy", "/ready"];

/// The names `Host`/`:authority` may carry (`--allowed-hosts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Every host (a non-loopback listen address without `--allowed-hosts`).
    #[default]
    Any,
    /// Loopback names and addresses only (a loopback listen address without the flag).
    Loopback,
    /// Loopback addresses and these names: exact, or `*.domain` for its subdomains; `*`
    /// allows every host.
    List(Vec<String>),
}

impl AllowedHosts {
    /// The default for `listen`, or the `--allowed-hosts` list when one is given.
    pub fn new(listen: SocketAddr, list: &[String]) -> Self {
        let list: Vec<String> = list
            .iter()
            .map(|h| normalize(h.trim()))
            .filter(|h| !h.is_empty())
            .collect();
        if list.iter().any(|h| h == "*") {
            AllowedHosts::Any
        } else if !list.is_empty() {
            AllowedHosts::List(list)
        } else if listen.ip().is_loopback() {
            AllowedHosts::Loopback
        } else {
            AllowedHosts::Any
        }
    }

    /// Whether `authority` (`host[:port]`) may be served. Loopback addresses always may:
    /// an IP literal cannot be rebound, and Cinder scrapes itself through one.
    pub fn allows(&self, authority: &str) -> bool {
        let host = normalize(host_of(authority));
        let loopback_ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.to_canonical().is_loopback());
        match self {
            AllowedHosts::Any => true,
            _ if loopback_ip => true,
            AllowedHosts::Loopback => host == "localhost" || host.ends_with(".localhost"),
            AllowedHosts::List(list) => list.iter().any(|allowed| {
                allowed
                    .strip_prefix("*.")
                    .map_or(*allowed == host, |domain| {
                        host.len() > domain.len() + 1
                            && host.ends_with(domain)
                            && host[..host.len() - domain.len()].ends_with('.')
                    })
            }),
        }
    }
}

/// Lower case, without a trailing dot.
fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The host of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The request's authority: the URI's (HTTP/2 `:authority`, absolute-form) or `Host`.
fn authority(request: &Request) -> Option<String> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    request
        .headers()
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Outer layer of the whole application: refuses a `Host` that `--allowed-hosts` does not
/// allow (403), before any routing.
pub(crate) async fn check_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(authority) = authority(&request)
        && !state.security.allowed_hosts.allows(&authority)
    {
        return ApiError::Forbidden(format!(
            "the host {authority:?} is not served here (DNS rebinding protection); \
             list it with --allowed-hosts"
        ))
        .into_response();
    }
    next.run(request).await
}

/// The documented (path, method) pairs; others are left to the router's 404/405.
fn documented() -> &'static HashSet<(String, Method)> {
    static ROUTES: OnceLock<HashSet<(String, Method)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let doc = serde_json::to_value(super::openapi()).unwrap_or_default();
        let mut routes = HashSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                if let Ok(method) = method.to_uppercase().parse::<Method>() {
                    routes.insert((path.clone(), method));
                }
            }
        }
        routes
    })
}

/// Route layer of the API: CSRF, token and content-type checks on documented operations.
pub(crate) async fn check_request(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match check(&state, &request) {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

fn check(state: &AppState, request: &Request) -> Result<(), ApiError> {
    let Some(path) = request.extensions().get::<MatchedPath>() else {
        return Ok(());
    };
    let path = path.as_str();
    let method = match request.method() {
        &Method::HEAD => Method::GET,
        other => other.clone(),
    };
    if !documented().contains(&(path.to_owned(), method.clone())) {
        return Ok(());
    }
    let headers = request.headers();
    if method != Method::GET {
        same_origin(headers)?;
    }
    if guarded(path, method.as_str(), state.security.auth_reads) && !OWN_AUTH_ERRORS.contains(&path)
    {
        state.authorize(headers)?;
    }
    if takes_json(path, method.as_str()) {
        require_json(headers)?;
    }
    Ok(())
}

/// Whether an operation needs the API token (when one is set): every write, Cinder's own
/// CPU profile (it costs CPU for minutes), and with `--auth-reads` every read but
/// `/healthy` and `/ready`.
fn guarded(path: &str, method: &str, auth_reads: bool) -> bool {
    if !method.eq_ignore_ascii_case("get") {
        return true;
    }
    path == "/debug/pprof/profile" || (auth_reads && !ALWAYS_OPEN.contains(&path))
}

/// Operations whose body must be declared as JSON (the targets API's writes).
fn takes_json(path: &str, method: &str) -> bool {
    path.starts_with("/api/v1/targets")
        && (method.eq_ignore_ascii_case("post") || method.eq_ignore_ascii_case("put"))
}

/// [`describe`] on utoipa's document (keeping its field order).
pub(crate) fn describe_document(
    doc: &utoipa::openapi::OpenApi,
    token: bool,
    auth_reads: bool,
) -> utoipa::openapi::OpenApi {
    let mut json = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    describe(&mut json, token, auth_reads);
    serde_json::from_value(json).expect("still an OpenAPI document")
}

/// Makes the OpenAPI document say what these checks do: bearer security on the operations
/// that need the token (none without one), 401 with `WWW-Authenticate` there, 403 for a
/// refused `Host` (and, on writes, a cross-site request), 415 where the body must be JSON.
fn describe(doc: &mut serde_json::Value, token: bool, auth_reads: bool) {
    use serde_json::json;
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for (method, op) in item.as_object_mut().into_iter().flatten() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let guard = token && guarded(path, method, auth_reads);
            if guard {
                op.insert("security".into(), json!([{"bearer": []}]));
            } else {
                op.remove("security");
            }
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses is an object");
            let mut add = |status: &str, description: &str, extra: serde_json::Value| {
                let entry = responses
                    .entry(status)
                    .or_insert_with(|| json!({"description": description, "content": error}));
                if let (Some(entry), Some(extra)) = (entry.as_object_mut(), extra.as_object()) {
                    entry.extend(extra.clone());
                }
            };
            if guard {
                add(
                    "401",
                    "the API token is missing or wrong",
                    json!({"headers": {"WWW-Authenticate": {
                        "description": "`Bearer`", "schema": {"type": "string"}}}}),
                );
            }
            let forbidden = if method == "get" {
                "the Host is not one --allowed-hosts allows"
            } else {
                "the Host is not one --allowed-hosts allows, or the request comes from another site (Sec-Fetch-Site, Origin)"
            };
            add("403", forbidden, json!({}));
            if takes_json(path, method) {
                add(
                    "415",
                    "the body is not declared as application/json",
                    json!({}),
                );
            }
        }
    }
    if token {
        let components = doc
            .as_object_mut()
            .expect("a document object")
            .entry("components")
            .or_insert_with(|| json!({}));
        components["securitySchemes"] =
            json!({"bearer": {"type": "http", "scheme": "bearer", "description": "--api-token"}});
    }
}

/// Refuses what a browser marks as coming from another site, or from another origin.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if fetch_site.eq_ignore_ascii_case("cross-site") || fetch_site.eq_ignore_ascii_case("same-site")
    {
        return Err(ApiError::Forbidden(format!(
            "cross-site request refused (Sec-Fetch-Site: {fetch_site}): \
             a web page of another origin cannot change Cinder's data"
        )));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes());
    let host = headers
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase());
    let origin_authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .map(str::to_ascii_lowercase);
    match (origin_authority, host) {
        (Some(from), Some(host)) if from == host => Ok(()),
        _ => Err(ApiError::Forbidden(format!(
            "cross-origin request refused (Origin: {origin}): \
             only Cinder's own pages may send requests with an Origin"
        ))),
    }
}

/// 415 unless the body is declared as JSON.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "the body must be sent with Content-Type: application/json, not {:?}",
            content_type
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_listen_allows_loopback_names_and_addresses_only() {
        let hosts = AllowedHosts::new("127.0.0.1:7070".parse().unwrap(), &[]);
        assert_eq!(hosts, AllowedHosts::Loopback);
        for ok in [
            "localhost:7070",
            "LOCALHOST",
            "localhost.:1",
            "app.localhost:9",
            "127.0.0.1:7070",
            "127.1.2.3",
            "[::1]:7070",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:7070",
            "localhost.evil.example",
            "10.0.0.1:7070",
            "[::2]:1",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
    }

    #[test]
    fn other_listen_addresses_allow_everything_unless_listed() {
        let any = AllowedHosts::new("0.0.0.0:7070".parse().unwrap(), &[]);
        assert!(any.allows("evil.example"));
        let listed = AllowedHosts::new(
            "0.0.0.0:7070".parse().unwrap(),
            &["Cinder.Example.com".into(), "*.corp".into()],
        );
        assert!(listed.allows("cinder.example.com:7070"));
        assert!(listed.allows("a.b.corp"));
        assert!(listed.allows("127.0.0.1:7070"), "self-scrape");
        assert!(!listed.allows("corp"));
        assert!(!listed.allows("xcorp"));
        assert!(!listed.allows("evil.example"));
        let star = AllowedHosts::new("127.0.0.1:1".parse().unwrap(), &["*".into()]);
        assert!(star.allows("anything"));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn cross_site_and_foreign_origins_are_refused() {
        let host = ("host", "localhost:7070");
        for ok in [
            headers(&[host]),
            headers(&[host, ("sec-fetch-site", "same-origin")]),
            headers(&[host, ("sec-fetch-site", "none")]),
            headers(&[host, ("origin", "http://localhost:7070")]),
        ] {
            assert!(same_origin(&ok).is_ok(), "{ok:?}");
        }
        for bad in [
            headers(&[host, ("sec-fetch-site", "cross-site")]),
            headers(&[host, ("sec-fetch-site", "same-site")]),
            headers(&[host, ("origin", "http://localhost:8080")]),
            headers(&[host, ("origin", "null")]),
            headers(&[host, ("origin", "https://evil.example")]),
        ] {
            assert!(
                matches!(same_origin(&bad), Err(ApiError::Forbidden(_))),
                "{bad:?}"
            );
        }
    }

    /// Routing comes first: a wrong method is 405 and an unknown path 404, whatever the
    /// origin; a documented write from another site is 403; a form-typed targets write 415.
    #[tokio::test]
    async fn checks_run_after_routing() {
        use axum::body::Body;
        use tower::ServiceExt as _;
        let app = super::super::router(AppState::new());
        let status = |method: &str, uri: &str, headers: &[(&str, &str)]| {
            let mut request = axum::http::Request::builder().method(method).uri(uri);
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            let request = request.body(Body::empty()).unwrap();
            let app = app.clone();
            async move { app.oneshot(request).await.unwrap().status().as_u16() }
        };
        let cross = [("sec-fetch-site", "cross-site")];
        assert_eq!(status("GET", "/api/v1/ingest", &cross).await, 405);
        assert_eq!(status("DELETE", "/api/v1/targets", &cross).await, 405);
        assert_eq!(status("POST", "/api/v1/nope", &cross).await, 404);
        assert_eq!(status("POST", "/api/v1/ingest", &cross).await, 403);
        assert_eq!(status("DELETE", "/api/v1/targets/x", &cross).await, 403);
        let form = [("content-type", "application/x-www-form-urlencoded")];
        assert_eq!(status("POST", "/api/v1/targets", &form).await, 415);
        assert_eq!(status("PUT", "/api/v1/targets/x", &form).await, 415);
    }

    #[test]
    fn json_content_types_are_recognized() {
        assert!(require_json(&headers(&[("content-type", "application/json")])).is_ok());
        assert!(
            require_json(&headers(&[(
                "content-type",
                "Application/JSON; charset=utf-8"
            )]))
            .is_ok()
        );
        for bad in [
            headers(&[("content-type", "text/plain")]),
            headers(&[("content-type", "application/x-www-form-urlencoded")]),
            headers(&[]),
        ] {
            assert!(matches!(
                require_json(&bad),
                Err(ApiError::UnsupportedMediaType(_))
            ));
        }
    }
}
