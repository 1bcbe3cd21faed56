//! A hook for browser tests: `window.__cinderFlame.locate(name)` says where a node is
//! drawn, so a test can point the real mouse at it.

use leptos::{html, prelude::*};
use wasm_bindgen::closure::Closure;

use super::{
    Model,
    draw::{self, Style},
};

/// `window.__cinderFlame.locate(name)`: the page coordinates of the centre of the widest
/// drawn node with that display name, or null. Browser tests point at nodes with it.
pub(crate) fn install_test_hook(
    model: StoredValue<Model, LocalStorage>,
    canvas_ref: NodeRef<html::Canvas>,
    style: Signal<Style>,
) {
    let locate = Closure::<dyn Fn(String) -> wasm_bindgen::JsValue>::new(move |name: String| {
        let Some(canvas) = canvas_ref.get_untracked() else {
            return wasm_bindgen::JsValue::NULL;
        };
        let orientation = style.get_untracked().orientation;
        let found = model.with_value(|m| {
            let rows = m.max_row() + 1;
            m.rects
                .iter()
                .filter(|r| m.tree.name(r.node) == name)
                .max_by(|a, b| a.width.total_cmp(&b.width))
                .map(|r| {
                    (
                        r.x + r.width / 2.0,
                        draw::row_top(r.depth, rows, orientation) + draw::ROW / 2.0,
                    )
                })
        });
        let Some((x, y)) = found else {
            return wasm_bindgen::JsValue::NULL;
        };
        let bounds = canvas.get_bounding_client_rect();
        js_sys::Array::of2(&(bounds.left() + x).into(), &(bounds.top() + y).into()).into()
    });
    let hook = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&hook, &"locate".into(), locate.as_ref());
    if let Some(window) = web_sys::window() {
        let _ = js_sys::Reflect::set(&window, &"__cinderFlame".into(), &hook);
    }
    let keep = StoredValue::new_local(Some(locate));
    on_cleanup(move || keep.set_value(None));
}
