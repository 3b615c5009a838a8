//! LEB128 varints, the one codec of the workspace: protobuf fields ([`crate::proto`]), the
//! length prefix of libp2p frames and the provider's stored session records all use it.
//!
//! Seven bits a byte, least significant group first, the high bit set on every byte but the
//! last; a `u64` takes at most [`MAX_BYTES`]. Protobuf readers accept non-shortest forms
//! ([`decode`]); canonical records refuse them ([`decode_canonical`]) so that one value has one
//! encoding.

/// Longest encoding of a `u64`.
pub const MAX_BYTES: usize = 10;

/// Why a varint was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum VarintError {
    /// The input ends before the last byte (one without the high bit).
    #[error("varint cut short")]
    Truncated,
    /// More than 64 bits.
    #[error("varint longer than 64 bits")]
    Overflow,
    /// A longer form than needed (only [`decode_canonical`] and [`Decoder::canonical`] refuse it).
    #[error("varint not in its shortest form")]
    NotShortest,
}

/// Appends the encoding of `value` to `out`.
pub fn encode(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let low = u8::try_from(value & 0x7f).unwrap_or(0);
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// The encoding of `value` on its own.
#[must_use]
pub fn to_vec(value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_BYTES);
    encode(value, &mut out);
    out
}

/// Decodes the varint at the front of `input`, accepting non-shortest forms (protobuf's rule):
/// the value and the bytes after it.
///
/// # Errors
/// [`VarintError::Truncated`] or [`VarintError::Overflow`].
pub fn decode(input: &[u8]) -> Result<(u64, &[u8]), VarintError> {
    decode_with(input, Decoder::new())
}

/// Decodes the varint at the front of `input`, refusing non-shortest forms.
///
/// # Errors
/// [`VarintError::Truncated`], [`VarintError::Overflow`] or [`VarintError::NotShortest`].
pub fn decode_canonical(input: &[u8]) -> Result<(u64, &[u8]), VarintError> {
    decode_with(input, Decoder::canonical())
}

fn decode_with(mut input: &[u8], mut decoder: Decoder) -> Result<(u64, &[u8]), VarintError> {
    loop {
        let (&byte, rest) = input.split_first().ok_or(VarintError::Truncated)?;
        input = rest;
        if let Some(value) = decoder.push(byte)? {
            return Ok((value, input));
        }
    }
}

/// Decodes one varint a byte at a time, for readers that take bytes from a stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decoder {
    value: u64,
    /// Bytes taken so far (at most [`MAX_BYTES`]).
    taken: u8,
    canonical: bool,
}

impl Decoder {
    /// A decoder that accepts non-shortest forms.
    #[must_use]
    pub const fn new() -> Self {
        Self { value: 0, taken: 0, canonical: false }
    }

    /// A decoder that refuses non-shortest forms.
    #[must_use]
    pub const fn canonical() -> Self {
        Self { value: 0, taken: 0, canonical: true }
    }

    /// Takes the next byte: `Some(value)` once the varint is complete, `None` while more bytes
    /// are needed.
    ///
    /// # Errors
    /// [`VarintError::Overflow`] past 64 bits; [`VarintError::NotShortest`] for a canonical
    /// decoder fed a redundant final zero group.
    pub fn push(&mut self, byte: u8) -> Result<Option<u64>, VarintError> {
        let index = self.taken;
        if usize::from(index) >= MAX_BYTES {
            return Err(VarintError::Overflow);
        }
        // The tenth byte carries bit 63 only.
        if usize::from(index) == MAX_BYTES - 1 && byte > 1 {
            return Err(VarintError::Overflow);
        }
        let shift = u32::from(index).checked_mul(7).ok_or(VarintError::Overflow)?;
        self.value |= u64::from(byte & 0x7f).checked_shl(shift).ok_or(VarintError::Overflow)?;
        self.taken = index.checked_add(1).ok_or(VarintError::Overflow)?;
        if byte & 0x80 != 0 {
            return Ok(None);
        }
        if self.canonical && byte == 0 && index > 0 {
            return Err(VarintError::NotShortest);
        }
        Ok(Some(self.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_boundaries() {
        for value in [0, 1, 127, 128, 300, 16_383, 16_384, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let bytes = to_vec(value);
            assert_eq!(decode(&bytes), Ok((value, &[][..])));
            assert_eq!(decode_canonical(&bytes), Ok((value, &[][..])));
        }
        assert_eq!(to_vec(300), vec![0xac, 0x02]);
        assert_eq!(to_vec(u64::MAX).len(), MAX_BYTES);
    }

    #[test]
    fn leaves_the_rest() {
        assert_eq!(decode(&[0x96, 0x01, 0xff, 0x07]), Ok((150, &[0xff, 0x07][..])));
    }

    #[test]
    fn refuses_truncated_and_overlong() {
        assert_eq!(decode(&[]), Err(VarintError::Truncated));
        assert_eq!(decode(&[0x80, 0x80]), Err(VarintError::Truncated));
        let mut eleven = vec![0x80; 10];
        eleven.push(0x00);
        assert_eq!(decode(&eleven), Err(VarintError::Overflow));
        // Tenth byte above 1: bit 64 or higher.
        let mut big = vec![0xff; 9];
        big.push(0x02);
        assert_eq!(decode(&big), Err(VarintError::Overflow));
    }

    #[test]
    fn canonical_refuses_padding_that_protobuf_accepts() {
        assert_eq!(decode(&[0x81, 0x00]), Ok((1, &[][..])));
        assert_eq!(decode_canonical(&[0x81, 0x00]), Err(VarintError::NotShortest));
        assert_eq!(decode_canonical(&[0x80, 0x00]), Err(VarintError::NotShortest));
        assert_eq!(decode_canonical(&[0x00]), Ok((0, &[][..])));
    }

    #[test]
    fn byte_at_a_time_matches_slices() {
        let bytes = to_vec(1 << 35);
        let mut decoder = Decoder::new();
        let mut out = None;
        for byte in bytes {
            assert!(out.is_none());
            out = decoder.push(byte).expect("valid");
        }
        assert_eq!(out, Some(1 << 35));
    }
}
