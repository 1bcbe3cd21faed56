//! Serving the web UI that trunk built: embedded in the binary (`embed-ui` feature) or read
//! from a folder. Hashed assets get long cache lifetimes, everything is compressed, and
//! client-side routes such as `/targets` fall back to `index.html`.

use std::{
    borrow::Cow,
    path::{Component, Path, PathBuf},
    sync::Arc,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use tower_http::compression::CompressionLayer;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_ui.rs"));
}

/// Where the UI's files come from.
#[derive(Debug, Clone)]
pub enum UiSource {
    /// Compiled into the binary by `cargo xtask dist`.
    Embedded,
    /// A folder written by `trunk build`.
    Dir(PathBuf),
    /// No UI available: the server answers `/` with a short explanation.
    Missing,
}

impl UiSource {
    /// The folder if one is given, else the embedded copy if this binary has one.
    pub fn choose(dir: Option<PathBuf>) -> Self {
        match dir {
            Some(dir) => UiSource::Dir(dir),
            None if !embedded::FILES.is_empty() => UiSource::Embedded,
            None => UiSource::Missing,
        }
    }

    /// Reads one file of the UI by its path relative to the UI root.
    async fn read(&self, path: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            UiSource::Embedded => embedded::FILES
                .iter()
                .find(|(name, _)| *name == path)
                .map(|(_, bytes)| Cow::Borrowed(*bytes)),
            UiSource::Dir(root) => {
                let file = safe_join(root, path)?;
                tokio::fs::read(file).await.ok().map(Cow::Owned)
            }
            UiSource::Missing => None,
        }
    }
}

/// The router that serves the UI; mount it as the application's fallback.
pub fn router(source: UiSource) -> Router {
    Router::new()
        .fallback(serve)
        .with_state(Arc::new(source))
        .layer(CompressionLayer::new())
}

async fn serve(State(source): State<Arc<UiSource>>, uri: Uri) -> Response {
    if matches!(*source, UiSource::Missing) {
        return missing_ui().into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some(bytes) = source.read(path).await {
        return asset_response(path, bytes);
    }
    if looks_like_file(path) {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    // A client-side route such as /targets: the app itself decides what to show.
    match source.read("index.html").await {
        Some(bytes) => asset_response("index.html", bytes),
        None => missing_ui().into_response(),
    }
}

fn asset_response(path: &str, bytes: Cow<'static, [u8]>) -> Response {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let cache = if is_hashed_asset(path) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = bytes.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

fn missing_ui() -> impl IntoResponse {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "This cinder binary has no UI: start it with --ui-dir DIR, or build it with `cargo xtask dist`.\n",
    )
}

/// Joins a request path onto the UI root, refusing anything that could leave it.
fn safe_join(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| root.join(relative))
}

/// A last path segment with an extension names a file, not a client-side route.
fn looks_like_file(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or(path);
    last.contains('.')
}

/// trunk names built assets `<stem>-<16 hex digits>[_bg].<ext>`: safe to cache forever.
fn is_hashed_asset(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or(path);
    let stem = last.split('.').next().unwrap_or(last);
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-')
        .is_some_and(|(_, hash)| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_hashed_names_are_recognised() {
        assert!(is_hashed_asset("frontend-6c3b1f0d2a9e8f71_bg.wasm"));
        assert!(is_hashed_asset("frontend-6c3b1f0d2a9e8f71.js"));
        assert!(is_hashed_asset("main-0123456789abcdef.css"));
        assert!(!is_hashed_asset("index.html"));
        assert!(!is_hashed_asset("frontend-notahash.js"));
    }

    #[test]
    fn paths_cannot_escape_the_ui_root() {
        let root = Path::new("/srv/ui");
        assert_eq!(
            safe_join(root, "a/b.js"),
            Some(PathBuf::from("/srv/ui/a/b.js"))
        );
        assert_eq!(safe_join(root, "../etc/passwd"), None);
        assert_eq!(safe_join(root, "/etc/passwd"), None);
    }

    #[test]
    fn routes_and_files_are_told_apart() {
        assert!(looks_like_file("frontend.js"));
        assert!(!looks_like_file("targets"));
        assert!(!looks_like_file("compare/x"));
    }
}
