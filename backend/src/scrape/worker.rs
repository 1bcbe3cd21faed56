//! One scrape loop: a (target, profile) pair scraped every interval from a hash-based
//! offset, never overlapping itself, each scrape fetched, decoded, turned into deltas where
//! needed and stored, its outcome kept as the loop's health.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use shared::labels::Labels;
use tokio::time::{Instant, MissedTickBehavior};
use xxhash_rust::xxh3::xxh3_64;

use super::{
    delta::{self, DeltaState},
    fetch::{self, Fetched, ScrapeError},
    target::TargetSpec,
};
use crate::{
    admission::{Admission, Refused, Reservation},
    config::file::{ProfileConfig, Secret},
    ingest::{IngestError, IngestOptions, ingest_profile},
    metrics::{Metrics, ScrapeObservation},
    store::{Store, now_ms},
};

pub use shared::targets::{Health, ScrapeStatus};

/// Everything one loop needs.
pub(crate) struct LoopContext {
    pub(crate) spec: Arc<TargetSpec>,
    pub(crate) profile: ProfileConfig,
    pub(crate) client: Result<reqwest::Client, String>,
    pub(crate) store: Arc<Store>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) admission: Admission,
    pub(crate) status: Arc<Mutex<ScrapeStatus>>,
    pub(crate) max_uncompressed: usize,
    /// The address policy (`None` for Cinder's own endpoint).
    pub(crate) guard: Option<Arc<crate::scrape::AddressPolicy>>,
}

/// The request, auth and labels of a loop, or why there cannot be one.
fn prepare(ctx: &LoopContext) -> Result<(fetch::Request, Labels), String> {
    let url = ctx.spec.profile_url(&ctx.profile)?;
    let read =
        |secret: &Secret, key: &str| secret.read().map_err(|e| format!("cannot read {key}: {e}"));
    let basic_auth = match &ctx.spec.http.basic_auth {
        Some((user, password)) => Some((user.clone(), read(password, "password_file")?)),
        None => None,
    };
    let authorization = match &ctx.spec.http.authorization {
        Some((ty, credentials)) => Some(format!("{ty} {}", read(credentials, "credentials_file")?)),
        None => None,
    };
    let mut labels = ctx.spec.labels.clone();
    labels.insert(shared::labels::NAME_LABEL, ctx.profile.name.as_str());
    let request = fetch::Request {
        url,
        authorization,
        basic_auth,
        timeout: ctx.spec.timeout,
        body_limit: ctx.spec.body_size_limit,
        guard: ctx.guard.clone(),
        proxied: ctx.spec.http.proxy != crate::config::file::ProxyConfig::None,
    };
    Ok((request, labels))
}

/// Where in the interval a loop scrapes: a hash of its identity, aligned to the wall
/// clock so the phase survives restarts. Returns the wait before the first scrape.
pub(crate) fn start_offset(id: &str, profile: &str, interval: Duration) -> Duration {
    let interval_ns = interval.as_nanos().max(1) as u64;
    let phase = xxh3_64(format!("{id}\0{profile}").as_bytes()) % interval_ns;
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    Duration::from_nanos((phase + interval_ns - now_ns % interval_ns) % interval_ns)
}

/// Runs the loop until its task is aborted.
pub(crate) async fn run(ctx: LoopContext) {
    let interval = ctx.spec.interval;
    // Cinder's own loops start at once: the newcomer's first screen waits for them, and
    // there is nothing to spread them from.
    let offset = if ctx.spec.http.self_scrape {
        Duration::ZERO
    } else {
        start_offset(&ctx.spec.id, &ctx.profile.name, interval)
    };
    let first = Instant::now() + offset;
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut delta = DeltaState::default();
    loop {
        let tick = ticker.tick().await;
        let started = Instant::now();
        let started_ms = now_ms();
        // Per scrape, so a rotated password or token file is picked up.
        let (result, state) = match &prepare(&ctx) {
            Ok((request, labels)) => scrape_once(&ctx, request, labels, delta).await,
            Err(err) => (Err(ScrapeError::Request(err.clone())), delta),
        };
        delta = state;
        let took = started.elapsed();
        let skipped = missed_ticks(tick.elapsed(), interval);
        if skipped == 0 && tick.elapsed() >= interval {
            // Just late, as a CPU profile as long as the interval always is: scrape again
            // at once (the schedule follows), instead of losing every other interval.
            ticker.reset_immediately();
        }
        record(&ctx, started_ms, took, skipped, result);
    }
}

/// How late a scrape may end and still count as on time: the transfer after a CPU profile
/// that lasts the whole interval (Parca's default `seconds`).
fn lateness_grace(interval: Duration) -> Duration {
    (interval / 4).min(Duration::from_secs(1))
}

/// Ticks lost to a scrape that ran `elapsed` since its tick: none while it ended within
/// the interval plus [`lateness_grace`]; otherwise every tick that passed meanwhile (the
/// ticker skips them).
fn missed_ticks(elapsed: Duration, interval: Duration) -> u64 {
    if elapsed < interval + lateness_grace(interval) {
        return 0;
    }
    (elapsed.as_nanos() / interval.as_nanos().max(1)) as u64
}

/// What a successful scrape did.
struct Outcome {
    body_bytes: u64,
    samples: u64,
}

async fn scrape_once(
    ctx: &LoopContext,
    request: &fetch::Request,
    labels: &Labels,
    mut delta: DeltaState,
) -> (Result<Outcome, ScrapeError>, DeltaState) {
    let client = match &ctx.client {
        Ok(client) => client,
        Err(err) => return (Err(ScrapeError::Request(err.clone())), delta),
    };
    let started = std::time::Instant::now();
    let fetched = match fetch::fetch(client, request).await {
        Ok(f) => f,
        Err(err) => return (Err(err), delta),
    };
    // The rest of the timeout is how long the scrape may wait for memory budget.
    let budget_wait = ctx.spec.timeout.saturating_sub(started.elapsed());
    let admission = ctx.admission.clone();
    let metrics = ctx.metrics.clone();
    let body_bytes = fetched.body.len() as u64;
    let store = ctx.store.clone();
    let labels = labels.clone();
    let profile = ctx.profile.clone();
    let max = ctx.max_uncompressed;
    let joined = tokio::task::spawn_blocking(move || {
        let admit = Admit {
            admission: &admission,
            wait: budget_wait,
            metrics: &metrics,
        };
        let result = process(&store, fetched, &labels, &profile, max, &admit, &mut delta);
        (result, delta)
    })
    .await;
    match joined {
        Ok((result, delta)) => (
            result.map(|samples| Outcome {
                body_bytes,
                samples,
            }),
            delta,
        ),
        Err(err) => (
            Err(ScrapeError::Store(format!("the ingest task failed: {err}"))),
            DeltaState::default(),
        ),
    }
}

/// Whether a body is an HTML page (an index, a login page, an error page).
fn is_html(fetched: &Fetched) -> bool {
    if fetched
        .content_type
        .to_ascii_lowercase()
        .starts_with("text/html")
    {
        return true;
    }
    let start: Vec<u8> = fetched
        .body
        .iter()
        .copied()
        .skip_while(u8::is_ascii_whitespace)
        .take(15)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    start.starts_with(b"<!doctype html") || start.starts_with(b"<html")
}

/// What a scrape's ingest is admitted by: the shared budget, waited for at most `wait`.
struct Admit<'a> {
    admission: &'a Admission,
    wait: Duration,
    metrics: &'a Metrics,
}

impl Admit<'_> {
    /// Checks the per-profile caps on the census of `raw`, then waits for its budget.
    fn reserve(&self, raw: &[u8]) -> Result<Reservation, ScrapeError> {
        let census = proto::census(raw).map_err(|e| ScrapeError::Profile(e.to_string()))?;
        let refused = |e: Refused| {
            let reason = match e {
                Refused::ProfileTooLarge(_) => "profile_too_large",
                Refused::Busy { .. } => "overloaded",
            };
            self.metrics.rejected("scrape", reason, 1);
            ScrapeError::Refused(e.to_string())
        };
        self.admission
            .limits()
            .check_census(&census)
            .map_err(refused)?;
        let reserve = self.admission.reserve(census.decoded_bytes(), self.wait);
        tokio::runtime::Handle::current()
            .block_on(reserve)
            .map_err(refused)
    }
}

/// Decodes, converts and stores one body; returns the sample values stored.
fn process(
    store: &Arc<Store>,
    fetched: Fetched,
    labels: &Labels,
    config: &ProfileConfig,
    max_uncompressed: usize,
    admit: &Admit<'_>,
    delta: &mut DeltaState,
) -> Result<u64, ScrapeError> {
    if is_html(&fetched) {
        return Err(ScrapeError::Html(fetched.content_type));
    }
    let raw = proto::inflate(&fetched.body, max_uncompressed)
        .map_err(|e| ScrapeError::Profile(e.to_string()))?;
    let _reservation = admit.reserve(&raw)?;
    let mut profile = proto::decode(&raw).map_err(|e| ScrapeError::Profile(e.to_string()))?;
    drop(raw);
    drop(fetched);
    profile
        .validate()
        .map_err(|e| ScrapeError::Profile(e.to_string()))?;
    if !config.keep_sample_types.is_empty() {
        profile = delta::keep_sample_types(&profile, &config.keep_sample_types);
    }
    let received_ms = now_ms();
    let (parts, baseline) = delta::convert(
        profile,
        config.delta,
        delta,
        received_ms.saturating_mul(1_000_000),
    );
    tracing::trace!(?baseline, parts = parts.len(), "scrape converted");
    let mut samples = 0;
    for part in parts {
        let options = IngestOptions {
            max_uncompressed,
            received_ms,
            delta: Some(part.delta),
            limits: admit.admission.shared_limits(),
        };
        let summary =
            ingest_profile(store, &part.profile, labels, &options).map_err(|e| match e {
                IngestError::Store(e) => ScrapeError::Store(e.to_string()),
                limit @ (IngestError::TooManySeries { .. } | IngestError::LabelLimit { .. }) => {
                    admit.metrics.rejected("scrape", limit.reason(), 1);
                    ScrapeError::Refused(limit.to_string())
                }
                other => ScrapeError::Profile(other.to_string()),
            })?;
        if summary.dropped_sample_labels > 0 {
            let dropped = summary.dropped_sample_labels;
            admit
                .metrics
                .rejected("scrape", "sample_label_values", dropped);
        }
        samples += summary.profile_types.iter().map(|t| t.samples).sum::<u64>();
    }
    if store.flush_due() {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = store.flush_if_due() {
                tracing::error!(%err, "flushing the head failed");
            }
        });
    }
    Ok(samples)
}

fn record(
    ctx: &LoopContext,
    started_ms: i64,
    took: Duration,
    skipped: u64,
    result: Result<Outcome, ScrapeError>,
) {
    let ok = result.is_ok();
    let samples = result.as_ref().map_or(0, |o| o.samples);
    ctx.metrics.scrape(
        &ctx.spec.job,
        ScrapeObservation {
            duration: took,
            ok,
            samples,
            skipped_ticks: skipped,
        },
    );
    let mut status = ctx.status.lock().expect("status lock");
    let was = status.health;
    status.last_scrape = Some(started_ms);
    status.last_duration_ms = Some(took.as_millis() as u64);
    status.scrapes += 1;
    status.skipped_ticks += skipped;
    match result {
        Ok(outcome) => {
            status.health = Health::Up;
            status.last_error = None;
            status.last_body_bytes = Some(outcome.body_bytes);
            status.samples += outcome.samples;
            if was == Health::Down {
                tracing::info!(job = %ctx.spec.job, target = %ctx.spec.address, profile = %ctx.profile.name, "target is up again");
            }
        }
        Err(err) => {
            status.health = Health::Down;
            status.failures += 1;
            status.last_body_bytes = None;
            if was != Health::Down {
                tracing::warn!(job = %ctx.spec.job, target = %ctx.spec.address, profile = %ctx.profile.name, error = %err, "scrape failed");
            } else {
                tracing::debug!(job = %ctx.spec.job, target = %ctx.spec.address, profile = %ctx.profile.name, error = %err, "scrape failed again");
            }
            status.last_error = Some(err.to_string());
        }
    }
    if skipped > 0 {
        tracing::debug!(job = %ctx.spec.job, target = %ctx.spec.address, profile = %ctx.profile.name, skipped, "scrape outlasted its interval; ticks skipped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_profile_as_long_as_the_interval_is_late_not_skipping() {
        let ten = Duration::from_secs(10);
        let ms = Duration::from_millis;
        assert_eq!(missed_ticks(ms(9_000), ten), 0);
        assert_eq!(
            missed_ticks(ms(10_060), ten),
            0,
            "a 10 s profile plus its transfer"
        );
        assert_eq!(
            missed_ticks(ms(11_500), ten),
            1,
            "beyond the grace: skipped"
        );
        assert_eq!(missed_ticks(ms(25_000), ten), 2);
        let two = Duration::from_secs(2);
        assert_eq!(missed_ticks(ms(2_400), two), 0);
        assert_eq!(missed_ticks(ms(2_600), two), 1);
    }

    #[test]
    fn offsets_spread_within_the_interval() {
        let interval = Duration::from_secs(10);
        let offsets: Vec<Duration> = (0..50)
            .map(|i| start_offset(&format!("t{i}"), "process_cpu", interval))
            .collect();
        assert!(offsets.iter().all(|o| *o < interval));
        let early = offsets
            .iter()
            .filter(|o| **o < Duration::from_secs(5))
            .count();
        assert!(
            (10..=40).contains(&early),
            "{early} of 50 in the first half"
        );
    }

    #[test]
    fn html_is_recognized_by_type_or_content() {
        let page = |ct: &str, body: &[u8]| Fetched {
            body: body.to_vec(),
            content_type: ct.into(),
        };
        assert!(is_html(&page("text/html; charset=utf-8", b"x")));
        assert!(is_html(&page("", b"\n  <!DOCTYPE html><html>")));
        assert!(is_html(&page("application/octet-stream", b"<HTML><body>")));
        assert!(!is_html(&page("application/octet-stream", b"\x1f\x8b\x08")));
    }
}
