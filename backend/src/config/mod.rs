//! What the operator says: the command line (with environment fallbacks, [`Cli`]) and the
//! scrape configuration file ([`file`], Parca-compatible YAML, with [`relabel`]ling).

pub mod file;
pub mod relabel;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{ArgAction, Parser};

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
    /// services; refused by default because a target form is an SSRF door.
    #[arg(long, env = "CINDER_ALLOW_LINK_LOCAL_TARGETS")]
    pub allow_link_local_targets: bool,

    /// Flush the in-memory head into Parquet once it holds this many rows (tests use small
    /// values to exercise flushes).
    #[arg(
        long,
        env = "CINDER_HEAD_FLUSH_ROWS",
        default_value_t = 1_000_000,
        hide = true
    )]
    pub head_flush_rows: usize,

    /// Flush the head once its oldest row is this old (tests use short ones).
    #[arg(long, env = "CINDER_HEAD_FLUSH_AGE", default_value = "10m", value_parser = parse_block_window, hide = true)]
    pub head_flush_age: Duration,

    /// How often flush, compaction and retention run (tests use short intervals).
    #[arg(long, env = "CINDER_MAINTAIN_INTERVAL", default_value = "10s", value_parser = parse_block_window, hide = true)]
    pub maintain_interval: Duration,

    /// How long retired part files stay for queries that planned with them (tests: short).
    #[arg(long, env = "CINDER_TRASH_GRACE", default_value = "1m", value_parser = parse_block_window, hide = true)]
    pub trash_grace: Duration,
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
        assert_eq!(cli.block_window, Duration::from_secs(2 * 3600));
    }

    #[test]
    fn block_window_is_a_duration_of_at_least_a_second() {
        let cli = Cli::try_parse_from(["cinder", "--block-window", "30s"]).unwrap();
        assert_eq!(cli.block_window, Duration::from_secs(30));
        assert!(Cli::try_parse_from(["cinder", "--block-window", "0"]).is_err());
        assert!(Cli::try_parse_from(["cinder", "--block-window", "later"]).is_err());
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
}
