//! The one engine path every paid service runs a request through, whatever its transport
//! (Store over libp2p, the `paystream gate` HTTP API, Lightpush):
//!
//! 1. [`Admission::rate`]: the requester's token bucket ([`PeerLimiter`]), before anything
//!    else is done; a refusal says when to retry;
//! 2. the service decodes and checks its own request, and computes its canonical digest;
//! 3. [`Admission::judge`]: the engine's [`Verdict`] on the `EligibilityProof`
//!    ([`Provider::handle`]); on refusal the service sends the verdict (see [`Described`] and
//!    [`refusal_desc`] for its words), on a grant it may serve at most
//!    [`response_budget`] bytes;
//! 4. [`Admission::finish`]: the response's size is accounted before it is sent
//!    ([`Provider::finish_response`]: the first-response cap, the load cap); a refusal there is
//!    sent instead of the response.
//!
//! Step 2 is the service's own; everything else is here, so every service judges, limits and
//! describes alike.
//!
//! A service whose answer costs work of its own (Store's archive read) may start that work
//! while the verdict is still being reached, but only for a requester in good standing
//! ([`Admission::in_good_standing`]: its last verdict for this service was a stream-proof
//! grant), and it releases the result only on a grant. A requester without a live paying
//! session, or whose last proof failed, costs that work only after a grant, as before.

use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
    sync::{Arc, Mutex},
};

use paystreams_rpc::chain_view::ChainView;
use paystreams_wire::{ServiceTermination, StatusCode, TerminationType};

use crate::{
    claims::ClaimSubmitter,
    engine::{EngineError, Grant, GrantKind, Provider, Verdict},
    store::SessionStore,
};

/// Per-requester request rate, applied before anything else is done for a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PeerLimit {
    /// Sustained requests per second per requester (at least 1).
    pub per_sec: u32,
    /// Requests a requester may send at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Default for PeerLimit {
    /// 50 requests per second, bursts of 100: a user paging through 100 pages as fast as
    /// loopback allows stays under it, a flood from one requester does not.
    fn default() -> Self {
        Self { per_sec: 50, burst: 100 }
    }
}

/// Requesters tracked at once by [`PeerLimiter`]; beyond it full buckets are dropped first
/// (they are the same as new ones), then the least recently seen.
pub const LIMITED_PEERS_MAX: usize = 65_536;

/// One requester's bucket, in thousandths of a request.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    milli: u64,
    at_ms: u64,
}

/// A token bucket per requester (any key: peer ids, requester bytes), with time passed in
/// (`now_ms`), so tests decide the clock.
#[derive(Debug)]
pub struct PeerLimiter<P = Vec<u8>> {
    limit: PeerLimit,
    buckets: Mutex<HashMap<P, Bucket>>,
}

impl<P: Hash + Eq + Clone> PeerLimiter<P> {
    #[must_use]
    pub fn new(limit: PeerLimit) -> Self {
        let limit = PeerLimit { per_sec: limit.per_sec.max(1), burst: limit.burst.max(1) };
        Self { limit, buckets: Mutex::new(HashMap::new()) }
    }

    /// The limit applied (each part at least 1).
    #[must_use]
    pub const fn limit(&self) -> PeerLimit {
        self.limit
    }

    fn capacity(&self) -> u64 {
        u64::from(self.limit.burst).saturating_mul(1_000)
    }

    /// Takes one request from `peer`'s bucket at `now_ms` (Unix ms); `Err` carries how many
    /// milliseconds until the next request is allowed.
    ///
    /// # Errors
    /// The bucket is empty.
    pub fn check(&self, peer: &P, now_ms: u64) -> Result<(), u64> {
        let capacity = self.capacity();
        // Thousandths of a request refilled per millisecond = requests per second.
        let rate = u64::from(self.limit.per_sec);
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() >= LIMITED_PEERS_MAX && !buckets.contains_key(peer) {
            buckets
                .retain(|_, b| b.milli.saturating_add(now_ms.saturating_sub(b.at_ms).saturating_mul(rate)) < capacity);
            if buckets.len() >= LIMITED_PEERS_MAX
                && let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at_ms).map(|(p, _)| p.clone())
            {
                buckets.remove(&oldest);
            }
        }
        let bucket = buckets.entry(peer.clone()).or_insert(Bucket { milli: capacity, at_ms: now_ms });
        let elapsed = now_ms.saturating_sub(bucket.at_ms);
        bucket.milli = bucket.milli.saturating_add(elapsed.saturating_mul(rate)).min(capacity);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        if bucket.milli >= 1_000 {
            bucket.milli = bucket.milli.saturating_sub(1_000);
            Ok(())
        } else {
            Err(1_000_u64.saturating_sub(bucket.milli).div_ceil(rate))
        }
    }

    /// Requesters currently tracked.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.len())
    }
}

/// A request refused by the requester's rate limit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RateLimited {
    /// Milliseconds until the next request is allowed.
    pub retry_in_ms: u64,
    /// The sustained rate allowed.
    pub per_sec: u32,
}

impl RateLimited {
    /// `TOO_MANY_REQUESTS: ...`, saying when to retry.
    #[must_use]
    pub fn desc(&self) -> String {
        format!(
            "TOO_MANY_REQUESTS: more than {} requests per second from this requester; retry in {} ms",
            self.per_sec, self.retry_in_ms
        )
    }
}

/// Requesters remembered in good standing ([`Admission::in_good_standing`]); beyond it the set
/// starts over (a forgotten requester only loses the overlap until its next grant).
pub const GOOD_STANDING_MAX: usize = 65_536;

/// The one engine path over one provider engine: rate limit, verdict, response accounting.
pub struct Admission<C, S, K> {
    provider: Arc<Provider<C, S, K>>,
    limiter: PeerLimiter<Vec<u8>>,
    /// (service id ‖ requester) whose last verdict for that service was a stream-proof grant.
    standing: Mutex<HashSet<Vec<u8>>>,
}

/// The key of `requester`'s standing for `service_id`: the service id's length, the service id,
/// the requester (unambiguous for any lengths).
fn standing_key(requester: &[u8], service_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(service_id.len().saturating_add(requester.len()).saturating_add(8));
    key.extend_from_slice(&u64::try_from(service_id.len()).unwrap_or(u64::MAX).to_be_bytes());
    key.extend_from_slice(service_id);
    key.extend_from_slice(requester);
    key
}

impl<C, S, K> std::fmt::Debug for Admission<C, S, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("limit", &self.limiter.limit).finish_non_exhaustive()
    }
}

impl<C, S, K> Admission<C, S, K>
where
    C: ChainView + 'static,
    S: SessionStore + 'static,
    K: ClaimSubmitter + 'static,
{
    /// The path over `provider`, limiting each requester to `limit`.
    #[must_use]
    pub fn new(provider: Arc<Provider<C, S, K>>, limit: PeerLimit) -> Self {
        Self { provider, limiter: PeerLimiter::new(limit), standing: Mutex::new(HashSet::new()) }
    }

    #[must_use]
    pub const fn provider(&self) -> &Arc<Provider<C, S, K>> {
        &self.provider
    }

    /// The per-requester limit applied.
    #[must_use]
    pub const fn limit(&self) -> PeerLimit {
        self.limiter.limit
    }

    /// Step 1: takes one request from `requester`'s bucket at `now_ms`.
    ///
    /// # Errors
    /// The requester is over its rate: send [`RateLimited::desc`] (a 429) and nothing else.
    pub fn rate(&self, requester: &[u8], now_ms: u64) -> Result<(), RateLimited> {
        self.limiter
            .check(&requester.to_vec(), now_ms)
            .map_err(|retry_in_ms| RateLimited { retry_in_ms, per_sec: self.limiter.limit.per_sec })
    }

    /// Step 3: the engine's verdict on `proof` for a request to `service_id` with canonical
    /// digest `digest` from `requester` (see [`Provider::handle_for`]: a session pays only for
    /// the service it was proposed for). Serve only when it carries a grant, at most
    /// [`response_budget`] bytes.
    ///
    /// The verdict also sets `requester`'s standing for `service_id`
    /// ([`Admission::in_good_standing`]): in good standing after a stream-proof grant, out of
    /// it after anything else.
    pub async fn judge(
        &self,
        requester: &[u8],
        service_id: &[u8],
        digest: &[u8; 32],
        proof: Option<&[u8]>,
        now_ms: u64,
    ) -> Verdict {
        let verdict = self.provider.handle_for(requester, Some(service_id), digest, proof, now_ms).await;
        let good = matches!(verdict.grant, Some(Grant { kind: GrantKind::Stream { .. }, .. }));
        if !requester.is_empty()
            && let Ok(mut standing) = self.standing.lock()
        {
            let key = standing_key(requester, service_id);
            if good {
                if standing.len() >= GOOD_STANDING_MAX && !standing.contains(&key) {
                    standing.clear();
                }
                standing.insert(key);
            } else {
                standing.remove(&key);
            }
        }
        verdict
    }

    /// Whether `requester`'s last verdict for `service_id` was a stream-proof grant: it has a
    /// known session, bound to a stream, whose last proof verified. A service may start the
    /// work of answering such a requester's next request before [`Admission::judge`] returns
    /// (nothing else is decided by it: every request is judged in full, and only a grant
    /// releases the answer). A requester never granted, or whose last request was refused for
    /// any reason (a bad signature, a replay, a stream no longer active), is not.
    #[must_use]
    pub fn in_good_standing(&self, requester: &[u8], service_id: &[u8]) -> bool {
        !requester.is_empty()
            && self.standing.lock().is_ok_and(|standing| standing.contains(&standing_key(requester, service_id)))
    }

    /// Step 4: accounts a granted response of `len` bytes before it is sent. `Ok(Err(verdict))`:
    /// send that refusal instead (the first response over its cap ends the session, PERMANENT;
    /// the load cap pauses it, TEMPORARY).
    ///
    /// # Errors
    /// Engine failures: do not serve (answer "unavailable, retry").
    pub async fn finish(&self, grant: &Grant, len: u64) -> Result<Result<(), Verdict>, EngineError> {
        self.provider.finish_response(grant, len).await
    }
}

/// The most bytes a granted response may have: the first-response cap for a proposal-backed
/// first response, `None` (no per-response cap; the load cap, if any, is checked by
/// [`Admission::finish`]) for a stream-proof-backed one.
#[must_use]
pub const fn response_budget(grant: &Grant) -> Option<u64> {
    match grant.kind {
        GrantKind::First { max_response_bytes } => Some(max_response_bytes),
        GrantKind::Stream { .. } => None,
    }
}

/// A verdict in words, for transports that carry text (HTTP JSON, Store's `status_desc`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Described {
    /// The `EligibilityStatus` code (0 OK, 1 PARAMS_REJECTED, 2 PROOF_INVALID, 3 STREAM_NOT_ACTIVE).
    pub code: u32,
    /// The spec's name for the code (`ELIGIBILITY_REFUSED` for a code the spec does not name).
    pub name: &'static str,
    /// The engine's reason.
    pub reason: String,
    /// The whole sentence: name, reason and termination ([`refusal_desc`]).
    pub desc: String,
    pub termination: Option<ServiceTermination>,
}

impl Described {
    #[must_use]
    pub fn new(verdict: &Verdict) -> Self {
        Self {
            code: verdict.status.status_code,
            name: verdict.status.code().map_or("ELIGIBILITY_REFUSED", StatusCode::name),
            reason: verdict.status.status_desc.clone(),
            desc: refusal_desc(verdict),
            termination: verdict.termination,
        }
    }
}

/// The name of a termination type as the spec writes it.
#[must_use]
pub const fn termination_name(termination: &ServiceTermination) -> &'static str {
    match termination.termination_type {
        TerminationType::Permanent => "PERMANENT",
        TerminationType::Temporary => "TEMPORARY",
    }
}

/// A verdict's code name and reason (and the termination, if any) in one sentence, for
/// clients that read only a service's own text fields, e.g.
/// `PROOF_INVALID: no eligibility proof: send a StreamProposal first, ...`.
#[must_use]
pub fn refusal_desc(verdict: &Verdict) -> String {
    let name = verdict.status.code().map_or("ELIGIBILITY_REFUSED", StatusCode::name);
    let mut desc = format!("{name}: {}", verdict.status.status_desc);
    match verdict.termination {
        Some(t) if t.termination_type == TerminationType::Permanent => {
            desc.push_str(" (PERMANENT termination: this session is over; send a new proposal for more service)");
        }
        Some(t) => desc.push_str(&format!(" (TEMPORARY termination: retry after chain time {})", t.resume_after)),
        None => {}
    }
    desc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate_and_says_when() {
        let limiter = PeerLimiter::new(PeerLimit { per_sec: 2, burst: 3 });
        let (flooder, other) = (b"flooder".to_vec(), b"other".to_vec());
        let t = 1_000_000;
        for _ in 0..3 {
            assert_eq!(limiter.check(&flooder, t), Ok(()));
        }
        // Empty: the next token is 500 ms away at 2 per second.
        assert_eq!(limiter.check(&flooder, t), Err(500));
        assert_eq!(limiter.check(&flooder, t + 200), Err(300));
        // Another requester has its own bucket.
        assert_eq!(limiter.check(&other, t), Ok(()));
        assert_eq!(limiter.check(&flooder, t + 500), Ok(()));
        assert!(limiter.check(&flooder, t + 500).is_err());
        // A long quiet spell refills to the burst, never beyond.
        for _ in 0..3 {
            assert_eq!(limiter.check(&flooder, t + 60_000), Ok(()));
        }
        assert!(limiter.check(&flooder, t + 60_000).is_err());
        // A clock going backwards takes nothing extra.
        assert!(limiter.check(&flooder, t).is_err());
    }

    #[test]
    fn limiter_map_stays_bounded() {
        let limiter = PeerLimiter::new(PeerLimit { per_sec: 1, burst: 1 });
        for i in 0..(LIMITED_PEERS_MAX + 10) {
            let now = u64::try_from(i).unwrap_or(u64::MAX);
            assert_eq!(limiter.check(&now.to_be_bytes().to_vec(), now), Ok(()));
        }
        assert!(limiter.tracked() <= LIMITED_PEERS_MAX);
    }

    #[test]
    fn refusals_read_as_one_sentence() {
        let verdict = Verdict {
            status: paystreams_wire::EligibilityStatus::new(StatusCode::ProofInvalid, "bad signature"),
            session: None,
            termination: Some(ServiceTermination { termination_type: TerminationType::Temporary, resume_after: 77 }),
            grant: None,
        };
        let described = Described::new(&verdict);
        assert_eq!(described.code, 2);
        assert_eq!(described.name, "PROOF_INVALID");
        assert_eq!(described.reason, "bad signature");
        assert_eq!(described.desc, "PROOF_INVALID: bad signature (TEMPORARY termination: retry after chain time 77)");
    }
}
