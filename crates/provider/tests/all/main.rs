//! Integration tests of the provider (one binary, to keep link time down).

mod attacks;
mod attempts;
mod cheap;
mod common;
mod engine;
mod lifecycle;
mod requesters;
mod session_record;
mod tick;
