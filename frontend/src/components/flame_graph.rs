//! The flame graph panel: toolbar (search, filters, orientation, invert), breadcrumbs,
//! the `<canvas data-testid="flamegraph">` with its tooltip, and the top table as its text
//! alternative. Work is staged so each change redoes only what it must: data, filters or
//! invert rebuild the tree; zoom or width relayout; search, hover, theme or orientation
//! only redraw.

use std::sync::Arc;

use leptos::{html, prelude::*};
use shared::{
    flame::{ROOT, StackFilter, focus_path, hit_test, node_path},
    ipc::StacksResponse,
    units::format_value,
    view::{DiffScale, Orientation, ViewState},
};
use wasm_bindgen::JsCast as _;

use crate::{
    components::{filter_input::FilterInput, flame_tooltip::FlameTooltip, top_table::TopTable},
    flamegraph::{
        Model,
        draw::{self, Style},
        hook,
    },
    perf,
    theme::use_dark,
    url_state::{History, UrlView},
};

/// The flame graph of `data` (none while loading), driven by the URL's view state.
#[component]
pub(crate) fn FlameGraph(data: Signal<Option<Arc<StacksResponse>>>, url: UrlView) -> impl IntoView {
    let model = StoredValue::new_local(Model::default());
    let canvas_ref = NodeRef::<html::Canvas>::new();
    let box_ref = NodeRef::<html::Div>::new();
    let (tree_v, layout_v, search_v) = (
        RwSignal::new(0u32),
        RwSignal::new(0u32),
        RwSignal::new(0u32),
    );
    let width = RwSignal::new(0.0f64);
    let hover = RwSignal::new(None::<u32>);
    let pointer = RwSignal::new((0.0f64, 0.0f64));
    let stats = RwSignal::new((0usize, 0usize));
    let first_draw = StoredValue::new(false);
    let dark = use_dark();

    let view = url.view;
    let filter = Memo::new(move |_| view.with(|v| (filter_of(v), v.invert)));
    // The zoom applies at once; the URL follows (and leads on Back or a link).
    let url_zoom = Memo::new(move |_| view.with(|v| v.zoom.clone()));
    let zoom = RwSignal::new(url_zoom.get_untracked());
    Effect::new(move |_| {
        let path = url_zoom.get();
        if zoom.with_untracked(|z| *z != path) {
            zoom.set(path);
        }
    });
    let term = Memo::new(move |_| view.with(|v| v.search.clone()));
    let style = Memo::new(move |_| {
        let (orientation, diff) = view.with(|v| (v.orientation, v.diff));
        Style {
            dark: dark.get(),
            orientation,
            diff,
        }
    });

    // Data, filters or invert: rebuild the tree.
    Effect::new(move |_| {
        let (filter, invert) = filter.get();
        let Some(data) = data.get() else { return };
        model.update_value(|m| m.rebuild(&data, &filter, invert));
        first_draw.set_value(true);
        hover.set(None);
        tree_v.update(|v| *v += 1);
    });
    // Tree, zoom or width: lay out again.
    Effect::new(move |_| {
        tree_v.track();
        let (path, w) = (zoom.get(), width.get());
        model.update_value(|m| m.relayout(&path, w));
        layout_v.update(|v| *v += 1);
    });
    // Tree or search term: search again.
    Effect::new(move |_| {
        tree_v.track();
        let term = term.get();
        model.update_value(|m| m.research(&term));
        search_v.update(|v| *v += 1);
    });
    // Anything visible: draw.
    Effect::new(move |_| {
        layout_v.track();
        search_v.track();
        let (hovered, style) = (hover.get(), style.get());
        let Some(canvas) = canvas_ref.get() else {
            return;
        };
        if data.with(Option::is_none) {
            return;
        }
        let drawn = model.with_value(|m| draw::draw(&canvas, m, hovered, style));
        stats.set((model.with_value(|m| m.tree.len()), drawn));
        if first_draw.get_value() {
            first_draw.set_value(false);
            perf::measure(perf::names::FIRST_DRAW, perf::names::DATA);
        }
        perf::measure(perf::names::HOVER_DRAW, perf::names::HOVER);
        perf::measure(perf::names::ZOOM_DRAW, perf::names::ZOOM);
    });

    // Width follows the panel.
    let measure_width = move || {
        if let Some(el) = box_ref.get_untracked() {
            let w = f64::from(el.client_width());
            if w > 0.0 && w != width.get_untracked() {
                width.set(w);
            }
        }
    };
    Effect::new(move |_| {
        if box_ref.get().is_some() {
            measure_width();
        }
    });
    let resize = window_event_listener(leptos::ev::resize, move |_| measure_width());
    on_cleanup(move || resize.remove());

    let node_at = move |ev: &web_sys::MouseEvent| -> Option<u32> {
        let (x, y) = (f64::from(ev.offset_x()), f64::from(ev.offset_y()));
        let orientation = style.get_untracked().orientation;
        model.with_value(|m| {
            let depth = draw::row_at(y, m.max_row() + 1, orientation)?;
            hit_test(&m.rects, x, depth)
        })
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        pointer.set((f64::from(ev.offset_x()), f64::from(ev.offset_y())));
        let node = node_at(&ev);
        if node != hover.get_untracked() {
            perf::mark(perf::names::HOVER);
            hover.set(node);
        }
    };
    let zoom_to = move |node: u32| {
        let path = model.with_value(|m| node_path(&m.tree, node));
        perf::mark(perf::names::ZOOM);
        zoom.set(path.clone());
        url.update_later(History::Replace, |v| v.zoom = path);
    };
    let on_click = move |ev: web_sys::MouseEvent| {
        if let Some(node) = node_at(&ev) {
            zoom_to(node);
        }
    };

    // Keyboard: `/` focuses search, Esc resets the zoom.
    let search_ref = NodeRef::<html::Input>::new();
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        let typing = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .is_some();
        match ev.key().as_str() {
            "/" if !typing => {
                ev.prevent_default();
                if let Some(input) = search_ref.get_untracked() {
                    let _ = input.focus();
                }
            }
            "Escape" => {
                perf::mark(perf::names::ZOOM);
                zoom.set(Vec::new());
                url.update_later(History::Replace, |v| v.zoom.clear());
            }
            _ => {}
        }
    });
    on_cleanup(move || keys.remove());

    hook::install_test_hook(model, canvas_ref, style);

    let share = move || {
        search_v.track();
        let term = term.get();
        if term.is_empty() {
            return None;
        }
        let (matched, total, unit) =
            model.with_value(|m| (m.search.matched_total, m.tree.total(), m.unit.clone()));
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

    let crumbs = move || {
        layout_v.track();
        let (zoom, names) = model.with_value(|m| {
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
                        <button type="button" class="crumb" on:click=move |_| zoom_to(node)>{name}</button>
                    }).collect_view()}
                    <button type="button" class="reset" data-testid="flame-reset"
                        on:click=move |_| zoom_to(ROOT)>"Reset zoom"</button>
                </nav>
            }
        })
    };

    let trimmed = move || {
        tree_v.track();
        let ((nodes, value), unit) = model.with_value(|m| (m.trimmed, m.unit.clone()));
        (nodes > 0).then(|| {
            format!(
                "{nodes} small nodes ({}) are folded into \"other\" to keep the answer small.",
                format_value(value, &unit)
            )
        })
    };
    let is_diff = move || {
        tree_v.track();
        model.with_value(|m| m.diff)
    };

    view! {
        <section class="flame-panel" aria-label="Flame graph">
            <div class="flame-toolbar">
                <label class="field">
                    <span>"Search"</span>
                    <input type="search" node_ref=search_ref data-testid="flame-search"
                        placeholder="function (press /)"
                        prop:value=move || term.get()
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
                <Show when=is_diff>
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
            <p class="search-share" data-testid="search-share" aria-live="polite">{share}</p>
            <p class="hint" data-testid="trimmed">{trimmed}</p>
            {crumbs}
            <div class="flame-box" node_ref=box_ref>
                <canvas data-testid="flamegraph" node_ref=canvas_ref role="img"
                    aria-label="Flame graph; the top table below lists the same functions as text"
                    data-nodes=move || stats.get().0.to_string()
                    data-drawn=move || stats.get().1.to_string()
                    on:mousemove=on_move
                    on:mouseleave=move |_| hover.set(None)
                    on:click=on_click></canvas>
                <FlameTooltip model hover pointer width tree_v/>
            </div>
            <TopTable model tree_v url on_focus=Callback::new(move |function: String| {
                let node = model.with_value(|m| focus_path(&m.tree, &function));
                if let Some(node) = node {
                    zoom_to(node);
                }
            })/>
        </section>
    }
}

fn filter_of(v: &ViewState) -> StackFilter {
    StackFilter {
        keep_containing: v.keep.clone(),
        drop_containing: v.drop.clone(),
        hide_frames: v.hide.clone(),
    }
}
