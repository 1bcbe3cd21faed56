//! The label model: label names and sets ([`Labels`]), and label matchers
//! ([`Matcher`], [`Selector`]) with Prometheus semantics.
//!
//! This module owns what a series' identity is and how a selector picks series. The
//! textual syntax of selectors lives in [`crate::query`]; the quoting used to print
//! label values (Prometheus/Go style escaping) lives here so both agree.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The label that holds a series' profile name (Prometheus' metric name label).
pub const NAME_LABEL: &str = "__name__";

/// Whether `name` is a valid Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_label_name_char)
}

/// Whether `c` may appear in a label name after its first character.
pub(crate) fn is_label_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Turns an agent's label name (e.g. an OpenTelemetry attribute such as
/// `service.name`) into a valid label name the way Prometheus does: every character
/// outside `[a-zA-Z0-9_]` becomes `_`, and a leading digit gets a `_` prefix.
/// Returns `None` for an empty name.
pub fn sanitize_label_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let prefix = if name.starts_with(|c: char| c.is_ascii_digit()) {
        "_"
    } else {
        ""
    };
    let body = name
        .chars()
        .map(|c| if is_label_name_char(c) { c } else { '_' });
    Some(prefix.chars().chain(body).collect())
}

/// Quotes `value` as a double-quoted string literal with Go/Prometheus escapes
/// (`\\`, `\"`, `\n`, `\t`, `\r`, and `\xHH`/`\uHHHH` for other control characters).
/// [`crate::query`] parses the result back to `value`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        push_escaped(&mut out, c);
    }
    out.push('"');
    out
}

/// Appends `c` to `out`, escaped for the inside of a double-quoted literal.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '"' => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if c.is_ascii_control() => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if c.is_control() => {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// A set of labels: (name, value) pairs sorted by name, each name at most once.
///
/// Serializes as a JSON object (`{"job":"api"}`) and displays as
/// `{job="api", zone="eu"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// An empty label set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets label `name` to `value`, returning the previous value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(name.into(), value.into())
    }

    /// Removes label `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// Whether label `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The labels in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The profile name, i.e. the value of [`NAME_LABEL`].
    pub fn profile_name(&self) -> Option<&str> {
        self.get(NAME_LABEL)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Labels {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        self.0
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(labels: Labels) -> Self {
        labels.0
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, (name, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={}", quote(value))?;
        }
        f.write_char('}')
    }
}

/// How a [`Matcher`] compares a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    NotEq,
    /// `=~`: matches the (fully anchored) regular expression.
    Re,
    /// `!~`: does not match the (fully anchored) regular expression.
    NotRe,
}

impl MatchOp {
    /// The operator as written in a selector: `=`, `!=`, `=~` or `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::NotEq => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }

    /// Whether the operator takes a regular expression.
    pub fn is_regex(self) -> bool {
        matches!(self, MatchOp::Re | MatchOp::NotRe)
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a [`Matcher`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// The label name is not `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {}", quote(.0))]
    InvalidLabelName(String),
    /// The value of a `=~`/`!~` matcher is not a valid regular expression.
    #[error("invalid regular expression {}: {message}", quote(.regex))]
    InvalidRegex {
        /// The regular expression as given.
        regex: String,
        /// What is wrong with it.
        message: String,
    },
}

/// One label matcher such as `job="api"` or `instance=~"10\\..*"`.
///
/// Follows Prometheus: regular expressions are fully anchored (and `.` matches
/// newlines, as in Prometheus' `^(?s:…)$`), and a missing label matches as the empty
/// string, so `foo=""` selects series without `foo` and `foo!=""` requires it.
#[derive(Clone, Debug)]
pub struct Matcher {
    name: String,
    op: MatchOp,
    value: String,
    /// The anchored, compiled regex for [`MatchOp::Re`]/[`MatchOp::NotRe`].
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; fails on an invalid label name or regular expression.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let (name, value) = (name.into(), value.into());
        if !is_valid_label_name(&name) {
            return Err(MatcherError::InvalidLabelName(name));
        }
        let regex = op
            .is_regex()
            .then(|| compile_anchored(&value))
            .transpose()?;
        Ok(Self {
            name,
            op,
            value,
            regex,
        })
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operator.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value (the regular expression's source for regex operators).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a label value (`None` if the label is missing) satisfies the matcher.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or("");
        match (&self.op, &self.regex) {
            (MatchOp::Eq, _) => value == self.value,
            (MatchOp::NotEq, _) => value != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(value),
            (MatchOp::NotRe, Some(re)) => !re.is_match(value),
            (MatchOp::Re | MatchOp::NotRe, None) => unreachable!("regex matchers are compiled"),
        }
    }
}

/// Compiles `source` fully anchored. The source is first compiled alone so that an
/// unbalanced group like `a)|(b` cannot escape the anchoring wrapper.
fn compile_anchored(source: &str) -> Result<Regex, MatcherError> {
    let invalid = |err: regex::Error| MatcherError::InvalidRegex {
        regex: source.to_owned(),
        message: regex_error_message(&err),
    };
    Regex::new(source).map_err(invalid)?;
    Regex::new(&format!("^(?s:{source})$")).map_err(invalid)
}

/// The one-line gist of a regex error (the crate's syntax errors span several lines).
fn regex_error_message(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_owned()
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.op, &self.value) == (&other.name, other.op, &other.value)
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.op, quote(&self.value))
    }
}

/// A list of matchers that must all hold, e.g. `{job="api", zone!="eu"}`.
/// An empty selector matches every series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// The matchers, all of which must match.
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// A selector from its matchers.
    pub fn new(matchers: Vec<Matcher>) -> Self {
        Self { matchers }
    }

    /// Whether every matcher matches `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(m.name())))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, matcher) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{matcher}")?;
        }
        f.write_char('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher::new(name, op, value).unwrap()
    }

    #[test]
    fn label_name_validity() {
        for ok in ["a", "_", "__name__", "job", "A1_b2", "_9"] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é", "a b", ":"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn sanitizes_like_prometheus() {
        assert_eq!(sanitize_label_name(""), None);
        assert_eq!(sanitize_label_name("job").as_deref(), Some("job"));
        assert_eq!(
            sanitize_label_name("service.name").as_deref(),
            Some("service_name")
        );
        assert_eq!(
            sanitize_label_name("k8s-pod/name").as_deref(),
            Some("k8s_pod_name")
        );
        assert_eq!(sanitize_label_name("9lives").as_deref(), Some("_9lives"));
        assert_eq!(sanitize_label_name("héllo").as_deref(), Some("h_llo"));
        for input in ["a.b", "0", "-", "✓x", "1.2.3"] {
            assert!(is_valid_label_name(&sanitize_label_name(input).unwrap()));
        }
    }

    #[test]
    fn labels_are_sorted_and_displayed_with_escapes() {
        let mut l = labels(&[("zone", "eu"), ("job", "a\"p\\i\n")]);
        assert_eq!(l.to_string(), r#"{job="a\"p\\i\n", zone="eu"}"#);
        assert_eq!(l.len(), 2);
        assert_eq!(l.insert("zone", "us"), Some("eu".into()));
        assert_eq!(l.get("zone"), Some("us"));
        assert_eq!(l.remove("zone"), Some("us".into()));
        assert!(!l.contains("zone"));
        assert_eq!(Labels::new().to_string(), "{}");
        assert_eq!(
            labels(&[("a", "\u{1}\u{85}é")]).to_string(),
            r#"{a="\x01\u0085é"}"#
        );
    }

    #[test]
    fn labels_serialize_as_object() {
        let l = labels(&[("job", "api"), (NAME_LABEL, "process_cpu")]);
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(json, r#"{"__name__":"process_cpu","job":"api"}"#);
        assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), l);
        assert_eq!(l.profile_name(), Some("process_cpu"));
    }

    #[test]
    fn equality_matchers_treat_missing_as_empty() {
        assert!(m("foo", MatchOp::Eq, "").matches(None));
        assert!(!m("foo", MatchOp::Eq, "").matches(Some("x")));
        assert!(!m("foo", MatchOp::NotEq, "").matches(None));
        assert!(m("foo", MatchOp::NotEq, "").matches(Some("x")));
        assert!(m("foo", MatchOp::Eq, "x").matches(Some("x")));
        assert!(m("foo", MatchOp::NotEq, "x").matches(None));
    }

    #[test]
    fn regex_matchers_are_fully_anchored() {
        let re = m("i", MatchOp::Re, r"10\..*");
        assert!(re.matches(Some("10.0.0.1")));
        assert!(!re.matches(Some("110.0.0.1")));
        assert!(!m("i", MatchOp::Re, "a|b").matches(Some("ab")));
        assert!(m("i", MatchOp::Re, "a|b").matches(Some("b")));
        assert!(!m("i", MatchOp::Re, "api").matches(Some("api-2")));
        assert!(m("i", MatchOp::NotRe, "api").matches(Some("api-2")));
        assert!(m("i", MatchOp::Re, ".*").matches(None));
        assert!(!m("i", MatchOp::Re, ".+").matches(None));
        assert!(m("i", MatchOp::NotRe, ".+").matches(None));
        assert!(m("i", MatchOp::Re, "a.b").matches(Some("a\nb")));
    }

    #[test]
    fn invalid_regexes_are_errors() {
        let err = Matcher::new("a", MatchOp::Re, "(x").unwrap_err();
        assert!(matches!(err, MatcherError::InvalidRegex { .. }));
        assert!(
            err.to_string()
                .starts_with("invalid regular expression \"(x\": ")
        );
        assert!(err.to_string().contains("unclosed group"), "{err}");
        // Would compile once wrapped, but is not a regex on its own.
        assert!(Matcher::new("a", MatchOp::NotRe, "a)|(b").is_err());
        // Plain equality never compiles the value.
        assert!(Matcher::new("a", MatchOp::Eq, "(x").is_ok());
    }

    #[test]
    fn invalid_label_names_are_errors() {
        assert_eq!(
            Matcher::new("a-b", MatchOp::Eq, "x"),
            Err(MatcherError::InvalidLabelName("a-b".into()))
        );
    }

    #[test]
    fn matchers_compare_by_name_op_value() {
        assert_eq!(m("a", MatchOp::Re, "x"), m("a", MatchOp::Re, "x"));
        assert_ne!(m("a", MatchOp::Re, "x"), m("a", MatchOp::NotRe, "x"));
        assert_ne!(m("a", MatchOp::Eq, "x"), m("a", MatchOp::Eq, "y"));
    }

    #[test]
    fn selector_requires_all_matchers() {
        let sel = Selector::new(vec![
            m("job", MatchOp::Eq, "api"),
            m("zone", MatchOp::Re, "eu-.*"),
        ]);
        assert!(sel.matches(&labels(&[("job", "api"), ("zone", "eu-1")])));
        assert!(!sel.matches(&labels(&[("job", "api"), ("zone", "us-1")])));
        assert!(!sel.matches(&labels(&[("job", "api")])));
        assert!(Selector::default().matches(&Labels::new()));
        assert_eq!(sel.to_string(), r#"{job="api", zone=~"eu-.*"}"#);
    }
}
