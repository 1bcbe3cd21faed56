//! The top table: function, flat, flat %, cum, cum % of the filtered stacks, sortable by
//! any column (kept in the URL); clicking a row focuses that function in the flame graph.
//! It is also the flame graph's text alternative.

use leptos::prelude::*;
use shared::{
    flame::TopRow,
    units::format_value,
    view::{Sort, SortColumn},
};

use crate::{
    flamegraph::Model,
    url_state::{History, UrlView},
};

/// Rows shown at most.
const MAX_ROWS: usize = 200;

/// Sorts rows by `sort` (ties by name).
fn sorted(rows: &[TopRow], sort: Sort) -> Vec<TopRow> {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| {
        let order = match sort.column {
            SortColumn::Function => a.function.cmp(&b.function),
            SortColumn::Flat => a.flat.cmp(&b.flat),
            SortColumn::Cum => a.cum.cmp(&b.cum),
        };
        let order = if sort.descending {
            order.reverse()
        } else {
            order
        };
        order.then_with(|| a.function.cmp(&b.function))
    });
    rows.truncate(MAX_ROWS);
    rows
}

/// The table of `model`'s top rows, refreshed when `tree_v` changes.
#[component]
pub(crate) fn TopTable(
    model: StoredValue<Model, LocalStorage>,
    tree_v: RwSignal<u32>,
    url: UrlView,
    on_focus: Callback<String>,
) -> impl IntoView {
    let sort = Memo::new(move |_| url.view.with(|v| v.sort));
    let rows = move || {
        tree_v.track();
        let sort = sort.get();
        model.with_value(|m| (sorted(&m.top, sort), m.tree.total(), m.unit.clone()))
    };
    let header = move |column: SortColumn, label: &'static str| {
        let aria = move || {
            let s = sort.get();
            match (s.column == column, s.descending) {
                (false, _) => "none",
                (true, true) => "descending",
                (true, false) => "ascending",
            }
        };
        view! {
            <th aria-sort=aria scope="col">
                <button type="button" class="sort" data-testid=format!("sort-{label}")
                    on:click=move |_| url.update(History::Replace, |v| {
                        v.sort = if v.sort.column == column {
                            Sort { column, descending: !v.sort.descending }
                        } else {
                            Sort { column, descending: column != SortColumn::Function }
                        };
                    })>
                    {label}
                </button>
            </th>
        }
    };
    view! {
        <table class="top-table" data-testid="top-table">
            <caption>"Top functions (the flame graph as a table; click a row to focus it)"</caption>
            <thead>
                <tr>
                    {header(SortColumn::Function, "function")}
                    {header(SortColumn::Flat, "flat")}
                    <th scope="col">"flat %"</th>
                    {header(SortColumn::Cum, "cum")}
                    <th scope="col">"cum %"</th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    let (rows, total, unit) = rows();
                    let pct = move |v: i64| if total == 0 { 0.0 } else { v as f64 * 100.0 / total as f64 };
                    rows.into_iter().map(|row| {
                        let (function, key_function) = (row.function.clone(), row.function.clone());
                        view! {
                            <tr tabindex="0"
                                on:click=move |_| on_focus.run(function.clone())
                                on:keydown=move |ev| if ev.key() == "Enter" { on_focus.run(key_function.clone()) }>
                                <td class="fn" title=row.file.clone()>{row.function.clone()}</td>
                                <td class="num">{format_value(row.flat, &unit)}</td>
                                <td class="num">{format!("{:.2}%", pct(row.flat))}</td>
                                <td class="num">{format_value(row.cum, &unit)}</td>
                                <td class="num">{format!("{:.2}%", pct(row.cum))}</td>
                            </tr>
                        }
                    }).collect_view()
                }}
            </tbody>
        </table>
    }
}
