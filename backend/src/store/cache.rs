//! The read cache in front of the bucket: byte ranges of block files (Parquet footers and
//! column chunks) kept on local disk under `<data>/cache/`, up to `--cache-size`, least
//! recently used first out; object sizes (`HEAD`) kept in memory. Block files are
//! immutable and never reuse a name, so nothing cached is ever stale.
//!
//! [`CachedStore`] wraps the bucket's [`ObjectStore`] for queries only: ranged reads of a
//! known range are answered from the cache or fetched (several missing ranges in one
//! `get_ranges` call) and stored; everything else passes through. A cache entry is written
//! under a temporary name and renamed, so a crash leaves no torn entry; the index is rebuilt
//! from the folder at start (recency by modification time).

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    ops::Range,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt as _, stream::BoxStream};
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result, path::Path as ObjPath,
};

/// The data-dir folder of the read cache.
pub const CACHE_DIR: &str = "cache";
/// `--cache-size`'s default.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;
const TMP_SUFFIX: &str = ".tmp";

/// Hits, misses and size, for `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub bytes: AtomicU64,
    pub evicted: AtomicU64,
}

impl CacheStats {
    /// Prometheus text of the counters.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# HELP cinder_bucket_cache_hits_total Ranged reads of block files answered from the local read cache.\n\
             # TYPE cinder_bucket_cache_hits_total counter\n\
             cinder_bucket_cache_hits_total {}\n\
             # HELP cinder_bucket_cache_misses_total Ranged reads of block files fetched from the bucket.\n\
             # TYPE cinder_bucket_cache_misses_total counter\n\
             cinder_bucket_cache_misses_total {}\n\
             # HELP cinder_bucket_cache_bytes Bytes in the local read cache.\n\
             # TYPE cinder_bucket_cache_bytes gauge\n\
             cinder_bucket_cache_bytes {}\n\
             # HELP cinder_bucket_cache_evicted_total Cache entries removed to stay within --cache-size.\n\
             # TYPE cinder_bucket_cache_evicted_total counter\n\
             cinder_bucket_cache_evicted_total {}\n",
            get(&self.hits),
            get(&self.misses),
            get(&self.bytes),
            get(&self.evicted),
        );
    }
}

/// Which entries the cache holds, by recency.
#[derive(Debug, Default)]
struct Index {
    /// File name → (size, last use).
    entries: HashMap<String, (u64, u64)>,
    /// Last use → file name.
    by_use: BTreeMap<u64, String>,
    bytes: u64,
    clock: u64,
}

impl Index {
    fn touch(&mut self, name: &str) -> bool {
        let Some((_, used)) = self.entries.get_mut(name) else {
            return false;
        };
        self.clock += 1;
        let old = std::mem::replace(used, self.clock);
        self.by_use.remove(&old);
        self.by_use.insert(self.clock, name.to_owned());
        true
    }

    fn insert(&mut self, name: String, size: u64) {
        if self.touch(&name) {
            return;
        }
        self.clock += 1;
        self.bytes += size;
        self.by_use.insert(self.clock, name.clone());
        self.entries.insert(name, (size, self.clock));
    }

    /// Removes least recently used entries until `limit` holds; returns their names.
    fn evict_to(&mut self, limit: u64) -> Vec<String> {
        let mut gone = Vec::new();
        while self.bytes > limit {
            let Some((_, name)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((size, _)) = self.entries.remove(&name) {
                self.bytes -= size;
            }
            gone.push(name);
        }
        gone
    }
}

/// The bucket's store with a local read cache (see the module docs).
pub struct CachedStore {
    inner: Arc<dyn ObjectStore>,
    dir: PathBuf,
    limit: u64,
    index: Mutex<Index>,
    heads: Mutex<HashMap<ObjPath, ObjectMeta>>,
    stats: Arc<CacheStats>,
}

impl fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("dir", &self.dir)
            .field("limit", &self.limit)
            .finish()
    }
}

impl fmt::Display for CachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CachedStore({})", self.inner)
    }
}

impl CachedStore {
    /// A cache of at most `limit` bytes in `dir` (created; entries already there are kept,
    /// and trimmed to the limit) in front of `inner`.
    pub fn open(inner: Arc<dyn ObjectStore>, dir: &Path, limit: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(TMP_SUFFIX) {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let meta = entry.metadata()?;
            found.push((meta.modified().ok(), name, meta.len()));
        }
        found.sort();
        let mut index = Index::default();
        for (_, name, size) in found {
            index.insert(name, size);
        }
        let stats = Arc::new(CacheStats::default());
        let store = CachedStore {
            inner,
            dir: dir.to_owned(),
            limit,
            index: Mutex::new(index),
            heads: Mutex::default(),
            stats,
        };
        store.trim();
        Ok(store)
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    /// The entry's file name: the object path with `/` escaped (object paths never hold a
    /// raw `%2F`), then the range.
    fn entry_name(location: &ObjPath, range: &Range<u64>) -> String {
        format!(
            "{}@{}-{}",
            location.as_ref().replace('/', "%2F"),
            range.start,
            range.end
        )
    }

    fn lookup(&self, name: &str) -> Option<Bytes> {
        if !self.index.lock().expect("cache index").touch(name) {
            return None;
        }
        match std::fs::read(self.dir.join(name)) {
            Ok(bytes) => Some(Bytes::from(bytes)),
            Err(_) => {
                self.forget(name);
                None
            }
        }
    }

    fn forget(&self, name: &str) {
        let mut index = self.index.lock().expect("cache index");
        if let Some((size, used)) = index.entries.remove(name) {
            index.bytes -= size;
            index.by_use.remove(&used);
        }
    }

    /// Stores an entry; a failure to write only costs the next read a fetch.
    fn store(&self, name: String, bytes: &Bytes) {
        if bytes.len() as u64 > self.limit {
            return;
        }
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        let written =
            std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, self.dir.join(&name)));
        if let Err(err) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(%err, "could not store a read-cache entry");
            return;
        }
        self.index
            .lock()
            .expect("cache index")
            .insert(name, bytes.len() as u64);
        self.trim();
    }

    fn trim(&self) {
        let (gone, bytes) = {
            let mut index = self.index.lock().expect("cache index");
            (index.evict_to(self.limit), index.bytes)
        };
        self.stats.bytes.store(bytes, Ordering::Relaxed);
        self.stats
            .evicted
            .fetch_add(gone.len() as u64, Ordering::Relaxed);
        for name in gone {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }

    async fn head_cached(&self, location: &ObjPath) -> Result<ObjectMeta> {
        if let Some(meta) = self.heads.lock().expect("head cache").get(location) {
            return Ok(meta.clone());
        }
        let meta = self
            .inner
            .get_opts(
                location,
                GetOptions {
                    head: true,
                    ..GetOptions::default()
                },
            )
            .await?
            .meta;
        self.heads
            .lock()
            .expect("head cache")
            .insert(location.clone(), meta.clone());
        Ok(meta)
    }

    /// Whether a get carries no condition or version (its answer can come from the cache).
    fn is_plain(options: &GetOptions) -> bool {
        options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none()
    }
}

#[async_trait]
impl ObjectStore for CachedStore {
    async fn put_opts(
        &self,
        location: &ObjPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjPath,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &ObjPath, options: GetOptions) -> Result<GetResult> {
        let ranged = matches!(options.range, Some(GetRange::Bounded(_)));
        if !Self::is_plain(&options) || !(options.head || ranged) {
            return self.inner.get_opts(location, options).await;
        }
        let meta = self.head_cached(location).await?;
        if options.head {
            return Ok(GetResult {
                payload: GetResultPayload::Stream(futures_util::stream::empty().boxed()),
                range: 0..meta.size,
                meta,
                attributes: Default::default(),
            });
        }
        let Some(GetRange::Bounded(range)) = &options.range else {
            return self.inner.get_opts(location, options).await;
        };
        let range = range.start..range.end.min(meta.size);
        let bytes = self
            .get_ranges(location, std::slice::from_ref(&range))
            .await?;
        let bytes = bytes.into_iter().next().unwrap_or_default();
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures_util::stream::once(async { Ok(bytes) }).boxed(),
            ),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(&self, location: &ObjPath, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let mut out: Vec<Option<Bytes>> = ranges
            .iter()
            .map(|r| self.lookup(&Self::entry_name(location, r)))
            .collect();
        let missing: Vec<Range<u64>> = ranges
            .iter()
            .zip(&out)
            .filter(|(_, hit)| hit.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        let hits = (ranges.len() - missing.len()) as u64;
        self.stats.hits.fetch_add(hits, Ordering::Relaxed);
        self.stats
            .misses
            .fetch_add(missing.len() as u64, Ordering::Relaxed);
        if !missing.is_empty() {
            let mut fetched = self.inner.get_ranges(location, &missing).await?.into_iter();
            for (slot, range) in out.iter_mut().zip(ranges) {
                if slot.is_none() {
                    let bytes = fetched.next().unwrap_or_default();
                    self.store(Self::entry_name(location, range), &bytes);
                    *slot = Some(bytes);
                }
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<ObjPath>>,
    ) -> BoxStream<'static, Result<ObjPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjPath>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjPath>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &ObjPath, to: &ObjPath, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &ObjPath,
        to: &ObjPath,
        options: RenameOptions,
    ) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStoreExt as _, local::LocalFileSystem};

    fn bucket() -> (tempfile::TempDir, Arc<dyn ObjectStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        (dir, Arc::new(store))
    }

    #[tokio::test]
    async fn ranges_are_read_once_then_served_from_disk_and_survive_a_restart() {
        let (_b, inner) = bucket();
        let path = ObjPath::from("blocks/01J/samples.parquet");
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        inner.put(&path, data.clone().into()).await.unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = CachedStore::open(inner.clone(), cache_dir.path(), 1 << 20).unwrap();
        let got = cache
            .get_ranges(&path, &[10..20, 5000..5100])
            .await
            .unwrap();
        assert_eq!(&got[0][..], &data[10..20]);
        assert_eq!(&got[1][..], &data[5000..5100]);
        assert_eq!(cache.stats.misses.load(Ordering::Relaxed), 2);
        let again = cache.get_range(&path, 5000..5100).await.unwrap();
        assert_eq!(&again[..], &data[5000..5100]);
        assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 1);
        assert_eq!(cache.head(&path).await.unwrap().size, 10_000);

        // The object goes from the bucket: cached ranges still answer, after a restart too.
        inner.delete(&path).await.unwrap();
        let reopened = CachedStore::open(inner, cache_dir.path(), 1 << 20).unwrap();
        let head = cache.head(&path).await.unwrap();
        reopened.heads.lock().unwrap().insert(path.clone(), head);
        let got = reopened.get_range(&path, 10..20).await.unwrap();
        assert_eq!(&got[..], &data[10..20]);
        assert_eq!(reopened.stats.hits.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn the_least_recently_used_entries_go_past_the_limit() {
        let (_b, inner) = bucket();
        let path = ObjPath::from("a/b");
        inner.put(&path, vec![7u8; 1000].into()).await.unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = CachedStore::open(inner, cache_dir.path(), 250).unwrap();
        for start in [0u64, 100, 200] {
            cache.get_range(&path, start..start + 100).await.unwrap();
        }
        // 300 bytes do not fit 250: the first range went.
        assert_eq!(cache.stats.bytes.load(Ordering::Relaxed), 200);
        assert_eq!(cache.stats.evicted.load(Ordering::Relaxed), 1);
        let files = std::fs::read_dir(cache_dir.path()).unwrap().count();
        assert_eq!(files, 2);
        cache.get_range(&path, 100..200).await.unwrap();
        assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 1, "still cached");
        cache.get_range(&path, 0..100).await.unwrap();
        assert_eq!(
            cache.stats.misses.load(Ordering::Relaxed),
            4,
            "evicted, fetched again"
        );
    }
}
