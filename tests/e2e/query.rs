//! The query API end to end: the Arrow stacks stream, group_by, diff and trimming over
//! data in both the head and Parquet parts; and `report=pprof` checked against
//! `go tool pprof -top` on every real profile.

use std::{collections::BTreeMap, path::Path, process::Command};

use arrow::{array::AsArray, datatypes::Int64Type, ipc::reader::StreamReader};
use serde_json::Value;
use shared::{
    flame::StackSet,
    ipc::{CONTENT_TYPE, decode_stacks},
    query::ProfileType,
};

use crate::{
    harness::{Cinder, Http, Resp, corpus, enc, prerequisite},
    ingest::cpu_profile,
};

const CPU_SAMPLES: &str = "cpu:samples:count:cpu:nanoseconds:delta";

fn get_ok(http: &Http, url: &str) -> Resp {
    let resp = http.get(url, false);
    assert_eq!(
        resp.status,
        200,
        "{url}: {}",
        String::from_utf8_lossy(&resp.body)
    );
    resp
}

/// Sum of values per stack, the stack written root-first as `a;b;c`.
fn by_path(set: &StackSet) -> BTreeMap<String, (i64, i64)> {
    let mut out = BTreeMap::new();
    for stack in &set.stacks {
        let path: Vec<&str> = stack
            .frames
            .iter()
            .rev()
            .map(|&f| set.frames[f as usize].function.as_str())
            .collect();
        let slot: &mut (i64, i64) = out.entry(path.join(";")).or_default();
        slot.0 += stack.value;
        slot.1 += stack.baseline;
    }
    out
}

#[test]
fn stacks_stream_group_by_diff_and_trim_over_head_and_parquet() {
    // A tiny flush threshold puts the first profiles into Parquet parts; the last stay in the head.
    let server = Cinder::start(&["--head-flush-rows", "3"]);
    let http = Http::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now - 600_000;
    let pushes: [(&str, i64, &[(&[&str], i64)]); 4] = [
        ("a", t0, &[(&["work", "main"], 5), (&["gc"], 1)]),
        (
            "a",
            t0 + 10_000,
            &[(&["work", "main"], 2), (&["io", "main"], 4)],
        ),
        ("b", t0 + 20_000, &[(&["work", "main"], 7)]),
        ("b", t0 + 30_000, &[(&["io", "main"], 3), (&["gc"], 2)]),
    ];
    for (job, t, stacks) in pushes {
        let url = format!("{}/api/v1/ingest?__name__=cpu&job={job}", server.url());
        let resp = http.post(&url, cpu_profile(t, stacks));
        assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    }
    let range = format!("start={}&end={}", t0 - 1, t0 + 60_000);
    let query = |q: &str, extra: &str| {
        format!(
            "{}/api/v1/query?query={}&{range}&{extra}",
            server.url(),
            enc(q)
        )
    };
    let all = format!("{CPU_SAMPLES}{{}}");

    // The default report is the Arrow stream of stacks.
    let resp = get_ok(&http, &query(&all, ""));
    assert_eq!(
        resp.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(CONTENT_TYPE)
    );
    let decoded = decode_stacks(&resp.body).unwrap();
    assert_eq!(decoded.meta.total, 24);
    assert_eq!(decoded.meta.unit, "count");
    assert!(!decoded.meta.diff);
    let paths = by_path(&decoded.stacks);
    assert_eq!(paths["main;work"], (14, 0));
    assert_eq!(paths["main;io"], (7, 0));
    assert_eq!(paths["gc"], (3, 0));
    assert_eq!(paths.len(), 3);

    // group_by adds an outermost frame per label value.
    let grouped = decode_stacks(&get_ok(&http, &query(&all, "group_by=job")).body).unwrap();
    let paths = by_path(&grouped.stacks);
    assert_eq!(paths[r#"job="a";main;work"#], (7, 0));
    assert_eq!(paths[r#"job="b";main;work"#], (7, 0));
    assert_eq!(paths[r#"job="b";gc"#], (2, 0));
    assert_eq!(paths.len(), 6);

    // A diff: baseline from A (job a), value from B (job b), grouped or not.
    let diff = format!(
        "mode=diff&query_a={}&query_b={}&start_a={}&end_a={}&start_b={}&end_b={}",
        enc(&format!("{CPU_SAMPLES}{{job=\"a\"}}")),
        enc(&format!("{CPU_SAMPLES}{{job=\"b\"}}")),
        t0 - 1,
        t0 + 60_000,
        t0 - 1,
        t0 + 60_000
    );
    let url = format!("{}/api/v1/query?{diff}", server.url());
    let decoded = decode_stacks(&get_ok(&http, &url).body).unwrap();
    assert!(decoded.meta.diff);
    let paths = by_path(&decoded.stacks);
    assert_eq!(paths["main;work"], (7, 7));
    assert_eq!(paths["main;io"], (3, 4));
    assert_eq!(paths["gc"], (2, 1));

    // max_nodes folds the smallest subtrees and says so; the total stays.
    let trimmed = decode_stacks(&get_ok(&http, &query(&all, "max_nodes=2")).body).unwrap();
    assert!(trimmed.meta.trimmed_nodes > 0, "{:?}", trimmed.meta);
    assert_eq!(trimmed.stacks.total(), 24);
    assert!(by_path(&trimmed.stacks).keys().any(|k| k.contains("other")));

    // Filters apply before aggregation, in the stream as in JSON.
    let kept = decode_stacks(&get_ok(&http, &query(&all, "keep=WORK")).body).unwrap();
    assert_eq!(kept.meta.total, 14);
    let json = get_ok(&http, &query(&all, "format=json&drop=io")).json();
    assert_eq!(json["total"], 17);

    // The flame graph as Arrow: one row per node, the root first.
    let body = get_ok(&http, &query(&all, "report=flamegraph&format=arrow")).body;
    let reader = StreamReader::try_new(std::io::Cursor::new(body), None).unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    let totals = batch
        .column_by_name("total")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(totals.value(0), 24);
    assert_eq!(batch.num_rows(), 5, "root, main, work, io, gc");

    // Bad requests are precise 400s; an unknown type is a 404.
    for (extra, field) in [
        ("report=top&format=arrow", "format"),
        ("format=csv", "format"),
        ("group_by=not-a-label", "group_by"),
        ("max_nodes=many", "max_nodes"),
    ] {
        let resp = http.get(&query(&all, extra), false);
        assert_eq!(resp.status, 400, "{extra}");
        assert_eq!(resp.json()["field"], field, "{extra}");
    }
    let resp = http.get(&query("nope:a:b:c:d{}", ""), false);
    assert_eq!(resp.status, 404);
}

/// `go tool pprof -unit` for our units, so values print as plain integers.
fn pprof_unit(unit: &str) -> Option<&'static str> {
    match unit {
        "nanoseconds" => Some("ns"),
        "microseconds" => Some("us"),
        "bytes" => Some("B"),
        _ => None,
    }
}

/// Parses an integer printed by `go tool pprof -top` such as `5364`, `53640000000ns` or
/// `1234B`; `None` for a rounded value such as `1.50MB`.
fn pprof_number(text: &str) -> Option<i64> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    digits.parse().ok()
}

/// The rows of `go tool pprof -top`: function → (flat, cum), and the total it reports.
fn go_pprof_top(file: &Path, unit: &str) -> (BTreeMap<String, (Option<i64>, Option<i64>)>, String) {
    let mut cmd = Command::new("go");
    cmd.args([
        "tool",
        "pprof",
        "-top",
        "-nodefraction=0",
        "-edgefraction=0",
    ])
    .arg("-nodecount=1000000");
    if let Some(u) = pprof_unit(unit) {
        cmd.arg(format!("-unit={u}"));
    }
    let out = cmd.arg(file).output().expect("running go tool pprof");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.trim_start().starts_with("flat") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        let mut rest = line.trim_start();
        let mut fields = Vec::new();
        for _ in 0..5 {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
        // A name with a newline continues on lines that are not rows.
        let is_row = fields[0].starts_with(|c: char| c.is_ascii_digit() || c == '-')
            && fields[1].ends_with('%')
            && !rest.is_empty();
        if !is_row {
            continue;
        }
        rows.insert(
            rest.to_owned(),
            (pprof_number(fields[0]), pprof_number(fields[3])),
        );
    }
    (rows, text)
}

/// Names `go tool pprof` shows differently from the profile: unsymbolized frames (as
/// `[binary]` or `<unknown>`) and Go generic instantiations (shortened to `f[...]`,
/// merging instantiations), and names with control characters, which break its lines.
fn is_incomparable(name: &str) -> bool {
    is_unsymbolized(name)
        || name.contains("[go.shape")
        || name.contains("[...]")
        || name.contains(char::is_control)
}

fn is_unsymbolized(name: &str) -> bool {
    name.starts_with("0x") || name.contains(" 0x") || name.starts_with('[') || name == "<unknown>"
}

#[test]
fn pprof_export_agrees_with_go_tool_pprof_top_on_every_real_profile() {
    let Some(dir) = corpus() else {
        return;
    };
    let go = Command::new("go").arg("version").output().ok();
    if prerequisite("go (golang-go)", go.filter(|o| o.status.success())).is_none() {
        return;
    }
    let expected: BTreeMap<String, Value> =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let server = Cinder::start(&[]);
    let http = Http::new();
    let tmp = tempfile::tempdir().unwrap();
    let mut compared_rows = 0;
    let mut compared_types = 0;
    for (file, facts) in expected.iter().filter(|(_, f)| f["valid"] == true) {
        let label = file.replace(['.', '-'], "_");
        let url = format!("{}/api/v1/ingest?__name__=real&file={label}", server.url());
        let resp = http.post(&url, std::fs::read(dir.join(file)).unwrap());
        assert_eq!(resp.status, 200, "{file}");
        for stored in resp.json()["profile_types"].as_array().unwrap() {
            let id = stored["profile_type"].as_str().unwrap();
            let pt: ProfileType = id.parse().unwrap();
            let base = format!(
                "{}/api/v1/query?start=0&end=4102444800000&query={}",
                server.url(),
                enc(&format!("{id}{{file=\"{label}\"}}"))
            );
            let ours = get_ok(&http, &format!("{base}&report=top&limit=1000000")).json();
            let pprof = get_ok(&http, &format!("{base}&report=pprof")).body;
            let path = tmp.path().join(format!("{label}.{compared_types}.pb.gz"));
            std::fs::write(&path, &pprof).unwrap();
            let (go_rows, go_text) = go_pprof_top(&path, &pt.sample_unit);
            let context = format!("{file} {id}:\n{go_text}");
            let total = ours["total"].as_i64().unwrap();
            assert_eq!(
                total,
                facts["total_per_sample_type"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["type"] == pt.sample_type.as_str()
                        && t["unit"] == pt.sample_unit.as_str())
                    .and_then(|t| t["total"].as_i64())
                    .unwrap(),
                "{file} {id}: total"
            );
            for row in ours["rows"].as_array().unwrap() {
                let name = row["function"].as_str().unwrap();
                if is_incomparable(name) {
                    continue;
                }
                let (flat, cum) = (row["flat"].as_i64().unwrap(), row["cum"].as_i64().unwrap());
                let Some(&(go_flat, go_cum)) = go_rows.get(name) else {
                    panic!(
                        "{name} (flat {flat}, cum {cum}) is missing from go tool pprof's top of {context}"
                    );
                };
                if let Some(go_flat) = go_flat {
                    assert_eq!(go_flat, flat, "flat of {name} in {context}");
                }
                if let Some(go_cum) = go_cum {
                    assert_eq!(go_cum, cum, "cum of {name} in {context}");
                }
                compared_rows += 1;
            }
            let our_names: std::collections::BTreeSet<&str> = ours["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["function"].as_str().unwrap())
                .collect();
            let only_go: Vec<&String> = go_rows
                .keys()
                .filter(|n| !is_incomparable(n) && !our_names.contains(n.as_str()))
                .collect();
            assert!(
                only_go.is_empty(),
                "{only_go:?} only in go tool pprof's top of {context}"
            );
            compared_types += 1;
        }
    }
    assert!(compared_types > 50, "only {compared_types} profile types");
    assert!(compared_rows > 2000, "only {compared_rows} rows compared");
}

/// The id of the first type `/api/v1/profile-types` lists (what a fresh page shows).
fn first_type(http: &Http, server: &Cinder) -> String {
    let types = http
        .get(&format!("{}/api/v1/profile-types", server.url()), false)
        .json();
    types[0]["id"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn profile_types_list_first_cpu_when_busy_and_the_heap_when_idle() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    let post = |name: &str, body: Vec<u8>| {
        let url = format!("{}/api/v1/ingest?__name__={name}&job=app", server.url());
        assert_eq!(http.post(&url, body).status, 200);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let cpu_time = "process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta";
    let inuse = "memory:inuse_space:bytes:space:bytes";
    // Busy a minute ago, idle (an empty CPU profile: a zero row) since; a heap snapshot.
    post(
        "process_cpu",
        crate::ingest::cpu_profile(now - 60_000, &[(&["main.work", "main.main"], 5)]),
    );
    post(
        "memory",
        crate::fixtures::heap_at(0, (now - 30_000) * 1_000_000),
    );
    post("process_cpu", crate::ingest::cpu_profile(now - 10_000, &[]));
    assert_eq!(first_type(&http, &server), inuse, "idle: the heap first");
    // The CPU type still lists, with its zero line.
    let range = http
        .get(
            &format!(
                "{}/api/v1/query_range?query={}&start={}&end={}",
                server.url(),
                enc(&format!("{cpu_time}{{}}")),
                now - 120_000,
                now
            ),
            false,
        )
        .json();
    let points = range["series"][0]["points"].as_array().unwrap().clone();
    assert_eq!(points.last().unwrap()["value"], 0, "{points:?}");
    // Busy again: CPU time first.
    post(
        "process_cpu",
        crate::ingest::cpu_profile(now - 1_000, &[(&["main.work", "main.main"], 3)]),
    );
    assert_eq!(first_type(&http, &server), cpu_time, "busy: CPU first");
}
