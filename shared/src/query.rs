//! Parca's query language: profile types ([`ProfileType`]) and queries ([`Query`]).
//!
//! A query is `<name>:<sample_type>:<sample_unit>:<period_type>:<period_unit>[:delta]`
//! followed by an optional label selector, e.g.
//! `process_cpu:samples:count:cpu:nanoseconds:delta{job="api", instance=~"10\\..*"}`.
//! This module owns the syntax (parsing with precise error positions, canonical
//! printing); label semantics live in [`crate::labels`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::labels::{MatchOp, Matcher, MatcherError, Selector, is_label_name_char, quote};

/// A syntax error in a query, profile type or selector.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: expected {expected}, found {found}")]
pub struct ParseError {
    /// Byte offset in the input where the problem is.
    pub position: usize,
    /// What would have been valid there, e.g. `one of "=", "!=", "=~", "!~"`.
    pub expected: String,
    /// What is there instead, e.g. `"<"` or `end of input`.
    pub found: String,
}

/// What kind of profile a series holds, e.g. `memory:inuse_space:bytes:space:bytes`.
///
/// The parts may be empty and may hold any character but `:`, `{` and `}` (a part
/// holding one of those would not print back to a parseable id).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "ProfileTypeJson", from = "ProfileTypeJson")]
pub struct ProfileType {
    /// Profile name, e.g. `process_cpu` (the `__name__` label).
    pub name: String,
    /// Sample type, e.g. `samples`.
    pub sample_type: String,
    /// Sample unit, e.g. `count`.
    pub sample_unit: String,
    /// Period type, e.g. `cpu`.
    pub period_type: String,
    /// Period unit, e.g. `nanoseconds`.
    pub period_unit: String,
    /// Whether samples are deltas over the period (CPU, allocations) rather than a
    /// snapshot (heap in use, goroutines).
    pub delta: bool,
}

/// The JSON shape of a [`ProfileType`]: its parts plus the derived `id` (what starts a
/// query: `id + "{}"` selects every series of the type). Public for API documentation.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProfileTypeJson {
    /// Ignored when deserializing: the parts are the truth.
    #[serde(default)]
    id: String,
    name: String,
    sample_type: String,
    sample_unit: String,
    period_type: String,
    period_unit: String,
    #[serde(default)]
    delta: bool,
}

impl From<ProfileType> for ProfileTypeJson {
    fn from(p: ProfileType) -> Self {
        Self {
            id: p.id(),
            name: p.name,
            sample_type: p.sample_type,
            sample_unit: p.sample_unit,
            period_type: p.period_type,
            period_unit: p.period_unit,
            delta: p.delta,
        }
    }
}

impl From<ProfileTypeJson> for ProfileType {
    fn from(j: ProfileTypeJson) -> Self {
        Self {
            name: j.name,
            sample_type: j.sample_type,
            sample_unit: j.sample_unit,
            period_type: j.period_type,
            period_unit: j.period_unit,
            delta: j.delta,
        }
    }
}

/// UI names for well-known profile types: (name or `*`, sample type, sample unit, label).
const FRIENDLY_NAMES: &[(&str, &str, &str, &str)] = &[
    ("process_cpu", "samples", "count", "CPU (samples)"),
    ("*", "cpu", "nanoseconds", "CPU time"),
    ("*", "alloc_space", "bytes", "Memory allocated (bytes)"),
    ("*", "alloc_objects", "count", "Memory allocated (objects)"),
    ("*", "inuse_space", "bytes", "Memory in use (bytes)"),
    ("*", "inuse_objects", "count", "Memory in use (objects)"),
    ("goroutine", "goroutine", "count", "Goroutines"),
    ("mutex", "contentions", "count", "Mutex contentions"),
    ("mutex", "delay", "nanoseconds", "Mutex delay"),
    ("block", "contentions", "count", "Block contentions"),
    ("block", "delay", "nanoseconds", "Block delay"),
];

impl ProfileType {
    /// A profile type from its parts.
    pub fn new(
        name: impl Into<String>,
        sample_type: impl Into<String>,
        sample_unit: impl Into<String>,
        period_type: impl Into<String>,
        period_unit: impl Into<String>,
        delta: bool,
    ) -> Self {
        Self {
            name: name.into(),
            sample_type: sample_type.into(),
            sample_unit: sample_unit.into(),
            period_type: period_type.into(),
            period_unit: period_unit.into(),
            delta,
        }
    }

    /// The canonical id, e.g. `process_cpu:samples:count:cpu:nanoseconds:delta`.
    pub fn id(&self) -> String {
        self.to_string()
    }

    /// A short human name for the UI, e.g. "CPU (samples)" or "Memory in use (bytes)";
    /// unknown types read `name sample_type (unit)`.
    pub fn friendly_name(&self) -> String {
        let known = FRIENDLY_NAMES.iter().find(|(name, st, su, _)| {
            (*name == "*" || *name == self.name)
                && *st == self.sample_type
                && *su == self.sample_unit
        });
        if let Some((.., label)) = known {
            return (*label).to_owned();
        }
        let mut out = [self.name.as_str(), self.sample_type.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !self.sample_unit.is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("({})", self.sample_unit));
        }
        out
    }

    /// Whether the type measures CPU time (`process_cpu:cpu:nanoseconds`, `cpu:…`): the
    /// type a fresh Explore page prefers.
    pub fn is_cpu_time(&self) -> bool {
        self.name.contains("cpu") && self.sample_unit == "nanoseconds"
    }

    /// Whether each profile is a point-in-time snapshot (heap in use, goroutines)
    /// rather than a delta over its period.
    pub fn is_snapshot(&self) -> bool {
        !self.delta
    }

    /// Whether rates (`query_range`'s `value_per_second`) scale values by the period:
    /// `samples:count` types, each sample standing for one period (a CPU sample for 10 ms).
    pub fn scales_by_period(&self) -> bool {
        self.sample_type == "samples" && self.sample_unit == "count"
    }

    /// The unit of a rate of this type, per second: the period's unit for `samples:count`
    /// types (CPU samples become CPU nanoseconds per second), the sample unit otherwise.
    pub fn rate_unit(&self) -> &str {
        if self.scales_by_period() {
            &self.period_unit
        } else {
            &self.sample_unit
        }
    }
}

impl fmt::Display for ProfileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.name, self.sample_type, self.sample_unit, self.period_type, self.period_unit
        )?;
        if self.delta {
            f.write_str(":delta")?;
        }
        Ok(())
    }
}

impl FromStr for ProfileType {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (profile_type, end) = parse_profile_type(s, "end of input")?;
        match s[end..].chars().next() {
            None => Ok(profile_type),
            Some(c) => Err(error_at(end, "end of input", describe(Some(c)))),
        }
    }
}

/// A query: a profile type and the label selector that picks its series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Which kind of profile.
    pub profile_type: ProfileType,
    /// Which series; empty selects all series of the profile type.
    pub selector: Selector,
}

impl Query {
    /// A query from its parts.
    pub fn new(profile_type: ProfileType, selector: Selector) -> Self {
        Self {
            profile_type,
            selector,
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.profile_type, self.selector)
    }
}

impl FromStr for Query {
    type Err = ParseError;

    /// Parses `<profile type>{<matchers>}`; the selector may be left out entirely.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let (profile_type, end) = parse_profile_type(s, "\"{\" or end of input")?;
        let mut cursor = Cursor { src: s, pos: end };
        let selector = match cursor.peek() {
            None => Selector::default(),
            Some('{') => cursor.selector()?,
            found => return Err(cursor.error_found("\"{\" or end of input", found)),
        };
        cursor.skip_ws();
        cursor.expect_end()?;
        Ok(Self::new(profile_type, selector))
    }
}

/// Queries travel in JSON as their text.
impl Serialize for Query {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Query {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a label selector alone, e.g. `{job="api", zone=~"eu-.*"}`, as typed in the
/// UI's selector box. Surrounding whitespace is ignored, and blank input is the empty
/// selector.
pub fn parse_matchers(s: &str) -> Result<Selector, ParseError> {
    let mut cursor = Cursor { src: s, pos: 0 };
    cursor.skip_ws();
    let selector = match cursor.peek() {
        None => Selector::default(),
        Some('{') => cursor.selector()?,
        found => return Err(cursor.error_found("\"{\"", found)),
    };
    cursor.skip_ws();
    cursor.expect_end()?;
    Ok(selector)
}

impl FromStr for Selector {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        parse_matchers(s)
    }
}

/// Splits a query as its parser reads it: the profile type's text (up to the first `{`
/// or `}`, trimmed) and the selector's text (the rest). Neither part needs to be valid, so
/// the UI can split what is being typed.
pub fn split_query(s: &str) -> (&str, &str) {
    let end = profile_type_end(s);
    (s[..end].trim(), &s[end..])
}

/// Where the profile type at the start of `s` ends.
fn profile_type_end(s: &str) -> usize {
    s.find(['{', '}']).unwrap_or(s.len())
}

/// Parses the profile type at the start of `s` (up to the first `{`, `}` or the end),
/// returning it and where it ends. `after` describes what may follow a complete type.
fn parse_profile_type(s: &str, after: &str) -> Result<(ProfileType, usize), ParseError> {
    let end = profile_type_end(s);
    let mut parts = Vec::with_capacity(6);
    let mut start = 0;
    for part in s[..end].split(':') {
        parts.push((start, part));
        start += part.len() + 1;
    }
    let next = describe(s[end..].chars().next());
    match parts.as_slice() {
        [_, _, _, _, _] => {}
        [_, _, _, _, _, (_, "delta")] => {}
        [_, _, _, _, _, (at, part)] => {
            let found = if part.is_empty() { next } else { quote(part) };
            return Err(error_at(*at, "\"delta\"", found));
        }
        [_, _, _, _, _, (at, "delta"), ..] => {
            return Err(error_at(at + "delta".len(), after, "\":\"".into()));
        }
        [_, _, _, _, _, (at, part), ..] => return Err(error_at(*at, "\"delta\"", quote(part))),
        _ => return Err(error_at(end, "\":\"", next)),
    }
    let part = |i: usize| parts[i].1.to_owned();
    let profile_type = ProfileType::new(
        part(0),
        part(1),
        part(2),
        part(3),
        part(4),
        parts.len() == 6,
    );
    if s[end..].starts_with('}') {
        return Err(error_at(end, after, next));
    }
    Ok((profile_type, end))
}

/// A [`ParseError`] at `position`.
fn error_at(position: usize, expected: &str, found: String) -> ParseError {
    ParseError {
        position,
        expected: expected.to_owned(),
        found,
    }
}

/// How a character (or the end of input) reads in an error message.
fn describe(c: Option<char>) -> String {
    c.map_or_else(
        || "end of input".to_owned(),
        |c| quote(c.encode_utf8(&mut [0; 4])),
    )
}

/// A position in the input of a hand-written recursive-descent parser.
struct Cursor<'a> {
    src: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// An error here, where `found` was seen.
    fn error_found(&self, expected: &str, found: Option<char>) -> ParseError {
        error_at(self.pos, expected, describe(found))
    }

    /// An error about the character under the cursor.
    fn error(&self, expected: &str) -> ParseError {
        self.error_found(expected, self.peek())
    }

    fn expect_end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            found => Err(self.error_found("end of input", found)),
        }
    }

    /// `{` matcher (`,` matcher)* `,`? `}` with whitespace anywhere between tokens;
    /// the cursor is on the `{`.
    fn selector(&mut self) -> Result<Selector, ParseError> {
        self.bump();
        let mut matchers = Vec::new();
        loop {
            self.skip_ws();
            if self.eat('}') {
                break;
            }
            matchers.push(self.matcher()?);
            self.skip_ws();
            if self.eat('}') {
                break;
            }
            if !self.eat(',') {
                return Err(self.error("\",\" or \"}\""));
            }
        }
        Ok(Selector::new(matchers))
    }

    /// `name op "value"`.
    fn matcher(&mut self) -> Result<Matcher, ParseError> {
        let name = self.label_name()?;
        self.skip_ws();
        let op = self.match_op()?;
        self.skip_ws();
        let value_start = self.pos;
        let value = self.string_literal()?;
        Matcher::new(name, op, value).map_err(|err| match err {
            MatcherError::InvalidRegex { message, .. } => {
                let literal = &self.src[value_start..self.pos];
                error_at(
                    value_start,
                    "a valid regular expression",
                    format!("{literal} ({message})"),
                )
            }
            // label_name() only accepts valid names.
            MatcherError::InvalidLabelName(name) => {
                error_at(value_start, "label name", quote(&name))
            }
        })
    }

    fn label_name(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return Err(self.error("label name or \"}\""));
        }
        while self.peek().is_some_and(is_label_name_char) {
            self.bump();
        }
        Ok(self.src[start..self.pos].to_owned())
    }

    fn match_op(&mut self) -> Result<MatchOp, ParseError> {
        let rest = &self.src[self.pos..];
        let op = if rest.starts_with("=~") {
            MatchOp::Re
        } else if rest.starts_with("!=") {
            MatchOp::NotEq
        } else if rest.starts_with("!~") {
            MatchOp::NotRe
        } else if rest.starts_with('=') {
            MatchOp::Eq
        } else {
            return Err(self.error("one of \"=\", \"!=\", \"=~\", \"!~\""));
        };
        self.pos += op.as_str().len();
        Ok(op)
    }

    /// A string literal in `"…"` or `'…'` (with Go escapes) or `` `…` `` (raw).
    fn string_literal(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some('`') => self.raw_string(),
            Some(quote_char @ ('"' | '\'')) => self.quoted_string(quote_char),
            _ => Err(self.error("a quoted string")),
        }
    }

    fn raw_string(&mut self) -> Result<String, ParseError> {
        self.bump();
        let start = self.pos;
        let Some(len) = self.src[start..].find('`') else {
            self.pos = self.src.len();
            return Err(self.error("closing \"`\""));
        };
        self.pos = start + len + 1;
        Ok(self.src[start..start + len].to_owned())
    }

    /// Decodes into bytes first: `\xHH` and octal escapes are bytes, as in Go.
    fn quoted_string(&mut self, quote_char: char) -> Result<String, ParseError> {
        let start = self.pos;
        self.bump();
        let mut bytes = Vec::new();
        loop {
            match self.peek() {
                None | Some('\n') => {
                    return Err(self.error(&format!("closing {}", describe(Some(quote_char)))));
                }
                Some(c) if c == quote_char => break,
                Some('\\') => self.escape(&mut bytes)?,
                Some(c) => {
                    bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    self.bump();
                }
            }
        }
        self.bump();
        String::from_utf8(bytes).map_err(|_| {
            error_at(
                start,
                "a string literal of valid UTF-8",
                self.src[start..self.pos].to_owned(),
            )
        })
    }

    /// One escape sequence; the cursor is on the backslash.
    fn escape(&mut self, bytes: &mut Vec<u8>) -> Result<(), ParseError> {
        let start = self.pos;
        self.bump();
        let simple = match self.peek() {
            Some('a') => Some(0x07),
            Some('b') => Some(0x08),
            Some('f') => Some(0x0c),
            Some('n') => Some(b'\n'),
            Some('r') => Some(b'\r'),
            Some('t') => Some(b'\t'),
            Some('v') => Some(0x0b),
            Some('\\') => Some(b'\\'),
            Some('"') => Some(b'"'),
            Some('\'') => Some(b'\''),
            _ => None,
        };
        if let Some(byte) = simple {
            self.bump();
            bytes.push(byte);
            return Ok(());
        }
        match self.peek() {
            Some('x') => {
                self.bump();
                bytes.push(self.digits(2, 16)? as u8);
            }
            Some(c @ ('u' | 'U')) => {
                self.bump();
                let code = self.digits(if c == 'u' { 4 } else { 8 }, 16)?;
                let c = char::from_u32(code)
                    .ok_or_else(|| self.bad_escape(start, "a valid Unicode code point"))?;
                bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            Some('0'..='7') => {
                let code = self.digits(3, 8)?;
                let byte = u8::try_from(code)
                    .map_err(|_| self.bad_escape(start, "an octal escape of at most \\377"))?;
                bytes.push(byte);
            }
            _ => {
                self.bump();
                return Err(self.bad_escape(
                    start,
                    "a valid escape sequence (\\\\, \\\", \\', \\n, \\t, \\r, \\xHH, \\uHHHH, …)",
                ));
            }
        }
        Ok(())
    }

    /// An error about the escape sequence from `start` to the cursor.
    fn bad_escape(&self, start: usize, expected: &str) -> ParseError {
        error_at(start, expected, quote(&self.src[start..self.pos]))
    }

    /// Exactly `count` digits in `radix`, as a number.
    fn digits(&mut self, count: usize, radix: u32) -> Result<u32, ParseError> {
        let mut value = 0;
        for _ in 0..count {
            let digit = self.peek().and_then(|c| c.to_digit(radix));
            let Some(digit) = digit else {
                let what = if radix == 16 {
                    "a hexadecimal digit"
                } else {
                    "an octal digit"
                };
                return Err(self.error(what));
            };
            self.bump();
            value = value * radix + digit;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_query_cuts_where_the_parser_does() {
        let q = r#" process_cpu:samples:count:cpu:nanoseconds:delta {job="a"}"#;
        let (id, selector) = split_query(q);
        assert_eq!(id, "process_cpu:samples:count:cpu:nanoseconds:delta");
        assert_eq!(selector, r#"{job="a"}"#);
        assert!(id.parse::<ProfileType>().is_ok());
        assert_eq!(split_query("memory:x"), ("memory:x", ""));
        assert_eq!(split_query("{job="), ("", "{job="));
    }
    use crate::labels::Labels;
    use proptest::prelude::*;

    fn pt(s: &str) -> ProfileType {
        s.parse().unwrap()
    }

    fn q(s: &str) -> Query {
        s.parse().unwrap()
    }

    fn err(s: &str) -> ParseError {
        s.parse::<Query>().unwrap_err()
    }

    #[test]
    fn parses_profile_types() {
        let p = pt("process_cpu:samples:count:cpu:nanoseconds:delta");
        assert_eq!(
            p,
            ProfileType::new(
                "process_cpu",
                "samples",
                "count",
                "cpu",
                "nanoseconds",
                true
            )
        );
        assert_eq!(p.id(), "process_cpu:samples:count:cpu:nanoseconds:delta");
        assert!(!p.is_snapshot());

        let heap = pt("memory:inuse_space:bytes:space:bytes");
        assert!(!heap.delta);
        assert!(heap.is_snapshot());
        assert_eq!(heap.to_string(), "memory:inuse_space:bytes:space:bytes");

        assert_eq!(
            pt("name::::"),
            ProfileType::new("name", "", "", "", "", false)
        );
        assert_eq!(pt("::::").to_string(), "::::");
        assert_eq!(
            pt("x:alloc-samples:count:a b:é").sample_type,
            "alloc-samples"
        );
    }

    #[test]
    fn rejects_bad_profile_types() {
        let e = "a:b:c:d".parse::<ProfileType>().unwrap_err();
        assert_eq!((e.position, e.found.as_str()), (7, "end of input"));
        assert_eq!(
            e.to_string(),
            "at position 7: expected \":\", found end of input"
        );
        let e = "a:b:c:d:e:deltas".parse::<ProfileType>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "at position 10: expected \"delta\", found \"deltas\""
        );
        let e = "a:b:c:d:e:".parse::<ProfileType>().unwrap_err();
        assert_eq!((e.position, e.expected.as_str()), (10, "\"delta\""));
        let e = "a:b:c:d:e:delta:x".parse::<ProfileType>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "at position 15: expected end of input, found \":\""
        );
        let e = "a:b:c:d:e{}".parse::<ProfileType>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "at position 9: expected end of input, found \"{\""
        );
        assert!("".parse::<ProfileType>().is_err());
    }

    #[test]
    fn rates_of_cpu_samples_are_in_cpu_time() {
        let samples: ProfileType = "process_cpu:samples:count:cpu:nanoseconds:delta"
            .parse()
            .unwrap();
        assert!(samples.scales_by_period());
        assert_eq!(samples.rate_unit(), "nanoseconds");
        let space: ProfileType = "memory:alloc_space:bytes:space:bytes:delta"
            .parse()
            .unwrap();
        assert!(!space.scales_by_period());
        assert_eq!(space.rate_unit(), "bytes");
    }

    #[test]
    fn friendly_names() {
        let cases = [
            (
                "process_cpu:samples:count:cpu:nanoseconds:delta",
                "CPU (samples)",
            ),
            (
                "process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta",
                "CPU time",
            ),
            (
                "memory:alloc_space:bytes:space:bytes:delta",
                "Memory allocated (bytes)",
            ),
            (
                "memory:alloc_objects:count:space:bytes:delta",
                "Memory allocated (objects)",
            ),
            (
                "memory:inuse_space:bytes:space:bytes",
                "Memory in use (bytes)",
            ),
            (
                "memory:inuse_objects:count:space:bytes",
                "Memory in use (objects)",
            ),
            ("goroutine:goroutine:count:goroutine:count", "Goroutines"),
            (
                "mutex:contentions:count:contentions:count:delta",
                "Mutex contentions",
            ),
            (
                "mutex:delay:nanoseconds:contentions:count:delta",
                "Mutex delay",
            ),
            (
                "block:contentions:count:contentions:count:delta",
                "Block contentions",
            ),
            (
                "block:delay:nanoseconds:contentions:count:delta",
                "Block delay",
            ),
            (
                "fgprof:samples:count:wallclock:nanoseconds:delta",
                "fgprof samples (count)",
            ),
            ("custom::::", "custom"),
            ("x::bytes::", "x (bytes)"),
        ];
        for (id, name) in cases {
            assert_eq!(pt(id).friendly_name(), name, "{id}");
        }
    }

    #[test]
    fn profile_type_json() {
        let p = pt("memory:alloc_space:bytes:space:bytes:delta");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "memory:alloc_space:bytes:space:bytes:delta",
                "name": "memory", "sample_type": "alloc_space", "sample_unit": "bytes",
                "period_type": "space", "period_unit": "bytes", "delta": true,
            })
        );
        assert_eq!(serde_json::from_value::<ProfileType>(json).unwrap(), p);
    }

    #[test]
    fn parses_queries() {
        let query =
            q(r#"process_cpu:samples:count:cpu:nanoseconds:delta{job="api", instance=~"10\\..*"}"#);
        assert!(query.profile_type.delta);
        let m = &query.selector.matchers;
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].name(), m[0].op(), m[0].value()),
            ("job", MatchOp::Eq, "api")
        );
        assert_eq!(
            (m[1].name(), m[1].op(), m[1].value()),
            ("instance", MatchOp::Re, r"10\..*")
        );
        let labels: Labels = [("job", "api"), ("instance", "10.1.2.3")]
            .into_iter()
            .collect();
        assert!(query.selector.matches(&labels));
        assert_eq!(
            query.to_string(),
            r#"process_cpu:samples:count:cpu:nanoseconds:delta{job="api", instance=~"10\\..*"}"#
        );

        assert!(q("a:b:c:d:e").selector.matchers.is_empty());
        assert!(q("a:b:c:d:e{}").selector.matchers.is_empty());
        assert!(q("a:b:c:d:e{ \t\n}  ").selector.matchers.is_empty());
        assert_eq!(q("a:b:c:d:e").to_string(), "a:b:c:d:e{}");
        let spaced = q("a:b:c:d:e{ x = 'y' ,\n z!~`\\d+`, }");
        assert_eq!(spaced.to_string(), r#"a:b:c:d:e{x="y", z!~"\\d+"}"#);
    }

    #[test]
    fn string_literals_and_escapes() {
        let value = |s: &str| {
            let sel = parse_matchers(&format!("{{a={s}}}")).unwrap();
            sel.matchers[0].value().to_owned()
        };
        assert_eq!(value(r#""a\"b\\c\n\t\r""#), "a\"b\\c\n\t\r");
        assert_eq!(value(r"'it\'s'"), "it's");
        assert_eq!(value(r#"'say "hi"'"#), "say \"hi\"");
        assert_eq!(value(r#""\x41\u00e9\U0001F600""#), "Aé😀");
        assert_eq!(value(r#""\xc3\xa9""#), "é");
        assert_eq!(value(r#""\101\a\b\f\v""#), "A\u{7}\u{8}\u{c}\u{b}");
        assert_eq!(value(r"`raw \n \`"), "raw \\n \\");
        assert_eq!(value("`multi\nline`"), "multi\nline");
        assert_eq!(value(r#""""#), "");
    }

    #[test]
    fn precise_error_positions() {
        let e = err(r#"process_cpu:samples:count:cpu:nanoseconds{job<"x"}"#);
        assert_eq!(
            e.to_string(),
            r#"at position 45: expected one of "=", "!=", "=~", "!~", found "<""#
        );
        let e = err(r#"a:b:c:d:e{job="x" zone="y"}"#);
        assert_eq!(
            (e.position, e.expected.as_str(), e.found.as_str()),
            (18, r#""," or "}""#, r#""z""#)
        );
        let e = err(r#"a:b:c:d:e{1job="x"}"#);
        assert_eq!(
            e.to_string(),
            r#"at position 10: expected label name or "}", found "1""#
        );
        let e = err(r#"a:b:c:d:e{job=api}"#);
        assert_eq!(
            e.to_string(),
            r#"at position 14: expected a quoted string, found "a""#
        );
        let e = err(r#"a:b:c:d:e{job="api"#);
        assert_eq!(
            e.to_string(),
            r#"at position 18: expected closing "\"", found end of input"#
        );
        let e = err(r#"a:b:c:d:e{job="a\qb"}"#);
        assert_eq!(e.position, 16);
        assert_eq!(e.found, r#""\\q""#);
        let e = err(r#"a:b:c:d:e{job="\xZZ"}"#);
        assert_eq!(
            (e.position, e.expected.as_str()),
            (17, "a hexadecimal digit")
        );
        let e = err(r#"a:b:c:d:e{job="\ud800"}"#);
        assert_eq!(
            (e.position, e.expected.as_str()),
            (15, "a valid Unicode code point")
        );
        let e = err(r#"a:b:c:d:e{job="\xff"}"#);
        assert_eq!(
            (e.position, e.expected.as_str()),
            (14, "a string literal of valid UTF-8")
        );
        let e = err(r#"a:b:c:d:e{job=~"(x"}"#);
        assert_eq!(e.position, 15);
        assert_eq!(e.expected, "a valid regular expression");
        assert!(e.found.starts_with(r#""(x" ("#), "{}", e.found);
        let e = err(r#"a:b:c:d:e{} x"#);
        assert_eq!(
            e.to_string(),
            r#"at position 12: expected end of input, found "x""#
        );
        let e = err(r#"a:b:c:d:e}"#);
        assert_eq!(
            e.to_string(),
            r#"at position 9: expected "{" or end of input, found "}""#
        );
        let e = err(r#"a:b:c{x="y"}"#);
        assert_eq!(e.to_string(), r#"at position 5: expected ":", found "{""#);
        let e = err(r#"a:b:c:d:e{,}"#);
        assert_eq!(e.position, 10);
        let e = err("a:b:c:d:e{x=\"a\nb\"}");
        assert_eq!((e.position, e.found.as_str()), (14, r#""\n""#));
    }

    #[test]
    fn parse_matchers_alone() {
        assert!(parse_matchers("").unwrap().matchers.is_empty());
        assert!(parse_matchers("  {}  ").unwrap().matchers.is_empty());
        let sel = parse_matchers(r#"{job="api",}"#).unwrap();
        assert_eq!(sel.matchers.len(), 1);
        assert_eq!(sel, r#"{ job = "api" }"#.parse().unwrap());
        let e = parse_matchers(r#"job="api""#).unwrap_err();
        assert_eq!(e.to_string(), r#"at position 0: expected "{", found "j""#);
    }

    #[test]
    fn query_json_is_its_text() {
        let query = q(r#"a:b:c:d:e:delta{x="y"}"#);
        let json = serde_json::to_string(&query).unwrap();
        assert_eq!(json, r#""a:b:c:d:e:delta{x=\"y\"}""#);
        assert_eq!(serde_json::from_str::<Query>(&json).unwrap(), query);
        assert!(serde_json::from_str::<Query>(r#""nope""#).is_err());
    }

    /// A profile type part: any characters but `:`, `{`, `}`, possibly empty.
    fn part() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                prop::char::range('a', 'z'),
                Just(' '),
                Just('-'),
                Just('_'),
                Just('.'),
                any::<char>().prop_filter("reserved", |c| !matches!(c, ':' | '{' | '}')),
            ],
            0..8,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn profile_type() -> impl Strategy<Value = ProfileType> {
        (part(), part(), part(), part(), part(), any::<bool>())
            .prop_map(|(a, b, c, d, e, delta)| ProfileType::new(a, b, c, d, e, delta))
    }

    fn match_op() -> impl Strategy<Value = MatchOp> {
        prop_oneof![
            Just(MatchOp::Eq),
            Just(MatchOp::NotEq),
            Just(MatchOp::Re),
            Just(MatchOp::NotRe)
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[\"'`\\\\\n\t a-zé😀\u{0}\u{85}]{0,12}",]
    }

    /// Any matcher; regex values that do not compile are escaped so they do.
    fn matcher() -> impl Strategy<Value = Matcher> {
        ("[a-zA-Z_][a-zA-Z0-9_]{0,8}", match_op(), value()).prop_map(|(name, op, value)| {
            Matcher::new(&name, op, &value)
                .or_else(|_| Matcher::new(&name, op, regex::escape(&value)))
                .unwrap()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn profile_type_round_trips(p in profile_type()) {
            let text = p.to_string();
            prop_assert_eq!(text.parse::<ProfileType>(), Ok(p.clone()));
            let json = serde_json::to_string(&p).unwrap();
            prop_assert_eq!(serde_json::from_str::<ProfileType>(&json).unwrap(), p);
        }

        #[test]
        fn query_round_trips(
            p in profile_type(),
            matchers in proptest::collection::vec(matcher(), 0..4),
        ) {
            let query = Query::new(p, Selector::new(matchers));
            let text = query.to_string();
            prop_assert_eq!(text.parse::<Query>(), Ok(query.clone()));
            prop_assert_eq!(parse_matchers(&query.selector.to_string()), Ok(query.selector));
        }

        #[test]
        fn invalid_regexes_are_errors_not_panics(re in any::<String>()) {
            let direct = Matcher::new("a", MatchOp::Re, re.as_str()).is_ok();
            let parsed = parse_matchers(&format!("{{a=~{}}}", quote(&re)));
            prop_assert_eq!(parsed.is_ok(), direct);
        }

        #[test]
        fn arbitrary_input_never_panics(s in any::<String>()) {
            let _ = s.parse::<Query>();
            let _ = parse_matchers(&s);
            let _ = s.parse::<ProfileType>();
        }
    }
}
