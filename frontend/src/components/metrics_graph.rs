//! The metrics graph of one side (SVG): a line per series of `query_range`, hover shows
//! the values at the pointer, a click selects that single profile (for delta types, the
//! bucket of profiles the point sums), a drag selects a range to merge. Selections go to
//! the URL.

use leptos::prelude::*;
use shared::{
    chart::{Scale, nearest, step_for, ticks},
    units::format_value,
};

use crate::{
    api::Series,
    components::query_bar::Which,
    url_state::{History, UrlView},
};

const W: f64 = 1000.0;
const H: f64 = 160.0;
const LEFT: f64 = 78.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;
const COLORS: [&str; 6] = [
    "#d9480f", "#1c7ed6", "#2b8a3e", "#ae3ec9", "#f08c00", "#0c8599",
];

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
) -> impl IntoView {
    let svg_ref = NodeRef::<leptos::svg::Svg>::new();
    let hover_t = RwSignal::new(None::<i64>);
    let drag = RwSignal::new(None::<(f64, f64)>);
    let scales = Memo::new(move |_| {
        let (from, to) = range.get();
        let max = series.with(|s| {
            s.iter()
                .flat_map(|s| s.points.iter().map(plotted))
                .fold(0.0f64, f64::max)
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
            s.iter()
                .flat_map(|s| s.points.iter().map(|p| p.t))
                .collect()
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
        series.get().into_iter().enumerate().map(|(i, s)| {
            let d: String = s.points.iter().enumerate().map(|(j, p)| {
                format!("{}{:.1},{:.1}", if j == 0 { "M" } else { " L" }, x.map(p.t as f64), y.map(plotted(p)))
            }).collect();
            let dots = (s.points.len() <= 120).then(|| s.points.iter().map(|p| view! {
                <circle cx=format!("{:.1}", x.map(p.t as f64)) cy=format!("{:.1}", y.map(plotted(p))) r="2.5"
                    fill=COLORS[i % COLORS.len()]/>
            }).collect_view());
            view! {
                <path d=d fill="none" stroke=COLORS[i % COLORS.len()] stroke-width="1.5"
                    vector-effect="non-scaling-stroke"/>
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
            <text x=LEFT - 4.0 y=y.map(v) + 4.0 text-anchor="end" class="tick">{y_label(v, &unit, per_second)}</text>
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
        let rows = series.with(|s| {
            s.iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let p = s.points.iter().find(|p| p.t == t)?;
                    let value = match p.value_per_second {
                        Some(ps) => format!(
                            "{} ({})",
                            format_value(p.value, &unit),
                            y_label(ps, &rate_unit, true)
                        ),
                        None => format_value(p.value, &unit),
                    };
                    Some((i, s.labels.to_string(), value))
                })
                .collect::<Vec<_>>()
        });
        Some(view! {
            <div class="metrics-readout" data-testid="metrics-readout">
                <strong>{clock(t, 0.0)}</strong>
                {rows.into_iter().map(|(i, labels, value)| view! {
                    <div><span class="swatch" style=format!("background:{}", COLORS[i % COLORS.len()])></span>
                    {labels}" "{value}</div>
                }).collect_view()}
            </div>
        })
    };
    let hover_line = move || {
        let (x, _) = scales.get();
        hover_t.get().map(|t| view! { <line x1=x.map(t as f64) x2=x.map(t as f64) y1=TOP y2=H - BOTTOM class="hover-line"/> })
    };

    view! {
        <div class="metrics">
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
            {readout}
        </div>
    }
}

/// A y-axis label: CPU time per second reads as cores, other rates get `/s`.
fn y_label(v: f64, unit: &str, per_second: bool) -> String {
    match (per_second, unit) {
        (true, "nanoseconds") => format!("{} cores", short(v / 1e9)),
        (true, _) => format!("{}/s", format_value(v as i64, unit)),
        (false, _) => format_value(v as i64, unit),
    }
}

/// A compact number: 1.2k, 3.4M, 0.25.
fn short(v: f64) -> String {
    let a = v.abs();
    match a {
        _ if a >= 1e9 => format!("{:.1}G", v / 1e9),
        _ if a >= 1e6 => format!("{:.1}M", v / 1e6),
        _ if a >= 1e3 => format!("{:.1}k", v / 1e3),
        _ if a >= 10.0 || a == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.2}"),
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
