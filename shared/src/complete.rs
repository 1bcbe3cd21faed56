//! Autocompletion of label selectors as typed in the query bar: what is being typed at
//! the end of the text (a label name or a value of one), and the text with a suggestion
//! applied.

/// What the end of a selector's text is in the middle of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// A label name starting with `prefix`, which begins at byte `start`.
    Name {
        /// What is typed so far.
        prefix: String,
        /// Where it starts.
        start: usize,
    },
    /// A value of label `name` starting with `prefix` (after the opening quote at `start - 1`).
    Value {
        /// The label.
        name: String,
        /// What is typed so far.
        prefix: String,
        /// Where it starts.
        start: usize,
    },
}

/// The completion at the end of `text` (e.g. `{job="api", inst` → a name starting with
/// `inst`), or `None` when the text ends in a complete matcher or outside the braces.
pub fn completion_at_end(text: &str) -> Option<Completion> {
    let open = text.rfind('{')?;
    if text[open..].contains('}') {
        return None;
    }
    // Split the inside into matchers at commas outside quotes.
    let mut in_quote = false;
    let mut escaped = false;
    let mut last_start = open + 1;
    let mut quote_at = None;
    for (i, c) in text[open + 1..].char_indices() {
        let i = i + open + 1;
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' => {
                in_quote = !in_quote;
                quote_at = in_quote.then_some(i);
            }
            ',' if !in_quote => {
                last_start = i + 1;
                quote_at = None;
            }
            _ => {}
        }
    }
    let current = &text[last_start..];
    match quote_at {
        Some(q) if in_quote => {
            let head = &text[last_start..q];
            let name = head.trim_end_matches(['=', '~', '!']).trim();
            Some(Completion::Value {
                name: name.to_owned(),
                prefix: text[q + 1..].to_owned(),
                start: q + 1,
            })
        }
        _ if current.contains(['=', '"']) => None,
        _ => {
            let trimmed = current.trim_start();
            Some(Completion::Name {
                prefix: trimmed.trim_end().to_owned(),
                start: text.len() - trimmed.len(),
            })
        }
    }
}

/// `text` with the completion's prefix replaced by `word` (a name gets `="` after it, a
/// value its closing quote).
pub fn apply(text: &str, completion: &Completion, word: &str) -> String {
    match completion {
        Completion::Name { start, .. } => format!("{}{word}=\"", &text[..*start]),
        Completion::Value { start, .. } => {
            let escaped = word.replace('\\', "\\\\").replace('"', "\\\"");
            format!("{}{escaped}\"", &text[..*start])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(prefix: &str, start: usize) -> Option<Completion> {
        Some(Completion::Name {
            prefix: prefix.into(),
            start,
        })
    }

    #[test]
    fn names_and_values() {
        assert_eq!(completion_at_end("{"), name("", 1));
        assert_eq!(completion_at_end("{jo"), name("jo", 1));
        assert_eq!(completion_at_end(r#"{job="api", in"#), name("in", 12));
        assert_eq!(
            completion_at_end(r#"{job=~"a,p"#),
            Some(Completion::Value {
                name: "job".into(),
                prefix: "a,p".into(),
                start: 7
            })
        );
        assert_eq!(
            completion_at_end(r#"{a="x", b!="y\"z"#),
            Some(Completion::Value {
                name: "b".into(),
                prefix: r#"y\"z"#.into(),
                start: 12
            })
        );
    }

    #[test]
    fn nothing_to_complete() {
        assert_eq!(completion_at_end(""), None);
        assert_eq!(completion_at_end(r#"{job="api"}"#), None);
        assert_eq!(completion_at_end(r#"{job="api""#), None);
        assert_eq!(completion_at_end(r#"{job="#), None);
    }

    #[test]
    fn applying_suggestions() {
        let text = r#"{job="api", in"#;
        let c = completion_at_end(text).unwrap();
        assert_eq!(apply(text, &c, "instance"), r#"{job="api", instance=""#);
        let text = r#"{job=""#;
        let c = completion_at_end(text).unwrap();
        assert_eq!(apply(text, &c, "a\"b"), r#"{job="a\"b""#);
    }
}
