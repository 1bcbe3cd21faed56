//! Cinder's own metrics, served at `GET /metrics` in the Prometheus text format: scrapes
//! and failures per job, scrape durations, samples ingested, store sizes, query counts and
//! durations. Hand-written: a few counters and histograms behind one mutex each.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::store::{StoreSizes, bucket::UploadStats};

/// Upper bounds (seconds) of the scrape duration histogram buckets.
const SCRAPE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];
/// Upper bounds (seconds) of the query duration histogram buckets.
const QUERY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative histogram.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Clone)]
struct JobMetrics {
    scrapes: u64,
    failures: u64,
    skipped_ticks: u64,
    samples: u64,
    duration: Histogram,
}

impl Default for JobMetrics {
    fn default() -> Self {
        JobMetrics {
            scrapes: 0,
            failures: 0,
            skipped_ticks: 0,
            samples: 0,
            duration: Histogram::new(SCRAPE_BUCKETS),
        }
    }
}

/// Counts and timings of queries of one endpoint.
#[derive(Debug, Clone)]
struct QueryMetrics {
    by_status: BTreeMap<u16, u64>,
    duration: Histogram,
}

/// Targets per job and health, as the scrape manager reports them when rendering.
pub type TargetHealthCounts = BTreeMap<(String, &'static str), u64>;

/// All of Cinder's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    jobs: Mutex<BTreeMap<String, JobMetrics>>,
    queries: Mutex<BTreeMap<String, QueryMetrics>>,
    pushed_samples: AtomicU64,
    pushed_profiles: AtomicU64,
    /// Refused requests (and rows that lost a label) by endpoint and reason.
    rejected: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// The bucket uploader's counters, once `object_storage` is configured.
    bucket: OnceLock<Arc<UploadStats>>,
}

/// What one finished scrape contributes.
#[derive(Debug, Clone, Copy)]
pub struct ScrapeObservation {
    pub duration: Duration,
    pub ok: bool,
    pub samples: u64,
    pub skipped_ticks: u64,
}

impl Metrics {
    /// Records one scrape of a target of `job`.
    pub fn scrape(&self, job: &str, obs: ScrapeObservation) {
        let mut jobs = self.jobs.lock().expect("metrics lock");
        let m = jobs.entry(job.to_owned()).or_default();
        m.scrapes += 1;
        if !obs.ok {
            m.failures += 1;
        }
        m.samples += obs.samples;
        m.skipped_ticks += obs.skipped_ticks;
        m.duration.observe(obs.duration.as_secs_f64());
    }

    /// Records one pushed profile.
    pub fn pushed(&self, samples: u64) {
        self.pushed_profiles.fetch_add(1, Ordering::Relaxed);
        self.pushed_samples.fetch_add(samples, Ordering::Relaxed);
    }

    /// Counts `n` things refused at `endpoint` (a route, or `scrape`) for `reason`.
    pub fn rejected(&self, endpoint: &str, reason: &'static str, n: u64) {
        let mut rejected = self.rejected.lock().expect("metrics lock");
        *rejected.entry((endpoint.to_owned(), reason)).or_default() += n;
    }

    /// Records one query of `endpoint` (e.g. `/api/v1/query`).
    pub fn query(&self, endpoint: &str, status: u16, duration: Duration) {
        let mut queries = self.queries.lock().expect("metrics lock");
        let m = queries
            .entry(endpoint.to_owned())
            .or_insert_with(|| QueryMetrics {
                by_status: BTreeMap::new(),
                duration: Histogram::new(QUERY_BUCKETS),
            });
        *m.by_status.entry(status).or_default() += 1;
        m.duration.observe(duration.as_secs_f64());
    }

    /// Includes the bucket uploader's counters from now on.
    pub fn set_bucket(&self, stats: Arc<UploadStats>) {
        let _ = self.bucket.set(stats);
    }

    /// The text exposition, with the store's sizes and the targets' health when known.
    pub fn render(&self, sizes: Option<StoreSizes>, targets: &TargetHealthCounts) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP cinder_build_info Cinder's version.\n# TYPE cinder_build_info gauge\ncinder_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let jobs = self.jobs.lock().expect("metrics lock").clone();
        let counter = |out: &mut String, name: &str, help: &str, get: fn(&JobMetrics) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (job, m) in &jobs {
                let _ = writeln!(out, "{name}{{job={}}} {}", quote(job), get(m));
            }
        };
        counter(
            &mut out,
            "cinder_scrapes_total",
            "Scrapes attempted, per job.",
            |m| m.scrapes,
        );
        counter(
            &mut out,
            "cinder_scrape_failures_total",
            "Scrapes that failed, per job.",
            |m| m.failures,
        );
        counter(
            &mut out,
            "cinder_scrape_skipped_ticks_total",
            "Scheduled scrapes skipped because the previous one was still running, per job.",
            |m| m.skipped_ticks,
        );
        let _ = writeln!(
            out,
            "# HELP cinder_scrape_duration_seconds Duration of scrapes, per job.\n# TYPE cinder_scrape_duration_seconds histogram"
        );
        for (job, m) in &jobs {
            m.duration.render(
                &mut out,
                "cinder_scrape_duration_seconds",
                &format!("job={}", quote(job)),
            );
        }
        let scraped: u64 = jobs.values().map(|m| m.samples).sum();
        let _ = writeln!(
            out,
            "# HELP cinder_samples_ingested_total Sample values stored (rows), by how they arrived.\n# TYPE cinder_samples_ingested_total counter\ncinder_samples_ingested_total{{source=\"scrape\"}} {scraped}\ncinder_samples_ingested_total{{source=\"push\"}} {}",
            self.pushed_samples.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cinder_pushed_profiles_total Profiles received on /api/v1/ingest.\n# TYPE cinder_pushed_profiles_total counter\ncinder_pushed_profiles_total {}",
            self.pushed_profiles.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP cinder_rejected_total Requests refused by a limit, and rows stored without a label over the sample-label limit, by endpoint and reason.\n# TYPE cinder_rejected_total counter"
        );
        for ((endpoint, reason), n) in self.rejected.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "cinder_rejected_total{{endpoint={},reason=\"{reason}\"}} {n}",
                quote(endpoint)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cinder_targets Scrape targets, by job and health.\n# TYPE cinder_targets gauge"
        );
        for ((job, health), n) in targets {
            let _ = writeln!(
                out,
                "cinder_targets{{job={},health=\"{health}\"}} {n}",
                quote(job)
            );
        }
        if let Some(s) = sizes {
            let gauges: [(&str, &str, u64); 5] = [
                (
                    "cinder_store_parquet_bytes",
                    "Bytes of the blocks' files on disk.",
                    s.parquet_bytes,
                ),
                (
                    "cinder_store_sled_bytes",
                    "Bytes of the metadata store (sled) on disk.",
                    s.sled_bytes,
                ),
                (
                    "cinder_store_wal_bytes",
                    "Bytes of the write-ahead log on disk.",
                    s.wal_bytes,
                ),
                (
                    "cinder_store_parts",
                    "Blocks in the catalog.",
                    s.parts as u64,
                ),
                (
                    "cinder_store_head_rows",
                    "Rows in the in-memory head, not yet in Parquet.",
                    s.head_rows as u64,
                ),
            ];
            for (name, help, value) in gauges {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP cinder_meta_entries Metadata entries in sled (series: in memory; known: the in-memory set of stored ids), by kind.\n# TYPE cinder_meta_entries gauge"
            );
            for (kind, n) in s.meta_entries {
                let _ = writeln!(out, "cinder_meta_entries{{kind=\"{kind}\"}} {n}");
            }
        }
        if let Some(bucket) = self.bucket.get() {
            bucket.render(&mut out);
        }
        let queries = self.queries.lock().expect("metrics lock").clone();
        let _ = writeln!(
            out,
            "# HELP cinder_queries_total Query API requests, by endpoint and status code.\n# TYPE cinder_queries_total counter"
        );
        for (endpoint, m) in &queries {
            for (status, n) in &m.by_status {
                let _ = writeln!(
                    out,
                    "cinder_queries_total{{endpoint={},code=\"{status}\"}} {n}",
                    quote(endpoint)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP cinder_query_duration_seconds Duration of query API requests, by endpoint.\n# TYPE cinder_query_duration_seconds histogram"
        );
        for (endpoint, m) in &queries {
            m.duration.render(
                &mut out,
                "cinder_query_duration_seconds",
                &format!("endpoint={}", quote(endpoint)),
            );
        }
        out
    }
}

/// A label value in the exposition format's quoting.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        for (ok, ms) in [(true, 20), (false, 3000)] {
            m.scrape(
                "go\"app",
                ScrapeObservation {
                    duration: Duration::from_millis(ms),
                    ok,
                    samples: 7,
                    skipped_ticks: u64::from(!ok),
                },
            );
        }
        m.pushed(5);
        m.query("/api/v1/query", 200, Duration::from_millis(30));
        let mut targets = TargetHealthCounts::new();
        targets.insert(("go\"app".into(), "up"), 2);
        let text = m.render(Some(StoreSizes::default()), &targets);
        for line in [
            r#"cinder_scrapes_total{job="go\"app"} 2"#,
            r#"cinder_scrape_failures_total{job="go\"app"} 1"#,
            r#"cinder_scrape_skipped_ticks_total{job="go\"app"} 1"#,
            r#"cinder_scrape_duration_seconds_bucket{job="go\"app",le="0.025"} 1"#,
            r#"cinder_scrape_duration_seconds_bucket{job="go\"app",le="+Inf"} 2"#,
            r#"cinder_scrape_duration_seconds_count{job="go\"app"} 2"#,
            r#"cinder_samples_ingested_total{source="scrape"} 14"#,
            r#"cinder_samples_ingested_total{source="push"} 5"#,
            r#"cinder_targets{job="go\"app",health="up"} 2"#,
            "cinder_store_parts 0",
            r#"cinder_queries_total{endpoint="/api/v1/query",code="200"} 1"#,
            r#"cinder_query_duration_seconds_bucket{endpoint="/api/v1/query",le="0.05"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
