//! One drawn flame graph: a `<canvas>` over a laid-out [`Model`], with its hover tooltip
//! and keyboard cursor. Arrow keys move between drawn nodes (up and down follow the
//! orientation), Enter or a click activates a node, a right click (or the context-menu
//! key, or Shift+F10) asks for its menu. The owner lays the model out and bumps
//! `layout_v`; this draws on every layout, search, hover or style change.

use leptos::{html, prelude::*};
use shared::{
    flame::{Step, hit_test, step},
    view::Orientation,
};

use crate::{
    components::flame_tooltip::FlameTooltip,
    flamegraph::{
        Model,
        draw::{self, Style},
        hook,
    },
    perf,
};

/// A node's menu asked for: the node and where (CSS pixels in the canvas box).
pub(crate) type MenuAt = (u32, f64, f64);

/// What a [`FlameCanvas`] is drawn from and tells its owner.
#[derive(Clone, Copy)]
pub(crate) struct CanvasModel {
    /// The model, laid out by the owner.
    pub(crate) model: StoredValue<Model, LocalStorage>,
    /// Bumped when the tree changes (hover is reset).
    pub(crate) tree_v: RwSignal<u32>,
    /// Bumped after each layout.
    pub(crate) layout_v: RwSignal<u32>,
    /// Bumped after each search.
    pub(crate) search_v: RwSignal<u32>,
    /// The box width in CSS pixels, measured here; the owner lays out at it.
    pub(crate) width: RwSignal<f64>,
}

impl CanvasModel {
    /// A model with fresh version counters.
    pub(crate) fn new(model: Model) -> Self {
        CanvasModel {
            model: StoredValue::new_local(model),
            tree_v: RwSignal::new(0),
            layout_v: RwSignal::new(0),
            search_v: RwSignal::new(0),
            width: RwSignal::new(0.0),
        }
    }
}

/// The canvas of `m`. `main` marks the page's flame graph: it records the perf measures,
/// installs the browser-test hook and has `data-testid="flamegraph"`.
#[component]
pub(crate) fn FlameCanvas(
    m: CanvasModel,
    style: Signal<Style>,
    testid: &'static str,
    label: &'static str,
    on_activate: Callback<u32>,
    #[prop(optional)] on_menu: Option<Callback<MenuAt>>,
    #[prop(optional)] main: bool,
    /// Set when new data arrives: the next draw ends the first-draw measure.
    #[prop(optional)]
    first_draw: Option<StoredValue<bool>>,
    /// Whether there is data to draw (nothing is drawn before); always when not given.
    #[prop(optional, into)]
    ready: Option<Signal<bool>>,
) -> impl IntoView {
    let CanvasModel {
        model,
        tree_v,
        layout_v,
        search_v,
        width,
    } = m;
    let canvas_ref = NodeRef::<html::Canvas>::new();
    let box_ref = NodeRef::<html::Div>::new();
    let hover = RwSignal::new(None::<u32>);
    let pointer = RwSignal::new((0.0f64, 0.0f64));
    let stats = RwSignal::new((0usize, 0usize));

    Effect::new(move |_| {
        tree_v.track();
        hover.set(None);
    });
    Effect::new(move |_| {
        layout_v.track();
        search_v.track();
        let (hovered, style) = (hover.get(), style.get());
        let Some(canvas) = canvas_ref.get() else {
            return;
        };
        if ready.is_some_and(|r| !r.get()) {
            return;
        }
        let paint = || model.with_value(|m| draw::draw(&canvas, m, hovered, style));
        let drawn = if main {
            perf::span(perf::names::DRAW, paint)
        } else {
            paint()
        };
        stats.set((model.with_value(|m| m.tree.len()), drawn));
        if main {
            if let Some(first) = first_draw.filter(|f| f.get_value()) {
                first.set_value(false);
                perf::measure(perf::names::FIRST_DRAW, perf::names::DATA);
            }
            perf::measure(perf::names::HOVER_DRAW, perf::names::HOVER);
            perf::measure(perf::names::ZOOM_DRAW, perf::names::ZOOM);
        }
    });
    watch_width(box_ref, width);

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
            if main {
                perf::mark(perf::names::HOVER);
            }
            hover.set(node);
        }
    };
    let on_click = move |ev: web_sys::MouseEvent| {
        if let Some(node) = node_at(&ev) {
            on_activate.run(node);
        }
    };
    let on_context = move |ev: web_sys::MouseEvent| {
        let (Some(menu), Some(node)) = (on_menu, node_at(&ev)) else {
            return;
        };
        ev.prevent_default();
        hover.set(Some(node));
        menu.run((node, f64::from(ev.offset_x()), f64::from(ev.offset_y())));
    };
    // The centre of a drawn node, for the tooltip and menu of the keyboard cursor.
    let centre_of = move |node: u32| {
        let orientation = style.get_untracked().orientation;
        model.with_value(|m| {
            let rows = m.max_row() + 1;
            m.rect_of(node).map(|r| {
                (
                    r.x + r.width / 2.0,
                    draw::row_top(r.depth, rows, orientation) + draw::ROW / 2.0,
                )
            })
        })
    };
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let orientation = style.get_untracked().orientation;
        let current = hover.get_untracked();
        let key = ev.key();
        let menu_key = key == "ContextMenu" || (key == "F10" && ev.shift_key());
        if let (true, Some(menu), Some(node)) = (menu_key, on_menu, current) {
            ev.prevent_default();
            if let Some((x, y)) = centre_of(node) {
                menu.run((node, x, y));
            }
            return;
        }
        let Some(dir) = arrow_step(&key, orientation) else {
            if key == "Enter"
                && let Some(node) = current
            {
                ev.prevent_default();
                on_activate.run(node);
            }
            return;
        };
        ev.prevent_default();
        let next = model.with_value(|m| step(&m.tree, &m.rects, current, dir));
        if let Some(node) = next.or(current) {
            if let Some(xy) = centre_of(node) {
                pointer.set(xy);
            }
            hover.set(Some(node));
        }
    };

    if main {
        hook::install_test_hook(model, canvas_ref, style);
    }

    view! {
        <div class="flame-box" node_ref=box_ref>
            <canvas data-testid=testid node_ref=canvas_ref role="img" tabindex="0"
                aria-label=label
                data-nodes=move || stats.get().0.to_string()
                data-drawn=move || stats.get().1.to_string()
                data-total=move || { tree_v.track(); model.with_value(|m| m.tree.total()).to_string() }
                data-selected=move || hover.get().map(|n| model.with_value(|m| m.tree.name(n).into_owned()))
                on:mousemove=on_move
                on:mouseleave=move |_| hover.set(None)
                on:click=on_click
                on:contextmenu=on_context
                on:keydown=on_key></canvas>
            <FlameTooltip model hover pointer width tree_v/>
        </div>
    }
}

/// The tree step of an arrow key: up and down go towards the root or the leaves as the
/// graph is drawn (icicle: root on top).
fn arrow_step(key: &str, orientation: Orientation) -> Option<Step> {
    let down = match orientation {
        Orientation::Icicle => Step::Child,
        Orientation::Flame => Step::Parent,
    };
    let up = match down {
        Step::Child => Step::Parent,
        _ => Step::Child,
    };
    match key {
        "ArrowDown" => Some(down),
        "ArrowUp" => Some(up),
        "ArrowLeft" => Some(Step::Left),
        "ArrowRight" => Some(Step::Right),
        _ => None,
    }
}

/// Keeps `width` at the box's CSS width, on mount and on window resizes.
fn watch_width(box_ref: NodeRef<html::Div>, width: RwSignal<f64>) {
    let measure = move || {
        if let Some(el) = box_ref.get_untracked() {
            let w = f64::from(el.client_width());
            if w > 0.0 && w != width.get_untracked() {
                width.set(w);
            }
        }
    };
    Effect::new(move |_| {
        if box_ref.get().is_some() {
            measure();
        }
    });
    let resize = window_event_listener(leptos::ev::resize, move |_| measure());
    on_cleanup(move || resize.remove());
}
