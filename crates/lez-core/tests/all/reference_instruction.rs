//! The reference program's eleven instructions as RISC Zero serde words.
