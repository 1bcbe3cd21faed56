//! Scraping end to end: the real Go target with a Parca-style config, hostile targets beside
//! a healthy one, cumulative allocations stored as deltas, API-created targets across a
//! restart, SIGHUP and file_sd reloads, and Cinder scraping itself with no flags.
//!
//! Test servers run on loopback inside the test, on their own tokio runtime; every loop
//! they run is bounded and stops when the test ends.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use proto::{Function, Line, Location, Message as _, Profile, Sample, ValueType};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{Cinder, Http, enc, go_target_script, prerequisite};

use crate::ingest::ALL_TIME;

// ----- helpers -----

/// Polls `check` every 250 ms until it returns `Some` or `timeout` passes.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("cinder.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn profile_type_ids(http: &Http, server: &Cinder) -> Vec<String> {
    let types = http
        .get(&format!("{}/api/v1/profile-types", server.url()), false)
        .json();
    types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The merged top table of all time.
fn top(http: &Http, server: &Cinder, query: &str) -> Value {
    crate::ingest::top(http, server, query, ALL_TIME)
}

fn functions(top: &Value) -> Vec<String> {
    top["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["function"].as_str().unwrap().to_owned())
        .collect()
}

fn targets(http: &Http, server: &Cinder) -> Vec<Value> {
    let body = http
        .get(&format!("{}/api/v1/targets", server.url()), false)
        .json();
    body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|j| j["targets"].as_array().unwrap().clone())
        .collect()
}

fn target_with<'a>(targets: &'a [Value], label: &str, value: &str) -> &'a Value {
    targets
        .iter()
        .find(|t| t["labels"][label] == value)
        .unwrap_or_else(|| panic!("no target with {label}={value}: {targets:#?}"))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A profile whose stacks are given leaf first by function name, with `types` as
/// (type, unit) and one value per type per stack.
fn profile(
    types: &[(&str, &str)],
    period_type: (&str, &str),
    stacks: &[(&[&str], Vec<i64>)],
) -> Vec<u8> {
    let mut strings: Vec<String> = vec![String::new()];
    let mut intern = |s: &str| -> i64 {
        if let Some(i) = strings.iter().position(|x| x == s) {
            return i as i64;
        }
        strings.push(s.to_owned());
        strings.len() as i64 - 1
    };
    let sample_type = types
        .iter()
        .map(|(t, u)| ValueType {
            ty: intern(t),
            unit: intern(u),
        })
        .collect();
    let period_type = Some(ValueType {
        ty: intern(period_type.0),
        unit: intern(period_type.1),
    });
    let file = intern("main.go");
    let mut function: Vec<Function> = Vec::new();
    let mut sample = Vec::new();
    for (frames, values) in stacks {
        let mut location_id = Vec::new();
        for name in *frames {
            let name = intern(name);
            let id = match function.iter().find(|f| f.name == name) {
                Some(f) => f.id,
                None => {
                    function.push(Function {
                        id: function.len() as u64 + 1,
                        name,
                        filename: file,
                        ..Default::default()
                    });
                    function.len() as u64
                }
            };
            location_id.push(id);
        }
        sample.push(Sample {
            location_id,
            value: values.clone(),
            label: Vec::new(),
        });
    }
    let location = function
        .iter()
        .map(|f| Location {
            id: f.id,
            line: vec![Line {
                function_id: f.id,
                line: 3,
                column: 0,
            }],
            ..Default::default()
        })
        .collect();
    let p = Profile {
        sample_type,
        sample,
        location,
        function,
        string_table: strings.into_iter().map(String::into_bytes).collect(),
        period_type,
        period: 1,
        ..Default::default()
    };
    gzip(&p.encode_to_vec())
}

pub(crate) fn goroutine_profile() -> Vec<u8> {
    profile(
        &[("goroutine", "count")],
        ("goroutine", "count"),
        &[(&["main.healthyWorker", "main.main"], vec![3])],
    )
}

/// A Go-like allocs profile: cumulative alloc_* and in-use values per stack.
fn allocs_profile(stacks: &[(&str, i64, i64)]) -> Vec<u8> {
    let stacks: Vec<(Vec<&str>, Vec<i64>)> = stacks
        .iter()
        .map(|(leaf, alloc, inuse)| {
            (
                vec![*leaf, "main.main"],
                vec![*alloc, alloc * 1024, *inuse, inuse * 1024],
            )
        })
        .collect();
    let stacks: Vec<(&[&str], Vec<i64>)> = stacks
        .iter()
        .map(|(f, v)| (f.as_slice(), v.clone()))
        .collect();
    profile(
        &[
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ],
        ("space", "bytes"),
        &stacks,
    )
}

// ----- test servers -----

/// How a test server answers.
#[derive(Clone)]
pub(crate) enum Behavior {
    /// 200 with this body each time.
    Serve(Arc<Vec<u8>>),
    /// The n-th request (from 0) gets the n-th body, the last one after that.
    Sequence(Arc<Vec<Vec<u8>>>),
    Hang,
    Drip,
    Huge,
    Raw(&'static str, &'static str, Arc<Vec<u8>>),
    RedirectLoop,
}

/// Loopback HTTP servers, one per behavior, on a runtime of their own.
pub(crate) struct Servers {
    runtime: tokio::runtime::Runtime,
    counts: Vec<Arc<AtomicU64>>,
    pub(crate) addrs: Vec<SocketAddr>,
}

impl Servers {
    pub(crate) fn start(behaviors: Vec<Behavior>) -> Servers {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut counts = Vec::new();
        let mut addrs = Vec::new();
        for behavior in behaviors {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            addrs.push(listener.local_addr().unwrap());
            let count = Arc::new(AtomicU64::new(0));
            counts.push(count.clone());
            runtime.spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(answer(stream, behavior.clone(), n));
                }
            });
        }
        Servers {
            runtime,
            counts,
            addrs,
        }
    }

    pub(crate) fn count(&self, i: usize) -> u64 {
        self.counts[i].load(Ordering::SeqCst)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        // Stops every server task (hanging ones too).
        let runtime = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        );
        runtime.shutdown_background();
    }
}

async fn answer(mut stream: tokio::net::TcpStream, behavior: Behavior, n: u64) {
    // Read the request head (bounded).
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => head.extend_from_slice(&buf[..k]),
        }
    }
    let ok = |ct: &str, len: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    match behavior {
        Behavior::Serve(body) => {
            let _ = stream
                .write_all(ok("application/octet-stream", body.len()).as_bytes())
                .await;
            let _ = stream.write_all(&body).await;
        }
        Behavior::Sequence(bodies) => {
            let body = &bodies[(n as usize).min(bodies.len() - 1)];
            let _ = stream
                .write_all(ok("application/octet-stream", body.len()).as_bytes())
                .await;
            let _ = stream.write_all(body).await;
        }
        Behavior::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
        Behavior::Drip => {
            let _ = stream
                .write_all(ok("application/octet-stream", 1000).as_bytes())
                .await;
            for _ in 0..60 {
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Behavior::Huge => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
                .await;
            let chunk = vec![0x0au8; 1 << 20];
            // At most 256 MiB, until the scraper hangs up.
            for _ in 0..256 {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        Behavior::Raw(status, ct, body) => {
            let _ = stream
                .write_all(
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
            let _ = stream.write_all(&body).await;
        }
        Behavior::RedirectLoop => {
            let _ = stream
                .write_all(
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: /debug/pprof/goroutine?hop={n}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await;
        }
    }
    let _ = stream.shutdown().await;
}

/// A job that scrapes only the goroutine profile of `targets` (address, kind label).
fn goroutine_job(
    name: &str,
    interval: &str,
    timeout: &str,
    targets: &[(SocketAddr, &str)],
) -> String {
    let mut yaml = format!(
        "  - job_name: {name}\n    scrape_interval: {interval}\n    scrape_timeout: {timeout}\n    body_size_limit: 4MiB\n    profiling_config:\n      pprof_config:\n        memory: {{enabled: false}}\n        block: {{enabled: false}}\n        mutex: {{enabled: false}}\n        process_cpu: {{enabled: false}}\n    static_configs:\n"
    );
    for (addr, kind) in targets {
        yaml.push_str(&format!(
            "      - targets: ['{addr}']\n        labels: {{kind: {kind}}}\n"
        ));
    }
    yaml
}

/// The Go target, stopped (SIGTERM) when dropped.
struct GoTarget {
    child: Child,
    addr: String,
}

impl GoTarget {
    fn start(script: &Path) -> GoTarget {
        let mut child = Command::new("bash")
            .arg(script)
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run the Go target");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the Go target did not start within 120 s");
        // go-pprof-target listening on http://127.0.0.1:PORT pid=PID
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        GoTarget { child, addr }
    }
}

impl Drop for GoTarget {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peak_rss_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

// ----- tests -----

#[test]
fn the_go_target_is_scraped_with_a_parca_config() {
    let Some(script) = prerequisite("Go (golang-go) for the Go target", go_target_script()) else {
        return;
    };
    let go = GoTarget::start(&script);
    let tmp = tempfile::tempdir().unwrap();
    // Parca's own shape: its FILESYSTEM bucket (a folder beside the config) gets copies of
    // the blocks; pprof_config defaults apply.
    let config = write_config(
        tmp.path(),
        &format!(
            r#"object_storage:
  bucket:
    type: "FILESYSTEM"
    config:
      directory: "./data"
scrape_configs:
  - job_name: "go"
    scrape_interval: "2s"
    scrape_timeout: "4s"
    static_configs:
      - targets: ["{}"]
        labels:
          env: e2e
    profiling_config:
      pprof_config:
        process_cpu:
          seconds: 1
"#,
            go.addr
        ),
    );
    let server = Cinder::start(&["--config", config.to_str().unwrap()]);
    let http = Http::new();
    let wanted = [
        "process_cpu:samples:count:cpu:nanoseconds:delta",
        "memory:alloc_space:bytes:space:bytes:delta",
        "memory:inuse_space:bytes:space:bytes",
        "goroutine:goroutine:count:goroutine:count",
        "mutex:contentions:count:contentions:count:delta",
        "block:contentions:count:contentions:count:delta",
    ];
    wait_for(
        "every profile type of the Go target",
        Duration::from_secs(40),
        || {
            let ids = profile_type_ids(&http, &server);
            wanted
                .iter()
                .all(|w| ids.iter().any(|id| id == w))
                .then_some(())
        },
    );

    let cpu = top(
        &http,
        &server,
        "process_cpu:samples:count:cpu:nanoseconds:delta{job=\"go\", env=\"e2e\"}",
    );
    let names = functions(&cpu);
    let workers = [
        "main.hashWorker",
        "main.sortWorker",
        "main.jsonWorker",
        "main.regexWorker",
    ];
    assert!(
        workers.iter().any(|w| names.iter().any(|n| n == w)),
        "no main.* worker in the CPU top: {names:?}"
    );
    let inuse = top(
        &http,
        &server,
        "memory:inuse_space:bytes:space:bytes{job=\"go\"}",
    );
    assert!(
        functions(&inuse)
            .iter()
            .any(|n| n == "main.buildCacheEntry")
    );
    let mutex = top(
        &http,
        &server,
        "mutex:contentions:count:contentions:count:delta{job=\"go\"}",
    );
    assert!(mutex["total"].as_i64().unwrap() > 0, "{mutex}");

    let all = targets(&http, &server);
    let target = target_with(&all, "job", "go");
    assert_eq!(target["health"], "up", "{target:#}");
    assert_eq!(target["source"], "config");
    assert_eq!(target["labels"]["instance"], go.addr.as_str());
    assert_eq!(target["last_error"], Value::Null);
    assert!(target["last_scrape"].as_i64().unwrap() > 0);
    assert_eq!(target["scrapes"].as_array().unwrap().len(), 5);

    let metrics =
        String::from_utf8(http.get(&format!("{}/metrics", server.url()), false).body).unwrap();
    for line in [
        "cinder_scrapes_total{job=\"go\"}",
        "cinder_targets{job=\"go\",health=\"up\"} 1",
        "cinder_store_head_rows",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}:\n{metrics}");
    }
}

#[test]
fn hostile_targets_get_precise_errors_and_never_delay_a_healthy_one() {
    // 100 gzip members of 1 MiB of zeros: 100 KiB on the wire, 100 MiB inflated.
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 100)
        .collect();
    let kinds: Vec<(&str, Behavior, &str)> = vec![
        (
            "healthy",
            Behavior::Serve(Arc::new(goroutine_profile())),
            "",
        ),
        ("hang", Behavior::Hang, "timed out after 3s: no response"),
        (
            "drip",
            Behavior::Drip,
            "timed out after 3s while reading the body",
        ),
        (
            "huge",
            Behavior::Huge,
            "body exceeds the size limit of 4194304 bytes",
        ),
        (
            "bomb",
            Behavior::Raw("200 OK", "application/octet-stream", Arc::new(bomb)),
            "profile exceeds the size limit of 67108864 bytes (uncompressed)",
        ),
        (
            "garbage",
            Behavior::Raw(
                "200 OK",
                "application/octet-stream",
                Arc::new(b"\xff\xff\xff\xff not a profile".to_vec()),
            ),
            "invalid profile: invalid pprof protobuf",
        ),
        (
            "html",
            Behavior::Raw(
                "200 OK",
                "text/html; charset=utf-8",
                Arc::new(b"<!DOCTYPE html><html><body>pprof index</body></html>".to_vec()),
            ),
            "not a pprof profile: the target answered with HTML",
        ),
        (
            "error500",
            Behavior::Raw(
                "500 Internal Server Error",
                "text/plain",
                Arc::new(b"boom".to_vec()),
            ),
            "HTTP 500 Internal Server Error",
        ),
        ("redirects", Behavior::RedirectLoop, "too many redirects"),
    ];
    let servers = Servers::start(kinds.iter().map(|(_, b, _)| b.clone()).collect());
    let targets_yaml: Vec<(SocketAddr, &str)> = servers
        .addrs
        .iter()
        .zip(&kinds)
        .map(|(a, (k, _, _))| (*a, *k))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "scrape_configs:\n{}",
            goroutine_job("hostile", "2s", "3s", &targets_yaml)
        ),
    );
    let server = Cinder::start(&["--config", config.to_str().unwrap()]);
    let http = Http::new();
    let started = Instant::now();

    // Every hostile target has failed at least once (the slow ones take the 3 s timeout).
    let all = wait_for(
        "every hostile target to fail",
        Duration::from_secs(20),
        || {
            let all = targets(&http, &server);
            let done = kinds.iter().all(|(kind, _, _)| {
                let t = target_with(&all, "kind", kind);
                if *kind == "healthy" {
                    t["health"] == "up"
                } else {
                    t["health"] == "down"
                }
            });
            done.then_some(all)
        },
    );
    for (kind, _, error) in &kinds[1..] {
        let t = target_with(&all, "kind", kind);
        let last_error = t["last_error"].as_str().unwrap_or_default();
        assert!(
            last_error.contains(error),
            "{kind}: last_error {last_error:?} lacks {error:?}"
        );
        assert!(last_error.starts_with("goroutine: "), "{last_error}");
    }

    // Keep them all running a while longer: the healthy one stays on its 2 s schedule.
    let run_for = Duration::from_secs(12);
    std::thread::sleep(run_for.saturating_sub(started.elapsed()));
    let elapsed = started.elapsed().as_secs_f64();
    let all = targets(&http, &server);
    let healthy = target_with(&all, "kind", "healthy");
    assert_eq!(healthy["health"], "up");
    let scrape = &healthy["scrapes"][0];
    let scrapes = scrape["scrapes"].as_u64().unwrap();
    let expected = elapsed / 2.0;
    assert!(
        scrapes as f64 >= expected - 2.0,
        "healthy target scraped {scrapes} times in {elapsed:.1}s (every 2 s expected)"
    );
    assert_eq!(scrape["skipped_ticks"], 0, "{scrape}");
    assert!(
        scrape["last_duration_ms"].as_u64().unwrap() < 1000,
        "{scrape}"
    );
    let served = servers.count(0);
    assert!(
        (scrapes..=scrapes + 1).contains(&served),
        "the healthy target saw {served} requests for {scrapes} scrapes"
    );
    // The slow hostile ones outlast the interval: their skipped ticks are counted.
    let hang = target_with(&all, "kind", "hang");
    assert!(
        hang["scrapes"][0]["skipped_ticks"].as_u64().unwrap() >= 1,
        "{hang:#}"
    );
    // The healthy target's data is there.
    let goroutines = top(
        &http,
        &server,
        "goroutine:goroutine:count:goroutine:count{kind=\"healthy\"}",
    );
    assert!(functions(&goroutines).contains(&"main.healthyWorker".to_owned()));
    // The huge body and the bomb did not blow up memory.
    if let Some(rss) = peak_rss_mib(server.pid()) {
        eprintln!("cinder peak RSS with hostile targets: {rss} MiB");
        assert!(rss < 400, "peak RSS {rss} MiB");
    }
}

#[test]
fn cumulative_allocations_are_stored_as_deltas() {
    let scrapes = vec![
        allocs_profile(&[("main.a", 10, 2), ("main.b", 5, 1)]),
        allocs_profile(&[("main.a", 25, 3), ("main.b", 5, 1)]),
        allocs_profile(&[("main.a", 45, 1), ("main.b", 20, 4)]),
    ];
    let servers = Servers::start(vec![Behavior::Sequence(Arc::new(scrapes))]);
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &format!(
            "scrape_configs:\n  - job_name: allocs\n    scrape_interval: 1s\n    static_configs: [{{targets: ['{}']}}]\n    profiling_config:\n      pprof_config:\n        block: {{enabled: false}}\n        goroutine: {{enabled: false}}\n        mutex: {{enabled: false}}\n        process_cpu: {{enabled: false}}\n",
            servers.addrs[0]
        ),
    );
    let server = Cinder::start(&["--config", config.to_str().unwrap()]);
    let http = Http::new();
    // Three distinct scrapes, then one more of the last (no growth: nothing stored).
    wait_for("four scrapes", Duration::from_secs(15), || {
        (servers.count(0) >= 4).then_some(())
    });
    wait_for(
        "the fourth scrape to be stored",
        Duration::from_secs(5),
        || {
            let all = targets(&http, &server);
            (all[0]["scrapes"][0]["scrapes"].as_u64().unwrap() >= 4).then_some(())
        },
    );
    let objects = top(
        &http,
        &server,
        "memory:alloc_objects:count:space:bytes:delta{job=\"allocs\"}",
    );
    let flat: HashMap<String, i64> = objects["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["flat"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(flat.get("main.a"), Some(&35), "45 - 10: {objects}");
    assert_eq!(flat.get("main.b"), Some(&15), "20 - 5: {objects}");
    assert_eq!(objects["total"], 50);
    let space = top(
        &http,
        &server,
        "memory:alloc_space:bytes:space:bytes:delta{job=\"allocs\"}",
    );
    assert_eq!(space["total"], 50 * 1024);
    // In-use memory is a snapshot per scrape, not a delta.
    let ids = profile_type_ids(&http, &server);
    assert!(
        ids.contains(&"memory:inuse_space:bytes:space:bytes".to_owned()),
        "{ids:?}"
    );
    assert!(
        !ids.iter()
            .any(|id| id.starts_with("memory:alloc_objects") && !id.ends_with(":delta"))
    );
    let range = http
        .get(
            &format!(
                "{}/api/v1/query_range?query={}&{ALL_TIME}&step=1y",
                server.url(),
                enc("memory:alloc_objects:count:space:bytes:delta{job=\"allocs\"}")
            ),
            false,
        )
        .json();
    let points: i64 = range["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .sum();
    assert_eq!(points, 50, "{range}");
}

#[test]
fn api_targets_are_guarded_validated_persisted_and_scraped() {
    let servers = Servers::start(vec![Behavior::Serve(Arc::new(goroutine_profile()))]);
    let mut server = Cinder::start(&["--api-token", "s3cret"]);
    let http = reqwest_client();
    let url = format!("{}/api/v1/targets", server.url());
    let body = json!({
        "job": "api-job",
        "address": servers.addrs[0].to_string(),
        "scheme": "http",
        "interval": "1s",
        "timeout": "2s",
        "profiles": ["goroutine"],
        "labels": {"team": "core"},
    });

    // No token, a wrong token: 401. Ingest needs it too.
    assert_eq!(send(&http, "POST", &url, None, &body).0, 401);
    assert_eq!(send(&http, "POST", &url, Some("nope"), &body).0, 401);
    let (status, _) = send(
        &http,
        "POST",
        &format!("{}/api/v1/ingest?__name__=x", server.url()),
        None,
        &json!({}),
    );
    assert_eq!(status, 401);

    // Cinder's own profile endpoint needs the token too (its self-scrape sends it).
    let profile_url = format!("{}/debug/pprof/profile?seconds=1", server.url());
    assert_eq!(send(&http, "GET", &profile_url, None, &Value::Null).0, 401);
    let own_profile = http.1.block_on(async {
        let resp = http
            .0
            .get(&profile_url)
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.bytes().await.unwrap())
    });
    // The token lets the request through: a gzipped profile, or a 409 while the
    // self-scrape records its own CPU profile back to back (one profiler at a time).
    match own_profile.0 {
        200 => assert!(own_profile.1.starts_with(&[0x1f, 0x8b]), "gzipped pprof"),
        409 => {
            let body: Value = serde_json::from_slice(&own_profile.1).expect("a JSON error");
            assert!(body["error"].is_string(), "{body}");
        }
        other => panic!("the token was not accepted: {other}"),
    }

    // Validation names the field.
    for (bad, field) in [
        (
            json!({"job": "j", "address": "169.254.169.254:80"}),
            "address",
        ),
        (
            json!({"job": "j", "address": "x:1", "scheme": "gopher"}),
            "scheme",
        ),
        (
            json!({"job": "j", "address": "x:1", "interval": "100ms"}),
            "interval",
        ),
        (
            json!({"job": "j", "address": "x:1", "interval": "10s", "timeout": "3s"}),
            "timeout",
        ),
        (
            json!({"job": "j", "address": "x:1", "labels": {"a-b": "c"}}),
            "labels.a-b",
        ),
    ] {
        let (status, answer) = send(&http, "POST", &url, Some("s3cret"), &bad);
        assert_eq!(status, 400, "{bad}: {answer}");
        assert_eq!(answer["field"], field, "{bad}: {answer}");
        assert!(answer["detail"].as_str().unwrap().len() > 10, "{answer}");
    }

    let (status, created) = send(&http, "POST", &url, Some("s3cret"), &body);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["source"], "api");
    assert_eq!(created["labels"]["team"], "core");
    assert_eq!(created["profiles"], json!(["goroutine"]));
    // The same address again in the same job is a duplicate.
    let (status, dup) = send(&http, "POST", &url, Some("s3cret"), &body);
    assert_eq!(
        (status, dup["field"].as_str()),
        (400, Some("address")),
        "{dup}"
    );

    // The config's own target (the self-scrape) is read-only.
    let all = list(&http, &server);
    let own = all
        .iter()
        .find(|t| t["job"] == "cinder")
        .expect("the self-scrape target");
    assert_eq!(own["source"], "config");
    let own_url = format!("{url}/{}", own["id"].as_str().unwrap());
    assert_eq!(
        send(&http, "DELETE", &own_url, Some("s3cret"), &json!(null)).0,
        403
    );
    assert_eq!(send(&http, "PUT", &own_url, Some("s3cret"), &body).0, 403);
    assert_eq!(
        send(
            &http,
            "DELETE",
            &format!("{url}/nope"),
            Some("s3cret"),
            &json!(null)
        )
        .0,
        404
    );

    // Back after a restart (SIGKILL), with its id, and scraped.
    let before = servers.count(0);
    server.restart();
    let url = format!("{}/api/v1/targets", server.url());
    let all = list(&http, &server);
    let target = all
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("the API target after a restart");
    assert_eq!(target["labels"]["team"], "core");
    wait_for(
        "the restored target to be scraped",
        Duration::from_secs(10),
        || {
            let all = list(&http, &server);
            let t = all.iter().find(|t| t["id"] == id.as_str())?;
            (t["health"] == "up" && servers.count(0) > before).then_some(())
        },
    );

    // PUT changes it (the UI sends back what GET gave, edited); DELETE removes it.
    let mut edited = target.clone();
    edited["labels"]["team"] = json!("edge");
    let (status, changed) = send(
        &http,
        "PUT",
        &format!("{url}/{id}"),
        Some("s3cret"),
        &edited,
    );
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["labels"]["team"], "edge");
    assert_eq!(changed["id"], id.as_str());
    assert_eq!(
        send(
            &http,
            "DELETE",
            &format!("{url}/{id}"),
            Some("s3cret"),
            &json!(null)
        )
        .0,
        204
    );
    assert!(list(&http, &server).iter().all(|t| t["id"] != id.as_str()));

    // --targets-api=false: reads work, writes are 403.
    let read_only = Cinder::start(&["--targets-api=false"]);
    let url = format!("{}/api/v1/targets", read_only.url());
    assert_eq!(send(&http, "POST", &url, None, &body).0, 403);
    assert_eq!(send(&http, "GET", &url, None, &json!(null)).0, 200);
}

fn reqwest_client() -> (reqwest::Client, tokio::runtime::Runtime) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    (
        reqwest::Client::new(),
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    )
}

fn send(
    (client, rt): &(reqwest::Client, tokio::runtime::Runtime),
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    rt.block_on(async {
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if !body.is_null() {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    })
}

fn list(http: &(reqwest::Client, tokio::runtime::Runtime), server: &Cinder) -> Vec<Value> {
    let (status, body) = send(
        http,
        "GET",
        &format!("{}/api/v1/targets", server.url()),
        None,
        &Value::Null,
    );
    assert_eq!(status, 200);
    body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|j| j["targets"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn sighup_and_target_files_reload_keeping_unchanged_loops() {
    let servers = Servers::start(vec![
        Behavior::Serve(Arc::new(goroutine_profile())),
        Behavior::Serve(Arc::new(goroutine_profile())),
        Behavior::Serve(Arc::new(goroutine_profile())),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let sd = tmp.path().join("sd");
    std::fs::create_dir(&sd).unwrap();
    let job = |extra: &str| {
        format!(
            "scrape_configs:\n{}    file_sd_configs:\n      - files: ['sd/*.json']\n{extra}",
            goroutine_job(
                "reload",
                "1s",
                "2s",
                &[(servers.addrs[0], "a"), (servers.addrs[1], "b")]
            )
        )
    };
    let config = write_config(tmp.path(), &job(""));
    let server = Cinder::start(&["--config", config.to_str().unwrap()]);
    let http = Http::new();
    let scrapes_of = |all: &[Value], kind: &str| {
        target_with(all, "kind", kind)["scrapes"][0]["scrapes"]
            .as_u64()
            .unwrap()
    };
    wait_for("a and b scraped twice", Duration::from_secs(10), || {
        let all = targets(&http, &server);
        (scrapes_of(&all, "a") >= 2 && scrapes_of(&all, "b") >= 2).then_some(())
    });

    // A target file appears: its target is scraped, with the file's labels.
    std::fs::write(
        sd.join("more.json"),
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"kind": "c"}}}}]"#,
            servers.addrs[2]
        ),
    )
    .unwrap();
    wait_for(
        "the file target to be scraped",
        Duration::from_secs(10),
        || {
            let all = targets(&http, &server);
            let c = all.iter().find(|t| t["labels"]["kind"] == "c")?;
            (c["health"] == "up").then_some(())
        },
    );

    // SIGHUP with b relabelled: a keeps its loop (its count goes on), b starts afresh.
    let all = targets(&http, &server);
    let a_before = scrapes_of(&all, "a");
    let relabel = "    relabel_configs:\n      - {source_labels: [kind], regex: b, target_label: kind, replacement: b2}\n";
    std::fs::write(&config, job(relabel)).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let all = wait_for("b relabelled to b2", Duration::from_secs(10), || {
        let all = targets(&http, &server);
        all.iter()
            .any(|t| t["labels"]["kind"] == "b2")
            .then_some(all)
    });
    assert!(all.iter().all(|t| t["labels"]["kind"] != "b"));
    assert!(scrapes_of(&all, "a") >= a_before, "a's loop was kept");
    assert!(scrapes_of(&all, "b2") < a_before, "b2 is a new loop");

    // A broken config on SIGHUP keeps the running one.
    std::fs::write(&config, "scrape_configs:\n  - job_nam: x\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(targets(&http, &server).len(), 3);
}

#[test]
fn a_bad_config_file_is_one_line_naming_the_key_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "scrape_configs:\n  - job_name: a\n    scrape_intervall: 10s\n",
    );
    let out = Command::new(crate::harness::cinder_bin())
        .args(["--config", config.to_str().unwrap(), "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("scrape_intervall") && last.contains("line 3"),
        "stderr: {stderr}"
    );
}

#[test]
fn cinder_with_no_flags_profiles_itself() {
    let server = Cinder::start(&[]);
    let http = Http::new();
    let started = Instant::now();
    let query = "process_cpu:samples:count:cpu:nanoseconds:delta{job=\"cinder\"}";
    // Give it some work to profile while waiting: queries and metrics.
    // The first CPU profile: its loop's offset (up to 10 s), 10 s of recording, then
    // symbolization; under a loaded machine that can take more than 30 s.
    let names = wait_for("Cinder's own CPU profile", Duration::from_secs(45), || {
        for _ in 0..20 {
            let _ = http.get(&format!("{}/metrics", server.url()), false);
            let _ = http.get(&format!("{}/api/v1/targets", server.url()), false);
        }
        let ids = profile_type_ids(&http, &server);
        if !ids
            .iter()
            .any(|id| id == "process_cpu:samples:count:cpu:nanoseconds:delta")
        {
            return None;
        }
        let names = functions(&top(&http, &server, query));
        names
            .iter()
            .any(|n| n.starts_with("backend::"))
            .then_some(names)
    });
    eprintln!(
        "own CPU profile queryable after {:.1}s; top: {:?}",
        started.elapsed().as_secs_f64(),
        &names[..names.len().min(5)]
    );
    // Its heap too, symbolized: Cinder's own functions hold memory.
    let heap = "memory:inuse_space:bytes:space:bytes{job=\"cinder\"}";
    let own_heap = wait_for("Cinder's own heap profile", Duration::from_secs(30), || {
        let ids = profile_type_ids(&http, &server);
        if !ids
            .iter()
            .any(|id| id == "memory:inuse_space:bytes:space:bytes")
        {
            return None;
        }
        let names = functions(&top(&http, &server, heap));
        let own: Vec<String> = names
            .into_iter()
            .filter(|n| n.starts_with("backend::") || n.starts_with("cinder::"))
            .collect();
        (own.len() >= 5).then_some(own)
    });
    eprintln!(
        "own heap functions: {:?}",
        &own_heap[..own_heap.len().min(8)]
    );
    let all = targets(&http, &server);
    let own = target_with(&all, "job", "cinder");
    assert_eq!(own["labels"]["instance"], server.addr.to_string());
    assert_eq!(own["health"], "up");
}
