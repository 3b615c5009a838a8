//! Store v3 history queries over libp2p, paid by LIP-155 payment streams: the first paid
//! service. The wire (with the eligibility extension at field 30), the message archive
//! (SQLite or PostgreSQL), the libp2p transport, the provider's service and process, and the
//! user's paid-query client.
//!
//! See `docs/store.md`.

pub mod archive;
pub mod client;
pub mod net;
pub mod provider;
pub mod service;
pub mod wire;

pub use archive::{
    Archive, ArchiveError, ArchivePage, ArchiveQuery, PostgresArchive, SqliteArchive, StoredMessage, open_archive,
};
pub use client::{PaidStore, QueryError, StoreClient};
pub use net::{METADATA_PROTOCOL, NodeOptions, P2p, POLICY_PROTOCOL, PeerInfo, STORE_PROTOCOL, WakuNetwork};
pub use provider::{ProviderConfig, ProviderHandle, SessionBackend};
pub use service::{Metrics, StoreService};
pub use wire::{StoreQueryRequest, StoreQueryResponse, WakuMessage, WakuMetadata};

/// The service id Store providers accept in `StreamParams` (Store's protocol id).
pub const STORE_SERVICE_ID: &str = "/vac/waku/store-query/3.0.0";
