//! The check both protobuf cross-tests share (the wire crate's messages and Store's): prost's
//! bytes decode to our value, also with unknown fields of every wire type before and after the
//! known ones; a field number above 2^29 - 1 is refused; our bytes decode with prost to the same
//! value. Included by path from `crates/wire/tests/standard_proto3.rs` and
//! `crates/store/tests/all/wire_standard.rs`.

use std::fmt::Debug;

use paystreams_wire::{WireError, proto::MAX_FIELD_NUMBER, varint};
use prost::Message;

/// Unknown fields of wire types 0, 1, 2 and 5, the last at the largest field number.
pub fn unknown_fields() -> Vec<u8> {
    let mut out = Vec::new();
    for (number, wire_type, body) in [
        (1000_u64, 0_u64, vec![0x96, 0x01]),
        (1001, 1, vec![1, 2, 3, 4, 5, 6, 7, 8]),
        (1002, 2, vec![3, b'a', b'b', b'c']),
        (u64::from(MAX_FIELD_NUMBER), 5, vec![9, 9, 9, 9]),
    ] {
        varint::encode((number << 3) | wire_type, &mut out);
        out.extend_from_slice(&body);
    }
    out
}

/// A varint field numbered 2^29 (one above the largest).
pub fn field_number_too_large() -> Vec<u8> {
    let mut out = Vec::new();
    varint::encode((u64::from(MAX_FIELD_NUMBER) + 1) << 3, &mut out);
    out.push(0);
    out
}

/// prost's bytes decode to `ours`, with and without unknown fields (before and after the known
/// ones); our bytes decode with prost to `theirs`; a field number above 2^29 - 1 is refused.
pub fn check<O, P>(ours: &O, theirs: &P, decode: impl Fn(&[u8]) -> Result<O, WireError>, encode: impl Fn(&O) -> Vec<u8>)
where
    O: PartialEq + Debug,
    P: Message + Default + PartialEq + Debug,
{
    let standard = theirs.encode_to_vec();
    assert_eq!(decode(&standard).as_ref(), Ok(ours), "standard bytes {}", hex::encode(&standard));
    let mut with_unknown = standard.clone();
    with_unknown.extend(unknown_fields());
    assert_eq!(decode(&with_unknown).as_ref(), Ok(ours), "unknown fields after");
    let mut unknown_first = unknown_fields();
    unknown_first.extend(&standard);
    assert_eq!(decode(&unknown_first).as_ref(), Ok(ours), "unknown fields before");
    let mut too_large = standard.clone();
    too_large.extend(field_number_too_large());
    assert_eq!(decode(&too_large), Err(WireError::InvalidFrame("field number above 2^29 - 1")));

    let ours_bytes = encode(ours);
    assert_eq!(P::decode(ours_bytes.as_slice()).as_ref(), Ok(theirs), "our bytes {}", hex::encode(&ours_bytes));
}
