//! The provider's discovery advertisement (our own message, not the spec's): what both engines
//! exchange before a proposal.

use crate::{
    POLICY_MAX_LEN, SERVICE_ID_MAX_LEN, StreamProviderPolicy, WireError,
    proto::{Reader, Writer, bytes, fixed, uint},
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

/// What a provider publishes through discovery: the spec's `StreamProviderPolicy` plus the
/// provider id, the accepted service ids and the extensions it supports.
///
/// Encoding (protobuf, our own message; fields in order, zero values written):
/// `1 bytes policy (StreamProviderPolicy)`, `2 bytes provider_id (32)`,
/// `3 repeated bytes service_id`, `4 uint64 deferred_first_proof (0|1)`,
/// `5 optional bytes load_cap { 1 uint64 window_secs; 2 uint64 max_requests; 3 uint64 max_bytes }`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProviderAdvert {
    pub policy: StreamProviderPolicy,
    pub provider_id: [u8; 32],
    pub service_ids: Vec<String>,
    pub deferred_first_proof: bool,
    pub load_cap: Option<LoadCap>,
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
        writer.finish()
    }

    /// # Errors
    /// Oversized input, malformed or missing fields, bad service ids, or an invalid policy.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        if input.len() > ADVERT_MAX_LEN {
            return Err(WireError::TooLarge { size: input.len(), max: ADVERT_MAX_LEN });
        }
        let (mut policy, mut provider_id, mut deferred, mut load_cap) = (None, None, None, None);
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
            deferred_first_proof: deferred.ok_or(WireError::MissingField("advert.deferred_first_proof"))?,
            load_cap,
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
    let window_secs = window.ok_or(WireError::MissingField("load_cap.window_secs"))?;
    if window_secs == 0 {
        return Err(WireError::InvalidFrame("load cap window must be positive"));
    }
    Ok(LoadCap {
        window_secs,
        max_requests: requests.ok_or(WireError::MissingField("load_cap.max_requests"))?,
        max_bytes: max_bytes.ok_or(WireError::MissingField("load_cap.max_bytes"))?,
    })
}
