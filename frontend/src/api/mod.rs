//! Every request the UI makes: the JSON and Arrow endpoints of `/api/v1`, through
//! `fetch` (with the signed-in token, see [`crate::auth`]), with the server's
//! `{error, detail, field}` answers turned into [`ApiError`] and requests aborted when a
//! newer one replaces them or the page is left.

use std::{cell::RefCell, rc::Rc};

use serde::{Serialize, de::DeserializeOwned};
use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, RequestInit, Response};

mod targets;
pub(crate) use targets::{Job, Target, TargetForm, delete_target, save_target, targets};

/// A failed request: the server's error (its [`ErrorBody`](shared::wire::ErrorBody)), or
/// why there was no answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ApiError {
    /// A short, lower-case message.
    pub(crate) error: String,
    /// The details.
    pub(crate) detail: String,
    /// The parameter or form field at fault, if the server named one.
    pub(crate) field: Option<String>,
    /// The HTTP status; 0 when the request did not complete.
    pub(crate) status: u16,
}

impl From<shared::wire::ErrorBody> for ApiError {
    fn from(body: shared::wire::ErrorBody) -> Self {
        ApiError {
            error: body.error,
            detail: body.detail,
            field: body.field,
            status: 0,
        }
    }
}

impl ApiError {
    fn network(err: JsValue) -> Self {
        let detail = err
            .dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .unwrap_or_else(|| format!("{err:?}"));
        ApiError {
            error: "the request failed".into(),
            detail,
            ..ApiError::default()
        }
    }

    /// Whether the request was aborted (by a newer one): nothing to show.
    pub(crate) fn is_abort(&self) -> bool {
        self.status == 0 && self.detail.contains("abort")
    }

    /// The message to show.
    pub(crate) fn message(&self) -> String {
        match (self.error.is_empty(), self.detail.is_empty()) {
            (_, true) => self.error.clone(),
            (true, false) => self.detail.clone(),
            (false, false) => format!("{}: {}", self.error, self.detail),
        }
    }
}

/// Aborts the previous request when a new one starts, and the last one when dropped.
#[derive(Clone, Default)]
pub(crate) struct Aborter(Rc<RefCell<Option<AbortController>>>);

impl Aborter {
    /// Aborts whatever is in flight and returns a signal for the next request.
    fn next(&self) -> Option<web_sys::AbortSignal> {
        let controller = AbortController::new().ok()?;
        let signal = controller.signal();
        if let Some(old) = self.0.borrow_mut().replace(controller) {
            old.abort();
        }
        Some(signal)
    }

    /// Aborts the request in flight, if any.
    pub(crate) fn abort(&self) {
        if let Some(old) = self.0.borrow_mut().take() {
            old.abort();
        }
    }
}

/// Sends a request and returns the response once its status is a success.
async fn send(
    method: &str,
    url: &str,
    body: Option<String>,
    aborter: Option<&Aborter>,
) -> Result<Response, ApiError> {
    let window = web_sys::window().expect("a window");
    let init = RequestInit::new();
    init.set_method(method);
    let headers = js_sys::Object::new();
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(&body));
        let _ = js_sys::Reflect::set(&headers, &"content-type".into(), &"application/json".into());
    }
    if let Some(auth) = crate::auth::authorization() {
        let _ = js_sys::Reflect::set(&headers, &"authorization".into(), &auth.into());
    }
    init.set_headers(&headers);
    if let Some(signal) = aborter.and_then(Aborter::next) {
        init.set_signal(Some(&signal));
    }
    let promise = window.fetch_with_str_and_init(url, &init);
    let resp: Response = JsFuture::from(promise)
        .await
        .map_err(ApiError::network)?
        .unchecked_into();
    if resp.ok() {
        return Ok(resp);
    }
    let status = resp.status();
    let text = text_of(&resp).await.unwrap_or_default();
    let mut err = match serde_json::from_str::<shared::wire::ErrorBody>(&text) {
        Ok(body) => ApiError::from(body),
        Err(_) => ApiError {
            error: format!("HTTP {status}"),
            detail: text,
            ..ApiError::default()
        },
    };
    err.status = status;
    Err(err)
}

async fn text_of(resp: &Response) -> Result<String, ApiError> {
    let promise = resp.text().map_err(ApiError::network)?;
    let text = JsFuture::from(promise).await.map_err(ApiError::network)?;
    Ok(text.as_string().unwrap_or_default())
}

async fn json_of<T: DeserializeOwned>(resp: Response) -> Result<T, ApiError> {
    let text = text_of(&resp).await?;
    serde_json::from_str(&text).map_err(|e| ApiError {
        error: "unexpected answer".into(),
        detail: e.to_string(),
        ..ApiError::default()
    })
}

/// `GET url` as JSON.
pub(crate) async fn get_json<T: DeserializeOwned>(
    url: &str,
    aborter: Option<&Aborter>,
) -> Result<T, ApiError> {
    json_of(send("GET", url, None, aborter).await?).await
}

/// `GET url` as bytes.
pub(crate) async fn get_bytes(url: &str, aborter: Option<&Aborter>) -> Result<Vec<u8>, ApiError> {
    let resp = send("GET", url, None, aborter).await?;
    let promise = resp.array_buffer().map_err(ApiError::network)?;
    let buffer = JsFuture::from(promise).await.map_err(ApiError::network)?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// `method url` with a JSON body, answered with JSON (or nothing, as `null`).
pub(crate) async fn send_json<B: Serialize, T: DeserializeOwned>(
    method: &str,
    url: &str,
    body: Option<&B>,
) -> Result<T, ApiError> {
    let body = body.map(|b| serde_json::to_string(b).expect("serializable body"));
    let resp = send(method, url, body, None).await?;
    let text = text_of(&resp).await?;
    serde_json::from_str(if text.trim().is_empty() {
        "null"
    } else {
        &text
    })
    .map_err(|e| ApiError {
        error: "unexpected answer".into(),
        detail: e.to_string(),
        ..ApiError::default()
    })
}

/// A URL with encoded query parameters; empty values are left out.
pub(crate) fn url(path: &str, params: &[(&str, String)]) -> String {
    let mut out = path.to_owned();
    let mut sep = '?';
    for (key, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        out.push(sep);
        out.push_str(key);
        out.push('=');
        out.push_str(&shared::view::encode(value));
        sep = '&';
    }
    out
}

/// Label names (`name == None`) or the values of one label, for autocompletion.
pub(crate) async fn label_words(
    name: Option<&str>,
    query: &str,
    start: i64,
    end: i64,
) -> Result<Vec<String>, ApiError> {
    let path = match name {
        None => "/api/v1/labels".to_owned(),
        Some(name) => format!("/api/v1/labels/{}/values", shared::view::encode(name)),
    };
    let params = [
        ("query", query.to_owned()),
        ("start", start.to_string()),
        ("end", end.to_string()),
    ];
    get_json(&url(&path, &params), None).await
}

pub(crate) use shared::wire::{RangePoint as Point, RangeSeries as Series};

/// `query_range` over `start..end`.
pub(crate) async fn query_range(
    query: &str,
    start: i64,
    end: i64,
    sum_by: &[String],
    aborter: &Aborter,
) -> Result<Vec<Series>, ApiError> {
    let params = [
        ("query", query.to_owned()),
        ("start", start.to_string()),
        ("end", end.to_string()),
        ("step", format!("{}ms", shared::chart::step_for(start, end))),
        ("sum_by", sum_by.join(",")),
    ];
    let resp: shared::wire::RangeResponse =
        get_json(&url("/api/v1/query_range", &params), Some(aborter)).await?;
    Ok(resp.series)
}
