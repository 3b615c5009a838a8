//! Feeds every fuzz entry point on stable: proptest inputs (random bytes, well-framed protobuf
//! fields, signed transactions, and mutations of valid encodings) and the committed seed
//! corpus in `fuzz/corpus/<target>/`.

use std::{collections::BTreeMap, path::PathBuf};

use paystreams_fuzz::{TARGETS, json_rpc, program, source::Source, transaction, wire};
use paystreams_lez_core::{AccountId, ProgramId, crypto::SecretKey, sha256};
use paystreams_runtime::{Message, TransactionChecks as _};
use paystreams_wire::proto::Writer;
use proptest::prelude::*;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A seed of `target` with the mutations `edits` asks for.
fn mutated(seeds: &[(String, Vec<u8>)], pick: usize, edits: &[u8]) -> Vec<u8> {
    let mut bytes = seeds.get(pick % seeds.len().max(1)).map(|(_, b)| b.clone()).unwrap_or_default();
    Source::new(edits).mutate(&mut bytes, 6);
    bytes
}

/// Named inputs.
type Seeds = Vec<(String, Vec<u8>)>;

fn seeds_of(target: &str) -> &'static [(String, Vec<u8>)] {
    static SEEDS: std::sync::OnceLock<BTreeMap<&'static str, Seeds>> = std::sync::OnceLock::new();
    SEEDS
        .get_or_init(|| TARGETS.iter().map(|(name, _)| (*name, paystreams_fuzz::seeds(name))).collect())
        .get(target)
        .map_or(&[], Vec::as_slice)
}

/// One protobuf field: a small (known) or large (unknown) number, a varint or bytes value.
#[derive(Debug, Clone)]
enum Field {
    Varint(u32, u64),
    Bytes(u32, Vec<u8>),
}

fn field() -> impl Strategy<Value = Field> {
    let number = prop_oneof![8 => 1_u32..6, 2 => 10_u32..14, 2 => prop::sample::select(vec![20_u32, 30, 31, 51, 52, 53]), 1 => 1_u32..3000];
    let fixed = prop_oneof![Just(8_usize), Just(32), Just(64), 0_usize..80];
    prop_oneof![
        (number.clone(), prop_oneof![0_u64..3, any::<u64>()]).prop_map(|(n, v)| Field::Varint(n, v)),
        (number, fixed)
            .prop_flat_map(|(n, len)| prop::collection::vec(any::<u8>(), len).prop_map(move |b| Field::Bytes(n, b))),
    ]
}

/// A well-framed message of arbitrary fields, optionally with one nested message.
fn framed() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(field(), 0..8), prop::option::of((1_u32..4, prop::collection::vec(field(), 0..6)))).prop_map(
        |(fields, nested)| {
            let mut writer = Writer::new();
            for f in &fields {
                match f {
                    Field::Varint(n, v) => writer.uint(*n, *v),
                    Field::Bytes(n, b) => writer.bytes(*n, b),
                };
            }
            if let Some((number, inner)) = nested {
                let mut inner_writer = Writer::new();
                for f in &inner {
                    match f {
                        Field::Varint(n, v) => inner_writer.uint(*n, *v),
                        Field::Bytes(n, b) => inner_writer.bytes(*n, b),
                    };
                }
                writer.bytes(number, &inner_writer.finish());
            }
            writer.finish()
        },
    )
}

fn key(i: u8) -> SecretKey {
    SecretKey::from_bytes(&sha256(&[b"paystreams-fuzz/feeds/", &[i]])).expect("fixed key is valid")
}

/// A signed transaction with arbitrary accounts, nonces and instruction (some signers
/// repeated, some nonce counts off), as envelope bytes.
fn signed_transaction() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![
            paystreams_program::payment_streams_program_id(),
            paystreams_lez_core::transfer::authenticated_transfer_program_id(),
            ProgramId([7; 8]),
        ]),
        prop::collection::vec(prop_oneof![Just(AccountId([1; 32])), any::<[u8; 32]>().prop_map(AccountId)], 0..5),
        prop::collection::vec(0_u128..3, 0..4),
        prop::collection::vec(any::<u32>(), 0..10),
        prop::collection::vec(0_u8..3, 0..4),
    )
        .prop_map(|(program_id, account_ids, nonces, instruction_data, signer_ids)| {
            let keys: Vec<SecretKey> = signer_ids.iter().map(|i| key(*i)).collect();
            let refs: Vec<&SecretKey> = keys.iter().collect();
            transaction::sign(Message { program_id, account_ids, nonces, instruction_data }, &refs).envelope_bytes()
        })
}

proptest! {
    #![proptest_config(config(1_500))]

    #[test]
    fn wire_random_bytes(data in prop::collection::vec(any::<u8>(), 0..300)) {
        wire(&data);
    }

    #[test]
    fn wire_framed_fields(selector in any::<u8>(), body in framed()) {
        let mut data = vec![selector];
        data.extend(body);
        wire(&data);
    }

    #[test]
    fn wire_mutated_seeds(pick in any::<usize>(), edits in prop::collection::vec(any::<u8>(), 0..24)) {
        wire(&mutated(seeds_of("wire"), pick, &edits));
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn transaction_random_bytes(data in prop::collection::vec(any::<u8>(), 0..400)) {
        transaction(&data);
    }

    #[test]
    fn transaction_signed(bytes in signed_transaction()) {
        transaction(&bytes);
    }

    #[test]
    fn transaction_mutated(bytes in signed_transaction(), edits in prop::collection::vec(any::<u8>(), 1..24)) {
        let mut bytes = bytes;
        Source::new(&edits).mutate(&mut bytes, 6);
        transaction(&bytes);
    }

    #[test]
    fn transaction_mutated_seeds(pick in any::<usize>(), edits in prop::collection::vec(any::<u8>(), 0..24)) {
        transaction(&mutated(seeds_of("transaction"), pick, &edits));
    }
}

proptest! {
    #![proptest_config(config(1_500))]

    #[test]
    fn program_random_bytes(data in prop::collection::vec(any::<u8>(), 0..320)) {
        program(&data);
    }

    #[test]
    fn program_mutated_seeds(pick in any::<usize>(), edits in prop::collection::vec(any::<u8>(), 0..24)) {
        program(&mutated(seeds_of("program"), pick, &edits));
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn json_rpc_random_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        json_rpc(&data);
    }

    #[test]
    fn json_rpc_text(text in "\\{\"jsonrpc\":\"2\\.0\",\"id\":[0-9]{1,3},\"method\":\"(get[A-Za-z]{3,12}|sendTransaction|listStreams|devMine)\"(,\"params\":\\[[0-9a-z\",\\[\\]{}:]{0,40}\\])?\\}") {
        let mut data = vec![0];
        data.extend(text.into_bytes());
        json_rpc(&data);
    }

    #[test]
    fn json_rpc_mutated_seeds(pick in any::<usize>(), edits in prop::collection::vec(any::<u8>(), 0..16)) {
        json_rpc(&mutated(seeds_of("json_rpc"), pick, &edits));
    }
}

/// Each seed is what it claims to be: wire seeds decode, transaction seeds decode and verify,
/// program seeds apply.
#[test]
fn seeds_are_valid() {
    for (name, bytes) in seeds_of("wire") {
        assert!(paystreams_fuzz::wire::decodes(bytes), "wire seed {name} does not decode");
    }
    for (name, bytes) in seeds_of("transaction") {
        let tx = paystreams_runtime::Transaction::decode(bytes).expect("transaction seed decodes");
        assert!(tx.verify_signatures().is_ok(), "transaction seed {name} does not verify");
    }
    let program_seeds = seeds_of("program");
    assert!(program_seeds.len() >= 8, "only {} program seeds found", program_seeds.len());
    for (name, bytes) in program_seeds {
        assert_eq!(
            paystreams_fuzz::program::applied_kind(bytes).as_deref(),
            Some(name.as_str()),
            "program seed {name}"
        );
    }
    for (name, _) in TARGETS {
        assert!(!seeds_of(name).is_empty(), "no seeds for {name}");
    }
}

/// The committed corpus holds every current seed (regenerate with
/// `cargo run -p paystreams-fuzz --example seed_corpus`), and every file in it runs cleanly.
#[test]
fn corpus_runs_through_every_target() {
    for (target, entry) in TARGETS {
        let dir = corpus_dir(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files = BTreeMap::new();
        for file in entries {
            let path = file.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            entry(&bytes);
            files.insert(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), bytes);
        }
        for (name, bytes) in seeds_of(target) {
            assert_eq!(
                files.get(name),
                Some(bytes),
                "seed {target}/{name} is missing or stale; run `cargo run -p paystreams-fuzz --example seed_corpus`"
            );
        }
    }
}
