//! Admission control: what keeps a burst of pushes, scrapes or queries from exhausting
//! memory or starving other clients.
//!
//! - A global budget of *decoded* bytes in flight ([`Admission::reserve`]), a semaphore
//!   counted in KiB. A profile's cost is estimated from a [`proto::census`] of its
//!   uncompressed bytes before it is decoded; a request that costs more than the whole
//!   budget waits until it can run alone.
//! - Per-profile caps on samples and locations ([`Limits::check_census`]), refused with
//!   [`Refused::ProfileTooLarge`] (HTTP 413), never retried.
//! - Concurrency gates for pushes and for queries ([`Admission::push`],
//!   [`Admission::query`]), each with a short bounded queue: a request waits in the queue
//!   for a slot for at most [`Limits::queue_wait`]; a full queue or a longer wait is
//!   [`Refused::Busy`] (HTTP 429 with `Retry-After`).
//!
//! Push paths and decoders call these; nothing here knows HTTP.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default budget of decoded bytes in flight.
pub const DEFAULT_INFLIGHT_BYTES: usize = 256 << 20;
/// Default cap on the samples of one profile.
pub const DEFAULT_MAX_SAMPLES: usize = 1_000_000;
/// Default cap on the locations of one profile.
pub const DEFAULT_MAX_LOCATIONS: usize = 1_000_000;

/// The budget is counted in units of this many bytes (a semaphore takes `u32` permits).
const UNIT: usize = 1024;

/// The limits an operator sets (see the README's Limits section).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Decoded bytes in flight across all pushes and scrapes.
    pub inflight_bytes: usize,
    /// Samples of one profile.
    pub max_samples: usize,
    /// Locations of one profile.
    pub max_locations: usize,
    /// Push requests processed at once.
    pub push_concurrency: usize,
    /// Query requests processed at once.
    pub query_concurrency: usize,
    /// Requests that may wait for a slot, per gate.
    pub queue_len: usize,
    /// How long a request waits for a slot or for budget before it is refused.
    pub queue_wait: Duration,
    /// Series of one profile type.
    pub max_series_per_type: usize,
    /// Labels of one series, `__name__` included.
    pub max_labels_per_series: usize,
    /// Bytes of a label name.
    pub max_label_name_len: usize,
    /// Bytes of a label value.
    pub max_label_value_len: usize,
    /// Distinct values of one pprof sample label within one profile; a label with more
    /// is left off that profile's rows (their values are kept).
    pub max_sample_label_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            inflight_bytes: DEFAULT_INFLIGHT_BYTES,
            max_samples: DEFAULT_MAX_SAMPLES,
            max_locations: DEFAULT_MAX_LOCATIONS,
            push_concurrency: 4,
            query_concurrency: 8,
            queue_len: 32,
            queue_wait: Duration::from_secs(15),
            max_series_per_type: 100_000,
            max_labels_per_series: 30,
            max_label_name_len: 1024,
            max_label_value_len: 2048,
            max_sample_label_values: 1000,
        }
    }
}

impl Limits {
    /// Refuses a profile whose census is over the per-profile caps.
    pub fn check_census(&self, census: &proto::Census) -> Result<(), Refused> {
        for (what, count, cap, flag) in [
            (
                "samples",
                census.samples,
                self.max_samples,
                "--max-profile-samples",
            ),
            (
                "locations",
                census.locations,
                self.max_locations,
                "--max-profile-locations",
            ),
        ] {
            if count > cap {
                return Err(Refused::ProfileTooLarge(format!(
                    "the profile has {count} {what}; the cap is {cap} ({flag})"
                )));
            }
        }
        Ok(())
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// One profile is over a per-profile cap: retrying cannot help (HTTP 413).
    #[error("{0}")]
    ProfileTooLarge(String),
    /// The budget or a concurrency limit is reached: retry after `retry_after` (HTTP 429).
    #[error("{detail}")]
    Busy {
        /// What is exhausted.
        detail: String,
        /// A hint for `Retry-After`.
        retry_after: Duration,
    },
}

/// How long a refused client is asked to wait.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The shared admission state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Admission {
    limits: Arc<Limits>,
    budget: Arc<Semaphore>,
    budget_units: u32,
    push: Gate,
    query: Gate,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(Limits::default())
    }
}

/// Budget held by one request; released when dropped.
#[derive(Debug)]
pub struct Reservation(#[allow(dead_code)] OwnedSemaphorePermit);

/// A concurrency slot; released when dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Admission {
    /// Admission with these limits.
    pub fn new(limits: Limits) -> Self {
        let units = (limits.inflight_bytes / UNIT).clamp(1, u32::MAX as usize) as u32;
        Admission {
            budget: Arc::new(Semaphore::new(units as usize)),
            budget_units: units,
            push: Gate::new("push", limits.push_concurrency, limits.queue_len),
            query: Gate::new("query", limits.query_concurrency, limits.queue_len),
            limits: Arc::new(limits),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The limits in force, shared.
    pub fn shared_limits(&self) -> Arc<Limits> {
        self.limits.clone()
    }

    /// A push slot, waiting in the bounded queue for at most [`Limits::queue_wait`].
    pub async fn push(&self) -> Result<Slot, Refused> {
        self.push.enter(self.limits.queue_wait).await
    }

    /// A query slot, waiting in the bounded queue for at most [`Limits::queue_wait`].
    pub async fn query(&self) -> Result<Slot, Refused> {
        self.query.enter(self.limits.queue_wait).await
    }

    /// Reserves `bytes` of the decoded-bytes budget (all of it when `bytes` is more),
    /// waiting at most `wait`.
    pub async fn reserve(&self, bytes: usize, wait: Duration) -> Result<Reservation, Refused> {
        let units = bytes.div_ceil(UNIT).clamp(1, self.budget_units as usize) as u32;
        let acquire = self.budget.clone().acquire_many_owned(units);
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => Ok(Reservation(permit)),
            _ => Err(self.exhausted(bytes)),
        }
    }

    /// Reserves budget as [`Self::reserve`] does, without waiting.
    pub fn try_reserve(&self, bytes: usize) -> Result<Reservation, Refused> {
        let units = bytes.div_ceil(UNIT).clamp(1, self.budget_units as usize) as u32;
        self.budget
            .clone()
            .try_acquire_many_owned(units)
            .map(Reservation)
            .map_err(|_| self.exhausted(bytes))
    }

    fn exhausted(&self, bytes: usize) -> Refused {
        Refused::Busy {
            detail: format!(
                "the ingest memory budget ({} MiB of decoded profiles in flight, \
                 --ingest-memory) is in use; {} MiB were needed",
                self.limits.inflight_bytes >> 20,
                (bytes >> 20).max(1)
            ),
            retry_after: RETRY_AFTER,
        }
    }

    /// Bytes of the budget in use now.
    pub fn reserved_bytes(&self) -> usize {
        (self.budget_units as usize - self.budget.available_permits()) * UNIT
    }
}

/// A concurrency limit with a bounded queue.
#[derive(Debug, Clone)]
struct Gate {
    name: &'static str,
    slots: Arc<Semaphore>,
    concurrency: usize,
    waiting: Arc<AtomicUsize>,
    queue_len: usize,
}

impl Gate {
    fn new(name: &'static str, concurrency: usize, queue_len: usize) -> Self {
        let concurrency = concurrency.max(1);
        Gate {
            name,
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            waiting: Arc::default(),
            queue_len,
        }
    }

    async fn enter(&self, wait: Duration) -> Result<Slot, Refused> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Slot(permit));
        }
        let busy = |why: &str| Refused::Busy {
            detail: format!(
                "too many {} requests: {} run at once and {} may wait; {why}",
                self.name, self.concurrency, self.queue_len
            ),
            retry_after: RETRY_AFTER,
        };
        let _queued = Queued::enter(&self.waiting, self.queue_len)
            .ok_or_else(|| busy("the queue is full"))?;
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot(permit)),
            _ => Err(busy(&format!("waited {} s for a slot", wait.as_secs()))),
        }
    }
}

/// A place in a gate's queue, given back when dropped (also when the request is cancelled).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn enter(waiting: &'a AtomicUsize, max: usize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Queued(waiting))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: usize, queue: usize) -> Limits {
        Limits {
            inflight_bytes: 1 << 20,
            push_concurrency: concurrency,
            queue_len: queue,
            queue_wait: Duration::from_millis(200),
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn the_budget_blocks_until_released_and_then_refuses() {
        let a = Admission::new(limits(1, 1));
        let big = a.reserve(800 << 10, Duration::ZERO).await.unwrap();
        assert_eq!(a.reserved_bytes(), 800 << 10);
        let err = a
            .reserve(300 << 10, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, Refused::Busy { .. }), "{err:?}");
        assert!(err.to_string().contains("--ingest-memory"), "{err}");
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.reserve(300 << 10, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(big);
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(a.reserved_bytes(), 300 << 10);
        drop(got);
        // More than the whole budget: waits until it can run alone.
        let all = a.reserve(10 << 20, Duration::ZERO).await.unwrap();
        assert_eq!(a.reserved_bytes(), 1 << 20);
        drop(all);
        assert_eq!(a.reserved_bytes(), 0);
    }

    #[tokio::test]
    async fn a_gate_queues_a_few_then_refuses() {
        let a = Admission::new(limits(1, 1));
        let first = a.push().await.unwrap();
        let queued = {
            let a = a.clone();
            tokio::spawn(async move { a.push().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let err = a.push().await.unwrap_err();
        assert!(err.to_string().contains("the queue is full"), "{err}");
        drop(first);
        queued.await.unwrap().unwrap();
        // Queries have their own gate.
        let _q = a.query().await.unwrap();
        let _p = a.push().await.unwrap();
        let err = a.push().await.unwrap_err();
        assert!(err.to_string().contains("waited"), "{err}");
    }

    #[test]
    fn census_caps_name_the_flag() {
        let l = Limits {
            max_samples: 10,
            ..Limits::default()
        };
        let census = proto::Census {
            samples: 11,
            ..Default::default()
        };
        let err = l.check_census(&census).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the profile has 11 samples; the cap is 10 (--max-profile-samples)"
        );
        assert!(l.check_census(&proto::Census::default()).is_ok());
    }
}
