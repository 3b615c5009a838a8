//! Integration tests of the payment-streams program through the real runtime (one binary, to
//! keep link time down).

mod claim_instruction;
mod common;
mod edge_cases;
mod extensions;
mod reference_wire;
mod stream_instructions;
mod token_vaults;
mod vault_instructions;
