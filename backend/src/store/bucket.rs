//! Blocks in a bucket (`object_storage:`): every block file the store writes goes up as
//! soon as it is durable, through the `object_store` crate (S3-compatible services or a
//! local folder).
//!
//! The store announces each new block (a part file today, a block directory whose
//! `meta.json` is written last once blocks exist) through [`OnDurable`]; the [`Uploader`]
//! queues it and a background task uploads it: the files of a block in name order with
//! `meta.json` last, each checked by size afterwards. A failed upload is retried with
//! exponential backoff ([`BACKOFF_MIN`] to [`BACKOFF_MAX`]); writes never wait for it.
//!
//! The queue is not persisted: the local blocks are. At start, and again whenever the
//! bucket answers after an outage, the uploader lists the bucket, compares it with the
//! local blocks and queues what is missing or differs in size. Local copies stay (queries
//! read the local disk).

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    fmt::{self, Write as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::TryStreamExt as _;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    buffered::BufWriter,
    local::LocalFileSystem,
    path::Path as ObjPath,
};
use tokio::{io::AsyncWriteExt as _, sync::Notify};

use crate::config::object_storage::{
    BucketConfig, BucketLookup, ObjectStorage, Provider, S3Config,
};

/// First wait after a failed upload.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest wait between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long the startup check waits for the bucket to answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The file of a block written last, uploaded last.
pub const META_FILE: &str = "meta.json";
/// The data-dir folders whose files go up.
const BLOCK_DIRS: [&str; 2] = ["parts", "blocks"];

/// Why the bucket cannot be used; the message is one line naming the key or endpoint.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The configuration cannot make a client.
    #[error("object_storage: {0}")]
    Config(String),
    /// The service answered and refused: credentials, a missing bucket, a wrong region.
    #[error("object_storage: {target} refused access ({credentials}): {detail}")]
    Refused {
        target: String,
        credentials: String,
        detail: String,
    },
    /// The bucket does not exist.
    #[error("object_storage: bucket {bucket:?} does not exist at {endpoint}")]
    NoBucket { bucket: String, endpoint: String },
    /// The data dir cannot be read.
    #[error("object_storage: reading local blocks: {0}")]
    Io(#[from] std::io::Error),
}

/// A failed object-store call, by operation (`list`, `put`, `verify`).
#[derive(Debug, thiserror::Error)]
#[error("{op} {key}: {detail}")]
pub(crate) struct OpError {
    pub(crate) op: &'static str,
    key: String,
    detail: String,
}

/// A bucket to upload into.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// `s3://bucket at endpoint` or the folder, for logs and errors.
    target: String,
    /// Which credentials are in use, for the error when they are refused.
    credentials: String,
    part_size: usize,
    multipart: bool,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("target", &self.target)
            .finish()
    }
}

/// What the startup check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The bucket answered.
    Up,
    /// No answer (an outage): the node runs and uploads later.
    Down(String),
}

impl Bucket {
    /// The bucket `config` describes, or `None` when it is a folder that is the data dir
    /// itself (blocks are already there). No request is made.
    pub fn open(config: &ObjectStorage, data_dir: &Path) -> Result<Option<Bucket>, BucketError> {
        let BucketConfig { provider, prefix } = &config.bucket;
        match provider {
            Provider::Filesystem(fs) => folder(&fs.directory, data_dir, prefix),
            Provider::S3(s3) => s3_bucket(s3, prefix).map(Some),
        }
    }

    /// `s3://bucket at endpoint` or `folder /path`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Lists the prefix once: refused access or a missing bucket is an error, no answer
    /// within [`PROBE_TIMEOUT`] is [`Reach::Down`].
    pub async fn probe(&self) -> Result<Reach, BucketError> {
        let prefix = self.object_path("");
        let listing = self.store.list_with_delimiter(Some(&prefix));
        match tokio::time::timeout(PROBE_TIMEOUT, listing).await {
            Err(_) => Ok(Reach::Down(format!("no answer within {PROBE_TIMEOUT:?}"))),
            Ok(Ok(_)) => Ok(Reach::Up),
            Ok(Err(err)) => self.classify(&err),
        }
    }

    fn classify(&self, err: &object_store::Error) -> Result<Reach, BucketError> {
        let detail = one_line(err);
        let status = http_status(err);
        if matches!(err, object_store::Error::NotFound { .. }) || detail.contains("NoSuchBucket") {
            let (bucket, endpoint) = self
                .target
                .split_once(" at ")
                .unwrap_or((&self.target, "the default endpoint"));
            return Err(BucketError::NoBucket {
                bucket: bucket.trim_start_matches("s3://").to_owned(),
                endpoint: endpoint.to_owned(),
            });
        }
        let refused = matches!(
            err,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || status.is_some_and(|s| (300..500).contains(&s) && s != 408 && s != 429);
        if refused {
            return Err(BucketError::Refused {
                target: self.target.clone(),
                credentials: self.credentials.clone(),
                detail,
            });
        }
        Ok(Reach::Down(detail))
    }

    /// The client, for reads (queries, other nodes' blocks).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Reads one object whole (a `meta.json` or a symbol table); `None` when it is not
    /// there (deleted since it was listed).
    pub(crate) async fn get_bytes(&self, key: &str) -> Result<Option<bytes::Bytes>, OpError> {
        let location = self.object_path(key);
        let got = match self.store.get(&location).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(op_error("get", key, &err)),
        };
        got.bytes()
            .await
            .map(Some)
            .map_err(|e| op_error("get", key, &e))
    }

    /// The object path of `key` (relative to the prefix).
    pub(crate) fn object_path(&self, key: &str) -> ObjPath {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => ObjPath::from(key),
            (false, true) => ObjPath::from(self.prefix.as_str()),
            (false, false) => ObjPath::from(format!("{}/{key}", self.prefix)),
        }
    }

    /// Sizes of the objects under `folder` (keys relative to the prefix).
    pub(crate) async fn sizes_under(&self, folder: &str) -> Result<HashMap<String, u64>, OpError> {
        let under = self.object_path(folder);
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let objects: Vec<_> = self
            .store
            .list(Some(&under))
            .try_collect()
            .await
            .map_err(|e| op_error("list", folder, &e))?;
        Ok(objects
            .into_iter()
            .map(|o| (o.location.as_ref()[strip..].to_owned(), o.size))
            .collect())
    }

    /// Deletes the objects under `folder` (a block's), `meta.json` first so that a reader
    /// never sees a listed block with files missing. Returns how many went.
    pub(crate) async fn delete_folder(&self, folder: &str) -> Result<usize, OpError> {
        let sizes = self.sizes_under(folder).await?;
        let mut keys: Vec<&String> = sizes
            .keys()
            .filter(|k| {
                k.strip_prefix(folder)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
            .collect();
        keys.sort_by_key(|k| (!k.ends_with(META_FILE), k.as_str()));
        for key in &keys {
            match self.store.delete(&self.object_path(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(op_error("delete", key, &err)),
            }
        }
        Ok(keys.len())
    }

    /// Uploads one local file as `key` and checks the object's size.
    async fn put_file(&self, key: &str, file: &Path) -> Result<u64, OpError> {
        let location = self.object_path(key);
        let local = tokio::fs::metadata(file)
            .await
            .map_err(|e| op_error("read", key, &e))?
            .len();
        if self.multipart {
            self.put_streamed(key, &location, file).await?;
        } else {
            let bytes = tokio::fs::read(file)
                .await
                .map_err(|e| op_error("read", key, &e))?;
            self.store
                .put(&location, PutPayload::from(bytes))
                .await
                .map_err(|e| op_error("put", key, &e))?;
        }
        let meta = self
            .store
            .head(&location)
            .await
            .map_err(|e| op_error("verify", key, &e))?;
        if meta.size != local {
            return Err(OpError {
                op: "verify",
                key: key.to_owned(),
                detail: format!(
                    "the bucket holds {} bytes, the local file {local}",
                    meta.size
                ),
            });
        }
        Ok(local)
    }

    /// A single PUT for small files, a multipart upload of `part_size` parts for large ones.
    async fn put_streamed(
        &self,
        key: &str,
        location: &ObjPath,
        file: &Path,
    ) -> Result<(), OpError> {
        let mut source = tokio::fs::File::open(file)
            .await
            .map_err(|e| op_error("read", key, &e))?;
        let mut writer =
            BufWriter::with_capacity(self.store.clone(), location.clone(), self.part_size);
        // A failed copy aborts the multipart upload; after a failed shutdown there is
        // nothing left to abort (the writer refuses, by panicking).
        if let Err(err) = tokio::io::copy(&mut source, &mut writer).await {
            let _ = writer.abort().await;
            return Err(op_error("put", key, &err));
        }
        writer
            .shutdown()
            .await
            .map_err(|e| op_error("put", key, &e))?;
        Ok(())
    }
}

/// A FILESYSTEM bucket: a folder (created), unless it is the data dir itself.
fn folder(dir: &Path, data_dir: &Path, prefix: &str) -> Result<Option<Bucket>, BucketError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        BucketError::Config(format!("bucket.config.directory {}: {e}", dir.display()))
    })?;
    let same = std::fs::create_dir_all(data_dir).is_ok()
        && dir.canonicalize().ok() == data_dir.canonicalize().ok();
    if same {
        return Ok(None);
    }
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
        BucketError::Config(format!("bucket.config.directory {}: {e}", dir.display()))
    })?;
    Ok(Some(Bucket {
        store: Arc::new(store),
        prefix: prefix.to_owned(),
        target: format!("folder {}", dir.display()),
        credentials: "local folder".into(),
        part_size: crate::config::object_storage::DEFAULT_PART_SIZE as usize,
        multipart: true,
    }))
}

/// An S3 bucket: the AWS environment first, the file's keys over it.
fn s3_bucket(s3: &S3Config, prefix: &str) -> Result<Bucket, BucketError> {
    let file_keys = s3.access_key.is_some();
    let mut builder = builder_from_env(file_keys).with_bucket_name(&s3.bucket);
    let endpoint = s3.endpoint_url();
    if let Some(url) = &endpoint {
        builder = builder.with_endpoint(url);
    }
    let endpoint = endpoint.or_else(|| {
        ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .into_iter()
            .find_map(|key| std::env::var(key).ok())
    });
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    } else if std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    if let (Some(key), Some(secret)) = (&s3.access_key, &s3.secret_key) {
        builder = builder
            .with_access_key_id(key)
            .with_secret_access_key(secret);
    }
    if let Some(token) = &s3.session_token {
        builder = builder.with_token(token);
    }
    // Thanos' `auto` is path style for a custom endpoint (as minio-go does).
    let virtual_hosted = match s3.bucket_lookup_type.unwrap_or(BucketLookup::Auto) {
        BucketLookup::VirtualHosted => true,
        BucketLookup::Path => false,
        BucketLookup::Auto => endpoint.is_none(),
    };
    builder = builder
        .with_virtual_hosted_style_request(virtual_hosted)
        .with_client_options(client_options(s3, endpoint.as_deref())?)
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        });
    builder = with_encryption(builder, s3)?;
    let store = builder
        .build()
        .map_err(|e| BucketError::Config(one_line(&e)))?;
    let endpoint_text = endpoint.unwrap_or_else(|| "AWS".into());
    Ok(Bucket {
        store: Arc::new(store),
        prefix: prefix.to_owned(),
        target: format!("s3://{} at {endpoint_text}", s3.bucket),
        credentials: credentials_source(s3),
        part_size: s3.part_size() as usize,
        multipart: !s3.disable_multipart,
    })
}

/// `AmazonS3Builder::from_env`, without the environment's credentials when the file has
/// its own (a session token from the environment belongs to other keys).
fn builder_from_env(file_keys: bool) -> AmazonS3Builder {
    const CREDENTIALS: [&str; 4] = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
    ];
    let mut builder = AmazonS3Builder::new();
    for (key, value) in std::env::vars() {
        if !key.starts_with("AWS_") || (file_keys && CREDENTIALS.contains(&key.as_str())) {
            continue;
        }
        if let Ok(config_key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(config_key, value);
        }
    }
    builder
}

fn client_options(s3: &S3Config, endpoint: Option<&str>) -> Result<ClientOptions, BucketError> {
    let plain = s3.insecure || endpoint.is_some_and(|e| e.starts_with("http://"));
    let mut options = ClientOptions::new()
        .with_allow_http(plain)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(300));
    if let Some(http) = &s3.http_config {
        let (idle, header) = http.timeouts().map_err(BucketError::Config)?;
        options = options.with_allow_invalid_certificates(http.insecure_skip_verify);
        if let Some(idle) = idle {
            options = options.with_pool_idle_timeout(idle);
        }
        if let Some(header) = header {
            options = options.with_timeout(header);
        }
    }
    Ok(options)
}

fn with_encryption(
    builder: AmazonS3Builder,
    s3: &S3Config,
) -> Result<AmazonS3Builder, BucketError> {
    let Some(sse) = &s3.sse_config else {
        return Ok(builder);
    };
    match sse.kind.as_str() {
        "SSE-KMS" => {
            Ok(builder.with_sse_kms_encryption(sse.kms_key_id.clone().unwrap_or_default()))
        }
        "SSE-C" => {
            let path = sse.encryption_key.as_deref().unwrap_or(Path::new(""));
            let key = std::fs::read(path).map_err(|e| {
                BucketError::Config(format!("sse_config.encryption_key {}: {e}", path.display()))
            })?;
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(key);
            Ok(builder.with_ssec_encryption(encoded))
        }
        // SSE-S3 is what S3 does by default.
        _ => Ok(builder),
    }
}

/// Where the credentials come from, for the error when they are refused.
fn credentials_source(s3: &S3Config) -> String {
    if let Some(key) = &s3.access_key {
        format!("access_key {key:?}")
    } else if let Ok(key) = std::env::var("AWS_ACCESS_KEY_ID") {
        format!("AWS_ACCESS_KEY_ID {key:?}")
    } else {
        "no access_key; instance credentials".into()
    }
}

/// An error and its causes on one line, at most 400 characters.
fn one_line(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(400) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

/// The HTTP status the service answered with, as object_store reports it in its message.
fn http_status(err: &object_store::Error) -> Option<u16> {
    let text = one_line(err);
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

fn op_error(op: &'static str, key: &str, err: &dyn std::error::Error) -> OpError {
    OpError {
        op,
        key: key.to_owned(),
        detail: one_line(err),
    }
}

/// The store's announcements: a block became durable (a file or a block directory), or a
/// block directory was deleted (merged away or expired, after its grace period).
#[derive(Clone)]
pub struct OnDurable {
    durable: Arc<dyn Fn(&Path) + Send + Sync>,
    gone: Arc<dyn Fn(&Path) + Send + Sync>,
}

impl OnDurable {
    /// Calls the hook with the durable block's path.
    pub fn announce(&self, path: &Path) {
        (self.durable)(path)
    }

    /// Calls the hook with the path of a block directory that was deleted.
    pub fn announce_gone(&self, path: &Path) {
        (self.gone)(path)
    }
}

impl fmt::Debug for OnDurable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnDurable")
    }
}

/// Upload counters for `/metrics`.
#[derive(Debug, Default)]
pub struct UploadStats {
    backlog_blocks: AtomicU64,
    backlog_bytes: AtomicU64,
    uploaded_bytes: AtomicU64,
    uploaded_objects: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Other nodes' blocks that queries read from the bucket.
    pub(crate) remote_blocks: AtomicU64,
    /// Successful reads of the bucket's block list.
    pub(crate) refreshes: AtomicU64,
    /// The read cache's counters, once there is one.
    pub cache: std::sync::OnceLock<Arc<super::cache::CacheStats>>,
}

impl UploadStats {
    /// Blocks waiting to go up.
    pub fn backlog_blocks(&self) -> u64 {
        self.backlog_blocks.load(Ordering::Relaxed)
    }

    pub(crate) fn error(&self, op: &'static str) {
        *self
            .errors
            .lock()
            .expect("stats lock")
            .entry(op)
            .or_default() += 1;
    }

    /// Appends the bucket's metrics in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let gauges = [
            (
                "cinder_bucket_upload_backlog_blocks",
                "gauge",
                "Blocks written locally and not yet in the bucket.",
                &self.backlog_blocks,
            ),
            (
                "cinder_bucket_upload_backlog_bytes",
                "gauge",
                "Bytes of the blocks not yet in the bucket.",
                &self.backlog_bytes,
            ),
            (
                "cinder_bucket_uploaded_bytes_total",
                "counter",
                "Bytes uploaded to the bucket.",
                &self.uploaded_bytes,
            ),
            (
                "cinder_bucket_uploaded_objects_total",
                "counter",
                "Objects uploaded to the bucket.",
                &self.uploaded_objects,
            ),
            (
                "cinder_bucket_remote_blocks",
                "gauge",
                "Blocks of other nodes (in the bucket, not on local disk) that queries read.",
                &self.remote_blocks,
            ),
            (
                "cinder_bucket_refreshes_total",
                "counter",
                "Successful reads of the bucket's block list.",
                &self.refreshes,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cinder_bucket_errors_total Failed bucket operations, by operation.\n# TYPE cinder_bucket_errors_total counter"
        );
        for (op, n) in self.errors.lock().expect("stats lock").iter() {
            let _ = writeln!(out, "cinder_bucket_errors_total{{op=\"{op}\"}} {n}");
        }
        if let Some(cache) = self.cache.get() {
            cache.render(out);
        }
    }
}

/// One block to upload (its files, keys relative to the data dir, `meta.json` last), or
/// to delete from the bucket (no files; `delete` names its folder key).
#[derive(Debug, Clone)]
struct Unit {
    key: String,
    files: Vec<(String, PathBuf)>,
    bytes: u64,
    delete: Option<String>,
}

impl Unit {
    /// The deletion of the block folder `blocks/<ULID>` from the bucket.
    fn deletion(folder: String) -> Unit {
        Unit {
            key: format!("delete {folder}"),
            files: Vec::new(),
            bytes: 0,
            delete: Some(folder),
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    units: VecDeque<Unit>,
    keys: HashSet<String>,
}

struct Inner {
    bucket: Bucket,
    root: PathBuf,
    queue: Mutex<Queue>,
    wake: Notify,
    stats: Arc<UploadStats>,
}

/// Uploads the data dir's blocks into a [`Bucket`]; cheap to clone.
#[derive(Clone)]
pub struct Uploader(Arc<Inner>);

/// How an upload attempt ended.
enum Outcome {
    Done,
    /// The block is gone locally (merged or expired before it went up).
    Gone,
    Failed(OpError),
}

impl Uploader {
    /// An uploader of `data_dir`'s blocks into `bucket`; start it with [`Uploader::run`].
    pub fn new(bucket: Bucket, data_dir: &Path) -> Uploader {
        Uploader(Arc::new(Inner {
            bucket,
            root: data_dir.to_owned(),
            queue: Mutex::default(),
            wake: Notify::new(),
            stats: Arc::default(),
        }))
    }

    /// The hook the store calls for every block it has made durable.
    pub fn hook(&self) -> OnDurable {
        let (this, that) = (self.clone(), self.clone());
        OnDurable {
            durable: Arc::new(move |path: &Path| this.enqueue_path(path)),
            gone: Arc::new(move |path: &Path| that.enqueue_deletion(path)),
        }
    }

    /// Queues the deletion from the bucket of a block directory deleted locally (merged
    /// away or expired). It goes after every upload queued before it, so the block that
    /// replaced a merged one is in the bucket first.
    pub fn enqueue_deletion(&self, path: &Path) {
        if let Some(key) = relative_key(&self.0.root, path).filter(|k| k.starts_with("blocks/")) {
            self.enqueue(Unit::deletion(key));
        }
    }

    /// The bucket it uploads into.
    pub fn bucket(&self) -> Bucket {
        self.0.bucket.clone()
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<UploadStats> {
        self.0.stats.clone()
    }

    /// Queues the block at `path` (a file or a block directory) unless it is queued.
    pub fn enqueue_path(&self, path: &Path) {
        match self.unit_of(path) {
            Ok(Some(unit)) => self.enqueue(unit),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "cannot queue a block for upload")
            }
        }
    }

    fn enqueue(&self, unit: Unit) {
        let mut queue = self.0.queue.lock().expect("upload queue lock");
        if queue.keys.insert(unit.key.clone()) {
            self.0.stats.backlog_blocks.fetch_add(1, Ordering::Relaxed);
            self.0
                .stats
                .backlog_bytes
                .fetch_add(unit.bytes, Ordering::Relaxed);
            queue.units.push_back(unit);
            self.0.wake.notify_one();
        }
    }

    /// The unit for a block path; `None` for what is not a finished block.
    fn unit_of(&self, path: &Path) -> std::io::Result<Option<Unit>> {
        let Some(key) = relative_key(&self.0.root, path) else {
            return Ok(None);
        };
        let meta = std::fs::metadata(path)?;
        if meta.is_file() {
            let done = key.ends_with(".parquet");
            return Ok(done.then(|| Unit {
                files: vec![(key.clone(), path.to_owned())],
                key,
                bytes: meta.len(),
                delete: None,
            }));
        }
        if !path.join(META_FILE).is_file() {
            return Ok(None);
        }
        let mut files = Vec::new();
        let mut bytes = 0;
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_file() && !name.ends_with(".tmp") {
                bytes += entry.metadata()?.len();
                files.push((format!("{key}/{name}"), entry.path()));
            }
        }
        // Name order, the meta file last: a block is complete once its meta is there.
        files.sort_by_key(|(k, _)| (k.ends_with(META_FILE), k.clone()));
        Ok(Some(Unit {
            key,
            files,
            bytes,
            delete: None,
        }))
    }

    /// Local blocks, by unit.
    fn local_units(&self) -> std::io::Result<Vec<Unit>> {
        let mut units = Vec::new();
        for folder in BLOCK_DIRS {
            let dir = self.0.root.join(folder);
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            let mut paths: Vec<PathBuf> = entries
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            paths.sort();
            for path in paths {
                if let Some(unit) = self.unit_of(&path)? {
                    units.push(unit);
                }
            }
        }
        Ok(units)
    }

    /// Lists the bucket and queues every local block missing there or of another size.
    pub async fn reconcile(&self) -> Result<usize, String> {
        let mut remote = HashMap::new();
        for folder in BLOCK_DIRS {
            remote.extend(self.0.bucket.sizes_under(folder).await.map_err(|e| {
                self.0.stats.error(e.op);
                e.to_string()
            })?);
        }
        let units = self
            .local_units()
            .map_err(|e| format!("reading local blocks: {e}"))?;
        let mut queued = 0;
        for folder in superseded_in_bucket(&self.0.root, &remote) {
            self.enqueue(Unit::deletion(folder));
            queued += 1;
        }
        for unit in units {
            let present = unit.files.iter().all(|(key, path)| {
                let local = std::fs::metadata(path).map(|m| m.len()).ok();
                local.is_some() && remote.get(key).copied() == local
            });
            if !present {
                self.enqueue(unit);
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Uploads forever: reconciles first (and after every outage), then follows the queue.
    pub async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        let mut reconciled = false;
        let mut down_since: Option<Instant> = None;
        loop {
            if !reconciled {
                match self.reconcile().await {
                    Ok(queued) => {
                        tracing::info!(bucket = %self.0.bucket.target, queued, "compared local blocks with the bucket");
                        reconciled = true;
                    }
                    Err(err) => {
                        self.note_failure(&mut down_since, &err);
                        backoff = self.pause(backoff).await;
                        continue;
                    }
                }
            }
            let front = self
                .0
                .queue
                .lock()
                .expect("upload queue lock")
                .units
                .front()
                .cloned();
            let Some(unit) = front else {
                self.0.wake.notified().await;
                continue;
            };
            match self.upload(&unit).await {
                Outcome::Done | Outcome::Gone => {
                    self.pop(&unit);
                    backoff = BACKOFF_MIN;
                    if let Some(since) = down_since.take() {
                        tracing::info!(bucket = %self.0.bucket.target, down_for = ?since.elapsed(), "the bucket answers again; comparing it with the local blocks");
                        reconciled = false;
                    }
                }
                Outcome::Failed(err) => {
                    self.0.stats.error(err.op);
                    self.note_failure(&mut down_since, &err.to_string());
                    backoff = self.pause(backoff).await;
                }
            }
        }
    }

    fn note_failure(&self, down_since: &mut Option<Instant>, err: &str) {
        if down_since.is_none() {
            *down_since = Some(Instant::now());
            tracing::warn!(bucket = %self.0.bucket.target, %err, backlog = self.0.stats.backlog_blocks(), "bucket operation failed; blocks stay on local disk and uploads retry with backoff");
        } else {
            tracing::debug!(%err, "bucket operation failed again");
        }
    }

    /// Sleeps `backoff` and returns the next one.
    async fn pause(&self, backoff: Duration) -> Duration {
        tokio::time::sleep(backoff).await;
        (backoff * 2).min(BACKOFF_MAX)
    }

    async fn upload(&self, unit: &Unit) -> Outcome {
        if let Some(folder) = &unit.delete {
            return match self.0.bucket.delete_folder(folder).await {
                Ok(n) => {
                    tracing::debug!(block = %folder, objects = n, "deleted a block from the bucket");
                    Outcome::Done
                }
                Err(err) => Outcome::Failed(err),
            };
        }
        for (key, path) in &unit.files {
            if !path.exists() {
                return Outcome::Gone;
            }
            match self.0.bucket.put_file(key, path).await {
                Ok(bytes) => {
                    self.0
                        .stats
                        .uploaded_bytes
                        .fetch_add(bytes, Ordering::Relaxed);
                    self.0
                        .stats
                        .uploaded_objects
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(_) if !path.exists() => return Outcome::Gone,
                Err(err) => return Outcome::Failed(err),
            }
        }
        tracing::debug!(block = %unit.key, bytes = unit.bytes, "uploaded a block");
        Outcome::Done
    }

    fn pop(&self, unit: &Unit) {
        let mut queue = self.0.queue.lock().expect("upload queue lock");
        if queue.units.front().is_some_and(|u| u.key == unit.key) {
            queue.units.pop_front();
            queue.keys.remove(&unit.key);
            self.0.stats.backlog_blocks.fetch_sub(1, Ordering::Relaxed);
            self.0
                .stats
                .backlog_bytes
                .fetch_sub(unit.bytes, Ordering::Relaxed);
        }
    }

    /// Waits until the queue is empty or `deadline`; says what is left.
    pub async fn drain(&self, deadline: Instant) {
        while self.0.stats.backlog_blocks() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.0.stats.backlog_blocks();
        if left == 0 {
            tracing::info!(bucket = %self.0.bucket.target, "every block is in the bucket");
        } else {
            tracing::warn!(bucket = %self.0.bucket.target, blocks = left, bytes = self.0.stats.backlog_bytes.load(Ordering::Relaxed), "blocks not uploaded before exiting; they stay on local disk and go up at the next start");
        }
    }
}

/// `parts/x.parquet` or `blocks/ULID` for a path inside the data dir's block folders.
/// Block folders (`blocks/<ULID>`) in the bucket listing that a local block names among
/// its `sources`: merged away here, left in the bucket by a restart before their deletion.
fn superseded_in_bucket(root: &Path, remote: &HashMap<String, u64>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join("blocks")) else {
        return Vec::new();
    };
    let mut sources = HashSet::new();
    for entry in entries.flatten() {
        if let Ok(Some(block)) = super::block::Block::open(&entry.path()) {
            sources.extend(block.meta.sources);
        }
    }
    let mut folders: Vec<String> = sources
        .into_iter()
        .map(|ulid| format!("blocks/{ulid}"))
        .filter(|folder| {
            let meta = format!("{folder}/{META_FILE}");
            remote.contains_key(&meta)
        })
        .collect();
    folders.sort();
    folders
}

fn relative_key(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<&str> = rel.iter().map(|c| c.to_str()).collect::<Option<_>>()?;
    (parts.len() == 2 && BLOCK_DIRS.contains(&parts[0])).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::object_storage::FilesystemConfig;

    fn folder_bucket(dir: &Path, prefix: &str) -> Bucket {
        let config = ObjectStorage {
            bucket: BucketConfig {
                provider: Provider::Filesystem(FilesystemConfig {
                    directory: dir.to_owned(),
                }),
                prefix: prefix.to_owned(),
            },
        };
        Bucket::open(&config, &dir.join("../data"))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn keys_are_block_files_and_directories_of_the_data_dir() {
        let root = Path::new("/d");
        assert_eq!(
            relative_key(root, Path::new("/d/parts/a.parquet")).as_deref(),
            Some("parts/a.parquet")
        );
        assert_eq!(
            relative_key(root, Path::new("/d/blocks/01J")).as_deref(),
            Some("blocks/01J")
        );
        assert_eq!(relative_key(root, Path::new("/d/wal/0001")), None);
        assert_eq!(relative_key(root, Path::new("/e/parts/a.parquet")), None);
    }

    #[test]
    fn a_folder_that_is_the_data_dir_is_no_bucket() {
        let tmp = tempfile::tempdir().unwrap();
        let config = ObjectStorage {
            bucket: BucketConfig {
                provider: Provider::Filesystem(FilesystemConfig {
                    directory: tmp.path().join("./data"),
                }),
                prefix: String::new(),
            },
        };
        assert!(
            Bucket::open(&config, &tmp.path().join("data"))
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn blocks_go_up_meta_last_and_reconcile_finds_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("parts")).unwrap();
        std::fs::create_dir_all(data.join("blocks/01A")).unwrap();
        std::fs::write(data.join("parts/1.parquet"), b"part one").unwrap();
        std::fs::write(data.join("parts/2.parquet.tmp"), b"half").unwrap();
        std::fs::write(data.join("blocks/01A/samples.parquet"), b"samples").unwrap();
        std::fs::write(data.join("blocks/01A/meta.json"), b"{}").unwrap();
        std::fs::create_dir_all(data.join("blocks/01B")).unwrap();
        std::fs::write(data.join("blocks/01B/samples.parquet"), b"no meta yet").unwrap();
        let bucket = folder_bucket(&tmp.path().join("bucket"), "team");
        let uploader = Uploader::new(bucket, &data);
        let block = uploader.unit_of(&data.join("blocks/01A")).unwrap().unwrap();
        assert_eq!(
            block
                .files
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            ["blocks/01A/samples.parquet", "blocks/01A/meta.json"]
        );
        assert_eq!(
            uploader.reconcile().await.unwrap(),
            2,
            "the part and the finished block"
        );
        assert_eq!(uploader.stats().backlog_blocks(), 2);
        tokio::spawn(uploader.clone().run());
        uploader
            .drain(Instant::now() + Duration::from_secs(10))
            .await;
        assert_eq!(uploader.stats().backlog_blocks(), 0);
        let up = tmp.path().join("bucket/team");
        assert_eq!(
            std::fs::read(up.join("parts/1.parquet")).unwrap(),
            b"part one"
        );
        assert_eq!(
            std::fs::read(up.join("blocks/01A/meta.json")).unwrap(),
            b"{}"
        );
        assert!(!up.join("parts/2.parquet.tmp").exists());
        assert!(!up.join("blocks/01B").exists());
        // A block lost from the bucket is found again; the rest is not sent twice.
        std::fs::remove_file(up.join("parts/1.parquet")).unwrap();
        assert_eq!(uploader.reconcile().await.unwrap(), 1);
        uploader
            .drain(Instant::now() + Duration::from_secs(10))
            .await;
        assert!(up.join("parts/1.parquet").is_file());
        let mut text = String::new();
        uploader.stats().render(&mut text);
        assert!(
            text.contains("cinder_bucket_upload_backlog_blocks 0"),
            "{text}"
        );
        assert!(
            text.contains("cinder_bucket_uploaded_objects_total 4"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_block_removed_before_its_upload_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("parts")).unwrap();
        let path = data.join("parts/1.parquet");
        std::fs::write(&path, b"merged away").unwrap();
        let uploader = Uploader::new(folder_bucket(&tmp.path().join("bucket"), ""), &data);
        uploader.hook().announce(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(uploader.stats().backlog_blocks(), 1);
        tokio::spawn(uploader.clone().run());
        uploader
            .drain(Instant::now() + Duration::from_secs(10))
            .await;
        assert_eq!(uploader.stats().backlog_blocks(), 0);
    }

    #[test]
    fn statuses_are_read_from_the_error_text() {
        let err = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 400 Bad Request: <Error>".into(),
        };
        assert_eq!(http_status(&err), Some(400));
        assert_eq!(one_line(&std::io::Error::other("a\n  b")), "a b");
    }
}
