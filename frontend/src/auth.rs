//! Signing in with the API token (`--api-token`): a small field in the header keeps the
//! token in the tab's `sessionStorage` (gone when the tab closes), and every API request
//! sends it as `Authorization: Bearer <token>`.

use leptos::prelude::*;

const STORAGE_KEY: &str = "cinder-api-token";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

/// The token of this tab, if the user signed in.
pub(crate) fn token() -> Option<String> {
    storage()?
        .get_item(STORAGE_KEY)
        .ok()?
        .filter(|t| !t.is_empty())
}

/// The `Authorization` header value for API requests.
pub(crate) fn authorization() -> Option<String> {
    token().map(|t| format!("Bearer {t}"))
}

fn store(token: Option<&str>) {
    if let Some(storage) = storage() {
        let _ = match token {
            Some(token) => storage.set_item(STORAGE_KEY, token),
            None => storage.remove_item(STORAGE_KEY),
        };
    }
}

/// The header's sign-in: a password field and a button, or "Sign out" once a token is kept.
#[component]
pub fn SignIn() -> impl IntoView {
    let signed_in = RwSignal::new(token().is_some());
    let draft = RwSignal::new(String::new());
    let sign_in = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = draft.get_untracked().trim().to_owned();
        if !text.is_empty() {
            store(Some(&text));
            draft.set(String::new());
            signed_in.set(true);
        }
    };
    let sign_out = move |_| {
        store(None);
        signed_in.set(false);
    };
    view! {
        <Show
            when=move || signed_in.get()
            fallback=move || view! {
                <form class="sign-in" data-testid="sign-in" on:submit=sign_in>
                    <input
                        type="password"
                        data-testid="api-token"
                        placeholder="API token"
                        aria-label="API token"
                        autocomplete="off"
                        prop:value=move || draft.get()
                        on:input=move |ev| draft.set(event_target_value(&ev))
                    />
                    <button type="submit" data-testid="sign-in-button">"Sign in"</button>
                </form>
            }
        >
            <button
                class="sign-out"
                type="button"
                data-testid="sign-out"
                title="Forget the API token kept for this tab"
                on:click=sign_out
            >
                "Sign out"
            </button>
        </Show>
    }
}
