//! LEZ's transaction envelope: LEZ's pinned `hash_public_pinned` Borsh, the clock-transaction
//! vectors and a genesis block hash, signed round trips, and the refusals.
//!
//! Sources (`lez-facts.md`): §1.1–§1.5 for the layout and the pinned vector (LEZ
//! `lee/state_machine/src/public_transaction/message.rs` L92–L138, identical v0.2.0–v0.2.4), §1.6
//! for the clock transaction (`lez/common/src/transaction.rs` `clock_invocation`), §5.1/§5.3 for
//! the block hash. LEZ pins Borsh byte order only; every hash below is [computed] from the
//! published rules and must be re-checked against a real LEZ build.

use paystreams_lez_core::{
    AccountId, ProgramId,
    clock::{CLOCK_ACCOUNT_IDS, clock_instruction},
    crypto::SecretKey,
    domain_prefix,
    lee_transaction::{
        LeeMessage, LeePublicTransaction, LeeTransaction, LeeTxError, MAX_LEE_TRANSACTION_BYTES, PUBLIC_MESSAGE_PREFIX,
        UnsupportedKind,
    },
    risc0_words::from_words,
    sha256,
    transfer::{TransferInstruction, initialize_instruction, transfer_instruction},
};

fn program_id_hex(text: &str) -> ProgramId {
    text.parse().expect("program id hex")
}

#[test]
fn message_prefix_is_lez_public_prefix() {
    assert_eq!(hex::encode(PUBLIC_MESSAGE_PREFIX), "2f4c45452f76302e332f4d6573736167652f5075626c69632f00000000000000");
}

/// LEZ's `hash_public_pinned`: the Borsh bytes are pinned by LEZ's test literals; the hash is
/// [computed] (LEZ's test derives it as SHA-256(prefix || expected bytes) without a literal).
#[test]
fn hash_public_pinned() {
    let message = LeeMessage {
        program_id: ProgramId([1; 8]),
        account_ids: vec![AccountId([42; 32])],
        nonces: vec![5],
        instruction_data: vec![],
    };
    let expected = "0100000001000000010000000100000001000000010000000100000001000000\
                    010000002a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a\
                    010000000500000000000000000000000000000000000000";
    assert_eq!(hex::encode(message.to_bytes()), expected);
    assert_eq!(message.to_bytes().len(), 92);
    let expected_bytes = hex::decode(expected).expect("hex");
    assert_eq!(message.hash(), sha256(&[&PUBLIC_MESSAGE_PREFIX, &expected_bytes]));
    // [computed]
    assert_eq!(hex::encode(message.hash()), "5b422d78d046b988f45b6aca8f6d4a66ac8616e83eedf6bbef7adcc603834b79");
}

/// CLOCK_01, CLOCK_10, CLOCK_50: the account ids are these ASCII strings' bytes.
fn clock_account_ids() -> Vec<AccountId> {
    ["/LEZ/ClockProgramAccount/0000001", "/LEZ/ClockProgramAccount/0000010", "/LEZ/ClockProgramAccount/0000050"]
        .iter()
        .map(|s| AccountId(s.as_bytes().try_into().expect("32 bytes")))
        .collect()
}

/// LEZ's `clock_invocation(timestamp)`: the clock program on the three clock accounts, no
/// nonces, instruction `timestamp: u64` (two words), no signatures. Built with the runtime's own
/// pieces (the clock account ids and [`clock_instruction`]), checked against the restated ones.
fn clock_invocation(clock_id: ProgramId, timestamp: u64) -> LeeTransaction {
    assert_eq!(CLOCK_ACCOUNT_IDS.to_vec(), clock_account_ids());
    let message = LeeMessage {
        program_id: clock_id,
        account_ids: CLOCK_ACCOUNT_IDS.to_vec(),
        nonces: vec![],
        instruction_data: clock_instruction(timestamp),
    };
    assert_eq!(message, LeeMessage::new(clock_id, clock_account_ids(), vec![], &timestamp));
    let tx = paystreams_lez_core::lez_release::clock_invocation(clock_id, timestamp);
    assert_eq!(tx, LeeTransaction::Public(LeePublicTransaction::unsigned(message)));
    tx
}

/// LEZ's `authenticated_transfer_core::Instruction` (facts §2.1): `Transfer { amount }` = 0,
/// `Initialize` = 1.
#[test]
fn authenticated_transfer_words() {
    assert_eq!(transfer_instruction(100), [0, 100, 0, 0, 0]);
    assert_eq!(transfer_instruction(u128::MAX), [0, u32::MAX, u32::MAX, u32::MAX, u32::MAX]);
    assert_eq!(initialize_instruction(), [1]);
    assert_eq!(from_words::<TransferInstruction>(&[1]), Ok(TransferInstruction::Initialize));
    assert_eq!(from_words::<TransferInstruction>(&[0, 7, 0, 0, 0]), Ok(TransferInstruction::Transfer { amount: 7 }));
    assert!(from_words::<TransferInstruction>(&[2]).is_err());
    assert!(from_words::<TransferInstruction>(&[1, 0]).is_err());
    assert!(from_words::<TransferInstruction>(&[0, 7, 0, 0]).is_err());
}

const CLOCK_V0_2_0: &str = "884e693a302d57de1ac4c405ca5bea1df707d1de11d9f87de51b78845aa98e63";
const CLOCK_V0_2_2_TO_4: &str = "319fbc054d77207cbaec0b31e9cc813eca0b40d310d7112ec4a0fe64395c61fc";

/// Facts §1.6 case A [computed]: the genesis clock transaction (timestamp 0), v0.2.0 clock id.
#[test]
fn clock_transaction_timestamp_zero() {
    let tx = clock_invocation(program_id_hex(CLOCK_V0_2_0), 0);
    let LeeTransaction::Public(public) = &tx;
    assert_eq!(public.message.instruction_data, [0, 0]);
    let message_hex = "884e693a302d57de1ac4c405ca5bea1df707d1de11d9f87de51b78845aa98e63\
                       03000000\
                       2f4c455a2f436c6f636b50726f6772616d4163636f756e742f30303030303031\
                       2f4c455a2f436c6f636b50726f6772616d4163636f756e742f30303030303130\
                       2f4c455a2f436c6f636b50726f6772616d4163636f756e742f30303030303530\
                       00000000\
                       02000000\
                       0000000000000000";
    assert_eq!(hex::encode(public.message.to_bytes()), message_hex);
    assert_eq!(hex::encode(public.message.hash()), "3bc23d9961ec32680e50f4d6c1d5ec6a38918979b4bb07dae156937aa3551387");
    assert_eq!(hex::encode(public.borsh_bytes()), format!("{message_hex}00000000"));
    assert_eq!(hex::encode(tx.hash()), "45459c74bb9a6e9a34e71f211f29fa37f9ca5658114b7f610866243586d25246");
    let envelope = tx.to_bytes();
    assert_eq!(envelope.len(), 153);
    assert_eq!(envelope[0], 0);
    // The transaction hash excludes the envelope's tag byte.
    assert_eq!(tx.hash(), sha256(&[&envelope[1..]]));
    assert_ne!(tx.hash(), sha256(&[&envelope]));
    assert_eq!(LeeTransaction::decode(&envelope), Ok(tx));
}

/// Facts §1.6 case B [computed]: timestamp 1_754_550_000_123 ms (low word, then high word).
#[test]
fn clock_transaction_with_timestamp() {
    let tx = clock_invocation(program_id_hex(CLOCK_V0_2_0), 1_754_550_000_123);
    let LeeTransaction::Public(public) = &tx;
    assert_eq!(public.message.instruction_data, [2_203_343_355, 408]);
    assert_eq!(hex::encode(public.message.hash()), "6163125305d809003b213f59242d167bf6378be59eb0a6ebc70873b9f70fc82c");
    assert_eq!(hex::encode(tx.hash()), "635514ecbe0f3e4e6ecd8f95f31d4a8eb18c408539b93d17a954251c8fcfbee1");
}

/// Facts §1.6, the v0.2.2–v0.2.4 clock id (from one third-party source, §4.4) [computed].
#[test]
fn clock_transactions_with_the_testnet_clock_id() {
    let clock = program_id_hex(CLOCK_V0_2_2_TO_4);
    assert_eq!(
        clock.0,
        [
            96_247_601,
            2_082_502_477,
            822_865_082,
            1_048_693_993,
            3_544_189_898,
            772_921_104,
            1_694_408_900,
            4_234_239_033
        ]
    );
    for (timestamp, message_hash, tx_hash) in [
        (
            0,
            "5aaf8aca6bfd02ea7b5c8f9419f3490227564a8caf252cb49b806181e1b9a1ed",
            "98d54a5257ad1716872303f90726f80aaf564d208b68adabe6a37d1087d44847",
        ),
        (
            1_754_550_000_123,
            "459fb68a2884a10af3ea48befeabfe66df1e54d99da088261efaac5835d255d4",
            "5759df3ded05b601eccc974d34f5bf1c6bb4ae9ec3397120484590917e59a5e9",
        ),
    ] {
        let tx = clock_invocation(clock, timestamp);
        let LeeTransaction::Public(public) = &tx;
        assert_eq!(hex::encode(public.message.hash()), message_hash, "timestamp {timestamp}");
        assert_eq!(hex::encode(tx.hash()), tx_hash, "timestamp {timestamp}");
    }
}

/// Facts §5.3 [computed]: v0.2.0 genesis with an empty genesis config, whose only transaction is
/// `clock_invocation(0)`. `HashableBlockData { block_id: 1, prev_block_hash: [0; 32],
/// timestamp: 0, transactions: Vec<LeeTransaction> }`, hashed behind the block prefix.
#[test]
fn genesis_block_hash_with_only_the_clock_transaction() {
    let clock_tx = clock_invocation(program_id_hex(CLOCK_V0_2_0), 0).to_bytes();
    let mut hashable = Vec::new();
    hashable.extend_from_slice(&1_u64.to_le_bytes());
    hashable.extend_from_slice(&[0; 32]);
    hashable.extend_from_slice(&0_u64.to_le_bytes());
    hashable.extend_from_slice(&1_u32.to_le_bytes());
    hashable.extend_from_slice(&clock_tx);
    assert_eq!(hashable.len(), 205);
    let prefix = domain_prefix("/LEE/v0.3/Message/Block/");
    assert_eq!(hex::encode(prefix), "2f4c45452f76302e332f4d6573736167652f426c6f636b2f0000000000000000");
    assert_eq!(
        hex::encode(sha256(&[&prefix, &hashable])),
        "1818aa7a25f1657904f6d0d06043448ccfc419557c1f85a9c1dc25208cf315f3"
    );
}

fn signed_transfer() -> LeeTransaction {
    let alice = SecretKey::from_bytes(&[3; 32]).expect("key");
    let bob = SecretKey::from_bytes(&[4; 32]).expect("key");
    let at_v0_2_4 = ProgramId([
        583_309_054,
        2_344_528_779,
        3_806_558_405,
        2_890_696_795,
        2_257_354_672,
        3_978_764_116,
        2_273_929_063,
        1_518_858_078,
    ]);
    // authenticated_transfer Transfer { amount: 100 } = [0, 100, 0, 0, 0] (facts §2.1 [computed]).
    let message = LeeMessage {
        program_id: at_v0_2_4,
        account_ids: vec![alice.account_id(), bob.account_id()],
        nonces: vec![7, 0],
        instruction_data: vec![0, 100, 0, 0, 0],
    };
    LeeTransaction::Public(LeePublicTransaction::sign(message, &[&alice, &bob]))
}

#[test]
fn signed_public_transaction_round_trips_and_verifies() {
    let tx = signed_transfer();
    let bytes = tx.to_bytes();
    // tag + program id + 2 ids + 2 nonces + 5 words + 2 witnesses of 96 bytes.
    assert_eq!(bytes.len(), 1 + 32 + (4 + 64) + (4 + 32) + (4 + 20) + (4 + 2 * 96));
    let decoded = LeeTransaction::decode(&bytes).expect("decodes");
    assert_eq!(decoded, tx);
    let LeeTransaction::Public(public) = &decoded;
    assert!(public.signatures_valid());
    assert_eq!(decoded.hash(), sha256(&[&bytes[1..]]));
    // A changed instruction word breaks the signatures.
    let mut tampered = public.clone();
    tampered.message.instruction_data[1] = 101;
    assert!(!tampered.signatures_valid());
    // Signing uses fresh auxiliary randomness: same message, different transaction hash.
    assert_ne!(signed_transfer().hash(), tx.hash());
}

#[test]
fn privacy_preserving_and_deployment_transactions_are_refused_by_name() {
    let err = LeeTransaction::decode(&[1, 0, 0, 0, 0]).expect_err("tag 1");
    assert_eq!(err, LeeTxError::Unsupported(UnsupportedKind::PrivacyPreserving));
    assert!(err.to_string().starts_with("unsupported: PrivacyPreserving transaction (envelope tag 1)"), "{err}");
    // A deployment: Message { bytecode: Vec<u8> } and no witness set.
    let err = LeeTransaction::decode(&[2, 3, 0, 0, 0, 0x7f, 0x45, 0x4c]).expect_err("tag 2");
    assert_eq!(err, LeeTxError::Unsupported(UnsupportedKind::ProgramDeployment));
    assert!(err.to_string().starts_with("unsupported: ProgramDeployment transaction (envelope tag 2)"), "{err}");
}

#[test]
fn malformed_envelopes_are_refused() {
    assert_eq!(LeeTransaction::decode(&[]), Err(LeeTxError::Empty));
    assert_eq!(LeeTransaction::decode(&[3]), Err(LeeTxError::UnknownTag(3)));
    let big = vec![0_u8; MAX_LEE_TRANSACTION_BYTES + 1];
    assert!(matches!(LeeTransaction::decode(&big), Err(LeeTxError::TooLarge { .. })));

    let bytes = signed_transfer().to_bytes();
    // Truncated anywhere.
    for cut in [1, 20, 40, bytes.len() - 1] {
        assert!(matches!(LeeTransaction::decode(&bytes[..cut]), Err(LeeTxError::Malformed(_))), "cut at {cut}");
    }
    // Trailing bytes.
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(LeeTransaction::decode(&trailing), Err(LeeTxError::Trailing(1)));
    // A witness key that is not on the curve (x = 5, BIP-340 vector 5) is refused in decoding.
    let mut bad_key = bytes.clone();
    let key_at = bytes.len() - 32;
    let not_on_curve = hex::decode("eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34").expect("hex");
    bad_key[key_at..].copy_from_slice(&not_on_curve);
    assert!(matches!(LeeTransaction::decode(&bad_key), Err(LeeTxError::Malformed(_))));
    // A huge declared count of instruction words fails without allocating it.
    let mut huge = vec![0_u8];
    huge.extend_from_slice(&[0; 32]);
    huge.extend_from_slice(&0_u32.to_le_bytes());
    huge.extend_from_slice(&0_u32.to_le_bytes());
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(LeeTransaction::decode(&huge), Err(LeeTxError::Malformed(_))));
}
