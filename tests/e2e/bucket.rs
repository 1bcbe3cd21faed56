//! Object storage end to end: the real binary uploading its blocks into a real S3 server
//! (moto, started by the tests on a free loopback port). moto keeps its buckets in memory,
//! so an outage is moto killed and started again, empty, on the same port, with the
//! bucket created again: Cinder finds that the bucket lost its blocks when it answers
//! again, and uploads them once more.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    harness::{Cinder, Http, Moto, start_failing},
    ingest::{ALL_TIME, cpu_profile, top},
};

const BUCKET: &str = "profiles";
const PREFIX: &str = "node-a";
const CPU_SAMPLES: &str = "cpu:samples:count:cpu:nanoseconds:delta";
/// Small blocks, flushed and compacted often.
const BUSY: [&str; 8] = [
    "--block-window",
    "2s",
    "--head-flush-rows",
    "4",
    "--head-flush-age",
    "1s",
    "--maintain-interval",
    "1s",
];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A config file (no scrape jobs) whose `object_storage` is Parca's S3 example.
fn config(dir: &Path, endpoint: &str, extra: &str) -> PathBuf {
    let path = dir.join("parca.yaml");
    let yaml = format!(
        "object_storage:\n  bucket:\n    type: S3\n    prefix: {PREFIX}\n    config:\n      bucket: {BUCKET}\n      endpoint: {endpoint}\n      insecure: true\n      access_key: test\n      secret_key: test\n{extra}"
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

fn start(cfg: &Path) -> Cinder {
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    args.extend(BUSY);
    Cinder::start(&args)
}

fn push(http: &Http, server: &Cinder, time_ms: i64, value: i64) -> u16 {
    let url = format!("{}/api/v1/ingest?__name__=cpu&job=bucket", server.url());
    let body = cpu_profile(time_ms, &[(&["main.work", "main.main"], value)]);
    http.post(&url, body).status
}

fn total(http: &Http, server: &Cinder) -> i64 {
    let query = format!("{CPU_SAMPLES}{{job=\"bucket\"}}");
    top(http, server, &query, ALL_TIME)["total"]
        .as_i64()
        .unwrap_or(0)
}

/// The total, or `None` while the server does not know the type yet.
fn try_total(http: &Http, server: &Cinder) -> Option<i64> {
    let resp = http.get(&top_url(server), false);
    (resp.status == 200).then(|| resp.json()["total"].as_i64().unwrap_or(0))
}

/// One metric's value from `/metrics` (`None` when absent).
fn metric(http: &Http, server: &Cinder, name: &str) -> Option<f64> {
    let body = http.get(&format!("{}/metrics", server.url()), false).body;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn wait_for(what: &str, secs: u64, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The files of the local blocks (`blocks/<ULID>/<file>`, finished blocks only) and
/// their bytes; a block merged away (named in another's `sources`, waiting out its grace
/// period on disk, and deleted from the bucket) is left out.
fn local_blocks(data_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let entries = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut merged_away = std::collections::HashSet::new();
    for block in entries(&data_dir.join("blocks")) {
        let meta: serde_json::Value = std::fs::read(block.path().join("meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for source in meta["sources"].as_array().into_iter().flatten() {
            merged_away.insert(source.as_str().unwrap_or_default().to_owned());
        }
    }
    let mut files = Vec::new();
    for block in entries(&data_dir.join("blocks")) {
        let name = block.file_name().to_string_lossy().into_owned();
        if !block.path().join("meta.json").is_file() || merged_away.contains(&name) {
            continue;
        }
        let ulid = block.file_name().to_string_lossy().into_owned();
        for file in entries(&block.path()) {
            if let Ok(bytes) = std::fs::read(file.path()) {
                let name = file.file_name().to_string_lossy().into_owned();
                files.push((format!("blocks/{ulid}/{name}"), bytes));
            }
        }
    }
    files.sort();
    files
}

/// Whether every local block file is in the bucket with the same size and bytes.
fn all_uploaded(http: &Http, moto: &Moto, data_dir: &Path) -> bool {
    let listed = moto.list(http, BUCKET);
    let local = local_blocks(data_dir);
    !local.is_empty()
        && local.iter().all(|(key, bytes)| {
            let key = format!("{PREFIX}/{key}");
            listed
                .iter()
                .any(|(k, size)| *k == key && *size == bytes.len() as u64)
                && moto.get(http, BUCKET, &key).as_ref() == Some(bytes)
        })
}

#[test]
fn blocks_go_up_as_they_are_written_with_the_bytes_of_the_local_files() {
    let http = Http::new();
    let Some(moto) = moto_with_bucket(&http) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&config(tmp.path(), &moto.endpoint(), ""));
    let base = now_ms() - 30_000;
    for i in 0..24 {
        assert_eq!(push(&http, &server, base + i * 500, 1 + i % 3), 200);
    }
    wait_for("every local block in the bucket", 40, || {
        metric(&http, &server, "cinder_bucket_upload_backlog_blocks") == Some(0.0)
            && all_uploaded(&http, &moto, &server.data_dir)
    });
    assert!(metric(&http, &server, "cinder_bucket_uploaded_bytes_total").unwrap() > 0.0);
    let keys = moto.list(&http, BUCKET);
    assert!(
        keys.iter()
            .all(|(k, _)| k.starts_with(&format!("{PREFIX}/blocks/"))),
        "only blocks, under the prefix: {keys:?}"
    );
}

#[test]
fn an_s3_outage_during_ingest_loses_nothing_and_the_backlog_drains() {
    let http = Http::new();
    let Some(mut moto) = moto_with_bucket(&http) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut server = start(&config(tmp.path(), &moto.endpoint(), ""));
    let base = now_ms() - 60_000;
    let (mut acknowledged, mut pushed) = (0, 0);
    let mut push_some = |server: &Cinder, n: i64| {
        for _ in 0..n {
            let value = 1 + pushed % 4;
            assert_eq!(
                push(&http, server, base + pushed * 400, value),
                200,
                "acknowledged"
            );
            acknowledged += value;
            pushed += 1;
        }
    };
    push_some(&server, 8);
    wait_for("the first blocks uploaded", 30, || {
        all_uploaded(&http, &moto, &server.data_dir)
    });
    moto.stop();
    push_some(&server, 16);
    wait_for("a backlog while the bucket is down", 30, || {
        metric(&http, &server, "cinder_bucket_upload_backlog_blocks").unwrap_or(0.0) > 0.0
    });
    assert!(
        metric(&http, &server, "cinder_bucket_upload_backlog_bytes").unwrap() > 0.0,
        "bytes waiting"
    );
    wait_for("failed uploads counted", 30, || {
        let body = http.get(&format!("{}/metrics", server.url()), false).body;
        String::from_utf8_lossy(&body).contains("cinder_bucket_errors_total{op=\"put\"}")
    });
    push_some(&server, 8);
    // moto comes back empty: the bucket is created again and must get every block.
    moto.start_again();
    moto.create_bucket(&http, BUCKET);
    wait_for(
        "the backlog drained and every local block in the bucket",
        60,
        || {
            metric(&http, &server, "cinder_bucket_upload_backlog_blocks") == Some(0.0)
                && all_uploaded(&http, &moto, &server.data_dir)
        },
    );
    assert_eq!(total(&http, &server), acknowledged, "nothing lost");
    server.restart();
    assert_eq!(
        total(&http, &server),
        acknowledged,
        "nothing lost or doubled"
    );
}

#[test]
fn sigterm_uploads_the_flushed_head_before_exiting() {
    let http = Http::new();
    let Some(moto) = moto_with_bucket(&http) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &moto.endpoint(), "");
    let server = Cinder::start(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(push(&http, &server, now_ms() - 1000, 7), 200);
    assert!(
        moto.list(&http, BUCKET).is_empty(),
        "the head is not flushed yet"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the exit flush's block in the bucket", 30, || {
        !moto.list(&http, BUCKET).is_empty()
    });
    wait_for("the bucket to hold the local block", 10, || {
        all_uploaded(&http, &moto, &server.data_dir)
    });
}

#[test]
fn refused_credentials_a_missing_bucket_and_a_misspelled_key_stop_startup_with_one_line() {
    // Told to check credentials, moto knows no access key at all.
    let Some(strict) = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]) else {
        return;
    };
    let Some(open) = Moto::start(&[]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| subdir(&tmp, name);
    let cases = [
        (
            config(&dir("strict"), &strict.endpoint(), ""),
            vec![
                strict.endpoint(),
                "refused access".into(),
                "access_key \"test\"".into(),
            ],
        ),
        (
            config(&dir("missing"), &open.endpoint(), ""),
            vec![format!(
                "bucket {BUCKET:?} does not exist at http://{}",
                open.endpoint()
            )],
        ),
        (
            config(&dir("typo"), &open.endpoint(), "      acces_key: x\n"),
            vec!["acces_key".into(), "line 11".into()],
        ),
    ];
    for (cfg, wanted) in cases {
        let data = tmp.path().join("data");
        let (code, stderr) = start_failing(&data, &["--config", cfg.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{stderr}");
        let line = stderr.trim();
        assert_eq!(line.lines().count(), 1, "one line: {stderr}");
        for w in &wanted {
            assert!(line.contains(w.as_str()), "{line:?} lacks {w:?}");
        }
    }
}

#[test]
fn an_endpoint_that_does_not_answer_is_an_outage_and_cinder_serves() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&config(tmp.path(), &format!("127.0.0.1:{port}"), ""));
    let http = Http::new();
    assert_eq!(
        http.get(&format!("{}/ready", server.url()), false).status,
        200
    );
    assert_eq!(push(&http, &server, now_ms() - 5000, 3), 200);
    wait_for("a flushed block waiting for the bucket", 30, || {
        metric(&http, &server, "cinder_bucket_upload_backlog_blocks").unwrap_or(0.0) > 0.0
    });
    assert_eq!(total(&http, &server), 3);
}

/// A moto server with the bucket created (`None`, after a skip notice, without moto).
fn moto_with_bucket(http: &Http) -> Option<Moto> {
    let moto = Moto::start(&[])?;
    moto.create_bucket(http, BUCKET);
    Some(moto)
}

/// The folder `name` under `tmp`, created.
fn subdir(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    let dir = tmp.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The top report's URL for `job="bucket"` over all time.
fn top_url(server: &Cinder) -> String {
    let query = format!("{CPU_SAMPLES}{{job=\"bucket\"}}");
    format!(
        "{}/api/v1/query?report=top&format=json&limit=1000&query={}&{ALL_TIME}",
        server.url(),
        crate::harness::enc(&query)
    )
}

/// A node that reads the shared bucket often (`--bucket-refresh 1s`).
fn start_follower(cfg: &Path) -> Cinder {
    let mut args = vec!["--config", cfg.to_str().unwrap(), "--bucket-refresh", "1s"];
    args.extend(BUSY);
    Cinder::start(&args)
}

#[test]
fn a_second_node_with_an_empty_data_dir_answers_for_the_first_and_says_when_it_cannot() {
    let http = Http::new();
    let Some(mut moto) = moto_with_bucket(&http) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| subdir(&tmp, name);
    let a = start_follower(&config(&dir("a"), &moto.endpoint(), ""));
    let base = now_ms() - 120_000;
    let mut acknowledged = 0;
    let mut pushed = 0;
    let mut push_some = |n: i64| {
        for _ in 0..n {
            let value = 1 + pushed % 5;
            assert_eq!(push(&http, &a, base + pushed * 700, value), 200);
            acknowledged += value;
            pushed += 1;
        }
        acknowledged
    };
    let first = push_some(12);
    wait_for(
        "node a's profiles flushed, in blocks in the bucket",
        40,
        || {
            metric(&http, &a, "cinder_store_head_rows") == Some(0.0)
                && metric(&http, &a, "cinder_bucket_upload_backlog_blocks") == Some(0.0)
                && all_uploaded(&http, &moto, &a.data_dir)
                && total(&http, &a) == first
        },
    );

    // A fresh node reads the bucket before it is ready: the same answer at once.
    let mut b = start_follower(&config(&dir("b"), &moto.endpoint(), ""));
    assert_eq!(total(&http, &b), first, "node b answers for node a");
    let (top_a, top_b) = (http.get(&top_url(&a), false), http.get(&top_url(&b), false));
    assert_eq!(top_b.json(), top_a.json(), "the same functions and values");
    assert!(top_b.headers.get("cinder-partial").is_none());
    assert!(metric(&http, &b, "cinder_bucket_remote_blocks").unwrap() > 0.0);
    assert!(
        std::fs::read_dir(b.data_dir.join("blocks"))
            .unwrap()
            .next()
            .is_none(),
        "node b stores none of it itself"
    );

    // What node a flushes later reaches node b.
    let more = push_some(6);
    wait_for("node a's new profiles on node b", 40, || {
        total(&http, &b) == more
    });

    // The bucket goes away: node b answers from what it has and says the answer is partial.
    moto.stop();
    wait_for("node b to notice the outage", 30, || {
        metric(&http, &b, "cinder_bucket_errors_total{op=\"list\"}").is_some()
    });
    let partial = http.get(&top_url(&b), false);
    assert_eq!(partial.status, 200);
    assert_eq!(
        partial.headers.get("cinder-partial").map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(partial.json()["partial"], true, "{}", partial.json());
    let types = http.get(&format!("{}/api/v1/profile-types", b.url()), false);
    assert_eq!(types.status, 200);
    assert!(types.json().is_array(), "arrays keep their shape");
    let during = push_some(3);
    // Restarted while the bucket is away, node b still knows what it is missing.
    b.restart();
    let after_restart = http.get(&top_url(&b), false);
    assert_eq!(after_restart.status, 200);
    assert_eq!(
        after_restart.json()["partial"],
        true,
        "{}",
        after_restart.json()
    );

    // moto comes back empty: node a uploads everything again and node b sees all of it.
    moto.start_again();
    moto.create_bucket(&http, BUCKET);
    wait_for("every acknowledged profile on node b again", 60, || {
        let resp = http.get(&top_url(&b), false);
        resp.status == 200
            && resp.headers.get("cinder-partial").is_none()
            && resp.json()["total"].as_i64() == Some(during)
    });
    assert_eq!(total(&http, &a), during, "node a lost nothing");
}

const GOROUTINES: &str = "goroutine:goroutine:count:goroutine:count";

/// A node's goroutine total over all time and its `instance` label values.
fn goroutines(http: &Http, server: &Cinder) -> (i64, Vec<String>) {
    let total = top(
        http,
        server,
        &format!("{GOROUTINES}{{job=\"go\"}}"),
        ALL_TIME,
    )["total"]
        .as_i64()
        .unwrap_or(0);
    let url = format!("{}/api/v1/labels/instance/values?{ALL_TIME}", server.url());
    let values = http.get(&url, false).json();
    let mut instances: Vec<String> = values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    instances.sort();
    (total, instances)
}

/// The addresses a node scrapes (its targets API).
fn scraped(http: &Http, server: &Cinder) -> Vec<String> {
    let view = http
        .get(&format!("{}/api/v1/targets", server.url()), false)
        .json();
    let mut addresses: Vec<String> = view["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|j| j["targets"].as_array().unwrap().iter())
        .map(|t| t["address"].as_str().unwrap().to_owned())
        .collect();
    addresses.sort();
    addresses
}

#[test]
fn two_nodes_sharded_by_hashmod_and_a_third_that_answers_for_both() {
    use crate::scrape::{Behavior, Servers, goroutine_profile};
    use std::sync::Arc;
    let http = Http::new();
    let Some(moto) = moto_with_bucket(&http) else {
        return;
    };
    let servers = Servers::start(
        (0..6)
            .map(|_| Behavior::Serve(Arc::new(goroutine_profile())))
            .collect(),
    );
    let targets: Vec<String> = servers.addrs.iter().map(|a| format!("'{a}'")).collect();
    let tmp = tempfile::tempdir().unwrap();
    // The README's sharding example, with two shards.
    let node = |name: &str, shard: Option<u32>| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let jobs = match shard {
            Some(shard) => format!(
                "scrape_configs:\n  - job_name: go\n    scrape_interval: 1s\n    static_configs: [{{targets: [{}]}}]\n    relabel_configs:\n      - {{source_labels: [__address__], modulus: 2, target_label: __tmp_shard, action: hashmod}}\n      - {{source_labels: [__tmp_shard], regex: \"{shard}\", action: keep}}\n    profiling_config:\n      pprof_config:\n        memory: {{enabled: false}}\n        block: {{enabled: false}}\n        mutex: {{enabled: false}}\n        process_cpu: {{enabled: false}}\n",
                targets.join(", ")
            ),
            None => String::new(),
        };
        start_follower(&config(&dir, &moto.endpoint(), &jobs))
    };
    let mut a = node("a", Some(0));
    let mut b = node("b", Some(1));
    wait_for("every target scraped twice", 30, || {
        (0..servers.addrs.len()).all(|i| servers.count(i) >= 2)
    });
    // Each target is scraped by one node only.
    let on_a = scraped(&http, &a);
    let on_b = scraped(&http, &b);
    assert!(!on_a.is_empty() && !on_b.is_empty(), "{on_a:?} {on_b:?}");
    assert!(on_a.iter().all(|i| !on_b.contains(i)), "{on_a:?} {on_b:?}");
    let mut all = [on_a.clone(), on_b.clone()].concat();
    all.sort();
    let mut expected: Vec<String> = servers.addrs.iter().map(|a| a.to_string()).collect();
    expected.sort();
    assert_eq!(all, expected);

    // The targets stop; both nodes flush and upload on SIGTERM.
    drop(servers);
    std::thread::sleep(Duration::from_secs(3));
    // Each node answers for both once the other's blocks are up (flushed every second).
    // (The same answer for 5 s: longer than a flush, an upload and a refresh.)
    let settled = |server: &Cinder| {
        let (mut last, mut same) = ((-1, Vec::new()), 0);
        wait_for("a node's answer to settle", 60, || {
            let now = goroutines(&http, server);
            same = if now == last && now.1 == expected {
                same + 1
            } else {
                0
            };
            last = now;
            same >= 25
        });
        last.0
    };
    let (total_a, total_b) = (settled(&a), settled(&b));
    assert_eq!(total_a, total_b, "nodes a and b give the same answer");
    a.terminate();
    b.terminate();

    let c = node("c", None);
    let (total_c, on_c) = goroutines(&http, &c);
    assert!(total_c > 0);
    assert_eq!(total_c, total_a, "node c answers for both, once");
    assert_eq!(on_c, expected);
    assert!(
        std::fs::read_dir(c.data_dir.join("blocks"))
            .unwrap()
            .next()
            .is_none(),
        "node c stores none of it itself"
    );
}

/// ULIDs of the blocks with a `meta.json` under `blocks/` (in the bucket, or in a folder).
fn bucket_blocks(http: &Http, moto: &Moto) -> Vec<String> {
    let mut ulids: Vec<String> = moto
        .list(http, BUCKET)
        .into_iter()
        .filter_map(|(key, _)| {
            let rest = key.strip_prefix(&format!("{PREFIX}/blocks/"))?;
            let ulid = rest.strip_suffix("/meta.json")?;
            Some(ulid.to_owned())
        })
        .collect();
    ulids.sort();
    ulids
}

fn folder_blocks(dir: &Path) -> Vec<String> {
    let mut ulids: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.path().join("meta.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ulids.sort();
    ulids
}

#[test]
fn retention_and_compaction_clear_the_bucket_of_what_left_the_node() {
    let http = Http::new();
    let Some(moto) = moto_with_bucket(&http) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| subdir(&tmp, name);
    let short = [
        "--retention",
        "15s",
        "--block-window",
        "1s",
        "--head-flush-rows",
        "4",
        "--head-flush-age",
        "1s",
        "--maintain-interval",
        "1s",
        "--trash-grace",
        "1s",
        "--bucket-refresh",
        "1s",
    ];
    let node = |name: &str| {
        let cfg = config(&dir(name), &moto.endpoint(), "");
        let mut args = vec!["--config", cfg.to_str().unwrap()];
        args.extend(short);
        Cinder::start(&args)
    };
    let a = node("a");
    let b = node("b");
    let first = now_ms();
    for i in 0..10 {
        assert_eq!(push(&http, &a, first + i * 100, 2), 200);
    }
    wait_for("the first blocks in the bucket and on node b", 30, || {
        !bucket_blocks(&http, &moto).is_empty() && try_total(&http, &b) == Some(20)
    });
    let early = bucket_blocks(&http, &moto);
    // Half a minute of pushes: blocks are merged and expire all along.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        assert_eq!(push(&http, &a, now_ms(), 1), 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let range = format!("start={first}&end={}", first + 1000);
    let early_total = |server: &Cinder| {
        let query = format!("{CPU_SAMPLES}{{job=\"bucket\"}}");
        top(&http, server, &query, &range)["total"]
            .as_i64()
            .unwrap_or(0)
    };
    wait_for(
        "the bucket to hold node a's blocks and no others",
        20,
        || bucket_blocks(&http, &moto) == folder_blocks(&a.data_dir.join("blocks")),
    );
    let now = bucket_blocks(&http, &moto);
    assert!(
        early.iter().all(|u| !now.contains(u)),
        "the first blocks left the bucket: {early:?} {now:?}"
    );
    assert_eq!(early_total(&a), 0, "expired on node a");
    assert_eq!(early_total(&b), 0, "expired on node b");
    wait_for(
        "node b to keep copies of blocks in the bucket only",
        10,
        || {
            let copies = folder_blocks(&b.data_dir.join("remote"));
            let listed = bucket_blocks(&http, &moto);
            copies.iter().all(|u| listed.contains(u))
        },
    );
}

#[test]
fn a_block_in_the_bucket_reads_with_pyarrow_alone_and_gives_cinders_answer() {
    let Some(python) = crate::harness::prerequisite(
        "pyarrow in .tools/venv (cargo xtask test installs it)",
        crate::harness::pyarrow_python(),
    ) else {
        return;
    };
    let http = Http::new();
    let Some(moto) = moto_with_bucket(&http) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Cinder::start(&[
        "--config",
        config(tmp.path(), &moto.endpoint(), "").to_str().unwrap(),
    ]);
    let stacks: [(&[&str], i64); 3] = [
        (&["main.work", "main.main"], 7),
        (&["main.sleep", "main.main"], 3),
        (&["runtime.gc"], 2),
    ];
    for i in 0..3 {
        let url = format!("{}/api/v1/ingest?__name__=cpu&job=bucket", server.url());
        let body = cpu_profile(now_ms() - 5000 + i * 100, &stacks);
        assert_eq!(http.post(&url, body).status, 200);
    }
    let expected =
        crate::agents::flats(&http, &server, &format!("{CPU_SAMPLES}{{job=\"bucket\"}}"));
    server.terminate();
    wait_for("the exit flush's blocks in the bucket", 30, || {
        all_uploaded(&http, &moto, &server.data_dir)
    });

    // Every block of the type, copied out of the bucket and read by pyarrow alone.
    let mut flat: std::collections::BTreeMap<String, i64> = Default::default();
    for ulid in bucket_blocks(&http, &moto) {
        let dir = tmp.path().join("copy").join(&ulid);
        std::fs::create_dir_all(&dir).unwrap();
        for (key, _) in moto.list(&http, BUCKET) {
            if let Some(name) = key.strip_prefix(&format!("{PREFIX}/blocks/{ulid}/")) {
                std::fs::write(dir.join(name), moto.get(&http, BUCKET, &key).unwrap()).unwrap();
            }
        }
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/pyarrow/top_functions.py");
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if read["profile_type"] != CPU_SAMPLES {
            continue;
        }
        for (name, value) in read["flat"].as_object().unwrap() {
            *flat.entry(name.clone()).or_default() += value.as_i64().unwrap();
        }
    }
    let read: Vec<(String, i64)> = flat.into_iter().filter(|(_, v)| *v != 0).collect();
    assert_eq!(read, expected, "pyarrow's flat values are Cinder's");
    assert_eq!(read.iter().map(|(_, v)| v).sum::<i64>(), 36);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_explore_page_of_one_node_draws_the_profiles_another_node_stored() {
    use crate::ui_pages::{blocking, text_with, wait_for_flame};
    let ui = crate::harness::ui_dir();
    if crate::harness::prerequisite("the UI built by trunk (CINDER_E2E_UI_DIR)", ui).is_none() {
        return;
    }
    let Some(moto) = blocking(|| Moto::start(&[])) else {
        return;
    };
    let Some(browser) = crate::browser::Browser::start().await else {
        return;
    };
    let _shot = browser.screenshot_on_panic("bucket-explore");
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| subdir(&tmp, name);
    let time = now_ms() - 60_000;
    let (_a, b) = blocking(|| {
        let http = Http::new();
        moto.create_bucket(&http, BUCKET);
        let a = start_follower(&config(&dir("a"), &moto.endpoint(), ""));
        let url = format!("{}/api/v1/ingest?__name__=cpu&job=bucket", a.url());
        let body = cpu_profile(time, &[(&["main.storedOnNodeA", "main.main"], 40)]);
        assert_eq!(http.post(&url, body).status, 200);
        wait_for("node a's profile flushed and in the bucket", 40, || {
            metric(&http, &a, "cinder_store_head_rows") == Some(0.0)
                && metric(&http, &a, "cinder_bucket_upload_backlog_blocks") == Some(0.0)
                && all_uploaded(&http, &moto, &a.data_dir)
        });
        let b = start_follower(&config(&dir("b"), &moto.endpoint(), ""));
        (a, b)
    });
    let expression = format!("{CPU_SAMPLES}{{job=\"bucket\"}}");
    let url = format!(
        "{}/?expression_a={}&from_a={}&to_a={}",
        b.url(),
        crate::harness::enc(&expression),
        time - 600_000,
        time + 600_000
    );
    browser.open(&url, "page-explore").await;
    wait_for_flame(&browser).await;
    let top = text_with(&browser, "top-table", "main.storedOnNodeA").await;
    assert!(
        top.contains("main.storedOnNodeA"),
        "node b's top table: {top}"
    );
}
