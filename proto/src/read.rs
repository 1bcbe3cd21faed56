//! Turning an untrusted request or scrape body into a [`Profile`], with a hard size limit.

use std::{
    borrow::Cow,
    io::{self, Read},
};

use flate2::read::MultiGzDecoder;
use prost::Message;

use crate::Profile;

/// Why a body could not be read as a pprof profile.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body, or the payload inside its gzip wrapper, has no bytes.
    #[error("empty profile body")]
    Empty,
    /// The body is, or decompresses to, more than the allowed number of bytes.
    #[error("profile exceeds the size limit of {limit} bytes (uncompressed)")]
    TooLarge {
        /// The limit that was exceeded, in uncompressed bytes.
        limit: usize,
    },
    /// The body starts with the gzip magic but is not a valid gzip stream.
    #[error("invalid gzip data: {0}")]
    Gzip(#[source] io::Error),
    /// The (decompressed) bytes are not a valid pprof protobuf message.
    #[error("invalid pprof protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Whether `body` starts with the gzip magic bytes `1f 8b`.
///
/// This is how [`read`] tells gzip from raw protobuf. The check is unambiguous: a protobuf
/// message cannot start with `0x1f` (field 3 with the invalid wire type 7).
pub fn is_gzip(body: &[u8]) -> bool {
    body.starts_with(&[0x1f, 0x8b])
}

/// Reads a pprof profile from `body`, which is gzip-compressed (detected by its magic bytes,
/// see [`is_gzip`], possibly several concatenated gzip members) or raw protobuf.
///
/// At most `max_uncompressed` bytes of protobuf are accepted: a larger raw body, or a gzip
/// stream that inflates to more, fails with [`ReadError::TooLarge`]. Decompression stops as soon
/// as the limit is passed and the output buffer never grows past `max_uncompressed` bytes
/// (plus a 64 KiB scratch buffer), so a gzip bomb costs at most about the limit in memory and
/// the time to inflate that much.
///
/// The result is only decoded, not checked: call [`Profile::validate`] (or
/// [`Profile::index`]) before trusting ids and string indexes.
pub fn read(body: &[u8], max_uncompressed: usize) -> Result<Profile, ReadError> {
    decode(&inflate(body, max_uncompressed)?)
}

/// The protobuf bytes of `body`: inflated when it is gzip (see [`read`] for the limit),
/// else `body` itself, refused when over `max_uncompressed` or empty.
pub fn inflate(body: &[u8], max_uncompressed: usize) -> Result<Cow<'_, [u8]>, ReadError> {
    if body.is_empty() {
        return Err(ReadError::Empty);
    }
    let raw = if is_gzip(body) {
        Cow::Owned(gunzip_limited(body, max_uncompressed)?)
    } else if body.len() > max_uncompressed {
        return Err(ReadError::TooLarge {
            limit: max_uncompressed,
        });
    } else {
        Cow::Borrowed(body)
    };
    if raw.is_empty() {
        return Err(ReadError::Empty);
    }
    Ok(raw)
}

/// Decodes uncompressed protobuf bytes (from [`inflate`]) into a [`Profile`].
pub fn decode(raw: &[u8]) -> Result<Profile, ReadError> {
    if raw.is_empty() {
        return Err(ReadError::Empty);
    }
    Ok(Profile::decode(raw)?)
}

/// Size of the scratch buffer decompressed bytes pass through.
const CHUNK: usize = 64 * 1024;

/// Inflates `body` (gzip, all members) into a buffer of at most `limit` bytes.
fn gunzip_limited(body: &[u8], limit: usize) -> Result<Vec<u8>, ReadError> {
    read_limited(
        MultiGzDecoder::new(body),
        limit,
        body.len().saturating_mul(4),
    )
    .map_err(|e| match e {
        LimitedReadError::TooLarge => ReadError::TooLarge { limit },
        LimitedReadError::Io(e) => ReadError::Gzip(e),
    })
}

#[derive(Debug)]
enum LimitedReadError {
    TooLarge,
    Io(io::Error),
}

/// Reads `reader` to its end into a vector whose capacity never exceeds `limit`, pulling at
/// most `limit + 1` bytes from the reader in total. `size_hint` sizes the first allocation.
fn read_limited<R: Read>(
    mut reader: R,
    limit: usize,
    size_hint: usize,
) -> Result<Vec<u8>, LimitedReadError> {
    let mut out: Vec<u8> = Vec::with_capacity(size_hint.min(limit));
    let mut chunk = vec![0u8; CHUNK.min(limit.saturating_add(1))];
    loop {
        // Invariant: out.len() <= limit, so this never underflows; asking for one byte past
        // the limit is how we tell "exactly at the limit" from "over it".
        let room = (limit - out.len()).saturating_add(1).min(chunk.len());
        let n = match reader.read(&mut chunk[..room]) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LimitedReadError::Io(e)),
        };
        if n > limit - out.len() {
            return Err(LimitedReadError::TooLarge);
        }
        if out.capacity() - out.len() < n {
            // Grow geometrically, but never past the limit.
            let target = out
                .capacity()
                .saturating_mul(2)
                .max(out.len() + n)
                .min(limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use std::time::{Duration, Instant};

    const MIB: usize = 1024 * 1024;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn valid_bytes() -> Vec<u8> {
        crate::test_util::valid_profile().encode_to_vec()
    }

    #[test]
    fn raw_and_gzip_bodies_read_the_same() {
        let raw = valid_bytes();
        let expected = crate::test_util::valid_profile();
        assert_eq!(read(&raw, 1 << 20).unwrap(), expected);
        let gz = gzip(&raw);
        assert!(is_gzip(&gz) && !is_gzip(&raw));
        assert_eq!(read(&gz, 1 << 20).unwrap(), expected);
    }

    #[test]
    fn inflate_passes_raw_bytes_and_stops_bombs() {
        assert_eq!(*inflate(b"a;b 1", 16).unwrap(), *b"a;b 1");
        assert_eq!(*inflate(&gzip(b"a;b 1"), 16).unwrap(), *b"a;b 1");
        let bomb = gzip(&vec![b'x'; 4 * MIB]);
        assert!(matches!(
            inflate(&bomb, MIB),
            Err(ReadError::TooLarge { limit }) if limit == MIB
        ));
        assert!(matches!(
            inflate(&[b'x'; 17], 16),
            Err(ReadError::TooLarge { .. })
        ));
    }

    #[test]
    fn multi_member_gzip_is_concatenated() {
        let raw = valid_bytes();
        let (a, b) = raw.split_at(raw.len() / 2);
        let mut gz = gzip(a);
        gz.extend(gzip(b));
        assert_eq!(
            read(&gz, 1 << 20).unwrap(),
            crate::test_util::valid_profile()
        );
    }

    #[test]
    fn limit_is_exact() {
        let raw = valid_bytes();
        let gz = gzip(&raw);
        assert!(read(&raw, raw.len()).is_ok());
        assert!(read(&gz, raw.len()).is_ok());
        for body in [&raw, &gz] {
            let err = read(body, raw.len() - 1).unwrap_err();
            assert!(
                matches!(err, ReadError::TooLarge { limit } if limit == raw.len() - 1),
                "{err:?}"
            );
        }
        assert!(matches!(
            read(&gz, 0).unwrap_err(),
            ReadError::TooLarge { limit: 0 }
        ));
    }

    #[test]
    fn empty_bodies_are_rejected() {
        assert!(matches!(read(&[], 100).unwrap_err(), ReadError::Empty));
        let err = read(&gzip(&[]), 100).unwrap_err();
        assert!(matches!(err, ReadError::Empty));
        assert_eq!(err.to_string(), "empty profile body");
    }

    #[test]
    fn gzip_bomb_stops_at_the_limit() {
        // 200 MiB of zeros in one gzip member (about 200 KiB compressed).
        let zeros = vec![0u8; MIB];
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        for _ in 0..200 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 2 * MIB, "bomb is {} bytes", bomb.len());

        let start = Instant::now();
        let err = read(&bomb, MIB).unwrap_err();
        let took = start.elapsed();
        assert!(
            matches!(err, ReadError::TooLarge { limit } if limit == MIB),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "profile exceeds the size limit of 1048576 bytes (uncompressed)"
        );
        // Inflating 1 MiB takes milliseconds even unoptimised; all 200 MiB would take far longer.
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    #[test]
    fn multi_member_gzip_bomb_stops_at_the_limit() {
        let member = gzip(&vec![0u8; MIB]);
        let bomb: Vec<u8> = std::iter::repeat_n(member.as_slice(), 200)
            .flatten()
            .copied()
            .collect();
        let err = read(&bomb, 3 * MIB / 2).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn read_limited_never_allocates_past_the_limit() {
        let data = vec![7u8; 3 * CHUNK + 17];
        for limit in [data.len(), data.len() + 1, 10 * data.len()] {
            for hint in [0, 1, data.len() / 2, usize::MAX] {
                let out = read_limited(data.as_slice(), limit, hint).unwrap();
                assert_eq!(out, data);
                assert!(
                    out.capacity() <= limit,
                    "capacity {} > {limit}",
                    out.capacity()
                );
            }
        }
        let mut pulled = io::Cursor::new(&data);
        assert!(matches!(
            read_limited(&mut pulled, 100, 0),
            Err(LimitedReadError::TooLarge)
        ));
        assert_eq!(pulled.position(), 101, "pulls at most limit + 1 bytes");
    }

    #[test]
    fn raw_body_over_the_limit_is_too_large() {
        let raw = valid_bytes();
        assert!(matches!(
            read(&raw, 10).unwrap_err(),
            ReadError::TooLarge { limit: 10 }
        ));
    }

    #[test]
    fn truncated_gzip_is_a_gzip_error() {
        let gz = gzip(&valid_bytes());
        for cut in [2, 5, 10, gz.len() / 2, gz.len() - 4, gz.len() - 1] {
            let err = read(&gz[..cut], 1 << 20).unwrap_err();
            assert!(matches!(err, ReadError::Gzip(_)), "cut {cut}: {err:?}");
            assert!(err.to_string().starts_with("invalid gzip data: "), "{err}");
        }
    }

    #[test]
    fn corrupt_gzip_is_a_gzip_error() {
        let mut gz = gzip(&valid_bytes());
        let mid = gz.len() / 2;
        gz[mid..mid + 8].copy_from_slice(&[0xff; 8]);
        assert!(matches!(
            read(&gz, 1 << 20).unwrap_err(),
            ReadError::Gzip(_)
        ));
        // Corrupt checksum in the trailer.
        let mut gz = gzip(&valid_bytes());
        let n = gz.len();
        gz[n - 8] ^= 0xff;
        assert!(matches!(
            read(&gz, 1 << 20).unwrap_err(),
            ReadError::Gzip(_)
        ));
    }

    #[test]
    fn truncated_protobuf_is_a_decode_error() {
        let raw = valid_bytes();
        let mut seen = 0;
        for cut in 1..raw.len() {
            // Some prefixes end on a field boundary and are valid messages; the rest must fail
            // with a decode error, never panic.
            if let Err(err) = read(&raw[..cut], 1 << 20) {
                assert!(matches!(err, ReadError::Decode(_)), "cut {cut}: {err:?}");
                assert!(err.to_string().starts_with("invalid pprof protobuf: "));
                seen += 1;
            }
        }
        assert!(seen > raw.len() / 2, "only {seen} prefixes failed");
        // The same inside gzip.
        let err = read(&gzip(&raw[..raw.len() - 1]), 1 << 20).unwrap_err();
        assert!(matches!(err, ReadError::Decode(_)), "{err:?}");
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let err = read(b"--- this is not a profile ---", 1 << 20).unwrap_err();
        assert!(matches!(err, ReadError::Decode(_)), "{err:?}");
    }
}
