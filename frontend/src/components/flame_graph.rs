//! The flame graph panel: toolbar, breadcrumbs, the `<canvas data-testid="flamegraph">`
//! with its tooltip and node menu, the sandwich view of a picked function, and the top
//! table as its text alternative. Work is staged so each change redoes only what it must:
//! data, filters or invert rebuild the tree; zoom or width relayout; search, hover, theme
//! or orientation only redraw.

use std::sync::Arc;

use leptos::prelude::*;
use shared::{
    flame::{ROOT, StackFilter, focus_path, node_path},
    ipc::StacksResponse,
    units::format_value,
    view::ViewState,
};

use crate::{
    components::{
        flame_canvas::{CanvasModel, FlameCanvas, MenuAt},
        flame_menu::{MenuActions, NodeMenu},
        flame_toolbar::FlameToolbar,
        sandwich::SandwichView,
        top_table::{TopTable, load_exact_top},
    },
    flamegraph::{Model, draw::Style},
    perf,
    theme::use_dark,
    url_state::{History, UrlView},
};

/// The flame graph of `data` (none while loading), driven by the URL's view state;
/// `params` are the query parameters `data` was loaded with (for the exact top table).
#[component]
pub(crate) fn FlameGraph(
    data: Signal<Option<Arc<StacksResponse>>>,
    params: Memo<Option<Vec<(String, String)>>>,
    url: UrlView,
) -> impl IntoView {
    let m = CanvasModel::new(Model::default());
    let model = m.model;
    let first_draw = StoredValue::new(false);
    let dark = use_dark();
    let view = url.view;
    let filter = Memo::new(move |_| view.with(filter_of));
    let invert = Memo::new(move |_| view.with(|v| v.invert));
    let zoom = follow_url_zoom(url);
    let term = Memo::new(move |_| view.with(|v| v.search.clone()));
    let style = Signal::derive(move || {
        let (orientation, diff) = view.with(|v| (v.orientation, v.diff));
        Style {
            dark: dark.get(),
            orientation,
            diff,
        }
    });

    // Data, filters or invert: rebuild the tree; the top table follows the first frame.
    let top_v = RwSignal::new(0u32);
    Effect::new(move |_| {
        let invert = invert.get();
        let Some(data) = data.get() else { return };
        let filter = filter.get();
        model.update_value(|m| m.rebuild(&data, &filter, invert));
        first_draw.set_value(true);
        m.tree_v.update(|v| *v += 1);
        let version = m.tree_v.get_untracked();
        after_paint(move || {
            if m.tree_v.try_get_untracked() != Some(version) {
                return; // a newer tree schedules its own
            }
            model.try_update_value(|m| m.retop(&data, &filter));
            top_v.try_update(|v| *v += 1);
        });
    });
    // Tree, zoom or width: lay out again.
    Effect::new(move |_| {
        m.tree_v.track();
        let (path, w) = (zoom.get(), m.width.get());
        model.update_value(|m| m.relayout(&path, w));
        m.layout_v.update(|v| *v += 1);
    });
    // Tree or search term: search again.
    Effect::new(move |_| {
        m.tree_v.track();
        let term = term.get();
        model.update_value(|m| m.research(&term));
        m.search_v.update(|v| *v += 1);
    });

    let zoom_to = Callback::new(move |node: u32| {
        let path = model.with_value(|m| node_path(&m.tree, node));
        perf::mark(perf::names::ZOOM);
        zoom.set(path.clone());
        url.update_later(History::Replace, |v| v.zoom = path);
    });
    // Esc resets the zoom.
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" {
            perf::mark(perf::names::ZOOM);
            zoom.set(Vec::new());
            url.update_later(History::Replace, |v| v.zoom.clear());
        }
    });
    on_cleanup(move || keys.remove());

    let menu = RwSignal::new(None::<MenuAt>);
    let actions = MenuActions {
        name_of: Callback::new(move |node: u32| {
            model.with_value(|m| m.tree.name(node).into_owned())
        }),
        focus: zoom_to,
    };
    let is_diff = Signal::derive(move || {
        m.tree_v.track();
        model.with_value(|m| m.diff)
    });
    let exact = load_exact_top(params, data, filter);
    let on_menu = Callback::new(move |at: MenuAt| {
        let synthetic = model.with_value(|m| m.tree.is_synthetic(at.0));
        menu.set((!synthetic).then_some(at));
    });

    view! {
        <section class="flame-panel" aria-label="Flame graph">
            <FlameToolbar url style is_diff/>
            <SearchShare m term/>
            <Trimmed m/>
            <Crumbs m zoom_to/>
            <SandwichView data filter style url/>
            <div class="flame-stage">
                <FlameCanvas m style testid="flamegraph" main=true first_draw
                    ready=Signal::derive(move || data.with(Option::is_some))
                    label="Flame graph; arrow keys move between nodes, Enter zooms, the context-menu key opens a node's actions; the top table below lists the same functions as text"
                    on_activate=zoom_to on_menu/>
                <NodeMenu open=menu actions url/>
            </div>
            <TopTable model=m.model top_v source=exact url on_focus=Callback::new(move |function: String| {
                let node = model.with_value(|m| focus_path(&m.tree, &function));
                if let Some(node) = node {
                    zoom_to.run(node);
                }
            })/>
        </section>
    }
}

/// Runs `work` once the next frame is painted (an animation frame, then a task).
fn after_paint(work: impl FnOnce() + 'static) {
    request_animation_frame(move || set_timeout(work, std::time::Duration::ZERO));
}

/// The zoom path, applied at once; the URL follows (and leads on Back or a link).
fn follow_url_zoom(url: UrlView) -> RwSignal<Vec<String>> {
    let url_zoom = Memo::new(move |_| url.view.with(|v| v.zoom.clone()));
    let zoom = RwSignal::new(url_zoom.get_untracked());
    Effect::new(move |_| {
        let path = url_zoom.get();
        if zoom.with_untracked(|z| *z != path) {
            zoom.set(path);
        }
    });
    zoom
}

/// "term matched: x% of total (value)" while searching.
#[component]
fn SearchShare(m: CanvasModel, term: Memo<String>) -> impl IntoView {
    let share = move || {
        m.search_v.track();
        let term = term.get();
        if term.is_empty() {
            return None;
        }
        let (matched, total, unit) = m
            .model
            .with_value(|m| (m.search.matched_total, m.tree.total(), m.unit.clone()));
        let pct = if total == 0 {
            0.0
        } else {
            matched as f64 * 100.0 / total as f64
        };
        Some(format!(
            "{} matched: {pct:.2}% of total ({})",
            term,
            format_value(matched, &unit)
        ))
    };
    view! { <p class="search-share" data-testid="search-share" aria-live="polite">{share}</p> }
}

/// What the server folded into "other".
#[component]
fn Trimmed(m: CanvasModel) -> impl IntoView {
    let trimmed = move || {
        m.tree_v.track();
        let ((nodes, value), unit) = m.model.with_value(|m| (m.trimmed, m.unit.clone()));
        (nodes > 0).then(|| {
            format!(
                "{nodes} small nodes ({}) are folded into \"other\" to keep the answer small.",
                format_value(value, &unit)
            )
        })
    };
    view! { <p class="hint" data-testid="trimmed">{trimmed}</p> }
}

/// The zoom path as buttons, and "Reset zoom".
#[component]
fn Crumbs(m: CanvasModel, zoom_to: Callback<u32>) -> impl IntoView {
    move || {
        m.layout_v.track();
        let (zoom, names) = m.model.with_value(|m| {
            let mut ids: Vec<u32> = m.tree.ancestors(m.zoom).collect();
            ids.reverse();
            ids.push(m.zoom);
            let names: Vec<(u32, String)> = ids
                .iter()
                .map(|&n| (n, m.tree.name(n).into_owned()))
                .collect();
            (m.zoom, names)
        });
        (zoom != ROOT).then(|| {
            view! {
                <nav class="crumbs" aria-label="Zoom path" data-testid="flame-breadcrumbs">
                    {names.into_iter().map(|(node, name)| view! {
                        <button type="button" class="crumb" on:click=move |_| zoom_to.run(node)>{name}</button>
                    }).collect_view()}
                    <button type="button" class="reset" data-testid="flame-reset"
                        on:click=move |_| zoom_to.run(ROOT)>"Reset zoom"</button>
                </nav>
            }
        })
    }
}

fn filter_of(v: &ViewState) -> StackFilter {
    StackFilter {
        keep_containing: v.keep.clone(),
        drop_containing: v.drop.clone(),
        hide_frames: v.hide.clone(),
    }
}
