//! Store tests: durability across reopen, flush, compaction, retention, crash leftovers.

use super::*;
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
        b.meta.stack(&store.meta, i, &[i + 100]);
        cols.push(series, i, ts, i as i64 + 1, 10_000_000_000, 10_000_000);
    }
    b.rows.insert(TYPE.to_owned(), cols);
    b
}

fn total(store: &Store) -> (usize, i64) {
    let snap = store.snapshot(TYPE, i64::MIN, i64::MAX);
    let from_parts = snap
        .parts
        .iter()
        .flat_map(|p| table::read_part(p).unwrap().into_values().flatten());
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
    assert_eq!(store.meta.stack(3).unwrap(), Some(vec![103]));
}

#[test]
fn a_flush_moves_the_head_into_parquet_and_drops_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store.write(batch(&store, "api", 1_000, 10)).unwrap();
    store.write(batch(&store, "db", 2_000, 5)).unwrap();
    let part = store.flush().unwrap().expect("a part");
    assert_eq!(part.rows, 15);
    assert_eq!((part.min_ts, part.max_ts), (1_000, 2_000));
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
    store.compact().unwrap().expect("compacted");
    assert_eq!(store.sizes().parts, 1);
    assert_eq!(total(&store), (12, 30));
    let files = || fs::read_dir(dir.path().join("parts")).unwrap().count();
    assert_eq!(
        files(),
        4,
        "old parts wait for queries that may have planned with them"
    );
    store.empty_trash(true);
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

#[test]
fn crash_leftovers_are_cleaned_and_uncatalogued_parts_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), opts()).unwrap();
        store.write(batch(&store, "api", 1_000, 4)).unwrap();
    }
    // A flush that died after writing its temp file, and one that died after the rename
    // but before the catalog entry.
    let parts = dir.path().join("parts");
    fs::write(parts.join("half.parquet.tmp"), b"PAR1 half").unwrap();
    fs::write(parts.join("orphan.parquet"), b"not in the catalog").unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    assert!(!parts.join("half.parquet.tmp").exists());
    assert!(!parts.join("orphan.parquet").exists());
    assert_eq!(total(&store), (4, 10), "the WAL still has the rows");
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
