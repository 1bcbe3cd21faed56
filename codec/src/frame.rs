//! Write-ahead-log frames: payload length (u32 LE), CRC32 of the payload (u32 LE), then
//! the payload. A segment is frames back to back; [`Frames`] reads one, skipping bytes
//! that hold no intact frame (a torn append) up to the next intact one.

/// Bytes of a frame's header.
pub const HEADER: usize = 8;
/// A record larger than this is treated as corruption (ingest bodies are far smaller).
pub const MAX_RECORD: usize = 1 << 30;

/// `payload` framed: header then payload.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The payload of the frame at the start of `data`, if it is whole and intact.
pub fn next_record(data: &[u8]) -> Option<&[u8]> {
    let header = data.get(..HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > MAX_RECORD || len == 0 {
        return None;
    }
    let payload = data.get(HEADER..HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

/// How many bytes of `data` (which does not start with an intact frame) to skip to reach
/// the next intact frame, or its whole length when there is none.
pub fn resync(data: &[u8]) -> usize {
    (1..data.len())
        .find(|&i| next_record(&data[i..]).is_some())
        .unwrap_or(data.len())
}

/// What [`Frames`] finds next in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// An intact record's payload, at this offset of the segment.
    Record { offset: usize, payload: &'a [u8] },
    /// Bytes from this offset that frame no intact record, skipped.
    Skipped { offset: usize, len: usize },
}

/// The frames of one segment, in order.
#[derive(Debug)]
pub struct Frames<'a> {
    data: &'a [u8],
    offset: usize,
}

impl<'a> Frames<'a> {
    /// Reads the segment `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Frames { data, offset: 0 }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        let rest = self.data.get(self.offset..).filter(|r| !r.is_empty())?;
        let offset = self.offset;
        if let Some(payload) = next_record(rest) {
            self.offset += HEADER + payload.len();
            return Some(Item::Record { offset, payload });
        }
        let len = resync(rest);
        self.offset += len;
        Some(Item::Skipped { offset, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_back_and_garbage_between_them_skipped() {
        let mut segment = encode(b"one");
        segment.extend_from_slice(&[7, 0, 0, 0, 1, 2, 3]);
        segment.extend_from_slice(&encode(b"two"));
        let items: Vec<Item<'_>> = Frames::new(&segment).collect();
        assert_eq!(
            items,
            vec![
                Item::Record {
                    offset: 0,
                    payload: b"one"
                },
                Item::Skipped { offset: 11, len: 7 },
                Item::Record {
                    offset: 18,
                    payload: b"two"
                },
            ]
        );
    }

    #[test]
    fn a_flipped_bit_or_a_cut_frame_is_no_record() {
        let mut frame = encode(b"payload");
        assert_eq!(next_record(&frame), Some(&b"payload"[..]));
        assert_eq!(next_record(&frame[..frame.len() - 1]), None);
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert_eq!(next_record(&frame), None);
        assert_eq!(
            next_record(&encode(b"")),
            None,
            "empty payloads are never written"
        );
    }
}
