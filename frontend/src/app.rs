//! The application shell: header, navigation, sign-in, theme toggle, and the routes.

use leptos::prelude::*;
use leptos_router::{
    components::{A, Route, Router, Routes},
    path,
};

use crate::{
    auth::SignIn,
    pages,
    theme::{ThemeToggle, provide_theme},
};

/// The root component mounted on `<body>`.
#[component]
pub fn App() -> impl IntoView {
    provide_theme();
    view! {
        <Router>
            <header class="shell-header" data-testid="shell-header">
                <a class="brand" href="/">
                    <span class="brand-mark" aria-hidden="true">"▲"</span>
                    <span class="brand-name">"Cinder"</span>
                </a>
                <nav class="shell-nav" aria-label="Main">
                    <A href="/" exact=true>"Explore"</A>
                    <A href="/compare">"Compare"</A>
                    <A href="/targets">"Targets"</A>
                </nav>
                <SignIn/>
                <ThemeToggle/>
            </header>
            <main class="shell-main">
                <Routes fallback=pages::NotFound>
                    <Route path=path!("/") view=pages::explore::Explore/>
                    <Route path=path!("/compare") view=pages::compare::Compare/>
                    <Route path=path!("/targets") view=pages::targets::Targets/>
                </Routes>
            </main>
        </Router>
    }
}
