//! The flame graph's tooltip: function, file, binary, total and self with their shares of
//! the whole and of the parent, and for diffs the baseline and the change.

use leptos::prelude::*;
use shared::{flame::NodeInfo, units::format_value};

use crate::flamegraph::Model;

/// The tooltip of the `hover`ed node at `pointer` (canvas CSS pixels) in a canvas `width` wide.
#[component]
pub(crate) fn FlameTooltip(
    model: StoredValue<Model, LocalStorage>,
    hover: RwSignal<Option<u32>>,
    pointer: RwSignal<(f64, f64)>,
    width: RwSignal<f64>,
    tree_v: RwSignal<u32>,
) -> impl IntoView {
    move || {
        let node = hover.get()?;
        tree_v.track();
        let (info, unit, diff) = model.with_value(|m| {
            (
                m.tree.get(node).map(|_| NodeInfo::of(&m.tree, node)),
                m.unit.clone(),
                m.diff,
            )
        });
        let info = info?;
        let (x, y) = pointer.get();
        let left = if x > width.get_untracked() * 0.6 {
            x - 330.0
        } else {
            x + 14.0
        };
        Some(view! {
            <div class="flame-tooltip" data-testid="flame-tooltip" role="status"
                style=format!("left:{}px;top:{}px", left.max(0.0), y + 16.0)>
                <div class="tt-name">{info.name.clone()}</div>
                {(!info.file.is_empty()).then(|| view! { <div class="tt-dim">{info.file.clone()}</div> })}
                {(!info.binary.is_empty()).then(|| view! { <div class="tt-dim">{format!("binary: {}", info.binary)}</div> })}
                <table>
                    <tr><th>"total"</th><td>{format!("{} ({:.2}% of total, {:.2}% of parent)",
                        format_value(info.total, &unit), info.of_total * 100.0, info.of_parent * 100.0)}</td></tr>
                    <tr><th>"self"</th><td>{format_value(info.self_value, &unit)}</td></tr>
                    {diff.then(|| view! {
                        <tr><th>"baseline"</th><td>{format_value(info.baseline_total, &unit)}</td></tr>
                        <tr><th>"change"</th><td>{format!("{} ({})", signed(info.delta, &unit), percent(info.ratio))}</td></tr>
                    })}
                </table>
            </div>
        })
    }
}

fn signed(value: i64, unit: &str) -> String {
    let text = format_value(value, unit);
    if value > 0 { format!("+{text}") } else { text }
}

fn percent(ratio: f64) -> String {
    if ratio.is_infinite() {
        "new".into()
    } else {
        format!("{:+.1}%", ratio * 100.0)
    }
}
