//! Drawing a laid-out flame graph on a 2D canvas: one filled rect per visible node (the
//! layout already culled the sub-pixel ones), labels where they fit, search and hover
//! highlights, and red/green for diffs.

use shared::{
    flame::{Rect, color_for, diff_color, diff_ratio},
    view::{DiffScale, Orientation},
};
use wasm_bindgen::JsCast as _;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use super::Model;

/// Row height in CSS pixels.
pub(crate) const ROW: f64 = 18.0;
const FONT: &str = "12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
/// Padding left of a label.
const PAD: f64 = 3.0;

/// How to draw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Style {
    /// Dark theme colours.
    pub(crate) dark: bool,
    /// Icicle (root on top) or flame (root at the bottom).
    pub(crate) orientation: Orientation,
    /// How to colour a diff.
    pub(crate) diff: DiffScale,
}

/// The top of `depth`'s row in a graph of `rows` rows.
pub(crate) fn row_top(depth: u16, rows: u16, orientation: Orientation) -> f64 {
    match orientation {
        Orientation::Icicle => f64::from(depth) * ROW,
        Orientation::Flame => f64::from(rows - 1 - depth) * ROW,
    }
}

/// The row at height `y` (CSS pixels from the canvas top), if any.
pub(crate) fn row_at(y: f64, rows: u16, orientation: Orientation) -> Option<u16> {
    if y < 0.0 {
        return None;
    }
    let row = (y / ROW) as u16;
    (row < rows).then(|| match orientation {
        Orientation::Icicle => row,
        Orientation::Flame => rows - 1 - row,
    })
}

/// Draws `model` on `canvas` at the canvas's CSS width; returns the number of rects drawn.
pub(crate) fn draw(
    canvas: &HtmlCanvasElement,
    model: &Model,
    hover: Option<u32>,
    style: Style,
) -> usize {
    let Some(ctx) = context(canvas) else { return 0 };
    let dpr = web_sys::window()
        .map_or(1.0, |w| w.device_pixel_ratio())
        .max(1.0);
    let rows = model.max_row() + 1;
    let (width, height) = (model.width, f64::from(rows) * ROW);
    let (px_w, px_h) = ((width * dpr).round() as u32, (height * dpr).round() as u32);
    if canvas.width() != px_w || canvas.height() != px_h {
        canvas.set_width(px_w);
        canvas.set_height(px_h);
        let _ = canvas
            .style()
            .set_property("height", &format!("{height}px"));
    }
    let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    ctx.clear_rect(0.0, 0.0, width, height);
    ctx.set_font(FONT);
    ctx.set_text_baseline("middle");
    let char_w = ctx.measure_text("M").map_or(7.2, |m| m.width()).max(1.0);
    let searching = model.search.matches.iter().any(|&m| m);
    let dim = if style.dark { "#3a3f47" } else { "#dcdcdc" };
    let mut fill = String::new();
    let mut colors = model.colors.borrow_mut();
    let palette = &mut colors[usize::from(style.dark)];
    for rect in &model.rects {
        let color = node_color(model, rect, searching, style, dim, palette);
        if color.as_ref() != fill.as_str() {
            ctx.set_fill_style_str(&color);
            fill.clear();
            fill.push_str(&color);
        }
        let y = row_top(rect.depth, rows, style.orientation);
        let w = (rect.width - 0.5).max(0.5);
        ctx.fill_rect(rect.x, y, w, ROW - 1.0);
        let chars = ((w - 2.0 * PAD) / char_w) as usize;
        if chars >= 3 {
            label(&ctx, model, rect, y, chars, &mut fill);
        }
    }
    if let Some(rect) = hover.and_then(|h| model.rects.iter().find(|r| r.node == h)) {
        ctx.set_stroke_style_str(if style.dark { "#ffffff" } else { "#111111" });
        ctx.set_line_width(1.5);
        let y = row_top(rect.depth, rows, style.orientation);
        ctx.stroke_rect(
            rect.x + 0.75,
            y + 0.75,
            (rect.width - 2.0).max(1.0),
            ROW - 2.5,
        );
    }
    model.rects.len()
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

/// The fill of one node: diff colour, dimmed (search misses), or its package colour
/// (from `palette`, filled in as frames are first drawn: never one per frame of the tree).
fn node_color<'a>(
    model: &'a Model,
    rect: &Rect,
    searching: bool,
    style: Style,
    dim: &'a str,
    palette: &mut [Option<String>],
) -> std::borrow::Cow<'a, str> {
    let node = model.tree.node(rect.node);
    if searching
        && !model
            .search
            .matches
            .get(rect.node as usize)
            .copied()
            .unwrap_or(false)
    {
        return dim.into();
    }
    if model.diff {
        let ratio = match style.diff {
            DiffScale::Relative => diff_ratio(node),
            DiffScale::Absolute if model.max_delta > 0 => {
                shared::flame::diff_delta(node) as f64 / model.max_delta as f64
            }
            DiffScale::Absolute => 0.0,
        };
        let (r, g, b) = diff_color(ratio);
        return format!("rgb({r},{g},{b})").into();
    }
    let Some(slot) = palette.get_mut(node.frame as usize) else {
        return dim.into();
    };
    slot.get_or_insert_with(|| {
        let (r, g, b) = color_for(&model.tree.frames()[node.frame as usize], style.dark);
        format!("rgb({r},{g},{b})")
    })
    .clone()
    .into()
}

/// Writes the node's name, cut to `chars` characters.
fn label(
    ctx: &CanvasRenderingContext2d,
    model: &Model,
    rect: &Rect,
    y: f64,
    chars: usize,
    fill: &mut String,
) {
    let name = model.tree.name(rect.node);
    let text: std::borrow::Cow<'_, str> = if name.chars().count() <= chars {
        name
    } else {
        let cut: String = name.chars().take(chars.saturating_sub(1)).collect();
        format!("{cut}…").into()
    };
    ctx.set_fill_style_str("#1b1b1b");
    fill.clear();
    let _ = ctx.fill_text(&text, rect.x + PAD, y + ROW / 2.0);
}
