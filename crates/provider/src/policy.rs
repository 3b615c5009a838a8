//! What a provider accepts, how it advertises it, and the engine's operating limits.

use paystreams_rpc::ExtensionsView;
use paystreams_wire::{
    ACCEPTED_TOKENS_MAX, ExtensionTerms, LoadCap, ProviderAdvert, ReceiptTerms, SERVICE_ID_MAX_LEN, SERVICE_IDS_MAX,
    StreamProviderPolicy, TokenStreamPolicy, recommended,
};

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
    /// The on-chain stream extensions served, and on what terms (advertised; checked when a
    /// session is bound to its stream, [`ProviderPolicy::check_extensions`]).
    pub extensions: ExtensionTerms,
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
            max_create_stream_deadline_delay: recommended::MAX_CREATE_STREAM_DEADLINE_DELAY_SECS,
            first_response_cap: recommended::VAULT_PROOF_MAX_RESPONSE_BYTES,
            load_cap: None,
            deferred_first_proof: false,
            extensions: ExtensionTerms::default(),
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
            extensions: Some(self.extensions),
        }
    }

    /// Whether a stream with these extension settings (`None`: no extension block) may back a
    /// session. `Err` names the first extension that does not fit and what this provider
    /// accepts, for the refusal's description.
    ///
    /// # Errors
    /// The description of the mismatch.
    pub fn check_extensions(&self, ext: Option<&ExtensionsView>) -> Result<(), String> {
        let terms = &self.extensions;
        let fee = ext.map_or(0, |e| e.activation_fee.0);
        if fee > 0 && !terms.activation_fee_accepted {
            return Err(format!("the stream has an activation fee of {fee}; this provider accepts no activation fee"));
        }
        if fee < terms.activation_fee_min {
            return Err(format!(
                "the stream's activation fee is {fee}; this provider requires an activation fee of at least {}",
                terms.activation_fee_min
            ));
        }
        let pause = ext.map_or(0, |e| e.auto_pause_after);
        if pause > 0 && !terms.auto_pause_accepted {
            return Err(format!("the stream auto-pauses after {pause} s; this provider accepts no auto-pause"));
        }
        if pause > 0 && pause < terms.auto_pause_min_secs {
            return Err(format!(
                "the stream auto-pauses after {pause} s; this provider accepts auto-pause of at least {} s",
                terms.auto_pause_min_secs
            ));
        }
        if ext.is_some_and(|e| e.auto_claim_on_provider_close) && !terms.auto_claim_on_close_accepted {
            return Err(
                "the stream has automatic claim on provider close; this provider accepts no automatic claim".into()
            );
        }
        let has_receipt_key = ext.is_some_and(|e| e.receipt_key.is_some());
        match terms.receipts {
            ReceiptTerms::Refused if has_receipt_key => {
                Err("the stream has a delivery-receipt key; this provider refuses delivery receipts (create the stream without a receipt key)".into())
            }
            ReceiptTerms::Required if !has_receipt_key => Err(
                "the stream has no delivery-receipt key; this provider requires delivery receipts (create the stream with your session key as receipt key)".into(),
            ),
            _ => Ok(()),
        }
    }

    /// Whether `service_id` is served.
    #[must_use]
    pub fn accepts_service(&self, service_id: &[u8]) -> bool {
        self.service_ids.iter().any(|s| s.as_bytes() == service_id)
    }
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
    /// Most sessions one `tick` visits, most due depletion re-checks it runs and most claimable
    /// streams it examines (each sweep resumes where the last tick stopped).
    pub tick_sessions_max: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        Self {
            // Clock01 ticks every block; 30 s without a block means the view cannot be trusted.
            staleness_bound_ms: 30_000,
            attempt_cap: recommended::PARAMS_ATTEMPTS_MAX,
            attempt_window_secs: recommended::PARAMS_ATTEMPT_WINDOW_SECS,
            // One minute leaves room for a claim and a top-up notice before depletion.
            recheck_lead_secs: 60,
            claim_threshold: 1_000,
            // A day: long enough for users to see why their session ended.
            ended_retention_secs: 86_400,
            stale_backoff_secs: 30,
            // A few seconds of chain reads at worst per tick; a million sessions are all visited
            // within about a thousand ticks.
            tick_sessions_max: 1_024,
        }
    }
}

#[cfg(test)]
mod tests {
    use paystreams_wire::ADVERT_MAX_LEN;

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
        // A prefix decodes only when it ends between fields, after at least one service id: the
        // fields cut off read as absent (no further service ids, no deferral, no load cap, no
        // extension terms); a cut inside a field is refused.
        let mut decoded_prefixes = 0_usize;
        for cut in 0..bytes.len() {
            if let Ok(decoded) = ProviderAdvert::decode(bytes.get(..cut).unwrap_or_default()) {
                decoded_prefixes += 1;
                assert_eq!(
                    (&decoded.policy, decoded.provider_id),
                    (&advert.policy, advert.provider_id),
                    "prefix {cut}"
                );
                assert!(advert.service_ids.starts_with(&decoded.service_ids), "prefix {cut}");
                assert!(decoded.deferred_first_proof == advert.deferred_first_proof || !decoded.deferred_first_proof);
                assert!(decoded.load_cap == advert.load_cap || decoded.load_cap.is_none(), "prefix {cut}");
                assert_eq!(decoded.extensions, None, "prefix {cut}");
            }
        }
        let boundaries = advert.service_ids.len() + 1 + usize::from(advert.load_cap.is_some());
        assert_eq!(decoded_prefixes, boundaries);
        let mut no_cap = advert;
        no_cap.load_cap = None;
        no_cap.deferred_first_proof = false;
        assert_eq!(ProviderAdvert::decode(&no_cap.encode()), Ok(no_cap));
        assert!(ProviderAdvert::decode(&[0xff; 40]).is_err());
        assert!(ProviderAdvert::decode(&vec![0; ADVERT_MAX_LEN + 1]).is_err());
    }

    fn view(fee: u128, pause: u64, auto_claim: bool, receipt_key: Option<&str>) -> ExtensionsView {
        ExtensionsView {
            auto_pause_after: pause,
            auto_pause_anchor: 0,
            activation_fee: paystreams_rpc::Amount(fee),
            auto_claim_on_provider_close: auto_claim,
            receipt_key: receipt_key.map(str::to_owned),
            receipt_paid: paystreams_rpc::Amount(0),
        }
    }

    #[test]
    fn extensions_are_checked_against_the_terms() {
        let mut p = policy();
        // Defaults: no extensions, auto-pause of a minute or more, fees, auto-claim: served.
        assert_eq!(p.check_extensions(None), Ok(()));
        assert_eq!(p.check_extensions(Some(&view(7, 60, true, None))), Ok(()));
        let short = p.check_extensions(Some(&view(0, 59, false, None))).expect_err("short auto-pause");
        assert!(short.contains("at least 60 s"), "{short}");
        let receipts = p.check_extensions(Some(&view(0, 0, false, Some("ab")))).expect_err("receipts refused");
        assert!(receipts.contains("refuses delivery receipts"), "{receipts}");
        p.extensions.receipts = ReceiptTerms::Accepted;
        assert_eq!(p.check_extensions(Some(&view(0, 0, false, Some("ab")))), Ok(()));
        assert_eq!(p.check_extensions(None), Ok(()));
        p.extensions.receipts = ReceiptTerms::Required;
        let required = p.check_extensions(None).expect_err("receipts required");
        assert!(required.contains("requires delivery receipts"), "{required}");
        p.extensions.receipts = ReceiptTerms::Refused;
        p.extensions.activation_fee_min = 10;
        assert!(p.check_extensions(None).expect_err("fee required").contains("at least 10"));
        assert!(p.check_extensions(Some(&view(9, 0, false, None))).is_err());
        assert_eq!(p.check_extensions(Some(&view(10, 0, false, None))), Ok(()));
        p.extensions.activation_fee_min = 0;
        p.extensions.activation_fee_accepted = false;
        p.extensions.auto_pause_accepted = false;
        p.extensions.auto_claim_on_close_accepted = false;
        assert_eq!(p.check_extensions(Some(&view(0, 0, false, None))), Ok(()));
        assert!(p.check_extensions(Some(&view(1, 0, false, None))).expect_err("fee").contains("no activation fee"));
        assert!(p.check_extensions(Some(&view(0, 600, false, None))).expect_err("pause").contains("no auto-pause"));
        assert!(p.check_extensions(Some(&view(0, 0, true, None))).expect_err("claim").contains("no automatic claim"));
    }

    #[test]
    fn extension_terms_round_trip_and_an_advert_without_them_decodes() {
        let mut p = policy();
        p.extensions = ExtensionTerms {
            activation_fee_accepted: false,
            activation_fee_min: u128::MAX,
            auto_pause_accepted: true,
            auto_pause_min_secs: 3600,
            auto_claim_on_close_accepted: false,
            receipts: ReceiptTerms::Required,
        };
        let advert = p.advert();
        assert_eq!(ProviderAdvert::decode(&advert.encode()), Ok(advert.clone()));
        // An older provider's advert (no field 6) states no terms.
        let mut old = advert.clone();
        old.extensions = None;
        assert_eq!(ProviderAdvert::decode(&old.encode()).expect("decode").extensions, None);
        // Strict: an unknown receipts value and a fee of the wrong width are refused.
        let mut bytes = old.encode();
        bytes.extend_from_slice(&[0x32, 0x04, 0x08, 0x00, 0x30, 0x03]);
        assert!(ProviderAdvert::decode(&bytes).is_err());
        let mut bytes = old.encode();
        bytes.extend_from_slice(&[0x32, 0x06, 0x08, 0x01, 0x12, 0x02, 0x00, 0x01]);
        assert!(matches!(ProviderAdvert::decode(&bytes), Err(paystreams_wire::WireError::WrongLength { .. })));
    }

    #[test]
    fn duplicate_tokens_are_refused() {
        let mut p = policy();
        p.accepted_tokens.push(p.accepted_tokens.first().copied().expect("one"));
        assert_eq!(p.validate(), Err(PolicyError::DuplicateToken));
    }
}
