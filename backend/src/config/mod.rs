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

    /// Address of the OTLP gRPC receiver (profiles), `off` to disable; default
    /// `127.0.0.1:4317`. The default port being taken only logs a warning; an explicit
    /// address that cannot be bound stops startup.
    #[arg(long, env = "CINDER_OTLP_GRPC_LISTEN", value_name = "ADDR|off", value_parser = parse_otlp_listen)]
    pub otlp_grpc_listen: Option<OtlpListen>,

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
