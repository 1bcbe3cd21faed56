//! A text input bound to one list of the view state (comma-separated terms), applied on
//! change: the flame graph's keep, drop and hide filters.

use leptos::prelude::*;
use shared::view::ViewState;

use crate::url_state::{History, UrlView};

/// A comma-separated list of terms bound to one filter of the view.
#[component]
pub(crate) fn FilterInput(
    url: UrlView,
    label: &'static str,
    testid: &'static str,
    get: fn(&ViewState) -> &Vec<String>,
    set: fn(&mut ViewState, Vec<String>),
) -> impl IntoView {
    let text = move || url.view.with(|v| get(v).join(", "));
    view! {
        <label class="field">
            <span>{label}</span>
            <input type="text" data-testid=testid placeholder="a, b"
                prop:value=text
                on:change=move |ev| {
                    let terms: Vec<String> = event_target_value(&ev)
                        .split(',')
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty())
                        .collect();
                    url.update(History::Replace, |v| set(v, terms));
                }/>
        </label>
    }
}
