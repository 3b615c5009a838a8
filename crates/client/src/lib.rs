//! Typed client for the paystreams node: JSON-RPC, transaction building and signing, and the
//! local keystore.

pub mod keystore;
