//! Store tests: durability across reopen, flush, compaction, retention, crash leftovers,
//! and injected I/O faults.

use super::*;
use crate::store::table::IntoBatch as _;
use io::{EIO, ENOSPC, Faults, Op};
use shared::labels::Labels;

fn opts() -> StoreOptions {
    StoreOptions {
        compact_min_parts: 2,
        ..StoreOptions::default()
    }
}

const TYPE: &str = "process_cpu:samples:count:cpu:nanoseconds:delta";

/// A write of `n` rows into one series with stacks 0..n and values 1..=n at time `ts`.
fn batch(store: &Store, job: &str, ts: i64, n: u64) -> WriteBatch {
    let mut b = WriteBatch::default();
    let labels: Labels = [("__name__", "process_cpu"), ("job", job)]
        .into_iter()
        .collect();
    let series = b.meta.series(&store.meta, &labels);
    b.meta.type_series(&store.meta, TYPE, series);
    let mut cols = Columns::default();
    for i in 0..n {
        let location = meta::LocationMeta {
            mapping: 0,
            address: i + 100,
            lines: Vec::new(),
        };
        let location = b.meta.location(&store.meta, &location);
        let stack = meta::stack_id(&[location]);
        b.meta.stack(&store.meta, stack, &[location]);
        cols.push(series, stack, ts, i as i64 + 1, 10_000_000_000, 10_000_000);
    }
    b.rows.insert(TYPE.to_owned(), cols);
    b
}

fn total(store: &Store) -> (usize, i64) {
    let snap = store.snapshot(TYPE, i64::MIN, i64::MAX);
    let from_parts = snap.parts.iter().flat_map(|p| part::read_part(p).unwrap());
    snap.batches
        .into_iter()
        .chain(from_parts)
        .fold((0, 0), |(rows, sum), b| {
            let v = b
                .column(3)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap();
            (rows + b.num_rows(), sum + v.values().iter().sum::<i64>())
        })
}

#[test]
fn acknowledged_writes_survive_a_reopen_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        store.write(batch(&store, "api", 1_000, 10)).unwrap();
        // Dropped without flushing sled or the head: only the WAL has it.
    }
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store), (10, 55));
    assert_eq!(store.meta.profile_types(), vec![TYPE.to_owned()]);
    let location = meta::LocationMeta {
        mapping: 0,
        address: 103,
        lines: Vec::new(),
    }
    .id();
    let stack = meta::stack_id(&[location]);
    assert_eq!(store.meta.stack(stack).unwrap(), Some(vec![location]));
}

#[test]
fn a_flush_moves_the_head_into_parquet_and_drops_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store.write(batch(&store, "api", 1_000, 10)).unwrap();
    store.write(batch(&store, "db", 2_000, 5)).unwrap();
    let parts = store.flush().unwrap();
    assert_eq!(parts.len(), 1, "one type, one window");
    assert_eq!(parts[0].rows, 15);
    assert_eq!((parts[0].min_ts, parts[0].max_ts), (1_000, 2_000));
    assert_eq!(
        parts[0].window,
        Window {
            start: 0,
            len: 7_200_000
        }
    );
    assert_eq!(total(&store), (15, 55 + 15));
    assert!(store.snapshot(TYPE, 0, 10_000).batches.is_empty());
    assert!(
        store.snapshot(TYPE, 5_000, 10_000).parts.is_empty(),
        "pruned by time"
    );
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store), (15, 70), "nothing replayed twice");
}

#[test]
fn compaction_merges_parts_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    for i in 0..3 {
        store.write(batch(&store, "api", 1_000 * i, 4)).unwrap();
        store.flush().unwrap();
    }
    assert_eq!(store.sizes().parts, 3);
    assert_eq!(store.compact().unwrap(), 1, "one window, one merge");
    assert_eq!(store.sizes().parts, 1);
    assert_eq!(store.compact().unwrap(), 0, "a single part is left alone");
    assert_eq!(total(&store), (12, 30));
    let files = || block_dirs(dir.path());
    assert_eq!(
        files(),
        4,
        "old parts wait for queries that may have planned with them"
    );
    store.empty_trash(true).unwrap();
    assert_eq!(files(), 1, "then they are deleted");
}

#[test]
fn retention_deletes_whole_old_parts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            retention: Duration::from_secs(3600),
            ..opts()
        },
    )
    .unwrap();
    store
        .write(batch(&store, "old", now_ms() - 7_200_000, 3))
        .unwrap();
    store.flush().unwrap();
    store.write(batch(&store, "new", now_ms(), 2)).unwrap();
    store.flush().unwrap();
    assert_eq!(store.enforce_retention().unwrap(), 1);
    assert_eq!(total(&store), (2, 3));
}

/// Entries of the blocks folder.
fn block_dirs(dir: &Path) -> usize {
    fs::read_dir(dir.join(BLOCKS_DIR)).unwrap().count()
}

/// Copies a block directory under a new ULID with its meta.json changed by `edit`.
fn copy_block(block: &Block, edit: impl FnOnce(&mut block::BlockMeta)) -> PathBuf {
    let mut meta = block.meta.clone();
    meta.ulid = block::new_ulid();
    edit(&mut meta);
    let to = block.dir.parent().unwrap().join(&meta.ulid);
    fs::create_dir(&to).unwrap();
    for file in block.files() {
        fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
    }
    fs::write(
        to.join(block::META_FILE),
        serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
    to
}

#[test]
fn crash_leftovers_are_cleaned_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (flushed, unfinished, stray, superseding, unflushed) = {
        let store = Store::open(dir.path(), opts()).unwrap();
        store.write(batch(&store, "api", 1_000, 4)).unwrap();
        store.flush().unwrap();
        store.write(batch(&store, "db", 2_000, 2)).unwrap();
        let block = store.blocks().remove(0);
        let blocks = dir.path().join(BLOCKS_DIR);
        // A block that died before its meta.json, a stray temporary file, a compaction
        // that died after writing its output (which names `block` as a source), and a
        // flush that died before raising the flushed mark.
        let unfinished = blocks.join(block::new_ulid());
        fs::create_dir(&unfinished).unwrap();
        fs::copy(block.samples(), unfinished.join(block::SAMPLES_FILE)).unwrap();
        let stray = blocks.join("x.tmp");
        fs::write(&stray, b"half").unwrap();
        let superseding = copy_block(&block, |m| m.sources = vec![block.meta.ulid.clone()]);
        let unflushed = copy_block(&block, |m| m.wal_upto = 99);
        (block.dir, unfinished, stray, superseding, unflushed)
    };
    let store = Store::open(dir.path(), opts()).unwrap();
    for gone in [&flushed, &unfinished, &stray, &unflushed] {
        assert!(!gone.exists(), "{}", gone.display());
    }
    assert!(superseding.exists());
    assert_eq!(store.blocks().len(), 1);
    assert_eq!(
        total(&store),
        (6, 13),
        "each row once; the WAL still has the head"
    );
}

#[test]
fn target_records_survive_a_reopen_and_can_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        store.meta.put_target("b", b"{\"job\":\"b\"}").unwrap();
        store.meta.put_target("a", b"{\"job\":\"a\"}").unwrap();
        store.meta.put_target("a", b"{\"job\":\"a2\"}").unwrap();
    }
    let store = Store::open(dir.path(), opts()).unwrap();
    let records = store.meta.targets().unwrap();
    assert_eq!(
        records,
        [
            ("a".to_owned(), b"{\"job\":\"a2\"}".to_vec()),
            ("b".to_owned(), b"{\"job\":\"b\"}".to_vec())
        ]
    );
    assert!(store.meta.delete_target("a").unwrap());
    assert!(!store.meta.delete_target("a").unwrap());
    assert_eq!(store.meta.targets().unwrap().len(), 1);
}

/// A store whose file operations go through `faults`.
fn faulty(dir: &Path, faults: &Arc<Faults>, options: StoreOptions) -> Store {
    let options = StoreOptions {
        io: Io::with_faults(faults.clone()),
        ..options
    };
    Store::open(dir, options).unwrap()
}

fn wal_segments(dir: &Path) -> usize {
    fs::read_dir(dir.join("wal")).unwrap().count()
}

#[test]
fn a_flush_splits_rows_by_type_and_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            block_window: Duration::from_secs(10),
            retention: Duration::ZERO,
            ..opts()
        },
    )
    .unwrap();
    store.write(batch(&store, "api", 1_000, 3)).unwrap();
    store.write(batch(&store, "api", 25_000, 2)).unwrap();
    let mut other = batch(&store, "db", 12_000, 1);
    let rows = other.rows.remove(TYPE).unwrap();
    other
        .rows
        .insert("memory:inuse_space:bytes:space:bytes".into(), rows);
    store.write(other).unwrap();
    let mut parts = store.flush().unwrap();
    parts.sort_by_key(|p| (p.window, p.profile_type.clone()));
    let summary: Vec<(i64, &str, u64)> = parts
        .iter()
        .map(|p| (p.window.start, p.profile_type.as_str(), p.rows))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, TYPE, 3),
            (10_000, "memory:inuse_space:bytes:space:bytes", 1),
            (20_000, TYPE, 2)
        ]
    );
    assert_eq!(
        store.snapshot(TYPE, 0, 5_000).parts.len(),
        1,
        "pruned by window and type"
    );
}

#[test]
fn a_failed_flush_keeps_its_rows_durable_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    {
        let store = faulty(dir.path(), &faults, opts());
        store.write(batch(&store, "api", 1_000, 10)).unwrap();
        faults.fail(Op::Write, 1, u64::MAX, ENOSPC);
        let err = store.flush().unwrap_err();
        assert!(err.is_disk_full(), "{err}");
        assert_eq!(total(&store), (10, 55), "the frozen head is still queried");
        assert!(store.flush_due(), "a retry is due");
        assert!(
            store.flush_if_due().unwrap().is_empty(),
            "writers leave the retry to maintenance for a while"
        );
        faults.clear();
        // A later write and flush: the failed head must not be dropped with its WAL.
        store.write(batch(&store, "db", 2_000, 4)).unwrap();
        faults.fail(Op::Rename, 1, 1, EIO);
        assert!(store.flush().is_err());
        assert_eq!(total(&store), (14, 65));
        assert_eq!(block_dirs(dir.path()), 0, "no stray blocks");
        // Dropped without a successful flush: only the WAL has the rows.
    }
    let store = faulty(dir.path(), &faults, opts());
    assert_eq!(total(&store), (14, 65), "replayed from the kept WAL");
    assert!(!store.flush().unwrap().is_empty());
    assert_eq!(total(&store), (14, 65));
    assert_eq!(wal_segments(dir.path()), 1, "flushed segments deleted");
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store), (14, 65), "nothing replayed twice");
}

#[test]
fn frozen_heads_of_failed_flushes_are_flushed_in_order_once_the_disk_works() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let store = faulty(dir.path(), &faults, opts());
    faults.fail(Op::Sync, 1, u64::MAX, ENOSPC);
    store.write(batch(&store, "api", 1_000, 3)).unwrap_err();
    faults.clear();
    store.write(batch(&store, "api", 1_000, 3)).unwrap();
    // Part files cannot be created; WAL appends still work.
    faults.fail(Op::Create, 1, u64::MAX, ENOSPC);
    assert!(store.flush().is_err());
    store.write(batch(&store, "api", 2_000, 2)).unwrap();
    assert!(store.flush().is_err());
    assert_eq!(total(&store), (5, 6 + 3));
    faults.clear();
    store.maintain().unwrap();
    assert_eq!(total(&store), (5, 9));
    assert!(
        store.snapshot(TYPE, 0, 10_000).batches.is_empty(),
        "all in parquet"
    );
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store), (5, 9));
}

#[test]
fn a_failed_wal_append_is_refused_and_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    {
        let store = faulty(dir.path(), &faults, opts());
        store.write(batch(&store, "api", 1_000, 2)).unwrap();
        faults.fail(Op::Sync, 1, 1, ENOSPC);
        let err = store.write(batch(&store, "api", 2_000, 5)).unwrap_err();
        assert!(err.is_disk_full());
        assert_eq!(total(&store), (2, 3), "a refused write is not visible");
        faults.fail(Op::Write, 1, 1, EIO);
        faults.fail(Op::Truncate, 1, 1, EIO);
        assert!(store.write(batch(&store, "api", 3_000, 5)).is_err());
        store.write(batch(&store, "api", 4_000, 1)).unwrap();
    }
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store), (3, 4), "acknowledged rows only, none lost");
}

#[test]
fn a_failed_compaction_changes_nothing_and_succeeds_later() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let store = faulty(dir.path(), &faults, opts());
    for i in 0..3 {
        store.write(batch(&store, "api", 1_000 * i, 4)).unwrap();
        store.flush().unwrap();
    }
    for op in [Op::Write, Op::Sync, Op::Rename, Op::Create] {
        faults.fail(op, 1, 1, ENOSPC);
        assert!(store.compact().is_err(), "{op:?}");
        assert_eq!(store.sizes().parts, 3);
        assert_eq!(total(&store), (12, 30));
        assert_eq!(block_dirs(dir.path()), 3);
    }
    assert_eq!(store.compact().unwrap(), 1);
    assert_eq!(total(&store), (12, 30));
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store), (12, 30), "counted once after a reopen");
    assert_eq!(store.sizes().parts, 1);
}

#[test]
fn maintenance_steps_run_on_their_own_when_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let options = StoreOptions {
        retention: Duration::from_secs(3600),
        flush_rows: 1,
        ..opts()
    };
    let store = faulty(dir.path(), &faults, options.clone());
    store
        .write(batch(&store, "old", now_ms() - 7_200_000, 3))
        .unwrap();
    store.flush().unwrap();
    store.write(batch(&store, "new", now_ms(), 2)).unwrap();
    // The disk is full: the flush fails, retention still deletes, the trash waits.
    faults.fail(Op::Write, 1, u64::MAX, ENOSPC);
    faults.fail(Op::Remove, 1, u64::MAX, ENOSPC);
    assert!(store.maintain().is_err());
    assert_eq!(store.sizes().parts, 0, "the expired part left the catalog");
    assert_eq!(total(&store), (2, 3), "the new rows are still there");
    assert!(store.empty_trash(true).is_err());
    assert_eq!(block_dirs(dir.path()), 1);
    faults.clear();
    store.empty_trash(true).unwrap();
    store.maintain().unwrap();
    assert_eq!(store.sizes().parts, 1);
    assert_eq!(block_dirs(dir.path()), 1);
    drop(store);
    let store = Store::open(dir.path(), options).unwrap();
    assert_eq!(total(&store), (2, 3));
}

#[test]
fn time_bounds_follow_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            retention: Duration::from_secs(60),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(store.time_bounds(100_000), (40_000, 3_700_000));
    drop(store);
    let store = Store::open(
        dir.path(),
        StoreOptions {
            retention: Duration::ZERO,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(store.time_bounds(100_000).0, i64::MIN);
}

#[test]
fn parts_of_the_first_format_are_converted_on_open() {
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    let dir = tempfile::tempdir().unwrap();
    let file = "00000000000000000001-0000000000000001.parquet";
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        // Its symbols, in sled as that format kept them.
        let symbols = batch(&store, "old", 0, 1);
        store.meta.apply(&symbols.meta.entries).unwrap();
        let series = symbols.rows[TYPE].series[0] as i64;
        // A part as the first format wrote it: both types in one file, a type column.
        fs::create_dir_all(dir.path().join("parts")).unwrap();
        let path = dir.path().join("parts").join(file);
        let n = 4;
        let col = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
        let types: Vec<&str> = vec!["a", "a", "b", TYPE];
        let batch = RecordBatch::try_new(
            table::LEGACY_PART_SCHEMA.clone(),
            vec![
                Arc::new(StringArray::from(types)),
                col(vec![series; n]),
                col(vec![0; n]),
                col(vec![1_000, 2_000, 3_000, 7_300_000]),
                col(vec![1, 2, 3, 4]),
                col(vec![0; n]),
                col(vec![1; n]),
            ],
        )
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            fs::File::create(&path).unwrap(),
            table::LEGACY_PART_SCHEMA.clone(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let mut entry = codec::Writer::default();
        entry.str(file);
        entry.svarint(1_000);
        entry.svarint(7_300_000);
        entry.varint(4);
        entry.varint(100);
        entry.varint(3);
        for t in ["a", "b", TYPE] {
            entry.str(t);
        }
        entry.varint(0);
        store
            .meta
            .tree(TreeId::Catalog)
            .insert(file.as_bytes(), entry.buf)
            .unwrap();
        store.meta.flush().unwrap();
    }
    let store = Store::open(dir.path(), opts()).unwrap();
    let mut parts: Vec<(String, i64, u64)> = store
        .parts()
        .iter()
        .map(|p| (p.profile_type.clone(), p.window.start, p.rows))
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        vec![
            ("a".into(), 0, 2),
            ("b".into(), 0, 1),
            (TYPE.into(), 7_200_000, 1)
        ]
    );
    assert_eq!(total(&store), (1, 4));
    assert_eq!(fs::read_dir(dir.path().join("parts")).unwrap().count(), 0);
    assert_eq!(block_dirs(dir.path()), 3);
    for block in store.blocks() {
        block.verify(true).unwrap();
        assert_eq!(block.meta.converted_from.as_deref(), Some(file));
    }
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store), (1, 4), "converted once");
}

/// Writes a part as the second format did: a flat file under `parts/` of one type and
/// window, catalogued in sled, its symbols in sled; the WAL mark in sled's catalog.
fn write_second_format_part(store: &Store, dir: &Path, job: &str, ts: i64, n: u64) -> PartMeta {
    let b = batch(store, job, ts, n);
    store.meta.apply(&b.meta.entries).unwrap();
    let rows = b.rows[TYPE].clone().into_batch();
    let file = format!("{:020}-{}.parquet", ts, rand_u64());
    fs::create_dir_all(dir.join("parts")).unwrap();
    let window = part::Window::of(ts, store.policy.block_window());
    let mut w =
        part::PartWriter::create(&dir.join("parts").join(&file), &store.io, TYPE, window).unwrap();
    w.write(&part::sort_rows(&rows).unwrap()).unwrap();
    let stats = w.finish().unwrap();
    // Everything before the segment being written counts as flushed.
    let mark = store.writable.lock().unwrap().wal.current_seq() - 1;
    let meta = PartMeta {
        file: file.clone(),
        profile_type: TYPE.to_owned(),
        window,
        min_ts: stats.min_ts,
        max_ts: stats.max_ts,
        rows: stats.rows,
        bytes: 1,
        wal_upto: mark,
    };
    let catalog = store.meta.tree(TreeId::Catalog);
    catalog.insert(file.as_bytes(), meta.encode()).unwrap();
    catalog
        .insert(FLUSHED_UPTO_KEY, &mark.to_be_bytes())
        .unwrap();
    store.meta.flush().unwrap();
    meta
}

#[test]
fn parts_of_the_second_format_become_blocks_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), opts()).unwrap());
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        let part = write_second_format_part(&store, dir.path(), "a", 1_000, 3);
        assert!(part.wal_upto > 0, "a mark below the WAL being written");
        write_second_format_part(&store, dir.path(), "b", 9_000_000, 4);
        // Acknowledged rows after the mark, still in the WAL.
        store.write(batch(&store, "c", 2_000, 2)).unwrap();
    }
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store), (9, 6 + 10 + 3));
    assert_eq!(store.blocks().len(), 2);
    assert_eq!(fs::read_dir(dir.path().join("parts")).unwrap().count(), 0);
    let series: Vec<_> = store
        .meta
        .select_series(TYPE, &shared::query::parse_matchers("{}").unwrap());
    assert_eq!(series.len(), 3);
    drop(store);
    // The converted blocks resolve on their own: without sled, the same answers.
    fs::remove_dir_all(dir.path().join("meta")).unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(total(&store), (9, 19), "blocks and WAL, once each");
    let all = shared::query::parse_matchers("{}").unwrap();
    let ids = store.meta.select_series(TYPE, &all);
    assert_eq!(store.meta.label_values("job", &ids), vec!["a", "b", "c"]);
    for block in store.blocks() {
        let mut stacks = std::collections::HashSet::new();
        block::table_ids(&block.dir, 1, &mut stacks).unwrap();
        assert!(!stacks.is_empty());
        for stack in stacks {
            assert!(store.meta.stack(stack).unwrap().is_some());
        }
    }
}

/// Metadata entries of one kind ([`Metadata::counts`]).
fn entries(store: &Store, kind: &str) -> usize {
    store
        .meta
        .counts()
        .iter()
        .find(|(k, _)| *k == kind)
        .unwrap()
        .1
}

#[test]
fn metadata_gc_removes_what_only_deleted_blocks_used() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let options = StoreOptions {
        retention: Duration::from_secs(3600),
        ..opts()
    };
    let store = faulty(dir.path(), &faults, options.clone());
    store
        .write(batch(&store, "old", now_ms() - 7_200_000, 5))
        .unwrap();
    store.flush().unwrap();
    store.write(batch(&store, "new", now_ms(), 2)).unwrap();
    store.collect_metadata().unwrap();
    assert_eq!(entries(&store, "series"), 2, "nothing unused yet");
    assert_eq!(entries(&store, "stacks"), 5);
    assert_eq!(store.enforce_retention().unwrap(), 1);
    // A failing GC step logs and leaves everything in place.
    faults.fail(Op::Remove, 1, 1, EIO);
    assert!(store.maintain().is_err());
    assert_eq!(entries(&store, "series"), 2);
    faults.clear();
    store.maintain().unwrap();
    assert_eq!(entries(&store, "series"), 1, "the old block's series left");
    assert_eq!(entries(&store, "stacks"), 2, "the head's stacks stay");
    assert_eq!(entries(&store, "locations"), 2);
    assert_eq!(entries(&store, "known"), 4);
    let all = shared::query::parse_matchers("{}").unwrap();
    let ids = store.meta.select_series(TYPE, &all);
    assert_eq!(store.meta.label_values("job", &ids), vec!["new"]);
    assert_eq!(total(&store), (2, 3));
    // A write prepared before the GC that relies on an id it removed is refused.
    let mut stale = batch(&store, "new", now_ms(), 1);
    let old = batch(&store, "old", now_ms(), 1);
    store.write(old).unwrap();
    store.enforce_retention().unwrap();
    stale.rows.get_mut(TYPE).unwrap().stack[0] = 12345;
    store.collect_metadata().unwrap();
    assert!(matches!(store.write(stale), Err(StoreError::Collected)));
    // What is left still flushes into a whole block and survives a reopen.
    store.flush().unwrap();
    drop(store);
    let store = Store::open(dir.path(), options).unwrap();
    // The retired block's directory outlived the process (trash grace): it expires again.
    store.maintain().unwrap();
    assert_eq!(total(&store), (3, 4));
    assert_eq!(entries(&store, "series"), 2);
}

/// A folder bucket (`FILESYSTEM` outside the data dirs).
fn folder_bucket(dir: &Path) -> bucket::Bucket {
    use crate::config::object_storage::{BucketConfig, FilesystemConfig, ObjectStorage, Provider};
    let config = ObjectStorage {
        bucket: BucketConfig {
            provider: Provider::Filesystem(FilesystemConfig {
                directory: dir.to_owned(),
            }),
            prefix: "shared".into(),
        },
    };
    bucket::Bucket::open(&config, &dir.join("../unused"))
        .unwrap()
        .unwrap()
}

/// Uploads every block of `data` into `bucket` and waits for it.
async fn upload_all(bucket: &bucket::Bucket, data: &Path) {
    let uploader = bucket::Uploader::new(bucket.clone(), data);
    uploader.reconcile().await.unwrap();
    let task = tokio::spawn(uploader.clone().run());
    uploader
        .drain(Instant::now() + Duration::from_secs(20))
        .await;
    task.abort();
    assert_eq!(uploader.stats().backlog_blocks(), 0);
}

fn merged_total(store: &Store) -> Vec<(u64, i64)> {
    let sel = crate::query::Selection {
        profile_type: TYPE.parse().unwrap(),
        selector: shared::labels::Selector::default(),
        start: i64::MIN,
        end: i64::MAX,
    };
    let rt = tokio::runtime::Handle::current();
    let merged = tokio::task::block_in_place(|| rt.block_on(crate::query::merge(store, &sel)));
    merged
        .unwrap()
        .into_iter()
        .map(|s| (s.stack, s.value))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_an_empty_dir_reads_another_ones_blocks_from_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Arc::new(Store::open(&tmp.path().join("a"), opts()).unwrap());
    let hour = 3_600_000;
    let t0 = now_ms() - 9 * hour;
    for (i, ts) in [1_000, 2_000, 3 * hour, 3 * hour + 5, 7 * hour]
        .into_iter()
        .enumerate()
    {
        a.write(batch(&a, "api", t0 + ts, 3 + i as u64)).unwrap();
        a.flush().unwrap();
    }
    a.compact().unwrap();
    let expected = merged_total(&a);
    assert!(!expected.is_empty());

    let bucket = folder_bucket(&tmp.path().join("bucket"));
    upload_all(&bucket, &tmp.path().join("a")).await;
    let b = Arc::new(Store::open(&tmp.path().join("b"), opts()).unwrap());
    let cache =
        cache::CachedStore::open(bucket.object_store(), &tmp.path().join("b/cache"), 1 << 20)
            .unwrap();
    let cache_stats = cache.stats();
    let base = crate::query::register_bucket("store-test-a", Arc::new(cache)).unwrap();
    let stats = Arc::new(bucket::UploadStats::default());
    let follower = follow::Follower::new(bucket.clone(), b.clone(), stats, base);
    let found = follower.refresh().await.unwrap();
    assert_eq!(found.remote, a.blocks().len(), "{found:?}");
    assert_eq!(merged_total(&b), expected, "the same stacks and values");
    let misses = cache_stats
        .misses
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(misses > 0);
    assert_eq!(merged_total(&b), expected, "again, from the read cache");
    assert_eq!(
        cache_stats
            .misses
            .load(std::sync::atomic::Ordering::Relaxed),
        misses,
        "nothing fetched twice"
    );
    // Beside blocks of its own: both are read (2 rows of values 1 and 2).
    b.write(batch(&b, "web", t0 + 4 * hour, 2)).unwrap();
    b.flush().unwrap();
    let sum = |stacks: &[(u64, i64)]| stacks.iter().map(|(_, v)| v).sum::<i64>();
    assert_eq!(sum(&merged_total(&b)), sum(&expected) + 3);
    // The node that wrote them reads none of its own blocks from the bucket.
    let own = follow::Follower::new(
        bucket,
        a.clone(),
        Arc::new(bucket::UploadStats::default()),
        "bucket://store-test-a/".into(),
    );
    assert_eq!(own.refresh().await.unwrap().remote, 0);
    assert_eq!(merged_total(&a), expected);
}
