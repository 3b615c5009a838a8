//! Disk growth per million spam attempts.
//!
//! `cargo test -p paystreams-node --bench spam [-- ATTEMPTS]` (debug build) or
//! `cargo bench -p paystreams-node --bench spam [-- ATTEMPTS]`.
//!
//! A durable chain (redb, immediate durability, in a temporary directory) receives ATTEMPTS
//! (default 50,000) signed transactions of each kind of spam through its admission path
//! (`Chain::submit`, what `sendTransaction` runs after decoding), a block produced after every
//! [`MAX_TXS_PER_BLOCK`] attempts, and the growth of `chain.redb` is extrapolated to a million:
//! - a stale nonce, a nonce gap, a transfer the sender cannot cover: refused at admission;
//! - transfers from fresh keys to an unclaimed account: admitted, failing in execution, kept in
//!   the bounded table of failed transactions. Run twice: with the default bound (the table
//!   filling: the cost per kept failure) and with a bound of ATTEMPTS / 10 (the table full after
//!   the first block: the growth over the second half of the run is the steady cost, which is
//!   extrapolated).

#![allow(clippy::unwrap_used, reason = "a benchmark binary: fail loudly")]

use std::{path::Path, sync::Arc, time::Instant};

use paystreams_lez_core::{AccountId, crypto::SecretKey, transfer::authenticated_transfer_program_id};
use paystreams_node::{
    Chain, ChainConfig, DB_FILE, RedbStorage, Storage as _,
    chain::{MAX_TXS_PER_BLOCK, NodeError},
    storage::FAILED_RETAINED,
};
use paystreams_runtime::{Message, Transaction};

fn transfer(from: &SecretKey, to: AccountId, amount: u128, nonce: u128) -> Transaction {
    let message = Message {
        program_id: authenticated_transfer_program_id(),
        account_ids: vec![from.account_id(), to],
        nonces: vec![nonce],
        instruction_data: paystreams_lez_core::transfer::transfer_instruction(amount),
    };
    Transaction::sign(message, &[from])
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// What one kind of spam did: attempts, refusals, file growth, kept failures, blocks.
struct Run {
    attempts: usize,
    refused: usize,
    growth: i128,
    /// File length after each block.
    sizes: Vec<u64>,
    /// Growth of the allocated pages (what the records take, however the file grows).
    allocated: i128,
    /// Allocated bytes after each block.
    allocated_sizes: Vec<u64>,
    kept: u64,
    blocks: u64,
    seconds: f64,
}

/// A fresh chain with `retained` kept failures; one good transfer so the payer's nonce is 1.
/// Then `spam` is submitted, a block after every `MAX_TXS_PER_BLOCK` attempts.
fn run(retained: u64, spam: impl Fn(&SecretKey, AccountId, usize) -> Transaction, attempts: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let storage = Arc::new(RedbStorage::open(&path).unwrap().with_failed_retained(retained));
    let chain = Chain::open(Arc::clone(&storage) as Arc<dyn paystreams_node::Storage>, &ChainConfig::dev(2, 1_000_000))
        .unwrap();
    let (payer, payee) = (chain.dev_keys()[0].clone(), chain.dev_keys()[1].account_id());
    chain.submit(transfer(&payer, payee, 1, 0)).unwrap();
    chain.produce_block(MAX_TXS_PER_BLOCK, 0).unwrap();
    let transactions: Vec<Transaction> = (0..attempts).map(|i| spam(&payer, payee, i)).collect();
    let (before, head) = (file_len(&path), chain.head_height());
    let allocated_before = storage.allocated_bytes().unwrap();
    let mut allocated_sizes = Vec::new();
    let started = Instant::now();
    let mut refused = 0;
    let mut sizes = Vec::new();
    for part in transactions.chunks(MAX_TXS_PER_BLOCK) {
        for tx in part {
            match chain.submit(tx.clone()) {
                Ok(_) => {}
                Err(NodeError::Refused(_)) => refused += 1,
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        chain.produce_block(MAX_TXS_PER_BLOCK, 0).unwrap();
        sizes.push(file_len(&path));
        allocated_sizes.push(storage.allocated_bytes().unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    Run {
        attempts,
        refused,
        growth: i128::from(file_len(&path)) - i128::from(before),
        sizes,
        allocated: i128::from(storage.allocated_bytes().unwrap()) - i128::from(allocated_before),
        allocated_sizes,
        kept: storage.failed_len().unwrap(),
        blocks: chain.head_height() - head,
        seconds,
    }
}

fn report(kind: &str, run: &Run) {
    let per_million = run.allocated * 1_000_000 / i128::try_from(run.attempts.max(1)).unwrap();
    println!(
        "{kind:<50} attempts {:>7}  refused {:>7}  blocks {:>4}  kept failures {:>7}  file growth {:>10} B  \
         allocated growth {:>10} B  per million attempts {:>13} B ({:.1} MB)  {:.0} attempts/s",
        run.attempts,
        run.refused,
        run.blocks,
        run.kept,
        run.growth,
        run.allocated,
        per_million,
        per_million as f64 / 1e6,
        run.attempts as f64 / run.seconds
    );
}

fn main() {
    let attempts: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(50_000);
    let sink = SecretKey::generate().account_id();
    println!("spam: {attempts} attempts per kind, blocks of {MAX_TXS_PER_BLOCK}, redb with immediate durability");
    let stale = run(FAILED_RETAINED, |payer, payee, i| transfer(payer, payee, 1 + i as u128, 0), attempts);
    report("stale nonce (refused)", &stale);
    let gap = run(FAILED_RETAINED, |payer, payee, i| transfer(payer, payee, 1, 1_000 + i as u128), attempts);
    report("nonce gap (refused)", &gap);
    let poor = run(FAILED_RETAINED, |payer, payee, i| transfer(payer, payee, 10_000_000 + i as u128, 1), attempts);
    report("unaffordable transfer (refused)", &poor);
    for run_ in [&stale, &gap, &poor] {
        assert_eq!(run_.refused, run_.attempts, "every such attempt is refused");
    }
    let failing = |_: &SecretKey, _: AccountId, _: usize| transfer(&SecretKey::generate(), sink, 0, 0);
    let filling = run(FAILED_RETAINED, failing, attempts);
    println!("  file length after each block (bound {FAILED_RETAINED}): {:?}", filling.sizes);
    println!("  allocated bytes after each block (bound {FAILED_RETAINED}): {:?}", filling.allocated_sizes);
    report(&format!("failing in execution (table filling, bound {FAILED_RETAINED})"), &filling);
    let bound = u64::try_from(attempts / 10).unwrap().max(1);
    let full = run(bound, failing, attempts);
    report(&format!("failing in execution (bound {bound}, full)"), &full);
    println!("  file length after each block (bound {bound}): {:?}", full.sizes);
    println!("  allocated bytes after each block (bound {bound}): {:?}", full.allocated_sizes);
    // The cost per kept failure while the table fills, and the steady growth once it is full
    // (second half of the bounded run), extrapolated to a million attempts.
    let per_entry = filling.allocated / i128::try_from(attempts.max(1)).unwrap();
    let sizes = &full.allocated_sizes;
    let half = sizes.len() / 2;
    let (mid, end) = (sizes.get(half.saturating_sub(1)).copied().unwrap_or(0), *sizes.last().unwrap());
    let later_attempts = (sizes.len() - half) * MAX_TXS_PER_BLOCK;
    let steady_per_million =
        (i128::from(end) - i128::from(mid)) * 1_000_000 / i128::try_from(later_attempts.max(1)).unwrap();
    // Live bytes can also fall once the table is full (the allocator hands back buffers the
    // filling phase grew): that is no growth, said as such rather than as a negative cost.
    let steady = match steady_per_million {
        more if more > 0 => format!("{more} B more per million further attempts"),
        0 => "no growth over further attempts".to_owned(),
        fell => format!("no growth over further attempts (live bytes fell by {} B per million)", -fell),
    };
    println!(
        "failing in execution: ~{per_entry} B allocated per kept failure while the table fills (the default bound \
         of {FAILED_RETAINED}: ~{} MB at most); once full, {steady} ({} attempts over the last {} blocks)",
        (per_entry * i128::from(FAILED_RETAINED)) / 1_000_000,
        later_attempts,
        sizes.len() - half
    );
}
