//! The metrics graph of one side (SVG): a line per series of `query_range`, hover shows
//! each series' name and value at the pointer, a click selects that single profile (for
//! delta types, the bucket of profiles the point sums), a drag selects a range to merge.
//! The legend names series by the labels that differ between them; a click on an entry
//! isolates that series (`series=` in the URL), beyond 20 series the biggest 20 are drawn
//! and the rest counted as "+M more". With no points it says so instead of drawing axes.
//! Selections go to the URL.

use leptos::prelude::*;
use shared::{
    chart::{Scale, legend_names, nearest, shown_series, step_for, tick_label, ticks},
    labels::Labels,
    units::format_value,
};

use crate::{
    api::Series,
    components::query_bar::Which,
    pages::common::Status,
    url_state::{History, UrlView},
};

const W: f64 = 1000.0;
const H: f64 = 160.0;
const LEFT: f64 = 78.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;
const COLORS: [&str; 10] = [
    "#d9480f", "#1c7ed6", "#2b8a3e", "#ae3ec9", "#f08c00", "#0c8599", "#e64980", "#5c940d",
    "#4263eb", "#868e96",
];

fn color(i: usize) -> &'static str {
    COLORS[i % COLORS.len()]
}

/// The y value plotted: per second for delta types, the value for snapshots.
fn plotted(p: &crate::api::Point) -> f64 {
    p.value_per_second.unwrap_or(p.value as f64)
}

/// The graph of `series` over `range` (unix ms); `unit` formats values, `rate_unit`
/// (see `ProfileType::rate_unit`) the per-second rates of delta types.
#[component]
pub(crate) fn MetricsGraph(
    series: Signal<Vec<Series>>,
    range: Signal<(i64, i64)>,
    unit: Signal<String>,
    rate_unit: Signal<String>,
    url: UrlView,
    which: Which,
    status: RwSignal<Status>,
) -> impl IntoView {
    let svg_ref = NodeRef::<leptos::svg::Svg>::new();
    let hover_t = RwSignal::new(None::<i64>);
    let drag = RwSignal::new(None::<(f64, f64)>);
    let legend = Legend::new(series, url);
    let drawn = legend.drawn;
    let scales = Memo::new(move |_| {
        let (from, to) = range.get();
        let max = series.with(|s| {
            drawn.with(|d| {
                d.iter()
                    .flat_map(|&i| s[i].points.iter().map(plotted))
                    .fold(0.0f64, f64::max)
            })
        });
        (
            Scale::new((from as f64, to as f64), (LEFT, W)),
            Scale::new(
                (0.0, if max > 0.0 { max * 1.1 } else { 1.0 }),
                (H - BOTTOM, TOP),
            ),
        )
    });
    let x_of = move |ev: &web_sys::MouseEvent| -> Option<f64> {
        let svg = svg_ref.get_untracked()?;
        let bounds = svg.get_bounding_client_rect();
        (bounds.width() > 0.0)
            .then(|| (f64::from(ev.client_x()) - bounds.left()) / bounds.width() * W)
    };
    let times = move || {
        let mut times: Vec<i64> = series.with(|s| {
            drawn.with(|d| {
                d.iter()
                    .flat_map(|&i| s[i].points.iter().map(|p| p.t))
                    .collect()
            })
        });
        times.sort_unstable();
        times.dedup();
        times
    };
    let t_at = move |x: f64| scales.get_untracked().0.invert(x) as i64;

    let per_second = Memo::new(move |_| {
        series.with(|s| {
            s.iter()
                .flat_map(|s| &s.points)
                .any(|p| p.value_per_second.is_some())
        })
    });
    let on_down = move |ev: web_sys::MouseEvent| {
        if let Some(x) = x_of(&ev) {
            drag.set(Some((x, x)));
        }
    };
    let on_move = move |ev: web_sys::MouseEvent| {
        let Some(x) = x_of(&ev) else { return };
        let times = times();
        hover_t.set(nearest(&times, t_at(x)).map(|i| times[i]));
        drag.update(|d| {
            if let Some((_, end)) = d {
                *end = x;
            }
        });
    };
    let on_up = move |_| {
        let Some((start, end)) = drag.get_untracked() else {
            return;
        };
        drag.set(None);
        if (end - start).abs() < 4.0 {
            let times = times();
            let Some(t) = nearest(&times, t_at(start)).map(|i| times[i]) else {
                return;
            };
            // A snapshot point is one profile; a delta point is a bucket of them.
            let delta = per_second.get_untracked();
            let (from, to) = range.get_untracked();
            let step = step_for(from, to);
            url.update(History::Push, |v| {
                let s = which.of_mut(v);
                if delta {
                    s.merge = Some((t, t + step - 1));
                    s.selection = None;
                } else {
                    s.selection = Some(t);
                    s.merge = None;
                }
                v.zoom.clear();
            });
        } else {
            let (a, b) = (t_at(start.min(end)), t_at(start.max(end)));
            url.update(History::Push, |v| {
                let s = which.of_mut(v);
                s.merge = Some((a, b));
                s.selection = None;
                v.zoom.clear();
            });
        }
    };

    let lines = move || {
        let (x, y) = scales.get();
        let names = legend.names.get();
        let all = series.get();
        drawn.get().into_iter().map(|i| {
            let s = &all[i];
            let d: String = s.points.iter().enumerate().map(|(j, p)| {
                format!("{}{:.1},{:.1}", if j == 0 { "M" } else { " L" }, x.map(p.t as f64), y.map(plotted(p)))
            }).collect();
            let dots = (s.points.len() <= 120).then(|| s.points.iter().map(|p| view! {
                <circle cx=format!("{:.1}", x.map(p.t as f64)) cy=format!("{:.1}", y.map(plotted(p))) r="2.5"
                    fill=color(i)/>
            }).collect_view());
            view! {
                <path d=d fill="none" stroke=color(i) stroke-width="1.5" data-testid="metrics-line"
                    data-series=names[i].clone() vector-effect="non-scaling-stroke"/>
                {dots}
            }
        }).collect_view()
    };
    let axes = move || {
        let (x, y) = scales.get();
        let per_second = per_second.get();
        let unit = if per_second {
            rate_unit.get()
        } else {
            unit.get()
        };
        let (y0, y1) = y.domain;
        let (x0, x1) = x.domain;
        let y_ticks = ticks(y0, y1, 4).into_iter().map(|v| view! {
            <line x1=LEFT x2=W y1=y.map(v) y2=y.map(v) class="grid"/>
            <text x=LEFT - 4.0 y=y.map(v) + 4.0 text-anchor="end" class="tick">{tick_label(v, &unit, per_second)}</text>
        }).collect_view();
        let x_ticks = ticks(x0, x1, 6).into_iter().map(|t| view! {
            <text x=x.map(t) y=H - 4.0 text-anchor="middle" class="tick">{clock(t as i64, x1 - x0)}</text>
        }).collect_view();
        view! { {y_ticks} {x_ticks} }
    };
    let selection = move || {
        let (x, _) = scales.get();
        let side = url.view.with(|v| which.of(v).clone());
        let mark = side.selection.map(|t| view! {
            <line x1=x.map(t as f64) x2=x.map(t as f64) y1=TOP y2=H - BOTTOM class="selected" data-testid="selected-point"/>
        });
        let merge = side.merge.map(|(a, b)| {
            let (l, r) = (x.map(a as f64).max(LEFT), x.map(b as f64).min(W));
            view! { <rect x=l y=TOP width=(r - l).max(1.0) height=H - BOTTOM - TOP class="merge-range"/> }
        });
        let dragging = drag.get().map(|(a, b)| view! {
            <rect x=a.min(b) y=TOP width=(a - b).abs() height=H - BOTTOM - TOP class="dragging"/>
        });
        view! { {merge} {mark} {dragging} }
    };
    let readout = move || {
        let t = hover_t.get()?;
        let (unit, rate_unit) = (unit.get(), rate_unit.get());
        let names = legend.names.get();
        let rows = series.with(|s| {
            drawn
                .get()
                .into_iter()
                .filter_map(|i| {
                    let p = s[i].points.iter().find(|p| p.t == t)?;
                    let value = match p.value_per_second {
                        Some(ps) => format!(
                            "{} ({})",
                            format_value(p.value, &unit),
                            tick_label(ps, &rate_unit, true)
                        ),
                        None => format_value(p.value, &unit),
                    };
                    Some((i, names[i].clone(), value))
                })
                .collect::<Vec<_>>()
        });
        Some(view! {
            <div class="metrics-readout" data-testid="metrics-readout">
                <strong>{clock(t, 0.0)}</strong>
                {rows.into_iter().map(|(i, labels, value)| view! {
                    <div><span class="swatch" style=format!("background:{}", color(i))></span>
                    {labels}": "{value}</div>
                }).collect_view()}
            </div>
        })
    };
    let hover_line = move || {
        let (x, _) = scales.get();
        hover_t.get().map(|t| view! { <line x1=x.map(t as f64) x2=x.map(t as f64) y1=TOP y2=H - BOTTOM class="hover-line"/> })
    };

    let empty = Memo::new(move |_| series.with(|s| s.iter().all(|s| s.points.is_empty())));
    let empty_text = move || match status.get() {
        Status::Loading | Status::Idle => "Loading the metrics…",
        Status::Failed(_) => "No metrics: the request failed.",
        Status::Ready | Status::Empty => {
            "No data in this range: no profile of this selection was stored between these times."
        }
    };

    view! {
        <div class="metrics">
            <Show when=move || empty.get()>
                <p class="metrics-empty" data-testid="metrics-empty" role="status">{empty_text}</p>
            </Show>
            <Show when=move || !empty.get()>
            <svg node_ref=svg_ref class="metrics-graph" data-testid="metrics-graph"
                viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none" role="img"
                aria-label="Profile values over time: click a point to select one profile, drag to merge a range"
                on:mousedown=on_down on:mousemove=on_move on:mouseup=on_up
                on:mouseleave=move |_| { hover_t.set(None); drag.set(None); }>
                {axes}
                {selection}
                {lines}
                {hover_line}
            </svg>
            </Show>
            {readout}
            <LegendList legend url/>
        </div>
    }
}

/// The legend's state: a name per series, what is isolated, drawn and listed.
#[derive(Clone, Copy)]
struct Legend {
    /// Per series: the labels that differ between series.
    names: Memo<Vec<String>>,
    /// Per series: its full labels' text, what `series=` in the URL holds.
    keys: Memo<Vec<String>>,
    /// The series drawn.
    drawn: Memo<Vec<usize>>,
    /// The series listed, and how many are left out ("+M more").
    listed: Memo<(Vec<usize>, usize)>,
}

impl Legend {
    fn new(series: Signal<Vec<Series>>, url: UrlView) -> Legend {
        let names = Memo::new(move |_| {
            series.with(|s| legend_names(&s.iter().map(|s| &s.labels).collect::<Vec<&Labels>>()))
        });
        let keys = Memo::new(move |_| {
            series.with(|s| s.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>())
        });
        let totals = Memo::new(move |_| {
            series.with(|s| {
                s.iter()
                    .map(|s| s.points.iter().map(plotted).sum::<f64>())
                    .collect::<Vec<_>>()
            })
        });
        let isolated = Memo::new(move |_| {
            url.view
                .with(|v| keys.with(|k| k.iter().map(|k| v.series.contains(k)).collect::<Vec<_>>()))
        });
        let drawn = Memo::new(move |_| totals.with(|t| isolated.with(|i| shown_series(t, i).0)));
        let listed = Memo::new(move |_| {
            let (mut list, _) = totals.with(|t| shown_series(t, &[]));
            drawn.with(|d| list.extend(d));
            list.sort_unstable();
            list.dedup();
            let more = totals.with(Vec::len) - list.len();
            (list, more)
        });
        Legend {
            names,
            keys,
            drawn,
            listed,
        }
    }
}

/// The legend entries: a click isolates a series, a click on the isolated one shows all.
#[component]
fn LegendList(legend: Legend, url: UrlView) -> impl IntoView {
    move || {
        let (list, more) = legend.listed.get();
        if list.is_empty() {
            return None;
        }
        let (names, keys) = (legend.names.get(), legend.keys.get());
        let isolated = url.view.with(|v| v.series.clone());
        let entries = list.into_iter().map(|i| {
            let key = keys[i].clone();
            let pressed = isolated.contains(&key);
            let click_key = key.clone();
            view! {
                <li>
                    <button type="button" class="legend-entry" data-testid="legend-entry"
                        data-series=key.clone() title=key aria-pressed=pressed.to_string()
                        on:click=move |_| {
                            let key = click_key.clone();
                            url.update(History::Push, |v| {
                                v.series = if v.series == [key.clone()] { Vec::new() } else { vec![key] };
                            });
                        }>
                        <span class="swatch" style=format!("background:{}", color(i))></span>
                        {names[i].clone()}
                    </button>
                </li>
            }
        }).collect_view();
        Some(view! {
            <ul class="legend" data-testid="metrics-legend" aria-label="Series (click to isolate one)">
                {entries}
                {(more > 0).then(|| view! { <li class="hint" data-testid="legend-more">{format!("+{more} more")}</li> })}
                {(!isolated.is_empty()).then(|| view! {
                    <li><button type="button" data-testid="legend-all"
                        on:click=move |_| url.update(History::Push, |v| v.series.clear())>"Show all"</button></li>
                })}
            </ul>
        })
    }
}

/// A local time label, with the date when the span is over a day (or for readouts).
fn clock(ms: i64, span: f64) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    let time = format!(
        "{:02}:{:02}:{:02}",
        d.get_hours(),
        d.get_minutes(),
        d.get_seconds()
    );
    if span == 0.0 || span > 86_400_000.0 {
        format!(
            "{:04}-{:02}-{:02} {time}",
            d.get_full_year(),
            d.get_month() + 1,
            d.get_date()
        )
    } else {
        time
    }
}
