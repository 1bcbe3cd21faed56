//! One component per page of the app.

use leptos::prelude::*;

/// Explore: query, metrics over time, flame graph.
#[component]
pub fn Explore() -> impl IntoView {
    view! {
        <section class="page" data-testid="page-explore">
            <h1>"Explore"</h1>
            <p class="hint">"Pick a profile type and a label selector to see its flame graph."</p>
        </section>
    }
}

/// Compare: two selections and their difference.
#[component]
pub fn Compare() -> impl IntoView {
    view! {
        <section class="page" data-testid="page-compare">
            <h1>"Compare"</h1>
            <p class="hint">"Choose two selections to see what changed between them."</p>
        </section>
    }
}

/// Targets: what Cinder scrapes and how that goes.
#[component]
pub fn Targets() -> impl IntoView {
    view! {
        <section class="page" data-testid="page-targets">
            <h1>"Targets"</h1>
            <p class="hint">"The programs Cinder scrapes, and their health."</p>
        </section>
    }
}

/// Any other path.
#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <section class="page" data-testid="page-not-found">
            <h1>"Not found"</h1>
            <p><a href="/">"Back to Explore"</a></p>
        </section>
    }
}
