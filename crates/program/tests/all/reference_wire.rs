//! The transactions our client builds, byte for byte against the reference program's client.
//!
//! For each of the reference's eleven instructions (`lez_payment_streams_core::Instruction`,
//! lez-facts §2.1), the message our call builders produce equals the message built from the
//! reference enum's words ([`RefInstruction`], written out here field by field, not through our
//! mapping) over the same accounts and nonces: LEZ's `Message::try_new`, so the signed bytes and
//! hashes are the reference client's. A signed payment-streams transaction has its message bytes
//! and hash pinned (signatures are random, so they are checked, not pinned). Extended variants
//! round-trip, and malformed words are refused with the program's `InvalidInstruction`.

use paystreams_lez_core::{
    AccountId, ProgramId,
    crypto::SecretKey,
    lee_transaction::{LeeMessage, LeePublicTransaction, LeeTransaction},
    reference_instruction::{RefInstruction, RefPrivacyTier},
    risc0_words::WordsError,
    transfer::authenticated_transfer_program_id,
};
use paystreams_program::{
    ExtensionSettings, Instruction, client,
    client::VaultRef,
    payment_streams_program_id,
    receipt::{DeliveryReceipt, ReceiptBody},
    state::VaultPrivacyTier,
};

fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32]).expect("valid key")
}

/// Every reference instruction: our call, and the reference enum value with the same fields.
fn pairs(vault: &VaultRef, provider: AccountId) -> Vec<(client::Call, RefInstruction)> {
    let at = authenticated_transfer_program_id();
    let v = vault.vault_id;
    vec![
        (
            client::initialize_vault(vault, VaultPrivacyTier::Public),
            RefInstruction::InitializeVault { vault_id: v, privacy_tier: RefPrivacyTier::Public, token_id: [0; 32] },
        ),
        (
            client::deposit(vault, 1_000, at, None),
            RefInstruction::Deposit { vault_id: v, amount: 1_000, authenticated_transfer_program_id: at },
        ),
        (client::withdraw(vault, 7, Some(AccountId([9; 32]))), RefInstruction::Withdraw { vault_id: v, amount: 7 }),
        (
            client::create_stream(vault, 2, provider, 5, 300, ExtensionSettings::default()),
            RefInstruction::CreateStream { vault_id: v, stream_id: 2, provider, rate: 5, allocation: 300 },
        ),
        (client::pause_stream(vault, 2), RefInstruction::PauseStream { vault_id: v, stream_id: 2 }),
        (client::resume_stream(vault, 2), RefInstruction::ResumeStream { vault_id: v, stream_id: 2 }),
        (
            client::top_up_stream(vault, 2, 40),
            RefInstruction::TopUpStream { vault_id: v, stream_id: 2, vault_total_allocated_increase: 40 },
        ),
        (client::close_stream_by_owner(vault, 2), RefInstruction::CloseStreamByOwner { vault_id: v, stream_id: 2 }),
        (client::claim(vault, 2, provider, None, None), RefInstruction::Claim { vault_id: v, stream_id: 2 }),
        (
            client::close_stream_by_provider(vault, 2, provider, None, None),
            RefInstruction::CloseStreamByProvider { vault_id: v, stream_id: 2 },
        ),
        (client::withdraw(vault, 8, None), RefInstruction::WithdrawToOwner { vault_id: v, amount: 8 }),
    ]
}

#[test]
fn every_reference_instruction_builds_the_reference_clients_message() {
    let (owner, provider) = (key(1), key(2));
    let vault = VaultRef::native(payment_streams_program_id(), owner.account_id(), 3);
    let all = pairs(&vault, provider.account_id());
    assert_eq!(all.len(), 11);
    for (discriminant, (call, reference)) in (0_u32..).zip(&all) {
        assert_eq!(reference.discriminant(), discriminant);
        let ours = call.message(vec![4]);
        let theirs = LeeMessage::new(call.program_id, call.account_ids.clone(), vec![4], reference);
        assert_eq!(ours.to_bytes(), theirs.to_bytes(), "{}", call.instruction.name());
        assert_eq!(ours.hash(), theirs.hash(), "{}", call.instruction.name());
        assert_eq!(ours.instruction_data.first(), Some(&discriminant));
        // The program reads the reference's words back as the same instruction.
        assert_eq!(Instruction::from_words(&theirs.instruction_data).as_ref(), Ok(&call.instruction));
        // Signed by the reference's signer, the envelope our client sends decodes to it.
        let signer = if discriminant == 8 || discriminant == 9 { &provider } else { &owner };
        let tx = LeePublicTransaction::sign(ours, &[signer]);
        assert!(tx.signatures_valid());
        assert_eq!(LeePublicTransaction::from_envelope(&tx.envelope_bytes()).as_ref(), Ok(&tx));
    }
}

/// A claim by the provider of stream 2 of the owner's vault 3, nonce 4: the message bytes and
/// hash are pinned; the signature is random, so it is verified.
#[test]
fn a_signed_claim_has_pinned_message_bytes_and_hash() {
    let (owner, provider) = (key(1), key(2));
    let vault = VaultRef::native(payment_streams_program_id(), owner.account_id(), 3);
    let call = client::claim(&vault, 2, provider.account_id(), None, None);
    let message = call.message(vec![4]);
    let bytes = message.to_bytes();
    // program id (8 words) | 6 accounts | 1 nonce | 5 instruction words.
    assert_eq!(bytes.len(), 32 + 4 + 6 * 32 + 4 + 16 + 4 + 5 * 4);
    assert_eq!(hex::encode(&bytes[bytes.len() - 24..]), "050000000800000003000000000000000200000000000000");
    insta::assert_snapshot!("signed_claim_message", hex::encode(&bytes));
    insta::assert_snapshot!("signed_claim_message_hash", hex::encode(message.hash()));
    let tx = LeePublicTransaction::sign(message.clone(), &[&provider]);
    assert!(tx.signatures_valid());
    assert_eq!(tx.signer_ids(), vec![provider.account_id()]);
    let envelope = tx.envelope_bytes();
    assert_eq!(envelope.first(), Some(&0));
    let LeeTransaction::Public(decoded) = LeeTransaction::decode(&envelope).expect("decodes");
    assert_eq!(decoded.message, message);
    assert_eq!(decoded.hash(), tx.hash());
    // Signed by anyone else, the witness does not verify against the claimed key.
    let mut forged = tx;
    if let Some((_, key)) = forged.witness_set.signatures_and_public_keys.first_mut() {
        *key = owner.public_key();
    }
    assert!(!forged.signatures_valid());
}

fn receipt() -> DeliveryReceipt {
    DeliveryReceipt {
        body: ReceiptBody {
            program_id: ProgramId([1; 8]),
            stream_config: AccountId([2; 32]),
            stream_id: 2,
            acknowledged_total: 30,
            deliveries_digest: [4; 32],
        },
        signature: [6; 64],
    }
}

#[test]
fn extended_variants_round_trip_and_take_their_own_discriminants() {
    let provider = AccountId([11; 32]);
    let extensions = [
        ExtensionSettings { auto_pause_after: 60, ..ExtensionSettings::default() },
        ExtensionSettings { activation_fee: 1, ..ExtensionSettings::default() },
        ExtensionSettings { auto_claim_on_provider_close: true, ..ExtensionSettings::default() },
        ExtensionSettings { receipt_key: Some([9; 32]), ..ExtensionSettings::default() },
    ];
    for extensions in extensions {
        let create =
            Instruction::CreateStream { vault_id: 3, stream_id: 4, provider, rate: 10, allocation: 200, extensions };
        let words = create.to_words();
        assert_eq!(words.first(), Some(&11));
        assert_eq!(Instruction::from_words(&words), Ok(create));
    }
    let claim = Instruction::Claim { vault_id: 1, stream_id: 2, receipt: Some(receipt()) };
    let close = Instruction::CloseStreamByProvider { vault_id: 1, stream_id: 2, receipt: Some(receipt()) };
    for (instruction, discriminant) in [(claim, 12), (close, 13)] {
        let words = instruction.to_words();
        assert_eq!(words.first(), Some(&discriminant));
        assert_eq!(Instruction::from_words(&words), Ok(instruction));
    }
}

#[test]
fn malformed_words_are_refused_with_a_reason() {
    let provider = AccountId([11; 32]);
    // Discriminant 11 with every extension at its default: the instruction's one encoding is 3.
    let plain = Instruction::CreateStream {
        vault_id: 3,
        stream_id: 4,
        provider,
        rate: 10,
        allocation: 200,
        extensions: ExtensionSettings::default(),
    };
    let mut words = plain.to_words();
    assert_eq!(words.first(), Some(&3));
    words[0] = 11;
    words.extend([0, 0, 0, 0, 0, 0, 0, 0]);
    let err = Instruction::from_words(&words).expect_err("empty extension refused");
    assert!(err.to_string().contains("discriminant 3"), "{err}");
    // Unknown discriminants.
    assert!(matches!(Instruction::from_words(&[14, 1, 0, 2, 0]), Err(WordsError::UnknownVariant { value: 14, .. })));
    // Trailing words, after a reference variant and after an extended one.
    assert!(matches!(Instruction::from_words(&[8, 1, 0, 2, 0, 0]), Err(WordsError::Trailing { count: 1, .. })));
    let mut claim = Instruction::Claim { vault_id: 1, stream_id: 2, receipt: Some(receipt()) }.to_words();
    claim.push(0);
    assert!(matches!(Instruction::from_words(&claim), Err(WordsError::Trailing { count: 1, .. })));
    // Truncated and empty.
    assert!(matches!(Instruction::from_words(&[12, 1, 0, 2, 0]), Err(WordsError::Truncated { .. })));
    assert!(Instruction::from_words(&[]).is_err());
}
