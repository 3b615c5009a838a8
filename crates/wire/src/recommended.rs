//! The values LIP-155 RECOMMENDS: the provider engine's defaults and the user engine's limits.
//! A provider may advertise other deadline and first-response values in its policy; the attempt
//! cap is not advertised, so both engines apply these.

/// `max_create_stream_deadline_delay`: latest acceptable `create_stream_deadline` after the
/// provider verifies a proposal, seconds.
pub const MAX_CREATE_STREAM_DEADLINE_DELAY_SECS: u64 = 300;

/// `vault_proof_max_response_bytes`: largest first (proposal-backed) response, bytes.
pub const VAULT_PROOF_MAX_RESPONSE_BYTES: u64 = 65_536;

/// Parameter attempts (proposals) per vault and provider within [`PARAMS_ATTEMPT_WINDOW_SECS`].
pub const PARAMS_ATTEMPTS_MAX: u32 = 5;

/// The window of [`PARAMS_ATTEMPTS_MAX`], seconds.
pub const PARAMS_ATTEMPT_WINDOW_SECS: u64 = 600;
