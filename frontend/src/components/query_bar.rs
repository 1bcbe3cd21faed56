//! The query bar of one side: profile type (friendly names), label selector with
//! autocompletion of label names and values, a time preset or absolute from/to, and
//! Search, which commits the draft to the URL (a new history entry).

use leptos::{prelude::*, task::spawn_local};
use shared::{
    complete::{Completion, apply, completion_at_end},
    query::ProfileType,
    view::{PRESETS, Side, TimeRange},
};

use crate::{
    api,
    url_state::{History, UrlView, now_ms},
};

/// Which side of the view a bar edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    /// `_a`.
    A,
    /// `_b`.
    B,
}

impl Which {
    /// The side of a view.
    pub(crate) fn of(self, view: &shared::view::ViewState) -> &Side {
        match self {
            Which::A => &view.a,
            Which::B => &view.b,
        }
    }

    /// The side of a view, to change.
    pub(crate) fn of_mut(self, view: &mut shared::view::ViewState) -> &mut Side {
        match self {
            Which::A => &mut view.a,
            Which::B => &mut view.b,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Which::A => "a",
            Which::B => "b",
        }
    }
}

/// Splits an expression into its profile type id and selector text, as
/// `shared::query`'s parser does.
pub(crate) fn split_expression(expression: &str) -> (String, String) {
    let (id, selector) = shared::query::split_query(expression);
    (id.to_owned(), selector.to_owned())
}

/// The type a fresh page shows: the server lists it first (CPU time when the newest CPU
/// profile has samples, else in-use memory, …; see `/api/v1/profile-types`).
fn default_type(list: &[ProfileType]) -> Option<&ProfileType> {
    list.first()
}

type Types = RwSignal<Option<Result<Vec<ProfileType>, api::ApiError>>>;

/// How many times a page asks again for the profile types while the server suggests no
/// CPU type yet (every `REPOLL`): a fresh start stores its heap seconds before its first
/// CPU profile, and an untouched page moves on to CPU once it is there.
const REPOLLS: u32 = 30;
const REPOLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The profile types of a page: asked again every 2 s while there are none yet (as on a
/// fresh start, so the page shows the first data as soon as it is stored), then every
/// `REPOLL` for a while as long as the server's suggestion is not CPU time.
pub(crate) fn load_profile_types() -> Types {
    let types = RwSignal::new(None);
    fetch_types(types, REPOLLS);
    types
}

fn fetch_types(types: Types, repolls: u32) {
    spawn_local(async move {
        let answer: Result<Vec<ProfileType>, _> =
            api::get_json("/api/v1/profile-types", None).await;
        let again = match &answer {
            Ok(list) if list.is_empty() => Some((std::time::Duration::from_secs(2), repolls)),
            Ok(list) if repolls > 0 && !list[0].is_cpu_time() => Some((REPOLL, repolls - 1)),
            _ => None,
        };
        // A page left meanwhile disposed the signal: stop asking.
        if types.try_set(Some(answer)).is_none()
            && let Some((delay, repolls)) = again
        {
            set_timeout(move || fetch_types(types, repolls), delay);
        }
    });
}

/// The bar for side `which` of `url`'s view.
#[component]
pub(crate) fn QueryBar(
    url: UrlView,
    which: Which,
    types: RwSignal<Option<Result<Vec<ProfileType>, api::ApiError>>>,
) -> impl IntoView {
    let side = Memo::new(move |_| url.view.with(|v| which.of(v).clone()));
    let initial = side.get_untracked();
    let (type_id, selector) = split_expression(&initial.expression);
    let profile_type = RwSignal::new(type_id);
    let selector = RwSignal::new(if selector.is_empty() {
        "{}".to_owned()
    } else {
        selector
    });
    let range = RwSignal::new(initial.range);
    // Follow the URL when it changes under us (Back, links).
    Effect::new(move |_| {
        let s = side.get();
        let (t, sel) = split_expression(&s.expression);
        profile_type.set(t);
        selector.set(if sel.is_empty() { "{}".into() } else { sel });
        range.set(s.range);
    });
    // A side without a query gets the server's suggestion (CPU time, or the first type)
    // at once, and follows a newer suggestion for as long as nobody has chosen anything.
    Effect::new(move |_| {
        if let Some(Ok(list)) = types.get()
            && let Some(t) = default_type(&list)
        {
            let expression = format!("{}{{}}", t.id());
            let current = url.view.with_untracked(|v| which.of(v).expression.clone());
            if current.is_empty() || (url.untouched() && current != expression) {
                url.update_default(|v| {
                    *which.of_mut(v) = Side {
                        expression,
                        range: which.of(v).range,
                        merge: None,
                        selection: None,
                    };
                });
            }
        }
    });

    let search = move || {
        let expression = format!(
            "{}{}",
            profile_type.get_untracked(),
            selector.get_untracked().trim()
        );
        let range = range.get_untracked();
        url.update(History::Push, move |v| {
            let s = which.of_mut(v);
            *s = Side {
                expression,
                range,
                merge: None,
                selection: None,
            };
            v.zoom.clear();
        });
    };

    let suggestions = RwSignal::new(Vec::<String>::new());
    let completion = RwSignal::new(None::<Completion>);
    let complete = move || {
        let text = selector.get_untracked();
        let c = completion_at_end(&text);
        completion.set(c.clone());
        let Some(c) = c else {
            suggestions.set(Vec::new());
            return;
        };
        let query = format!("{}{{}}", profile_type.get_untracked());
        let (start, end) = range.get_untracked().resolve(now_ms());
        spawn_local(async move {
            let (name, prefix) = match &c {
                Completion::Name { prefix, .. } => (None, prefix.clone()),
                Completion::Value { name, prefix, .. } => (Some(name.clone()), prefix.clone()),
            };
            let words = api::label_words(name.as_deref(), &query, start, end)
                .await
                .unwrap_or_default();
            let words: Vec<String> = words
                .into_iter()
                .filter(|w| w.starts_with(&prefix) && w != "__name__")
                .take(12)
                .collect();
            suggestions.set(words);
        });
    };
    let pick = move |word: String| {
        if let Some(c) = completion.get_untracked() {
            selector.update(|s| *s = apply(s, &c, &word));
        }
        suggestions.set(Vec::new());
        complete();
    };

    let id = move |name: &str| format!("{name}-{}", which.suffix());
    let type_options = move || match types.get() {
        None => view! { <option value="">"Loading…"</option> }.into_any(),
        Some(Err(e)) => {
            view! { <option value="">{format!("error: {}", e.message())}</option> }.into_any()
        }
        Some(Ok(list)) if list.is_empty() => {
            view! { <option value="">"No profiles stored yet"</option> }.into_any()
        }
        Some(Ok(list)) => list
            .into_iter()
            .map(|t| {
                let id = t.id();
                let selected = id == profile_type.get_untracked();
                view! { <option value=id.clone() selected=selected>{t.friendly_name()}</option> }
            })
            .collect_view()
            .into_any(),
    };
    let preset_value = move || match range.get() {
        TimeRange::Relative(ms) => {
            shared::duration::format_duration(std::time::Duration::from_millis(ms))
        }
        TimeRange::Absolute { .. } => "absolute".to_owned(),
    };
    let bound = move |end: bool| {
        let (from, to) = range.get().resolve(now_ms());
        to_local_input(if end { to } else { from })
    };
    let set_bound = move |end: bool, text: String| {
        let Some(ms) = from_local_input(&text) else {
            return;
        };
        let (from, to) = range.get_untracked().resolve(now_ms());
        range.set(if end {
            TimeRange::Absolute { from, to: ms }
        } else {
            TimeRange::Absolute { from: ms, to }
        });
    };

    view! {
        <form class="query-bar" data-testid=id("query-bar")
            on:submit=move |ev| { ev.prevent_default(); search(); }>
            <label class="field">
                <span>"Profile type"</span>
                <select data-testid=id("profile-type")
                    on:change=move |ev| profile_type.set(event_target_value(&ev))
                    prop:value=move || profile_type.get()>
                    {type_options}
                </select>
            </label>
            <div class="field selector">
                <label for=id("selector")>"Labels"</label>
                <input id=id("selector") type="text" data-testid=id("selector") autocomplete="off"
                    spellcheck="false" placeholder="{job=\"api\"}"
                    prop:value=move || selector.get()
                    on:input=move |ev| { selector.set(event_target_value(&ev)); complete(); }
                    on:focus=move |_| complete()
                    on:keydown=move |ev| if ev.key() == "Escape" { suggestions.set(Vec::new()); }/>
                <Show when=move || !suggestions.with(Vec::is_empty)>
                    <ul class="suggestions" role="listbox" data-testid=id("suggestions")>
                        {move || suggestions.get().into_iter().map(|w| {
                            let word = w.clone();
                            view! { <li role="option"><button type="button" on:click=move |_| pick(word.clone())>{w}</button></li> }
                        }).collect_view()}
                    </ul>
                </Show>
            </div>
            <label class="field">
                <span>"Range"</span>
                <select data-testid=id("preset") prop:value=preset_value
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        if let Ok(d) = shared::duration::parse_duration(&value) {
                            range.set(TimeRange::Relative(d.as_millis() as u64));
                        } else {
                            let (from, to) = range.get_untracked().resolve(now_ms());
                            range.set(TimeRange::Absolute { from, to });
                        }
                    }>
                    {PRESETS.iter().map(|(value, label)| view! { <option value=*value>{*label}</option> }).collect_view()}
                    <option value="absolute">"Absolute"</option>
                </select>
            </label>
            <label class="field">
                <span>"From"</span>
                <input type="datetime-local" step="1" data-testid=id("from") prop:value=move || bound(false)
                    on:change=move |ev| set_bound(false, event_target_value(&ev))/>
            </label>
            <label class="field">
                <span>"To"</span>
                <input type="datetime-local" step="1" data-testid=id("to") prop:value=move || bound(true)
                    on:change=move |ev| set_bound(true, event_target_value(&ev))/>
            </label>
            <button type="submit" class="primary" data-testid=id("search")>"Search"</button>
        </form>
    }
}

/// Unix ms → `YYYY-MM-DDTHH:MM:SS` in local time, as `datetime-local` inputs want.
fn to_local_input(ms: i64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    )
}

/// The inverse of [`to_local_input`].
fn from_local_input(text: &str) -> Option<i64> {
    let ms = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(text)).get_time();
    ms.is_finite().then_some(ms as i64)
}
