//! The provider's discovery advertisement (our own message, not the spec's): what both engines
//! exchange before a proposal.

use crate::{
    POLICY_MAX_LEN, SERVICE_ID_MAX_LEN, StreamProviderPolicy, WireError,
    proto::{Reader, Value, Writer, bytes, fixed, uint},
};

/// Most `service_id`s one advert lists: discovery records must stay small.
pub const SERVICE_IDS_MAX: usize = 16;
/// Largest encoded [`ProviderAdvert`]: a maximal policy plus 16 maximal service ids and the rest.
pub const ADVERT_MAX_LEN: usize = 8192;

/// Optional load cap: per stream, per window of chain time, at most this many requests and
/// response bytes (the spec's "Load cap" extension; advertised when set).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LoadCap {
    pub window_secs: u64,
    pub max_requests: u64,
    pub max_bytes: u64,
}

/// Whether a provider serves streams with the delivery-receipts extension.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ReceiptTerms {
    /// Streams with a receipt key are refused (the default: claiming them needs receipts).
    #[default]
    Refused,
    /// Streams with or without a receipt key are served.
    Accepted,
    /// Only streams with a receipt key are served.
    Required,
}

impl ReceiptTerms {
    const fn code(self) -> u64 {
        match self {
            Self::Refused => 0,
            Self::Accepted => 1,
            Self::Required => 2,
        }
    }

    const fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::Refused),
            1 => Some(Self::Accepted),
            2 => Some(Self::Required),
            _ => None,
        }
    }

    /// Lower-case name, as the CLI spells it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Accepted => "accepted",
            Self::Required => "required",
        }
    }
}

/// Which on-chain stream extensions (LIP-155 "On-chain protocol extensions") a provider serves
/// under, and on what terms. A stream with an extension switched off (zero fee, zero auto-pause
/// duration, no auto-claim, no receipt key) never conflicts with these terms, except that
/// `activation_fee_min > 0` requires a fee and [`ReceiptTerms::Required`] requires a receipt key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExtensionTerms {
    /// Streams with an activation fee are served.
    pub activation_fee_accepted: bool,
    /// Smallest activation fee served (0: a stream without a fee is served too).
    pub activation_fee_min: u128,
    /// Streams with auto-pause are served.
    pub auto_pause_accepted: bool,
    /// Shortest auto-pause duration served, seconds of ACTIVE time.
    pub auto_pause_min_secs: u64,
    /// Streams with automatic claim on provider close are served.
    pub auto_claim_on_close_accepted: bool,
    pub receipts: ReceiptTerms,
}

impl Default for ExtensionTerms {
    /// Auto-pause (at least a minute), auto-claim on close and any activation fee are served;
    /// receipt streams are refused.
    fn default() -> Self {
        Self {
            activation_fee_accepted: true,
            activation_fee_min: 0,
            auto_pause_accepted: true,
            auto_pause_min_secs: 60,
            auto_claim_on_close_accepted: true,
            receipts: ReceiptTerms::Refused,
        }
    }
}

impl ExtensionTerms {
    fn encode(&self) -> Vec<u8> {
        Writer::new()
            .uint(1, u64::from(self.activation_fee_accepted))
            .bytes(2, &self.activation_fee_min.to_be_bytes())
            .uint(3, u64::from(self.auto_pause_accepted))
            .uint(4, self.auto_pause_min_secs)
            .uint(5, u64::from(self.auto_claim_on_close_accepted))
            .uint(6, self.receipts.code())
            .finish()
    }

    fn decode(input: &[u8]) -> Result<Self, WireError> {
        let (mut fee_ok, mut fee_min, mut pause_ok, mut pause_min, mut claim_ok, mut receipts) =
            (None, None, None, None, None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => fee_ok = Some(flag(value, "extensions.activation_fee_accepted")?),
                2 => fee_min = Some(u128::from_be_bytes(fixed::<16>(value, "extensions.activation_fee_min")?)),
                3 => pause_ok = Some(flag(value, "extensions.auto_pause_accepted")?),
                4 => pause_min = Some(uint(value, "extensions.auto_pause_min_secs")?),
                5 => claim_ok = Some(flag(value, "extensions.auto_claim_on_close_accepted")?),
                6 => {
                    let code = uint(value, "extensions.receipts")?;
                    receipts = Some(
                        ReceiptTerms::from_code(code)
                            .ok_or(WireError::UnknownEnum { field: "extensions.receipts", value: code })?,
                    );
                }
                _ => {}
            }
        }
        Ok(Self {
            activation_fee_accepted: fee_ok.unwrap_or(false),
            activation_fee_min: fee_min.ok_or(WireError::MissingField("extensions.activation_fee_min"))?,
            auto_pause_accepted: pause_ok.unwrap_or(false),
            auto_pause_min_secs: pause_min.unwrap_or(0),
            auto_claim_on_close_accepted: claim_ok.unwrap_or(false),
            receipts: receipts.unwrap_or_default(),
        })
    }
}

/// A 0|1 varint.
fn flag(value: Value<'_>, field: &'static str) -> Result<bool, WireError> {
    match uint(value, field)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(WireError::UnknownEnum { field, value: other }),
    }
}

/// What a provider publishes through discovery: the spec's `StreamProviderPolicy` plus the
/// provider id, the accepted service ids and the extensions it supports.
///
/// Encoding (protobuf, our own message; fields in order, zero values written; on decode an
/// absent scalar reads as zero / false / `refused`, while `policy`, `provider_id`, at least one
/// `service_id` and `activation_fee_min` (16 bytes) are required):
/// `1 bytes policy (StreamProviderPolicy)`, `2 bytes provider_id (32)`,
/// `3 repeated bytes service_id`, `4 uint64 deferred_first_proof (0|1)`,
/// `5 optional bytes load_cap { 1 uint64 window_secs; 2 uint64 max_requests; 3 uint64 max_bytes }`,
/// `6 optional bytes extensions { 1 uint64 activation_fee_accepted (0|1);
/// 2 bytes activation_fee_min (16, big-endian u128); 3 uint64 auto_pause_accepted (0|1);
/// 4 uint64 auto_pause_min_secs; 5 uint64 auto_claim_on_close_accepted (0|1);
/// 6 uint64 receipts (0 refused, 1 accepted, 2 required) }`.
///
/// Field 6 is new and optional: an advert without it (an older provider) states no extension
/// terms, and users create streams without extensions for it; an older decoder skips it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProviderAdvert {
    pub policy: StreamProviderPolicy,
    pub provider_id: [u8; 32],
    pub service_ids: Vec<String>,
    pub deferred_first_proof: bool,
    pub load_cap: Option<LoadCap>,
    /// The on-chain extensions the provider serves under (`None`: not stated; create streams
    /// without extensions).
    pub extensions: Option<ExtensionTerms>,
}

impl ProviderAdvert {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        writer.bytes(1, &self.policy.encode()).bytes(2, &self.provider_id);
        for id in &self.service_ids {
            writer.bytes(3, id.as_bytes());
        }
        writer.uint(4, u64::from(self.deferred_first_proof));
        if let Some(cap) = self.load_cap {
            let inner =
                Writer::new().uint(1, cap.window_secs).uint(2, cap.max_requests).uint(3, cap.max_bytes).finish();
            writer.bytes(5, &inner);
        }
        if let Some(terms) = &self.extensions {
            writer.bytes(6, &terms.encode());
        }
        writer.finish()
    }

    /// # Errors
    /// Oversized input, malformed or missing fields, bad service ids, or an invalid policy.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        if input.len() > ADVERT_MAX_LEN {
            return Err(WireError::TooLarge { size: input.len(), max: ADVERT_MAX_LEN });
        }
        let (mut policy, mut provider_id, mut deferred, mut load_cap, mut extensions) = (None, None, None, None, None);
        let mut service_ids = Vec::new();
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => {
                    let raw = bytes(value, "advert.policy")?;
                    if raw.len() > POLICY_MAX_LEN {
                        return Err(WireError::TooLarge { size: raw.len(), max: POLICY_MAX_LEN });
                    }
                    policy = Some(StreamProviderPolicy::decode(raw)?);
                }
                2 => provider_id = Some(fixed::<32>(value, "advert.provider_id")?),
                3 => {
                    if service_ids.len() >= SERVICE_IDS_MAX {
                        return Err(WireError::InvalidFrame("advert lists too many service ids"));
                    }
                    let id = bytes(value, "advert.service_id")?;
                    if id.len() > SERVICE_ID_MAX_LEN {
                        return Err(WireError::ServiceIdTooLong(id.len()));
                    }
                    service_ids.push(String::from_utf8(id.to_vec()).map_err(|_| WireError::ServiceIdNotUtf8)?);
                }
                4 => {
                    deferred = Some(match uint(value, "advert.deferred_first_proof")? {
                        0 => false,
                        1 => true,
                        other => {
                            return Err(WireError::UnknownEnum { field: "advert.deferred_first_proof", value: other });
                        }
                    });
                }
                5 => load_cap = Some(decode_load_cap(bytes(value, "advert.load_cap")?)?),
                6 => extensions = Some(ExtensionTerms::decode(bytes(value, "advert.extensions")?)?),
                _ => {}
            }
        }
        if service_ids.is_empty() {
            return Err(WireError::MissingField("advert.service_id"));
        }
        Ok(Self {
            policy: policy.ok_or(WireError::MissingField("advert.policy"))?,
            provider_id: provider_id.ok_or(WireError::MissingField("advert.provider_id"))?,
            service_ids,
            deferred_first_proof: deferred.unwrap_or(false),
            load_cap,
            extensions,
        })
    }
}

fn decode_load_cap(input: &[u8]) -> Result<LoadCap, WireError> {
    let (mut window, mut requests, mut max_bytes) = (None, None, None);
    let mut reader = Reader::new(input);
    while let Some((number, value)) = reader.next_field()? {
        match number {
            1 => window = Some(uint(value, "load_cap.window_secs")?),
            2 => requests = Some(uint(value, "load_cap.max_requests")?),
            3 => max_bytes = Some(uint(value, "load_cap.max_bytes")?),
            _ => {}
        }
    }
    let window_secs = window.unwrap_or(0);
    if window_secs == 0 {
        return Err(WireError::InvalidFrame("load cap window must be positive"));
    }
    Ok(LoadCap { window_secs, max_requests: requests.unwrap_or(0), max_bytes: max_bytes.unwrap_or(0) })
}
