//! The flame graph's toolbar: search (`/` focuses it), keep/drop/hide filters, icicle or
//! flame, invert, and for diffs relative or absolute colouring. Everything goes to the URL.

use leptos::{html, prelude::*};
use shared::view::{DiffScale, Orientation};
use wasm_bindgen::JsCast as _;

use crate::{
    components::filter_input::FilterInput,
    flamegraph::draw::Style,
    url_state::{History, UrlView},
};

/// The toolbar; `is_diff` shows the diff-scale toggle.
#[component]
pub(crate) fn FlameToolbar(
    url: UrlView,
    style: Signal<Style>,
    is_diff: Signal<bool>,
) -> impl IntoView {
    let view = url.view;
    let search_ref = NodeRef::<html::Input>::new();
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .is_some();
        if ev.key() == "/" && !typing {
            ev.prevent_default();
            if let Some(input) = search_ref.get_untracked() {
                let _ = input.focus();
            }
        }
    });
    on_cleanup(move || keys.remove());
    view! {
        <div class="flame-toolbar">
            <label class="field">
                <span>"Search"</span>
                <input type="search" node_ref=search_ref data-testid="flame-search"
                    placeholder="function (press /)"
                    prop:value=move || view.with(|v| v.search.clone())
                    on:input=move |ev| {
                        let value = event_target_value(&ev);
                        url.update(History::Replace, |v| v.search = value);
                    }/>
            </label>
            <FilterInput url label="Keep stacks with" testid="filter-keep"
                get=|v| &v.keep set=|v, t| v.keep = t/>
            <FilterInput url label="Drop stacks with" testid="filter-drop"
                get=|v| &v.drop set=|v, t| v.drop = t/>
            <FilterInput url label="Hide frames" testid="filter-hide"
                get=|v| &v.hide set=|v, t| v.hide = t/>
            <button type="button" data-testid="flame-orientation"
                aria-pressed=move || (style.get().orientation == Orientation::Flame).to_string()
                on:click=move |_| url.update(History::Replace, |v| {
                    v.orientation = match v.orientation {
                        Orientation::Icicle => Orientation::Flame,
                        Orientation::Flame => Orientation::Icicle,
                    }
                })>
                {move || match style.get().orientation {
                    Orientation::Icicle => "Icicle ↓",
                    Orientation::Flame => "Flame ↑",
                }}
            </button>
            <label class="check">
                <input type="checkbox" data-testid="flame-invert"
                    prop:checked=move || view.with(|v| v.invert)
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        url.update(History::Replace, |v| v.invert = on);
                    }/>
                "Invert"
            </label>
            <Show when=move || is_diff.get()>
                <button type="button" data-testid="diff-scale"
                    on:click=move |_| url.update(History::Replace, |v| {
                        v.diff = match v.diff {
                            DiffScale::Relative => DiffScale::Absolute,
                            DiffScale::Absolute => DiffScale::Relative,
                        }
                    })>
                    {move || match style.get().diff {
                        DiffScale::Relative => "Relative change",
                        DiffScale::Absolute => "Absolute change",
                    }}
                </button>
            </Show>
        </div>
    }
}
