//! Signed transactions: decoding LEZ's envelope with its limits, the stateless checks and
//! signature verification.
//!
//! Borsh gives every value exactly one encoding and `Transaction::decode` refuses trailing
//! bytes, so a decoded transaction re-encodes to the very input bytes (tag byte included), and
//! its hash is the hash of those bytes without the tag.

use paystreams_lez_core::{AccountId, crypto::SecretKey, sha256, transfer::transfer_instruction};
use paystreams_program::{client, payment_streams_program_id, state::VaultPrivacyTier};
use paystreams_runtime::{
    KeyCache, MAX_ACCOUNTS_PER_TX, MAX_INSTRUCTION_WORDS, MAX_SIGNATURES_PER_TX, MAX_TRANSACTION_BYTES, Message,
    Transaction, TransactionChecks as _, TxError, WitnessSet,
};

/// Decodes `data` as a transaction and checks it.
///
/// # Panics
/// When a decoded transaction breaks a limit `decode` promises, does not re-encode to its own
/// bytes, or when the checks disagree with each other.
pub fn transaction(data: &[u8]) {
    admission_agrees(data);
    let tx = match Transaction::decode(data) {
        Ok(tx) => tx,
        Err(error) => {
            assert!(
                matches!(
                    error,
                    TxError::TransactionTooLarge { .. }
                        | TxError::MalformedTransaction { .. }
                        | TxError::UnsupportedTransaction { .. }
                        | TxError::TooManyAccounts { .. }
                        | TxError::TooManySignatures { .. }
                        | TxError::InstructionTooLarge { .. }
                ),
                "decode refused with a non-decoding error: {error}"
            );
            if data.len() > MAX_TRANSACTION_BYTES {
                assert_eq!(error.code(), 1001, "oversized input must be refused before decoding");
            } else if matches!(data.first(), Some(1 | 2)) {
                assert_eq!(error.code(), 1006, "other envelope kinds must be refused by name");
            }
            return;
        }
    };
    assert!(data.len() <= MAX_TRANSACTION_BYTES);
    assert!(tx.message.account_ids.len() <= MAX_ACCOUNTS_PER_TX, "decoded past the account limit");
    assert!(
        tx.witness_set.signatures_and_public_keys.len() <= MAX_SIGNATURES_PER_TX,
        "decoded past the signature limit"
    );
    assert!(tx.message.instruction_data.len() <= MAX_INSTRUCTION_WORDS, "decoded past the instruction limit");
    assert_eq!(tx.check_limits(), Ok(()), "a decoded transaction fails its own limits");
    let bytes = tx.envelope_bytes();
    assert_eq!(bytes, data, "a decoded transaction re-encodes to other bytes");
    assert_eq!(Transaction::decode(&bytes).as_ref(), Ok(&tx), "re-encoded transaction decodes differently");
    assert_eq!(data.first(), Some(&0), "only Public envelopes decode");
    assert_eq!(
        tx.hash(),
        sha256(&[data.get(1..).unwrap_or_default()]),
        "transaction hash is not the hash of its bytes without the tag"
    );

    let structure = tx.check_structure();
    if structure.is_ok() {
        assert_eq!(tx.message.nonces.len(), tx.witness_set.signatures_and_public_keys.len());
        let mut signers = tx.signer_ids();
        let count = signers.len();
        signers.sort_unstable();
        signers.dedup();
        assert_eq!(signers.len(), count, "check_structure passed duplicate signers");
        let mut accounts = tx.message.account_ids.clone();
        accounts.sort_unstable();
        accounts.dedup();
        assert_eq!(accounts.len(), tx.message.account_ids.len(), "check_structure passed duplicate accounts");
    }
    let signatures = tx.verify_signatures();
    if signatures.is_ok() {
        // Every signature is over this message: the same witness over any other message fails.
        let mut other = tx.clone();
        other.message.nonces.push(0);
        if !other.witness_set.signatures_and_public_keys.is_empty() {
            assert!(other.verify_signatures().is_err(), "signatures verified over a different message");
        }
    }
}

/// Admission's one pass (`decode_and_verify`, each key lifted once by libsecp256k1) accepts
/// exactly what decoding, the structure checks and the signature checks apart accept (k256 keys
/// at decoding), and yields the same transaction.
fn admission_agrees(data: &[u8]) {
    let apart = Transaction::decode(data).and_then(|tx| {
        tx.check_structure()?;
        tx.verify_signatures()?;
        Ok(tx)
    });
    // A small cache (one key a shard): the runs meet keys it holds and keys it does not.
    static KEYS: std::sync::LazyLock<KeyCache> = std::sync::LazyLock::new(|| KeyCache::new(1));
    let together = Transaction::decode_and_verify(data, &KEYS);
    match (&apart, &together) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "admission's one pass decoded another transaction"),
        (Err(_), Err(_)) => {}
        _ => panic!("admission's one pass disagrees with the checks apart: apart {apart:?}, one pass {together:?}"),
    }
}

fn key(name: &str) -> Option<SecretKey> {
    SecretKey::from_bytes(&sha256(&[b"paystreams-fuzz/transaction/", name.as_bytes()])).ok()
}

/// Signs deterministically (fixed auxiliary randomness), so seeds are reproducible.
#[must_use]
pub fn sign(message: Message, keys: &[&SecretKey]) -> Transaction {
    let hash = message.hash();
    let signatures_and_public_keys =
        keys.iter().map(|k| (k.sign_with_aux(&hash, &[0x5a; 32]), k.public_key())).collect();
    Transaction { message, witness_set: WitnessSet { signatures_and_public_keys } }
}

/// Valid transactions: a transfer, payment-streams calls, an unsigned one and a two-signer one.
#[must_use]
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let (Some(owner), Some(provider)) = (key("owner"), key("provider")) else { return vec![] };
    let vault = client::VaultRef::native(payment_streams_program_id(), owner.account_id(), 0);
    let transfer = Message {
        program_id: paystreams_lez_core::transfer::authenticated_transfer_program_id(),
        account_ids: vec![owner.account_id(), provider.account_id()],
        nonces: vec![0],
        instruction_data: transfer_instruction(250),
    };
    let call_message = |call: client::Call, nonce: u128| call.message(vec![nonce]);
    let init = call_message(client::initialize_vault(&vault, VaultPrivacyTier::Public), 1);
    let create = call_message(
        client::create_stream(
            &vault,
            0,
            provider.account_id(),
            5,
            3_000,
            paystreams_program::ExtensionSettings::default(),
        ),
        2,
    );
    let claim = call_message(client::claim(&vault, 0, provider.account_id(), None, None), 0);
    let unsigned = Message {
        program_id: payment_streams_program_id(),
        account_ids: vec![AccountId([1; 32])],
        nonces: vec![],
        instruction_data: vec![4],
    };
    let both = Message { nonces: vec![3, 1], ..transfer.clone() };
    [
        ("transfer", sign(transfer, &[&owner])),
        ("initialize-vault", sign(init, &[&owner])),
        ("create-stream", sign(create, &[&owner])),
        ("claim", sign(claim, &[&provider])),
        ("unsigned", sign(unsigned, &[])),
        ("two-signers", sign(both, &[&owner, &provider])),
    ]
    .into_iter()
    .map(|(name, tx)| (name.to_owned(), tx.envelope_bytes()))
    .collect()
}
