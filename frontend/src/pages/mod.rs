//! One module per page of the app, and what they share.

pub(crate) mod common;
pub(crate) mod compare;
pub(crate) mod explore;
pub(crate) mod targets;

use leptos::prelude::*;

/// Any other path.
#[component]
pub(crate) fn NotFound() -> impl IntoView {
    view! {
        <section class="page" data-testid="page-not-found">
            <h1>"Not found"</h1>
            <p><a href="/">"Back to Explore"</a></p>
        </section>
    }
}
