//! Counting what a pprof message holds before decoding it: one pass over the top-level
//! fields, no allocation, so that a caller can refuse (or budget memory for) a profile
//! before its structures exist.

/// The number of top-level entries of a pprof message, from [`census`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Bytes of the (uncompressed) message.
    pub bytes: usize,
    /// `sample` entries.
    pub samples: usize,
    /// `location` entries.
    pub locations: usize,
    /// `function` entries.
    pub functions: usize,
    /// `mapping` entries.
    pub mappings: usize,
    /// `string_table` entries.
    pub strings: usize,
}

impl Census {
    /// A generous estimate of the heap the decoded [`crate::Profile`] and its normalized
    /// rows take: the message's bytes twice (packed ids and values widen to 8 bytes) plus
    /// a fixed cost per entry for its struct and allocations.
    pub fn decoded_bytes(&self) -> usize {
        self.bytes
            .saturating_mul(2)
            .saturating_add(self.samples.saturating_mul(160))
            .saturating_add(self.locations.saturating_mul(128))
            .saturating_add(self.functions.saturating_mul(128))
            .saturating_add(self.mappings.saturating_mul(160))
            .saturating_add(self.strings.saturating_mul(48))
    }
}

/// Why [`census`] could not walk a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid pprof protobuf: {0}")]
pub struct CensusError(&'static str);

/// Counts the top-level entries of an uncompressed pprof message. Fails on a truncated
/// or malformed field framing (which decoding would refuse too).
pub fn census(raw: &[u8]) -> Result<Census, CensusError> {
    let mut census = Census {
        bytes: raw.len(),
        ..Census::default()
    };
    let mut rest = raw;
    while !rest.is_empty() {
        let key = varint(&mut rest)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(&mut rest)?;
            }
            1 => skip(&mut rest, 8)?,
            2 => {
                let len = varint(&mut rest)?;
                let len = usize::try_from(len).map_err(|_| CensusError("length overflow"))?;
                skip(&mut rest, len)?;
            }
            5 => skip(&mut rest, 4)?,
            _ => return Err(CensusError("unsupported wire type")),
        }
        let count = match field {
            2 => &mut census.samples,
            3 => &mut census.mappings,
            4 => &mut census.locations,
            5 => &mut census.functions,
            6 => &mut census.strings,
            _ => continue,
        };
        *count += 1;
    }
    Ok(census)
}

fn skip(rest: &mut &[u8], n: usize) -> Result<(), CensusError> {
    if rest.len() < n {
        return Err(CensusError("truncated field"));
    }
    *rest = &rest[n..];
    Ok(())
}

fn varint(rest: &mut &[u8]) -> Result<u64, CensusError> {
    let mut value = 0u64;
    for (i, &b) in rest.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Ok(value);
        }
    }
    Err(CensusError("invalid varint"))
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn counts_match_the_decoded_profile() {
        let profile = crate::test_util::valid_profile();
        let raw = profile.encode_to_vec();
        let c = census(&raw).unwrap();
        assert_eq!(c.bytes, raw.len());
        assert_eq!(c.samples, profile.sample.len());
        assert_eq!(c.locations, profile.location.len());
        assert_eq!(c.functions, profile.function.len());
        assert_eq!(c.mappings, profile.mapping.len());
        assert_eq!(c.strings, profile.string_table.len());
        assert!(c.decoded_bytes() > raw.len());
    }

    #[test]
    fn truncated_and_malformed_messages_are_refused() {
        let raw = crate::test_util::valid_profile().encode_to_vec();
        assert!(census(&raw[..raw.len() - 1]).is_err());
        assert!(census(&[0x12, 0x05, 1]).is_err(), "length past the end");
        assert!(census(&[0x0b]).is_err(), "a group");
        assert!(census(&[0x80; 11]).is_err(), "an endless varint");
        assert_eq!(census(&[]).unwrap(), Census::default());
    }

    #[test]
    fn a_million_tiny_samples_are_counted_without_decoding() {
        // Each `sample {}` is two bytes on the wire.
        let raw: Vec<u8> = std::iter::repeat_n([0x12u8, 0x00], 1_000_000)
            .flatten()
            .collect();
        let c = census(&raw).unwrap();
        assert_eq!(c.samples, 1_000_000);
        assert!(c.decoded_bytes() >= 160_000_000);
    }
}
