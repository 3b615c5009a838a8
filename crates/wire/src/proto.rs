//! A minimal, strict protobuf codec. Our messages use varint (wire type 0) and length-delimited
//! (wire type 2) fields only, written as the reference implementation writes them.
//!
//! Reading follows standard protobuf: fields of wire types 0, 1 (64-bit), 2 and 5 (32-bit) are
//! read, so unknown fields of any of them are skipped (a known field of type 1 or 5 is the wrong
//! type); field number 0, field numbers above 2^29 - 1 ([`MAX_FIELD_NUMBER`]), groups (types 3
//! and 4) and types 6 and 7 are errors; a repeated scalar keeps the last occurrence; varints
//! longer than 64 bits and lengths past the end of the buffer are errors. Decoders read an absent
//! scalar as its zero value (a standard proto3 encoder leaves zeros out); fixed-length bytes
//! fields (ids, keys, signatures) stay required: see `docs/store.md`, "Presence". Writing:
//! ascending field order, every field written, zero values included.

use crate::{
    WireError,
    varint::{self, VarintError},
};

/// Wire type of varint fields.
pub const WIRE_VARINT: u8 = 0;
/// Wire type of 64-bit fields (`fixed64`, `sfixed64`, `double`).
pub const WIRE_FIXED64: u8 = 1;
/// Wire type of length-delimited fields.
pub const WIRE_LEN: u8 = 2;
/// Wire type of 32-bit fields (`fixed32`, `sfixed32`, `float`).
pub const WIRE_FIXED32: u8 = 5;
/// Largest field number protobuf allows (2^29 - 1).
pub const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// One decoded field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A 64-bit field (wire type 1), little-endian as on the wire.
    Fixed64(u64),
    /// A 32-bit field (wire type 5), little-endian as on the wire.
    Fixed32(u32),
}

/// Iterates the fields of one message.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    #[must_use]
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let (value, rest) = varint::decode(self.rest).map_err(|e| match e {
            VarintError::Truncated => WireError::UnexpectedEof,
            VarintError::Overflow | VarintError::NotShortest => WireError::VarintOverflow,
        })?;
        self.rest = rest;
        Ok(value)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(WireError::UnexpectedEof)?;
        self.rest = rest;
        Ok(*head)
    }

    /// The next field, or `None` at the end of the message.
    ///
    /// # Errors
    /// Malformed tags, varints or lengths.
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let wire_type = u8::try_from(tag & 0x7).map_err(|_| WireError::InvalidFrame("wire type"))?;
        let number = u32::try_from(tag >> 3)
            .ok()
            .filter(|n| *n <= MAX_FIELD_NUMBER)
            .ok_or(WireError::InvalidFrame("field number above 2^29 - 1"))?;
        if number == 0 {
            return Err(WireError::InvalidFrame("field number 0"));
        }
        match wire_type {
            WIRE_VARINT => Ok(Some((number, Value::Varint(self.varint()?)))),
            WIRE_LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::UnexpectedEof)?;
                if len > self.rest.len() {
                    return Err(WireError::UnexpectedEof);
                }
                let (bytes, rest) = self.rest.split_at(len);
                self.rest = rest;
                Ok(Some((number, Value::Bytes(bytes))))
            }
            WIRE_FIXED64 => Ok(Some((number, Value::Fixed64(u64::from_le_bytes(self.take::<8>()?))))),
            WIRE_FIXED32 => Ok(Some((number, Value::Fixed32(u32::from_le_bytes(self.take::<4>()?))))),
            _ => Err(WireError::InvalidFrame("unsupported wire type")),
        }
    }
}

/// Builds one message.
#[derive(Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn varint(&mut self, value: u64) {
        varint::encode(value, &mut self.out);
    }

    fn tag(&mut self, number: u32, wire_type: u8) {
        self.varint((u64::from(number) << 3) | u64::from(wire_type));
    }

    /// Writes a varint field (always, even when zero).
    pub fn uint(&mut self, number: u32, value: u64) -> &mut Self {
        self.tag(number, WIRE_VARINT);
        self.varint(value);
        self
    }

    /// Writes a length-delimited field.
    pub fn bytes(&mut self, number: u32, value: &[u8]) -> &mut Self {
        self.tag(number, WIRE_LEN);
        self.varint(u64::try_from(value.len()).unwrap_or(u64::MAX));
        self.out.extend_from_slice(value);
        self
    }

    #[must_use]
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// A field value as fixed-width bytes.
///
/// # Errors
/// [`WireError::WrongLength`] for any other length, [`WireError::WrongType`] for a varint.
pub fn fixed<const N: usize>(value: Value<'_>, field: &'static str) -> Result<[u8; N], WireError> {
    match value {
        Value::Bytes(bytes) => {
            bytes.try_into().map_err(|_| WireError::WrongLength { field, expected: N, got: bytes.len() })
        }
        Value::Varint(_) | Value::Fixed64(_) | Value::Fixed32(_) => Err(WireError::WrongType(field)),
    }
}

/// A field value as a varint.
///
/// # Errors
/// [`WireError::WrongType`] for a length-delimited value.
pub fn uint(value: Value<'_>, field: &'static str) -> Result<u64, WireError> {
    match value {
        Value::Varint(v) => Ok(v),
        Value::Bytes(_) | Value::Fixed64(_) | Value::Fixed32(_) => Err(WireError::WrongType(field)),
    }
}

/// A field value as bytes.
///
/// # Errors
/// [`WireError::WrongType`] for a varint value.
pub fn bytes<'a>(value: Value<'a>, field: &'static str) -> Result<&'a [u8], WireError> {
    match value {
        Value::Bytes(b) => Ok(b),
        Value::Varint(_) | Value::Fixed64(_) | Value::Fixed32(_) => Err(WireError::WrongType(field)),
    }
}
