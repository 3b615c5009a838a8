//! LIP-155 stream-backed eligibility, provider side ("Stream-Backed Eligibility for
//! Request-Response Services"), transport-agnostic: a service calls [`Provider::handle`] with the
//! request's canonical digest and the raw `EligibilityProof` bytes, serves only on a grant, and
//! calls [`Provider::finish_response`] with the response size before sending.
//!
//! See `docs/eligibility.md` for every rule, its status code, and what goes beyond the spec.

#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod admission;
pub mod claims;
pub mod engine;
pub mod follow;
pub mod keys;
pub mod pg;
pub mod policy;
pub mod report;
pub mod session;
pub mod store;

pub use admission::{Admission, Described, PeerLimit, PeerLimiter, RateLimited, refusal_desc, response_budget};
pub use claims::{ChainClaimer, Claim, ClaimSubmitter, NoClaims};
pub use engine::{EngineError, Grant, GrantKind, Provider, TickStats, Verdict};
pub use follow::{FollowerConfig, FollowerStats, run_follower};
/// The event-feed seam the follower runs on (defined next to `ChainView` in `paystreams-rpc`).
pub use paystreams_rpc::events::{EventSource, EventSubscription, Liveness};
pub use paystreams_wire::{LoadCap, ProviderAdvert};
pub use policy::{EngineLimits, ProviderPolicy};
pub use report::{ProviderReport, SessionReport};
pub use session::{EndReason, Session, SessionId, SessionState, StreamKey, VaultKey};
pub use store::{
    AcceptOutcome, BindOutcome, ClaimablePage, MemoryStore, PgKv, PgStore, RedbStore, SessionStore, StoreError,
};
