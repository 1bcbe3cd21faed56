//! Compare (`/compare`): two selections, A (the baseline) and B, each with its own query,
//! range and selection, and the diff flame graph of B against A.

use leptos::prelude::*;

use crate::{
    components::{
        flame_graph::FlameGraph,
        metrics_graph::MetricsGraph,
        query_bar::{QueryBar, Which, load_profile_types},
    },
    pages::common::{
        CopyLink, STACKS_MAX_NODES, Status, StatusLine, load_series, load_stacks, side_params,
        units_of,
    },
    url_state::{History, UrlView, now_ms},
};

/// The Compare page.
#[component]
pub(crate) fn Compare() -> impl IntoView {
    let url = UrlView::new();
    let types = load_profile_types();
    // B starts as a copy of A.
    Effect::new(move |_| {
        let (a, b) = url.view.with(|v| (v.a.clone(), v.b.expression.is_empty()));
        if b && !a.expression.is_empty() {
            url.update(History::Replace, |v| v.b = a);
        }
    });

    let side = move |which: Which| {
        let (series, status) = load_series(url, which);
        let range = Memo::new(move |_| url.view.with(|v| which.of(v).range));
        let range = Signal::derive(move || range.get().resolve(now_ms()));
        let (unit, rate_unit) = units_of(url, which);
        let title = match which {
            Which::A => "A (baseline)",
            Which::B => "B (compared)",
        };
        view! {
            <div class="compare-side" data-testid=format!("side-{}", if which == Which::A { "a" } else { "b" })>
                <h2>{title}</h2>
                <QueryBar url which types/>
                <StatusLine status what="metrics"/>
                <MetricsGraph series=series.into() range unit=unit.into() rate_unit=rate_unit.into() url which status/>
            </div>
        }
    };

    // What the diff depends on; relative ranges resolve only when this changes.
    let key = Memo::new(move |_| url.view.with(|v| (v.a.clone(), v.b.clone(), v.max_nodes)));
    let params = Memo::new(move |_| {
        key.with(|(a, b, max_nodes)| {
            if a.expression.is_empty() || b.expression.is_empty() {
                return None;
            }
            let now = now_ms();
            let mut params = side_params(a, "_a", now);
            params.extend(side_params(b, "_b", now));
            params.push(("mode".into(), "diff".into()));
            let max_nodes = max_nodes.unwrap_or(STACKS_MAX_NODES);
            params.push(("max_nodes".into(), max_nodes.to_string()));
            Some(params)
        })
    });
    let (data, status) = load_stacks(params);

    view! {
        <section class="page" data-testid="page-compare">
            <h1>"Compare"</h1>
            <p class="hint">"Red grew from A to B, green shrank. Widths are B's values."</p>
            <div class="compare-sides">
                {side(Which::A)}
                {side(Which::B)}
            </div>
            <div class="row"><span class="spacer"></span><CopyLink url/></div>
            <StatusLine status what="diff"/>
            // An empty answer has no flame graph: the status line says so.
            <div style:display=move || (status.get() == Status::Empty).then_some("none")>
                <FlameGraph data=data.into() params url/>
            </div>
        </section>
    }
}
