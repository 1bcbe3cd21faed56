//! Parca's `object_storage:` section, read as Parca (through Thanos' objstore) reads it:
//! `bucket: {type: S3|FILESYSTEM, config: {...}, prefix: ...}`.
//!
//! Every key Thanos' S3 client knows is accepted. The ones Cinder acts on are `bucket`,
//! `endpoint`, `region`, `access_key`, `secret_key`, `session_token`, `insecure`,
//! `bucket_lookup_type`, `part_size`, `disable_multipart`, `sse_config`, and from
//! `http_config` `insecure_skip_verify`, `idle_conn_timeout` and `response_header_timeout`;
//! the others are listed in [`ObjectStorage::ignored`] for a startup notice. A key Thanos
//! does not know is an error that names it and its line. The standard AWS environment
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, …) fill in what the file leaves out.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{
    Deserialize,
    de::{self, MapAccess},
};

/// Thanos' default multipart part size (64 MiB).
pub const DEFAULT_PART_SIZE: u64 = 64 << 20;

/// The whole `object_storage:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStorage {
    /// The bucket blocks are uploaded to.
    pub bucket: BucketConfig,
}

/// `object_storage.bucket`: the provider, its settings and an object name prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketConfig {
    /// Provider-specific settings.
    pub provider: Provider,
    /// Prepended to every object name (Thanos' bucket-level `prefix`).
    pub prefix: String,
}

/// A bucket provider and its `config:`.
#[derive(Debug, Clone, PartialEq)]
pub enum Provider {
    /// `type: FILESYSTEM`: a folder standing in for a bucket.
    Filesystem(FilesystemConfig),
    /// `type: S3`: an S3-compatible service.
    S3(Box<S3Config>),
}

/// `type: FILESYSTEM`'s `config:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemConfig {
    /// The folder (relative paths are relative to the config file's folder).
    pub directory: PathBuf,
}

/// `type: S3`'s `config:`, with Thanos' key names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub session_token: Option<String>,
    /// Plain HTTP instead of HTTPS to the endpoint.
    pub insecure: bool,
    pub bucket_lookup_type: Option<BucketLookup>,
    pub part_size: Option<u64>,
    pub disable_multipart: bool,
    pub sse_config: Option<SseConfig>,
    pub http_config: Option<HttpConfig>,
    // Accepted, not acted on (see [`ObjectStorage::ignored`]).
    disable_dualstack: Option<bool>,
    aws_sdk_auth: Option<bool>,
    signature_version2: Option<bool>,
    put_user_metadata: Option<BTreeMap<String, String>>,
    trace: Option<TraceConfig>,
    list_objects_version: Option<String>,
    send_content_md5: Option<bool>,
    sts_endpoint: Option<String>,
    max_retries: Option<u32>,
}

/// Thanos' `bucket_lookup_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum BucketLookup {
    /// Path style for a custom endpoint, virtual-hosted for AWS.
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "virtual-hosted")]
    VirtualHosted,
    #[serde(rename = "path")]
    Path,
}

/// Thanos' `sse_config`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SseConfig {
    /// `SSE-S3`, `SSE-KMS` or `SSE-C`.
    #[serde(rename = "type")]
    pub kind: String,
    pub kms_key_id: Option<String>,
    pub kms_encryption_context: Option<BTreeMap<String, String>>,
    /// SSE-C: a file holding the 32-byte key.
    pub encryption_key: Option<PathBuf>,
}

/// Thanos' `http_config` (exthttp).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub insecure_skip_verify: bool,
    pub idle_conn_timeout: Option<String>,
    pub response_header_timeout: Option<String>,
    tls_handshake_timeout: Option<String>,
    expect_continue_timeout: Option<String>,
    max_idle_conns: Option<u64>,
    max_idle_conns_per_host: Option<u64>,
    max_conns_per_host: Option<u64>,
    disable_compression: Option<bool>,
    tls_config: Option<BTreeMap<String, serde_norway::Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TraceConfig {
    enable: bool,
}

impl ObjectStorage {
    /// Checks what serde cannot (pairs of keys, values), resolving `directory` and
    /// `encryption_key` against `base`. The error names the key.
    pub fn validate(&mut self, base: &Path) -> Result<(), String> {
        match &mut self.bucket.provider {
            Provider::Filesystem(fs) => {
                if fs.directory.as_os_str().is_empty() {
                    return Err("object_storage.bucket.config.directory is empty".into());
                }
                fs.directory = base.join(&fs.directory);
                Ok(())
            }
            Provider::S3(s3) => s3.validate(base),
        }
    }

    /// Keys that are set but that Cinder does not act on, for a startup notice.
    pub fn ignored(&self) -> Vec<&'static str> {
        let Provider::S3(s3) = &self.bucket.provider else {
            return Vec::new();
        };
        let mut keys = Vec::new();
        let mut note = |set: bool, key| {
            if set {
                keys.push(key);
            }
        };
        note(s3.disable_dualstack.is_some(), "disable_dualstack");
        note(s3.aws_sdk_auth.is_some(), "aws_sdk_auth");
        note(s3.signature_version2 == Some(true), "signature_version2");
        note(s3.put_user_metadata.is_some(), "put_user_metadata");
        note(s3.trace.is_some(), "trace");
        note(s3.list_objects_version.is_some(), "list_objects_version");
        note(s3.send_content_md5.is_some(), "send_content_md5");
        note(s3.sts_endpoint.is_some(), "sts_endpoint");
        note(s3.max_retries.is_some(), "max_retries");
        if let Some(sse) = &s3.sse_config {
            note(
                sse.kms_encryption_context.is_some(),
                "sse_config.kms_encryption_context",
            );
        }
        if let Some(http) = &s3.http_config {
            note(
                http.tls_handshake_timeout.is_some(),
                "http_config.tls_handshake_timeout",
            );
            note(
                http.expect_continue_timeout.is_some(),
                "http_config.expect_continue_timeout",
            );
            note(http.max_idle_conns.is_some(), "http_config.max_idle_conns");
            note(
                http.max_idle_conns_per_host.is_some(),
                "http_config.max_idle_conns_per_host",
            );
            note(
                http.max_conns_per_host.is_some(),
                "http_config.max_conns_per_host",
            );
            note(
                http.disable_compression.is_some(),
                "http_config.disable_compression",
            );
            note(http.tls_config.is_some(), "http_config.tls_config");
        }
        keys
    }
}

impl S3Config {
    fn validate(&mut self, base: &Path) -> Result<(), String> {
        const AT: &str = "object_storage.bucket.config";
        if self.bucket.is_empty() {
            return Err(format!("{AT}.bucket is missing"));
        }
        match (&self.access_key, &self.secret_key) {
            (Some(_), None) => {
                return Err(format!("{AT}.secret_key is missing (access_key is set)"));
            }
            (None, Some(_)) => {
                return Err(format!("{AT}.access_key is missing (secret_key is set)"));
            }
            _ => {}
        }
        if let Some(endpoint) = &self.endpoint
            && endpoint.contains("://")
        {
            return Err(format!(
                "{AT}.endpoint {endpoint:?}: write host[:port] without a scheme (set insecure: true for http)"
            ));
        }
        if self.part_size == Some(0) || self.part_size.is_some_and(|p| p < 5 << 20) {
            return Err(format!("{AT}.part_size: S3 parts are at least 5MiB"));
        }
        if let Some(sse) = &mut self.sse_config {
            sse.validate(base)?;
        }
        if let Some(http) = &self.http_config {
            http.timeouts()?;
        }
        Ok(())
    }

    /// The endpoint URL (`http://` when `insecure`), or `None` for AWS itself.
    pub fn endpoint_url(&self) -> Option<String> {
        let scheme = if self.insecure { "http" } else { "https" };
        self.endpoint
            .as_ref()
            .filter(|e| !e.is_empty())
            .map(|e| format!("{scheme}://{e}"))
    }

    /// The multipart part size in bytes.
    pub fn part_size(&self) -> u64 {
        self.part_size.unwrap_or(DEFAULT_PART_SIZE)
    }
}

impl SseConfig {
    fn validate(&mut self, base: &Path) -> Result<(), String> {
        const AT: &str = "object_storage.bucket.config.sse_config";
        match self.kind.as_str() {
            "" | "SSE-S3" => Ok(()),
            "SSE-KMS" if self.kms_key_id.as_deref().is_none_or(str::is_empty) => {
                Err(format!("{AT}.kms_key_id must be set when type is SSE-KMS"))
            }
            "SSE-KMS" => Ok(()),
            "SSE-C" => match &self.encryption_key {
                None => Err(format!(
                    "{AT}.encryption_key must be set when type is SSE-C"
                )),
                Some(path) => {
                    let path = base.join(path);
                    std::fs::File::open(&path).map_err(|e| {
                        format!("{AT}.encryption_key: cannot read {}: {e}", path.display())
                    })?;
                    self.encryption_key = Some(path);
                    Ok(())
                }
            },
            other => Err(format!(
                "{AT}.type {other:?} is not one of SSE-S3, SSE-KMS, SSE-C"
            )),
        }
    }
}

impl HttpConfig {
    /// `(idle_conn_timeout, response_header_timeout)`, parsed.
    pub fn timeouts(&self) -> Result<(Option<Duration>, Option<Duration>), String> {
        let parse = |key: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| {
                    shared::duration::parse_duration(text).map_err(|e| {
                        format!("object_storage.bucket.config.http_config.{key}: invalid duration {text:?} ({e})")
                    })
                })
                .transpose()
        };
        Ok((
            parse("idle_conn_timeout", &self.idle_conn_timeout)?,
            parse("response_header_timeout", &self.response_header_timeout)?,
        ))
    }
}

/// The providers Thanos names, for the error on any other.
const PROVIDERS: &str = "S3, FILESYSTEM";

impl<'de> Deserialize<'de> for BucketConfig {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BucketVisitor)
    }
}

struct BucketVisitor;

/// `type` as written (Thanos compares it upper-cased).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    S3,
    Filesystem,
}

fn kind_of<E: de::Error>(text: &str) -> Result<Kind, E> {
    match text.to_ascii_uppercase().as_str() {
        "S3" => Ok(Kind::S3),
        "FILESYSTEM" => Ok(Kind::Filesystem),
        "GCS" | "AZURE" | "SWIFT" | "COS" | "ALIYUNOSS" | "BOS" | "OCI" | "OBS" => Err(E::custom(
            format!("bucket type {text:?} is not supported by Cinder (only {PROVIDERS})"),
        )),
        _ => Err(E::custom(format!(
            "unknown bucket type {text:?} (one of {PROVIDERS})"
        ))),
    }
}

/// `config:` read before `type:` (kept as a value until the type is known).
fn provider_of<E: de::Error>(
    kind: Kind,
    config: Option<serde_norway::Value>,
) -> Result<Provider, E> {
    let config = config.unwrap_or(serde_norway::Value::Mapping(Default::default()));
    match kind {
        Kind::S3 => serde_norway::from_value(config).map(|c| Provider::S3(Box::new(c))),
        Kind::Filesystem => serde_norway::from_value(config).map(Provider::Filesystem),
    }
    .map_err(|e| E::custom(format!("config: {e}")))
}

impl<'de> de::Visitor<'de> for BucketVisitor {
    type Value = BucketConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bucket with type, config and prefix")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BucketConfig, A::Error> {
        let (mut kind, mut provider, mut buffered, mut prefix) = (None, None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => kind = Some(kind_of(&map.next_value::<String>()?)?),
                // With the type known, read the config directly: errors keep their line.
                "config" => match kind {
                    Some(Kind::S3) => provider = Some(Provider::S3(map.next_value()?)),
                    Some(Kind::Filesystem) => {
                        provider = Some(Provider::Filesystem(map.next_value()?))
                    }
                    None => buffered = Some(map.next_value::<serde_norway::Value>()?),
                },
                "prefix" => prefix = Some(map.next_value::<String>()?),
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["type", "config", "prefix"],
                    ));
                }
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        let provider = match provider {
            Some(provider) => provider,
            None => provider_of(kind, buffered)?,
        };
        Ok(BucketConfig {
            provider,
            prefix: prefix.unwrap_or_default().trim_matches('/').to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ObjectStorage, String> {
        let mut storage: ObjectStorage = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        storage.validate(Path::new("/etc/cinder"))?;
        Ok(storage)
    }

    fn s3(storage: &ObjectStorage) -> &S3Config {
        match &storage.bucket.provider {
            Provider::S3(s3) => s3,
            other => panic!("not S3: {other:?}"),
        }
    }

    #[test]
    fn parcas_s3_example_loads() {
        let storage = parse(
            "bucket:\n  type: S3\n  config:\n    bucket: profiles\n    endpoint: 127.0.0.1:9000\n    insecure: true\n    access_key: AK\n    secret_key: SK\n",
        )
        .unwrap();
        let s3 = s3(&storage);
        assert_eq!(s3.bucket, "profiles");
        assert_eq!(s3.endpoint_url().as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.access_key.as_deref(), Some("AK"));
        assert_eq!(s3.part_size(), DEFAULT_PART_SIZE);
        assert!(storage.ignored().is_empty());
    }

    #[test]
    fn filesystem_directory_is_relative_to_the_config_file() {
        let storage =
            parse("bucket:\n  type: \"FILESYSTEM\"\n  config:\n    directory: \"./data\"\n")
                .unwrap();
        assert_eq!(
            storage.bucket.provider,
            Provider::Filesystem(FilesystemConfig {
                directory: PathBuf::from("/etc/cinder/./data")
            })
        );
    }

    #[test]
    fn thanos_keys_are_honoured_or_listed_as_ignored() {
        let storage = parse(
            "bucket:\n  prefix: /team-a/\n  config:\n    bucket: b\n    endpoint: s3.example.com\n    bucket_lookup_type: path\n    part_size: 16777216\n    put_user_metadata: {a: b}\n    trace: {enable: true}\n    http_config:\n      insecure_skip_verify: true\n      idle_conn_timeout: 90s\n      max_idle_conns: 10\n    sse_config:\n      type: SSE-KMS\n      kms_key_id: key-1\n  type: s3\n",
        )
        .unwrap();
        assert_eq!(storage.bucket.prefix, "team-a");
        let s3 = s3(&storage);
        assert_eq!(s3.endpoint_url().as_deref(), Some("https://s3.example.com"));
        assert_eq!(s3.bucket_lookup_type, Some(BucketLookup::Path));
        assert_eq!(s3.part_size(), 16 << 20);
        let http = s3.http_config.as_ref().unwrap();
        assert!(http.insecure_skip_verify);
        assert_eq!(http.timeouts().unwrap().0, Some(Duration::from_secs(90)));
        assert_eq!(
            storage.ignored(),
            ["put_user_metadata", "trace", "http_config.max_idle_conns"]
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases: &[(&str, &[&str])] = &[
            (
                "bucket:\n  type: S3\n  config:\n    bucket: b\n    acces_key: x\n",
                &["acces_key", "line 5"],
            ),
            (
                "bucket:\n  type: S4\n  config: {}\n",
                &["S4", "S3, FILESYSTEM"],
            ),
            (
                "bucket:\n  type: GCS\n  config: {}\n",
                &["GCS", "not supported"],
            ),
            ("bucket:\n  typ: S3\n", &["typ", "line 2"]),
            ("bucket:\n  config: {bucket: b}\n", &["type"]),
            (
                "bucket:\n  type: S3\n  config: {endpoint: x}\n",
                &["config.bucket is missing"],
            ),
            (
                "bucket:\n  type: S3\n  config: {bucket: b, access_key: a}\n",
                &["secret_key is missing"],
            ),
            (
                "bucket:\n  type: S3\n  config: {bucket: b, endpoint: 'http://x:9000'}\n",
                &["endpoint", "without a scheme"],
            ),
            (
                "bucket:\n  type: S3\n  config: {bucket: b, sse_config: {type: SSE-X}}\n",
                &["sse_config.type", "SSE-X"],
            ),
            (
                "bucket:\n  type: S3\n  config: {bucket: b, bucket_lookup_type: dns}\n",
                &["dns", "virtual-hosted"],
            ),
            (
                "bucket:\n  type: S3\n  config: {bucket: b, http_config: {idle_conn_timeout: soon}}\n",
                &["idle_conn_timeout", "soon"],
            ),
            (
                "bucket:\n  type: FILESYSTEM\n  config:\n    dir: /x\n",
                &["dir", "line 4"],
            ),
        ];
        for (yaml, wanted) in cases {
            let err = parse(yaml).expect_err(yaml);
            for w in *wanted {
                assert!(err.contains(w), "{yaml:?}: {err:?} lacks {w:?}");
            }
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }
}
