//! Pyroscope's text formats: `folded` (also called `groups`), one `a;b;c 123` line per
//! stack (root first, split at the last space), and `lines`, one `a;b;c` line per sample
//! (each counts 1).

use crate::builder::ProfileBuilder;

/// Which text format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// `a;b;c 123`: a stack and its count.
    Folded,
    /// `a;b;c`: one sample of a stack.
    Lines,
}

/// Why a text profile was refused; lines are numbered from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The body is not UTF-8.
    #[error("line {line}: not valid UTF-8")]
    NotUtf8 {
        /// The line holding the first invalid byte.
        line: usize,
    },
    /// A folded line has no ` <count>` at its end.
    #[error("line {line}: expected \"<stack> <count>\", found {text:?}")]
    MissingCount {
        /// The line number.
        line: usize,
        /// The line (at most 80 characters of it).
        text: String,
    },
    /// The count is not a non-negative integer.
    #[error("line {line}: the count {count:?} is not a non-negative integer")]
    BadCount {
        /// The line number.
        line: usize,
        /// What stood where the count belongs.
        count: String,
    },
}

/// The stacks of a text body: `(frames root first, count)`, in the order of the lines.
/// Empty lines are skipped, and so are empty frames (`a;;b` is `a;b`).
pub fn parse(body: &[u8], format: TextFormat) -> Result<Vec<(Vec<&str>, i64)>, TextError> {
    let text = std::str::from_utf8(body).map_err(|e| TextError::NotUtf8 {
        line: 1 + body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
    })?;
    let mut stacks = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let (stack, count) = match format {
            TextFormat::Lines => (line, 1),
            TextFormat::Folded => split_count(line, i + 1)?,
        };
        let frames: Vec<&str> = stack
            .split(';')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        stacks.push((frames, count));
    }
    Ok(stacks)
}

fn split_count(line: &str, number: usize) -> Result<(&str, i64), TextError> {
    let Some((stack, count)) = line.rsplit_once([' ', '\t']) else {
        return Err(TextError::MissingCount {
            line: number,
            text: line.chars().take(80).collect(),
        });
    };
    let count = count
        .parse::<i64>()
        .ok()
        .filter(|c| *c >= 0)
        .ok_or_else(|| TextError::BadCount {
            line: number,
            count: count.chars().take(40).collect(),
        })?;
    Ok((stack.trim_end(), count))
}

/// Adds parsed stacks to `builder`: each stack's count times `scale[i]` for sample type i
/// (saturating), so `[1, 10_000_000]` gives samples and CPU nanoseconds at 100 Hz.
pub fn add_to(builder: &mut ProfileBuilder, stacks: &[(Vec<&str>, i64)], scale: &[i64]) {
    let mut leaf_first = Vec::new();
    let mut values = vec![0; scale.len()];
    for (frames, count) in stacks {
        if *count == 0 {
            continue;
        }
        leaf_first.clear();
        leaf_first.extend(frames.iter().rev().map(|f| builder.location(f, "", 0)));
        for (v, s) in values.iter_mut().zip(scale) {
            *v = count.saturating_mul(*s);
        }
        builder.add(&leaf_first, &values, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_split_at_the_last_space() {
        let body = b"main;work hard 12\n\nmain;idle 3\r\nmain;work hard 1\n";
        let stacks = parse(body, TextFormat::Folded).unwrap();
        assert_eq!(stacks[0], (vec!["main", "work hard"], 12));
        assert_eq!(stacks[1], (vec!["main", "idle"], 3));
        let mut b = ProfileBuilder::new(&[("samples", "count"), ("cpu", "nanoseconds")]);
        add_to(&mut b, &stacks, &[1, 10_000_000]);
        let p = b.finish();
        let index = p.index().unwrap();
        assert_eq!(p.sample.len(), 2);
        assert_eq!(p.sample[0].value, vec![13, 130_000_000]);
        let leaf = index.location(p.sample[0].location_id[0]).unwrap();
        let f = index.function(leaf.line[0].function_id).unwrap();
        assert_eq!(index.string(f.name), "work hard");
    }

    #[test]
    fn lines_count_one_each() {
        let stacks = parse(b"a;b\na;b\nc\n", TextFormat::Lines).unwrap();
        let mut b = ProfileBuilder::new(&[("samples", "count")]);
        add_to(&mut b, &stacks, &[1]);
        let p = b.finish();
        let values: Vec<i64> = p.sample.iter().map(|s| s.value[0]).collect();
        assert_eq!(values, vec![2, 1]);
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse(b"a;b 1\nnocount\n", TextFormat::Folded).unwrap_err(),
            TextError::MissingCount {
                line: 2,
                text: "nocount".into()
            }
        );
        assert!(matches!(
            parse(b"a;b -1", TextFormat::Folded),
            Err(TextError::BadCount { line: 1, .. })
        ));
        assert!(matches!(
            parse(b"a;b 1x", TextFormat::Folded),
            Err(TextError::BadCount { .. })
        ));
        assert_eq!(
            parse(b"a 1\nb\xff 2", TextFormat::Folded).unwrap_err(),
            TextError::NotUtf8 { line: 2 }
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse(&body, TextFormat::Folded);
            let _ = parse(&body, TextFormat::Lines);
        }

        #[test]
        fn rendered_stacks_read_back_with_their_totals(
            stacks in proptest::collection::vec(
                (proptest::collection::vec("[a-z][a-z ]{0,5}[a-z]", 1..6), 0i64..1_000_000),
                0..30,
            )
        ) {
            let text: String = stacks
                .iter()
                .map(|(frames, count)| format!("{} {count}\n", frames.join(";")))
                .collect();
            let parsed = parse(text.as_bytes(), TextFormat::Folded).unwrap();
            let mut b = ProfileBuilder::new(&[("samples", "count")]);
            add_to(&mut b, &parsed, &[1]);
            let p = b.finish();
            p.validate().unwrap();
            let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
            proptest::prop_assert_eq!(total, stacks.iter().map(|(_, c)| c).sum::<i64>());
        }
    }
}
