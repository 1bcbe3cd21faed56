//! The Arrow IPC encoding of what the query API streams: stack sets (`report=stacks`,
//! what the UI builds flame graphs from) and flame trees (`report=flamegraph&format=arrow`).
//!
//! # The stacks stream
//!
//! One Arrow IPC stream with the columns
//!
//! - `frames`: list of struct {`function`, `system_name`, `file`, `binary`, `build_id`
//!   (dictionary-encoded strings, null for ""), `line`, `address` (null for 0)}; only the
//!   first row of the stream holds the frame table (the n-th element is frame id n), every
//!   other row is null, so a stack row costs one offset here;
//! - `stack`: list of uint32 frame ids, **leaf first** like pprof (an empty list is the
//!   root's own value); null on the frame-table row;
//! - `value` (int64) and, for a diff, `baseline` (int64, side A; `value` is side B);
//! - `prefix` (uint32): how many root-most frames the stack's flame-tree path shares with
//!   the stack row before it.
//!
//! Stack rows come in flame-tree order ([`crate::flame::tree_order`]: sorted root-first by
//! frame name), so a reader builds the tree in one pass
//! ([`crate::flame::FlameTree::build_ordered`]). They come in batches of
//! [`STACK_ROWS_PER_BATCH`]; dictionaries are sent once.
//! The schema's metadata carries [`StacksMeta`] under `cinder.*` keys. Any Arrow reader
//! (pyarrow, arrow-js) reads it; [`decode_stacks`] turns it back into a [`StackSet`].

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    UInt16Array, UInt32Array, UInt64Array, types::UInt32Type,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, Schema, SchemaRef};

use crate::flame::{FlameTree, Frame, Stack, StackSet, tree_order};

mod read;

/// The media type of an Arrow IPC stream.
pub const CONTENT_TYPE: &str = "application/vnd.apache.arrow.stream";

/// Stack rows per record batch of the stacks stream.
pub const STACK_ROWS_PER_BATCH: usize = 65_536;

/// What travels beside the stacks, in the schema's metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StacksMeta {
    /// Unit of the values, e.g. `nanoseconds`, `bytes`, `count`.
    pub unit: String,
    /// Sum of all values of the selection, before trimming.
    pub total: i64,
    /// Value folded into "other" frames by `max_nodes`.
    pub trimmed_value: i64,
    /// Flame-tree nodes folded away by `max_nodes`.
    pub trimmed_nodes: u64,
    /// Whether stacks carry a baseline (a diff: value is side B, baseline side A).
    pub diff: bool,
    /// The profile type id of the selection.
    pub profile_type: String,
}

/// A decoded stacks stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StacksResponse {
    /// The stacks and their frames, in the stream's order.
    pub stacks: StackSet,
    /// Per stack, the root-most frames its path shares with the stack before it (the
    /// `prefix` column); empty when the stream has none.
    pub prefix: Vec<u32>,
    /// Unit, totals and trimming.
    pub meta: StacksMeta,
}

/// Why a stream could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// Arrow refused the bytes or the batch.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// The stream is Arrow but not a Cinder stacks stream.
    #[error("not a stacks stream: {0}")]
    Format(String),
}

const META_UNIT: &str = "cinder.unit";
const META_TOTAL: &str = "cinder.total";
const META_TRIMMED_VALUE: &str = "cinder.trimmed_value";
const META_TRIMMED_NODES: &str = "cinder.trimmed_nodes";
const META_DIFF: &str = "cinder.diff";
const META_PROFILE_TYPE: &str = "cinder.profile_type";

/// Names of the dictionary-encoded frame fields, in schema order.
const STRING_FIELDS: [&str; 5] = ["function", "system_name", "file", "binary", "build_id"];

fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
}

fn stack_item_field() -> FieldRef {
    Arc::new(Field::new("item", DataType::UInt32, false))
}

/// The fields of one frame.
fn frame_fields() -> Fields {
    let mut fields: Vec<Field> = STRING_FIELDS
        .iter()
        .map(|name| Field::new(*name, dictionary_type(), true))
        .collect();
    fields.push(Field::new("line", DataType::Int64, true));
    fields.push(Field::new("address", DataType::UInt64, true));
    Fields::from(fields)
}

fn frames_item_field() -> FieldRef {
    Arc::new(Field::new("item", DataType::Struct(frame_fields()), false))
}

/// The schema of the stacks stream; `baseline` only for a diff.
pub fn stacks_schema(meta: &StacksMeta) -> SchemaRef {
    let mut fields = vec![
        Field::new("frames", DataType::List(frames_item_field()), true),
        Field::new("stack", DataType::List(stack_item_field()), true),
        Field::new("value", DataType::Int64, true),
    ];
    if meta.diff {
        fields.push(Field::new("baseline", DataType::Int64, true));
    }
    fields.push(Field::new("prefix", DataType::UInt32, true));
    Arc::new(Schema::new_with_metadata(fields, meta_map(meta)))
}

fn meta_map(meta: &StacksMeta) -> HashMap<String, String> {
    HashMap::from([
        (META_UNIT.to_owned(), meta.unit.clone()),
        (META_TOTAL.to_owned(), meta.total.to_string()),
        (
            META_TRIMMED_VALUE.to_owned(),
            meta.trimmed_value.to_string(),
        ),
        (
            META_TRIMMED_NODES.to_owned(),
            meta.trimmed_nodes.to_string(),
        ),
        (META_DIFF.to_owned(), meta.diff.to_string()),
        (META_PROFILE_TYPE.to_owned(), meta.profile_type.clone()),
    ])
}

/// Writes `stacks` as a stacks stream into `writer`, one batch at a time (the frame
/// table, then stack batches of [`STACK_ROWS_PER_BATCH`], in flame-tree order); returns
/// the writer.
pub fn write_stacks<W: Write>(
    writer: W,
    stacks: &StackSet,
    meta: &StacksMeta,
) -> Result<W, IpcError> {
    write_stacks_batched(writer, stacks, meta, STACK_ROWS_PER_BATCH)
}

/// [`write_stacks`] with a chosen number of stack rows per batch.
pub fn write_stacks_batched<W: Write>(
    writer: W,
    stacks: &StackSet,
    meta: &StacksMeta,
    rows_per_batch: usize,
) -> Result<W, IpcError> {
    let (order, prefix) = tree_order(stacks);
    write_stacks_ordered(writer, stacks, (&order, &prefix), meta, rows_per_batch)
}

/// [`write_stacks_batched`] with the flame-tree order of `stacks` already computed:
/// `order` and `prefix` must be what [`tree_order`] returns for `stacks` (a reader
/// checks the prefixes, and builds its tree the slow way if they are wrong).
pub fn write_stacks_ordered<W: Write>(
    writer: W,
    stacks: &StackSet,
    (order, prefix): (&[u32], &[u32]),
    meta: &StacksMeta,
    rows_per_batch: usize,
) -> Result<W, IpcError> {
    if order.len() != stacks.stacks.len() || prefix.len() != order.len() {
        return Err(IpcError::Format(
            "the order does not cover the stacks".into(),
        ));
    }
    let schema = stacks_schema(meta);
    let mut out = StreamWriter::try_new(writer, &schema)?;
    let table = frame_table(&stacks.frames)?;
    out.write(&frame_batch(&schema, &table)?)?;
    let ordered = order
        .iter()
        .map(|&i| stacks.stacks.get(i as usize))
        .collect::<Option<Vec<&Stack>>>()
        .ok_or_else(|| IpcError::Format("the order is past the stacks".into()))?;
    let rows = rows_per_batch.max(1);
    for (chunk, prefix) in ordered.chunks(rows).zip(prefix.chunks(rows)) {
        out.write(&stack_batch(&schema, &table, chunk, prefix, meta.diff)?)?;
    }
    out.finish()?;
    Ok(out.into_inner()?)
}

/// All frames as one struct array with dictionary-encoded strings.
fn frame_table(frames: &[Frame]) -> Result<StructArray, IpcError> {
    let strings: [fn(&Frame) -> &str; 5] = [
        |f| &f.function,
        |f| &f.system_name,
        |f| &f.file,
        |f| &f.binary,
        |f| &f.build_id,
    ];
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(7);
    for field in strings {
        let (keys, values) = dictionary_keys(frames.iter().map(field));
        columns.push(Arc::new(DictionaryArray::<UInt32Type>::try_new(
            UInt32Array::from(keys),
            values,
        )?));
    }
    let lines: Int64Array = frames.iter().map(|f| nonzero(f.line)).collect();
    let addresses: UInt64Array = frames
        .iter()
        .map(|f| (f.address != 0).then_some(f.address))
        .collect();
    columns.push(Arc::new(lines));
    columns.push(Arc::new(addresses));
    Ok(StructArray::try_new(frame_fields(), columns, None)?)
}

/// The one-row batch holding the frame table.
fn frame_batch(schema: &SchemaRef, table: &StructArray) -> Result<RecordBatch, IpcError> {
    let frames = ListArray::try_new(
        frames_item_field(),
        OffsetBuffer::from_lengths([table.len()]),
        Arc::new(table.clone()),
        None,
    )?;
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(frames),
        Arc::new(ListArray::new_null(stack_item_field(), 1)),
        Arc::new(Int64Array::new_null(1)),
    ];
    if schema.column_with_name("baseline").is_some() {
        columns.push(Arc::new(Int64Array::new_null(1)));
    }
    columns.push(Arc::new(UInt32Array::new_null(1)));
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// A batch of stack rows; their `frames` are null lists over an empty slice of the
/// frame table, so the dictionaries stay the same and are not sent again.
fn stack_batch(
    schema: &SchemaRef,
    table: &StructArray,
    stacks: &[&Stack],
    prefix: &[u32],
    diff: bool,
) -> Result<RecordBatch, IpcError> {
    let rows = stacks.len();
    let frames = ListArray::try_new(
        frames_item_field(),
        OffsetBuffer::new_zeroed(rows),
        Arc::new(table.slice(0, 0)),
        Some(NullBuffer::new_null(rows)),
    )?;
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(frames),
        Arc::new(stack_list(stacks)?),
        Arc::new(Int64Array::from_iter_values(stacks.iter().map(|s| s.value))),
    ];
    if diff {
        columns.push(Arc::new(Int64Array::from_iter_values(
            stacks.iter().map(|s| s.baseline),
        )));
    }
    columns.push(Arc::new(UInt32Array::from(prefix.to_vec())));
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The stacks' frame ids as a list column.
fn stack_list(stacks: &[&Stack]) -> Result<ListArray, IpcError> {
    let total: usize = stacks.iter().map(|s| s.frames.len()).sum();
    let mut ids = Vec::with_capacity(total);
    for stack in stacks {
        ids.extend_from_slice(&stack.frames);
    }
    let offsets = OffsetBuffer::from_lengths(stacks.iter().map(|s| s.frames.len()));
    let values = UInt32Array::new(ScalarBuffer::from(ids), None);
    Ok(ListArray::try_new(
        stack_item_field(),
        offsets,
        Arc::new(values),
        None,
    )?)
}

/// Deduplicates strings into dictionary values; "" becomes a null key.
fn dictionary_keys<'a>(strings: impl Iterator<Item = &'a str>) -> (Vec<Option<u32>>, ArrayRef) {
    let mut index: HashMap<&'a str, u32> = HashMap::new();
    let mut values: Vec<&'a str> = Vec::new();
    let keys = strings
        .map(|s| {
            if s.is_empty() {
                return None;
            }
            Some(*index.entry(s).or_insert_with(|| {
                values.push(s);
                values.len() as u32 - 1
            }))
        })
        .collect();
    (keys, Arc::new(StringArray::from(values)))
}

fn nonzero(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

/// Reads a stacks stream written by [`write_stacks`] (with [`read`], not arrow-ipc's
/// `StreamReader`: see there why).
pub fn decode_stacks(bytes: &[u8]) -> Result<StacksResponse, IpcError> {
    let stream = read::read_stream(bytes)?;
    let meta = read_meta(&stream.metadata)?;
    let position = |name: &str| {
        stream
            .fields
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| IpcError::Format(format!("column {name} is missing")))
    };
    let (frames, stack, value) = (position("frames")?, position("stack")?, position("value")?);
    let baseline = if meta.diff {
        Some(position("baseline")?)
    } else {
        None
    };
    let prefix = prefix_column(&stream.fields)?;
    let frame_fields = frame_specs(&stream.fields[frames])?;
    let mut stacks = StackSet::default();
    let mut prefixes = Vec::new();
    for batch in &stream.batches {
        read_frame_rows(&batch[frames], &frame_fields, &stream, &mut stacks.frames)?;
        let columns = StackColumns {
            stack: &batch[stack],
            value: &batch[value],
            baseline: baseline.map(|b| &batch[b]),
            prefix: prefix.map(|p| &batch[p]),
        };
        read_stack_rows(&columns, &mut stacks.stacks, &mut prefixes)?;
    }
    let frames = stacks.frames.len();
    let bad = stacks
        .stacks
        .iter()
        .flat_map(|s| s.frames.iter())
        .find(|&&id| id as usize >= frames);
    if let Some(id) = bad {
        return Err(IpcError::Format(format!(
            "frame id {id} out of range ({frames} frames)"
        )));
    }
    Ok(StacksResponse {
        stacks,
        prefix: prefixes,
        meta,
    })
}

/// Where the optional `prefix` column is (older streams have none).
fn prefix_column(fields: &[read::Spec]) -> Result<Option<usize>, IpcError> {
    let Some(at) = fields.iter().position(|f| f.name == "prefix") else {
        return Ok(None);
    };
    match fields[at].kind {
        read::Kind::Int(4) if fields[at].dictionary.is_none() => Ok(Some(at)),
        _ => Err(IpcError::Format("prefix is not a 4-byte integer".into())),
    }
}

fn read_meta(md: &HashMap<String, String>) -> Result<StacksMeta, IpcError> {
    let text = |key: &str| {
        md.get(key)
            .cloned()
            .ok_or_else(|| IpcError::Format(format!("missing schema metadata {key}")))
    };
    let number = |key: &str| -> Result<i64, IpcError> {
        text(key)?
            .parse()
            .map_err(|_| IpcError::Format(format!("{key} is not a number")))
    };
    Ok(StacksMeta {
        unit: text(META_UNIT)?,
        total: number(META_TOTAL)?,
        trimmed_value: number(META_TRIMMED_VALUE)?,
        trimmed_nodes: number(META_TRIMMED_NODES)?.max(0) as u64,
        diff: text(META_DIFF)? == "true",
        profile_type: text(META_PROFILE_TYPE)?,
    })
}

/// Where each frame field is in the `frames` item struct: the five dictionary string
/// fields (dictionary id, key width), then `line` and `address`.
struct FrameFields {
    strings: [(usize, i64, usize); 5],
    line: usize,
    address: usize,
}

fn frame_specs(frames: &read::Spec) -> Result<FrameFields, IpcError> {
    let bad = |what: &str| IpcError::Format(format!("frames: {what}"));
    let read::Kind::List(item) = &frames.kind else {
        return Err(bad("not a list"));
    };
    let read::Kind::Struct(fields) = &item.kind else {
        return Err(bad("items are not structs"));
    };
    let find = |name: &str| {
        fields
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| bad(&format!("no field {name}")))
    };
    let mut strings = [(0, 0, 0); 5];
    for (slot, name) in strings.iter_mut().zip(STRING_FIELDS) {
        let at = find(name)?;
        let (id, width) = fields[at]
            .dictionary
            .filter(|_| matches!(fields[at].kind, read::Kind::Utf8))
            .ok_or_else(|| bad(&format!("{name} is not a dictionary of strings")))?;
        *slot = (at, id, width);
    }
    let int = |name: &str, width: usize| {
        let at = find(name)?;
        match fields[at].kind {
            read::Kind::Int(w) if w == width && fields[at].dictionary.is_none() => Ok(at),
            _ => Err(bad(&format!("{name} is not a {}-byte integer", width))),
        }
    };
    Ok(FrameFields {
        strings,
        line: int("line", 8)?,
        address: int("address", 8)?,
    })
}

/// Appends the frames of the batch's non-null `frames` rows.
fn read_frame_rows(
    lists: &read::Column<'_>,
    fields: &FrameFields,
    stream: &read::Stream<'_>,
    frames: &mut Vec<Frame>,
) -> Result<(), IpcError> {
    let Some(table) = lists.children.first() else {
        return Err(IpcError::Format("frames: no item column".into()));
    };
    let child = |at: usize| {
        table
            .children
            .get(at)
            .ok_or_else(|| IpcError::Format("frames: a field column is missing".into()))
    };
    let empty = Vec::new();
    let mut strings = Vec::with_capacity(5);
    for &(at, id, width) in &fields.strings {
        let values = stream.dictionaries.get(&id).unwrap_or(&empty);
        strings.push((child(at)?, values, width));
    }
    let (line, address) = (child(fields.line)?, child(fields.address)?);
    let text = |i: usize, field: usize| -> Result<String, IpcError> {
        let (keys, values, width) = strings[field];
        if !keys.is_valid(i) {
            return Ok(String::new());
        }
        let key = keys.int(i, width)? as usize;
        Ok(values.get(key).cloned().unwrap_or_default())
    };
    let int = |column: &read::Column<'_>, i: usize| -> Result<u64, IpcError> {
        if column.is_valid(i) {
            column.int(i, 8)
        } else {
            Ok(0)
        }
    };
    for row in (0..lists.len).filter(|&r| lists.is_valid(r)) {
        let (from, to) = lists.range(row)?;
        frames.reserve(to - from);
        for i in from..to {
            frames.push(Frame {
                function: text(i, 0)?,
                system_name: text(i, 1)?,
                file: text(i, 2)?,
                line: int(line, i)? as i64,
                binary: text(i, 3)?,
                build_id: text(i, 4)?,
                address: int(address, i)?,
            });
        }
    }
    Ok(())
}

/// The stack columns of one batch.
struct StackColumns<'b, 'a> {
    stack: &'b read::Column<'a>,
    value: &'b read::Column<'a>,
    baseline: Option<&'b read::Column<'a>>,
    prefix: Option<&'b read::Column<'a>>,
}

/// Appends the stacks of the batch's non-null `stack` rows, and their prefixes when the
/// stream has them (a null prefix is `u32::MAX`, which no tree build accepts).
fn read_stack_rows(
    columns: &StackColumns<'_, '_>,
    stacks: &mut Vec<Stack>,
    prefixes: &mut Vec<u32>,
) -> Result<(), IpcError> {
    let StackColumns {
        stack,
        value,
        baseline,
        prefix,
    } = *columns;
    let valid: Vec<usize> = (0..stack.len).filter(|&r| stack.is_valid(r)).collect();
    if valid.is_empty() {
        return Ok(());
    }
    let ids = stack
        .children
        .first()
        .ok_or_else(|| IpcError::Format("stack: no item column".into()))?;
    stacks.reserve(valid.len());
    for row in valid {
        let (from, to) = stack.range(row)?;
        stacks.push(Stack {
            frames: ids.u32s(from, to)?,
            value: value.int(row, 8)? as i64,
            baseline: baseline.map_or(Ok(0), |b| b.int(row, 8))? as i64,
        });
        if let Some(prefix) = prefix {
            let shared = if prefix.is_valid(row) {
                prefix.int(row, 4)? as u32
            } else {
                u32::MAX
            };
            prefixes.push(shared);
        }
    }
    Ok(())
}

/// Writes a flame tree as one Arrow IPC stream: one row per node, breadth-first (row =
/// node id), with `function`, `file`, `binary` (dictionary strings; `function` is the
/// display name), `parent`, `depth`, `total`, `self` and, for a diff, `baseline_total`
/// and `baseline_self`. Metadata as for stacks.
pub fn write_flame_tree<W: Write>(
    writer: W,
    tree: &FlameTree,
    meta: &StacksMeta,
) -> Result<W, IpcError> {
    let mut fields = vec![
        Field::new("function", dictionary_type(), true),
        Field::new("file", dictionary_type(), true),
        Field::new("binary", dictionary_type(), true),
        Field::new("parent", DataType::UInt32, false),
        Field::new("depth", DataType::UInt16, false),
        Field::new("total", DataType::Int64, false),
        Field::new("self", DataType::Int64, false),
    ];
    if meta.diff {
        fields.push(Field::new("baseline_total", DataType::Int64, false));
        fields.push(Field::new("baseline_self", DataType::Int64, false));
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, meta_map(meta)));
    let nodes = tree.nodes();
    let names: Vec<String> = tree
        .frames()
        .iter()
        .map(|f| f.display_name().into_owned())
        .collect();
    let node_frames = || nodes.iter().map(|n| &tree.frames()[n.frame as usize]);
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (keys, values) in [
        dictionary_keys(nodes.iter().map(|n| names[n.frame as usize].as_str())),
        dictionary_keys(node_frames().map(|f| f.file.as_str())),
        dictionary_keys(node_frames().map(|f| f.binary.as_str())),
    ] {
        columns.push(Arc::new(DictionaryArray::<UInt32Type>::try_new(
            UInt32Array::from(keys),
            values,
        )?));
    }
    columns.push(Arc::new(UInt32Array::from_iter_values(
        nodes.iter().map(|n| n.parent),
    )));
    columns.push(Arc::new(UInt16Array::from_iter_values(
        nodes.iter().map(|n| n.depth),
    )));
    let int64 = |f: fn(&crate::flame::Node) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(nodes.iter().map(f)))
    };
    columns.push(int64(|n| n.total));
    columns.push(int64(|n| n.self_value));
    if meta.diff {
        columns.push(int64(|n| n.baseline_total));
        columns.push(int64(|n| n.baseline_self));
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let mut out = StreamWriter::try_new(writer, &schema)?;
    out.write(&batch)?;
    out.finish()?;
    Ok(out.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_ipc::reader::StreamReader;

    /// A typed column, or a format error naming it.
    fn downcast<'a, T: Array + 'static>(
        array: Option<&'a ArrayRef>,
        name: &str,
    ) -> Result<&'a T, IpcError> {
        array
            .and_then(|c| c.as_any().downcast_ref::<T>())
            .ok_or_else(|| IpcError::Format(format!("column {name} is missing or mistyped")))
    }

    fn column<'a, T: Array + 'static>(
        batch: &'a RecordBatch,
        name: &str,
    ) -> Result<&'a T, IpcError> {
        downcast(batch.column_by_name(name), name)
    }

    /// One dictionary string field, resolved per row (null → "").
    struct StringColumn<'a> {
        keys: &'a UInt32Array,
        values: &'a StringArray,
    }

    impl<'a> StringColumn<'a> {
        fn of(array: Option<&'a ArrayRef>, name: &str) -> Result<Self, IpcError> {
            let dict = downcast::<DictionaryArray<UInt32Type>>(array, name)?;
            let values = dict
                .values()
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| IpcError::Format(format!("{name} values are not strings")))?;
            Ok(StringColumn {
                keys: dict.keys(),
                values,
            })
        }

        fn get(&self, row: usize) -> String {
            if self.keys.is_null(row) {
                return String::new();
            }
            let key = self.keys.value(row) as usize;
            if key < self.values.len() {
                self.values.value(key).to_owned()
            } else {
                String::new()
            }
        }
    }

    use crate::flame::TreeOptions;

    fn sample() -> StackSet {
        StackSet {
            frames: vec![
                Frame {
                    function: "main.work".into(),
                    file: "main.go".into(),
                    line: 12,
                    binary: "app".into(),
                    build_id: "abc".into(),
                    ..Frame::default()
                },
                Frame::named("main.main"),
                Frame {
                    binary: "libc.so.6".into(),
                    address: 0x4a2f,
                    ..Frame::default()
                },
                Frame {
                    function: "main.work".into(),
                    system_name: "_main_work".into(),
                    file: "main.go".into(),
                    line: 40,
                    binary: "app".into(),
                    ..Frame::default()
                },
            ],
            stacks: vec![
                Stack {
                    frames: vec![0, 1],
                    value: 10,
                    baseline: 4,
                },
                Stack {
                    frames: vec![2, 3, 1],
                    value: 5,
                    baseline: 0,
                },
                Stack {
                    frames: vec![],
                    value: 1,
                    baseline: 2,
                },
            ],
        }
    }

    /// `set` with its stacks in the flame-tree order the stream has them in.
    fn in_tree_order(set: &StackSet) -> StackSet {
        let (order, _) = crate::flame::tree_order(set);
        StackSet {
            frames: set.frames.clone(),
            stacks: order
                .iter()
                .map(|&i| set.stacks[i as usize].clone())
                .collect(),
        }
    }

    fn meta(diff: bool) -> StacksMeta {
        StacksMeta {
            unit: "nanoseconds".into(),
            total: 16,
            trimmed_value: 3,
            trimmed_nodes: 2,
            diff,
            profile_type: "process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta".into(),
        }
    }

    #[test]
    fn stacks_round_trip_in_many_batches() {
        let mut set = sample();
        for diff in [false, true] {
            let bytes = write_stacks_batched(Vec::new(), &set, &meta(diff), 2).unwrap();
            let back = decode_stacks(&bytes).unwrap();
            assert_eq!(back.meta, meta(diff));
            if !diff {
                set.stacks.iter_mut().for_each(|s| s.baseline = 0);
            }
            assert_eq!(back.stacks, in_tree_order(&set));
            set = sample();
        }
    }

    #[test]
    fn dictionaries_are_sent_once() {
        let mut set = sample();
        set.stacks = (0..1000)
            .map(|i| Stack {
                frames: vec![0, 1],
                value: i,
                baseline: 0,
            })
            .collect();
        let few = write_stacks_batched(Vec::new(), &set, &meta(false), 1000).unwrap();
        let many = write_stacks_batched(Vec::new(), &set, &meta(false), 100).unwrap();
        // Nine more batch headers, but no dictionary batch repeated.
        let needle = b"main.work";
        let copies = many.windows(needle.len()).filter(|w| w == needle).count();
        assert_eq!(copies, 1);
        let per_batch = (many.len() - few.len()) / 9;
        assert!(per_batch < 1000, "{per_batch} bytes per extra batch");
        assert_eq!(decode_stacks(&many).unwrap().stacks, in_tree_order(&set));
    }

    #[test]
    fn prefixes_build_the_same_tree() {
        let bytes = write_stacks_batched(Vec::new(), &sample(), &meta(true), 2).unwrap();
        let back = decode_stacks(&bytes).unwrap();
        // "" first, then main;work and main;work;0x4a2f share "main" and "main;work".
        assert_eq!(back.prefix, [0, 0, 2]);
        let tree = FlameTree::build_ordered(&back.stacks, &back.prefix);
        assert_eq!(
            tree,
            Some(FlameTree::build(&sample(), TreeOptions::default()))
        );
    }

    #[test]
    fn empty_set_round_trips() {
        let bytes = write_stacks(Vec::new(), &StackSet::default(), &meta(false)).unwrap();
        let back = decode_stacks(&bytes).unwrap();
        assert_eq!(back.stacks, StackSet::default());
    }

    #[test]
    fn garbage_and_foreign_streams_are_errors() {
        assert!(decode_stacks(b"not arrow at all").is_err());
        let bytes = write_stacks(Vec::new(), &sample(), &meta(false)).unwrap();
        assert!(decode_stacks(&bytes[..bytes.len() / 2]).is_err());
        let mut bad = sample();
        bad.stacks[0].frames.push(99);
        let bytes = write_stacks(Vec::new(), &bad, &meta(false)).unwrap();
        let err = decode_stacks(&bytes).unwrap_err().to_string();
        assert!(err.contains("frame id 99 out of range"), "{err}");
    }

    #[test]
    fn every_cut_of_a_stream_is_an_answer_not_a_panic() {
        let bytes = write_stacks_batched(Vec::new(), &sample(), &meta(true), 2).unwrap();
        let whole = decode_stacks(&bytes).unwrap();
        for cut in 0..bytes.len() {
            if let Ok(part) = decode_stacks(&bytes[..cut]) {
                assert!(part.stacks.stacks.len() <= whole.stacks.stacks.len());
            }
        }
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
            let _ = decode_stacks(&flipped);
            flipped[i] ^= 0x5a;
        }
    }

    #[test]
    fn streams_of_other_types_are_format_errors() {
        let schema = Arc::new(Schema::new_with_metadata(
            vec![Field::new("value", DataType::Float64, true)],
            meta_map(&meta(false)),
        ));
        let mut out = StreamWriter::try_new(Vec::new(), &schema).unwrap();
        out.finish().unwrap();
        let err = decode_stacks(&out.into_inner().unwrap()).unwrap_err();
        assert!(err.to_string().contains("field value has type"), "{err}");
        let tree = FlameTree::build(&sample(), TreeOptions::default());
        let bytes = write_flame_tree(Vec::new(), &tree, &meta(false)).unwrap();
        let err = decode_stacks(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("column frames is missing"),
            "{err}"
        );
    }

    #[test]
    fn flame_tree_stream_has_one_row_per_node() {
        let tree = FlameTree::build(&sample(), TreeOptions::default());
        let bytes = write_flame_tree(Vec::new(), &tree, &meta(true)).unwrap();
        let reader = StreamReader::try_new(std::io::Cursor::new(&bytes[..]), None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), tree.len());
        let total = column::<Int64Array>(batch, "total").unwrap();
        assert_eq!(total.value(0), 16);
        let names = StringColumn::of(batch.column_by_name("function"), "function").unwrap();
        let found: Vec<String> = (0..batch.num_rows()).map(|r| names.get(r)).collect();
        assert!(found.contains(&"0x4a2f".to_owned()), "{found:?}");
        assert!(found.contains(&"main.work".to_owned()));
        let baseline = column::<Int64Array>(batch, "baseline_total").unwrap();
        assert_eq!(baseline.value(0), 6);
    }
}
