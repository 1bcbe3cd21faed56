//! What the operator says: the command line (with environment fallbacks, [`Cli`]) and the
//! scrape configuration file ([`file`], Parca-compatible YAML, with [`relabel`]ling).

pub mod file;
pub mod relabel;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{ArgAction, Parser};
use ipnet::IpNet;

use crate::scrape::policy::parse_cidr;

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
}

/// Parses a retention such as `15d`; `0` means keep everything (returned as zero).
fn parse_retention(text: &str) -> Result<Duration, String> {
    shared::duration::parse_duration(text).map_err(|e| e.to_string())
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
        assert_eq!(cli.max_api_targets, 1_000);
        assert!(cli.scrape_deny_cidr.is_empty());
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
}
