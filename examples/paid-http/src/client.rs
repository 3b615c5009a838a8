//! The paying client, on the user engine (`paystreams_user::User`): the first request carries a
//! proposal (served within the first-response cap), the user creates the stream, and every later
//! request carries a stream proof signed with the session key, from the user's durable
//! sessions. The requester id is derived from the user's transport identity for this provider:
//! stable across runs, different for every provider.

use std::sync::Arc;

use base64::Engine as _;
use hyper::Method;
use paystreams_lez_core::sha256;
use paystreams_rpc::chain_view::{ChainView, ChainWriter};
use paystreams_user::{Reaction, Session, Terms, User, UserError};
use paystreams_wire::{EligibilityStatus, ProviderAdvert, ServiceTermination, TerminationType};
use rand_core::RngCore as _;

use crate::{
    PROOF_HEADER, REQUEST_ID_HEADER, REQUESTER_HEADER,
    canonical::CanonicalHttpRequest,
    http::{Answer, Http},
};

/// Times a request is retried after a refusal the engine says to retry (adjust, resend fresh).
pub const RETRIES_MAX: u32 = 3;

/// Why a paid request failed.
#[derive(Debug, thiserror::Error)]
pub enum PaidHttpError {
    #[error("HTTP: {0}")]
    Http(String),
    #[error(transparent)]
    User(#[from] UserError),
    #[error("the service's policy is unusable: {0}")]
    Policy(String),
    #[error("not paid: {0}")]
    Refused(String),
    #[error("the provider paused service until chain time {0}; retry then")]
    Paused(u64),
    #[error("the provider ended the session (stream {stream:?} closed, its unaccrued funds are back in the vault)")]
    Terminated { stream: Option<u64> },
    #[error("the service answered {status}: {body}")]
    Status { status: u16, body: String },
}

/// A served answer.
#[derive(Clone, Debug)]
pub struct Paid {
    pub body: Vec<u8>,
    /// The stream created on chain for this answer (the first one of a session).
    pub stream_created: Option<u64>,
}

/// A client of one paid HTTP service.
#[derive(Debug)]
pub struct PaidHttp<C> {
    base: String,
    http: Http,
    user: Arc<User<C>>,
    advert: ProviderAdvert,
    terms: Terms,
    requester: String,
}

/// A fresh request id (16 random bytes, hex).
#[must_use]
pub fn request_id() -> String {
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The requester id for a user's transport identity: `0x` and hex of a hash of it (the
/// identity's secret never leaves the user).
#[must_use]
pub fn requester_id(transport_identity: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(sha256(&[b"/paystreams/v1/HttpRequester/", transport_identity])))
}

/// A verdict as the service sends it: from a 402's JSON, or OK.
fn verdict(answer: &Answer) -> Option<(EligibilityStatus, Option<ServiceTermination>)> {
    let json = answer.json();
    let termination = json["termination"].as_object().and_then(|t| {
        let resume_after = t.get("resume_after")?.as_str()?.parse().ok()?;
        let termination_type = match t.get("type")?.as_str()? {
            "PERMANENT" => TerminationType::Permanent,
            "TEMPORARY" => TerminationType::Temporary,
            _ => return None,
        };
        Some(ServiceTermination { termination_type, resume_after })
    });
    if answer.status == 200 {
        return Some((EligibilityStatus::ok(), None));
    }
    if answer.status != 402 {
        return None;
    }
    let status = &json["status"];
    let code = u32::try_from(status["code"].as_u64()?).ok()?;
    let reason = status["reason"].as_str()?.to_owned();
    Some((EligibilityStatus { status_code: code, status_desc: reason }, termination))
}

impl<C: ChainView + ChainWriter + 'static> PaidHttp<C> {
    /// Reads the service's policy (`GET {base}/policy`) and selects the user's session for it.
    ///
    /// # Errors
    /// The service is unreachable, its advert does not decode or does not offer `terms`'s
    /// service, or the user's store fails.
    pub async fn connect(base: &str, user: Arc<User<C>>, terms: Terms) -> Result<Self, PaidHttpError> {
        let base = base.trim_end_matches('/').to_owned();
        let http = Http::default();
        let answer =
            http.send(Method::GET, &format!("{base}/policy"), &[], Vec::new()).await.map_err(PaidHttpError::Http)?;
        let encoded = answer.json()["advert"].as_str().map(str::to_owned).ok_or_else(|| {
            PaidHttpError::Policy(format!("GET /policy answered {} without an advert", answer.status))
        })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| PaidHttpError::Policy(e.to_string()))?;
        let advert = ProviderAdvert::decode(&bytes).map_err(|e| PaidHttpError::Policy(e.to_string()))?;
        if !advert.service_ids.contains(&terms.service_id) {
            return Err(PaidHttpError::Policy(format!("it serves {:?}", advert.service_ids)));
        }
        if user.select(&advert.provider_id, terms.vault_id, &terms.service_id).await? {
            user.usable(&advert.provider_id).await?;
        }
        let requester = requester_id(&user.transport_identity(&advert.provider_id).await?);
        Ok(Self { base, http, user, advert, terms, requester })
    }

    #[must_use]
    pub const fn advert(&self) -> &ProviderAdvert {
        &self.advert
    }

    #[must_use]
    pub fn requester(&self) -> &str {
        &self.requester
    }

    /// The session with this service, if any.
    ///
    /// # Errors
    /// The user's store fails.
    pub fn session(&self) -> Result<Option<Session>, PaidHttpError> {
        Ok(self.user.find(&self.advert.provider_id, self.terms.vault_id, &self.terms.service_id)?)
    }

    /// Sends one `GET path_and_query` with exactly these headers (for tests of what the service
    /// refuses).
    ///
    /// # Errors
    /// No answer.
    pub async fn raw_get(&self, path_and_query: &str, headers: &[(&str, String)]) -> Result<Answer, PaidHttpError> {
        self.http
            .send(Method::GET, &format!("{}{path_and_query}", self.base), headers, Vec::new())
            .await
            .map_err(PaidHttpError::Http)
    }

    /// The headers of a paid `GET path_and_query` with `proof` and a fresh request id.
    #[must_use]
    pub fn headers(&self, request_id: &str, proof: &[u8]) -> Vec<(&'static str, String)> {
        vec![
            (REQUESTER_HEADER, self.requester.clone()),
            (REQUEST_ID_HEADER, request_id.to_owned()),
            (PROOF_HEADER, base64::engine::general_purpose::STANDARD.encode(proof)),
        ]
    }

    /// A stream proof for `GET path_and_query` under `request_id` (the session must have a
    /// stream).
    ///
    /// # Errors
    /// No session with a stream, or the user's store fails.
    pub async fn proof_headers(
        &self,
        path_and_query: &str,
        request_id: &str,
    ) -> Result<Vec<(&'static str, String)>, PaidHttpError> {
        let session = self
            .session()?
            .filter(|s| s.phase.stream_id().is_some())
            .ok_or_else(|| PaidHttpError::Refused("no session with a stream yet".into()))?;
        let canonical = CanonicalHttpRequest::new("GET", path_and_query, request_id, b"");
        let proof = self.user.proof_for(&session, &canonical).await?;
        Ok(self.headers(request_id, &proof))
    }

    /// `GET path_and_query`, paid: a proposal when there is no session with a stream, else a
    /// stream proof; reacts to the verdict as the user engine says (creates the stream, retries
    /// what may be retried, closes on a PERMANENT termination).
    ///
    /// # Errors
    /// Not paid (with the service's reason), paused, terminated, or a transport failure.
    pub async fn get(&self, path_and_query: &str) -> Result<Paid, PaidHttpError> {
        let provider = self.advert.provider_id;
        let mut retries = 0u32;
        loop {
            let id = request_id();
            let session = self.session()?.filter(|s| s.phase.stream_id().is_some());
            let proposing = session.is_none();
            let proof = match &session {
                None => self.user.propose(&self.advert, &self.terms).await?,
                Some(session) => {
                    let canonical = CanonicalHttpRequest::new("GET", path_and_query, &id, b"");
                    self.user.proof_for(session, &canonical).await?
                }
            };
            let answer = self.raw_get(path_and_query, &self.headers(&id, &proof)).await?;
            let Some((status, termination)) = verdict(&answer) else {
                return Err(PaidHttpError::Status {
                    status: answer.status,
                    body: String::from_utf8_lossy(&answer.body).into_owned(),
                });
            };
            let reaction = if proposing {
                self.user.on_proposal_status(&provider, &status, termination).await?
            } else {
                self.user.on_proof_status(&provider, &status, termination).await?
            };
            match reaction {
                Reaction::Served | Reaction::StreamCreated { .. } => {
                    let stream_created = match reaction {
                        Reaction::StreamCreated { stream_id } => Some(stream_id),
                        _ => None,
                    };
                    return Ok(Paid { body: answer.body, stream_created });
                }
                Reaction::Adjust { desc } | Reaction::ResendFresh { desc } => {
                    retries = retries.saturating_add(1);
                    if retries > RETRIES_MAX {
                        return Err(PaidHttpError::Refused(desc));
                    }
                }
                Reaction::Abandon { desc } | Reaction::StreamInactive { desc, .. } => {
                    return Err(PaidHttpError::Refused(desc));
                }
                Reaction::WaitUntil { resume_after } => return Err(PaidHttpError::Paused(resume_after)),
                Reaction::Closed { stream_id } => return Err(PaidHttpError::Terminated { stream: stream_id }),
                Reaction::Ignored => return Err(PaidHttpError::Refused("the answer named no session".into())),
            }
        }
    }

    /// Closes the session's stream (the unaccrued rest returns to the vault).
    ///
    /// # Errors
    /// The user's store or the chain fails.
    pub async fn close(&self) -> Result<Option<u64>, PaidHttpError> {
        let Some(session) = self.session()? else { return Ok(None) };
        Ok(self.user.close_session(&session.session_id).await?)
    }
}
