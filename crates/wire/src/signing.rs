//! Canonical signing bytes: `digest = SHA-256(32-byte domain prefix || Borsh body)`, signed
//! with BIP-340 (verifying with libsecp256k1; the owner's proposal signature with k256, the
//! per-request stream proofs with libsecp256k1, which signs the same bytes faster). The owner
//! signs the whole proposal (vault-owner authorization); the session key signs each request (a
//! service-defined canonical request, e.g. Store's).

use borsh::{BorshDeserialize, BorshSerialize};
use paystreams_lez_core::{crypto::SecretKey, domain_prefix, sha256};
pub use paystreams_sigcheck::Signer;
use paystreams_sigcheck::verify_bip340;

use crate::{
    WireError,
    messages::{StreamParams, StreamProof, StreamProposal, VaultProof},
};

/// Domain prefix of the vault-owner authorization digest.
pub const VAULT_OWNER_AUTH_PREFIX: [u8; 32] = domain_prefix("/LEZ/v0.1/VaultOwnerAuth/");
/// Domain prefix of the Store eligibility (stream proof) digest.
pub const STORE_ELIGIBILITY_PREFIX: [u8; 32] = domain_prefix("/LEZ/v0.1/StoreEligibility/");

/// A service request with canonical signing bytes. Implement it for each paid service; the
/// stream proof signs [`RequestDigest::digest`].
pub trait RequestDigest {
    /// The service's 32-byte domain prefix.
    fn domain_prefix(&self) -> [u8; 32];
    /// The canonical body bytes (without the prefix).
    fn canonical_body(&self) -> Vec<u8>;
    /// `prefix || body`, the payload the reference passes between modules.
    fn canonical_payload(&self) -> Vec<u8> {
        let mut payload = self.domain_prefix().to_vec();
        payload.extend(self.canonical_body());
        payload
    }
    /// `SHA-256(prefix || body)`.
    fn digest(&self) -> [u8; 32] {
        sha256(&[&self.domain_prefix(), &self.canonical_body()])
    }
}

/// The Borsh body the vault owner signs, fields in the spec's order.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct VaultOwnerAuthBody {
    pub vault_id: u64,
    pub provider_id: [u8; 32],
    pub owner_public_key: [u8; 32],
    pub service_id: String,
    pub token_id: [u8; 32],
    pub rate: u64,
    pub allocation: u128,
    pub create_stream_deadline: u64,
    pub session_public_key: [u8; 32],
}

impl VaultOwnerAuthBody {
    /// The body for a proposal (its signature field is ignored).
    ///
    /// # Errors
    /// [`WireError::ServiceIdNotUtf8`].
    pub fn from_proposal(proposal: &StreamProposal) -> Result<Self, WireError> {
        Self::from_parts(&proposal.vault_proof, &proposal.stream_params, &proposal.public_key)
    }

    fn from_parts(vault: &VaultProof, params: &StreamParams, session: &[u8; 32]) -> Result<Self, WireError> {
        Ok(Self {
            vault_id: vault.vault_id,
            provider_id: vault.provider_id,
            owner_public_key: vault.owner_public_key,
            service_id: params.service_id_str()?.to_owned(),
            token_id: vault.token_id,
            rate: params.stream_rate,
            allocation: u128::from(params.allocation),
            create_stream_deadline: params.create_stream_deadline,
            session_public_key: *session,
        })
    }

    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        sha256(&[&VAULT_OWNER_AUTH_PREFIX, &self.to_bytes()])
    }
}

/// Builds and signs a proposal: the owner key's x-only public key goes into the vault proof and
/// the owner signs every other field plus the session key.
///
/// # Errors
/// [`WireError::ServiceIdNotUtf8`] or [`WireError::ServiceIdTooLong`].
pub fn sign_proposal(
    owner: &SecretKey,
    vault_id: u64,
    provider_id: [u8; 32],
    token_id: [u8; 32],
    stream_params: StreamParams,
    session_public_key: [u8; 32],
    aux_rand: Option<&[u8; 32]>,
) -> Result<StreamProposal, WireError> {
    if stream_params.service_id.len() > crate::messages::SERVICE_ID_MAX_LEN {
        return Err(WireError::ServiceIdTooLong(stream_params.service_id.len()));
    }
    let mut vault_proof = VaultProof {
        vault_id,
        provider_id,
        owner_public_key: owner.public_key().to_bytes(),
        owner_signature: [0; 64],
        token_id,
    };
    let digest = VaultOwnerAuthBody::from_parts(&vault_proof, &stream_params, &session_public_key)?.digest();
    vault_proof.owner_signature = match aux_rand {
        Some(aux) => owner.sign_with_aux(&digest, aux).0,
        None => owner.sign(&digest).0,
    };
    Ok(StreamProposal { vault_proof, stream_params, public_key: session_public_key })
}

/// Verifies a proposal's owner signature against its own `owner_public_key`. Binding that key
/// to the on-chain vault owner is the provider's next check.
///
/// # Errors
/// [`WireError::ServiceIdNotUtf8`], [`WireError::InvalidPublicKey`] or
/// [`WireError::BadSignature`].
pub fn verify_proposal(proposal: &StreamProposal) -> Result<(), WireError> {
    let digest = VaultOwnerAuthBody::from_proposal(proposal)?.digest();
    let key = &proposal.vault_proof.owner_public_key;
    paystreams_lez_core::crypto::PublicKey::from_bytes(*key)
        .map_err(|_| WireError::InvalidPublicKey("vault_proof.owner_public_key"))?;
    if verify_bip340(key, &digest, &proposal.vault_proof.owner_signature) {
        Ok(())
    } else {
        Err(WireError::BadSignature)
    }
}

/// Signs a request digest with the session key for `stream_id`. This derives the key pair on
/// every call; a user signing many requests with one session key keeps a [`Signer`] and calls
/// [`sign_stream_proof_with`].
#[must_use]
pub fn sign_stream_proof(session: &SecretKey, stream_id: u64, request_digest: &[u8; 32]) -> StreamProof {
    match Signer::from_secret_bytes(&session.to_bytes()) {
        Some(signer) => sign_stream_proof_with(&signer, stream_id, request_digest),
        // Unreachable for a valid `SecretKey` (both reject exactly the same scalars); kept so a
        // disagreement still signs correctly.
        None => StreamProof { stream_id, signature: session.sign(request_digest).0 },
    }
}

/// Signs a request digest for `stream_id` with a session key already derived into a [`Signer`],
/// with fresh auxiliary randomness from the operating system.
#[must_use]
pub fn sign_stream_proof_with(session: &Signer, stream_id: u64, request_digest: &[u8; 32]) -> StreamProof {
    let mut aux = [0_u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut aux);
    StreamProof { stream_id, signature: session.sign_bip340(request_digest, &aux) }
}

/// Verifies a stream proof's signature over `request_digest` under `session_public_key`.
#[must_use]
pub fn verify_stream_proof(session_public_key: &[u8; 32], request_digest: &[u8; 32], proof: &StreamProof) -> bool {
    verify_bip340(session_public_key, request_digest, &proof.signature)
}

/// Store v3's canonical request (the `StoreQueryRequest` without its eligibility proof), Borsh in
/// Logos Delivery's field order with presence-byte optionals.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct CanonicalStoreRequest {
    pub request_id: String,
    pub include_data: bool,
    pub pubsub_topic: Option<String>,
    pub content_topics: Vec<String>,
    /// Nanoseconds (Store's unit).
    pub time_start: Option<i64>,
    pub time_end: Option<i64>,
    pub message_hashes: Vec<[u8; 32]>,
    pub pagination_cursor: Option<[u8; 32]>,
    pub pagination_forward: bool,
    pub pagination_limit: Option<u64>,
}

impl RequestDigest for CanonicalStoreRequest {
    fn domain_prefix(&self) -> [u8; 32] {
        STORE_ELIGIBILITY_PREFIX
    }

    fn canonical_body(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }
}
