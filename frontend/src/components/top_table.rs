//! The top table: function, flat, flat %, cum, cum % of the filtered stacks, sortable by
//! any column (kept in the URL); clicking a row focuses that function in the flame graph,
//! its "sandwich" button opens the function's sandwich view. It is also the flame graph's
//! text alternative.
//!
//! The values are always exact. When the server folded part of the flame graph into
//! "other" (the stacks answer was trimmed), the browser's stacks cannot give exact
//! totals, so the table is fetched from `report=top` with the same selection and the
//! view's keep/drop/hide filters (a round trip per filter change); otherwise it is
//! computed in the browser from the untrimmed stacks, with no request.

use std::sync::Arc;

use leptos::{prelude::*, task::spawn_local};
use shared::{
    flame::{StackFilter, TopRow},
    ipc::StacksResponse,
    units::format_value,
    view::{Sort, SortColumn},
};

use crate::{
    api::{self, Aborter},
    flamegraph::Model,
    pages::common::query_url,
    url_state::{History, UrlView},
};

/// Rows asked of `report=top` (all functions of any real profile, so every sort is exact).
const SERVER_ROWS: usize = 20_000;

/// Where the top table's rows come from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TopSource {
    /// The browser's stacks are untrimmed: computed from them.
    Browser,
    /// Trimmed: waiting for `report=top`.
    Loading,
    /// Trimmed: the server's exact rows.
    Server(Arc<Vec<TopRow>>),
    /// Trimmed, and `report=top` failed with this message.
    Failed(String),
}

#[derive(serde::Deserialize)]
struct TopAnswer {
    rows: Vec<TopRow>,
}

/// The source of the top table of `data`, fetched from `report=top` with `params` (the
/// stacks' query parameters) and `filter` when `data` was trimmed.
pub(crate) fn load_exact_top(
    params: Memo<Option<Vec<(String, String)>>>,
    data: Signal<Option<Arc<StacksResponse>>>,
    filter: Memo<StackFilter>,
) -> RwSignal<TopSource> {
    let source = RwSignal::new(TopSource::Browser);
    let aborter = StoredValue::new_local(Aborter::default());
    Effect::new(move |_| {
        let trimmed = data.with(|d| d.as_ref().is_some_and(|d| d.meta.trimmed_nodes > 0));
        let (Some(mut params), true) = (params.get_untracked(), trimmed) else {
            aborter.with_value(Aborter::abort);
            source.set(TopSource::Browser);
            return;
        };
        filter.with(|f| {
            for (key, terms) in [
                ("keep", &f.keep_containing),
                ("drop", &f.drop_containing),
                ("hide", &f.hide_frames),
            ] {
                params.push((key.into(), terms.join(",")));
            }
        });
        params.push(("report".into(), "top".into()));
        params.push(("limit".into(), SERVER_ROWS.to_string()));
        let url = query_url(&params);
        source.set(TopSource::Loading);
        let aborter = aborter.get_value();
        spawn_local(async move {
            match api::get_json::<TopAnswer>(&url, Some(&aborter)).await {
                Ok(answer) => source.set(TopSource::Server(Arc::new(answer.rows))),
                Err(e) if e.is_abort() => {}
                Err(e) => source.set(TopSource::Failed(e.message())),
            }
        });
    });
    on_cleanup(move || aborter.with_value(Aborter::abort));
    source
}

/// Rows shown at most.
const MAX_ROWS: usize = 200;

/// The first [`MAX_ROWS`] rows by `sort` (ties by name); only those are copied.
fn sorted(rows: &[TopRow], sort: Sort) -> Vec<TopRow> {
    let mut rows: Vec<&TopRow> = rows.iter().collect();
    rows.sort_unstable_by(|a, b| {
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
    rows.into_iter().cloned().collect()
}

/// The table of `model`'s top rows, refreshed when `top_v` changes.
#[component]
pub(crate) fn TopTable(
    model: StoredValue<Model, LocalStorage>,
    top_v: RwSignal<u32>,
    source: RwSignal<TopSource>,
    url: UrlView,
    on_focus: Callback<String>,
) -> impl IntoView {
    let sort = Memo::new(move |_| url.view.with(|v| v.sort));
    let rows = move || {
        top_v.track();
        let sort = sort.get();
        source.with(|s| {
            model.with_value(|m| {
                let rows = match s {
                    TopSource::Server(rows) => sorted(rows, sort),
                    _ => sorted(&m.top, sort),
                };
                (rows, m.tree.total(), m.unit.clone())
            })
        })
    };
    let note = move || match source.get() {
        TopSource::Browser => None,
        TopSource::Loading => Some("Loading exact totals from the server…".to_owned()),
        TopSource::Server(_) => Some(
            "The flame graph is trimmed; these totals are exact, computed by the server."
                .to_owned(),
        ),
        TopSource::Failed(message) => Some(format!(
            "Exact totals failed ({message}); showing the trimmed flame graph's totals."
        )),
    };
    let source_name = move || match source.get() {
        TopSource::Browser => "browser",
        TopSource::Loading => "loading",
        TopSource::Server(_) => "server",
        TopSource::Failed(_) => "failed",
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
        <p class="hint" data-testid="top-source-note">{note}</p>
        <table class="top-table" data-testid="top-table" data-source=source_name>
            <caption>"Top functions (the flame graph as a table; click a row to focus it)"</caption>
            <thead>
                <tr>
                    {header(SortColumn::Function, "function")}
                    {header(SortColumn::Flat, "flat")}
                    <th scope="col">"flat %"</th>
                    {header(SortColumn::Cum, "cum")}
                    <th scope="col">"cum %"</th>
                    <th scope="col"><span class="visually-hidden">"actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    let (rows, total, unit) = rows();
                    let pct = move |v: i64| if total == 0 { 0.0 } else { v as f64 * 100.0 / total as f64 };
                    rows.into_iter().map(|row| {
                        let (function, key_function) = (row.function.clone(), row.function.clone());
                        let sandwich = row.function.clone();
                        view! {
                            <tr tabindex="0" data-function=row.function.clone()
                                data-flat=row.flat.to_string() data-cum=row.cum.to_string()
                                on:click=move |_| on_focus.run(function.clone())
                                on:keydown=move |ev| if ev.key() == "Enter" { on_focus.run(key_function.clone()) }>
                                <td class="fn" title=row.file.clone()>{row.function.clone()}</td>
                                <td class="num">{format_value(row.flat, &unit)}</td>
                                <td class="num">{format!("{:.2}%", pct(row.flat))}</td>
                                <td class="num">{format_value(row.cum, &unit)}</td>
                                <td class="num">{format!("{:.2}%", pct(row.cum))}</td>
                                <td>
                                    <button type="button" class="small" data-testid="top-sandwich"
                                        title="Callers and callees of this function"
                                        on:click=move |ev| {
                                            ev.stop_propagation();
                                            let name = sandwich.clone();
                                            url.update(History::Push, |v| v.sandwich = name);
                                        }>"sandwich"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()
                }}
            </tbody>
        </table>
    }
}
