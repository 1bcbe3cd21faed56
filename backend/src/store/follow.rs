//! Following the bucket: every `--bucket-refresh`, the node lists the bucket's blocks,
//! reads the `meta.json` of each one it does not know, copies the symbol tables of those
//! that count (see [`crate::store::remote`]) to `<data>/remote/<ULID>/`, imports them into
//! sled and hands the list to the store, so queries read other nodes' rows from the bucket.
//! A fresh node does one refresh before it reports ready.
//!
//! A block is listed only once its `meta.json` is in the bucket (uploaded last), and its
//! symbol tables are checked against the sizes and CRC-32s that `meta.json` records. A
//! block that fails the check is skipped (and logged) until a later refresh finds it whole;
//! a bucket that does not answer leaves the last list in force.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use super::{
    Store,
    block::{self, BlockMeta},
    bucket::{Bucket, UploadStats},
    remote::RemoteBlock,
};

/// `--bucket-refresh`'s default.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(15);

/// Reads other nodes' blocks from the bucket into the store's remote list.
#[derive(Clone)]
pub struct Follower {
    bucket: Bucket,
    store: Arc<Store>,
    stats: Arc<UploadStats>,
    /// `meta.json`s already read, by ULID (a block never changes).
    metas: Arc<Mutex<HashMap<String, BlockMeta>>>,
    /// The URL the bucket's store is registered under with the query engine
    /// ([`crate::query::register_bucket`]); a remote block's rows are at this URL plus
    /// their object path.
    base_url: String,
}

/// What one refresh found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refreshed {
    /// Blocks listed in the bucket.
    pub listed: usize,
    /// Of them, the remote blocks queries now read.
    pub remote: usize,
    /// Blocks whose symbols were fetched by this refresh.
    pub fetched: usize,
}

impl Follower {
    /// A follower of `bucket` for `store`, whose queries read the bucket under
    /// `base_url`; its counters go to `stats`.
    pub fn new(
        bucket: Bucket,
        store: Arc<Store>,
        stats: Arc<UploadStats>,
        base_url: String,
    ) -> Follower {
        Follower {
            bucket,
            store,
            stats,
            metas: Arc::default(),
            base_url,
        }
    }

    /// Adopts the blocks whose copies a previous run left under `<data>/remote/` (their
    /// `meta.json` is there, written last), so that a restart that cannot reach the
    /// bucket still knows them, and its answers say that they are missing. Returns how
    /// many.
    pub async fn adopt_local_copies(&self) -> usize {
        let dir = self.store.remote_dir();
        let mut copies = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let Ok(Some(block)) = block::Block::open(&entry.path()) else {
                    continue;
                };
                copies.push(self.remote_block(block.meta, block.dir));
            }
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.adopt_remote(copies).len())
            .await
            .unwrap_or(0)
    }

    /// Refreshes every `every`, forever; failures are logged and retried at the next tick.
    pub async fn run(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut failing = false;
        loop {
            tick.tick().await;
            match self.refresh().await {
                Ok(found) => {
                    if failing {
                        tracing::info!(?found, "the bucket's block list is read again");
                    }
                    failing = false;
                }
                Err(err) if !failing => {
                    failing = true;
                    tracing::warn!(%err, "cannot read the bucket's block list; queries read the blocks known before");
                }
                Err(err) => tracing::debug!(%err, "the bucket's block list is still unreadable"),
            }
        }
    }

    /// Lists the bucket once and adopts what it holds (see the module docs).
    pub async fn refresh(&self) -> Result<Refreshed, String> {
        let refreshed = self.refresh_once().await;
        self.store.set_bucket_reachable(refreshed.is_ok());
        refreshed
    }

    async fn refresh_once(&self) -> Result<Refreshed, String> {
        let sizes = self.bucket.sizes_under("blocks").await.map_err(|e| {
            self.stats.error(e.op);
            e.to_string()
        })?;
        let listed = listed_blocks(&sizes);
        let metas = self.read_metas(&listed).await?;
        self.metas
            .lock()
            .expect("metas lock")
            .retain(|ulid, _| listed.binary_search(ulid).is_ok());
        let wanted = self.store.counting_remote(&metas);
        let mut remote = Vec::new();
        let mut fetched = 0;
        for meta in metas.iter().filter(|m| wanted.contains(&m.ulid)) {
            if !whole_in_bucket(meta, &sizes) {
                continue;
            }
            match self.local_copy(meta).await {
                Ok((block, new)) => {
                    fetched += usize::from(new);
                    remote.push(block);
                }
                Err(err) => {
                    tracing::warn!(block = %meta.ulid, %err, "skipping a block of the bucket for now");
                }
            }
        }
        let store = self.store.clone();
        let kept = tokio::task::spawn_blocking(move || store.adopt_remote(remote))
            .await
            .map_err(|e| e.to_string())?;
        let count = kept.len();
        self.remove_copies_except(&kept);
        self.stats
            .remote_blocks
            .store(count as u64, Ordering::Relaxed);
        self.stats.refreshes.fetch_add(1, Ordering::Relaxed);
        Ok(Refreshed {
            listed: listed.len(),
            remote: count,
            fetched,
        })
    }

    /// The `meta.json` of every listed block this node does not hold itself.
    async fn read_metas(&self, listed: &[String]) -> Result<Vec<BlockMeta>, String> {
        let mut out = Vec::new();
        for ulid in listed {
            if self.store.holds_locally(ulid) {
                continue;
            }
            if let Some(meta) = self.metas.lock().expect("metas lock").get(ulid) {
                out.push(meta.clone());
                continue;
            }
            let key = format!("blocks/{ulid}/{}", block::META_FILE);
            let bytes = self.bucket.get_bytes(&key).await.map_err(|e| {
                self.stats.error(e.op);
                e.to_string()
            })?;
            // Deleted since the listing: gone, like a block no longer listed.
            let Some(bytes) = bytes else { continue };
            match parse_meta(ulid, &bytes) {
                Ok(meta) => {
                    self.metas
                        .lock()
                        .expect("metas lock")
                        .insert(ulid.clone(), meta.clone());
                    out.push(meta);
                }
                Err(err) => tracing::warn!(block = %ulid, %err, "ignoring a block of the bucket"),
            }
        }
        Ok(out)
    }

    /// The block with its symbols in `symbols`, its rows read from the bucket.
    fn remote_block(&self, meta: BlockMeta, symbols: PathBuf) -> RemoteBlock {
        let samples = format!("blocks/{}/{}", meta.ulid, block::SAMPLES_FILE);
        RemoteBlock {
            url: format!("{}{}", self.base_url, self.bucket.object_path(&samples)),
            meta,
            symbols,
        }
    }

    fn copy_dir(&self, ulid: &str) -> PathBuf {
        self.store.remote_dir().join(ulid)
    }

    /// The block with its symbols on local disk (fetched when new).
    async fn local_copy(&self, meta: &BlockMeta) -> Result<(RemoteBlock, bool), String> {
        let dir = self.copy_dir(&meta.ulid);
        let new = !dir.join(block::META_FILE).is_file();
        if new {
            self.fetch_symbols(meta, &dir).await?;
        }
        Ok((self.remote_block(meta.clone(), dir), new))
    }

    /// Copies the symbol tables (checked against `meta.json`), then `meta.json`, through a
    /// temporary folder renamed into place.
    async fn fetch_symbols(&self, meta: &BlockMeta, dir: &Path) -> Result<(), String> {
        let tmp = dir.with_extension("tmp");
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        tokio::fs::create_dir_all(&tmp)
            .await
            .map_err(|e| e.to_string())?;
        for name in block::SYMBOL_FILES {
            let listed = meta.files.iter().find(|f| f.name == name);
            let Some(listed) = listed else {
                return Err(format!("meta.json does not list {name}"));
            };
            let key = format!("blocks/{}/{name}", meta.ulid);
            let bytes = self.bucket.get_bytes(&key).await.map_err(|e| {
                self.stats.error(e.op);
                e.to_string()
            })?;
            let Some(bytes) = bytes else {
                return Err(format!("{key} was deleted since it was listed"));
            };
            if bytes.len() as u64 != listed.size || crc32fast::hash(&bytes) != listed.crc32 {
                return Err(format!("{key} does not match its meta.json"));
            }
            tokio::fs::write(tmp.join(name), &bytes)
                .await
                .map_err(|e| e.to_string())?;
        }
        let json = serde_json::to_vec_pretty(meta).map_err(|e| e.to_string())?;
        tokio::fs::write(tmp.join(block::META_FILE), json)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tokio::fs::remove_dir_all(dir).await;
        tokio::fs::rename(&tmp, dir)
            .await
            .map_err(|e| e.to_string())
    }

    /// Deletes the local copies (and forgets the imports) of blocks not in `kept`: they no
    /// longer count, or are no longer in the bucket.
    fn remove_copies_except(&self, kept: &HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(self.store.remote_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if kept.contains(&name) || name.ends_with(".tmp") {
                continue;
            }
            if let Err(err) = self.store.forget_remote(&name) {
                tracing::warn!(block = %name, %err, "cannot forget a remote block's symbols");
                continue;
            }
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// ULIDs of the blocks whose `meta.json` the listing holds (keys `blocks/<ULID>/<file>`).
fn listed_blocks(sizes: &HashMap<String, u64>) -> Vec<String> {
    let mut ulids: Vec<String> = sizes
        .keys()
        .filter_map(|key| {
            let rest = key.strip_prefix("blocks/")?;
            let (ulid, file) = rest.split_once('/')?;
            (file == block::META_FILE).then(|| ulid.to_owned())
        })
        .collect();
    ulids.sort();
    ulids
}

/// Whether every file `meta.json` lists is in the bucket with its size.
fn whole_in_bucket(meta: &BlockMeta, sizes: &HashMap<String, u64>) -> bool {
    meta.files
        .iter()
        .all(|f| sizes.get(&format!("blocks/{}/{}", meta.ulid, f.name)) == Some(&f.size))
}

fn parse_meta(ulid: &str, bytes: &[u8]) -> Result<BlockMeta, String> {
    let meta: BlockMeta = serde_json::from_slice(bytes).map_err(|e| format!("meta.json: {e}"))?;
    if meta.version != block::BLOCK_VERSION {
        return Err(format!(
            "block version {} (this build reads {})",
            meta.version,
            block::BLOCK_VERSION
        ));
    }
    if meta.ulid != ulid {
        return Err(format!("meta.json names block {:?}", meta.ulid));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blocks_with_their_meta_file_are_listed() {
        let sizes: HashMap<String, u64> = [
            ("blocks/A/samples.parquet", 1),
            ("blocks/A/meta.json", 1),
            ("blocks/B/samples.parquet", 1),
            ("parts/x.parquet", 1),
            ("blocks/C/meta.json.tmp", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(listed_blocks(&sizes), vec!["A".to_owned()]);
    }

    #[test]
    fn a_meta_file_of_another_block_or_version_is_refused() {
        let meta = serde_json::json!({
            "ulid": "A", "version": block::BLOCK_VERSION, "profile_type": "t",
            "window_start": 0, "window_len": 10, "min_time": 0, "max_time": 1, "rows": 1,
            "level": 0, "sources": [], "wal_upto": 0, "files": []
        });
        let bytes = serde_json::to_vec(&meta).unwrap();
        assert!(parse_meta("A", &bytes).is_ok());
        assert!(parse_meta("B", &bytes).unwrap_err().contains("names block"));
        let mut other = meta.clone();
        other["version"] = serde_json::json!(99);
        let bytes = serde_json::to_vec(&other).unwrap();
        assert!(parse_meta("A", &bytes).unwrap_err().contains("version 99"));
        assert!(parse_meta("A", b"{").is_err());
    }
}
