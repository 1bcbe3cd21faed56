//! Scraping: Cinder pulls pprof profiles from targets on a schedule, like Prometheus does
//! for metrics, and stores them through the same ingest path as pushed ones.
//!
//! The [`ScrapeManager`] owns the targets — from the config file (static and
//! [`discovery`]-file groups, relabelled) and from the API (persisted in sled) — and runs
//! one [`worker`] loop per (target, profile). A reload (SIGHUP, a file change, an API call)
//! recomputes the wanted loops and keeps every loop whose [`target::TargetSpec::fingerprint`]
//! did not change, with its health and its delta baseline ([`delta`]). [`fetch`] does the
//! HTTP side, defensively.

pub mod delta;
pub mod discovery;
pub mod fetch;
pub mod policy;
pub mod target;
pub mod worker;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use shared::duration::format_duration;

pub use fetch::ScrapeError;
pub use policy::AddressPolicy;
pub use target::{ApiTarget, FieldError, Source, TargetSpec};
pub use worker::{Health, ScrapeStatus};

use crate::{
    config::{ScrapeConfig, file::HttpConfig},
    metrics::{Metrics, TargetHealthCounts},
    store::{Store, StoreError},
};

/// How the manager treats targets.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Addresses scrapes may not reach (`--scrape-deny-cidr`, `--scrape-allow-cidr`,
    /// `--allow-link-local-targets`); Cinder's own endpoint is exempt.
    pub policy: Arc<AddressPolicy>,
    /// Cap on a profile's uncompressed size.
    pub max_uncompressed: usize,
    /// The memory budget and limits scrapes share with pushes.
    pub admission: crate::admission::Admission,
    /// Cap on the targets created through the API (`--max-api-targets`).
    pub max_api_targets: usize,
}

/// Default of `--max-api-targets`.
pub const DEFAULT_MAX_API_TARGETS: usize = 1_000;

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            policy: Arc::default(),
            max_uncompressed: crate::ingest::DEFAULT_MAX_UNCOMPRESSED,
            admission: crate::admission::Admission::default(),
            max_api_targets: DEFAULT_MAX_API_TARGETS,
        }
    }
}

/// Why a targets API call failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("no target with id {0:?}")]
    NotFound(String),
    #[error("target {0:?} comes from the configuration file: change it there")]
    ReadOnly(String),
    #[error(
        "the targets API already holds {0} targets, its maximum (--max-api-targets); delete one first"
    )]
    TooMany(usize),
    #[error("storing the target failed: {0}")]
    Store(#[from] StoreError),
}

/// Handle to the scrape manager; cheap to clone.
#[derive(Clone)]
pub struct ScrapeManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    options: ManagerOptions,
    runtime: tokio::runtime::Handle,
    state: Mutex<State>,
    ids: AtomicU64,
}

#[derive(Default)]
struct State {
    config: Vec<ScrapeConfig>,
    discovered: discovery::Discovered,
    api: BTreeMap<String, ApiTarget>,
    running: BTreeMap<String, RunningTarget>,
    clients: HashMap<HttpConfig, Result<reqwest::Client, String>>,
}

struct RunningTarget {
    spec: Arc<TargetSpec>,
    loops: BTreeMap<String, RunningLoop>,
}

/// A running loop; aborted when dropped.
struct RunningLoop {
    fingerprint: u64,
    url: String,
    status: Arc<Mutex<ScrapeStatus>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningLoop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub use shared::targets::{JobView, ProfileView, TargetView, TargetsView};

impl ScrapeManager {
    /// Starts the manager with the config file's jobs and the API targets stored in sled.
    /// Must be called inside a tokio runtime.
    pub fn start(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        options: ManagerOptions,
        config: Vec<ScrapeConfig>,
    ) -> Result<ScrapeManager, StoreError> {
        let mut api = BTreeMap::new();
        for (id, record) in store.meta.targets()? {
            match serde_json::from_slice::<ApiTarget>(&record) {
                Ok(target) => {
                    api.insert(id, target);
                }
                Err(err) => tracing::error!(%id, %err, "ignoring an unreadable stored target"),
            }
        }
        let manager = ScrapeManager {
            inner: Arc::new(Inner {
                store,
                metrics,
                options,
                runtime: tokio::runtime::Handle::current(),
                state: Mutex::new(State {
                    config,
                    api,
                    ..State::default()
                }),
                ids: AtomicU64::new(0),
            }),
        };
        {
            let mut state = manager.lock();
            manager.reconcile(&mut state);
            tracing::info!(
                targets = state.running.len(),
                loops = state.running.values().map(|t| t.loops.len()).sum::<usize>(),
                "scrape manager started"
            );
        }
        Ok(manager)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("scrape state lock")
    }

    /// Replaces the config file's jobs (SIGHUP); unchanged loops keep running.
    pub fn set_config(&self, config: Vec<ScrapeConfig>) {
        let mut state = self.lock();
        let names: Vec<String> = config.iter().map(|j| j.job_name.clone()).collect();
        state.discovered.retain(|job, _| names.contains(job));
        state.config = config;
        self.reconcile(&mut state);
    }

    /// The jobs' `file_sd_configs` patterns, for the poller.
    pub fn file_sd_patterns(&self) -> Vec<(String, Vec<(PathBuf, Duration)>)> {
        self.lock()
            .config
            .iter()
            .filter(|j| !j.file_sd.is_empty())
            .map(|j| {
                let patterns = j
                    .file_sd
                    .iter()
                    .flat_map(|sd| sd.files.iter().map(|f| (f.clone(), sd.refresh_interval)))
                    .collect();
                (j.job_name.clone(), patterns)
            })
            .collect()
    }

    /// New file-discovered groups; reconciles only when they changed.
    pub fn set_discovered(&self, discovered: discovery::Discovered) {
        let mut state = self.lock();
        if state.discovered != discovered {
            state.discovered = discovered;
            self.reconcile(&mut state);
        }
    }

    /// Polls `file_sd_configs` files forever.
    pub async fn watch_files(self) {
        let mut poller = discovery::Poller::default();
        let mut tick = tokio::time::interval(discovery::POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let patterns = self.file_sd_patterns();
            if patterns.is_empty() && self.lock().discovered.is_empty() {
                continue;
            }
            let (found, poller_back) = match tokio::task::spawn_blocking(move || {
                let found = poller.poll(&patterns);
                (found, poller)
            })
            .await
            {
                Ok(result) => result,
                Err(err) => {
                    tracing::error!(%err, "target file polling failed");
                    (discovery::Discovered::new(), discovery::Poller::default())
                }
            };
            poller = poller_back;
            self.set_discovered(found);
        }
    }

    /// Every target and its state, grouped by job.
    pub fn targets(&self) -> TargetsView {
        let state = self.lock();
        let mut jobs: BTreeMap<String, Vec<TargetView>> = BTreeMap::new();
        for running in state.running.values() {
            jobs.entry(running.spec.job.clone())
                .or_default()
                .push(view(running));
        }
        TargetsView {
            jobs: jobs
                .into_iter()
                .map(|(job, mut targets)| {
                    targets.sort_by(|a, b| (&a.url, &a.id).cmp(&(&b.url, &b.id)));
                    JobView { job, targets }
                })
                .collect(),
        }
    }

    /// Targets per job and health, for `/metrics`.
    pub fn health_counts(&self) -> TargetHealthCounts {
        let state = self.lock();
        let mut counts = TargetHealthCounts::new();
        for running in state.running.values() {
            let health = view(running).health;
            *counts
                .entry((running.spec.job.clone(), health.as_str()))
                .or_default() += 1;
        }
        counts
    }

    /// One target's view.
    pub fn target(&self, id: &str) -> Option<TargetView> {
        self.lock().running.get(id).map(view)
    }

    /// `POST /api/v1/targets`: validates, persists and starts scraping a new target.
    pub fn create(&self, body: &serde_json::Value) -> Result<TargetView, TargetError> {
        let id = self.new_id();
        let record = target::validate(body, id.clone(), &self.inner.options.policy)?;
        let mut state = self.lock();
        let cap = self.inner.options.max_api_targets;
        if state.api.len() >= cap {
            return Err(TargetError::TooMany(cap));
        }
        check_unique(&state, &record, None)?;
        self.persist(&record)?;
        state.api.insert(id.clone(), record);
        self.reconcile(&mut state);
        tracing::info!(%id, "scrape target created");
        Ok(state.running.get(&id).map(view).expect("just started"))
    }

    /// `PUT /api/v1/targets/{id}`: replaces an API target's definition.
    pub fn update(&self, id: &str, body: &serde_json::Value) -> Result<TargetView, TargetError> {
        let mut state = self.lock();
        if !state.api.contains_key(id) {
            return Err(if state.running.contains_key(id) {
                TargetError::ReadOnly(id.to_owned())
            } else {
                TargetError::NotFound(id.to_owned())
            });
        }
        let record = target::validate(body, id.to_owned(), &self.inner.options.policy)?;
        check_unique(&state, &record, Some(id))?;
        self.persist(&record)?;
        state.api.insert(id.to_owned(), record);
        self.reconcile(&mut state);
        tracing::info!(%id, "scrape target changed");
        Ok(state.running.get(id).map(view).expect("just started"))
    }

    /// `DELETE /api/v1/targets/{id}`: stops and forgets an API target.
    pub fn delete(&self, id: &str) -> Result<(), TargetError> {
        let mut state = self.lock();
        if !state.api.contains_key(id) {
            return Err(if state.running.contains_key(id) {
                TargetError::ReadOnly(id.to_owned())
            } else {
                TargetError::NotFound(id.to_owned())
            });
        }
        self.inner.store.meta.delete_target(id)?;
        state.api.remove(id);
        self.reconcile(&mut state);
        tracing::info!(%id, "scrape target deleted");
        Ok(())
    }

    fn persist(&self, record: &ApiTarget) -> Result<(), TargetError> {
        let bytes = serde_json::to_vec(record).expect("a target record serializes");
        self.inner.store.meta.put_target(&record.id, &bytes)?;
        Ok(())
    }

    fn new_id(&self) -> String {
        let n = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let mut bytes = Vec::with_capacity(40);
        bytes.extend_from_slice(&nanos.to_le_bytes());
        bytes.extend_from_slice(&n.to_le_bytes());
        bytes.extend_from_slice(&std::process::id().to_le_bytes());
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
    }

    /// The address policy of targets with these settings (none for Cinder's own endpoint).
    fn guard(&self, http: &HttpConfig) -> Option<Arc<AddressPolicy>> {
        fetch::guard_for(http, &self.inner.options.policy)
    }

    /// Computes the wanted targets and makes the running loops match, keeping unchanged ones.
    fn reconcile(&self, state: &mut State) {
        let mut wanted: BTreeMap<String, TargetSpec> = BTreeMap::new();
        for job in &state.config {
            let discovered = state.discovered.get(&job.job_name);
            let groups = job.static_configs.iter().map(|g| (g, None)).chain(
                discovered.into_iter().flatten().flat_map(|(path, groups)| {
                    groups.iter().map(move |g| (g, Some(path.as_path())))
                }),
            );
            for spec in target::config_targets(job, groups) {
                wanted.entry(spec.id.clone()).or_insert(spec);
            }
        }
        for record in state.api.values() {
            let spec = record.spec();
            wanted.entry(spec.id.clone()).or_insert(spec);
        }

        let mut clients: HashMap<HttpConfig, Result<reqwest::Client, String>> = HashMap::new();
        let mut running = BTreeMap::new();
        let (mut kept, mut started, mut stopped) = (0, 0, 0);
        for (id, spec) in wanted {
            let spec = Arc::new(spec);
            let mut old = state.running.remove(&id);
            let mut loops = BTreeMap::new();
            for profile in &spec.profiles {
                let fingerprint = spec.fingerprint(profile);
                let previous = old
                    .as_mut()
                    .and_then(|o| o.loops.remove(&profile.name))
                    .filter(|l| l.fingerprint == fingerprint);
                if let Some(unchanged) = previous {
                    loops.insert(profile.name.clone(), unchanged);
                    kept += 1;
                    continue;
                }
                let client =
                    clients
                        .entry(spec.http.clone())
                        .or_insert_with(|| {
                            state.clients.get(&spec.http).cloned().unwrap_or_else(|| {
                                fetch::client(&spec.http, self.guard(&spec.http))
                            })
                        })
                        .clone();
                let status = Arc::new(Mutex::new(ScrapeStatus::default()));
                let url = spec
                    .profile_url(profile)
                    .map_or_else(|e| e, |u| u.to_string());
                let ctx = worker::LoopContext {
                    spec: spec.clone(),
                    profile: profile.clone(),
                    client,
                    store: self.inner.store.clone(),
                    metrics: self.inner.metrics.clone(),
                    admission: self.inner.options.admission.clone(),
                    status: status.clone(),
                    max_uncompressed: self.inner.options.max_uncompressed,
                    guard: self.guard(&spec.http),
                };
                let task = self.inner.runtime.spawn(worker::run(ctx));
                loops.insert(
                    profile.name.clone(),
                    RunningLoop {
                        fingerprint,
                        url,
                        status,
                        task,
                    },
                );
                started += 1;
            }
            stopped += old.map_or(0, |o| o.loops.len());
            running.insert(id, RunningTarget { spec, loops });
        }
        stopped += state.running.values().map(|t| t.loops.len()).sum::<usize>();
        // Replacing the map drops (aborts) every loop not carried over.
        state.running = running;
        for (http, client) in std::mem::take(&mut state.clients) {
            clients.entry(http).or_insert(client);
        }
        // Keep only clients still in use.
        let used: Vec<HttpConfig> = state
            .running
            .values()
            .map(|t| t.spec.http.clone())
            .collect();
        clients.retain(|http, _| used.contains(http));
        state.clients = clients;
        tracing::debug!(kept, started, stopped, "scrape loops reconciled");
    }
}

/// Two targets of one job must not scrape the same address.
fn check_unique(
    state: &State,
    record: &ApiTarget,
    except: Option<&str>,
) -> Result<(), TargetError> {
    let clash = state.running.values().find(|t| {
        Some(t.spec.id.as_str()) != except
            && t.spec.job == record.job
            && t.spec.address == record.address
    });
    match clash {
        Some(t) => Err(TargetError::Invalid(FieldError {
            field: "address".into(),
            error: "duplicate target".into(),
            detail: format!(
                "job {:?} already scrapes {} (target {})",
                record.job, record.address, t.spec.id
            ),
        })),
        None => Ok(()),
    }
}

fn view(running: &RunningTarget) -> TargetView {
    let spec = &running.spec;
    let scrapes: Vec<ProfileView> = running
        .loops
        .iter()
        .map(|(name, l)| ProfileView {
            profile: name.clone(),
            url: l.url.clone(),
            status: l.status.lock().expect("status lock").clone(),
        })
        .collect();
    let any = |h: Health| scrapes.iter().any(|s| s.status.health == h);
    let health = if any(Health::Down) {
        Health::Down
    } else if any(Health::Up) {
        Health::Up
    } else {
        Health::Unknown
    };
    let latest = scrapes
        .iter()
        .filter(|s| s.status.last_scrape.is_some())
        .max_by_key(|s| s.status.last_scrape);
    let last_error = scrapes
        .iter()
        .filter_map(|s| {
            s.status
                .last_error
                .as_ref()
                .map(|e| (s.status.last_scrape, format!("{}: {e}", s.profile)))
        })
        .max_by_key(|(t, _)| *t)
        .map(|(_, e)| e);
    TargetView {
        id: spec.id.clone(),
        url: spec.base_url(),
        labels: spec.labels.clone(),
        health,
        last_scrape: latest.and_then(|s| s.status.last_scrape),
        last_duration_ms: latest.and_then(|s| s.status.last_duration_ms),
        last_error,
        last_body_bytes: latest.and_then(|s| s.status.last_body_bytes),
        source: spec.source,
        job: spec.job.clone(),
        address: spec.address.clone(),
        scheme: spec.scheme.to_string(),
        interval: format_duration(spec.interval),
        timeout: format_duration(spec.timeout),
        profiles: spec.profiles.iter().map(|p| p.name.clone()).collect(),
        scrapes,
    }
}
