//! What gets scraped: targets of the config file (static and file-discovered groups, after
//! relabelling) and targets created through the API (validated requests, persisted as
//! [`ApiTarget`] records), both resolved into one [`TargetSpec`].

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    path::Path,
    time::Duration,
};

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::{
    duration::{format_duration, parse_duration},
    labels::{Labels, is_valid_label_name},
};
use xxhash_rust::xxh3::Xxh3;

use super::policy::AddressPolicy;
use crate::config::{
    ScrapeConfig,
    file::{
        DEFAULT_BODY_SIZE_LIMIT, DEFAULT_INTERVAL, HttpConfig, ProfileConfig, Scheme, StaticConfig,
        TIMEOUT_SLACK, check_address,
    },
    relabel,
};

pub use shared::targets::Source;

/// A fully resolved target: everything a scrape loop needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Stable id: a hash of the definition for config targets, assigned for API ones.
    pub id: String,
    pub source: Source,
    pub job: String,
    pub scheme: Scheme,
    /// `host:port`.
    pub address: String,
    /// The target's labels: `job`, `instance` and its own (relabelled) labels.
    pub labels: Labels,
    pub interval: Duration,
    pub timeout: Duration,
    /// Query parameters sent with every scrape.
    pub params: Vec<(String, String)>,
    pub profiles: Vec<ProfileConfig>,
    pub http: HttpConfig,
    pub body_size_limit: usize,
}

impl TargetSpec {
    /// `scheme://address`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// The URL of one profile: path, the job's params and `seconds` for delta endpoints.
    pub fn profile_url(&self, profile: &ProfileConfig) -> Result<Url, String> {
        let mut url = Url::parse(&format!("{}{}", self.base_url(), profile.path))
            .map_err(|e| format!("invalid URL {}{}: {e}", self.base_url(), profile.path))?;
        let seconds = profile
            .delta
            .then(|| profile.seconds.unwrap_or(self.interval.as_secs().max(1)));
        if !self.params.is_empty() || seconds.is_some() {
            let mut query = url.query_pairs_mut();
            for (k, v) in &self.params {
                if k != "seconds" || seconds.is_none() {
                    query.append_pair(k, v);
                }
            }
            if let Some(seconds) = seconds {
                query.append_pair("seconds", &seconds.to_string());
            }
        }
        Ok(url)
    }

    /// A hash of everything that shapes the scrapes of `profile` (not the id or source):
    /// a loop whose fingerprint did not change keeps running across a reload.
    pub fn fingerprint(&self, profile: &ProfileConfig) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        (
            &self.job,
            self.scheme,
            &self.address,
            &self.labels,
            self.interval,
            self.timeout,
            &self.params,
            &self.http,
            self.body_size_limit,
            profile,
        )
            .hash(&mut h);
        h.finish()
    }
}

fn hex_id(parts: &[&[u8]]) -> String {
    let mut h = Xxh3::new();
    for part in parts {
        h.update(part);
        h.update(&[0]);
    }
    format!("{:016x}", h.digest())
}

/// The targets of one job: its static groups and the file-discovered ones (with the file
/// they came from), relabelled. Targets dropped by relabelling, or left with an invalid
/// address or scheme, are skipped (with a log line).
pub fn config_targets<'a>(
    job: &ScrapeConfig,
    groups: impl IntoIterator<Item = (&'a StaticConfig, Option<&'a Path>)>,
) -> Vec<TargetSpec> {
    let mut out: BTreeMap<String, TargetSpec> = BTreeMap::new();
    for (group, file) in groups {
        for address in &group.targets {
            let mut labels = Labels::new();
            for (k, v) in &group.labels {
                labels.insert(k.as_str(), v.as_str());
            }
            labels.insert("__address__", address.as_str());
            if let Some(file) = file {
                labels.insert("__meta_filepath", file.display().to_string());
            }
            let defaults = [
                ("job", job.job_name.clone()),
                ("__scheme__", job.scheme.to_string()),
            ];
            for (k, v) in defaults {
                if !labels.contains(k) {
                    labels.insert(k, v);
                }
            }
            for (k, v) in &job.params {
                let name = format!("__param_{k}");
                if !labels.contains(&name) {
                    labels.insert(name, v.as_str());
                }
            }
            let Some(labels) = relabel::apply(&job.relabel_configs, labels) else {
                continue;
            };
            match resolve(job, labels) {
                Ok(spec) => {
                    out.insert(spec.id.clone(), spec);
                }
                Err(err) => tracing::warn!(job = %job.job_name, %address, %err, "target skipped"),
            }
        }
    }
    out.into_values().collect()
}

/// From relabelled labels to a target.
fn resolve(job: &ScrapeConfig, mut labels: Labels) -> Result<TargetSpec, String> {
    let address = labels.get("__address__").unwrap_or_default().to_owned();
    check_address(&address)?;
    let scheme_text = labels.get("__scheme__").unwrap_or("http").to_owned();
    let scheme = Scheme::parse(&scheme_text)
        .ok_or_else(|| format!("relabelled scheme {scheme_text:?} is not http or https"))?;
    let mut params: Vec<(String, String)> = job.params.clone();
    for (name, value) in labels.iter() {
        if let Some(param) = name.strip_prefix("__param_") {
            params.retain(|(k, _)| k != param);
            params.push((param.to_owned(), value.to_owned()));
        }
    }
    params.sort();
    if !labels.contains("instance") {
        labels.insert("instance", address.as_str());
    }
    let internal: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.starts_with("__"))
        .map(|(k, _)| k.to_owned())
        .collect();
    for k in internal {
        labels.remove(&k);
    }
    let id = hex_id(&[
        b"config",
        job.job_name.as_bytes(),
        scheme.as_str().as_bytes(),
        address.as_bytes(),
        labels.to_string().as_bytes(),
    ]);
    Ok(TargetSpec {
        id,
        source: Source::Config,
        job: job.job_name.clone(),
        scheme,
        address,
        labels,
        interval: job.interval,
        timeout: job.timeout,
        params,
        profiles: job.profiles.clone(),
        http: job.http.clone(),
        body_size_limit: job.body_size_limit,
    })
}

/// A target created through the API, as persisted in sled (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTarget {
    pub id: String,
    pub job: String,
    pub address: String,
    pub scheme: Scheme,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub profiles: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// Profiles the API offers by name: Parca's defaults, plus `heap`.
pub const API_PROFILES: &[&str] = &[
    "block",
    "goroutine",
    "heap",
    "memory",
    "mutex",
    "process_cpu",
];

fn api_profile(name: &str) -> Option<ProfileConfig> {
    if name == "heap" {
        return Some(ProfileConfig {
            name: "heap".into(),
            path: "/debug/pprof/heap".into(),
            delta: false,
            seconds: None,
            keep_sample_types: Vec::new(),
        });
    }
    ProfileConfig::default_named(name)
}

impl ApiTarget {
    /// The target this record describes.
    pub fn spec(&self) -> TargetSpec {
        let mut labels: Labels = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        labels.insert("job", self.job.as_str());
        if !labels.contains("instance") {
            labels.insert("instance", self.address.as_str());
        }
        TargetSpec {
            id: self.id.clone(),
            source: Source::Api,
            job: self.job.clone(),
            scheme: self.scheme,
            address: self.address.clone(),
            labels,
            interval: Duration::from_millis(self.interval_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            params: Vec::new(),
            profiles: self
                .profiles
                .iter()
                .filter_map(|p| api_profile(p))
                .collect(),
            http: HttpConfig {
                follow_redirects: true,
                ..HttpConfig::default()
            },
            body_size_limit: DEFAULT_BODY_SIZE_LIMIT,
        }
    }
}

/// A refused API request: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct FieldError {
    pub field: String,
    pub error: String,
    pub detail: String,
}

fn field_error(field: &str, error: &str, detail: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        error: error.to_owned(),
        detail: detail.into(),
    }
}

/// Longest timeout the API accepts.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest interval the API accepts.
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Checks a `POST`/`PUT /api/v1/targets` body: `{job, address, scheme, interval, timeout,
/// profiles, labels}`. Fields the API itself reports (`id`, `health`, …) are ignored, so a
/// target read from `GET` can be sent back.
pub fn validate(body: &Value, id: String, policy: &AddressPolicy) -> Result<ApiTarget, FieldError> {
    let Some(obj) = body.as_object() else {
        return Err(field_error(
            "",
            "invalid target",
            "the body must be a JSON object",
        ));
    };
    let string = |name: &str, required: bool| -> Result<Option<String>, FieldError> {
        match obj.get(name) {
            None | Some(Value::Null) if required => Err(field_error(
                name,
                &format!("missing {name}"),
                format!("{name} is required"),
            )),
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(other) => Err(field_error(
                name,
                &format!("invalid {name}"),
                format!("{name} must be a string, not {other}"),
            )),
        }
    };
    let job = string("job", true)?.unwrap_or_default();
    if job.is_empty() {
        return Err(field_error("job", "missing job", "job must not be empty"));
    }
    if job.chars().count() > 200 {
        return Err(field_error(
            "job",
            "invalid job",
            "job is longer than 200 characters",
        ));
    }
    let address = string("address", true)?.unwrap_or_default();
    check_address(&address).map_err(|e| field_error("address", "invalid address", e))?;
    let host = address.rsplit_once(':').map_or("", |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(Err(denied)) = host
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| policy.check(ip))
    {
        return Err(field_error(
            "address",
            "address not allowed",
            denied.to_string(),
        ));
    }
    let scheme = match string("scheme", false)? {
        None => Scheme::Http,
        Some(s) if s.is_empty() => Scheme::Http,
        Some(s) => Scheme::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
            field_error(
                "scheme",
                "invalid scheme",
                format!("scheme must be http or https, not {s:?}"),
            )
        })?,
    };
    let interval = duration(obj.get("interval"), "interval")?.unwrap_or(DEFAULT_INTERVAL);
    if interval < Duration::from_secs(1) {
        return Err(field_error(
            "interval",
            "invalid interval",
            "interval must be at least 1s",
        ));
    }
    if interval > MAX_INTERVAL {
        return Err(field_error(
            "interval",
            "invalid interval",
            "interval must be at most 1d",
        ));
    }
    let timeout = duration(obj.get("timeout"), "timeout")?.unwrap_or(interval + TIMEOUT_SLACK);
    if timeout <= interval {
        return Err(field_error(
            "timeout",
            "invalid timeout",
            format!(
                "timeout ({}) must be greater than the interval ({}): a CPU profile lasts the whole interval",
                format_duration(timeout),
                format_duration(interval)
            ),
        ));
    }
    if timeout > interval + MAX_TIMEOUT {
        return Err(field_error(
            "timeout",
            "invalid timeout",
            format!(
                "timeout must be at most the interval plus {}",
                format_duration(MAX_TIMEOUT)
            ),
        ));
    }
    let profiles = match obj.get("profiles") {
        None | Some(Value::Null) => crate::config::file::DEFAULT_PROFILES
            .iter()
            .map(|(n, _, _)| (*n).to_owned())
            .collect(),
        Some(Value::Array(items)) => {
            let mut names = Vec::new();
            for item in items {
                let Some(name) = item.as_str() else {
                    return Err(field_error(
                        "profiles",
                        "invalid profiles",
                        format!("profiles must be names, not {item}"),
                    ));
                };
                if !API_PROFILES.contains(&name) {
                    return Err(field_error(
                        "profiles",
                        "unknown profile",
                        format!(
                            "unknown profile {name:?}; known: {}",
                            API_PROFILES.join(", ")
                        ),
                    ));
                }
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
            if names.is_empty() {
                return Err(field_error(
                    "profiles",
                    "no profiles",
                    "choose at least one profile",
                ));
            }
            names.sort();
            names
        }
        Some(other) => {
            return Err(field_error(
                "profiles",
                "invalid profiles",
                format!("profiles must be an array of names, not {other}"),
            ));
        }
    };
    let labels = match obj.get("labels") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => {
            let mut labels = BTreeMap::new();
            for (name, value) in map {
                let field = format!("labels.{name}");
                let Some(value) = value.as_str() else {
                    return Err(field_error(
                        &field,
                        "invalid label",
                        format!("the value of label {name:?} must be a string"),
                    ));
                };
                if !is_valid_label_name(name) || name.starts_with("__") {
                    return Err(field_error(
                        &field,
                        "invalid label",
                        format!(
                            "invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __"
                        ),
                    ));
                }
                match name.as_str() {
                    // A target read from GET carries job and instance: accept them unchanged.
                    "job" if value == job => continue,
                    "job" => {
                        return Err(field_error(
                            &field,
                            "invalid label",
                            "the job label is set by the job field",
                        ));
                    }
                    "instance" if value == address => continue,
                    _ => {}
                }
                labels.insert(name.clone(), value.to_owned());
            }
            labels
        }
        Some(other) => {
            return Err(field_error(
                "labels",
                "invalid labels",
                format!("labels must be an object of strings, not {other}"),
            ));
        }
    };
    Ok(ApiTarget {
        id,
        job,
        address,
        scheme,
        interval_ms: interval.as_millis() as u64,
        timeout_ms: timeout.as_millis() as u64,
        profiles,
        labels,
    })
}

/// A duration field: a string such as `15s` or a number of seconds.
fn duration(value: Option<&Value>, field: &str) -> Result<Option<Duration>, FieldError> {
    let invalid = |detail: String| field_error(field, &format!("invalid {field}"), detail);
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_duration(s.trim())
            .map(Some)
            .map_err(|e| invalid(format!("{field} {s:?}: {e}"))),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| invalid(format!("{field} {n} is not a number of seconds"))),
        Some(other) => Err(invalid(format!(
            "{field} must be a duration such as \"15s\", not {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::ScrapeFile;

    fn job(yaml: &str) -> ScrapeConfig {
        ScrapeFile::parse(yaml, Path::new("/"))
            .unwrap()
            .jobs
            .remove(0)
    }

    #[test]
    fn static_targets_get_job_instance_and_relabelled_labels() {
        let job = job(r#"
scrape_configs:
  - job_name: api
    params: {debug: ["0"]}
    static_configs:
      - targets: ['a:6060', 'b:6060', 'dev:6060']
        labels: {env: prod}
    relabel_configs:
      - {source_labels: [__address__], regex: 'dev:.*', action: drop}
      - {source_labels: [__address__], regex: '(.*):6060', target_label: host}
      - {source_labels: [host], regex: 'b', target_label: __scheme__, replacement: https}
"#);
        let targets = config_targets(&job, job.static_configs.iter().map(|g| (g, None)));
        assert_eq!(targets.len(), 2, "dev was dropped");
        let a = targets.iter().find(|t| t.address == "a:6060").unwrap();
        let want: Labels = [
            ("env", "prod"),
            ("host", "a"),
            ("instance", "a:6060"),
            ("job", "api"),
        ]
        .into_iter()
        .collect();
        assert_eq!(a.labels, want);
        assert_eq!(a.scheme, Scheme::Http);
        let b = targets.iter().find(|t| t.address == "b:6060").unwrap();
        assert_eq!(b.scheme, Scheme::Https);
        let cpu = b.profiles.iter().find(|p| p.name == "process_cpu").unwrap();
        assert_eq!(
            b.profile_url(cpu).unwrap().as_str(),
            "https://b:6060/debug/pprof/profile?debug=0&seconds=10"
        );
        let goroutine = b.profiles.iter().find(|p| p.name == "goroutine").unwrap();
        assert_eq!(
            b.profile_url(goroutine).unwrap().as_str(),
            "https://b:6060/debug/pprof/goroutine?debug=0"
        );
        // Ids are stable and distinct.
        let again = config_targets(&job, job.static_configs.iter().map(|g| (g, None)));
        assert_eq!(targets, again);
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn fingerprints_change_with_what_shapes_a_scrape() {
        let job =
            job("scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['x:1']}]\n");
        let t = config_targets(&job, job.static_configs.iter().map(|g| (g, None))).remove(0);
        let cpu = t
            .profiles
            .iter()
            .find(|p| p.name == "process_cpu")
            .unwrap()
            .clone();
        let mut other = t.clone();
        other.id = "different id, same scrape".into();
        assert_eq!(t.fingerprint(&cpu), other.fingerprint(&cpu));
        other.interval = Duration::from_secs(11);
        assert_ne!(t.fingerprint(&cpu), other.fingerprint(&cpu));
    }

    #[test]
    fn api_requests_are_validated_field_by_field() {
        let ok = validate(
            &json!({"job": "web", "address": "127.0.0.1:6060", "interval": "2s",
                    "profiles": ["process_cpu", "memory"], "labels": {"team": "a", "job": "web"}}),
            "id1".into(),
            &AddressPolicy::default(),
        )
        .unwrap();
        assert_eq!(ok.interval_ms, 2000);
        assert_eq!(ok.timeout_ms, 5000, "interval + 3s");
        assert_eq!(ok.profiles, ["memory", "process_cpu"]);
        assert_eq!(ok.labels.len(), 1);
        let spec = ok.spec();
        assert_eq!(spec.labels.get("instance"), Some("127.0.0.1:6060"));
        assert_eq!(spec.labels.get("job"), Some("web"));

        let cases = [
            (json!({"address": "a:1"}), "job"),
            (json!({"job": "j"}), "address"),
            (json!({"job": "j", "address": "http://a:1"}), "address"),
            (json!({"job": "j", "address": "a:1/debug"}), "address"),
            (json!({"job": "j", "address": "a"}), "address"),
            (
                json!({"job": "j", "address": "169.254.169.254:80"}),
                "address",
            ),
            (json!({"job": "j", "address": "[fe80::1]:80"}), "address"),
            (
                json!({"job": "j", "address": "[fd00:ec2::254]:80"}),
                "address",
            ),
            (
                json!({"job": "j", "address": "[::ffff:169.254.169.254]:80"}),
                "address",
            ),
            (
                json!({"job": "j", "address": "[64:ff9b::a9fe:a9fe]:80"}),
                "address",
            ),
            (
                json!({"job": "j", "address": "100.100.100.200:80"}),
                "address",
            ),
            (
                json!({"job": "j", "address": "a:1", "scheme": "ftp"}),
                "scheme",
            ),
            (
                json!({"job": "j", "address": "a:1", "interval": "500ms"}),
                "interval",
            ),
            (
                json!({"job": "j", "address": "a:1", "interval": "soon"}),
                "interval",
            ),
            (
                json!({"job": "j", "address": "a:1", "interval": "10s", "timeout": "5s"}),
                "timeout",
            ),
            (
                json!({"job": "j", "address": "a:1", "profiles": ["nope"]}),
                "profiles",
            ),
            (
                json!({"job": "j", "address": "a:1", "profiles": []}),
                "profiles",
            ),
            (
                json!({"job": "j", "address": "a:1", "labels": {"bad-name": "x"}}),
                "labels.bad-name",
            ),
            (
                json!({"job": "j", "address": "a:1", "labels": {"__x": "x"}}),
                "labels.__x",
            ),
            (
                json!({"job": "j", "address": "a:1", "labels": {"job": "other"}}),
                "labels.job",
            ),
            (json!({"job": 3, "address": "a:1"}), "job"),
        ];
        for (body, field) in cases {
            let err = validate(&body, "id".into(), &AddressPolicy::default()).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err:?}");
            assert!(!err.detail.is_empty());
        }
        assert!(
            validate(
                &json!({"job": "j", "address": "169.254.169.254:80"}),
                "id".into(),
                &AddressPolicy::from_flags(&[], &[], true)
            )
            .is_ok(),
            "allowed with --allow-link-local-targets"
        );
    }
}
