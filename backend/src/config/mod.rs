//! What the operator says: the command line (with environment fallbacks, [`Cli`]) and the
//! scrape configuration file ([`file`], Parca-compatible YAML, with [`relabel`]ling).

pub mod file;
pub mod object_storage;
pub mod relabel;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{ArgAction, Parser};
use ipnet::IpNet;

use crate::scrape::policy::parse_cidr;

use crate::admission;

pub use file::{ConfigError, ScrapeConfig, ScrapeFile};

/// Command-line options of the `cinder` binary. Every flag has an environment fallback.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cinder",
    version,
    about = "Cinder: a continuous profiler that scrapes, stores and explores pprof profiles."
)]
pub struct Cli {
    /// Scrape configuration file (YAML, Parca-compatible). Without one, Cinder scrapes itself.
    #[arg(long, env = "CINDER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where samples (Parquet, WAL) and metadata (sled) are kept.
    #[arg(
        long,
        env = "CINDER_DATA_DIR",
        value_name = "DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,

    /// Address the HTTP server (API and UI) listens on.
    #[arg(
        long,
        env = "CINDER_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:7070"
    )]
    pub listen: SocketAddr,

    /// Address of the OTLP gRPC receiver (profiles), `off` to disable; default
    /// `127.0.0.1:4317`. The default port being taken only logs a warning; an explicit
    /// address that cannot be bound stops startup.
    #[arg(long, env = "CINDER_OTLP_GRPC_LISTEN", value_name = "ADDR|off", value_parser = parse_otlp_listen)]
    pub otlp_grpc_listen: Option<OtlpListen>,

    /// How long samples are kept, e.g. `15d`, `12h`; `0` keeps everything.
    #[arg(long, env = "CINDER_RETENTION", value_name = "DURATION", default_value = "15d", value_parser = parse_retention)]
    pub retention: Duration,

    /// Length of the aligned time window of a storage block, e.g. `2h`; compaction merges
    /// within a window, then whole windows into larger levels. At most 10% of the retention.
    #[arg(long, env = "CINDER_BLOCK_WINDOW", value_name = "DURATION", default_value = "2h", value_parser = parse_block_window)]
    pub block_window: Duration,

    /// Log filter: a level (`info`, `debug`, …) or a tracing directive list.
    #[arg(
        long,
        env = "CINDER_LOG_LEVEL",
        value_name = "LEVEL",
        default_value = "info"
    )]
    pub log_level: String,

    /// Serve the UI from this folder (trunk's output) instead of the copy embedded in the binary.
    #[arg(long, env = "CINDER_UI_DIR", value_name = "DIR")]
    pub ui_dir: Option<PathBuf>,

    /// Require `Authorization: Bearer <TOKEN>` for ingest and every change to targets.
    #[arg(
        long,
        env = "CINDER_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,

    /// Require the API token for reads too (queries, targets, `/metrics`, this API's
    /// document); `/healthy`, `/ready` and the UI's files stay open. Needs `--api-token`.
    #[arg(long, env = "CINDER_AUTH_READS", requires = "api_token")]
    pub auth_reads: bool,

    /// Host names the server answers to (repeatable, or comma-separated; `*.domain` for
    /// subdomains, `*` for any), against DNS rebinding. Default: on a loopback listen
    /// address, loopback names and addresses only; otherwise every host.
    #[arg(
        long,
        env = "CINDER_ALLOWED_HOSTS",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// Allow creating, changing and deleting scrape targets through the HTTP API
    /// (`--targets-api=false` makes it read-only).
    #[arg(
        long,
        env = "CINDER_TARGETS_API",
        value_name = "BOOL",
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub targets_api: bool,

    /// Scrape link-local addresses (169.254.0.0/16, fe80::/10) such as cloud metadata
    /// services; refused by default because a target form is an SSRF door. The same as
    /// `--scrape-allow-cidr` with both ranges.
    #[arg(long, env = "CINDER_ALLOW_LINK_LOCAL_TARGETS")]
    pub allow_link_local_targets: bool,

    /// Budget of decoded profile bytes in flight across pushes and scrapes, e.g. `256MiB`;
    /// a push that cannot get budget within --admission-wait is answered 429.
    #[arg(long, env = "CINDER_INGEST_MEMORY", value_name = "SIZE", default_value = "256MiB", value_parser = parse_byte_size)]
    pub ingest_memory: usize,

    /// Most samples one profile may hold (413 beyond).
    #[arg(long, env = "CINDER_MAX_PROFILE_SAMPLES", value_name = "N", default_value_t = admission::DEFAULT_MAX_SAMPLES)]
    pub max_profile_samples: usize,

    /// Most locations one profile may hold (413 beyond).
    #[arg(long, env = "CINDER_MAX_PROFILE_LOCATIONS", value_name = "N", default_value_t = admission::DEFAULT_MAX_LOCATIONS)]
    pub max_profile_locations: usize,

    /// Push requests decoded at once; more wait (see --admission-queue), then 429.
    #[arg(
        long,
        env = "CINDER_PUSH_CONCURRENCY",
        value_name = "N",
        default_value_t = 4
    )]
    pub push_concurrency: usize,

    /// Queries run at once; more wait (see --admission-queue), then 429.
    #[arg(
        long,
        env = "CINDER_QUERY_CONCURRENCY",
        value_name = "N",
        default_value_t = 8
    )]
    pub query_concurrency: usize,

    /// Requests that may wait for a push or query slot (per kind) before 429.
    #[arg(
        long,
        env = "CINDER_ADMISSION_QUEUE",
        value_name = "N",
        default_value_t = 32
    )]
    pub admission_queue: usize,

    /// How long a push or query waits for a slot, and a push for memory budget, before 429.
    #[arg(long, env = "CINDER_ADMISSION_WAIT", value_name = "DURATION", default_value = "15s", value_parser = parse_retention)]
    pub admission_wait: Duration,

    /// Series one profile type may have; a push that would go past it gets 429.
    #[arg(
        long,
        env = "CINDER_MAX_SERIES_PER_TYPE",
        value_name = "N",
        default_value_t = 100_000
    )]
    pub max_series_per_type: usize,

    /// Labels one series may have, `__name__` included (400 beyond).
    #[arg(
        long,
        env = "CINDER_MAX_LABELS_PER_SERIES",
        value_name = "N",
        default_value_t = 30
    )]
    pub max_labels_per_series: usize,

    /// Bytes of a label name (400 beyond).
    #[arg(
        long,
        env = "CINDER_MAX_LABEL_NAME_LENGTH",
        value_name = "N",
        default_value_t = 1024
    )]
    pub max_label_name_length: usize,

    /// Bytes of a label value (400 beyond).
    #[arg(
        long,
        env = "CINDER_MAX_LABEL_VALUE_LENGTH",
        value_name = "N",
        default_value_t = 2048
    )]
    pub max_label_value_length: usize,

    /// Distinct values of one pprof sample label in one profile; past it the label is
    /// left off that profile's rows (their values are kept).
    #[arg(
        long,
        env = "CINDER_MAX_SAMPLE_LABEL_VALUES",
        value_name = "N",
        default_value_t = 1000
    )]
    pub max_sample_label_values: usize,

    /// A query running longer is answered 503, e.g. `30s`.
    #[arg(long, env = "CINDER_QUERY_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_positive_duration)]
    pub query_timeout: Duration,

    /// Working memory of the query engine, shared by the queries that run at once; a
    /// query that needs more fails with 422 (it never takes the server down), e.g. `1GiB`.
    #[arg(long, env = "CINDER_QUERY_MEMORY", value_name = "BYTES", default_value = "512MiB", value_parser = parse_byte_size)]
    pub query_memory: usize,

    /// Series one query may select (400 beyond, never a silent subset).
    #[arg(
        long,
        env = "CINDER_QUERY_MAX_SERIES",
        value_name = "N",
        default_value_t = 100_000
    )]
    pub query_max_series: usize,
    /// Refuse scrapes of these addresses too (repeatable, or comma-separated), e.g.
    /// `127.0.0.0/8`; added to the built-in cloud metadata list.
    #[arg(long, env = "CINDER_SCRAPE_DENY_CIDR", value_name = "CIDR", value_delimiter = ',', value_parser = parse_cidr)]
    pub scrape_deny_cidr: Vec<IpNet>,

    /// Allow scrapes of these addresses (repeatable, or comma-separated), carved out of the
    /// deny list; the most specific range wins.
    #[arg(long, env = "CINDER_SCRAPE_ALLOW_CIDR", value_name = "CIDR", value_delimiter = ',', value_parser = parse_cidr)]
    pub scrape_allow_cidr: Vec<IpNet>,

    /// Most targets the targets API may hold; creating more is refused (409).
    #[arg(long, env = "CINDER_MAX_API_TARGETS", value_name = "N", default_value_t = crate::scrape::DEFAULT_MAX_API_TARGETS)]
    pub max_api_targets: usize,

    /// Flush the in-memory head into Parquet once it holds this many rows (tests use small
    /// values to exercise flushes).
    #[arg(
        long,
        env = "CINDER_HEAD_FLUSH_ROWS",
        default_value_t = 1_000_000,
        hide = true
    )]
    pub head_flush_rows: usize,

    /// Flush the head into a block once its oldest row is this old [default: 10m, or 1m
    /// with object storage, where it bounds how soon other nodes see this node's
    /// profiles, with `--bucket-refresh`].
    #[arg(long, env = "CINDER_HEAD_FLUSH_AGE", value_name = "DURATION", value_parser = parse_block_window)]
    pub head_flush_age: Option<Duration>,

    /// With object storage: how often the bucket's block list is read, so that queries
    /// see the blocks other nodes uploaded.
    #[arg(long, env = "CINDER_BUCKET_REFRESH", value_name = "DURATION", default_value = "15s", value_parser = parse_positive_duration)]
    pub bucket_refresh: Duration,

    /// With object storage: the most bytes of block files (footers, column chunks) read
    /// from the bucket that are kept on local disk under `<data-dir>/cache`.
    #[arg(long, env = "CINDER_CACHE_SIZE", value_name = "BYTES", default_value = "1GiB", value_parser = parse_byte_size)]
    pub cache_size: usize,

    /// How often flush, compaction and retention run (tests use short intervals).
    #[arg(long, env = "CINDER_MAINTAIN_INTERVAL", default_value = "10s", value_parser = parse_block_window, hide = true)]
    pub maintain_interval: Duration,

    /// How long retired part files stay for queries that planned with them (tests: short).
    #[arg(long, env = "CINDER_TRASH_GRACE", default_value = "1m", value_parser = parse_block_window, hide = true)]
    pub trash_grace: Duration,
}

/// `--head-flush-age` without object storage.
pub const HEAD_FLUSH_AGE: Duration = Duration::from_secs(600);
/// `--head-flush-age` with object storage: fresher blocks for the other nodes.
pub const HEAD_FLUSH_AGE_SHARED: Duration = Duration::from_secs(60);

impl Cli {
    /// How old the head's oldest row may get before a flush (see `--head-flush-age`).
    pub fn head_flush_age(&self, shared_bucket: bool) -> Duration {
        self.head_flush_age.unwrap_or(if shared_bucket {
            HEAD_FLUSH_AGE_SHARED
        } else {
            HEAD_FLUSH_AGE
        })
    }

    /// The admission and cardinality limits the flags set.
    pub fn limits(&self) -> admission::Limits {
        admission::Limits {
            inflight_bytes: self.ingest_memory,
            max_samples: self.max_profile_samples,
            max_locations: self.max_profile_locations,
            push_concurrency: self.push_concurrency,
            query_concurrency: self.query_concurrency,
            max_series_per_type: self.max_series_per_type,
            max_labels_per_series: self.max_labels_per_series,
            max_label_name_len: self.max_label_name_length,
            max_label_value_len: self.max_label_value_length,
            max_sample_label_values: self.max_sample_label_values,
            queue_len: self.admission_queue,
            queue_wait: self.admission_wait,
        }
    }

    /// The query bounds the flags set.
    pub fn query_limits(&self) -> crate::api::QueryLimits {
        crate::api::QueryLimits {
            timeout: self.query_timeout,
            max_series: self.query_max_series,
        }
    }
}

/// Parses a size such as `256MiB` or a byte count.
fn parse_byte_size(text: &str) -> Result<usize, String> {
    file::parse_size(text.trim())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a size such as 256MiB"))
}

/// Parses a duration such as `30s` that is not zero.
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let d = shared::duration::parse_duration(text).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

/// Where the OTLP gRPC receiver listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpListen {
    /// `off`: no separate gRPC listener (gRPC still works on the HTTP port).
    Off,
    /// An explicit address.
    Addr(SocketAddr),
}

impl OtlpListen {
    /// The default address, used when no `--otlp-grpc-listen` is given.
    pub const DEFAULT: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4317);
}

fn parse_otlp_listen(text: &str) -> Result<OtlpListen, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(OtlpListen::Off);
    }
    text.trim()
        .parse()
        .map(OtlpListen::Addr)
        .map_err(|_| format!("{text:?} is not an address (host:port) or off"))
}

/// Parses a retention such as `15d`; `0` means keep everything (returned as zero).
fn parse_retention(text: &str) -> Result<Duration, String> {
    shared::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// Parses a block window such as `2h`: at least one second.
fn parse_block_window(text: &str) -> Result<Duration, String> {
    let window = shared::duration::parse_duration(text).map_err(|e| e.to_string())?;
    if window < Duration::from_secs(1) {
        return Err("the block window must be at least 1s".into());
    }
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let cli = Cli::try_parse_from(["cinder"]).unwrap();
        assert_eq!(cli.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(cli.data_dir, PathBuf::from("./data"));
        assert_eq!(cli.retention, Duration::from_secs(15 * 86_400));
        assert!(cli.targets_api);
        assert!(!cli.allow_link_local_targets);
        assert_eq!(cli.api_token, None);
        let limits = cli.limits();
        assert_eq!(limits.inflight_bytes, 256 << 20);
        assert_eq!(limits.max_samples, 1_000_000);
        assert_eq!(limits.max_series_per_type, 100_000);
        assert_eq!(limits.max_labels_per_series, 30);
        assert_eq!(cli.query_limits().timeout, Duration::from_secs(30));
        assert_eq!(cli.query_limits().max_series, 100_000);
        assert!(Cli::try_parse_from(["cinder", "--ingest-memory", "lots"]).is_err());
        assert!(Cli::try_parse_from(["cinder", "--query-timeout", "0"]).is_err());
        let cli = Cli::try_parse_from(["cinder", "--ingest-memory", "1GiB"]).unwrap();
        assert_eq!(cli.limits().inflight_bytes, 1 << 30);
        assert_eq!(cli.block_window, Duration::from_secs(2 * 3600));
        assert_eq!(cli.max_api_targets, 1_000);
        assert!(cli.scrape_deny_cidr.is_empty());
    }

    #[test]
    fn block_window_is_a_duration_of_at_least_a_second() {
        let cli = Cli::try_parse_from(["cinder", "--block-window", "30s"]).unwrap();
        assert_eq!(cli.block_window, Duration::from_secs(30));
        assert!(Cli::try_parse_from(["cinder", "--block-window", "0"]).is_err());
        assert!(Cli::try_parse_from(["cinder", "--block-window", "later"]).is_err());
    }

    #[test]
    fn cidr_flags_repeat_and_split_on_commas() {
        let cli = Cli::try_parse_from([
            "cinder",
            "--scrape-deny-cidr",
            "127.0.0.0/8,::1",
            "--scrape-deny-cidr=10.0.0.0/8",
            "--scrape-allow-cidr",
            "10.1.0.0/16",
        ])
        .unwrap();
        let deny: Vec<String> = cli.scrape_deny_cidr.iter().map(|n| n.to_string()).collect();
        assert_eq!(deny, ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]);
        assert_eq!(cli.scrape_allow_cidr.len(), 1);
        assert!(Cli::try_parse_from(["cinder", "--scrape-deny-cidr", "nope"]).is_err());
    }

    #[test]
    fn auth_reads_needs_a_token() {
        assert!(Cli::try_parse_from(["cinder", "--auth-reads"]).is_err());
        let cli = Cli::try_parse_from(["cinder", "--auth-reads", "--api-token", "t"]).unwrap();
        assert!(cli.auth_reads);
    }

    #[test]
    fn targets_api_takes_an_explicit_boolean() {
        for (args, want) in [
            (&["cinder", "--targets-api=false"][..], false),
            (&["cinder", "--targets-api", "false"][..], false),
            (&["cinder", "--targets-api"][..], true),
            (&["cinder", "--targets-api=true"][..], true),
        ] {
            assert_eq!(
                Cli::try_parse_from(args).unwrap().targets_api,
                want,
                "{args:?}"
            );
        }
        assert!(Cli::try_parse_from(["cinder", "--targets-api=maybe"]).is_err());
    }

    #[test]
    fn retention_zero_keeps_everything_and_garbage_is_refused() {
        let cli = Cli::try_parse_from(["cinder", "--retention", "0"]).unwrap();
        assert_eq!(cli.retention, Duration::ZERO);
        assert!(Cli::try_parse_from(["cinder", "--retention", "soon"]).is_err());
        assert!(Cli::try_parse_from(["cinder", "--listen", "nowhere"]).is_err());
    }

    #[test]
    fn otlp_grpc_listen_is_an_address_or_off() {
        let cli = Cli::try_parse_from(["cinder"]).unwrap();
        assert_eq!(cli.otlp_grpc_listen, None);
        assert_eq!(OtlpListen::DEFAULT.to_string(), "127.0.0.1:4317");
        let cli = Cli::try_parse_from(["cinder", "--otlp-grpc-listen", "off"]).unwrap();
        assert_eq!(cli.otlp_grpc_listen, Some(OtlpListen::Off));
        let cli = Cli::try_parse_from(["cinder", "--otlp-grpc-listen", "0.0.0.0:4400"]).unwrap();
        assert_eq!(
            cli.otlp_grpc_listen,
            Some(OtlpListen::Addr("0.0.0.0:4400".parse().unwrap()))
        );
        assert!(Cli::try_parse_from(["cinder", "--otlp-grpc-listen", "here"]).is_err());
    }
}
