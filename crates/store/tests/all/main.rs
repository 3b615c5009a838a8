//! Integration tests of the Store service, in one binary: the wire against the reference's
//! bytes, the archives against a model, and the paid service end to end and under faults.

mod archive;
mod common;
mod e2e;
mod exactness;
mod faults;
mod interop;
mod lightpush;
mod lightpush_wire;
mod receipts;
mod speculation;
mod terminations;
mod wire;
mod wire_standard;
