//! Integration tests of the provider (one binary, to keep link time down).

mod attacks;
mod common;
mod engine;
mod requesters;
mod session_record;
