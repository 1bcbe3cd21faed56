//! The page's view state lives in the URL: read it as a [`ViewState`], change it by
//! navigating (pushing for new selections, replacing for zoom and other small steps).

use std::rc::Rc;

use leptos::prelude::*;
use leptos_router::{
    NavigateOptions,
    hooks::{use_location, use_navigate},
};
use shared::view::ViewState;

/// How a change enters the browser history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum History {
    /// A new entry: Back returns to the previous view.
    Push,
    /// Replace the current entry (zoom steps, toggles, typing).
    Replace,
}

/// The router's navigate function, kept from when the page was created.
type Navigate = Rc<dyn Fn(&str, NavigateOptions)>;

/// The view state of the current URL, and a way to change it.
#[derive(Clone, Copy)]
pub(crate) struct UrlView {
    /// The current state.
    pub(crate) view: Memo<ViewState>,
    path: Memo<String>,
    navigate: StoredValue<Navigate, LocalStorage>,
    /// The query the page's own defaults last navigated to (`update_default`): while the
    /// URL still reads so, nobody has chosen anything and defaults may change it again.
    by_default: StoredValue<Option<String>>,
}

impl UrlView {
    /// Reads the state from the current location; call inside a page.
    pub(crate) fn new() -> Self {
        let location = use_location();
        let search = location.search;
        UrlView {
            view: Memo::new(move |_| ViewState::from_query(&search.get())),
            path: location.pathname,
            navigate: StoredValue::new_local(Rc::new(use_navigate())),
            by_default: StoredValue::new(None),
        }
    }

    /// The current state, untracked.
    pub(crate) fn get(&self) -> ViewState {
        self.view.get_untracked()
    }

    /// Applies `change` to the state and navigates to the resulting URL.
    pub(crate) fn update(&self, history: History, change: impl FnOnce(&mut ViewState)) {
        let mut next = self.get();
        change(&mut next);
        if next != self.get() {
            self.navigate_to(&next, history);
        }
    }

    /// Like `update(History::Replace, …)`, for a choice the page makes itself (the default
    /// profile type, the latest snapshot) rather than one the user made.
    pub(crate) fn update_default(&self, change: impl FnOnce(&mut ViewState)) {
        let mut next = self.get();
        change(&mut next);
        if next != self.get() {
            self.by_default.set_value(Some(next.to_query()));
            self.navigate_to(&next, History::Replace);
        }
    }

    /// Whether the view is still what the page opened on or its defaults made it: no
    /// query of the user's own, from a link or an action.
    pub(crate) fn untouched(&self) -> bool {
        let query = self.get().to_query();
        query.is_empty() || self.by_default.with_value(|d| d.as_deref() == Some(&query))
    }

    fn navigate_to(&self, next: &ViewState, history: History) {
        let query = next.to_query();
        let path = self.path.get_untracked();
        let url = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let navigate = self.navigate.get_value();
        navigate(
            &url,
            NavigateOptions {
                replace: history == History::Replace,
                scroll: false,
                ..NavigateOptions::default()
            },
        );
    }
}

impl UrlView {
    /// [`UrlView::update`] after the current event and the redraw it causes: for
    /// interactions whose feedback must not wait for the router (zoom steps).
    pub(crate) fn update_later(
        self,
        history: History,
        change: impl FnOnce(&mut ViewState) + 'static,
    ) {
        set_timeout(
            move || self.update(history, change),
            std::time::Duration::ZERO,
        );
    }
}

/// The current time in unix ms.
pub(crate) fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}
