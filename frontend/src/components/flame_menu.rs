//! The menu of one flame-graph node (right click, the context-menu key or Shift+F10 on
//! the keyboard cursor): focus it, open its sandwich view, copy its function name, or hide
//! its frame (added to the `hide` filter).

use leptos::prelude::*;

use crate::{
    components::flame_canvas::MenuAt,
    url_state::{History, UrlView},
};

/// What the menu's actions need from the flame graph.
#[derive(Clone, Copy)]
pub(crate) struct MenuActions {
    /// The display name of a node.
    pub(crate) name_of: Callback<u32, String>,
    /// Zooms on a node.
    pub(crate) focus: Callback<u32>,
}

/// The menu at `open` (none: closed); every action closes it, as does Escape or a click
/// elsewhere.
#[component]
pub(crate) fn NodeMenu(
    open: RwSignal<Option<MenuAt>>,
    actions: MenuActions,
    url: UrlView,
) -> impl IntoView {
    let copied = RwSignal::new(None::<String>);
    let close = move || open.set(None);
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" {
            close();
        }
    });
    let clicks = window_event_listener(leptos::ev::click, move |_| close());
    on_cleanup(move || {
        keys.remove();
        clicks.remove();
    });
    let menu = move || {
        let (node, x, y) = open.get()?;
        let name = actions.name_of.run(node);
        let (sandwich, copy, hide) = (name.clone(), name.clone(), name.clone());
        Some(view! {
            <div class="flame-menu" role="menu" data-testid="flame-menu"
                aria-label=format!("Actions on {name}")
                style=format!("left:{}px;top:{}px", x.max(0.0), y + 10.0)
                on:click=|ev| ev.stop_propagation()>
                <div class="menu-title">{name.clone()}</div>
                <button type="button" role="menuitem" data-testid="menu-focus"
                    on:click=move |_| { close(); actions.focus.run(node); }>"Focus"</button>
                <button type="button" role="menuitem" data-testid="menu-sandwich"
                    on:click=move |_| {
                        close();
                        let name = sandwich.clone();
                        url.update(History::Push, |v| v.sandwich = name);
                    }>"Sandwich (callers and callees)"</button>
                <button type="button" role="menuitem" data-testid="menu-copy"
                    on:click=move |_| {
                        close();
                        copy_text(&copy);
                        copied.set(Some(copy.clone()));
                    }>"Copy function name"</button>
                <button type="button" role="menuitem" data-testid="menu-hide"
                    on:click=move |_| {
                        close();
                        let name = hide.clone();
                        url.update(History::Replace, |v| {
                            if !v.hide.contains(&name) {
                                v.hide.push(name);
                            }
                        });
                    }>"Hide this frame"</button>
            </div>
        })
    };
    view! {
        {menu}
        <p class="hint" data-testid="flame-copied" aria-live="polite">
            {move || copied.get().map(|name| format!("Copied \"{name}\" to the clipboard."))}
        </p>
    }
}

/// Puts `text` on the clipboard (the browser may refuse; the page says what was copied).
fn copy_text(text: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.navigator().clipboard().write_text(text);
    }
}
