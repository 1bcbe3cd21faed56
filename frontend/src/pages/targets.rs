//! Targets (`/targets`): per job, what Cinder scrapes and how that goes (refreshed every
//! few seconds), and a form to add, edit or delete targets created through the API, with
//! the API's validation errors shown beside the offending field.

use std::{collections::BTreeMap, time::Duration};

use leptos::{prelude::*, task::spawn_local};

use shared::targets::Source;

use crate::api::{self, ApiError, Job, Target, TargetForm};

/// Profiles the form offers (Parca's defaults).
const PROFILES: &[&str] = &["process_cpu", "memory", "goroutine", "block", "mutex"];

/// The Targets page.
#[component]
pub(crate) fn Targets() -> impl IntoView {
    let jobs = RwSignal::new(None::<Result<Vec<Job>, ApiError>>);
    let refresh = move || {
        spawn_local(async move {
            jobs.set(Some(api::targets().await));
        });
    };
    refresh();
    if let Ok(handle) = set_interval_with_handle(refresh, Duration::from_secs(2)) {
        on_cleanup(move || handle.clear());
    }
    let editing = RwSignal::new(None::<Target>);

    let tables = move || {
        match jobs.get() {
        None => view! { <p class="loading" role="status">"Loading targets…"</p> }.into_any(),
        Some(Err(e)) => view! { <p class="error" role="alert" data-testid="error">{e.message()}</p> }.into_any(),
        Some(Ok(list)) if list.is_empty() => view! {
            <p class="hint" data-testid="empty-hint">"No targets yet: add one below, or start Cinder with a scrape config."</p>
        }.into_any(),
        Some(Ok(list)) => list.into_iter().map(|job| view! {
            <JobTable job editing on_change=Callback::new(move |()| refresh())/>
        }).collect_view().into_any(),
    }
    };

    view! {
        <section class="page" data-testid="page-targets">
            <h1>"Targets"</h1>
            <p class="hint">"The programs Cinder scrapes, and their health."</p>
            {tables}
            <TargetEditor editing on_saved=Callback::new(move |()| refresh())/>
        </section>
    }
}

#[component]
fn JobTable(job: Job, editing: RwSignal<Option<Target>>, on_change: Callback<()>) -> impl IntoView {
    let rows = job.targets.into_iter().map(|t| {
        let target = t.clone();
        let id = t.id.clone();
        let labels = t.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect::<Vec<_>>().join(", ");
        let last = t.last_scrape.map(ago).unwrap_or_else(|| "never".into());
        let duration = t.last_duration_ms.map(|d| format!("{d} ms")).unwrap_or_default();
        let from_api = t.source == Source::Api;
        let health = t.health.as_str();
        view! {
            <tr data-testid="target-row" data-url=t.url.clone() data-health=health>
                <td class="url">{t.url.clone()}</td>
                <td class="labels">{labels}</td>
                <td><span class=format!("health health-{health}") data-testid="target-health">{health}</span></td>
                <td>{last}</td>
                <td class="num">{duration}</td>
                <td class="error">{t.last_error.clone().unwrap_or_default()}</td>
                <td class="actions">
                    {from_api.then(|| view! {
                        <button type="button" data-testid="target-edit" on:click=move |_| editing.set(Some(target.clone()))>"Edit"</button>
                        <button type="button" class="danger" data-testid="target-delete" on:click=move |_| {
                            let id = id.clone();
                            spawn_local(async move {
                                let _ = api::delete_target(&id).await;
                                on_change.run(());
                            });
                        }>"Delete"</button>
                    })}
                </td>
            </tr>
        }
    }).collect_view();
    view! {
        <table class="targets" data-testid="targets-table" data-job=job.job.clone()>
            <caption>{format!("Job {}", job.job)}</caption>
            <thead><tr>
                <th scope="col">"URL"</th><th scope="col">"Labels"</th><th scope="col">"Health"</th>
                <th scope="col">"Last scrape"</th><th scope="col">"Duration"</th><th scope="col">"Last error"</th>
                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// The add/edit form.
#[component]
fn TargetEditor(editing: RwSignal<Option<Target>>, on_saved: Callback<()>) -> impl IntoView {
    let form = RwSignal::new(blank());
    let labels = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(t) = editing.get() {
            form.set(from_target(&t));
            labels.set(
                t.labels
                    .iter()
                    .filter(|(k, _)| !matches!(*k, "job" | "instance" | "__name__"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            error.set(None);
        }
    });
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut body = form.get_untracked();
        match parse_labels(&labels.get_untracked()) {
            Ok(l) => body.labels = l,
            Err(e) => return error.set(Some(e)),
        }
        let id = editing.get_untracked().map(|t| t.id);
        busy.set(true);
        spawn_local(async move {
            let result = api::save_target(id.as_deref(), &body).await;
            busy.set(false);
            match result {
                Ok(()) => {
                    error.set(None);
                    editing.set(None);
                    form.set(blank());
                    labels.set(String::new());
                    on_saved.run(());
                }
                Err(e) => error.set(Some(e)),
            }
        });
    };
    // The error for `field`, shown beside it.
    let field_error = move |field: &'static str| {
        move || {
            error.get().filter(|e| e.field.as_deref().is_some_and(|f| f == field || f.starts_with(&format!("{field}."))))
                .map(|e| view! { <span class="field-error error" data-testid=format!("error-{field}") role="alert">{e.message()}</span> })
        }
    };
    let other_error = move || {
        error.get().filter(|e| !e.field.as_deref().is_some_and(|f| {
            ["job", "address", "scheme", "interval", "timeout", "profiles", "labels"].iter().any(|k| f == *k || f.starts_with(&format!("{k}.")))
        })).map(|e| view! { <p class="error" role="alert" data-testid="form-error">{e.message()}</p> })
    };
    let text = move |field: &'static str,
                     label: &'static str,
                     placeholder: &'static str,
                     get: fn(&TargetForm) -> String,
                     set: fn(&mut TargetForm, String)| {
        view! {
            <label class="field">
                <span>{label}</span>
                <input type="text" name=field data-testid=format!("target-{field}") placeholder=placeholder
                    prop:value=move || form.with(get)
                    on:input=move |ev| { let v = event_target_value(&ev); form.update(|f| set(f, v)); }/>
                {field_error(field)}
            </label>
        }
    };
    view! {
        <form class="target-form" data-testid="target-form" on:submit=save>
            <h2>{move || if editing.with(Option::is_some) { "Edit target" } else { "Add a target" }}</h2>
            {text("job", "Job", "api", |f| f.job.clone(), |f, v| f.job = v)}
            {text("address", "Address (host:port)", "127.0.0.1:6060", |f| f.address.clone(), |f, v| f.address = v)}
            <label class="field">
                <span>"Scheme"</span>
                <select data-testid="target-scheme" prop:value=move || form.with(|f| f.scheme.clone())
                    on:change=move |ev| { let v = event_target_value(&ev); form.update(|f| f.scheme = v); }>
                    <option value="http">"http"</option>
                    <option value="https">"https"</option>
                </select>
                {field_error("scheme")}
            </label>
            {text("interval", "Interval", "10s", |f| f.interval.clone(), |f, v| f.interval = v)}
            {text("timeout", "Timeout", "default", |f| f.timeout.clone(), |f, v| f.timeout = v)}
            <fieldset class="field profiles">
                <legend>"Profiles"</legend>
                {PROFILES.iter().map(|&p| view! {
                    <label class="check">
                        <input type="checkbox" data-testid=format!("target-profile-{p}")
                            prop:checked=move || form.with(|f| f.profiles.iter().any(|x| x == p))
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                form.update(|f| {
                                    f.profiles.retain(|x| x != p);
                                    if on { f.profiles.push(p.to_owned()); }
                                });
                            }/>
                        {p}
                    </label>
                }).collect_view()}
                {field_error("profiles")}
            </fieldset>
            <label class="field">
                <span>"Labels"</span>
                <input type="text" data-testid="target-labels" placeholder="env=prod, team=core"
                    prop:value=move || labels.get() on:input=move |ev| labels.set(event_target_value(&ev))/>
                {field_error("labels")}
            </label>
            {other_error}
            <div class="row">
                <button type="submit" class="primary" data-testid="target-save" disabled=move || busy.get()>
                    {move || if editing.with(Option::is_some) { "Save" } else { "Add target" }}
                </button>
                <Show when=move || editing.with(Option::is_some)>
                    <button type="button" on:click=move |_| { editing.set(None); form.set(blank()); error.set(None); }>"Cancel"</button>
                </Show>
            </div>
        </form>
    }
}

fn blank() -> TargetForm {
    TargetForm {
        scheme: "http".into(),
        interval: "10s".into(),
        profiles: PROFILES.iter().map(|p| (*p).to_owned()).collect(),
        ..TargetForm::default()
    }
}

/// A form prefilled from a listed target's definition.
fn from_target(t: &Target) -> TargetForm {
    TargetForm {
        job: t.job.clone(),
        address: t.address.clone(),
        scheme: if t.scheme.is_empty() {
            "http".into()
        } else {
            t.scheme.clone()
        },
        interval: t.interval.clone(),
        timeout: t.timeout.clone(),
        profiles: t.profiles.clone(),
        labels: BTreeMap::new(),
    }
}

/// `a=b, c=d` → labels; a piece without `=` is an error on the `labels` field.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for piece in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = piece.split_once('=') else {
            return Err(ApiError {
                error: "invalid labels".into(),
                detail: format!("{piece:?} is not name=value"),
                field: Some("labels".into()),
                status: 0,
            });
        };
        out.insert(k.trim().to_owned(), v.trim().trim_matches('"').to_owned());
    }
    Ok(out)
}

/// `12 s ago` from a unix-ms time.
fn ago(ms: i64) -> String {
    let seconds = ((crate::url_state::now_ms() - ms) / 1000).max(0);
    match seconds {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s => format!("{} h ago", s / 3600),
    }
}
