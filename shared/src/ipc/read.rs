//! A small reader of Arrow IPC streams, for the stacks stream: the stream framing, the
//! flatbuffer headers (arrow-ipc's generated types, checked by flatbuffers' verifier),
//! and the column types that stream has (integers, UTF-8 strings, lists, structs, and
//! dictionary-encoded strings). Columns are read straight from the message bodies.
//!
//! It exists for the UI's size: arrow-ipc's `StreamReader` builds `ArrayRef`s through
//! arrow-array and arrow-data and links arrow-select's `concat`/`interleave` (for delta
//! dictionaries), about 300 KB of the WebAssembly bundle. Anything outside that subset
//! (other types, compressed bodies, big-endian streams) is a format error, never a panic.

use std::collections::HashMap;

use arrow_ipc::{Endianness, Message, MessageHeader, Type};

use super::IpcError;

fn format(detail: impl Into<String>) -> IpcError {
    IpcError::Format(detail.into())
}

/// The type of a column, as far as this reader goes.
#[derive(Debug)]
pub(super) enum Kind {
    /// A little-endian integer of this many bytes (2, 4 or 8).
    Int(usize),
    Utf8,
    List(Box<Spec>),
    Struct(Vec<Spec>),
}

/// A field of the schema.
#[derive(Debug)]
pub(super) struct Spec {
    pub(super) name: String,
    pub(super) kind: Kind,
    /// Dictionary id and key width in bytes, for a dictionary-encoded field (`kind` is
    /// then the type of the dictionary's values).
    pub(super) dictionary: Option<(i64, usize)>,
}

/// One column of one record batch, borrowed from the stream's bytes.
#[derive(Debug)]
pub(super) struct Column<'a> {
    pub(super) len: usize,
    validity: Option<&'a [u8]>,
    /// Integers: `[values]`; strings: `[offsets, data]`; lists: `[offsets]`.
    buffers: Vec<&'a [u8]>,
    pub(super) children: Vec<Column<'a>>,
}

impl<'a> Column<'a> {
    /// Whether row `i` is not null.
    pub(super) fn is_valid(&self, i: usize) -> bool {
        self.validity
            .is_none_or(|bits| bits.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1))
    }

    /// The integer of row `i` (its bits, zero-extended), `width` bytes wide.
    pub(super) fn int(&self, i: usize, width: usize) -> Result<u64, IpcError> {
        let bytes = self
            .buffers
            .first()
            .and_then(|b| b.get(i * width..(i + 1) * width))
            .ok_or_else(|| format(format!("integer row {i} is past its buffer")))?;
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(le))
    }

    /// Rows `from..to` of an unsigned 32-bit integer column.
    pub(super) fn u32s(&self, from: usize, to: usize) -> Result<Vec<u32>, IpcError> {
        let values = self
            .buffers
            .first()
            .filter(|_| from <= to && to <= self.len)
            .and_then(|b| b.get(from * 4..to * 4))
            .ok_or_else(|| format(format!("u32 rows {from}..{to} are past the column")))?;
        Ok(values
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// The child range of list (or string) row `i`.
    pub(super) fn range(&self, i: usize) -> Result<(usize, usize), IpcError> {
        let offset = |j: usize| {
            self.buffers
                .first()
                .and_then(|b| b.get(j * 4..j * 4 + 4))
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .and_then(|o| usize::try_from(o).ok())
                .ok_or_else(|| format(format!("offset {j} is missing or negative")))
        };
        let (from, to) = (offset(i)?, offset(i + 1)?);
        if from > to {
            return Err(format(format!("offsets of row {i} go backwards")));
        }
        if self.children.first().is_some_and(|child| to > child.len) {
            return Err(format(format!("list row {i} is past its items")));
        }
        Ok((from, to))
    }

    /// Every row of a string column (null rows are "").
    pub(super) fn strings(&self) -> Result<Vec<String>, IpcError> {
        let data = self.buffers.get(1).copied().unwrap_or_default();
        (0..self.len)
            .map(|i| {
                if !self.is_valid(i) {
                    return Ok(String::new());
                }
                let (from, to) = self.range(i)?;
                let bytes = data
                    .get(from..to)
                    .ok_or_else(|| format(format!("string {i} is past its data")))?;
                std::str::from_utf8(bytes)
                    .map(str::to_owned)
                    .map_err(|_| format(format!("string {i} is not UTF-8")))
            })
            .collect()
    }
}

/// A stream's schema and its record batches, dictionaries resolved by id.
#[derive(Debug, Default)]
pub(super) struct Stream<'a> {
    pub(super) fields: Vec<Spec>,
    pub(super) metadata: HashMap<String, String>,
    pub(super) dictionaries: HashMap<i64, Vec<String>>,
    /// Each batch's top-level columns, in schema order.
    pub(super) batches: Vec<Vec<Column<'a>>>,
}

/// Reads a whole stream: `0xFFFFFFFF`, a metadata length, a flatbuffer `Message`, its
/// body, … up to the end-of-stream marker (or the end of the bytes at a message boundary).
pub(super) fn read_stream(bytes: &[u8]) -> Result<Stream<'_>, IpcError> {
    let mut stream = Stream::default();
    let mut pos = 0;
    let mut seen_schema = false;
    while pos < bytes.len() {
        let mut len = read_i32(bytes, pos)?;
        pos += 4;
        if len == -1 {
            len = read_i32(bytes, pos)?;
            pos += 4;
        }
        if len == 0 {
            break;
        }
        let meta = usize::try_from(len)
            .ok()
            .and_then(|len| bytes.get(pos..pos + len))
            .ok_or_else(|| format("a message header is cut short"))?;
        pos += meta.len();
        let message = arrow_ipc::root_as_message(meta)
            .map_err(|e| format(format!("a message header is not valid: {e}")))?;
        let body = usize::try_from(message.bodyLength())
            .ok()
            .and_then(|len| bytes.get(pos..pos + len))
            .ok_or_else(|| format("a message body is cut short"))?;
        pos += body.len();
        if !seen_schema && message.header_type() != MessageHeader::Schema {
            return Err(format("the stream does not start with a schema"));
        }
        read_message(&mut stream, &message, body)?;
        seen_schema = true;
    }
    if !seen_schema {
        return Err(format("an empty stream"));
    }
    Ok(stream)
}

fn read_i32(bytes: &[u8], pos: usize) -> Result<i32, IpcError> {
    bytes
        .get(pos..pos + 4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .ok_or_else(|| format("the stream is cut short"))
}

fn read_message<'a>(
    stream: &mut Stream<'a>,
    message: &Message<'_>,
    body: &'a [u8],
) -> Result<(), IpcError> {
    match message.header_type() {
        MessageHeader::Schema => {
            let schema = message
                .header_as_schema()
                .ok_or_else(|| format("no schema"))?;
            if schema.endianness() != Endianness::Little {
                return Err(format("a big-endian stream"));
            }
            for kv in schema.custom_metadata().into_iter().flatten() {
                if let (Some(k), Some(v)) = (kv.key(), kv.value()) {
                    stream.metadata.insert(k.to_owned(), v.to_owned());
                }
            }
            stream.fields = schema
                .fields()
                .into_iter()
                .flatten()
                .map(|f| spec(&f))
                .collect::<Result<_, _>>()?;
        }
        MessageHeader::DictionaryBatch => {
            let dict = message
                .header_as_dictionary_batch()
                .ok_or_else(|| format("no dictionary batch"))?;
            let data = dict
                .data()
                .ok_or_else(|| format("a dictionary without data"))?;
            let value = Spec {
                name: "dictionary".into(),
                kind: Kind::Utf8,
                dictionary: None,
            };
            let column = read_batch(&data, std::slice::from_ref(&value), body)?
                .pop()
                .ok_or_else(|| format("an empty dictionary batch"))?;
            let strings = column.strings()?;
            let entry = stream.dictionaries.entry(dict.id()).or_default();
            if !dict.isDelta() {
                entry.clear();
            }
            entry.extend(strings);
        }
        MessageHeader::RecordBatch => {
            let batch = message
                .header_as_record_batch()
                .ok_or_else(|| format("no record batch"))?;
            let columns = read_batch(&batch, &stream.fields, body)?;
            stream.batches.push(columns);
        }
        other => return Err(format(format!("unexpected message {other:?}"))),
    }
    Ok(())
}

/// A schema field as a [`Spec`]; other types than this reader's are an error.
fn spec(field: &arrow_ipc::Field<'_>) -> Result<Spec, IpcError> {
    let name = field.name().unwrap_or_default().to_owned();
    let children: Vec<Spec> = field
        .children()
        .into_iter()
        .flatten()
        .map(|c| spec(&c))
        .collect::<Result<_, _>>()?;
    let kind = match field.type_type() {
        Type::Int => Kind::Int(int_width(field.type_as_int().map(|i| i.bitWidth()))?),
        Type::Utf8 => Kind::Utf8,
        Type::List => Kind::List(Box::new(
            children
                .into_iter()
                .next()
                .ok_or_else(|| format(format!("list {name} has no item field")))?,
        )),
        Type::Struct_ => Kind::Struct(children),
        other => return Err(format(format!("field {name} has type {other:?}"))),
    };
    let dictionary = match field.dictionary() {
        Some(d) => Some((
            d.id(),
            int_width(Some(d.indexType().map_or(32, |i| i.bitWidth())))?,
        )),
        None => None,
    };
    Ok(Spec {
        name,
        kind,
        dictionary,
    })
}

fn int_width(bits: Option<i32>) -> Result<usize, IpcError> {
    match bits {
        Some(16) => Ok(2),
        Some(32) => Ok(4),
        Some(64) => Ok(8),
        other => Err(format(format!("integers of {other:?} bits"))),
    }
}

/// The columns of one record batch: field nodes and buffers are taken depth-first.
fn read_batch<'a>(
    batch: &arrow_ipc::RecordBatch<'_>,
    fields: &[Spec],
    body: &'a [u8],
) -> Result<Vec<Column<'a>>, IpcError> {
    if batch.compression().is_some() {
        return Err(format("compressed record batches are not supported"));
    }
    let nodes = batch
        .nodes()
        .ok_or_else(|| format("a batch without nodes"))?;
    let buffers = batch
        .buffers()
        .ok_or_else(|| format("a batch without buffers"))?;
    let mut cursor = Cursor {
        nodes: nodes.iter().map(|n| (n.length(), n.null_count())).collect(),
        buffers: buffers.iter().map(|b| (b.offset(), b.length())).collect(),
        node: 0,
        buffer: 0,
        body,
    };
    fields.iter().map(|f| cursor.column(f)).collect()
}

/// Where a batch's depth-first walk over its nodes and buffers is.
struct Cursor<'a> {
    nodes: Vec<(i64, i64)>,
    buffers: Vec<(i64, i64)>,
    node: usize,
    buffer: usize,
    body: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn column(&mut self, spec: &Spec) -> Result<Column<'a>, IpcError> {
        let &(len, nulls) = self
            .nodes
            .get(self.node)
            .ok_or_else(|| format(format!("no field node for {}", spec.name)))?;
        self.node += 1;
        let len = usize::try_from(len).map_err(|_| format("a negative length"))?;
        let validity = self.buffer()?;
        let validity = (nulls != 0 && !validity.is_empty()).then_some(validity);
        let (count, children): (usize, &[Spec]) = match (&spec.kind, spec.dictionary) {
            (_, Some(_)) | (Kind::Int(_), None) => (1, &[]),
            (Kind::Utf8, None) => (2, &[]),
            (Kind::List(item), None) => (1, std::slice::from_ref(item.as_ref())),
            (Kind::Struct(fields), None) => (0, fields),
        };
        let buffers = (0..count)
            .map(|_| self.buffer())
            .collect::<Result<_, _>>()?;
        let children = children
            .iter()
            .map(|c| self.column(c))
            .collect::<Result<_, _>>()?;
        let column = Column {
            len,
            validity,
            buffers,
            children,
        };
        check_sizes(spec, &column)?;
        Ok(column)
    }

    fn buffer(&mut self) -> Result<&'a [u8], IpcError> {
        let &(offset, length) = self
            .buffers
            .get(self.buffer)
            .ok_or_else(|| format("fewer buffers than the schema needs"))?;
        self.buffer += 1;
        let (Ok(offset), Ok(length)) = (usize::try_from(offset), usize::try_from(length)) else {
            return Err(format("a negative buffer offset or length"));
        };
        self.body
            .get(offset..offset.saturating_add(length))
            .ok_or_else(|| format("a buffer is past the message body"))
    }
}

/// Checks that a column's buffers and children hold `len` rows, so that no length read
/// from the stream makes a reader allocate or loop past the bytes it was given.
fn check_sizes(spec: &Spec, column: &Column<'_>) -> Result<(), IpcError> {
    let len = column.len;
    let short = || {
        format(format!(
            "column {} is shorter than its {len} rows",
            spec.name
        ))
    };
    let has = |buffer: usize, bytes: Option<usize>| {
        let need = bytes.ok_or_else(short)?;
        let have = column.buffers.get(buffer).map_or(0, |b| b.len());
        if have < need { Err(short()) } else { Ok(()) }
    };
    if column
        .validity
        .is_some_and(|bits| bits.len() < len.div_ceil(8))
    {
        return Err(short());
    }
    let offsets = || {
        if len == 0 {
            Some(0)
        } else {
            len.checked_add(1)?.checked_mul(4)
        }
    };
    match (&spec.kind, spec.dictionary) {
        (_, Some((_, width))) => has(0, len.checked_mul(width)),
        (Kind::Int(width), None) => has(0, len.checked_mul(*width)),
        (Kind::Utf8, None) => has(0, offsets()),
        (Kind::List(_), None) => has(0, offsets()),
        (Kind::Struct(_), None) => {
            if column.children.is_empty() || column.children.iter().any(|c| c.len < len) {
                return Err(short());
            }
            Ok(())
        }
    }
}
