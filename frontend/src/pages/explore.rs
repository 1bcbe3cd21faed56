//! Explore (`/`): query bar, metrics graph, flame graph and top table of one selection,
//! with pprof download and a share link.

use leptos::prelude::*;

use crate::{
    components::{
        flame_graph::FlameGraph,
        metrics_graph::MetricsGraph,
        query_bar::{QueryBar, Which, load_profile_types},
    },
    pages::common::{
        CopyLink, STACKS_MAX_NODES, Status, StatusLine, default_to_latest_snapshot, load_series,
        load_stacks, query_url, side_params, type_of, units_of,
    },
    url_state::{History, UrlView, now_ms},
};

/// The Explore page.
#[component]
pub(crate) fn Explore() -> impl IntoView {
    let url = UrlView::new();
    let types = load_profile_types();
    let (series, series_status) = load_series(url, Which::A);
    default_to_latest_snapshot(url, Which::A, series);

    // What the profile depends on; relative ranges resolve only when this changes.
    let key = Memo::new(move |_| {
        url.view
            .with(|v| (v.a.clone(), v.group_by.clone(), v.max_nodes))
    });
    let params = Memo::new(move |_| {
        key.with(|(a, group_by, max_nodes)| {
            if a.expression.is_empty() {
                return None;
            }
            let snapshot = type_of(&a.expression).is_some_and(|t| t.is_snapshot());
            if snapshot && a.selection.is_none() && a.merge.is_none() {
                return None; // waits for the latest profile to be picked
            }
            let mut params = side_params(a, "", now_ms());
            let mode = if a.selection.is_some() {
                "single"
            } else {
                "merge"
            };
            params.push(("mode".into(), mode.into()));
            if !group_by.is_empty() {
                params.push(("group_by".into(), group_by.join(",")));
            }
            let max_nodes = max_nodes.unwrap_or(STACKS_MAX_NODES);
            params.push(("max_nodes".into(), max_nodes.to_string()));
            Some(params)
        })
    });
    let (data, status) = load_stacks(params);
    let range = Memo::new(move |_| url.view.with(|v| v.a.range));
    let range = Signal::derive(move || range.get().resolve(now_ms()));
    let (unit, rate_unit) = units_of(url, Which::A);
    let pprof = move || {
        params.get().map(|mut p| {
            p.push(("report".into(), "pprof".into()));
            query_url(&p)
        })
    };
    let selection_text = move || {
        url.view.with(|v| match (v.a.selection, v.a.merge) {
            (Some(_), _) => "Showing one profile (click the graph elsewhere to pick another)".to_owned(),
            (None, Some(_)) => "Showing the merge of the dragged range".to_owned(),
            (None, None) => "Showing the merge of the whole range (click a point for one profile, drag for a range)".to_owned(),
        })
    };

    view! {
        <section class="page" data-testid="page-explore">
            <h1>"Explore"</h1>
            <QueryBar url which=Which::A types/>
            <div class="row">
                <label class="field">
                    <span>"Sum by"</span>
                    <input type="text" data-testid="sum-by" placeholder="label, label"
                        prop:value=move || url.view.with(|v| v.sum_by.join(", "))
                        on:change=move |ev| {
                            let list = split_list(&event_target_value(&ev));
                            url.update(History::Push, |v| v.sum_by = list);
                        }/>
                </label>
                <label class="field">
                    <span>"Group flame graph by"</span>
                    <input type="text" data-testid="group-by" placeholder="label"
                        prop:value=move || url.view.with(|v| v.group_by.join(", "))
                        on:change=move |ev| {
                            let list = split_list(&event_target_value(&ev));
                            url.update(History::Push, |v| v.group_by = list);
                        }/>
                </label>
                <span class="spacer"></span>
                {move || pprof().map(|href| view! {
                    <a class="button" href=href download="profile.pb.gz" data-testid="download-pprof">"Download pprof"</a>
                })}
                <CopyLink url/>
            </div>
            <StatusLine status=series_status what="metrics"/>
            <MetricsGraph series=series.into() range unit=unit.into() rate_unit=rate_unit.into() url which=Which::A status=series_status/>
            <p class="hint">{selection_text}</p>
            <StatusLine status what="profile"/>
            // An empty answer has no flame graph: the status line says so.
            <div style:display=move || (status.get() == Status::Empty).then_some("none")>
                <FlameGraph data=data.into() params url/>
            </div>
        </section>
    }
}

/// `a, b,,c` → `[a, b, c]`.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}
