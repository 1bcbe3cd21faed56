//! Light and dark themes: follow the OS until the user picks one, remember the pick.

use leptos::prelude::*;

const STORAGE_KEY: &str = "cinder-theme";

/// The theme the user chose; `None` follows the operating system.
fn stored_theme() -> Option<String> {
    let storage = web_sys::window()?.local_storage().ok()??;
    storage.get_item(STORAGE_KEY).ok()?
}

fn os_prefers_dark() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .is_some_and(|m| m.matches())
}

/// Sets `data-theme` on `<html>`, which the stylesheet keys its colours on.
fn apply(theme: &str) {
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = root.set_attribute("data-theme", theme);
    }
}

fn remember(theme: &str) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
        let _ = storage.set_item(STORAGE_KEY, theme);
    }
}

/// The current theme, shared through context.
#[derive(Clone, Copy)]
struct Theme(RwSignal<String>);

/// Creates the theme state (call once, in the app root) and applies it to `<html>`.
pub fn provide_theme() {
    let initial = stored_theme()
        .unwrap_or_else(|| if os_prefers_dark() { "dark" } else { "light" }.to_owned());
    let theme = RwSignal::new(initial);
    Effect::new(move |_| apply(&theme.get()));
    provide_context(Theme(theme));
}

/// Whether the dark theme is on (canvas drawing needs to know).
pub fn use_dark() -> Signal<bool> {
    let Theme(theme) = expect_context();
    Signal::derive(move || theme.get() == "dark")
}

/// A button that flips between light and dark.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let Theme(theme) = expect_context();
    let flip = move |_| {
        let next = if theme.get_untracked() == "dark" {
            "light"
        } else {
            "dark"
        };
        remember(next);
        theme.set(next.to_owned());
    };
    view! {
        <button
            class="theme-toggle"
            type="button"
            data-testid="theme-toggle"
            aria-label=move || format!("Switch to {} theme", if theme.get() == "dark" { "light" } else { "dark" })
            on:click=flip
        >
            {move || if theme.get() == "dark" { "☀" } else { "☾" }}
        </button>
    }
}
