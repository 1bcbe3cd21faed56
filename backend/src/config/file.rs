//! The scrape configuration file: Parca's `parca.yaml` (its `scrape_configs` section, read
//! unchanged) with Parca's defaults, checked strictly so a typo is a startup error that
//! names the key and the line.
//!
//! Parca's `object_storage` section is read too ([`super::object_storage`]), so a real
//! `parca.yaml` loads as it is. File paths in the file (`file_sd_configs`,
//! `password_file`, `credentials_file`, `ca_file`, a FILESYSTEM bucket's `directory`) are
//! relative to the file's folder.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use shared::labels::{Labels, is_valid_label_name};

use super::{object_storage::ObjectStorage, relabel::Rule};

/// Parca's default interval between two scrapes of a target.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Parca's default timeout is the interval plus this (a CPU profile lasts the interval).
pub const TIMEOUT_SLACK: Duration = Duration::from_secs(3);
/// Default cap on a scraped (compressed) body.
pub const DEFAULT_BODY_SIZE_LIMIT: usize = 16 << 20;
/// Parca's top-level keys that Cinder accepts and ignores (none today).
pub const IGNORED_PARCA_KEYS: &[&str] = &[];

/// Parca's profiles when `pprof_config` is absent: (name, path, delta).
pub const DEFAULT_PROFILES: &[(&str, &str, bool)] = &[
    ("block", "/debug/pprof/block", false),
    ("goroutine", "/debug/pprof/goroutine", false),
    ("memory", "/debug/pprof/allocs", false),
    ("mutex", "/debug/pprof/mutex", false),
    ("process_cpu", "/debug/pprof/profile", true),
];

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML or breaks a rule; the message names the key and line.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    /// The scheme as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// Parses `http` or `https`.
    pub fn parse(text: &str) -> Option<Scheme> {
        match text {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Prometheus duration string (`10s`, `1m30s`) in the file. Parsed in the visitor so an
/// error carries the value's own line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConfigDuration(Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConfigDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 10s or 1m30s")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ConfigDuration, E> {
                shared::duration::parse_duration(text)
                    .map(ConfigDuration)
                    .map_err(|e| E::custom(format!("invalid duration {text:?} ({e})")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A size such as `16MiB`, `10MB` (Prometheus reads MB as MiB) or a plain byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSize(usize);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 16MiB or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n as usize))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<ByteSize, E> {
                parse_size(text)
                    .map(ByteSize)
                    .ok_or_else(|| E::custom(format!("invalid size {text:?} (e.g. 16MiB)")))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Parses a size such as `16MiB` (see [`ByteSize`]).
pub(crate) fn parse_size(text: &str) -> Option<usize> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number: usize = text[..digits].parse().ok()?;
    let shift = match text[digits..].trim() {
        "" | "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    scrape_configs: Vec<ScrapeConfig>,
    /// Parca's bucket configuration.
    object_storage: Option<ObjectStorage>,
}

/// One `scrape_configs` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrapeConfig {
    job_name: String,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    scrape_interval: Option<ConfigDuration>,
    scrape_timeout: Option<ConfigDuration>,
    #[serde(default)]
    scheme: Scheme,
    /// Parca: addresses are already normalized. Accepted, unused.
    #[serde(default)]
    normalized_addresses: bool,
    profiling_config: Option<RawProfilingConfig>,
    #[serde(default)]
    relabel_configs: Vec<Rule>,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
    #[serde(default)]
    file_sd_configs: Vec<FileSdConfig>,
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
    tls_config: Option<TlsConfig>,
    follow_redirects: Option<bool>,
    /// Prometheus' HTTP client option; Cinder speaks HTTP/1.1 to targets. Accepted, unused.
    enable_http2: Option<bool>,
    /// Prometheus' proxy keys: an `http://` or `https://` proxy for every scrape of the job,
    /// hosts that bypass it, or the `HTTP(S)_PROXY`/`NO_PROXY` environment.
    proxy_url: Option<String>,
    no_proxy: Option<String>,
    #[serde(default)]
    proxy_from_environment: bool,
    body_size_limit: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfilingConfig {
    pprof_config: Option<BTreeMap<String, Option<RawPprofConfig>>>,
    path_prefix: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPprofConfig {
    enabled: Option<bool>,
    path: Option<String>,
    delta: Option<bool>,
    seconds: Option<u64>,
    keep_sample_type: Option<Vec<SampleTypeFilter>>,
}

/// A `keep_sample_type` entry: keep only sample types with this type (and unit, if set).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleTypeFilter {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub unit: String,
}

/// `static_configs` entry and the format of `file_sd_configs` files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSdConfig {
    files: Vec<String>,
    refresh_interval: Option<ConfigDuration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuth {
    username: String,
    password: Option<String>,
    password_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Authorization {
    #[serde(rename = "type")]
    ty: Option<String>,
    credentials: Option<String>,
    credentials_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    #[serde(default)]
    insecure_skip_verify: bool,
    ca_file: Option<String>,
}

/// A checked scrape config: one job, with Parca's defaults filled in.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawScrapeConfig")]
pub struct ScrapeConfig {
    /// The `job` label of its targets.
    pub job_name: String,
    /// Between two scrapes of one profile of one target.
    pub interval: Duration,
    /// Of one scrape, connection to last byte.
    pub timeout: Duration,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Extra query parameters sent with every scrape.
    pub params: Vec<(String, String)>,
    /// The enabled profiles, by name, with the path prefix applied.
    pub profiles: Vec<ProfileConfig>,
    /// Target relabelling.
    pub relabel_configs: Vec<Rule>,
    /// Targets written in the file.
    pub static_configs: Vec<StaticConfig>,
    /// Target files, re-read when they change.
    pub file_sd: Vec<FileSd>,
    /// Authentication, TLS and redirects.
    pub http: HttpConfig,
    /// Cap on a scraped body (compressed).
    pub body_size_limit: usize,
}

impl ScrapeConfig {
    /// The embedded default when there is no config file: Cinder scrapes its own CPU
    /// profile and in-use heap (job `cinder`), with `instance` set to the address it
    /// listens on.
    pub fn self_scrape(listen: std::net::SocketAddr) -> ScrapeConfig {
        let mut target = listen;
        if target.ip().is_unspecified() {
            target.set_ip(match target {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        ScrapeConfig {
            job_name: "cinder".into(),
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_INTERVAL + TIMEOUT_SLACK,
            scheme: Scheme::Http,
            params: Vec::new(),
            profiles: vec![
                ProfileConfig::default_named("process_cpu").expect("a default profile"),
                ProfileConfig {
                    path: "/debug/pprof/heap".into(),
                    ..ProfileConfig::default_named("memory").expect("a default profile")
                },
            ],
            relabel_configs: Vec::new(),
            static_configs: vec![StaticConfig {
                targets: vec![target.to_string()],
                labels: [("instance".to_owned(), listen.to_string())].into(),
            }],
            file_sd: Vec::new(),
            http: HttpConfig {
                follow_redirects: true,
                self_scrape: true,
                ..HttpConfig::default()
            },
            body_size_limit: DEFAULT_BODY_SIZE_LIMIT,
        }
    }
}

/// Checks Prometheus' proxy keys: `proxy_url` (http or https, with a host) with an
/// optional `no_proxy`, or `proxy_from_environment`, which excludes both.
fn proxy_config(
    job: &str,
    url: Option<String>,
    no_proxy: Option<String>,
    from_environment: bool,
) -> Result<ProxyConfig, String> {
    match (url, from_environment) {
        (Some(_), true) => Err(format!(
            "job {job:?}: proxy_url and proxy_from_environment are mutually exclusive"
        )),
        (None, true) if no_proxy.is_some() => Err(format!(
            "job {job:?}: no_proxy goes with proxy_url, not proxy_from_environment (which reads NO_PROXY)"
        )),
        (None, true) => Ok(ProxyConfig::Environment),
        (None, false) if no_proxy.is_some() => {
            Err(format!("job {job:?}: no_proxy needs a proxy_url"))
        }
        (None, false) => Ok(ProxyConfig::None),
        (Some(url), false) => {
            let parsed = url::Url::parse(&url)
                .map_err(|e| format!("job {job:?}: proxy_url {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(format!(
                    "job {job:?}: proxy_url {url:?} must be an http:// or https:// URL with a host"
                ));
            }
            Ok(ProxyConfig::Url { url, no_proxy })
        }
    }
}

/// One profile a job scrapes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileConfig {
    /// The profile's name (its `__name__` label), e.g. `process_cpu`.
    pub name: String,
    /// URL path, e.g. `/debug/pprof/profile`.
    pub path: String,
    /// The endpoint produces a delta over `?seconds=N` (a CPU profile).
    pub delta: bool,
    /// `seconds` to ask for when `delta`; the interval's when unset.
    pub seconds: Option<u64>,
    /// Keep only these sample types (all when empty).
    pub keep_sample_types: Vec<SampleTypeFilter>,
}

impl ProfileConfig {
    /// Parca's default profile `name`, if it is one.
    pub fn default_named(name: &str) -> Option<ProfileConfig> {
        DEFAULT_PROFILES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(name, path, delta)| ProfileConfig {
                name: name.to_owned(),
                path: path.to_owned(),
                delta,
                seconds: None,
                keep_sample_types: Vec::new(),
            })
    }
}

/// Files of target groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSd {
    /// Paths (absolute), possibly with `*`/`?` in the file name.
    pub files: Vec<PathBuf>,
    /// Re-read at least this often even without a visible change.
    pub refresh_interval: Duration,
}

/// How to talk to a job's targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HttpConfig {
    /// `basic_auth`: user and password.
    pub basic_auth: Option<(String, Secret)>,
    /// `authorization`: scheme (default `Bearer`) and credentials.
    pub authorization: Option<(String, Secret)>,
    /// `tls_config.insecure_skip_verify`.
    pub insecure_skip_verify: bool,
    /// `tls_config.ca_file` (absolute once loaded).
    pub ca_file: Option<PathBuf>,
    /// Follow redirects (at most a few); Prometheus' default is to follow.
    pub follow_redirects: bool,
    /// `proxy_url` / `proxy_from_environment`: scrapes use no proxy unless configured.
    pub proxy: ProxyConfig,
    /// Cinder's own endpoint (the embedded self-scrape): the address deny list does not apply.
    pub self_scrape: bool,
}

/// The proxy of a job's scrapes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum ProxyConfig {
    /// Direct connections, whatever the environment says (the default).
    #[default]
    None,
    /// `proxy_from_environment: true`: `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`.
    Environment,
    /// `proxy_url`, with the `no_proxy` list (comma-separated hosts, domains, CIDRs).
    Url {
        url: String,
        no_proxy: Option<String>,
    },
}

/// A password or token: written inline or read from a file (when a client is built, so a
/// rotated file is picked up by a reload).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret(<hidden>)"),
            Secret::File(path) => write!(f, "Secret(file {})", path.display()),
        }
    }
}

impl Secret {
    /// The secret's value (a file's content without surrounding whitespace).
    pub fn read(&self) -> std::io::Result<String> {
        match self {
            Secret::Inline(value) => Ok(value.clone()),
            Secret::File(path) => std::fs::read_to_string(path).map(|s| s.trim().to_owned()),
        }
    }
}

impl TryFrom<RawScrapeConfig> for ScrapeConfig {
    type Error = String;

    fn try_from(raw: RawScrapeConfig) -> Result<Self, String> {
        let job = raw.job_name.clone();
        if job.is_empty() {
            return Err("job_name is empty".into());
        }
        let interval = raw.scrape_interval.map_or(DEFAULT_INTERVAL, |d| d.0);
        if interval < Duration::from_secs(1) {
            return Err(format!("job {job:?}: scrape_interval must be at least 1s"));
        }
        let timeout = raw.scrape_timeout.map_or(interval + TIMEOUT_SLACK, |d| d.0);
        // Parca's rule: a CPU profile lasts the interval, so the timeout must be longer.
        if timeout <= interval {
            return Err(format!(
                "job {job:?}: scrape_timeout ({}) must be greater than scrape_interval ({})",
                shared::duration::format_duration(timeout),
                shared::duration::format_duration(interval)
            ));
        }
        let profiles = profiles(&job, raw.profiling_config.unwrap_or_default())?;
        if profiles.iter().any(|p| p.name == "process_cpu") && timeout < Duration::from_secs(2) {
            return Err(format!(
                "job {job:?}: process_cpu needs a scrape_timeout of at least 2s"
            ));
        }
        if raw.relabel_configs.is_empty() {
            for group in &raw.static_configs {
                for target in &group.targets {
                    check_address(target).map_err(|e| format!("job {job:?}: {e}"))?;
                }
            }
        }
        for group in &raw.static_configs {
            check_group_labels(&group.labels).map_err(|e| format!("job {job:?}: {e}"))?;
        }
        for file_sd in &raw.file_sd_configs {
            if file_sd.files.is_empty() {
                return Err(format!("job {job:?}: file_sd_configs entry without files"));
            }
        }
        let params = raw
            .params
            .into_iter()
            .flat_map(|(k, vs)| vs.into_iter().map(move |v| (k.clone(), v)))
            .collect();
        let basic_auth = match raw.basic_auth {
            None => None,
            Some(BasicAuth {
                username,
                password,
                password_file,
            }) => Some((
                username,
                match (password, password_file) {
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "job {job:?}: basic_auth has both password and password_file"
                        ));
                    }
                    (Some(p), None) => Secret::Inline(p),
                    (None, Some(f)) => Secret::File(f.into()),
                    (None, None) => Secret::Inline(String::new()),
                },
            )),
        };
        let authorization = match raw.authorization {
            None => None,
            Some(Authorization {
                ty,
                credentials,
                credentials_file,
            }) => {
                let ty = ty.unwrap_or_else(|| "Bearer".to_owned());
                if ty.eq_ignore_ascii_case("basic") {
                    return Err(format!(
                        "job {job:?}: authorization type Basic is written as basic_auth"
                    ));
                }
                if basic_auth.is_some() {
                    return Err(format!(
                        "job {job:?}: basic_auth and authorization are mutually exclusive"
                    ));
                }
                let secret = match (credentials, credentials_file) {
                    (Some(_), Some(_)) => {
                        return Err(format!(
                            "job {job:?}: authorization has both credentials and credentials_file"
                        ));
                    }
                    (Some(c), None) => Secret::Inline(c),
                    (None, Some(f)) => Secret::File(f.into()),
                    (None, None) => {
                        return Err(format!(
                            "job {job:?}: authorization needs credentials or credentials_file"
                        ));
                    }
                };
                Some((ty, secret))
            }
        };
        let tls = raw.tls_config.unwrap_or(TlsConfig {
            insecure_skip_verify: false,
            ca_file: None,
        });
        let _ = (raw.normalized_addresses, raw.enable_http2);
        let proxy = proxy_config(
            &job,
            raw.proxy_url,
            raw.no_proxy,
            raw.proxy_from_environment,
        )?;
        Ok(ScrapeConfig {
            job_name: job,
            interval,
            timeout,
            scheme: raw.scheme,
            params,
            profiles,
            relabel_configs: raw.relabel_configs,
            static_configs: raw.static_configs,
            file_sd: raw
                .file_sd_configs
                .into_iter()
                .map(|f| FileSd {
                    files: f.files.into_iter().map(PathBuf::from).collect(),
                    refresh_interval: f.refresh_interval.map_or(Duration::from_secs(300), |d| d.0),
                })
                .collect(),
            http: HttpConfig {
                basic_auth,
                authorization,
                insecure_skip_verify: tls.insecure_skip_verify,
                ca_file: tls.ca_file.map(PathBuf::from),
                follow_redirects: raw.follow_redirects.unwrap_or(true),
                proxy,
                self_scrape: false,
            },
            body_size_limit: raw.body_size_limit.map_or(DEFAULT_BODY_SIZE_LIMIT, |b| b.0),
        })
    }
}

/// Parca's merge: absent `pprof_config` → the defaults; otherwise each default profile is
/// kept unless written (a written one inherits the default path and is enabled unless it
/// says otherwise); custom profiles need a path. `path_prefix` is put before every path.
fn profiles(job: &str, config: RawProfilingConfig) -> Result<Vec<ProfileConfig>, String> {
    let written = config.pprof_config.unwrap_or_default();
    let mut names: BTreeSet<String> = written.keys().cloned().collect();
    names.extend(DEFAULT_PROFILES.iter().map(|(n, _, _)| (*n).to_owned()));
    let mut out = Vec::new();
    for name in names {
        let default = ProfileConfig::default_named(&name);
        let raw = written.get(&name).cloned().flatten().unwrap_or_default();
        if !raw.enabled.unwrap_or(true) {
            continue;
        }
        if !is_valid_label_name(&name) {
            return Err(format!(
                "job {job:?}: profile name {name:?} must match [a-zA-Z_][a-zA-Z0-9_]*"
            ));
        }
        let path = match (raw.path, &default) {
            (Some(p), _) if !p.is_empty() => p,
            (_, Some(d)) => d.path.clone(),
            _ => {
                return Err(format!(
                    "job {job:?}: pprof_config.{name} needs a path (it is not one of Parca's defaults)"
                ));
            }
        };
        if !path.starts_with('/') {
            return Err(format!(
                "job {job:?}: pprof_config.{name}.path {path:?} must start with /"
            ));
        }
        let path = match &config.path_prefix {
            Some(prefix) if !prefix.is_empty() => format!(
                "/{}/{}",
                prefix.trim_matches('/'),
                path.trim_start_matches('/')
            )
            .replace("//", "/"),
            _ => path,
        };
        if raw.seconds == Some(0) {
            return Err(format!(
                "job {job:?}: pprof_config.{name}.seconds must be at least 1"
            ));
        }
        out.push(ProfileConfig {
            delta: raw
                .delta
                .unwrap_or(default.as_ref().is_some_and(|d| d.delta)),
            name,
            path,
            seconds: raw.seconds,
            keep_sample_types: raw.keep_sample_type.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// A target address must be `host:port`: no scheme, no path.
pub fn check_address(address: &str) -> Result<(), String> {
    if address.contains("://") {
        return Err(format!(
            "target {address:?} must be host:port, without a scheme (set scheme instead)"
        ));
    }
    if address.contains('/') {
        return Err(format!(
            "target {address:?} must be host:port, without a path"
        ));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "target {address:?} must be host:port (the port is missing)"
        ));
    };
    if host.is_empty() {
        return Err(format!("target {address:?} has no host"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "target {address:?}: an IPv6 address must be written in brackets, e.g. [::1]:6060"
        ));
    }
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("target {address:?} has an invalid port {port:?}"));
    }
    Ok(())
}

fn check_group_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    for name in labels.keys() {
        if !is_valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
    }
    Ok(())
}

/// The scrape part of a loaded configuration file.
#[derive(Debug, Clone, Default)]
pub struct ScrapeFile {
    /// Its jobs, in file order.
    pub jobs: Vec<ScrapeConfig>,
    /// Parca keys that were present and are ignored (for a notice).
    pub ignored_keys: Vec<&'static str>,
    /// Parca's `object_storage` section, checked, when present.
    pub object_storage: Option<ObjectStorage>,
}

impl ScrapeFile {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<ScrapeFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        ScrapeFile::parse(&text, base).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses `text`, resolving relative file references against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<ScrapeFile, String> {
        // An empty document is an empty configuration.
        let raw: RawFile = if text.trim().is_empty() {
            RawFile {
                scrape_configs: Vec::new(),
                object_storage: None,
            }
        } else {
            serde_norway::from_str(text).map_err(|e| with_line(text, e.to_string()))?
        };
        let ignored_keys = Vec::new();
        let mut object_storage = raw.object_storage;
        if let Some(storage) = &mut object_storage {
            storage.validate(base)?;
        }
        let mut seen = BTreeSet::new();
        let mut jobs = Vec::new();
        for (i, mut job) in raw.scrape_configs.into_iter().enumerate() {
            let line = job_line(text, i).map_or(String::new(), |l| format!(" at line {l}"));
            if !seen.insert(job.job_name.clone()) {
                return Err(format!(
                    "scrape_configs[{i}]: job_name {:?} is used twice{line}",
                    job.job_name
                ));
            }
            resolve_files(&mut job, base)
                .map_err(|e| format!("scrape_configs[{i}] (job {:?}): {e}{line}", job.job_name))?;
            jobs.push(job);
        }
        Ok(ScrapeFile {
            jobs,
            ignored_keys,
            object_storage,
        })
    }
}

/// Top-level errors carry no position: find the offending key's line ourselves.
fn with_line(text: &str, message: String) -> String {
    if message.contains(" at line ") {
        return message;
    }
    let key = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next());
    let line = key.and_then(|key| {
        text.lines().position(|l| {
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
    });
    match line {
        Some(n) => format!("{message} at line {}", n + 1),
        None => message,
    }
}

/// The line (1-based) of the `i`-th `job_name:` of the file.
fn job_line(text: &str, i: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.trim_start()
                .trim_start_matches('-')
                .trim_start()
                .starts_with("job_name:")
        })
        .nth(i)
        .map(|(n, _)| n + 1)
}

/// Makes file references absolute and checks that secret files can be read.
fn resolve_files(job: &mut ScrapeConfig, base: &Path) -> Result<(), String> {
    let secrets = [
        (
            job.http.basic_auth.as_mut().map(|(_, s)| s),
            "basic_auth.password_file",
        ),
        (
            job.http.authorization.as_mut().map(|(_, s)| s),
            "authorization.credentials_file",
        ),
    ];
    for (secret, key) in secrets {
        if let Some(Secret::File(path)) = secret {
            *path = base.join(&*path);
            secret_check(path, key)?;
        }
    }
    if let Some(path) = &mut job.http.ca_file {
        *path = base.join(&*path);
        secret_check(path, "tls_config.ca_file")?;
    }
    for file_sd in &mut job.file_sd {
        for file in &mut file_sd.files {
            *file = base.join(&*file);
        }
    }
    Ok(())
}

fn secret_check(path: &Path, key: &str) -> Result<(), String> {
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

/// The labels of a static or file group, checked.
pub fn group_labels(group: &StaticConfig) -> Labels {
    group
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ScrapeFile, String> {
        ScrapeFile::parse(text, Path::new("/etc/cinder"))
    }

    /// The shape of Parca's own example `parca.yaml`.
    const PARCA_YAML: &str = r#"
object_storage:
  bucket:
    type: "FILESYSTEM"
    config:
      directory: "./data"

scrape_configs:
  - job_name: "default"
    scrape_interval: "1s"
    static_configs:
      - targets: [ '127.0.0.1:7070' ]
  - job_name: "go-app"
    scrape_interval: "15s"
    scrape_timeout: "20s"
    scheme: https
    params:
      debug: ["0"]
    tls_config:
      insecure_skip_verify: true
    authorization:
      credentials: s3cret
    static_configs:
      - targets: ['app-1:6060', 'app-2:6060']
        labels:
          env: prod
    relabel_configs:
      - source_labels: [__address__]
        regex: '(.*):6060'
        target_label: host
    profiling_config:
      path_prefix: /app
      pprof_config:
        fgprof:
          enabled: true
          path: /debug/fgprof/profile
          delta: true
        block:
          enabled: false
        memory:
          path: /debug/pprof/heap
"#;

    #[test]
    fn a_parca_yaml_loads_with_parca_defaults() {
        let file = parse(PARCA_YAML).unwrap();
        assert!(file.ignored_keys.is_empty());
        assert!(file.object_storage.is_some());
        let default = &file.jobs[0];
        assert_eq!(default.interval, Duration::from_secs(1));
        assert_eq!(default.timeout, Duration::from_secs(4), "interval + 3s");
        assert_eq!(default.scheme, Scheme::Http);
        let names: Vec<&str> = default.profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["block", "goroutine", "memory", "mutex", "process_cpu"]
        );
        let memory = default
            .profiles
            .iter()
            .find(|p| p.name == "memory")
            .unwrap();
        assert_eq!(
            (memory.path.as_str(), memory.delta),
            ("/debug/pprof/allocs", false)
        );
        let cpu = default
            .profiles
            .iter()
            .find(|p| p.name == "process_cpu")
            .unwrap();
        assert_eq!(
            (cpu.path.as_str(), cpu.delta),
            ("/debug/pprof/profile", true)
        );

        let app = &file.jobs[1];
        assert_eq!(app.scheme, Scheme::Https);
        assert!(app.http.insecure_skip_verify);
        assert_eq!(
            app.http.authorization,
            Some(("Bearer".to_owned(), Secret::Inline("s3cret".to_owned())))
        );
        assert_eq!(app.params, [("debug".to_owned(), "0".to_owned())]);
        let paths: Vec<(&str, &str)> = app
            .profiles
            .iter()
            .map(|p| (p.name.as_str(), p.path.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("fgprof", "/app/debug/fgprof/profile"),
                ("goroutine", "/app/debug/pprof/goroutine"),
                ("memory", "/app/debug/pprof/heap"),
                ("mutex", "/app/debug/pprof/mutex"),
                ("process_cpu", "/app/debug/pprof/profile"),
            ]
        );
        assert_eq!(app.static_configs[0].labels["env"], "prod");
    }

    #[test]
    fn proxy_keys_are_read_and_checked() {
        let job = |extra: &str| {
            parse(&format!(
                "scrape_configs:\n  - job_name: a\n    static_configs: [{{targets: ['h:1']}}]\n{extra}"
            ))
            .map(|f| f.jobs[0].http.proxy.clone())
        };
        assert_eq!(job("").unwrap(), ProxyConfig::None);
        assert_eq!(
            job("    proxy_url: http://proxy:3128\n    no_proxy: localhost,10.0.0.0/8\n").unwrap(),
            ProxyConfig::Url {
                url: "http://proxy:3128".into(),
                no_proxy: Some("localhost,10.0.0.0/8".into())
            }
        );
        assert_eq!(
            job("    proxy_from_environment: true\n").unwrap(),
            ProxyConfig::Environment
        );
        for (bad, says) in [
            ("    proxy_url: socks5://p:1\n", "http:// or https://"),
            ("    proxy_url: 'not a url'\n", "not a URL"),
            ("    no_proxy: localhost\n", "needs a proxy_url"),
            (
                "    proxy_url: http://p:1\n    proxy_from_environment: true\n",
                "mutually exclusive",
            ),
        ] {
            let err = job(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let cases: &[(&str, &[&str])] = &[
            (
                "scrape_configs:\n  - job_name: a\n    scrape_intervall: 10s\n",
                &["scrape_intervall", "line 3"],
            ),
            (
                "scrape_configs:\n  - job_name: a\n    scrape_interval: 10x\n",
                &["scrape_interval", "10x", "line 3"],
            ),
            (
                "scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
                &["scheme", "ftp", "line 3"],
            ),
            ("global:\n  scrape_interval: 10s\n", &["global", "line 1"]),
            (
                "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [x:1]\n        lables: {a: b}\n",
                &["lables", "line 5"],
            ),
            (
                "scrape_configs:\n  - job_name: a\n    profiling_config:\n      pprof_config:\n        memory:\n          pth: /x\n",
                &["pth", "line 6"],
            ),
            (
                "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [a]\n        regex: '('\n        target_label: b\n",
                &["relabel", "regex", "line 4"],
            ),
        ];
        for (yaml, wants) in cases {
            let err = parse(yaml).unwrap_err();
            for want in *wants {
                assert!(err.contains(want), "{yaml:?}: {err:?} lacks {want:?}");
            }
        }
    }

    #[test]
    fn rules_between_fields_are_checked() {
        let cases = [
            (
                "scrape_configs:\n  - job_name: a\n    scrape_interval: 10s\n    scrape_timeout: 5s\n",
                "must be greater than scrape_interval",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://x:1']\n",
                "without a scheme",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['x:1/debug']\n",
                "without a path",
            ),
            (
                "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
                "used twice",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    profiling_config:\n      pprof_config:\n        custom: {enabled: true}\n",
                "needs a path",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p}\n    authorization: {credentials: c}\n",
                "mutually exclusive",
            ),
            ("scrape_configs:\n  - job_name: ''\n", "job_name is empty"),
        ];
        for (yaml, want) in cases {
            let err = parse(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml:?}: {err}");
            assert!(err.contains("line"), "{yaml:?}: {err} has no line");
        }
    }

    #[test]
    fn secret_files_are_read_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "tok\n").unwrap();
        let yaml = "scrape_configs:\n  - job_name: a\n    authorization:\n      credentials_file: token\n    file_sd_configs:\n      - files: ['sd/*.json']\n";
        let file = ScrapeFile::parse(yaml, dir.path()).unwrap();
        let job = &file.jobs[0];
        assert_eq!(
            job.http.authorization.as_ref().unwrap().1.read().unwrap(),
            "tok"
        );
        assert_eq!(job.file_sd[0].files[0], dir.path().join("sd/*.json"));
        let missing = ScrapeFile::parse(
            "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password_file: nope}\n",
            dir.path(),
        )
        .unwrap_err();
        assert!(missing.contains("password_file"), "{missing}");
    }

    #[test]
    fn the_readme_example_loads() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find("```yaml\n")
            .expect("a yaml block in the README")
            + 8;
        let yaml = &readme[start..start + readme[start..].find("```").unwrap()];
        let dir = tempfile::tempdir().unwrap();
        for file in ["pw", "ca.pem"] {
            std::fs::write(dir.path().join(file), "x").unwrap();
        }
        let file = ScrapeFile::parse(yaml, dir.path()).unwrap();
        let job = &file.jobs[0];
        assert_eq!(job.timeout, Duration::from_secs(13));
        let names: Vec<&str> = job.profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["fgprof", "goroutine", "memory", "mutex", "process_cpu"]
        );
        let cpu = job
            .profiles
            .iter()
            .find(|p| p.name == "process_cpu")
            .unwrap();
        assert_eq!(
            (cpu.seconds, cpu.path.as_str()),
            (Some(5), "/app/debug/pprof/profile")
        );
    }

    #[test]
    fn the_readme_sharding_example_splits_the_targets_between_three_nodes() {
        let readme = include_str!("../../../README.md");
        let at = readme
            .find("action: hashmod")
            .expect("the sharding example");
        let start = readme[..at].rfind("```yaml\n").unwrap() + 8;
        let block = &readme[start..start + readme[start..].find("```").unwrap()];
        let yaml: String = block
            .lines()
            .map(|l| l.strip_prefix("  ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let mut kept = 0;
        for shard in ["0", "1", "2"] {
            let yaml = yaml.replace("regex: \"0\"", &format!("regex: \"{shard}\""));
            let file = ScrapeFile::parse(&yaml, Path::new(".")).unwrap();
            let job = &file.jobs[0];
            for target in &job.static_configs[0].targets {
                let mut labels = Labels::new();
                labels.insert("__address__", target.as_str());
                kept += usize::from(
                    crate::config::relabel::apply(&job.relabel_configs, labels).is_some(),
                );
            }
        }
        assert_eq!(
            kept, 3,
            "each target is kept by exactly one of the three nodes"
        );
    }

    #[test]
    fn sizes_and_empty_files() {
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("10MB"), Some(10 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1TB"), None);
        assert!(parse("").unwrap().jobs.is_empty());
        assert!(parse("scrape_configs: []\n").unwrap().jobs.is_empty());
    }
}
