//! Integration tests of the runtime (one binary, to keep link time down).

mod builtins;
mod common;
mod paystreams;
mod rules;
mod transactions;
