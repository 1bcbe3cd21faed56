//! Blocks this node did not write: other nodes' blocks (and this node's own, once gone
//! from its disk) that a shared bucket holds. The store keeps a local copy of each one's
//! symbol tables and `meta.json` under `<data>/remote/<ULID>/`, imports the symbols into
//! sled, and lists the block's rows by their object URL; queries read the rows from the
//! bucket ([`crate::store::follow`] fetches them, [`crate::store::cache`] caches reads).
//!
//! Which remote blocks count is decided here, against the local catalog, each time the
//! bucket's list is adopted ([`Store::adopt_remote`]): not one this node holds itself, not
//! one a visible block (local or remote) names among its `sources` (it was compacted
//! away), and not one past this node's retention.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::atomic::Ordering,
    time::Duration,
};

use super::{
    Store, StoreError,
    block::{self, Block, BlockMeta},
    compactor, import_once, imported_key,
    meta::TreeId,
    now_ms,
    part::PartMeta,
};

/// The data-dir folder of remote blocks' symbol tables.
pub const REMOTE_DIR: &str = "remote";

/// The ULIDs of `listed` that count beside the local `blocks` (see the module docs).
fn counting(
    blocks: &HashMap<String, Block>,
    listed: &[BlockMeta],
    retention: Duration,
) -> HashSet<String> {
    let parts: Vec<PartMeta> = listed.iter().map(BlockMeta::part).collect();
    let expired: HashSet<String> = compactor::expired(&parts, retention, now_ms())
        .into_iter()
        .map(|p| p.file)
        .collect();
    let superseded: HashSet<&String> = blocks
        .values()
        .map(|b| &b.meta)
        .chain(listed)
        .flat_map(|m| m.sources.iter())
        .collect();
    listed
        .iter()
        .filter(|m| {
            !blocks.contains_key(&m.ulid)
                && !superseded.contains(&m.ulid)
                && !expired.contains(&m.ulid)
        })
        .map(|m| m.ulid.clone())
        .collect()
}

/// A block in the bucket, with its symbol tables copied to local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBlock {
    /// Its `meta.json`.
    pub meta: BlockMeta,
    /// The local folder holding its symbol tables (and a copy of `meta.json`).
    pub symbols: PathBuf,
    /// Where a query reads its `samples.parquet` (a URL of the registered bucket store).
    pub url: String,
}

impl RemoteBlock {
    /// Its catalog entry.
    pub fn part(&self) -> PartMeta {
        self.meta.part()
    }

    fn as_block(&self) -> Block {
        Block {
            dir: self.symbols.clone(),
            meta: self.meta.clone(),
        }
    }
}

impl Store {
    /// The data-dir folder where remote blocks' symbol tables are kept.
    pub fn remote_dir(&self) -> PathBuf {
        self.dir.join(REMOTE_DIR)
    }

    /// Whether this node holds the block itself (catalogued, or retired but not deleted).
    pub fn holds_locally(&self, ulid: &str) -> bool {
        self.view
            .read()
            .expect("view lock")
            .blocks
            .contains_key(ulid)
            || self.block_dir(ulid).join(block::META_FILE).is_file()
    }

    /// The ULIDs among `listed` (blocks in the bucket) that count: not held here, not named
    /// among the `sources` of a local or listed block, not past the retention.
    pub fn counting_remote(&self, listed: &[BlockMeta]) -> HashSet<String> {
        let view = self.view.read().expect("view lock");
        counting(&view.blocks, listed, self.options.retention)
    }

    /// Makes `listed` (blocks in the bucket whose symbols are here) the remote blocks
    /// queries read, less those that do not count ([`Store::counting_remote`]) or whose
    /// symbols cannot be imported (logged). Blocking: it waits for other maintenance.
    /// Returns the ULIDs now in the view; local copies of any other can go.
    pub fn adopt_remote(&self, listed: Vec<RemoteBlock>) -> HashSet<String> {
        let _maintenance = self.maintenance.lock().expect("maintenance lock");
        let metas: Vec<BlockMeta> = listed.iter().map(|r| r.meta.clone()).collect();
        let counts = {
            let view = self.view.read().expect("view lock");
            counting(&view.blocks, &metas, self.options.retention)
        };
        let (mut keep, mut imported) = (Vec::new(), false);
        for remote in listed.into_iter().filter(|r| counts.contains(&r.meta.ulid)) {
            // Under the maintenance lock: metadata GC cannot run between the import
            // and the block joining the view. (The follower checked the files.)
            match import_once(&self.meta, &remote.as_block(), false) {
                Ok(new) => {
                    imported |= new;
                    keep.push(remote);
                }
                Err(err) => {
                    tracing::warn!(block = %remote.meta.ulid, %err, "cannot import a remote block's symbols; leaving it out")
                }
            }
        }
        if imported && let Err(err) = self.meta.flush() {
            tracing::warn!(%err, "cannot flush imported symbols; sled writes them later");
        }
        keep.sort_by_key(|r| (r.meta.window_start, r.meta.min_time));
        let kept: HashSet<String> = keep.iter().map(|r| r.meta.ulid.clone()).collect();
        let left = {
            let mut view = self.view.write().expect("view lock");
            let left = view.remote.iter().any(|old| !kept.contains(&old.meta.ulid));
            view.remote = keep;
            left
        };
        if left {
            // Symbols only the dropped blocks used are garbage now.
            self.gc_due.store(true, Ordering::SeqCst);
        }
        kept
    }

    /// Forgets that a remote block's symbols were imported (its local copy is going).
    pub fn forget_remote(&self, ulid: &str) -> Result<(), StoreError> {
        self.meta.tree(TreeId::State).remove(imported_key(ulid))?;
        Ok(())
    }

    /// Records whether the bucket answered its last read.
    pub fn set_bucket_reachable(&self, up: bool) {
        self.bucket_down.store(!up, Ordering::SeqCst);
    }

    /// Whether queries may read remote blocks (the bucket answered its last read).
    pub fn bucket_reachable(&self) -> bool {
        !self.bucket_down.load(Ordering::SeqCst)
    }

    /// The remote blocks queries read.
    pub fn remote_blocks(&self) -> Vec<RemoteBlock> {
        self.view.read().expect("view lock").remote.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(ulid: &str, sources: &[&str], window_start: i64) -> BlockMeta {
        BlockMeta {
            ulid: ulid.into(),
            version: block::BLOCK_VERSION,
            profile_type: "t".into(),
            window_start,
            window_len: 1000,
            min_time: window_start,
            max_time: window_start + 999,
            rows: 1,
            level: 0,
            sources: sources.iter().map(|s| s.to_string()).collect(),
            wal_upto: 0,
            converted_from: None,
            files: Vec::new(),
        }
    }

    #[test]
    fn merged_away_local_and_expired_blocks_do_not_count() {
        let now = now_ms();
        let local_meta = meta("L", &["X"], now);
        let local: HashMap<String, Block> = [(
            "L".to_owned(),
            Block {
                dir: PathBuf::from("/l"),
                meta: local_meta,
            },
        )]
        .into();
        let listed = [
            meta("A", &[], now),            // another node's: counts
            meta("B", &[], now),            // merged into C below
            meta("C", &["B"], now),         // counts
            meta("L", &[], now),            // this node's own
            meta("X", &[], now),            // merged into the local L
            meta("OLD", &[], now - 90_000), // its window ended 89 s ago
        ];
        let counts = counting(&local, &listed, Duration::from_secs(60));
        let mut counts: Vec<&str> = counts.iter().map(String::as_str).collect();
        counts.sort();
        assert_eq!(counts, ["A", "C"]);
        let keep_all = counting(&local, &listed, Duration::ZERO);
        assert!(keep_all.contains("OLD"), "retention 0 keeps everything");
    }
}
