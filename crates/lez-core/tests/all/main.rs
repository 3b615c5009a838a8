//! Integration tests of the LEZ wire codecs: RISC Zero serde words, the transaction envelope and
//! the reference program's instruction words.

mod lee_transaction;
mod reference_instruction;
mod risc0_words;
