//! Typed client for the paystreams node: JSON-RPC, transaction building and signing, the local
//! keystore, derived token holdings, and failure explanations that name the cause and the fix.
//!
//! ```no_run
//! # async fn demo() -> Result<(), paystreams_client::ClientError> {
//! use paystreams_client::Client;
//! let client = Client::connect("http://127.0.0.1:3040")?;
//! let owner = paystreams_lez_core::crypto::SecretKey::generate();
//! client.init_vault(&owner, 0, None).await?;
//! client.deposit(&owner, 0, 1_000).await?;
//! # Ok(()) }
//! ```

pub mod amount;
mod client;
pub mod display;
pub mod error;
pub mod explain;
pub mod holding;
pub mod keystore;
pub mod preflight;

pub use amount::{AmountError, parse_amount};
pub use client::{
    Client, DEFAULT_INCLUSION_TIMEOUT, DEFAULT_RPC_URL, Progress, ProgressFn, TokenRecipient, claimed_amount,
    stream_events,
};
pub use error::{ClientError, Result, TxFailure};
pub use explain::{Audience, Facts, Operation, explain};
pub use holding::{holding_id, holding_key};
pub use keystore::{Keystore, KeystoreError, NamedKey, default_keystore_dir};
pub use paystreams_rpc as rpc;
/// The engines' chain view over the node this client talks to (`RpcChain::new(client)`); it
/// lives in `paystreams_rpc::remote`.
pub use paystreams_rpc::remote::RpcChain;
pub use preflight::{Snapshot, Verdict, preflight};
