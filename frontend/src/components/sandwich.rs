//! The sandwich view of the URL's `sandwich` function: its callers as an inverted flame
//! graph above it and its callees below, merged over every stack through it (recursion
//! included, see `shared::flame::sandwich`), after the view's keep/drop/hide filters.
//! Clicking a node shows that function's sandwich instead.

use std::sync::Arc;

use leptos::prelude::*;
use shared::{
    flame::{StackFilter, sandwich},
    ipc::StacksResponse,
    units::format_value,
    view::Orientation,
};

use crate::{
    components::flame_canvas::{CanvasModel, FlameCanvas},
    flamegraph::{Model, draw::Style},
    url_state::{History, UrlView},
};

/// The sandwich panel, shown while the URL names a function.
#[component]
pub(crate) fn SandwichView(
    data: Signal<Option<Arc<StacksResponse>>>,
    filter: Memo<StackFilter>,
    style: Signal<Style>,
    url: UrlView,
) -> impl IntoView {
    let function = Memo::new(move |_| url.view.with(|v| v.sandwich.clone()));
    let callers = CanvasModel::new(Model::default());
    let callees = CanvasModel::new(Model::default());
    let cum = RwSignal::new(None::<(i64, i64, String)>);
    Effect::new(move |_| {
        let name = function.get();
        let Some(data) = data.get() else { return };
        if name.is_empty() {
            return;
        }
        let filtered = filter.with(|f| (!f.is_empty()).then(|| f.apply(&data.stacks)));
        let stacks = filtered.as_ref().unwrap_or(&data.stacks);
        let parts = sandwich(stacks, &name);
        let (unit, diff) = (&data.meta.unit, data.meta.diff);
        for (pane, set) in [(callers, &parts.callers), (callees, &parts.callees)] {
            pane.model.set_value(Model::of_stacks(set, unit, diff));
            pane.tree_v.update(|v| *v += 1);
        }
        let total = callees.model.with_value(|m| m.tree.total());
        cum.set(Some((total, stacks.total(), unit.clone())));
    });
    for pane in [callers, callees] {
        Effect::new(move |_| {
            pane.tree_v.track();
            let w = pane.width.get();
            pane.model.update_value(|m| m.relayout::<&str>(&[], w));
            pane.layout_v.update(|v| *v += 1);
        });
    }
    let pick = Callback::new(move |(pane, node): (CanvasModel, u32)| {
        let name = pane
            .model
            .with_value(|m| (!m.tree.is_synthetic(node)).then(|| m.tree.name(node).into_owned()));
        if let Some(name) = name {
            url.update(History::Push, |v| v.sandwich = name);
        }
    });
    let flame_style = Signal::derive(move || Style {
        orientation: Orientation::Flame,
        ..style.get()
    });
    let icicle_style = Signal::derive(move || Style {
        orientation: Orientation::Icicle,
        ..style.get()
    });
    let summary = move || {
        cum.get().map(|(value, total, unit)| {
            let pct = if total == 0 {
                0.0
            } else {
                value as f64 * 100.0 / total as f64
            };
            format!("{} ({pct:.2}% of total)", format_value(value, &unit))
        })
    };
    view! {
        <Show when=move || function.with(|f| !f.is_empty())>
            <section class="sandwich" data-testid="sandwich" aria-label="Sandwich view">
                <header class="row">
                    <h2>"Sandwich of "<code data-testid="sandwich-function">{move || function.get()}</code></h2>
                    <span class="hint" data-testid="sandwich-total">{summary}</span>
                    <span class="spacer"></span>
                    <button type="button" data-testid="sandwich-close"
                        on:click=move |_| url.update(History::Push, |v| v.sandwich.clear())>
                        "Close sandwich"
                    </button>
                </header>
                <h3>"Callers"</h3>
                <FlameCanvas m=callers style=flame_style testid="sandwich-callers"
                    label="Callers of the function, an inverted flame graph growing upwards"
                    on_activate=Callback::new(move |node: u32| pick.run((callers, node)))/>
                <h3>"Callees"</h3>
                <FlameCanvas m=callees style=icicle_style testid="sandwich-callees"
                    label="Callees of the function, a flame graph growing downwards"
                    on_activate=Callback::new(move |node: u32| pick.run((callees, node)))/>
            </section>
        </Show>
    }
}
