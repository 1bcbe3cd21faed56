//! Ingestion end to end: real profiles through `POST /api/v1/ingest`, merges, and a SIGKILL
//! in the middle of continuous ingestion.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use proto::{Function, Line, Location, Message as _, Profile, Sample, ValueType};
use serde_json::Value;
use shared::query::ProfileType;

use crate::harness::{Cinder, Http, corpus, enc};

/// All of time, for queries over profiles recorded years ago.
pub(crate) const ALL_TIME: &str = "start=0&end=4102444800000";

/// A CPU profile whose stacks are given leaf first by function name.
pub fn cpu_profile(time_ms: i64, stacks: &[(&[&str], i64)]) -> Vec<u8> {
    let mut strings: Vec<String> = ["", "samples", "count", "cpu", "nanoseconds", "main.go"]
        .map(String::from)
        .to_vec();
    let mut functions: Vec<Function> = Vec::new();
    let mut id_of = BTreeMap::new();
    let mut samples = Vec::new();
    for (frames, value) in stacks {
        let mut location_id = Vec::new();
        for name in *frames {
            let id = *id_of.entry(name.to_string()).or_insert_with(|| {
                strings.push(name.to_string());
                functions.push(Function {
                    id: functions.len() as u64 + 1,
                    name: strings.len() as i64 - 1,
                    filename: 5,
                    ..Default::default()
                });
                functions.len() as u64
            });
            location_id.push(id);
        }
        samples.push(Sample {
            location_id,
            value: vec![*value, value * 10_000_000],
            ..Default::default()
        });
    }
    let location = functions
        .iter()
        .map(|f| Location {
            id: f.id,
            line: vec![Line {
                function_id: f.id,
                line: 10,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let profile = Profile {
        sample_type: vec![ValueType { ty: 1, unit: 2 }, ValueType { ty: 3, unit: 4 }],
        sample: samples,
        location,
        function: functions,
        string_table: strings.into_iter().map(String::into_bytes).collect(),
        time_nanos: time_ms * 1_000_000,
        duration_nanos: 10_000_000_000,
        period_type: Some(ValueType { ty: 3, unit: 4 }),
        period: 10_000_000,
        ..Default::default()
    };
    gzip(&profile.encode_to_vec())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

const CPU_SAMPLES: &str = "cpu:samples:count:cpu:nanoseconds:delta";

pub(crate) fn top(http: &Http, server: &Cinder, query: &str, extra: &str) -> Value {
    let url = format!(
        "{}/api/v1/query?report=top&format=json&limit=1000&query={}&{extra}",
        server.url(),
        enc(query)
    );
    let resp = http.get(&url, false);
    assert_eq!(
        resp.status,
        200,
        "{url}: {}",
        String::from_utf8_lossy(&resp.body)
    );
    resp.json()
}

/// Finds a node by its path of names below the root of a JSON flame graph.
fn node<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = root;
    for name in path {
        current = current["children"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == *name)?;
    }
    Some(current)
}

#[test]
fn two_profiles_of_one_series_merge_stack_by_stack() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    let ingest = format!("{}/api/v1/ingest?__name__=cpu&job=merge", server.url());
    let first = cpu_profile(1_000_000, &[(&["b", "a"], 3), (&["c", "a"], 5)]);
    let second = cpu_profile(1_010_000, &[(&["b", "a"], 4), (&["d", "a"], 1)]);
    assert_eq!(http.post(&ingest, first).status, 200);
    assert_eq!(http.post(&ingest, second).status, 200);

    let query = format!("{CPU_SAMPLES}{{job=\"merge\"}}");
    let url = format!(
        "{}/api/v1/query?report=flamegraph&query={}&{ALL_TIME}",
        server.url(),
        enc(&query)
    );
    let graph = http.get(&url, false).json();
    let root = &graph["root"];
    assert_eq!(root["total"], 13);
    assert_eq!(node(root, &["a"]).unwrap()["total"], 13);
    assert_eq!(
        node(root, &["a", "b"]).unwrap()["total"],
        7,
        "3 + 4 on the shared stack"
    );
    assert_eq!(node(root, &["a", "c"]).unwrap()["total"], 5);
    assert_eq!(node(root, &["a", "d"]).unwrap()["total"], 1);

    // A single profile is just that one.
    let single = top(&http, &server, &query, "mode=single&time=1000000");
    assert_eq!(single["total"], 8);
    // A diff: B (second) against A (first).
    let diff_url = format!(
        "{}/api/v1/query?report=flamegraph&mode=diff&query_a={q}&time_a=1000000&query_b={q}&time_b=1010000",
        server.url(),
        q = enc(&query)
    );
    let diff = http.get(&diff_url, false).json();
    let b = node(&diff["root"], &["a", "b"]).unwrap();
    assert_eq!(
        (b["total"].as_i64(), b["baseline"].as_i64()),
        (Some(4), Some(3))
    );
}

#[test]
fn bad_pushes_get_precise_400s_and_store_nothing() {
    // No self-scrape: its heap profile could be stored at any moment.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("none.yaml");
    std::fs::write(&config, "scrape_configs: []\n").unwrap();
    let server = Cinder::start(&["--config", config.to_str().unwrap()]);
    let http = Http::new();
    let base = format!("{}/api/v1/ingest", server.url());
    let good = cpu_profile(1_000, &[(&["a"], 1)]);
    let cases: [(String, Vec<u8>, &str); 4] = [
        (format!("{base}?job=x"), good.clone(), "__name__"),
        (
            format!("{base}?__name__=cpu&bad-label=x"),
            good.clone(),
            "bad-label",
        ),
        (
            format!("{base}?__name__=cpu"),
            b"this is not a profile".to_vec(),
            "invalid",
        ),
        (
            format!("{base}?__name__=cpu"),
            gzip(b"\x0a\x04\x08\x01\x10\x63"),
            "string",
        ),
    ];
    for (url, body, mention) in cases {
        let resp = http.post(&url, body);
        assert_eq!(resp.status, 400, "{url}");
        let json = resp.json();
        let text = format!("{} {} {}", json["error"], json["detail"], json["field"]);
        assert!(text.contains(mention), "{url}: {text}");
    }
    let types = http
        .get(&format!("{}/api/v1/profile-types", server.url()), false)
        .json();
    assert_eq!(types, serde_json::json!([]), "nothing was stored");
}

#[test]
fn an_oversized_body_is_413() {
    let server = Cinder::start(&[]);
    let resp = Http::new().post(
        &format!("{}/api/v1/ingest?__name__=cpu", server.url()),
        vec![0u8; 17 << 20],
    );
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["error"], "body too large");
}

/// The sample type keys of expected.json, e.g. `samples/count`.
fn type_key(pt: &ProfileType) -> String {
    format!("{}/{}", pt.sample_type, pt.sample_unit)
}

#[test]
fn every_real_profile_stores_its_expected_totals_and_invalid_ones_nothing() {
    let Some(dir) = corpus() else {
        return;
    };
    let expected: BTreeMap<String, Value> =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let server = Cinder::start(&[]);
    let http = Http::new();
    let mut checked = 0;
    for (file, facts) in &expected {
        let body = std::fs::read(dir.join(file)).unwrap();
        let label = file.replace(['.', '-'], "_");
        let url = format!("{}/api/v1/ingest?__name__=real&file={label}", server.url());
        let resp = http.post(&url, body);
        if facts["valid"] == false {
            assert_eq!(resp.status, 400, "{file} is invalid and must be refused");
            assert!(
                !resp.json()["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
            );
            let files = http
                .get(
                    &format!("{}/api/v1/labels/file/values", server.url()),
                    false,
                )
                .json();
            assert!(
                !files.as_array().unwrap().iter().any(|f| f == &label),
                "{file} left data behind"
            );
            continue;
        }
        assert_eq!(
            resp.status,
            200,
            "{file}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        let summary = resp.json();
        for want in facts["total_per_sample_type"].as_array().unwrap() {
            let key = format!(
                "{}/{}",
                want["type"].as_str().unwrap(),
                want["unit"].as_str().unwrap()
            );
            let total = want["total"].as_i64().unwrap();
            let stored = summary["profile_types"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| {
                    let pt: ProfileType = t["profile_type"].as_str().unwrap().parse().unwrap();
                    type_key(&pt) == key
                });
            let Some(stored) = stored else {
                assert_eq!(
                    total, 0,
                    "{file} {key}: nothing stored but expected {total}"
                );
                continue;
            };
            let query = format!(
                "{}{{file=\"{label}\"}}",
                stored["profile_type"].as_str().unwrap()
            );
            let answer = top(&http, &server, &query, ALL_TIME);
            assert_eq!(
                answer["total"].as_i64(),
                Some(total),
                "{file} {key}: total read back"
            );
            if let Some(top_functions) = facts.get("top_functions").and_then(|t| t.get(&key)) {
                assert_top_matches(file, &key, &answer, top_functions);
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} sample types checked");
}

/// Our top table's first ten flat entries equal `go tool pprof -top`'s (ties by name).
pub(crate) fn assert_top_matches(file: &str, key: &str, ours: &Value, expected: &Value) {
    let mut rows: Vec<(String, i64, i64)> = ours["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["flat"].as_i64().unwrap(),
                r["cum"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (i, want) in expected["flat"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            rows[i].0,
            want["function"].as_str().unwrap(),
            "{file} {key} flat #{i}"
        );
        assert_eq!(
            rows[i].1,
            want["value"].as_i64().unwrap(),
            "{file} {key} flat #{i}"
        );
    }
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    for (i, want) in expected["cum"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            rows[i].0,
            want["function"].as_str().unwrap(),
            "{file} {key} cum #{i}"
        );
        assert_eq!(
            rows[i].2,
            want["value"].as_i64().unwrap(),
            "{file} {key} cum #{i}"
        );
    }
}

/// What one acknowledged ingest wrote.
struct Acked {
    time_ms: i64,
    total: i64,
    functions: Vec<String>,
}

#[test]
fn a_sigkill_during_ingestion_loses_nothing_acknowledged() {
    // A tiny flush threshold makes the kill land during flushes too.
    let mut server = Cinder::start(&["--head-flush-rows", "40"]);
    let url = format!("{}/api/v1/ingest?__name__=cpu&job=crash", server.url());
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let http = Http::new();
            // Recent times: parts past the retention (15 days) are deleted right after a flush.
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64
                - 3_600_000;
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let leaf = format!("main.work{i}");
                let names = [leaf.as_str(), "main.loop", "main.main"];
                let value = i % 7 + 1;
                let time_ms = base + i * 1000;
                let body = cpu_profile(time_ms, &[(&names, value), (&["runtime.mcall"], 2)]);
                match http.try_post(&url, body) {
                    Ok(resp) if resp.status == 200 => acked.lock().unwrap().push(Acked {
                        time_ms,
                        total: value + 2,
                        functions: names
                            .iter()
                            .map(|s| s.to_string())
                            .chain(["runtime.mcall".into()])
                            .collect(),
                    }),
                    _ => break,
                }
            }
        })
    };
    // Let it run and flush a few times, then kill it mid-write.
    while acked.lock().unwrap().len() < 60 {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    server.restart();
    let http = Http::new();
    let acked = acked.lock().unwrap();
    assert!(acked.len() >= 60);
    let query = format!("{CPU_SAMPLES}{{job=\"crash\"}}");
    for ack in acked.iter() {
        let answer = top(
            &http,
            &server,
            &query,
            &format!("mode=single&time={}", ack.time_ms),
        );
        assert_eq!(
            answer["total"].as_i64(),
            Some(ack.total),
            "profile at {} after the crash",
            ack.time_ms
        );
        let mut names: Vec<String> = answer["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["function"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        let mut want = ack.functions.clone();
        want.sort();
        assert_eq!(names, want, "stacks at {} after the crash", ack.time_ms);
    }
    let all = top(&http, &server, &query, ALL_TIME);
    let sum: i64 = acked.iter().map(|a| a.total).sum();
    assert!(
        all["total"].as_i64().unwrap() >= sum,
        "merged total covers every acknowledged ingest"
    );
}
