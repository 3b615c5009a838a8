//! A minimal, strict protobuf codec: varint (wire type 0) and length-delimited (wire type 2)
//! fields only, as the reference implementation reads and writes them.
//!
//! Reading: field number 0 and wire types other than 0 and 2 are errors; unknown fields of type 0
//! or 2 are skipped; a repeated scalar keeps the last occurrence; varints longer than 64 bits and
//! lengths past the end of the buffer are errors. Writing: ascending field order, every field
//! written, zero values included.

use crate::{
    WireError,
    varint::{self, VarintError},
};

/// Wire type of varint fields.
pub const WIRE_VARINT: u8 = 0;
/// Wire type of length-delimited fields.
pub const WIRE_LEN: u8 = 2;

/// One decoded field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
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
        let number = u32::try_from(tag >> 3).map_err(|_| WireError::InvalidFrame("field number too large"))?;
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
        Value::Varint(_) => Err(WireError::WrongType(field)),
    }
}

/// A field value as a varint.
///
/// # Errors
/// [`WireError::WrongType`] for a length-delimited value.
pub fn uint(value: Value<'_>, field: &'static str) -> Result<u64, WireError> {
    match value {
        Value::Varint(v) => Ok(v),
        Value::Bytes(_) => Err(WireError::WrongType(field)),
    }
}

/// A field value as bytes.
///
/// # Errors
/// [`WireError::WrongType`] for a varint value.
pub fn bytes<'a>(value: Value<'a>, field: &'static str) -> Result<&'a [u8], WireError> {
    match value {
        Value::Bytes(b) => Ok(b),
        Value::Varint(_) => Err(WireError::WrongType(field)),
    }
}
