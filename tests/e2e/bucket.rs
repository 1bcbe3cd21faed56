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
/// their bytes; a block merged away meanwhile is left out.
fn local_blocks(data_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let entries = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut files = Vec::new();
    for block in entries(&data_dir.join("blocks")) {
        if !block.path().join("meta.json").is_file() {
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
                && moto.get(http, BUCKET, &key) == *bytes
        })
}

#[test]
fn blocks_go_up_as_they_are_written_with_the_bytes_of_the_local_files() {
    let Some(moto) = Moto::start(&[]) else { return };
    let http = Http::new();
    moto.create_bucket(&http, BUCKET);
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
    let Some(mut moto) = Moto::start(&[]) else {
        return;
    };
    let http = Http::new();
    moto.create_bucket(&http, BUCKET);
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
    let Some(moto) = Moto::start(&[]) else { return };
    let http = Http::new();
    moto.create_bucket(&http, BUCKET);
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
    let dir = |name: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
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
