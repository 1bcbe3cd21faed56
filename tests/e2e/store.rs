//! The storage engine end to end: retention on a small store with short block windows,
//! SIGKILL during flushes and compactions (totals compared with `==`), and profiles dated
//! outside the allowed window.

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    harness::{Cinder, Http},
    ingest::{ALL_TIME, cpu_profile, top},
};

const CPU_SAMPLES: &str = "cpu:samples:count:cpu:nanoseconds:delta";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Bytes of the files under `dir`, recursively (0 when missing).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Bytes of the blocks and WAL segments under the data dir.
fn sample_bytes(data_dir: &Path) -> u64 {
    dir_bytes(&data_dir.join("blocks")) + dir_bytes(&data_dir.join("wal"))
}

/// Finished blocks (directories with a `meta.json`) under the data dir.
fn finished_blocks(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("blocks"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("meta.json").is_file())
                .count()
        })
        .unwrap_or(0)
}

fn push(http: &Http, server: &Cinder, job: &str, time_ms: i64, value: i64) -> u16 {
    let url = format!("{}/api/v1/ingest?__name__=cpu&job={job}", server.url());
    http.post(
        &url,
        cpu_profile(time_ms, &[(&["main.work", "main.main"], value)]),
    )
    .status
}

/// Total of the profile at `time_ms` (0 when there is none).
fn single_total(http: &Http, server: &Cinder, job: &str, time_ms: i64) -> i64 {
    let query = format!("{CPU_SAMPLES}{{job=\"{job}\"}}");
    let answer = top(http, server, &query, &format!("mode=single&time={time_ms}"));
    answer["total"].as_i64().unwrap_or(0)
}

fn merged_total(http: &Http, server: &Cinder, job: &str) -> i64 {
    let query = format!("{CPU_SAMPLES}{{job=\"{job}\"}}");
    top(http, server, &query, ALL_TIME)["total"]
        .as_i64()
        .unwrap_or(0)
}

#[test]
fn retention_deletes_old_blocks_and_the_disk_stops_growing() {
    // No self-scrape: its heap profiles would land in bursts the size check cannot tell
    // from growth.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("none.yaml");
    std::fs::write(&config, "scrape_configs: []\n").unwrap();
    let server = Cinder::start(&[
        "--config",
        config.to_str().unwrap(),
        "--retention",
        "12s",
        "--block-window",
        "1s",
        "--head-flush-rows",
        "10",
        "--head-flush-age",
        "1s",
        "--maintain-interval",
        "1s",
        "--trash-grace",
        "1s",
    ]);
    let http = Http::new();
    let first = now_ms();
    assert_eq!(push(&http, &server, "ret", first, 3), 200);
    assert_eq!(single_total(&http, &server, "ret", first), 3);
    // One push every 100 ms for 40 s: after ~14 s (retention + window + a maintenance
    // tick) the oldest data must be gone, and the sample bytes must level off.
    let start = Instant::now();
    let mut sizes: Vec<(u64, u64)> = Vec::new();
    while start.elapsed() < Duration::from_secs(40) {
        assert_eq!(push(&http, &server, "ret", now_ms(), 1), 200);
        std::thread::sleep(Duration::from_millis(100));
        sizes.push((start.elapsed().as_secs(), sample_bytes(&server.data_dir)));
    }
    assert_eq!(
        single_total(&http, &server, "ret", first),
        0,
        "a profile 40 s old is gone under a 12 s retention"
    );
    let recent = merged_total(&http, &server, "ret");
    assert!(
        recent > 0 && recent < 200,
        "only the last ~13 s remain: {recent}"
    );
    // Steady state: the last 10 s hold no more bytes than the 10 s before them (+25%).
    let peak = |range: std::ops::Range<u64>| {
        let of_range = sizes.iter().filter(|(s, _)| range.contains(s));
        of_range.map(|&(_, bytes)| bytes).max().unwrap()
    };
    let (earlier, later) = (peak(20..30), peak(30..41));
    assert!(
        later as f64 <= earlier as f64 * 1.25,
        "sample bytes keep growing: {earlier} then {later}"
    );
}

#[test]
fn a_sigkill_during_flushes_and_compactions_loses_and_doubles_nothing() {
    let mut server = Cinder::start(&[
        "--retention",
        "0",
        "--block-window",
        "2s",
        "--head-flush-rows",
        "4",
        "--head-flush-age",
        "1s",
        "--maintain-interval",
        "1s",
    ]);
    let http = Http::new();
    let base = now_ms() - 60_000;
    let mut acknowledged = 0;
    let mut pushed = 0i64;
    for round in 0..5u64 {
        // A burst of acknowledged profiles over many block windows, then a kill while the
        // server flushes and compacts them (at a different moment each round).
        for i in 0..40 {
            let value = (pushed % 5) + 1;
            let time_ms = base + pushed * 700;
            assert_eq!(
                push(&http, &server, "kill", time_ms, value),
                200,
                "round {round} push {i}"
            );
            acknowledged += value;
            pushed += 1;
        }
        std::thread::sleep(Duration::from_millis(300 + 350 * round));
        server.restart();
        assert_eq!(
            merged_total(&http, &server, "kill"),
            acknowledged,
            "after kill {round}: every acknowledged value exactly once"
        );
    }
    // Let maintenance settle, then check once more after a last kill.
    std::thread::sleep(Duration::from_secs(3));
    server.restart();
    assert_eq!(merged_total(&http, &server, "kill"), acknowledged);
}

#[test]
fn profiles_dated_outside_the_allowed_window_are_refused() {
    let server = Cinder::start(&["--retention", "1h"]);
    let http = Http::new();
    let url = format!("{}/api/v1/ingest?__name__=cpu&job=bounds", server.url());
    for (what, time_ms) in [
        ("2 h ahead", now_ms() + 2 * 3_600_000),
        ("older than the retention", now_ms() - 2 * 3_600_000),
    ] {
        let resp = http.post(&url, cpu_profile(time_ms, &[(&["main.main"], 1)]));
        assert_eq!(resp.status, 400, "{what}");
        let body = resp.json();
        assert_eq!(body["field"], "time_nanos", "{what}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("allowed window"), "{what}: {detail}");
    }
    assert_eq!(push(&http, &server, "bounds", now_ms() - 60_000, 1), 200);
    assert_eq!(
        push(&http, &server, "bounds", now_ms() + 30 * 60_000, 1),
        200
    );
    assert_eq!(
        merged_total(&http, &server, "bounds"),
        2,
        "refused profiles stored nothing"
    );

    let keep_all = Cinder::start(&["--retention", "0"]);
    assert_eq!(
        push(&http, &keep_all, "bounds", 1_000_000, 1),
        200,
        "any past time"
    );
    assert_eq!(
        push(&http, &keep_all, "bounds", now_ms() + 2 * 3_600_000, 1),
        400
    );
}

#[test]
fn sigterm_flushes_the_head_into_parquet_before_exiting() {
    let mut server = Cinder::start(&[]);
    let http = Http::new();
    let time_ms = now_ms() - 1000;
    assert_eq!(push(&http, &server, "term", time_ms, 9), 200);
    let parquet_files = finished_blocks;
    assert_eq!(
        parquet_files(&server.data_dir),
        0,
        "the head is not flushed yet"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while parquet_files(&server.data_dir) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        parquet_files(&server.data_dir) > 0,
        "SIGTERM flushed the head"
    );
    server.restart();
    assert_eq!(
        single_total(&http, &server, "term", time_ms),
        9,
        "and nothing twice"
    );
}

/// What the API answers about the stored real profiles: per profile type, the total and
/// the top functions; the label names and the values of each.
fn stored_answers(http: &Http, server: &Cinder) -> Vec<serde_json::Value> {
    let get = |path: &str| {
        let resp = http.get(&format!("{}{path}", server.url()), false);
        assert_eq!(resp.status, 200, "{path}");
        resp.json()
    };
    let types = get(&format!("/api/v1/profile-types?{ALL_TIME}"));
    let mut answers = vec![types.clone()];
    let names = get(&format!("/api/v1/labels?{ALL_TIME}"));
    for name in names.as_array().expect("label names").iter() {
        let name = name.as_str().unwrap();
        answers.push(get(&format!("/api/v1/labels/{name}/values?{ALL_TIME}")));
    }
    answers.push(names);
    for t in types.as_array().expect("profile types") {
        let id = t["id"].as_str().or(t.as_str()).expect("a profile type id");
        answers.push(top(http, server, &format!("{id}{{}}"), ALL_TIME));
    }
    answers
}

#[test]
fn the_metadata_store_is_rebuilt_from_the_blocks() {
    let Some(dir) = crate::harness::shared_pprof_dir() else {
        return crate::harness::skipped("the shared pprof corpus");
    };
    // No self-scrape: only the real profiles are stored.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("none.yaml");
    std::fs::write(&config, "scrape_configs: []\n").unwrap();
    let mut server = Cinder::start(&["--config", config.to_str().unwrap()]);
    let http = Http::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pprof" || x == "gz"))
        .collect();
    files.sort();
    let mut stored = 0;
    for (i, path) in files.iter().enumerate() {
        let url = format!("{}/api/v1/ingest?__name__=real&file=f{i}", server.url());
        if http.post(&url, std::fs::read(path).unwrap()).status == 200 {
            stored += 1;
        }
    }
    assert!(stored >= 3, "real profiles were stored: {stored}");
    let before = stored_answers(&http, &server);
    server.terminate();
    assert!(
        finished_blocks(&server.data_dir) > 0,
        "SIGTERM flushed the head"
    );
    std::fs::remove_dir_all(server.data_dir.join("meta")).unwrap();
    server.start_again();
    let after = stored_answers(&http, &server);
    assert_eq!(before[0], after[0], "profile types");
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }
}

/// The value of `cinder_meta_entries{kind="<kind>"}` in `/metrics`.
fn meta_entries(http: &Http, server: &Cinder, kind: &str) -> u64 {
    let text = http.get(&format!("{}/metrics", server.url()), false).body;
    let line = format!("cinder_meta_entries{{kind=\"{kind}\"}} ");
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(&line)?.parse().ok())
        .unwrap_or_else(|| panic!("no {line} in /metrics"))
}

#[test]
fn metadata_of_deleted_blocks_is_collected() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("none.yaml");
    std::fs::write(&config, "scrape_configs: []\n").unwrap();
    let server = Cinder::start(&[
        "--config",
        config.to_str().unwrap(),
        "--retention",
        "10s",
        "--block-window",
        "1s",
        "--head-flush-age",
        "1s",
        "--maintain-interval",
        "1s",
        "--trash-grace",
        "1s",
    ]);
    let http = Http::new();
    let values = || {
        http.get(
            &format!("{}/api/v1/labels/job/values?{ALL_TIME}", server.url()),
            false,
        )
        .json()
    };
    for job in ["gone-a", "gone-b", "gone-c"] {
        assert_eq!(push(&http, &server, job, now_ms(), 3), 200);
    }
    assert_eq!(push(&http, &server, "stay", now_ms(), 1), 200);
    assert_eq!(
        values(),
        serde_json::json!(["gone-a", "gone-b", "gone-c", "stay"])
    );
    assert_eq!(meta_entries(&http, &server, "series"), 4);
    let postings_before = meta_entries(&http, &server, "postings");
    // Keep one series alive while the others' blocks expire and leave.
    let deadline = Instant::now() + Duration::from_secs(40);
    while values() != serde_json::json!(["stay"]) && Instant::now() < deadline {
        assert_eq!(push(&http, &server, "stay", now_ms(), 1), 200);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        values(),
        serde_json::json!(["stay"]),
        "expired series are no longer listed"
    );
    assert_eq!(meta_entries(&http, &server, "series"), 1);
    let postings = meta_entries(&http, &server, "postings");
    assert_eq!(
        postings * 4,
        postings_before,
        "the postings of 3 of 4 series left"
    );
    assert!(merged_total(&http, &server, "stay") > 0);
    assert_eq!(merged_total(&http, &server, "gone-a"), 0);
}
