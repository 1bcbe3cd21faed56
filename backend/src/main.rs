//! The `cinder` binary: parses the command line, opens storage, serves HTTP.

use std::{future::IntoFuture as _, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use backend::{
    admission::Admission,
    api::{AllowedHosts, AppState},
    config::{Cli, OtlpListen, ScrapeConfig, ScrapeFile, file::Secret},
    metrics::Metrics,
    scrape::{AddressPolicy, ManagerOptions, ScrapeManager},
    store::{
        Store, StoreOptions,
        bucket::{Bucket, Reach, Uploader},
        cache::CachedStore,
        follow::Follower,
    },
    web::UiSource,
};
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

// jemalloc, with its heap profiler on (see .cargo/config.toml): `/debug/pprof/heap`.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return report_cli_error(err),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cinder: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--help` and `--version` print normally; a bad flag is one line on stderr.
fn report_cli_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    eprintln!(
        "cinder: {} (see cinder --help)",
        first.trim_start_matches("error: ")
    );
    ExitCode::from(2)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(&cli.log_level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(cli))
}

fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_new(level).with_context(|| format!("invalid --log-level {level:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    Ok(())
}

/// Reads the configuration file, with a notice for Parca keys Cinder ignores.
fn load_config(path: &std::path::Path) -> anyhow::Result<ScrapeFile> {
    let file = ScrapeFile::load(path)?;
    let bucket_keys = file.object_storage.iter().flat_map(|s| s.ignored());
    for key in file.ignored_keys.iter().copied().chain(bucket_keys) {
        tracing::info!(key, config = %path.display(), "ignoring a Parca setting Cinder does not use");
    }
    tracing::info!(config = %path.display(), jobs = file.jobs.len(), "scrape configuration loaded");
    Ok(file)
}

/// The bucket of `object_storage`, checked: refused access stops startup, no answer is
/// an outage (logged; uploads wait for it).
async fn open_bucket(file: Option<&ScrapeFile>, cli: &Cli) -> anyhow::Result<Option<Uploader>> {
    let Some(config) = file.and_then(|f| f.object_storage.as_ref()) else {
        return Ok(None);
    };
    let Some(bucket) = Bucket::open(config, &cli.data_dir)? else {
        tracing::info!(data_dir = %cli.data_dir.display(), "object_storage is a FILESYSTEM bucket in the data dir itself: blocks are already there, nothing to upload");
        return Ok(None);
    };
    match bucket.probe().await? {
        Reach::Up => tracing::info!(
            bucket = bucket.target(),
            "object storage answers; blocks are uploaded as they are written"
        ),
        Reach::Down(err) => {
            tracing::warn!(bucket = bucket.target(), %err, "object storage does not answer (an outage): cinder runs, keeps blocks on local disk and uploads them once it answers")
        }
    }
    Ok(Some(Uploader::new(bucket, &cli.data_dir)))
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    // A bad config file stops cinder before it listens.
    let mut config = cli.config.as_deref().map(load_config).transpose()?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let local_addr = listener.local_addr()?;
    tokio::task::spawn_blocking(backend::debug::warm_symbolizer);
    backend::query::set_memory_limit(cli.query_memory);
    let metrics = Arc::new(Metrics::default());
    let admission = Admission::new(cli.limits());
    let state = AppState::new()
        .with_admission(admission.clone())
        .with_query_limits(cli.query_limits())
        .with_metrics(metrics.clone())
        .with_api_token(cli.api_token.clone())
        .with_auth_reads(cli.auth_reads)
        .with_allowed_hosts(AllowedHosts::new(local_addr, &cli.allowed_hosts))
        .with_targets_api(cli.targets_api);
    let app = backend::app(state.clone(), UiSource::choose(cli.ui_dir.clone()));
    tracing::info!(listen = %local_addr, data_dir = %cli.data_dir.display(), "cinder is listening");
    // Serve at once (/healthy answers, /ready says 503) while storage opens and replays.
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .into_future(),
    );
    let grpc = serve_otlp_grpc(cli.otlp_grpc_listen, state.clone()).await?;
    let uploader = open_bucket(config.as_ref(), &cli).await?;
    let store = open_store(&cli, uploader.as_ref()).await?;
    if let Some(uploader) = &uploader {
        metrics.set_bucket(uploader.stats());
        tokio::spawn(uploader.clone().run());
        follow_bucket(uploader, &store, &cli).await?;
    }
    let jobs = config.take().map(|f| f.jobs).unwrap_or_else(|| {
        tracing::info!(target = %local_addr, "no --config: cinder scrapes its own CPU and heap profiles (job \"cinder\")");
        let mut own = ScrapeConfig::self_scrape(local_addr);
        if let Some(token) = cli.api_token.clone().filter(|t| !t.is_empty()) {
            own.http.authorization = Some(("Bearer".into(), Secret::Inline(token)));
        }
        vec![own]
    });
    let policy = AddressPolicy::from_flags(
        &cli.scrape_deny_cidr,
        &cli.scrape_allow_cidr,
        cli.allow_link_local_targets,
    );
    tracing::info!(%policy, "scrape address policy");
    let options = ManagerOptions {
        policy: Arc::new(policy),
        max_api_targets: cli.max_api_targets,
        admission,
        ..ManagerOptions::default()
    };
    let manager = ScrapeManager::start(store.clone(), metrics.clone(), options, jobs)
        .context("starting the scrape manager")?;
    tokio::spawn(manager.clone().watch_files());
    tokio::spawn(reload_on_sighup(cli.config.clone(), manager.clone()));
    state.set_scrape(manager);
    state.set_store(store.clone());
    tokio::spawn(maintain(store.clone(), cli.maintain_interval));
    tracing::info!("storage opened; cinder is ready");
    let served = server.await.context("the HTTP server task failed")?;
    // The exit flush and the uploads after it: 30 s at most.
    let deadline = std::time::Instant::now() + EXIT_BUDGET;
    if let Some(grpc) = grpc {
        grpc.abort();
    }
    flush_on_exit(store).await;
    if let Some(uploader) = uploader {
        uploader.drain(deadline).await;
    }
    served.context("serving HTTP")
}

/// Lets queries read the bucket (through the read cache) and reads its block list once
/// before the node reports ready, then every `--bucket-refresh`.
async fn follow_bucket(uploader: &Uploader, store: &Arc<Store>, cli: &Cli) -> anyhow::Result<()> {
    let bucket = uploader.bucket();
    let cache_dir = cli.data_dir.join(backend::store::cache::CACHE_DIR);
    let cache = CachedStore::open(bucket.object_store(), &cache_dir, cli.cache_size as u64)
        .with_context(|| format!("opening the read cache {}", cache_dir.display()))?;
    let _ = uploader.stats().cache.set(cache.stats());
    let base_url = backend::query::register_bucket("cinder", Arc::new(cache))?;
    let follower = Follower::new(bucket, store.clone(), uploader.stats(), base_url);
    let known = follower.adopt_local_copies().await;
    match tokio::time::timeout(FIRST_REFRESH, follower.refresh()).await {
        Ok(Ok(found)) => tracing::info!(
            known,
            listed = found.listed,
            remote = found.remote,
            fetched = found.fetched,
            "read the bucket's block list"
        ),
        Ok(Err(err)) => {
            tracing::warn!(%err, "cannot read the bucket's block list; queries answer from local blocks (partial) until it answers")
        }
        Err(_) => {
            store.set_bucket_reachable(false);
            tracing::warn!(timeout = ?FIRST_REFRESH, "the bucket's block list did not arrive in time; it is read again in the background")
        }
    }
    tokio::spawn(follower.run(cli.bucket_refresh));
    Ok(())
}

/// How long a starting node waits for the bucket's block list before it reports ready.
const FIRST_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);

/// How long exiting may take for the head flush and the uploads of what is pending.
const EXIT_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

/// Flushes the head into Parquet before exiting (SIGTERM, Ctrl-C), so the next start
/// replays nothing. A failure is logged: the WAL still holds every acknowledged row.
async fn flush_on_exit(store: Arc<Store>) {
    match tokio::task::spawn_blocking(move || store.flush()).await {
        Ok(Ok(parts)) => tracing::info!(parts = parts.len(), "flushed the head before exiting"),
        Ok(Err(err)) => {
            tracing::error!(%err, "flushing the head before exiting failed; the WAL keeps the rows")
        }
        Err(err) => tracing::error!(%err, "the exit flush panicked; the WAL keeps the rows"),
    }
}

/// Binds the OTLP gRPC receiver (`--otlp-grpc-listen`) and serves it in the background.
/// The default address being taken is a warning; an explicit one is an error.
async fn serve_otlp_grpc(
    listen: Option<OtlpListen>,
    state: AppState,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let (addr, explicit) = match listen {
        Some(OtlpListen::Off) => return Ok(None),
        Some(OtlpListen::Addr(addr)) => (addr, true),
        None => (OtlpListen::DEFAULT, false),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) if !explicit => {
            tracing::warn!(%addr, %err, "the default OTLP gRPC port is not available; OTLP gRPC is served on the HTTP port only (set --otlp-grpc-listen)");
            return Ok(None);
        }
        Err(err) => {
            return Err(err).with_context(|| format!("cannot listen on --otlp-grpc-listen {addr}"));
        }
    };
    let bound = listener.local_addr()?;
    tracing::info!(otlp_grpc_listen = %bound, "OTLP gRPC receiver is listening");
    let app = backend::api::otlp_grpc_router(state);
    Ok(Some(tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "the OTLP gRPC server failed");
        }
    })))
}

async fn open_store(cli: &Cli, uploader: Option<&Uploader>) -> anyhow::Result<Arc<Store>> {
    let dir = cli.data_dir.clone();
    let options = StoreOptions {
        retention: cli.retention,
        block_window: cli.block_window,
        flush_rows: cli.head_flush_rows,
        flush_age: cli.head_flush_age(uploader.is_some()),
        trash_grace: cli.trash_grace,
        on_durable: uploader.map(Uploader::hook),
        ..StoreOptions::default()
    };
    let store = tokio::task::spawn_blocking(move || Store::open(&dir, options))
        .await?
        .with_context(|| format!("opening the data dir {}", cli.data_dir.display()))?;
    let levels: Vec<String> = store
        .policy()
        .levels
        .iter()
        .map(|ms| format!("{}s", ms / 1000))
        .collect();
    tracing::info!(?levels, retention = ?cli.retention, "block windows (compaction levels)");
    Ok(Arc::new(store))
}

/// Flushes, compacts and enforces retention in the background, forever.
async fn maintain(store: Arc<Store>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.maintain()).await {
            Ok(Ok(())) => {}
            // Each failed step was logged on its own.
            Ok(Err(_)) => {}
            Err(err) => tracing::error!(%err, "store maintenance panicked"),
        }
    }
}

/// SIGHUP re-reads the config file; a bad file is logged and the running config kept.
async fn reload_on_sighup(config: Option<std::path::PathBuf>, manager: ScrapeManager) {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::error!(%err, "cannot install the SIGHUP handler; no config reloads");
                return;
            }
        };
        while hup.recv().await.is_some() {
            let Some(path) = &config else {
                tracing::info!("SIGHUP ignored: cinder runs without --config");
                continue;
            };
            match load_config(path) {
                Ok(file) => manager.set_config(file.jobs),
                Err(err) => tracing::error!(
                    err = format!("{err:#}"),
                    "config reload failed; keeping the running configuration"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (config, manager);
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
