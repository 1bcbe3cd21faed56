//! Case-insensitive matching of display names, computed once per distinct frame.

use super::model::Frame;

/// Lower-cased search terms; empty terms are ignored.
#[derive(Clone, Debug, Default)]
pub(crate) struct Terms(Vec<String>);

impl Terms {
    /// Lower-cases `terms`, skipping empty ones.
    pub(crate) fn new<S: AsRef<str>>(terms: &[S]) -> Self {
        let mut lowered = Vec::with_capacity(terms.len());
        for term in terms.iter().map(AsRef::as_ref).filter(|t| !t.is_empty()) {
            let mut buf = String::new();
            lowercase_into(&mut buf, term);
            lowered.push(buf);
        }
        Terms(lowered)
    }

    /// Whether there is no term at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the lower-cased `name` contains any term.
    pub(crate) fn matches(&self, lower_name: &str) -> bool {
        self.0.iter().any(|t| lower_name.contains(t.as_str()))
    }
}

/// Writes `s` lower-cased into `out`, replacing its content.
pub(crate) fn lowercase_into(out: &mut String, s: &str) {
    out.clear();
    if s.is_ascii() {
        out.push_str(s);
        out.make_ascii_lowercase();
    } else {
        out.extend(s.chars().flat_map(char::to_lowercase));
    }
}

/// Computes `f(lower-cased display name)` for each frame, reusing one buffer.
pub(crate) fn per_frame<'a, T>(
    frames: impl IntoIterator<Item = &'a Frame>,
    mut f: impl FnMut(&str) -> T,
) -> Vec<T> {
    let mut buf = String::new();
    frames
        .into_iter()
        .map(|frame| {
            lowercase_into(&mut buf, &frame.display_name());
            f(&buf)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_case_insensitive_and_skip_empty() {
        let terms = Terms::new(&["", "MaLLoc", "Ünï"]);
        assert!(!terms.is_empty());
        assert!(terms.matches("runtime.mallocgc"));
        assert!(terms.matches("xünïcode"));
        assert!(!terms.matches("free"));
        assert!(Terms::new(&[""]).is_empty());
    }

    #[test]
    fn per_frame_lowercases_display_names() {
        let frames = [
            Frame::named("Foo"),
            Frame {
                address: 0xAB,
                ..Frame::default()
            },
        ];
        let names = per_frame(&frames, str::to_owned);
        assert_eq!(names, ["foo", "0xab"]);
    }
}
