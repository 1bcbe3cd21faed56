//! Query benchmark: prints the read-path figures Cinder reports, as plain text. Nothing is
//! asserted; timings depend on the machine.
//!
//! Two cases, each in its own process (this binary re-run with `--phase case …`, so each
//! reports its own peak RSS):
//!
//! - **light**: a 10 s CPU profile captured once, at the start, from the Go target
//!   (`tests/targets/go-pprof-target`, a few hundred samples with a `worker` label); when
//!   Go or the target is missing, `pyroscope__go.cpu.labels.pprof` stands in (a note says so);
//! - **heavy**: `gdu__default.pgo`, the 3,006-sample Go CPU profile of the shared set.
//!
//! For each case:
//!
//! 1. An hour of 10 targets scraped every 10 s: the profile decoded, re-stamped
//!    (`time_nanos` = one of 360 steps 10 s apart ending just before now, `duration_nanos`
//!    = 10 s), re-encoded and gzipped, and ingested under 10 `instance` labels: 3,600
//!    profiles, in time order, into a fresh store on disk (retention off). Ingest time is
//!    the `ingest()` calls alone; flushes due during it and the final flush + compaction are
//!    timed apart. Parts, row groups and rows are read from the Parquet footers.
//! 2. Queries through the real HTTP app (`backend::app`, called in-process with
//!    `tower::ServiceExt::oneshot`, the body collected): `report=stacks` merges of the whole
//!    hour (all targets), of the last 5 minutes, of one target over the hour, and
//!    `query_range` over the hour with `step=10s`. Each runs after warm-ups until
//!    [`REPS`] repetitions or [`REP_BUDGET`]; p50/p95 are nearest-rank. The whole-hour
//!    answer's Arrow bytes and their gzip (level 6) size are printed, and it is decoded
//!    to check its total against what was ingested.
//! 3. Where the time goes, in-process without HTTP: `query::merge` (DataFusion scan +
//!    aggregate), `query::resolve` (stack → frames from sled) and `ipc::write_stacks`
//!    (Arrow IPC encoding) of the whole-hour merge, p50 of each.
//! 4. Side by side: the same 3,600 profiles written as files and merged with
//!    `go tool pprof -proto <files…> > merged.pb.gz` (Debian's `golang-go`); the ratio is
//!    its time over Cinder's whole-hour p50. Skipped with a note when `go` is missing.
//!
//! More cases:
//!
//! - **http** (`over_http`): the hour of 10 targets of [`HTTP_DEFAULT`] (or
//!   `QUERY_BENCH_HTTP_PROFILE`) as a client sees it: pushed over HTTP by 4 concurrent
//!   pushers to the release `cinder` binary (`target/release/cinder`, or
//!   `QUERY_BENCH_BIN`), then 7 whole-hour merges 2 s after the last acknowledgement, with
//!   no forced flush or compaction. Skipped with a note when the binary is missing.
//! - **day** and **week** (only when named in `QUERY_BENCH_CASES`): 24 h and 7 days of 10
//!   targets of the light profile, written through the store's own write path
//!   (`ingest::ingest`, synthetic timestamps 10 s apart ending now, retention off), with a
//!   compaction after each simulated hour; the "hour" queries then cover the whole range.
//! - **scale** (only when named): the release binary scraping 100 fake targets × Parca's 5
//!   default profiles every 10 s for 150 s (`scale`); its RSS over time and at the end.
//!
//! The heavy and light cases also report the peak RSS of their final flush + compaction
//! (VmHWM reset through `/proc/self/clear_refs` just before it).
//!
//! Run: `CINDER_SHARED_DIR=…/shared cargo bench -p backend --bench query`
//! (about 5 minutes here). While iterating: `QUERY_BENCH_CASES=heavy` runs one case,
//! `QUERY_BENCH_NO_GO=1` skips `go tool pprof`; `QUERY_BENCH_CASES=day,week` runs the
//! long ranges.

#![allow(clippy::print_stdout)]

mod common;
mod over_http;
mod scale;

use std::{
    fs,
    hint::black_box,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use backend::{
    api::AppState,
    ingest::{DEFAULT_MAX_UNCOMPRESSED, IngestOptions, ingest},
    query::{self, Selection},
    store::{Store, StoreOptions},
    web::UiSource,
};
use common::{corpus_dir, status_kib};
use flate2::{Compression, write::GzEncoder};
use proto::{Message as _, Profile};
use shared::{ipc, labels::Labels, view::encode};
use tower::ServiceExt as _;

/// The project's Go scrape target.
const GO_TARGET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/targets/go-pprof-target/run.sh"
);
/// Stands in for the Go target's profile when Go or the target is missing.
const LIGHT_FALLBACK: &str = "pyroscope__go.cpu.labels.pprof";
const HEAVY: &str = "gdu__default.pgo";
/// The `http` case's profile unless `QUERY_BENCH_HTTP_PROFILE` names another file of the set.
const HTTP_DEFAULT: &str = HEAVY;
const TARGETS: usize = 10;
const STEPS: usize = 360;
const STEP_MS: i64 = 10_000;
/// The 5-minute window: the last 30 steps.
const WINDOW_STEPS: usize = 30;
const PROFILE_NAME: &str = "process_cpu";
const TYPE_ID: &str = "process_cpu:samples:count:cpu:nanoseconds:delta";
/// Repetitions per query after the warm-ups, unless [`REP_BUDGET`] runs out first.
const REPS: usize = 30;
const WARMUPS: usize = 3;
const MIN_REPS: usize = 5;
const REP_BUDGET: Duration = Duration::from_secs(30);
/// Repetitions of the in-process splits.
const SPLIT_REPS: usize = 10;
/// `go tool pprof` runs again (up to 3 times) while one run takes less than this.
const GO_REPEAT_BELOW: Duration = Duration::from_secs(20);

fn main() -> Result<()> {
    let dir = corpus_dir();
    let dir = dir.as_path();
    if !dir.join(HEAVY).is_file() {
        println!(
            "query bench: no real profiles at {} ({HEAVY} missing); nothing measured.",
            dir.display()
        );
        return Ok(());
    }
    let args: Vec<String> = std::env::args().collect();
    match arg(&args, "--phase") {
        Some(_) => run_case(&args),
        None => run_all(dir),
    }
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).map(String::as_str)
}

// ----- parent: capture, run each case in a child, print -----

/// One case: which profile, where it came from, how many hours of it.
struct Case {
    name: &'static str,
    path: PathBuf,
    source: String,
    hours: usize,
}

/// What a child printed: `kv\t<key>\t<value>` figures, notes, and its peak RSS.
#[derive(Default)]
struct ChildOutput {
    figures: Vec<(String, String)>,
    notes: Vec<String>,
    peak_kib: Option<u64>,
}

impl ChildOutput {
    fn get(&self, key: &str) -> &str {
        self.figures
            .iter()
            .find(|(k, _)| k == key)
            .map_or("-", |(_, v)| v.as_str())
    }
}

fn figure(key: &str, value: impl std::fmt::Display) {
    println!("kv\t{key}\t{value}");
}

fn note(text: &str) {
    println!("note\t{text}");
}

fn run_all(dir: &Path) -> Result<()> {
    println!("Cinder query benchmark");
    println!(
        "{TARGETS} targets x {STEPS} profiles 10 s apart = {} profiles per case (an hour), type {TYPE_ID}",
        TARGETS * STEPS
    );
    let scratch = tempfile::tempdir()?;
    let wanted = std::env::var("QUERY_BENCH_CASES").unwrap_or_else(|_| "light,heavy,http".into());
    let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
    let needs_light = ["light", "day", "week"].iter().any(|c| wanted.contains(c));
    let light = match capture_go_target(scratch.path(), needs_light) {
        Ok((path, source)) => Case {
            name: "light",
            path,
            source,
            hours: 1,
        },
        Err(e) => {
            println!(
                "note: no profile from the Go target ({e:#}); using {LIGHT_FALLBACK} as the light case"
            );
            Case {
                name: "light",
                path: dir.join(LIGHT_FALLBACK),
                source: format!("{LIGHT_FALLBACK} (fallback)"),
                hours: 1,
            }
        }
    };
    let heavy = Case {
        name: "heavy",
        path: dir.join(HEAVY),
        source: HEAVY.to_owned(),
        hours: 1,
    };
    let http_profile =
        std::env::var("QUERY_BENCH_HTTP_PROFILE").unwrap_or_else(|_| HTTP_DEFAULT.to_owned());
    let http = Case {
        name: "http",
        path: dir.join(&http_profile),
        source: format!("{http_profile}, over HTTP to the release binary"),
        hours: 1,
    };
    let long = |name, hours| Case {
        name,
        path: light.path.clone(),
        source: format!("the light profile, {hours} h of 10 targets"),
        hours,
    };
    let (day, week) = (long("day", 24), long("week", 24 * 7));
    let scale = Case {
        name: "scale",
        path: dir.join(HEAVY),
        source: "100 fake targets x Parca's 5 profiles @ 10 s, 150 s, release binary".into(),
        hours: 1,
    };
    let cases: Vec<&Case> = [&light, &heavy, &http, &day, &week, &scale]
        .into_iter()
        .filter(|c| wanted.contains(&c.name))
        .collect();
    let mut outputs = Vec::new();
    for case in &cases {
        println!("running the {} case ({}) ...", case.name, case.source);
        outputs.push(run_child(case)?);
    }
    println!();
    print_table(&cases, &outputs);
    Ok(())
}

/// Captures one 10 s CPU profile from the Go target; returns its path and a description.
fn capture_go_target(scratch: &Path, wanted: bool) -> Result<(PathBuf, String)> {
    anyhow::ensure!(wanted, "light case not run");
    anyhow::ensure!(Path::new(GO_TARGET).is_file(), "{GO_TARGET} missing");
    let mut child = Command::new(GO_TARGET)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the Go target")?;
    let result = (|| {
        let mut first = String::new();
        BufReader::new(child.stdout.take().context("target stdout")?).read_line(&mut first)?;
        // go-pprof-target listening on http://127.0.0.1:PORT pid=PID
        let addr = first
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .with_context(|| format!("unexpected first line {first:?}"))?
            .to_owned();
        let body = http_get(&addr, "/debug/pprof/profile?seconds=10")?;
        let path = scratch.join("go-target.cpu.pb.gz");
        fs::write(&path, &body)?;
        let samples = proto::read(&body, DEFAULT_MAX_UNCOMPRESSED)?.sample.len();
        Ok((
            path,
            format!("go-pprof-target 10 s CPU profile, {samples} samples"),
        ))
    })();
    // run.sh execs the binary: the child's pid is the server's.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    result
}

/// A plain HTTP/1.0 GET (the answer is not chunked); returns the body of a 200.
fn http_get(addr: &str, path: &str) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]);
    anyhow::ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "answer {}",
        head.lines().next().unwrap_or_default()
    );
    Ok(response[split + 4..].to_vec())
}

fn run_child(case: &Case) -> Result<ChildOutput> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--phase", "case", "--name", case.name, "--profile"])
        .arg(&case.path)
        .args(["--hours", &case.hours.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running the {} case", case.name))?;
    anyhow::ensure!(
        output.status.success(),
        "the {} case failed ({})",
        case.name,
        output.status
    );
    let mut out = ChildOutput::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let mut fields = line.splitn(3, '\t');
        match (fields.next(), fields.next(), fields.next()) {
            (Some("kv"), Some(k), Some(v)) => out.figures.push((k.to_owned(), v.to_owned())),
            (Some("rss"), Some(kib), None) => out.peak_kib = kib.parse().ok(),
            (Some("note"), Some(text), None) => out.notes.push(text.to_owned()),
            _ => out.notes.push(line.to_owned()),
        }
    }
    Ok(out)
}

/// Rows of the side-by-side table: (figure key, label).
const TABLE: [(&str, &str); 30] = [
    ("samples", "pprof samples per profile"),
    ("gz_bytes", "gzipped bytes per profile"),
    ("rows", "rows stored (both sample types)"),
    ("type_rows", "rows of the queried type"),
    ("series", "series of the queried type"),
    ("ingest_s", "ingest all profiles (s)"),
    ("ingest_ms", "  per profile (ms)"),
    ("push_ms", "  push latency, 4 pushers: p50 / p99 ms"),
    ("flush_s", "flushes + compaction, untimed above (s)"),
    (
        "compact_rss",
        "  peak RSS in final flush + compaction (MiB)",
    ),
    ("parts", "Blocks after compaction"),
    ("row_groups", "  row groups"),
    ("parquet_mb", "  MB on disk"),
    (
        "merge_hour",
        "merge all (hour/day/week), 10 targets: p50/p95 ms",
    ),
    ("merge_5m", "merge 5 min, 10 targets: p50 / p95 ms"),
    ("merge_one", "merge all, 1 target: p50 / p95 ms"),
    (
        "range_hour",
        "query_range all, step 10s (week 60s): p50/p95 ms",
    ),
    ("reps", "  repetitions (each query)"),
    ("arrow_bytes", "hour merge: Arrow IPC bytes"),
    ("arrow_gz_bytes", "  gzipped (level 6)"),
    ("stacks", "  stacks / frames"),
    ("range_bytes", "query_range hour: JSON bytes"),
    ("split_merge", "split: query::merge (DataFusion) p50 ms"),
    ("split_resolve", "split: query::resolve (sled) p50 ms"),
    ("split_encode", "split: ipc::write_stacks (Arrow) p50 ms"),
    ("go_s", "go tool pprof -proto, 3,600 files (s)"),
    ("go_runs", "  runs (median taken)"),
    ("ratio", "go tool pprof / Cinder hour merge p50"),
    ("rss_mib", "peak RSS of the case process (MiB)"),
    ("server_rss", "server RSS / peak RSS at the end (MiB)"),
];

fn print_table(cases: &[&Case], outputs: &[ChildOutput]) {
    for case in cases {
        println!("{:<6} {}", case.name, case.source);
    }
    println!();
    print!("{:<52}", "");
    for case in cases {
        print!(" {:>22}", case.name);
    }
    println!();
    for (key, label) in TABLE {
        print!("{label:<52}");
        for out in outputs {
            let value = if key == "rss_mib" {
                out.peak_kib
                    .map_or_else(|| "n/a".to_owned(), |k| format!("{:.0}", k as f64 / 1024.0))
            } else {
                out.get(key).to_owned()
            };
            print!(" {value:>22}");
        }
        println!();
    }
    for (case, out) in cases.iter().zip(outputs) {
        if !out.notes.is_empty() {
            println!();
            for n in &out.notes {
                println!("{}: {n}", case.name);
            }
        }
    }
}

// ----- child: one case -----

fn run_case(args: &[String]) -> Result<()> {
    let path = Path::new(arg(args, "--profile").context("--profile")?);
    let hours: usize = arg(args, "--hours").unwrap_or("1").parse()?;
    match arg(args, "--name") {
        Some("http") => return over_http::case(path),
        Some("scale") => return scale::case(&corpus_dir()),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(case(path, hours))?;
    println!(
        "rss\t{}",
        status_kib("VmHWM:").map_or_else(String::new, |k| k.to_string())
    );
    Ok(())
}

/// The hour's time steps (unix ms), ending one step before now.
fn steps() -> Vec<i64> {
    steps_of(STEPS)
}

/// `n` time steps 10 s apart (unix ms), ending one step before now.
fn steps_of(n: usize) -> Vec<i64> {
    let last = backend::store::now_ms() / STEP_MS * STEP_MS - STEP_MS;
    (0..n)
        .map(|i| last - (n - 1 - i) as i64 * STEP_MS)
        .collect()
}

fn instance(target: usize) -> String {
    format!("10.0.0.{}:6060", target + 1)
}

/// One case over `hours` hours of 10 targets. Past one hour, the profiles are not written
/// as files (no `go tool pprof` side by side) and the store compacts once per simulated
/// hour, as its maintenance would.
async fn case(path: &Path, hours: usize) -> Result<()> {
    let mut profile: Profile = proto::read(&fs::read(path)?, DEFAULT_MAX_UNCOMPRESSED)?;
    figure("samples", profile.sample.len());
    let n_steps = STEPS * hours;
    let long = hours > 1;
    let steps = steps_of(n_steps);
    let files = tempfile::tempdir()?;
    let data = tempfile::tempdir()?;
    let store = Store::open(
        data.path(),
        StoreOptions {
            retention: Duration::ZERO,
            ..StoreOptions::default()
        },
    )?;

    // 1. An hour of 10 targets, in time order.
    let mut file_paths = Vec::with_capacity(if long { 0 } else { n_steps * TARGETS });
    let (mut ingest_time, mut flush_time) = (Duration::ZERO, Duration::ZERO);
    let (mut rows, mut type_rows, mut type_total, mut gz_bytes) = (0u64, 0u64, 0i64, 0usize);
    for (i, &t) in steps.iter().enumerate() {
        profile.time_nanos = t * 1_000_000;
        profile.duration_nanos = STEP_MS * 1_000_000;
        let body = gzip(&profile.encode_to_vec())?;
        gz_bytes = body.len();
        for target in 0..TARGETS {
            if !long {
                let file = files.path().join(format!("t{target:02}-{i:03}.pb.gz"));
                fs::write(&file, &body)?;
                file_paths.push(file);
            }
            let labels: Labels = [
                ("__name__", PROFILE_NAME),
                ("job", "bench"),
                ("instance", instance(target).as_str()),
            ]
            .into_iter()
            .collect();
            let options = IngestOptions {
                received_ms: t,
                ..IngestOptions::now()
            };
            let start = Instant::now();
            let summary = ingest(&store, &body, &labels, &options)?;
            ingest_time += start.elapsed();
            for s in &summary.profile_types {
                rows += s.samples;
                if s.profile_type == TYPE_ID {
                    type_rows += s.samples;
                    type_total += s.total;
                }
            }
            let start = Instant::now();
            store.flush_if_due()?;
            flush_time += start.elapsed();
        }
        if long && i % STEPS == STEPS - 1 {
            let start = Instant::now();
            store.compact()?;
            flush_time += start.elapsed();
        }
    }
    let rss_before = status_kib("VmRSS:").unwrap_or(0);
    let reset = reset_peak_rss();
    let start = Instant::now();
    store.flush()?;
    while store.compact()? > 0 {}
    flush_time += start.elapsed();
    match reset {
        Ok(()) => figure(
            "compact_rss",
            format!(
                "{:.0} (from {:.0})",
                status_kib("VmHWM:").unwrap_or(0) as f64 / 1024.0,
                rss_before as f64 / 1024.0
            ),
        ),
        Err(e) => note(&format!("peak RSS of the compaction not measured: {e}")),
    }
    figure("gz_bytes", gz_bytes);
    figure("rows", rows);
    figure("type_rows", type_rows);
    figure("ingest_s", format!("{:.2}", ingest_time.as_secs_f64()));
    figure(
        "ingest_ms",
        format!(
            "{:.2}",
            ingest_time.as_secs_f64() * 1e3 / (n_steps * TARGETS) as f64
        ),
    );
    figure("flush_s", format!("{:.2}", flush_time.as_secs_f64()));
    let sizes = store.sizes();
    // The live parts (retired ones stay on disk for a grace period).
    let live = store.snapshot(TYPE_ID, i64::MIN, i64::MAX).parts;
    let (row_groups, part_rows) = parquet_footers(&live)?;
    figure("parts", sizes.parts);
    figure("row_groups", row_groups);
    figure(
        "parquet_mb",
        format!("{:.1}", sizes.parquet_bytes as f64 / 1e6),
    );
    note(&format!(
        "{part_rows} rows in the live Parquet parts, {} in the head after the final flush",
        sizes.head_rows
    ));

    // 2. Queries through the HTTP app.
    let store = Arc::new(store);
    let state = AppState::new();
    state.set_store(store.clone());
    let app = backend::app(state, UiSource::Missing);
    let types = get(&app, "/api/v1/profile-types").await?;
    anyhow::ensure!(
        String::from_utf8_lossy(&types).contains(TYPE_ID),
        "{TYPE_ID} not among the profile types"
    );
    let (first, last) = (steps[0], steps[n_steps - 1]);
    let all = format!("{TYPE_ID}{{}}");
    let one = format!("{TYPE_ID}{{instance=\"{}\"}}", instance(3));
    let stacks_uri = |q: &str, start: i64, end: i64| {
        format!("/api/v1/query?query={}&start={start}&end={end}", encode(q))
    };
    let hour = stacks_uri(&all, first, last);
    let window = stacks_uri(&all, steps[n_steps - WINDOW_STEPS], last);
    let one_target = stacks_uri(&one, first, last);
    // The API answers at most 11,000 points: a week is read at 1 min steps.
    let step = if n_steps > 10_000 { "60s" } else { "10s" };
    let range = format!(
        "/api/v1/query_range?query={}&start={first}&end={last}&step={step}",
        encode(&all)
    );
    let mut reps = Vec::new();
    for (key, uri) in [
        ("merge_hour", &hour),
        ("merge_5m", &window),
        ("merge_one", &one_target),
        ("range_hour", &range),
    ] {
        let times = timed(|| get(&app, uri)).await?;
        reps.push(times.len());
        figure(
            key,
            format!("{:.1} / {:.1}", ms(pct(&times, 50)), ms(pct(&times, 95))),
        );
    }
    figure(
        "reps",
        reps.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" / "),
    );

    // The whole-hour answer: size, and a check of its total.
    let arrow = get(&app, &hour).await?;
    figure("arrow_bytes", arrow.len());
    figure("arrow_gz_bytes", gzip(&arrow)?.len());
    let decoded = ipc::decode_stacks(&arrow)?;
    figure(
        "stacks",
        format!(
            "{} / {}",
            decoded.stacks.stacks.len(),
            decoded.stacks.frames.len()
        ),
    );
    let range_body = get(&app, &range).await?;
    figure("range_bytes", range_body.len());
    let range_json: serde_json::Value = serde_json::from_slice(&range_body)?;
    let series = range_json["series"].as_array().map_or(0, Vec::len);
    figure("series", series);
    note(&format!(
        "hour merge total {} ({}), ingested total {type_total}{}; query_range: {series} series",
        decoded.meta.total,
        decoded.meta.unit,
        if decoded.meta.total == type_total {
            ", equal"
        } else {
            ", DIFFERENT"
        }
    ));

    // 3. Where the time goes.
    let sel = Selection {
        profile_type: TYPE_ID.parse().context("type id")?,
        selector: shared::labels::Selector::default(),
        start: first,
        end: last,
    };
    let mut merge_times = Vec::new();
    let mut resolve_times = Vec::new();
    let mut encode_times = Vec::new();
    let split_reps = if long { 3 } else { SPLIT_REPS };
    for i in 0..split_reps + 1 {
        let start = Instant::now();
        let merged = query::merge(&store, &sel).await?;
        let merge_time = start.elapsed();
        let start = Instant::now();
        let set = query::resolve(&store.meta, &merged, &[])?;
        let resolve_time = start.elapsed();
        let meta = ipc::StacksMeta {
            unit: "count".into(),
            total: set.total(),
            profile_type: TYPE_ID.into(),
            ..ipc::StacksMeta::default()
        };
        let start = Instant::now();
        black_box(ipc::write_stacks(Vec::new(), &set, &meta)?);
        let encode_time = start.elapsed();
        if i > 0 {
            merge_times.push(merge_time);
            resolve_times.push(resolve_time);
            encode_times.push(encode_time);
        }
    }
    for (key, times) in [
        ("split_merge", &mut merge_times),
        ("split_resolve", &mut resolve_times),
        ("split_encode", &mut encode_times),
    ] {
        times.sort();
        figure(key, format!("{:.2}", ms(pct(times, 50))));
    }

    // 4. go tool pprof on the same files.
    let hour_p50 = {
        let times = timed(|| get(&app, &hour)).await?;
        pct(&times, 50)
    };
    let go = if long {
        Err(anyhow::anyhow!("not run past one hour"))
    } else if std::env::var_os("QUERY_BENCH_NO_GO").is_some() {
        Err(anyhow::anyhow!("QUERY_BENCH_NO_GO is set"))
    } else {
        go_pprof(&file_paths, files.path())
    };
    match go {
        Ok((go, runs, merged_total)) => {
            figure("go_s", format!("{:.2}", go.as_secs_f64()));
            figure("go_runs", runs);
            figure(
                "ratio",
                format!("{:.0}x", go.as_secs_f64() / hour_p50.as_secs_f64()),
            );
            // go tool pprof drops samples with an empty stack; Cinder keeps them.
            let difference = type_total - merged_total;
            note(&format!(
                "go tool pprof merged total of samples/count: {merged_total}, Cinder's minus it: {difference} ({} per profile); ratio against a fresh hour-merge p50 of {:.1} ms",
                difference as f64 / (n_steps * TARGETS) as f64,
                ms(hour_p50)
            ));
        }
        Err(e) => note(&format!("go tool pprof skipped: {e:#}")),
    }
    Ok(())
}

/// Resets this process's VmHWM to its current RSS (Linux `clear_refs`, value 5).
fn reset_peak_rss() -> std::io::Result<()> {
    fs::write("/proc/self/clear_refs", "5")
}

/// (row groups, rows) over the given Parquet parts.
fn parquet_footers(parts: &[PathBuf]) -> Result<(usize, i64)> {
    use parquet::file::reader::{FileReader as _, SerializedFileReader};
    let (mut groups, mut rows) = (0, 0);
    for path in parts {
        let reader = SerializedFileReader::new(fs::File::open(path)?)?;
        let meta = reader.metadata();
        groups += meta.num_row_groups();
        rows += meta.file_metadata().num_rows();
    }
    Ok((groups, rows))
}

/// GET through the app; the whole body, or an error for a non-200.
async fn get(app: &Router, uri: &str) -> Result<bytes::Bytes> {
    let request = Request::get(uri).body(Body::empty())?;
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "{uri}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(body)
}

/// Times `f` after [`WARMUPS`] runs: [`REPS`] runs, or fewer (at least [`MIN_REPS`]) once
/// [`REP_BUDGET`] is spent. Sorted.
async fn timed<F, Fut>(mut f: F) -> Result<Vec<Duration>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bytes::Bytes>>,
{
    for _ in 0..WARMUPS {
        black_box(f().await?);
    }
    let budget = Instant::now();
    let mut times = Vec::with_capacity(REPS);
    while times.len() < REPS && (times.len() < MIN_REPS || budget.elapsed() < REP_BUDGET) {
        let start = Instant::now();
        black_box(f().await?);
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times)
}

/// Nearest-rank percentile of sorted durations.
fn pct(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `go tool pprof -proto` over the files (again while fast); returns the median time,
/// the runs and the merged profile's total of its first sample type.
fn go_pprof(files: &[PathBuf], dir: &Path) -> Result<(Duration, usize, i64)> {
    let out = dir.join("merged.pb.gz");
    let mut times = Vec::new();
    loop {
        let start = Instant::now();
        let status = Command::new("go")
            .args(["tool", "pprof", "-proto"])
            .args(files)
            .stdout(fs::File::create(&out)?)
            .stderr(Stdio::piped())
            .output()
            .context("running go (apt-get install golang-go)")?;
        let elapsed = start.elapsed();
        anyhow::ensure!(
            status.status.success(),
            "go tool pprof failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        times.push(elapsed);
        if times.len() >= 3 || elapsed >= GO_REPEAT_BELOW {
            break;
        }
    }
    times.sort();
    let merged = proto::read(&fs::read(&out)?, 1 << 30)?;
    let total = merged.sample.iter().map(|s| s.value[0]).sum();
    Ok((times[times.len() / 2], times.len(), total))
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}
