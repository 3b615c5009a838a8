//! Delivery receipts on the wire (our own messages; the spec leaves the receipt format to the
//! integration): the user sends a signed [`DeliveryReceipt`] to the provider over
//! `/paystreams/receipt/1.0.0` and gets a [`ReceiptAck`] back. The fields are exactly those of
//! the on-chain receipt (`paystreams_program::receipt`), so the provider can put a received
//! receipt into its claim unchanged. See `docs/delivery-receipts.md`, "On the wire".
//!
//! `DeliveryReceipt` (every bytes field required, fixed lengths checked; an absent `stream_id`
//! reads as 0):
//! `1 bytes program_id (32: the program id's eight u32 words, little-endian)`,
//! `2 bytes stream_config (32)`, `3 uint64 stream_id`,
//! `4 bytes acknowledged_total (16, big-endian u128)`, `5 bytes deliveries_digest (32)`,
//! `6 bytes signature (64, BIP-340)`.
//!
//! `ReceiptAck` (absent `status` / `desc` read as 0 / empty; `kept_total` required):
//! `1 uint32 status` ([`ReceiptStatus`]), `2 string desc` (at most
//! [`STATUS_DESC_MAX_LEN`] bytes), `3 bytes kept_total (16, big-endian u128: the acknowledged
//! total of the receipt the provider now keeps for the stream; zero when none)`.

use crate::{
    STATUS_DESC_MAX_LEN, WireError,
    proto::{Reader, Writer, bytes, fixed, uint},
};

/// The libp2p protocol that carries a [`DeliveryReceipt`] (request) and a [`ReceiptAck`]
/// (response).
pub const RECEIPT_PROTOCOL: &str = "/paystreams/receipt/1.0.0";
/// Largest encoded [`DeliveryReceipt`] (the fields take 207 bytes; unknown fields are skipped
/// within this bound).
pub const DELIVERY_RECEIPT_MAX_LEN: usize = 512;
/// Largest encoded [`ReceiptAck`].
pub const RECEIPT_ACK_MAX_LEN: usize = 1024;

/// A user's signed, cumulative acknowledgment of service delivered on one stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DeliveryReceipt {
    /// The payment-streams program id, as its 32 little-endian bytes.
    pub program_id: [u8; 32],
    /// The stream-config account.
    pub stream_config: [u8; 32],
    pub stream_id: u64,
    /// Cumulative amount acknowledged as delivered over the stream's life.
    pub acknowledged_total: u128,
    /// Digest of the deliveries covered (see `docs/delivery-receipts.md`).
    pub deliveries_digest: [u8; 32],
    /// BIP-340 signature by the stream's receipt key over the on-chain receipt digest.
    pub signature: [u8; 64],
}

impl DeliveryReceipt {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .bytes(1, &self.program_id)
            .bytes(2, &self.stream_config)
            .uint(3, self.stream_id)
            .bytes(4, &self.acknowledged_total.to_be_bytes())
            .bytes(5, &self.deliveries_digest)
            .bytes(6, &self.signature)
            .finish()
    }

    /// # Errors
    /// Oversized input, malformed frames, a missing field or a field of the wrong length.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        if input.len() > DELIVERY_RECEIPT_MAX_LEN {
            return Err(WireError::TooLarge { size: input.len(), max: DELIVERY_RECEIPT_MAX_LEN });
        }
        let (mut program_id, mut stream_config, mut stream_id, mut total, mut digest, mut signature) =
            (None, None, None, None, None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => program_id = Some(fixed::<32>(value, "delivery_receipt.program_id")?),
                2 => stream_config = Some(fixed::<32>(value, "delivery_receipt.stream_config")?),
                3 => stream_id = Some(uint(value, "delivery_receipt.stream_id")?),
                4 => total = Some(u128::from_be_bytes(fixed::<16>(value, "delivery_receipt.acknowledged_total")?)),
                5 => digest = Some(fixed::<32>(value, "delivery_receipt.deliveries_digest")?),
                6 => signature = Some(fixed::<64>(value, "delivery_receipt.signature")?),
                _ => {}
            }
        }
        Ok(Self {
            program_id: program_id.ok_or(WireError::MissingField("delivery_receipt.program_id"))?,
            stream_config: stream_config.ok_or(WireError::MissingField("delivery_receipt.stream_config"))?,
            stream_id: stream_id.unwrap_or(0),
            acknowledged_total: total.ok_or(WireError::MissingField("delivery_receipt.acknowledged_total"))?,
            deliveries_digest: digest.ok_or(WireError::MissingField("delivery_receipt.deliveries_digest"))?,
            signature: signature.ok_or(WireError::MissingField("delivery_receipt.signature"))?,
        })
    }
}

/// What the provider did with a receipt.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum ReceiptStatus {
    /// Verified and kept as the stream's latest receipt.
    Kept = 0,
    /// Valid, but it acknowledges no more than the receipt already kept (nothing to do).
    NotNewer = 1,
    /// Signature, program, stream account or stream id do not match the stream: not kept.
    Invalid = 2,
    /// The stream backs no session of this requester (send it from the peer that proposed), or
    /// it has no receipt key.
    UnknownStream = 3,
    /// The bytes are not a receipt.
    Malformed = 4,
    /// The provider cannot check it now (chain view or storage failure, rate limit, at
    /// capacity): retry later.
    Unavailable = 5,
    /// This node takes no delivery receipts (a free Store node).
    Unsupported = 6,
}

impl ReceiptStatus {
    #[must_use]
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Kept),
            1 => Some(Self::NotNewer),
            2 => Some(Self::Invalid),
            3 => Some(Self::UnknownStream),
            4 => Some(Self::Malformed),
            5 => Some(Self::Unavailable),
            6 => Some(Self::Unsupported),
            _ => None,
        }
    }
}

/// The provider's answer to a [`DeliveryReceipt`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReceiptAck {
    pub status: u32,
    pub desc: String,
    /// The acknowledged total of the receipt the provider keeps for the stream (0: none).
    pub kept_total: u128,
}

impl ReceiptAck {
    /// An ack; a description over [`STATUS_DESC_MAX_LEN`] bytes is cut at a character boundary.
    #[must_use]
    pub fn new(status: ReceiptStatus, desc: impl Into<String>, kept_total: u128) -> Self {
        let mut desc: String = desc.into();
        if desc.len() > STATUS_DESC_MAX_LEN {
            let mut end = STATUS_DESC_MAX_LEN;
            while !desc.is_char_boundary(end) {
                end = end.saturating_sub(1);
            }
            desc.truncate(end);
        }
        Self { status: status as u32, desc, kept_total }
    }

    /// The known status, if any.
    #[must_use]
    pub const fn code(&self) -> Option<ReceiptStatus> {
        ReceiptStatus::from_code(self.status)
    }

    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .uint(1, u64::from(self.status))
            .bytes(2, self.desc.as_bytes())
            .bytes(3, &self.kept_total.to_be_bytes())
            .finish()
    }

    /// # Errors
    /// Oversized input, malformed frames, a missing field, a status over u32, a description
    /// over 512 bytes or not UTF-8, a total not 16 bytes.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        if input.len() > RECEIPT_ACK_MAX_LEN {
            return Err(WireError::TooLarge { size: input.len(), max: RECEIPT_ACK_MAX_LEN });
        }
        let (mut status, mut desc, mut kept) = (None, None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => {
                    let v = uint(value, "receipt_ack.status")?;
                    status = Some(
                        u32::try_from(v)
                            .map_err(|_| WireError::UnknownEnum { field: "receipt_ack.status", value: v })?,
                    );
                }
                2 => {
                    let d = bytes(value, "receipt_ack.desc")?;
                    if d.len() > STATUS_DESC_MAX_LEN {
                        return Err(WireError::TooLarge { size: d.len(), max: STATUS_DESC_MAX_LEN });
                    }
                    desc = Some(
                        String::from_utf8(d.to_vec())
                            .map_err(|_| WireError::InvalidFrame("receipt_ack.desc is not UTF-8"))?,
                    );
                }
                3 => kept = Some(u128::from_be_bytes(fixed::<16>(value, "receipt_ack.kept_total")?)),
                _ => {}
            }
        }
        Ok(Self {
            status: status.unwrap_or(0),
            desc: desc.unwrap_or_default(),
            kept_total: kept.ok_or(WireError::MissingField("receipt_ack.kept_total"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> DeliveryReceipt {
        DeliveryReceipt {
            program_id: [1; 32],
            stream_config: [2; 32],
            stream_id: u64::MAX,
            acknowledged_total: u128::MAX,
            deliveries_digest: [3; 32],
            signature: [4; 64],
        }
    }

    #[test]
    fn receipt_round_trips_and_every_truncation_is_refused() {
        let r = receipt();
        let bytes = r.encode();
        assert!(bytes.len() <= 210, "{}", bytes.len());
        assert_eq!(DeliveryReceipt::decode(&bytes), Ok(r));
        for cut in 0..bytes.len() {
            assert!(DeliveryReceipt::decode(bytes.get(..cut).unwrap_or_default()).is_err(), "prefix {cut}");
        }
        // An unknown field is skipped; oversized input is refused.
        let mut extra = bytes.clone();
        extra.extend_from_slice(&[0x38, 0x01]);
        assert_eq!(DeliveryReceipt::decode(&extra), Ok(r));
        assert!(DeliveryReceipt::decode(&vec![0; DELIVERY_RECEIPT_MAX_LEN + 1]).is_err());
    }

    #[test]
    fn receipt_fields_have_fixed_lengths() {
        // A 15-byte total and a 63-byte signature.
        let short_total = Writer::new().bytes(4, &[0; 15]).finish();
        assert_eq!(
            DeliveryReceipt::decode(&short_total),
            Err(WireError::WrongLength { field: "delivery_receipt.acknowledged_total", expected: 16, got: 15 })
        );
        let short_sig = Writer::new().bytes(6, &[0; 63]).finish();
        assert!(matches!(DeliveryReceipt::decode(&short_sig), Err(WireError::WrongLength { expected: 64, .. })));
        let varint_config = Writer::new().uint(2, 7).finish();
        assert_eq!(
            DeliveryReceipt::decode(&varint_config),
            Err(WireError::WrongType("delivery_receipt.stream_config"))
        );
    }

    #[test]
    fn ack_round_trips_and_is_strict() {
        let ack = ReceiptAck::new(ReceiptStatus::NotNewer, "é".repeat(400), 77);
        assert_eq!(ack.desc.len(), STATUS_DESC_MAX_LEN);
        let bytes = ack.encode();
        assert_eq!(ReceiptAck::decode(&bytes), Ok(ack.clone()));
        assert_eq!(ReceiptAck::decode(&bytes).map(|a| a.code()), Ok(Some(ReceiptStatus::NotNewer)));
        for cut in 0..bytes.len() {
            assert!(ReceiptAck::decode(bytes.get(..cut).unwrap_or_default()).is_err(), "prefix {cut}");
        }
        let big_status = Writer::new().uint(1, u64::from(u32::MAX) + 1).finish();
        assert!(matches!(ReceiptAck::decode(&big_status), Err(WireError::UnknownEnum { .. })));
        assert_eq!(ReceiptStatus::from_code(7), None);
    }
}
