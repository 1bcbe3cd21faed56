//! What Explore and Compare share: loading a side's metrics series and a profile's
//! stacks (decoded from Arrow IPC), the loading/empty/error states, and share links.

use std::sync::Arc;

use leptos::{prelude::*, task::spawn_local};
use shared::{ipc::StacksResponse, query::ProfileType, view::Side};

use crate::{
    api::{self, Aborter, ApiError, Series},
    components::query_bar::Which,
    perf,
    url_state::{UrlView, now_ms},
};

/// The flame graph's node budget asked of `report=stacks` unless the URL sets
/// `max_nodes`: large enough that a million-node profile arrives whole (the browser culls
/// what is narrower than a pixel and zoom reveals the rest without a request).
pub(crate) const STACKS_MAX_NODES: u64 = 2_000_000;

/// Where a request stands.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Status {
    /// Nothing asked yet.
    Idle,
    /// Waiting for the server.
    Loading,
    /// Answered with data.
    Ready,
    /// Answered with nothing in it.
    Empty,
    /// Failed, with the message to show.
    Failed(String),
}

/// The query parameters that read one side's profile: one (`time`) or a merge
/// (`start`, `end`); `suffix` is `""` or `_a`/`_b` for diffs.
pub(crate) fn side_params(side: &Side, suffix: &str, now: i64) -> Vec<(String, String)> {
    let query = (format!("query{suffix}"), side.expression.clone());
    match side.selection {
        Some(t) => vec![query, (format!("time{suffix}"), t.to_string())],
        None => {
            let (start, end) = side.merge_range(now);
            vec![
                query,
                (format!("start{suffix}"), start.to_string()),
                (format!("end{suffix}"), end.to_string()),
            ]
        }
    }
}

/// `/api/v1/query?…` with these parameters.
pub(crate) fn query_url(params: &[(String, String)]) -> String {
    let borrowed: Vec<(&str, String)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    api::url("/api/v1/query", &borrowed)
}

/// The profile type of an expression, if it parses.
pub(crate) fn type_of(expression: &str) -> Option<ProfileType> {
    let (id, _) = crate::components::query_bar::split_expression(expression);
    id.parse().ok()
}

/// The sample unit and the rate unit (see [`ProfileType::rate_unit`]) of side `which`'s
/// profile type, "" without one; both follow one parse of the expression.
pub(crate) fn units_of(url: UrlView, which: Which) -> (Memo<String>, Memo<String>) {
    let profile_type = Memo::new(move |_| url.view.with(|v| type_of(&which.of(v).expression)));
    let unit = Memo::new(move |_| {
        profile_type.with(|t| {
            t.as_ref()
                .map(|t| t.sample_unit.clone())
                .unwrap_or_default()
        })
    });
    let rate_unit = Memo::new(move |_| {
        profile_type.with(|t| {
            t.as_ref()
                .map(|t| t.rate_unit().to_owned())
                .unwrap_or_default()
        })
    });
    (unit, rate_unit)
}

/// The metrics series of side `which`, reloaded when its query, range or `sum_by` change.
pub(crate) fn load_series(url: UrlView, which: Which) -> (RwSignal<Vec<Series>>, RwSignal<Status>) {
    let series = RwSignal::new(Vec::new());
    let status = RwSignal::new(Status::Idle);
    let key = Memo::new(move |_| {
        url.view.with(|v| {
            let s = which.of(v);
            (s.expression.clone(), s.range, v.sum_by.clone())
        })
    });
    let aborter = StoredValue::new_local(Aborter::default());
    Effect::new(move |_| {
        let (expression, range, sum_by) = key.get();
        if expression.is_empty() {
            return;
        }
        let (start, end) = range.resolve(now_ms());
        status.set(Status::Loading);
        let aborter = aborter.get_value();
        spawn_local(async move {
            match api::query_range(&expression, start, end, &sum_by, &aborter).await {
                Ok(s) => {
                    let empty = s.iter().all(|s| s.points.is_empty());
                    series.set(s);
                    status.set(if empty { Status::Empty } else { Status::Ready });
                }
                Err(e) if e.is_abort() => {}
                Err(e) => {
                    series.set(Vec::new());
                    status.set(Status::Failed(e.message()));
                }
            }
        });
    });
    on_cleanup(move || aborter.with_value(Aborter::abort));
    (series, status)
}

/// For snapshot types with no selection, selects the latest profile once series arrive.
pub(crate) fn default_to_latest_snapshot(
    url: UrlView,
    which: Which,
    series: RwSignal<Vec<Series>>,
) {
    Effect::new(move |_| {
        let latest = series.with(|s| s.iter().filter_map(|s| s.points.last().map(|p| p.t)).max());
        let side = url.view.with_untracked(|v| which.of(v).clone());
        let snapshot = type_of(&side.expression).is_some_and(|t| t.is_snapshot());
        if let (true, None, None, Some(t)) = (snapshot, side.selection, side.merge, latest) {
            url.update_default(|v| which.of_mut(v).selection = Some(t));
        }
    });
}

/// Loads the stacks of `params()` (none: nothing to load) whenever they change.
pub(crate) fn load_stacks(
    params: Memo<Option<Vec<(String, String)>>>,
) -> (RwSignal<Option<Arc<StacksResponse>>>, RwSignal<Status>) {
    let data = RwSignal::new(None::<Arc<StacksResponse>>);
    let status = RwSignal::new(Status::Idle);
    let aborter = StoredValue::new_local(Aborter::default());
    Effect::new(move |_| {
        let Some(mut params) = params.get() else {
            return;
        };
        params.push(("report".into(), "stacks".into()));
        let url = query_url(&params);
        status.set(Status::Loading);
        let aborter = aborter.get_value();
        spawn_local(async move {
            let answer = api::get_bytes(&url, Some(&aborter))
                .await
                .and_then(|bytes| {
                    perf::mark(perf::names::DATA);
                    perf::span(perf::names::DECODE, || shared::ipc::decode_stacks(&bytes)).map_err(
                        |e| ApiError {
                            error: "cannot read the answer".into(),
                            detail: e.to_string(),
                            ..ApiError::default()
                        },
                    )
                });
            match answer {
                Ok(resp) => {
                    let empty = resp.stacks.stacks.is_empty();
                    data.set(Some(Arc::new(resp)));
                    status.set(if empty { Status::Empty } else { Status::Ready });
                }
                Err(e) if e.is_abort() => {}
                Err(e) => status.set(Status::Failed(e.message())),
            }
        });
    });
    on_cleanup(move || aborter.with_value(Aborter::abort));
    (data, status)
}

/// The progress, empty and error line for `status`; `what` names what is loaded.
#[component]
pub(crate) fn StatusLine(status: RwSignal<Status>, what: &'static str) -> impl IntoView {
    move || {
        match status.get() {
        Status::Idle | Status::Ready => None,
        Status::Loading => Some(view! {
            <p class="loading" data-testid="loading" role="status">
                <progress aria-label=format!("loading the {what}")></progress>" Loading the "{what}"…"
            </p>
        }.into_any()),
        Status::Empty => Some(view! {
            <p class="hint" data-testid="empty-hint" role="status">
                "No data for this selector in this range. Widen the time range or loosen the labels."
            </p>
        }.into_any()),
        Status::Failed(message) => Some(view! {
            <p class="error" data-testid="error" role="alert">{message}</p>
        }.into_any()),
    }
    }
}

/// A "copy link" button: copies the URL of this view with relative times pinned, and shows it.
#[component]
pub(crate) fn CopyLink(url: UrlView) -> impl IntoView {
    let link = RwSignal::new(None::<String>);
    let copy = move |_| {
        let Some(window) = web_sys::window() else {
            return;
        };
        let location = window.location();
        let origin = location.origin().unwrap_or_default();
        let path = location.pathname().unwrap_or_default();
        let query = url.get().pinned(now_ms()).to_query();
        let text = format!("{origin}{path}?{query}");
        let _ = window.navigator().clipboard().write_text(&text);
        link.set(Some(text));
    };
    view! {
        <button type="button" data-testid="copy-link" on:click=copy>"Copy link"</button>
        {move || link.get().map(|l| view! {
            <input class="share-link" type="text" readonly data-testid="share-link" aria-label="Link to this view" prop:value=l/>
        })}
    }
}
