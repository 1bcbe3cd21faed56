//! Cinder's web UI: a Leptos client-side app compiled to WebAssembly by trunk.

mod app;
mod pages;
mod theme;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
