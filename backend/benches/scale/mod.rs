//! The query bench's `scale` case: the release `cinder` binary scraping 100 fake targets,
//! each serving Parca's 5 default profiles (`process_cpu`, `memory`, `block`, `mutex`,
//! `goroutine`) every 10 s, for [`RUN`]; its resident memory is sampled every 5 s.
//!
//! The targets answer with real profiles of the shared set: the heavy Go CPU profile
//! `gdu__default.pgo` for CPU, `parca__alloc_objects.pb.gz` for memory,
//! `goprofnotes__block-net.pb.gz` for block and mutex, and a goroutine profile, without
//! `time_nanos` (so the scrape's time stands), encoded once up front. The n-th answer of
//! a cumulative one (memory, block, mutex) has its values multiplied by n (up to
//! [`VARIANTS`]), so that each scrape's delta is the whole profile again, as a busy
//! process's would be. Answers come at once (a real target holds the CPU request for its
//! `seconds`).

use std::{
    collections::HashMap,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use backend::ingest::DEFAULT_MAX_UNCOMPRESSED;
use proto::{Message as _, Profile};

use crate::{figure, gzip, note, over_http};

const TARGETS: usize = 100;
/// How long the server scrapes.
const RUN: Duration = Duration::from_secs(150);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Encoded answers per cumulative profile: more than the scrapes of one [`RUN`].
const VARIANTS: i64 = 20;

/// Gzipped answers by path: one for a plain profile, [`VARIANTS`] for a cumulative one.
type Answers = HashMap<&'static str, Vec<Vec<u8>>>;

/// (path the scraper asks for, file of the shared set, cumulative).
const SERVED: [(&str, &str, bool); 5] = [
    ("/debug/pprof/profile", "gdu__default.pgo", false),
    ("/debug/pprof/allocs", "parca__alloc_objects.pb.gz", true),
    ("/debug/pprof/block", "goprofnotes__block-net.pb.gz", true),
    ("/debug/pprof/mutex", "goprofnotes__block-net.pb.gz", true),
    (
        "/debug/pprof/goroutine",
        "goprofnotes__1.net.http.pprof.goroutine.debug0.pb.gz",
        false,
    ),
];

/// Runs the case with profiles from `corpus`; prints `kv` figures and notes.
pub(crate) fn case(corpus: &Path) -> Result<()> {
    let bin = match over_http::binary() {
        Ok(bin) => bin,
        Err(e) => {
            note(&format!("scale case skipped: {e:#}"));
            return Ok(());
        }
    };
    let profiles: &'static Answers = Box::leak(Box::new(answers(corpus)?));
    let mut addrs = Vec::with_capacity(TARGETS);
    for _ in 0..TARGETS {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        addrs.push(listener.local_addr()?.to_string());
        thread::spawn(move || serve(&listener, profiles));
    }
    let dir = tempfile::tempdir()?;
    let list = addrs
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let config = format!(
        "scrape_configs:\n  - job_name: fake\n    scrape_interval: 10s\n    static_configs:\n      - targets: [{list}]\n"
    );
    let server = over_http::start_with(&bin, dir.path(), &config)?;
    let start = Instant::now();
    let mut rss = Vec::new();
    while start.elapsed() < RUN {
        thread::sleep(SAMPLE_EVERY);
        rss.push(over_http::rss_mib(&server)?);
    }
    let (_, hwm) = over_http::rss_mib(&server)?;
    let last = rss.last().map_or(0.0, |r| r.0);
    let max = rss.iter().map(|r| r.0).fold(0.0, f64::max);
    figure(
        "server_rss",
        format!("{last:.0} / {hwm:.0} (max sampled {max:.0})"),
    );
    note(&format!(
        "VmRSS every {} s (MiB): {}",
        SAMPLE_EVERY.as_secs(),
        rss.iter()
            .map(|r| format!("{:.0}", r.0))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let (code, metrics) = over_http::request(&server.addr, "GET", "/metrics", &[])?;
    if code == 200 {
        let text = String::from_utf8_lossy(&metrics);
        for line in text.lines().filter(|l| {
            l.starts_with("cinder_targets{") || l.starts_with("cinder_samples_ingested_total")
        }) {
            note(line);
        }
    }
    let (code, heap) = over_http::request(&server.addr, "GET", "/debug/pprof/heap", &[])?;
    if code == 200 {
        let out = std::env::temp_dir().join("cinder-scale-heap.pb.gz");
        fs::write(&out, heap)?;
        note(&format!(
            "the server's own heap profile at the end: {}",
            out.display()
        ));
    }
    Ok(())
}

/// Every answer, encoded and gzipped up front.
fn answers(corpus: &Path) -> Result<Answers> {
    let mut answers = HashMap::new();
    for (path, file, cumulative) in SERVED {
        let mut profile: Profile =
            proto::read(&fs::read(corpus.join(file))?, DEFAULT_MAX_UNCOMPRESSED)
                .with_context(|| format!("reading {file}"))?;
        profile.time_nanos = 0;
        let mut bodies = Vec::new();
        if cumulative {
            for n in 1..=VARIANTS {
                let mut scaled = profile.clone();
                for sample in &mut scaled.sample {
                    sample.value.iter_mut().for_each(|v| *v *= n);
                }
                bodies.push(gzip(&scaled.encode_to_vec())?);
            }
        } else {
            profile.duration_nanos = 10_000_000_000;
            bodies.push(gzip(&profile.encode_to_vec())?);
        }
        answers.insert(path, bodies);
    }
    Ok(answers)
}

/// Answers every connection of one fake target.
fn serve(listener: &TcpListener, answers: &Answers) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for stream in listener.incoming().flatten() {
        let _ = answer(stream, answers, &mut counts);
    }
}

fn answer(
    mut stream: TcpStream,
    answers: &Answers,
    counts: &mut HashMap<String, usize>,
) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    let Some(bodies) = answers.get(path) else {
        write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    };
    let count = counts.entry(path.to_owned()).or_default();
    let body = &bodies[(*count).min(bodies.len() - 1)];
    *count += 1;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    Ok(())
}
