//! What a provider accepts, how it advertises it, and the engine's operating limits.

use paystreams_wire::{
    ACCEPTED_TOKENS_MAX, POLICY_MAX_LEN, SERVICE_ID_MAX_LEN, StreamProviderPolicy, TokenStreamPolicy, WireError,
    proto::{Reader, Writer, bytes, fixed, uint},
};

/// The spec's RECOMMENDED `max_create_stream_deadline_delay`, seconds.
pub const DEFAULT_DEADLINE_DELAY_SECS: u64 = 300;
/// The spec's RECOMMENDED `vault_proof_max_response_bytes`.
pub const DEFAULT_FIRST_RESPONSE_CAP: u64 = 65_536;
/// The spec's RECOMMENDED cap on parameter attempts per vault within the window.
pub const DEFAULT_ATTEMPT_CAP: u32 = 5;
/// The spec's RECOMMENDED attempt window, seconds.
pub const DEFAULT_ATTEMPT_WINDOW_SECS: u64 = 600;
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

/// The provider's policy: what it serves, to which tokens, at what minimums.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProviderPolicy {
    /// The provider's id: the account that streams must name as provider (and that claims).
    pub provider_id: [u8; 32],
    /// Accepted `service_id`s (UTF-8, each at most 128 bytes).
    pub service_ids: Vec<String>,
    /// Accepted tokens with minimum rate and allocation.
    pub accepted_tokens: Vec<TokenStreamPolicy>,
    /// Latest acceptable `create_stream_deadline`, relative to verification time.
    pub max_create_stream_deadline_delay: u64,
    /// Largest first (proposal-backed) response, bytes.
    pub first_response_cap: u64,
    pub load_cap: Option<LoadCap>,
    /// The spec's "Deferred first stream proof" extension.
    pub deferred_first_proof: bool,
}

/// Why a policy is unusable.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("a policy needs at least one accepted token and one service id")]
    Empty,
    #[error("at most {ACCEPTED_TOKENS_MAX} tokens and {SERVICE_IDS_MAX} service ids")]
    TooMany,
    #[error("token listed twice")]
    DuplicateToken,
    #[error("service id longer than {SERVICE_ID_MAX_LEN} bytes")]
    ServiceIdTooLong,
    #[error("load cap window must be positive")]
    BadLoadCap,
}

impl ProviderPolicy {
    /// A policy with the spec's recommended defaults.
    #[must_use]
    pub fn new(provider_id: [u8; 32], service_ids: Vec<String>, accepted_tokens: Vec<TokenStreamPolicy>) -> Self {
        Self {
            provider_id,
            service_ids,
            accepted_tokens,
            max_create_stream_deadline_delay: DEFAULT_DEADLINE_DELAY_SECS,
            first_response_cap: DEFAULT_FIRST_RESPONSE_CAP,
            load_cap: None,
            deferred_first_proof: false,
        }
    }

    /// # Errors
    /// A [`PolicyError`].
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.accepted_tokens.is_empty() || self.service_ids.is_empty() {
            return Err(PolicyError::Empty);
        }
        if self.accepted_tokens.len() > ACCEPTED_TOKENS_MAX || self.service_ids.len() > SERVICE_IDS_MAX {
            return Err(PolicyError::TooMany);
        }
        for (i, token) in self.accepted_tokens.iter().enumerate() {
            if self.accepted_tokens.iter().skip(i.saturating_add(1)).any(|t| t.token_id == token.token_id) {
                return Err(PolicyError::DuplicateToken);
            }
        }
        if self.service_ids.iter().any(|s| s.len() > SERVICE_ID_MAX_LEN) {
            return Err(PolicyError::ServiceIdTooLong);
        }
        if self.load_cap.is_some_and(|c| c.window_secs == 0) {
            return Err(PolicyError::BadLoadCap);
        }
        Ok(())
    }

    /// The wire policy (`StreamProviderPolicy`).
    #[must_use]
    pub fn wire(&self) -> StreamProviderPolicy {
        StreamProviderPolicy {
            max_create_stream_deadline_delay: self.max_create_stream_deadline_delay,
            vault_proof_max_response_bytes: self.first_response_cap,
            accepted_tokens: self.accepted_tokens.clone(),
        }
    }

    /// The discovery advertisement.
    #[must_use]
    pub fn advert(&self) -> ProviderAdvert {
        ProviderAdvert {
            policy: self.wire(),
            provider_id: self.provider_id,
            service_ids: self.service_ids.clone(),
            deferred_first_proof: self.deferred_first_proof,
            load_cap: self.load_cap,
        }
    }

    /// Whether `service_id` is served.
    #[must_use]
    pub fn accepts_service(&self, service_id: &[u8]) -> bool {
        self.service_ids.iter().any(|s| s.as_bytes() == service_id)
    }
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

/// Operating limits of the engine (not advertised).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EngineLimits {
    /// Fail closed when the chain view was last refreshed longer ago than this (wall clock).
    pub staleness_bound_ms: u64,
    /// Most parameter attempts per vault within `attempt_window_secs`.
    pub attempt_cap: u32,
    pub attempt_window_secs: u64,
    /// Re-check a bound stream this long before its planned depletion.
    pub recheck_lead_secs: u64,
    /// Claim once a stream's accrued amount reaches this.
    pub claim_threshold: u128,
    /// How long ended sessions are kept (to answer their users precisely) before being purged.
    pub ended_retention_secs: u64,
    /// `resume_after` offset for TEMPORARY terminations caused by a stale chain view.
    pub stale_backoff_secs: u64,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            // Clock01 ticks every block; 30 s without a block means the view cannot be trusted.
            staleness_bound_ms: 30_000,
            attempt_cap: DEFAULT_ATTEMPT_CAP,
            attempt_window_secs: DEFAULT_ATTEMPT_WINDOW_SECS,
            // One minute leaves room for a claim and a top-up notice before depletion.
            recheck_lead_secs: 60,
            claim_threshold: 1_000,
            // A day: long enough for users to see why their session ended.
            ended_retention_secs: 86_400,
            stale_backoff_secs: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ProviderPolicy {
        let mut p = ProviderPolicy::new(
            [7; 32],
            vec!["/vac/waku/store-query/3.0.0".into()],
            vec![TokenStreamPolicy { token_id: [0; 32], min_rate: 1, min_allocation: 100 }],
        );
        p.load_cap = Some(LoadCap { window_secs: 60, max_requests: 10, max_bytes: 1 << 20 });
        p.deferred_first_proof = true;
        p
    }

    #[test]
    fn defaults_are_the_spec_recommendations() {
        let p = ProviderPolicy::new([0; 32], vec!["s".into()], vec![]);
        assert_eq!(p.max_create_stream_deadline_delay, 300);
        assert_eq!(p.first_response_cap, 65_536);
        assert_eq!(p.validate(), Err(PolicyError::Empty));
        assert!(policy().validate().is_ok());
    }

    #[test]
    fn advert_round_trips_and_decoding_is_strict() {
        let advert = policy().advert();
        let bytes = advert.encode();
        assert_eq!(ProviderAdvert::decode(&bytes), Ok(advert.clone()));
        let mut without_cap = advert.clone();
        without_cap.load_cap = None;
        for cut in 0..bytes.len() {
            // The only prefix that decodes is the one that drops the whole optional load cap.
            if let Ok(decoded) = ProviderAdvert::decode(bytes.get(..cut).unwrap_or_default()) {
                assert_eq!(decoded, without_cap, "prefix {cut}");
                assert_eq!(cut, without_cap.encode().len());
            }
        }
        let mut no_cap = advert;
        no_cap.load_cap = None;
        no_cap.deferred_first_proof = false;
        assert_eq!(ProviderAdvert::decode(&no_cap.encode()), Ok(no_cap));
        assert!(ProviderAdvert::decode(&[0xff; 40]).is_err());
        assert!(ProviderAdvert::decode(&vec![0; ADVERT_MAX_LEN + 1]).is_err());
    }

    #[test]
    fn duplicate_tokens_are_refused() {
        let mut p = policy();
        p.accepted_tokens.push(p.accepted_tokens.first().copied().expect("one"));
        assert_eq!(p.validate(), Err(PolicyError::DuplicateToken));
    }
}
