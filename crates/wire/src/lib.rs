//! The LIP-155 off-chain wire ("Stream-Backed Eligibility for Request-Response Services"):
//! protobuf messages with decoders as strict as the reference implementation's, encoders that
//! produce its exact bytes, and the canonical signing bytes of vault-owner authorization and
//! Store eligibility. Transport-agnostic.

#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod advert;
pub mod messages;
pub mod proto;
pub mod receipt;
pub mod recommended;
pub mod signing;
pub mod termination;
pub mod varint;

pub use advert::{ADVERT_MAX_LEN, ExtensionTerms, LoadCap, ProviderAdvert, ReceiptTerms, SERVICE_IDS_MAX};
pub use messages::*;
pub use receipt::{DeliveryReceipt, RECEIPT_PROTOCOL, ReceiptAck, ReceiptStatus};
pub use signing::*;
pub use termination::{SESSION_TERMINATION_MAX_LEN, SessionTermination};

/// Why bytes were refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum WireError {
    #[error("message ends in the middle of a field")]
    UnexpectedEof,
    #[error("varint longer than 64 bits")]
    VarintOverflow,
    #[error("invalid protobuf frame: {0}")]
    InvalidFrame(&'static str),
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    #[error("field {field} must be exactly {expected} bytes, got {got}")]
    WrongLength { field: &'static str, expected: usize, got: usize },
    #[error("field {0} has the wrong wire type")]
    WrongType(&'static str),
    #[error("service_id is {0} bytes; at most 128 are allowed")]
    ServiceIdTooLong(usize),
    #[error("service_id is not UTF-8")]
    ServiceIdNotUtf8,
    #[error("message is {size} bytes; at most {max} are allowed")]
    TooLarge { size: usize, max: usize },
    #[error("proof_of_payment must not be set on a stream-backed request")]
    ProofOfPaymentNotAllowed,
    #[error("exactly one of stream_proposal and stream_proof must be set, not both")]
    BothProposalAndProof,
    #[error("policy lists more than {0} accepted tokens")]
    TooManyTokens(usize),
    #[error("policy lists the same token twice")]
    DuplicateToken,
    #[error("field {field} has unknown value {value}")]
    UnknownEnum { field: &'static str, value: u64 },
    #[error("{0} is not a valid x-only public key")]
    InvalidPublicKey(&'static str),
    #[error("signature does not verify")]
    BadSignature,
}
