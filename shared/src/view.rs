//! The UI's view state and its URL query string, both ways: what makes a copied link open
//! exactly the same view.
//!
//! Parca's names are used where Parca has one (`expression_a`, `from_a`, `to_a`,
//! `time_selection_a`, `merge_from_a`, `merge_to_a`, `selection_a`, and `_b` for the
//! comparison side); the rest are Cinder's own: `sum_by`, `group_by`, `keep`, `drop`,
//! `hide`, `search`, `zoom`, `orientation`, `invert`, `diff`, `sort`, `sandwich`,
//! `series` and `max_nodes`. Lists are
//! repeated parameters (`keep=a&keep=b`), so any text round-trips. Defaults are left out.

use std::time::Duration;

use crate::duration::{format_duration, parse_duration};

/// The time presets of the query bar, in order.
pub const PRESETS: &[(&str, &str)] = &[
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
];

/// The time range a side looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeRange {
    /// The last `n` milliseconds before now (`time_selection_a=relative:15m`).
    Relative(u64),
    /// Fixed unix-millisecond bounds (`from_a`, `to_a`).
    Absolute {
        /// Start, unix ms.
        from: i64,
        /// End, unix ms.
        to: i64,
    },
}

impl Default for TimeRange {
    fn default() -> Self {
        TimeRange::Relative(3_600_000)
    }
}

impl TimeRange {
    /// The bounds in unix ms, relative ranges ending at `now_ms`.
    pub fn resolve(self, now_ms: i64) -> (i64, i64) {
        match self {
            TimeRange::Relative(ms) => (now_ms.saturating_sub(ms as i64), now_ms),
            TimeRange::Absolute { from, to } => (from, to),
        }
    }
}

/// One selection: the query, its time range, and the part of it the profile is read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Side {
    /// The query expression, e.g. `process_cpu:…:delta{job="api"}`; empty when unset.
    pub expression: String,
    /// The range of the metrics graph.
    pub range: TimeRange,
    /// A dragged sub-range to merge (`merge_from_a`, `merge_to_a`), unix ms.
    pub merge: Option<(i64, i64)>,
    /// The one profile picked by clicking a point (`selection_a`, its unix ms); it wins
    /// over `merge`.
    pub selection: Option<i64>,
}

impl Side {
    /// The time range to merge when no single profile is selected.
    pub fn merge_range(&self, now_ms: i64) -> (i64, i64) {
        self.merge.unwrap_or_else(|| self.range.resolve(now_ms))
    }

    /// The same side with a relative range made absolute at `now_ms`.
    pub fn pinned(&self, now_ms: i64) -> Side {
        let (from, to) = self.range.resolve(now_ms);
        Side {
            range: TimeRange::Absolute { from, to },
            ..self.clone()
        }
    }
}

/// Which way the flame graph grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Orientation {
    /// Root on top, callees below (the default).
    #[default]
    Icicle,
    /// Root at the bottom, callees above.
    Flame,
}

/// How a diff flame graph colours change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DiffScale {
    /// By relative change (percent of the baseline).
    #[default]
    Relative,
    /// By absolute change, relative to the largest change.
    Absolute,
}

/// A column of the top table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortColumn {
    /// Function name.
    Function,
    /// Flat value.
    #[default]
    Flat,
    /// Cumulative value.
    Cum,
}

/// How the top table is sorted: a column, descending or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    /// The column.
    pub column: SortColumn,
    /// Biggest (or last in name order) first.
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            column: SortColumn::Flat,
            descending: true,
        }
    }
}

/// Everything a page shows that a link must restore.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewState {
    /// The main selection (Explore), or the baseline A (Compare).
    pub a: Side,
    /// The comparison side B (Compare only).
    pub b: Side,
    /// Label names the metrics graph sums by; empty keeps every series apart.
    pub sum_by: Vec<String>,
    /// Label names the server groups the flame graph by.
    pub group_by: Vec<String>,
    /// Keep stacks containing one of these.
    pub keep: Vec<String>,
    /// Drop stacks containing one of these.
    pub drop: Vec<String>,
    /// Hide frames matching one of these.
    pub hide: Vec<String>,
    /// The flame-graph search term.
    pub search: String,
    /// The zoomed node, as display names from the root's child down.
    pub zoom: Vec<String>,
    /// Icicle or flame.
    pub orientation: Orientation,
    /// Leaves at the root.
    pub invert: bool,
    /// Relative or absolute diff colouring.
    pub diff: DiffScale,
    /// The top table's order.
    pub sort: Sort,
    /// The function whose sandwich view (callers above, callees below) is shown; empty
    /// for none.
    pub sandwich: String,
    /// The metrics-graph series isolated by a legend click, as their labels' text
    /// (`{job="api", instance="a"}`); empty shows every series.
    pub series: Vec<String>,
    /// The flame graph's node budget asked of the server (`max_nodes` of `report=stacks`);
    /// `None` leaves the UI's default.
    pub max_nodes: Option<u64>,
}

impl ViewState {
    /// Reads a query string (with or without its leading `?`). Unknown parameters and
    /// values that do not parse are ignored, so any URL opens something.
    pub fn from_query(query: &str) -> ViewState {
        let mut view = ViewState::default();
        let mut abs_a = (None, None);
        let mut abs_b = (None, None);
        let (mut rel_a, mut rel_b) = (None, None);
        let (mut merge_a, mut merge_b) = ((None, None), (None, None));
        for (key, value) in parse_pairs(query) {
            let ms = || value.parse::<i64>().ok();
            match key.as_str() {
                "expression_a" => view.a.expression = value,
                "expression_b" => view.b.expression = value,
                "from_a" => abs_a.0 = ms(),
                "to_a" => abs_a.1 = ms(),
                "from_b" => abs_b.0 = ms(),
                "to_b" => abs_b.1 = ms(),
                "time_selection_a" => rel_a = parse_relative(&value),
                "time_selection_b" => rel_b = parse_relative(&value),
                "merge_from_a" => merge_a.0 = ms(),
                "merge_to_a" => merge_a.1 = ms(),
                "merge_from_b" => merge_b.0 = ms(),
                "merge_to_b" => merge_b.1 = ms(),
                "selection_a" => view.a.selection = ms(),
                "selection_b" => view.b.selection = ms(),
                "sum_by" => push_nonempty(&mut view.sum_by, value),
                "group_by" => push_nonempty(&mut view.group_by, value),
                "keep" => push_nonempty(&mut view.keep, value),
                "drop" => push_nonempty(&mut view.drop, value),
                "hide" => push_nonempty(&mut view.hide, value),
                "zoom" => push_nonempty(&mut view.zoom, value),
                "search" => view.search = value,
                "orientation" if value == "flame" => view.orientation = Orientation::Flame,
                "invert" => view.invert = value == "true" || value == "1",
                "diff" if value == "absolute" => view.diff = DiffScale::Absolute,
                "sort" => view.sort = parse_sort(&value).unwrap_or_default(),
                "sandwich" => view.sandwich = value,
                "series" => push_nonempty(&mut view.series, value),
                "max_nodes" => view.max_nodes = value.parse().ok().filter(|&n| n > 0),
                _ => {}
            }
        }
        view.a.range = range_of(rel_a, abs_a);
        view.b.range = range_of(rel_b, abs_b);
        view.a.merge = pair(merge_a);
        view.b.merge = pair(merge_b);
        view
    }

    /// The canonical query string (without `?`): parameters in a fixed order, defaults
    /// left out. [`ViewState::from_query`] reads it back to an equal state.
    pub fn to_query(&self) -> String {
        let mut out = Query::default();
        side_params(&mut out, &self.a, "_a");
        side_params(&mut out, &self.b, "_b");
        for (key, list) in [
            ("sum_by", &self.sum_by),
            ("group_by", &self.group_by),
            ("keep", &self.keep),
            ("drop", &self.drop),
            ("hide", &self.hide),
        ] {
            list.iter().for_each(|v| out.push(key, v));
        }
        if !self.search.is_empty() {
            out.push("search", &self.search);
        }
        self.zoom.iter().for_each(|v| out.push("zoom", v));
        if self.orientation == Orientation::Flame {
            out.push("orientation", "flame");
        }
        if self.invert {
            out.push("invert", "true");
        }
        if self.diff == DiffScale::Absolute {
            out.push("diff", "absolute");
        }
        if self.sort != Sort::default() {
            out.push("sort", &sort_text(self.sort));
        }
        if !self.sandwich.is_empty() {
            out.push("sandwich", &self.sandwich);
        }
        self.series.iter().for_each(|v| out.push("series", v));
        if let Some(n) = self.max_nodes {
            out.push("max_nodes", &n.to_string());
        }
        out.0
    }

    /// The same view with relative ranges pinned at `now_ms` (side B only when it has a
    /// query): what "copy link" shares.
    pub fn pinned(&self, now_ms: i64) -> ViewState {
        let b = if self.b.expression.is_empty() {
            self.b.clone()
        } else {
            self.b.pinned(now_ms)
        };
        ViewState {
            a: self.a.pinned(now_ms),
            b,
            ..self.clone()
        }
    }
}

/// Appends the parameters of one side.
fn side_params(out: &mut Query, side: &Side, suffix: &str) {
    if !side.expression.is_empty() {
        out.push(&format!("expression{suffix}"), &side.expression);
    }
    match side.range {
        range if range == TimeRange::default() => {}
        TimeRange::Relative(ms) => out.push(
            &format!("time_selection{suffix}"),
            &format!("relative:{}", format_duration(Duration::from_millis(ms))),
        ),
        TimeRange::Absolute { from, to } => {
            out.push(&format!("from{suffix}"), &from.to_string());
            out.push(&format!("to{suffix}"), &to.to_string());
        }
    }
    if let Some((from, to)) = side.merge {
        out.push(&format!("merge_from{suffix}"), &from.to_string());
        out.push(&format!("merge_to{suffix}"), &to.to_string());
    }
    if let Some(t) = side.selection {
        out.push(&format!("selection{suffix}"), &t.to_string());
    }
}

/// An absolute range when both bounds are given and no relative one is; else relative.
fn range_of(relative: Option<u64>, absolute: (Option<i64>, Option<i64>)) -> TimeRange {
    match (relative, absolute) {
        (Some(ms), _) => TimeRange::Relative(ms),
        (None, (Some(from), Some(to))) => TimeRange::Absolute { from, to },
        _ => TimeRange::default(),
    }
}

fn pair<T>((a, b): (Option<T>, Option<T>)) -> Option<(T, T)> {
    Some((a?, b?))
}

/// `relative:15m` → 900 000 ms; zero and unparsable durations are ignored.
fn parse_relative(text: &str) -> Option<u64> {
    let duration = parse_duration(text.strip_prefix("relative:")?).ok()?;
    let ms = u64::try_from(duration.as_millis()).ok()?;
    (ms > 0 && ms <= i64::MAX as u64).then_some(ms)
}

fn push_nonempty(list: &mut Vec<String>, value: String) {
    if !value.is_empty() {
        list.push(value);
    }
}

fn sort_text(sort: Sort) -> String {
    let name = match sort.column {
        SortColumn::Function => "function",
        SortColumn::Flat => "flat",
        SortColumn::Cum => "cum",
    };
    if sort.descending {
        format!("-{name}")
    } else {
        name.to_owned()
    }
}

fn parse_sort(text: &str) -> Option<Sort> {
    let (descending, name) = match text.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, text),
    };
    let column = match name {
        "function" => SortColumn::Function,
        "flat" => SortColumn::Flat,
        "cum" => SortColumn::Cum,
        _ => return None,
    };
    Some(Sort { column, descending })
}

/// A query string being written.
#[derive(Default)]
struct Query(String);

impl Query {
    fn push(&mut self, key: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&encode(value));
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), as
/// `encodeURIComponent` does.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes and `+` (a space in forms); invalid UTF-8 is replaced.
pub fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && hex_pair(bytes[i + 1], bytes[i + 2]).is_some() => {
                out.extend(hex_pair(bytes[i + 1], bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

/// The decoded `key=value` pairs of a query string, in order.
pub fn parse_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn default_view_is_the_empty_query() {
        assert_eq!(ViewState::default().to_query(), "");
        assert_eq!(ViewState::from_query(""), ViewState::default());
        assert_eq!(ViewState::from_query("?"), ViewState::default());
    }

    #[test]
    fn parca_names_and_our_own() {
        let q = "?expression_a=process_cpu%3Asamples%3Acount%3Acpu%3Ananoseconds%3Adelta%7Bjob%3D%22api%22%7D\
                 &from_a=1000&to_a=5000&merge_from_a=2000&merge_to_a=3000&selection_a=2500\
                 &time_selection_b=relative:15m&keep=main&keep=a%2Cb&search=lock+x&zoom=main.main\
                 &zoom=main.work&orientation=flame&invert=true&diff=absolute&sort=cum&sandwich=main.work&series=%7Bjob%3D%22a%22%7D\
                 &max_nodes=5000&unknown=1";
        let view = ViewState::from_query(q);
        assert_eq!(
            view.a.expression,
            r#"process_cpu:samples:count:cpu:nanoseconds:delta{job="api"}"#
        );
        assert_eq!(
            view.a.range,
            TimeRange::Absolute {
                from: 1000,
                to: 5000
            }
        );
        assert_eq!(view.a.merge, Some((2000, 3000)));
        assert_eq!(view.a.selection, Some(2500));
        assert_eq!(view.b.range, TimeRange::Relative(900_000));
        assert_eq!(view.keep, ["main", "a,b"]);
        assert_eq!(view.search, "lock x");
        assert_eq!(view.zoom, ["main.main", "main.work"]);
        assert_eq!(view.orientation, Orientation::Flame);
        assert!(view.invert);
        assert_eq!(view.diff, DiffScale::Absolute);
        assert_eq!(
            view.sort,
            Sort {
                column: SortColumn::Cum,
                descending: false
            }
        );
        assert_eq!(view.sandwich, "main.work");
        assert_eq!(view.series, [r#"{job="a"}"#]);
        assert_eq!(view.max_nodes, Some(5000));
        assert_eq!(ViewState::from_query(&view.to_query()), view);
    }

    #[test]
    fn bad_values_fall_back_to_defaults() {
        let view = ViewState::from_query(
            "from_a=x&to_a=5&time_selection_b=relative:0s&selection_a=nope&sort=size&orientation=up&%zz=1&max_nodes=0&max_nodes=x",
        );
        assert_eq!(view, ViewState::default());
        // Only one absolute bound is no range.
        assert_eq!(
            ViewState::from_query("from_a=1").a.range,
            TimeRange::default()
        );
    }

    #[test]
    fn relative_ranges_resolve_and_pin() {
        let view = ViewState::from_query("time_selection_a=relative:15m&selection_a=7");
        assert_eq!(view.a.range.resolve(1_000_000), (100_000, 1_000_000));
        let pinned = view.pinned(1_000_000);
        assert_eq!(
            pinned.a.range,
            TimeRange::Absolute {
                from: 100_000,
                to: 1_000_000
            }
        );
        assert_eq!(pinned.a.selection, Some(7));
        assert_eq!(
            pinned.to_query(),
            "from_a=100000&to_a=1000000&selection_a=7"
        );
        assert_eq!(view.a.merge_range(1_000_000), (100_000, 1_000_000));
    }

    #[test]
    fn encoding_matches_encode_uri_component() {
        assert_eq!(encode("a b/c{d=\"é\"}"), "a%20b%2Fc%7Bd%3D%22%C3%A9%22%7D");
        assert_eq!(decode("a%20b+c%2"), "a b c%2");
        assert_eq!(decode("%C3%A9%ZZ"), "é%ZZ");
    }

    fn text() -> impl Strategy<Value = String> {
        any::<String>()
    }

    fn nonempty_list() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(".{1,8}", 0..3)
    }

    fn time_range() -> impl Strategy<Value = TimeRange> {
        prop_oneof![
            (1u64..10_000_000_000).prop_map(TimeRange::Relative),
            (any::<i64>(), any::<i64>()).prop_map(|(from, to)| TimeRange::Absolute { from, to }),
        ]
    }

    fn side() -> impl Strategy<Value = Side> {
        (
            text(),
            time_range(),
            proptest::option::of((any::<i64>(), any::<i64>())),
            proptest::option::of(any::<i64>()),
        )
            .prop_map(|(expression, range, merge, selection)| Side {
                expression,
                range,
                merge,
                selection,
            })
    }

    fn view() -> impl Strategy<Value = ViewState> {
        (
            (side(), side(), nonempty_list(), nonempty_list()),
            (nonempty_list(), nonempty_list(), nonempty_list(), text()),
            (nonempty_list(), any::<bool>(), any::<bool>(), any::<bool>()),
            (0u8..3, any::<bool>()),
            (
                text(),
                nonempty_list(),
                proptest::option::of(1u64..u64::MAX),
            ),
        )
            .prop_map(
                |(
                    (a, b, sum_by, group_by),
                    (keep, drop, hide, search),
                    (zoom, flame, invert, abs),
                    (col, descending),
                    (sandwich, series, max_nodes),
                )| {
                    ViewState {
                        a,
                        b,
                        sum_by,
                        group_by,
                        keep,
                        drop,
                        hide,
                        search,
                        zoom,
                        orientation: if flame {
                            Orientation::Flame
                        } else {
                            Orientation::Icicle
                        },
                        invert,
                        diff: if abs {
                            DiffScale::Absolute
                        } else {
                            DiffScale::Relative
                        },
                        sort: Sort {
                            column: [SortColumn::Function, SortColumn::Flat, SortColumn::Cum]
                                [usize::from(col)],
                            descending,
                        },
                        sandwich,
                        series,
                        max_nodes,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn url_state_round_trips(view in view()) {
            let query = view.to_query();
            prop_assert_eq!(ViewState::from_query(&query), view.clone());
            prop_assert_eq!(ViewState::from_query(&format!("?{query}")), view);
        }

        #[test]
        fn any_query_string_parses_to_a_canonical_state(query in ".{0,60}") {
            let view = ViewState::from_query(&query);
            prop_assert_eq!(ViewState::from_query(&view.to_query()), view);
        }
    }
}
