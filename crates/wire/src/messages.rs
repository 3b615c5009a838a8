//! The LIP-155 off-chain messages with strict decoders and reference-compatible encoders.

use paystreams_lez_core::crypto::PublicKey;

use crate::{
    WireError,
    proto::{Reader, Writer, bytes, fixed, uint},
};

/// Longest `service_id`, in bytes.
pub const SERVICE_ID_MAX_LEN: usize = 128;
/// Largest encoded `EligibilityProof` (a Store proposal is 257 bytes; leaves room for longer
/// service ids).
pub const ELIGIBILITY_PROOF_MAX_LEN: usize = 1024;
/// Largest encoded `StreamProviderPolicy`.
pub const POLICY_MAX_LEN: usize = 4096;
/// Most `accepted_tokens` a policy may list (the spec's recommended maximum).
pub const ACCEPTED_TOKENS_MAX: usize = 16;
/// Longest `EligibilityStatus.status_desc` (the reference's description buffer is 512 bytes).
pub const STATUS_DESC_MAX_LEN: usize = 512;
/// Largest encoded `ServiceTermination` / `EligibilityStatus`.
pub const SMALL_MESSAGE_MAX_LEN: usize = 1024;

fn check_size(bytes: &[u8], max: usize) -> Result<(), WireError> {
    if bytes.len() > max { Err(WireError::TooLarge { size: bytes.len(), max }) } else { Ok(()) }
}

fn required<T>(slot: Option<T>, field: &'static str) -> Result<T, WireError> {
    slot.ok_or(WireError::MissingField(field))
}

/// `VaultProof`: which vault backs the proposal, for which provider, signed by the owner.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VaultProof {
    pub vault_id: u64,
    pub provider_id: [u8; 32],
    pub owner_public_key: [u8; 32],
    pub owner_signature: [u8; 64],
    pub token_id: [u8; 32],
}

impl VaultProof {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .bytes(1, &self.vault_id.to_le_bytes())
            .bytes(2, &self.provider_id)
            .bytes(3, &self.owner_public_key)
            .bytes(4, &self.owner_signature)
            .bytes(5, &self.token_id)
            .finish()
    }

    /// # Errors
    /// Any malformed, missing or wrong-width field.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let (mut vault_id, mut provider_id, mut owner_public_key, mut owner_signature, mut token_id) =
            (None, None, None, None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => vault_id = Some(u64::from_le_bytes(fixed::<8>(value, "vault_proof.vault_id")?)),
                2 => provider_id = Some(fixed::<32>(value, "vault_proof.provider_id")?),
                3 => owner_public_key = Some(fixed::<32>(value, "vault_proof.owner_public_key")?),
                4 => owner_signature = Some(fixed::<64>(value, "vault_proof.owner_signature")?),
                5 => token_id = Some(fixed::<32>(value, "vault_proof.token_id")?),
                _ => {}
            }
        }
        Ok(Self {
            vault_id: required(vault_id, "vault_proof.vault_id")?,
            provider_id: required(provider_id, "vault_proof.provider_id")?,
            owner_public_key: required(owner_public_key, "vault_proof.owner_public_key")?,
            owner_signature: required(owner_signature, "vault_proof.owner_signature")?,
            token_id: required(token_id, "vault_proof.token_id")?,
        })
    }
}

/// `StreamParams`: the proposed stream terms.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StreamParams {
    /// At most [`SERVICE_ID_MAX_LEN`] bytes; UTF-8 is required when signing.
    pub service_id: Vec<u8>,
    pub stream_rate: u64,
    /// Protobuf `uint64`; zero-extended to `u128` on chain and in the owner-auth body.
    pub allocation: u64,
    /// Chain time in seconds.
    pub create_stream_deadline: u64,
}

impl StreamParams {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .bytes(1, &self.service_id)
            .uint(2, self.stream_rate)
            .uint(3, self.allocation)
            .uint(4, self.create_stream_deadline)
            .finish()
    }

    /// # Errors
    /// Any malformed field, or a `service_id` over 128 bytes (absent fields read as zero / empty).
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let (mut service_id, mut rate, mut allocation, mut deadline) = (None, None, None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => {
                    let id = bytes(value, "stream_params.service_id")?;
                    if id.len() > SERVICE_ID_MAX_LEN {
                        return Err(WireError::ServiceIdTooLong(id.len()));
                    }
                    service_id = Some(id.to_vec());
                }
                2 => rate = Some(uint(value, "stream_params.stream_rate")?),
                3 => allocation = Some(uint(value, "stream_params.allocation")?),
                4 => deadline = Some(uint(value, "stream_params.create_stream_deadline")?),
                _ => {}
            }
        }
        Ok(Self {
            service_id: service_id.unwrap_or_default(),
            stream_rate: rate.unwrap_or(0),
            allocation: allocation.unwrap_or(0),
            create_stream_deadline: deadline.unwrap_or(0),
        })
    }

    /// The service id as UTF-8.
    ///
    /// # Errors
    /// [`WireError::ServiceIdNotUtf8`].
    pub fn service_id_str(&self) -> Result<&str, WireError> {
        std::str::from_utf8(&self.service_id).map_err(|_| WireError::ServiceIdNotUtf8)
    }
}

/// `StreamProposal`: vault proof, terms and the session key for later stream proofs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StreamProposal {
    pub vault_proof: VaultProof,
    pub stream_params: StreamParams,
    pub public_key: [u8; 32],
}

impl StreamProposal {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .bytes(1, &self.vault_proof.encode())
            .bytes(2, &self.stream_params.encode())
            .bytes(3, &self.public_key)
            .finish()
    }

    /// # Errors
    /// Any malformed or missing field.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let (mut vault_proof, mut params, mut public_key) = (None, None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => vault_proof = Some(VaultProof::decode(bytes(value, "stream_proposal.vault_proof")?)?),
                2 => params = Some(StreamParams::decode(bytes(value, "stream_proposal.stream_params")?)?),
                3 => public_key = Some(fixed::<32>(value, "stream_proposal.public_key")?),
                _ => {}
            }
        }
        Ok(Self {
            vault_proof: required(vault_proof, "stream_proposal.vault_proof")?,
            stream_params: required(params, "stream_proposal.stream_params")?,
            public_key: required(public_key, "stream_proposal.public_key")?,
        })
    }

    /// The session key, validated as a curve point.
    ///
    /// # Errors
    /// [`WireError::InvalidPublicKey`].
    pub fn session_key(&self) -> Result<PublicKey, WireError> {
        PublicKey::from_bytes(self.public_key).map_err(|_| WireError::InvalidPublicKey("stream_proposal.public_key"))
    }
}

/// `StreamProof`: names the stream and signs the request with the session key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StreamProof {
    pub stream_id: u64,
    pub signature: [u8; 64],
}

impl StreamProof {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new().bytes(1, &self.stream_id.to_le_bytes()).bytes(2, &self.signature).finish()
    }

    /// # Errors
    /// Any malformed, missing or wrong-width field.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let (mut stream_id, mut signature) = (None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => stream_id = Some(u64::from_le_bytes(fixed::<8>(value, "stream_proof.stream_id")?)),
                2 => signature = Some(fixed::<64>(value, "stream_proof.signature")?),
                _ => {}
            }
        }
        Ok(Self {
            stream_id: required(stream_id, "stream_proof.stream_id")?,
            signature: required(signature, "stream_proof.signature")?,
        })
    }
}

/// `EligibilityProof`: exactly one of a proposal (field 2) or a proof (field 3).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum EligibilityProof {
    Proposal(StreamProposal),
    Proof(StreamProof),
}

impl EligibilityProof {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Proposal(p) => Writer::new().bytes(2, &p.encode()).finish(),
            Self::Proof(p) => Writer::new().bytes(3, &p.encode()).finish(),
        }
    }

    /// # Errors
    /// Oversized input, `proof_of_payment` present, neither or both of proposal and proof, or
    /// a malformed inner message.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        check_size(input, ELIGIBILITY_PROOF_MAX_LEN)?;
        let (mut proposal, mut proof) = (None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => return Err(WireError::ProofOfPaymentNotAllowed),
                2 => proposal = Some(bytes(value, "eligibility_proof.stream_proposal")?),
                3 => proof = Some(bytes(value, "eligibility_proof.stream_proof")?),
                _ => {}
            }
        }
        match (proposal, proof) {
            (Some(p), None) => Ok(Self::Proposal(StreamProposal::decode(p)?)),
            (None, Some(p)) => Ok(Self::Proof(StreamProof::decode(p)?)),
            (None, None) => Err(WireError::MissingField("eligibility_proof.stream_proposal|stream_proof")),
            (Some(_), Some(_)) => Err(WireError::BothProposalAndProof),
        }
    }
}

/// `TokenStreamPolicy`: per-token minimums.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TokenStreamPolicy {
    pub token_id: [u8; 32],
    pub min_rate: u64,
    pub min_allocation: u64,
}

impl TokenStreamPolicy {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new().bytes(1, &self.token_id).uint(2, self.min_rate).uint(3, self.min_allocation).finish()
    }

    /// # Errors
    /// Any malformed field or a missing `token_id` (absent minimums read as zero).
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        let (mut token_id, mut min_rate, mut min_allocation) = (None, None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => token_id = Some(fixed::<32>(value, "token_stream_policy.token_id")?),
                2 => min_rate = Some(uint(value, "token_stream_policy.min_rate")?),
                3 => min_allocation = Some(uint(value, "token_stream_policy.min_allocation")?),
                _ => {}
            }
        }
        Ok(Self {
            token_id: required(token_id, "token_stream_policy.token_id")?,
            min_rate: min_rate.unwrap_or(0),
            min_allocation: min_allocation.unwrap_or(0),
        })
    }
}

/// `StreamProviderPolicy`: what a provider accepts.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StreamProviderPolicy {
    pub max_create_stream_deadline_delay: u64,
    pub vault_proof_max_response_bytes: u64,
    /// At least one, at most [`ACCEPTED_TOKENS_MAX`], unique token ids.
    pub accepted_tokens: Vec<TokenStreamPolicy>,
}

impl StreamProviderPolicy {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        writer.uint(1, self.max_create_stream_deadline_delay).uint(2, self.vault_proof_max_response_bytes);
        for token in &self.accepted_tokens {
            writer.bytes(3, &token.encode());
        }
        writer.finish()
    }

    /// # Errors
    /// Oversized input, malformed fields, no accepted token, too many, or a duplicate token id
    /// (absent scalars read as zero).
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        check_size(input, POLICY_MAX_LEN)?;
        let (mut delay, mut cap) = (None, None);
        let mut accepted_tokens = Vec::new();
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => delay = Some(uint(value, "policy.max_create_stream_deadline_delay")?),
                2 => cap = Some(uint(value, "policy.vault_proof_max_response_bytes")?),
                3 => {
                    if accepted_tokens.len() >= ACCEPTED_TOKENS_MAX {
                        return Err(WireError::TooManyTokens(ACCEPTED_TOKENS_MAX));
                    }
                    let token = TokenStreamPolicy::decode(bytes(value, "policy.accepted_tokens")?)?;
                    if accepted_tokens.iter().any(|t: &TokenStreamPolicy| t.token_id == token.token_id) {
                        return Err(WireError::DuplicateToken);
                    }
                    accepted_tokens.push(token);
                }
                _ => {}
            }
        }
        if accepted_tokens.is_empty() {
            return Err(WireError::MissingField("policy.accepted_tokens"));
        }
        Ok(Self {
            max_create_stream_deadline_delay: delay.unwrap_or(0),
            vault_proof_max_response_bytes: cap.unwrap_or(0),
            accepted_tokens,
        })
    }

    /// The entry for `token_id`, if accepted.
    #[must_use]
    pub fn token(&self, token_id: &[u8; 32]) -> Option<&TokenStreamPolicy> {
        self.accepted_tokens.iter().find(|t| t.token_id == *token_id)
    }
}

/// Whether a termination is final.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TerminationType {
    Temporary = 0,
    Permanent = 1,
}

/// `ServiceTermination`, sent by a provider before it stops serving a session.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ServiceTermination {
    pub termination_type: TerminationType,
    /// Chain time (seconds) after which service may resume; zero for PERMANENT.
    pub resume_after: u64,
}

impl ServiceTermination {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new().uint(1, self.termination_type as u64).uint(2, self.resume_after).finish()
    }

    /// # Errors
    /// Malformed fields, an unknown type, or a PERMANENT termination with a non-zero
    /// `resume_after` (absent fields read as zero: TEMPORARY, resume at 0).
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        check_size(input, SMALL_MESSAGE_MAX_LEN)?;
        let (mut kind, mut resume_after) = (None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => kind = Some(uint(value, "termination.termination_type")?),
                2 => resume_after = Some(uint(value, "termination.resume_after")?),
                _ => {}
            }
        }
        let termination_type = match kind.unwrap_or(0) {
            0 => TerminationType::Temporary,
            1 => TerminationType::Permanent,
            other => return Err(WireError::UnknownEnum { field: "termination.termination_type", value: other }),
        };
        let resume_after = resume_after.unwrap_or(0);
        if termination_type == TerminationType::Permanent && resume_after != 0 {
            return Err(WireError::InvalidFrame("PERMANENT termination must have resume_after 0"));
        }
        Ok(Self { termination_type, resume_after })
    }
}

/// `EligibilityStatus.status_code` values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StatusCode {
    Ok = 0,
    ParamsRejected = 1,
    ProofInvalid = 2,
    StreamNotActive = 3,
}

impl StatusCode {
    /// The spec's name for the code (`PARAMS_REJECTED`, ...), as clients print it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::ParamsRejected => "PARAMS_REJECTED",
            Self::ProofInvalid => "PROOF_INVALID",
            Self::StreamNotActive => "STREAM_NOT_ACTIVE",
        }
    }

    /// The reference's default description.
    #[must_use]
    pub const fn default_desc(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ParamsRejected => "params rejected",
            Self::ProofInvalid => "proof invalid",
            Self::StreamNotActive => "stream not active",
        }
    }

    #[must_use]
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Ok),
            1 => Some(Self::ParamsRejected),
            2 => Some(Self::ProofInvalid),
            3 => Some(Self::StreamNotActive),
            _ => None,
        }
    }
}

/// `EligibilityStatus { 1 uint32 status_code; 2 string status_desc }`; both fields always
/// written and required on decode (as the reference Store node does).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EligibilityStatus {
    pub status_code: u32,
    pub status_desc: String,
}

impl EligibilityStatus {
    #[must_use]
    pub fn new(code: StatusCode, desc: impl Into<String>) -> Self {
        Self { status_code: code as u32, status_desc: desc.into() }
    }

    #[must_use]
    pub fn ok() -> Self {
        Self::new(StatusCode::Ok, StatusCode::Ok.default_desc())
    }

    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        Writer::new().uint(1, u64::from(self.status_code)).bytes(2, self.status_desc.as_bytes()).finish()
    }

    /// # Errors
    /// Malformed or missing fields, a code over u32, a description over 512 bytes or not UTF-8.
    pub fn decode(input: &[u8]) -> Result<Self, WireError> {
        check_size(input, SMALL_MESSAGE_MAX_LEN)?;
        let (mut code, mut desc) = (None, None);
        let mut reader = Reader::new(input);
        while let Some((number, value)) = reader.next_field()? {
            match number {
                1 => {
                    let v = uint(value, "eligibility_status.status_code")?;
                    code =
                        Some(u32::try_from(v).map_err(|_| WireError::UnknownEnum {
                            field: "eligibility_status.status_code",
                            value: v,
                        })?);
                }
                2 => {
                    let d = bytes(value, "eligibility_status.status_desc")?;
                    if d.len() > STATUS_DESC_MAX_LEN {
                        return Err(WireError::TooLarge { size: d.len(), max: STATUS_DESC_MAX_LEN });
                    }
                    desc = Some(
                        String::from_utf8(d.to_vec())
                            .map_err(|_| WireError::InvalidFrame("status_desc is not UTF-8"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(Self {
            status_code: required(code, "eligibility_status.status_code")?,
            status_desc: required(desc, "eligibility_status.status_desc")?,
        })
    }

    /// The known code, if any.
    #[must_use]
    pub const fn code(&self) -> Option<StatusCode> {
        StatusCode::from_code(self.status_code)
    }
}
