//! Ingest benchmark: prints the write-path figures Cinder reports, as plain text. Nothing
//! is asserted; timings depend on the machine.
//!
//! 1. Throughput: MB/s (MB = 10^6 bytes) of *uncompressed* pprof ingested end to end
//!    (gunzip → prost decode → validate → normalize → WAL append + fsync → head) over every
//!    profile `expected.json` marks valid in `shared/testdata/pprof`, the whole set repeated
//!    until at least 3 s have passed, into a fresh store. Printed beside the bound: gunzip +
//!    decode + validate alone of the same bodies. Run with the store on the real disk (one
//!    fsync per ingest) and on tmpfs (fsync ≈ free), each next to the raw latency of small
//!    fsyncs on that file system, to show how much of an ingest is the fsync.
//! 2. Disk per sample: one target for an hour — a Go CPU profile ingested 360 times with
//!    `time_nanos` 10 s apart (decoded, re-stamped, re-encoded, re-gzipped), then flushed to
//!    Parquet. Bytes on disk (Parquet, sled, WAL; the store's own count and a walk of the data
//!    directory) per stored row and relative to the gzipped bytes received. Repeated for a
//!    heavy Go CPU profile.
//! 3. Peak RSS: each measurement runs in its own process (this binary re-run with
//!    `--phase <name>`) and reports its VmHWM, so each peak belongs to that phase alone.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p backend --bench ingest`

#![allow(clippy::print_stdout)]

mod common;

use std::{
    fs,
    hint::black_box,
    io::{Read as _, Write as _},
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use backend::{
    ingest::{DEFAULT_MAX_UNCOMPRESSED, IngestOptions, ingest},
    store::{Store, StoreOptions, StoreSizes},
};
use common::{corpus_dir, status_kib};
use flate2::{Compression, read::MultiGzDecoder, write::GzEncoder};
use proto::{Message as _, Profile};
use shared::labels::Labels;

/// Where the "fsync ≈ free" variant keeps its store.
const TMPFS: &str = "/dev/shm";
/// Each throughput variant repeats the whole set until at least this long.
const MIN_RUN: Duration = Duration::from_secs(3);
/// Raw fsyncs timed per file system.
const FSYNC_PROBES: usize = 200;
/// An hour of one target scraped every 10 s.
const HOUR_COPIES: usize = 360;
const STEP_NANOS: i64 = 10_000_000_000;
/// The realistic 10 s Go CPU profile, then the heavy one.
const HOUR_PROFILES: [&str; 2] = ["pyroscope__go.cpu.labels.pprof", "gdu__default.pgo"];
const MB: f64 = 1e6;

fn main() -> Result<()> {
    let dir = corpus_dir();
    let dir = dir.as_path();
    if !dir.join("expected.json").is_file() {
        println!(
            "ingest bench: no real profiles at {} (expected.json missing); nothing measured.",
            dir.display()
        );
        return Ok(());
    }
    match phase_arg() {
        Some(phase) => run_phase(&phase, dir),
        None => run_all(dir),
    }
}

// ----- phases: the parent runs each in a child process -----

/// `--phase <name>`: this process is a child running one measurement.
fn phase_arg() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--phase")?;
    args.get(at + 1).cloned()
}

/// What a child printed: table rows, notes, and its peak RSS.
#[derive(Default)]
struct ChildOutput {
    rows: Vec<String>,
    notes: Vec<String>,
    peak_kib: Option<u64>,
}

/// Children tag each stdout line: `row\t…`, `note\t…` or `rss\t<VmHWM kB>`.
fn row(text: &str) {
    println!("row\t{text}");
}

fn note(text: &str) {
    println!("note\t{text}");
}

fn run_child(phase: &str) -> Result<ChildOutput> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--phase", phase])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running phase {phase}"))?;
    anyhow::ensure!(
        output.status.success(),
        "phase {phase} failed ({})",
        output.status
    );
    let mut out = ChildOutput::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        match line.split_once('\t') {
            Some(("row", text)) => out.rows.push(text.to_owned()),
            Some(("rss", kib)) => out.peak_kib = kib.parse().ok(),
            Some(("note", text)) => out.notes.push(text.to_owned()),
            _ => out.notes.push(line.to_owned()),
        }
    }
    Ok(out)
}

/// Child side: one measurement, then its peak RSS.
fn run_phase(phase: &str, dir: &Path) -> Result<()> {
    match phase {
        "load" => _ = black_box(Corpus::load(dir)?),
        "bound" => row(&run_bound(&Corpus::load(dir)?)?.format()),
        "disk" => end_to_end_phase(&Corpus::load(dir)?, &std::env::temp_dir(), "disk")?,
        "tmpfs" => end_to_end_phase(&Corpus::load(dir)?, Path::new(TMPFS), "tmpfs")?,
        other => {
            let name = other
                .strip_prefix("hour")
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| HOUR_PROFILES.get(i))
                .with_context(|| format!("unknown phase {other:?}"))?;
            hour_phase(dir, name)?;
        }
    }
    println!(
        "rss\t{}",
        status_kib("VmHWM:").map_or_else(String::new, |k| k.to_string())
    );
    Ok(())
}

/// Parent side: runs every phase and prints the report.
fn run_all(dir: &Path) -> Result<()> {
    let corpus = Corpus::load(dir)?;
    print_corpus(&corpus);
    let mut peaks = vec![(
        "load + decode the corpus only".to_owned(),
        run_child("load")?.peak_kib,
    )];
    throughput_section(&mut peaks)?;
    disk_section(dir, &mut peaks)?;
    print_peaks(&peaks);
    Ok(())
}

// ----- the corpus -----

/// One real profile as a client would send it.
struct Body {
    name: String,
    bytes: Vec<u8>,
    uncompressed: usize,
    samples: usize,
}

/// Every valid real profile, in name order.
struct Corpus {
    bodies: Vec<Body>,
    skipped: Vec<String>,
}

impl Corpus {
    fn load(dir: &Path) -> Result<Corpus> {
        let expected: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("expected.json"))?)?;
        let entries = expected
            .as_object()
            .context("expected.json is not an object")?;
        let mut corpus = Corpus {
            bodies: Vec::new(),
            skipped: Vec::new(),
        };
        for (name, entry) in entries {
            if entry["valid"] != serde_json::Value::Bool(true) {
                continue;
            }
            match Body::load(&dir.join(name), name) {
                Ok(body) => corpus.bodies.push(body),
                Err(e) => corpus.skipped.push(format!("{name}: {e:#}")),
            }
        }
        Ok(corpus)
    }

    fn uncompressed(&self) -> usize {
        self.bodies.iter().map(|b| b.uncompressed).sum()
    }

    fn received(&self) -> usize {
        self.bodies.iter().map(|b| b.bytes.len()).sum()
    }

    fn samples(&self) -> usize {
        self.bodies.iter().map(|b| b.samples).sum()
    }
}

impl Body {
    fn load(path: &Path, name: &str) -> Result<Body> {
        let bytes = fs::read(path)?;
        let uncompressed = if proto::is_gzip(&bytes) {
            gunzip(&bytes)?.len()
        } else {
            bytes.len()
        };
        let profile = proto::read(&bytes, DEFAULT_MAX_UNCOMPRESSED)?;
        profile.validate()?;
        Ok(Body {
            name: name.to_owned(),
            samples: profile.sample.len(),
            bytes,
            uncompressed,
        })
    }

    /// Fixed series labels: the same every pass, so passes after the first are steady state.
    fn labels(&self) -> Labels {
        [
            ("__name__", "ingest_bench"),
            ("job", "bench"),
            ("instance", self.name.as_str()),
        ]
        .into_iter()
        .collect()
    }
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

fn print_corpus(corpus: &Corpus) {
    println!("Cinder ingest benchmark");
    println!(
        "corpus: {} valid real profiles in {}: {:.3} MB as sent (gzip or raw), {:.3} MB uncompressed, {} pprof samples",
        corpus.bodies.len(),
        corpus_dir().display(),
        corpus.received() as f64 / MB,
        corpus.uncompressed() as f64 / MB,
        corpus.samples(),
    );
    for skipped in &corpus.skipped {
        println!("skipped {skipped}");
    }
    println!();
}

// ----- 1. throughput -----

/// What one throughput variant measured.
struct Run {
    label: String,
    passes: usize,
    ingests: usize,
    elapsed: Duration,
    first_pass: Duration,
    rows: u64,
    bytes_per_pass: usize,
    samples_per_pass: usize,
}

impl Run {
    fn mb_per_s(&self, elapsed: Duration, passes: usize) -> f64 {
        (self.bytes_per_pass * passes) as f64 / MB / elapsed.as_secs_f64()
    }

    fn print_header() {
        println!(
            "{:<40} {:>6} {:>7} {:>7} {:>6} {:>7} {:>8} {:>7} {:>9} {:>7} {:>9}",
            "variant",
            "passes",
            "ingests",
            "MB in",
            "secs",
            "MB/s",
            "1st pass",
            "steady",
            "ns/sample",
            "ns/row",
            "µs/ingest"
        );
    }

    fn format(&self) -> String {
        let samples = (self.samples_per_pass * self.passes) as f64;
        let ns = self.elapsed.as_nanos() as f64;
        let per_row = if self.rows == 0 {
            "-".to_owned()
        } else {
            format!("{:.0}", ns / self.rows as f64)
        };
        let steady = if self.passes < 2 {
            "-".to_owned()
        } else {
            format!(
                "{:.1}",
                self.mb_per_s(self.elapsed - self.first_pass, self.passes - 1)
            )
        };
        format!(
            "{:<40} {:>6} {:>7} {:>7.1} {:>6.2} {:>7.1} {:>8.1} {:>7} {:>9.0} {:>7} {:>9.0}",
            self.label,
            self.passes,
            self.ingests,
            (self.bytes_per_pass * self.passes) as f64 / MB,
            self.elapsed.as_secs_f64(),
            self.mb_per_s(self.elapsed, self.passes),
            self.mb_per_s(self.first_pass, 1),
            steady,
            ns / samples,
            per_row,
            ns / 1e3 / self.ingests as f64,
        )
    }
}

/// Runs `each` over the whole corpus, pass after pass, until [`MIN_RUN`] has passed. Only
/// `each` is timed; `after_pass` (e.g. a due flush) runs between passes, untimed. `each`
/// returns the rows it stored.
fn timed_passes(
    label: &str,
    corpus: &Corpus,
    mut each: impl FnMut(usize, &Body) -> Result<u64>,
    mut after_pass: impl FnMut() -> Result<()>,
) -> Result<Run> {
    let mut run = Run {
        label: label.to_owned(),
        passes: 0,
        ingests: 0,
        elapsed: Duration::ZERO,
        first_pass: Duration::ZERO,
        rows: 0,
        bytes_per_pass: corpus.uncompressed(),
        samples_per_pass: corpus.samples(),
    };
    while run.elapsed < MIN_RUN {
        let start = Instant::now();
        for (i, body) in corpus.bodies.iter().enumerate() {
            run.rows += each(i, body)?;
        }
        let pass = start.elapsed();
        if run.passes == 0 {
            run.first_pass = pass;
        }
        run.elapsed += pass;
        run.passes += 1;
        run.ingests += corpus.bodies.len();
        after_pass()?;
    }
    Ok(run)
}

/// The bound: gunzip + prost decode + validation, nothing stored.
fn run_bound(corpus: &Corpus) -> Result<Run> {
    timed_passes(
        "bound: gunzip + decode + validate",
        corpus,
        |_, body| {
            let profile = proto::read(&body.bytes, DEFAULT_MAX_UNCOMPRESSED)?;
            black_box(profile.index()?);
            Ok(0)
        },
        || Ok(()),
    )
}

/// The store's defaults with retention off: the corpus's profiles carry their own (old)
/// `time_nanos`, which a store with a retention refuses as out of its window.
fn options() -> StoreOptions {
    StoreOptions {
        retention: Duration::ZERO,
        ..StoreOptions::default()
    }
}

/// Flushes done between passes of an end-to-end run.
#[derive(Default)]
struct Flushes {
    count: usize,
    time: Duration,
}

/// End to end into a fresh store under `parent`; the head is flushed between passes when
/// due (as the server's maintenance would), outside the timing.
fn run_end_to_end(label: &str, corpus: &Corpus, parent: &Path) -> Result<(Run, Flushes)> {
    let dir = tempfile::tempdir_in(parent)?;
    let store = Store::open(dir.path(), options())?;
    let labels: Vec<Labels> = corpus.bodies.iter().map(Body::labels).collect();
    let mut flushes = Flushes::default();
    let run = timed_passes(
        label,
        corpus,
        |i, body| {
            let summary = ingest(&store, &body.bytes, &labels[i], &IngestOptions::now())
                .with_context(|| format!("ingesting {}", body.name))?;
            Ok(summary.profile_types.iter().map(|t| t.samples).sum())
        },
        || {
            if store.flush_due() {
                let start = Instant::now();
                store.flush()?;
                flushes.count += 1;
                flushes.time += start.elapsed();
            }
            Ok(())
        },
    )?;
    Ok((run, flushes))
}

/// Child: one end-to-end variant, its flushes, and the fsync latency of its file system.
fn end_to_end_phase(corpus: &Corpus, parent: &Path, which: &str) -> Result<()> {
    let label = format!("end to end, store on {which} ({})", parent.display());
    let (run, flushes) = run_end_to_end(&label, corpus, parent)?;
    row(&run.format());
    note(&format!(
        "{which}: head flushed to Parquet {} time(s) between passes when due (flush_rows {}), {:.2} s, not in the timings",
        flushes.count,
        StoreOptions::default().flush_rows,
        flushes.time.as_secs_f64()
    ));
    let fsync = fsync_latency(parent)?;
    note(&format!(
        "{which}: raw 4 KiB append + fdatasync x{FSYNC_PROBES}: median {:.1} µs, p90 {:.1} µs, mean {:.1} µs",
        micros(fsync.median),
        micros(fsync.p90),
        micros(fsync.mean)
    ));
    let fsync_secs = fsync.median.as_secs_f64() * run.ingests as f64;
    note(&format!(
        "{which}: {} ingests x median fsync = {:.2} s ~ {:.0}% of the {:.2} s timed (one WAL fsync per ingest)",
        run.ingests,
        fsync_secs,
        100.0 * fsync_secs / run.elapsed.as_secs_f64(),
        run.elapsed.as_secs_f64()
    ));
    Ok(())
}

/// Latency of appending 4 KiB to a file and `fdatasync`-ing it, as the WAL does.
struct FsyncLatency {
    median: Duration,
    p90: Duration,
    mean: Duration,
}

fn fsync_latency(parent: &Path) -> Result<FsyncLatency> {
    let dir = tempfile::tempdir_in(parent)?;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("probe"))?;
    let block = [0x5a_u8; 4096];
    let mut times = Vec::with_capacity(FSYNC_PROBES);
    for _ in 0..FSYNC_PROBES {
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(start.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / FSYNC_PROBES as u32;
    Ok(FsyncLatency {
        median: times[FSYNC_PROBES / 2],
        p90: times[FSYNC_PROBES * 9 / 10],
        mean,
    })
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn throughput_section(peaks: &mut Vec<(String, Option<u64>)>) -> Result<()> {
    println!(
        "1. Throughput (MB = 10^6 bytes of uncompressed pprof; the whole set repeated for >= {} s per variant)",
        MIN_RUN.as_secs()
    );
    println!(
        "   labels fixed per profile: {{__name__=\"ingest_bench\", job=\"bench\", instance=<file name>}}, so pass 1 stores all"
    );
    println!(
        "   metadata and later passes find it known (steady state). received_ms = now; all but 3 profiles carry their own time_nanos."
    );
    println!(
        "   1st pass / steady = MB/s of pass 1 / of the later passes; ns/sample per pprof Sample; ns/row per stored row (sample x non-zero value)."
    );
    println!();
    Run::print_header();
    let mut notes = Vec::new();
    let mut phases = vec![
        ("bound", "1a. bound: gunzip + decode + validate"),
        ("disk", "1b. end to end, store on disk"),
    ];
    if Path::new(TMPFS).is_dir() {
        phases.push(("tmpfs", "1c. end to end, store on tmpfs"));
    } else {
        notes.push(format!("no {TMPFS}: the tmpfs variant is skipped"));
    }
    for (phase, title) in phases {
        let out = run_child(phase)?;
        out.rows.iter().for_each(|r| println!("{r}"));
        notes.extend(out.notes);
        peaks.push((title.to_owned(), out.peak_kib));
    }
    println!();
    notes.iter().for_each(|n| println!("   {n}"));
    println!();
    Ok(())
}

// ----- 2. disk per sample -----

/// Bytes of one part of the data directory, as the store counts them and as a walk finds.
struct Component {
    name: &'static str,
    counted: u64,
    apparent: u64,
    allocated: u64,
}

/// What an hour of one target left on disk.
struct Hour {
    received_gz: u64,
    pprof_samples: u64,
    rows: u64,
    ingest_time: Duration,
    before_flush: StoreSizes,
    after_flush: StoreSizes,
    components: Vec<Component>,
}

fn disk_section(dir: &Path, peaks: &mut Vec<(String, Option<u64>)>) -> Result<()> {
    println!(
        "2. Disk per sample: one target for an hour = {HOUR_COPIES} ingests of one Go CPU profile, time_nanos = base + i*10 s"
    );
    println!(
        "   (decoded, re-stamped, re-encoded, gzipped at level 6); fresh store on disk; fixed labels; then one store.flush()."
    );
    println!(
        "   B/row and B/sample use the walked bytes; \"/ gz recv\" = bytes on disk / gzipped bytes received."
    );
    for (i, name) in HOUR_PROFILES.iter().enumerate() {
        if !dir.join(name).is_file() {
            println!("   {name}: missing, skipped");
            continue;
        }
        let out = run_child(&format!("hour{i}"))?;
        println!();
        out.notes.iter().for_each(|n| println!("   {n}"));
        peaks.push((format!("2{}. hour of {name}", ['a', 'b'][i]), out.peak_kib));
    }
    println!();
    Ok(())
}

/// Child: an hour of one target, reported as notes.
fn hour_phase(dir: &Path, name: &str) -> Result<()> {
    let hour = ingest_hour(&dir.join(name))?;
    note(&format!(
        "{name}: {} pprof samples -> {} rows stored; {:.3} MB gzipped received; ingest {:.2} s ({:.1} ms/ingest)",
        hour.pprof_samples,
        hour.rows,
        hour.received_gz as f64 / MB,
        hour.ingest_time.as_secs_f64(),
        hour.ingest_time.as_secs_f64() * 1e3 / HOUR_COPIES as f64
    ));
    note(&format!(
        "before flush: wal {} B, sled {} B, head {} rows; after flush: {} part(s), head {} rows",
        hour.before_flush.wal_bytes,
        hour.before_flush.sled_bytes,
        hour.before_flush.head_rows,
        hour.after_flush.parts,
        hour.after_flush.head_rows
    ));
    note(&format!(
        "{:<18} {:>12} {:>12} {:>12} {:>8} {:>9} {:>10}",
        "after flush", "sizes() B", "walk B", "allocated B", "B/row", "B/sample", "/ gz recv"
    ));
    let mut total = Component {
        name: "total",
        counted: 0,
        apparent: 0,
        allocated: 0,
    };
    for c in &hour.components {
        note(&format_component(c, &hour));
        total.counted += c.counted;
        total.apparent += c.apparent;
        total.allocated += c.allocated;
    }
    note(&format_component(&total, &hour));
    Ok(())
}

fn ingest_hour(path: &Path) -> Result<Hour> {
    let mut profile: Profile = proto::read(&fs::read(path)?, DEFAULT_MAX_UNCOMPRESSED)?;
    let base = if profile.time_nanos > 0 {
        profile.time_nanos
    } else {
        backend::store::now_ms() * 1_000_000
    };
    let data = tempfile::tempdir()?;
    let store = Store::open(data.path(), options())?;
    let labels: Labels = [
        ("__name__", "process_cpu"),
        ("job", "app"),
        ("instance", "10.0.0.1:6060"),
    ]
    .into_iter()
    .collect();
    let (mut received_gz, mut rows, mut ingest_time) = (0u64, 0u64, Duration::ZERO);
    for i in 0..HOUR_COPIES {
        profile.time_nanos = base + i as i64 * STEP_NANOS;
        let body = gzip(&profile.encode_to_vec())?;
        received_gz += body.len() as u64;
        let options = IngestOptions {
            received_ms: profile.time_nanos / 1_000_000,
            ..IngestOptions::now()
        };
        let start = Instant::now();
        let summary = ingest(&store, &body, &labels, &options)?;
        ingest_time += start.elapsed();
        rows += summary.profile_types.iter().map(|t| t.samples).sum::<u64>();
    }
    let before_flush = store.sizes();
    store.flush()?;
    let after_flush = store.sizes();
    let components = vec![
        component(
            "blocks (blocks/)",
            after_flush.parquet_bytes,
            &data.path().join("blocks"),
        )?,
        component(
            "sled (meta/)",
            after_flush.sled_bytes,
            &data.path().join("meta"),
        )?,
        component(
            "wal (wal/)",
            after_flush.wal_bytes,
            &data.path().join("wal"),
        )?,
    ];
    Ok(Hour {
        received_gz,
        pprof_samples: (profile.sample.len() * HOUR_COPIES) as u64,
        rows,
        ingest_time,
        before_flush,
        after_flush,
        components,
    })
}

fn component(name: &'static str, counted: u64, dir: &Path) -> Result<Component> {
    let (apparent, allocated) = walk(dir)?;
    Ok(Component {
        name,
        counted,
        apparent,
        allocated,
    })
}

/// (apparent bytes, allocated bytes) of every file under `dir`.
fn walk(dir: &Path) -> Result<(u64, u64)> {
    let (mut apparent, mut allocated) = (0, 0);
    if !dir.exists() {
        return Ok((0, 0));
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (a, b) = walk(&entry.path())?;
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((apparent, allocated))
}

fn format_component(c: &Component, hour: &Hour) -> String {
    format!(
        "{:<18} {:>12} {:>12} {:>12} {:>8.2} {:>9.2} {:>10.3}",
        c.name,
        c.counted,
        c.apparent,
        c.allocated,
        c.apparent as f64 / hour.rows as f64,
        c.apparent as f64 / hour.pprof_samples as f64,
        c.apparent as f64 / hour.received_gz as f64
    )
}

// ----- 3. peak RSS -----

fn print_peaks(peaks: &[(String, Option<u64>)]) {
    println!(
        "3. Peak RSS (VmHWM of the process that ran each phase alone; includes loading the corpus)"
    );
    println!("   {:<48} {:>10}", "phase", "MiB");
    for (name, kib) in peaks {
        let mib = kib.map_or_else(|| "n/a".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0));
        println!("   {name:<48} {mib:>10}");
    }
}
