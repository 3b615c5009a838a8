//! A paid HTTP service built on `paystream gate`, and its paying client.
//!
//! - [`canonical`]: the request digest a stream proof signs for an HTTP request (method,
//!   path and query, request id, body hash; domain-separated).
//! - [`service`]: a JSON API (`GET /v1/quotes?n=N`) that asks the gate about every request,
//!   answers 402 with the reason when it is not paid, and reports served bytes when it is.
//! - [`client`]: the user side on `paystreams_user::User`: proposal first, the stream created,
//!   stream proofs afterwards, from the user's durable sessions.
//!
//! See `docs/gate.md` ("The HTTP example").

pub mod canonical;
pub mod client;
pub mod http;
pub mod service;

/// The service id this example is paid under.
pub const SERVICE_ID: &str = "/paystreams/example/paid-http/1";

/// Header carrying the base64 `EligibilityProof`.
pub const PROOF_HEADER: &str = "x-paystreams-proof";
/// Header carrying the caller's requester id (1 to 64 bytes: text, or `0x` and hex).
pub const REQUESTER_HEADER: &str = "x-paystreams-requester";
/// Header carrying the caller's request id (1 to 64 visible ASCII characters, fresh per
/// request: it makes every request's digest unique, so a replayed proof is refused).
pub const REQUEST_ID_HEADER: &str = "x-paystreams-request-id";
/// Answer header: the `EligibilityStatus` code (0 OK) and name, e.g. `2 PROOF_INVALID`.
pub const STATUS_HEADER: &str = "x-paystreams-status";
/// Answer header, when the provider ends or pauses the session: `PERMANENT 0` or
/// `TEMPORARY <chain time>`.
pub const TERMINATION_HEADER: &str = "x-paystreams-termination";
