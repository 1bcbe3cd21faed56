//! Cinder's web UI: a Leptos client-side app compiled to WebAssembly by trunk.

// A binary: nothing is reachable from outside, and `#[component]` emits `pub` items.
#![allow(unreachable_pub)]

mod api;
mod app;
mod auth;
mod components;
mod flamegraph;
mod pages;
mod perf;
mod theme;
mod url_state;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
