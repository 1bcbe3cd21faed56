//! Reads every real profile in the shared test data and compares it with `expected.json`.
//! The data lives outside the repository (`../shared/testdata/pprof`, or
//! `$CINDER_SHARED_DIR/testdata/pprof`); when it is missing the test says so and passes,
//! except under `CI=true`, where it must be there.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

/// Generous: the largest profile in the set inflates to about 2.6 MiB.
const LIMIT: usize = 64 << 20;

fn corpus_dir() -> PathBuf {
    std::env::var_os("CINDER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")))
        .join("testdata/pprof")
}

/// Says the test skips (on stderr, and in `$CINDER_SKIP_LOG` for `cargo xtask test`).
fn skip(test: &str, what: &str) {
    eprintln!("SKIPPED: {what} is missing");
    if let Some(log) = std::env::var_os("CINDER_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = file.write_all(format!("{test}\t{what} is missing\n").as_bytes());
        }
    }
}

#[test]
fn real_profiles_match_expected_facts() {
    let dir = corpus_dir();
    let Ok(expected) = fs::read_to_string(dir.join("expected.json")) else {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v != "true"),
            "the corpus {} is missing, and CI=true says it must be there",
            dir.display()
        );
        skip(
            "real_profiles_match_expected_facts",
            "the real-world corpus",
        );
        return;
    };
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(&expected).expect("expected.json is a JSON object");
    assert!(!expected.is_empty());

    let mut failures = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for (name, facts) in &expected {
        let body = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want_valid = facts["valid"].as_bool().expect("valid is a bool");
        if let Err(problem) = check(name, &body, facts, want_valid) {
            failures.push(format!("{name}: {problem}"));
        }
        if want_valid {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    eprintln!(
        "checked {} profiles ({valid} valid, {invalid} invalid)",
        expected.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check(name: &str, body: &[u8], facts: &Value, want_valid: bool) -> Result<(), String> {
    let gzipped = facts["gzipped"].as_bool().expect("gzipped is a bool");
    if proto::is_gzip(body) != gzipped {
        return Err(format!("gzip detection says {}", proto::is_gzip(body)));
    }

    let outcome = proto::read(body, LIMIT)
        .map_err(|e| format!("read: {e}"))
        .and_then(|p| match p.validate() {
            Ok(()) => Ok(p),
            Err(e) => Err(format!("validate: {e}")),
        });
    let profile = match (outcome, want_valid) {
        (Ok(p), true) => p,
        (Err(e), false) => {
            eprintln!("{name}: rejected as expected: {e}");
            return Ok(());
        }
        (Ok(_), false) => return Err("accepted, but expected.json says invalid".into()),
        (Err(e), true) => return Err(format!("rejected, but expected.json says valid: {e}")),
    };

    let counts = [
        ("num_samples", profile.sample.len()),
        ("num_locations", profile.location.len()),
        ("num_functions", profile.function.len()),
        ("num_mappings", profile.mapping.len()),
        ("num_strings", profile.string_table.len()),
    ];
    for (key, got) in counts {
        let want = facts[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is a number"));
        if got as u64 != want {
            return Err(format!("{key}: got {got}, expected {want}"));
        }
    }

    let index = profile.index().map_err(|e| e.to_string())?;
    let types: Vec<(String, String)> = profile
        .sample_type
        .iter()
        .map(|st| {
            (
                index.string(st.ty).to_owned(),
                index.string(st.unit).to_owned(),
            )
        })
        .collect();
    let want_types: Vec<(String, String)> = facts["sample_type"]
        .as_array()
        .expect("sample_type is an array")
        .iter()
        .map(|t| (str_field(t, "type"), str_field(t, "unit")))
        .collect();
    if types != want_types {
        return Err(format!(
            "sample types: got {types:?}, expected {want_types:?}"
        ));
    }

    let mut totals = vec![0i128; profile.sample_type.len()];
    for s in &profile.sample {
        for (total, &v) in totals.iter_mut().zip(&s.value) {
            *total += i128::from(v);
        }
    }
    let want_totals: Vec<(String, String, i128)> = facts["total_per_sample_type"]
        .as_array()
        .expect("total_per_sample_type is an array")
        .iter()
        .map(|t| {
            let total = t["total"]
                .as_i64()
                .map(i128::from)
                .or_else(|| t["total"].as_u64().map(i128::from))
                .expect("total is an integer");
            (str_field(t, "type"), str_field(t, "unit"), total)
        })
        .collect();
    let got_totals: Vec<(String, String, i128)> = types
        .iter()
        .zip(&totals)
        .map(|((ty, unit), &total)| (ty.clone(), unit.clone(), total))
        .collect();
    if got_totals != want_totals {
        return Err(format!(
            "totals: got {got_totals:?}, expected {want_totals:?}"
        ));
    }

    // Invalid UTF-8 is accepted and shows up as replacement characters.
    if facts["string_table_utf8_valid"].as_bool() == Some(false)
        && !index.strings().iter().any(|s| s.contains('\u{FFFD}'))
    {
        return Err("invalid UTF-8 expected, but no U+FFFD in the strings".into());
    }

    // Every reference resolves through the index.
    for s in &profile.sample {
        if index.stack(s).count() != s.location_id.len() {
            return Err("a sample location did not resolve".into());
        }
    }

    // Encoding and decoding again gives the same profile (the export path).
    let again = proto::read(&proto::Message::encode_to_vec(&profile), LIMIT)
        .map_err(|e| format!("re-read after encode: {e}"))?;
    if again != profile {
        return Err("encode/decode round trip changed the profile".into());
    }
    Ok(())
}

fn str_field(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string in {v}"))
        .to_owned()
}
