//! Integration tests of the user engine, in one binary: the engines over direct calls against
//! the in-memory chain.

mod common;
mod flow;
mod receipts;
