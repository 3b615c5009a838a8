//! End to end through the payment-streams program: InitializeVault, Deposit (a chained call to
//! authenticated transfer), CreateStream, Claim.

use paystreams_lez_core::transfer::authenticated_transfer_program_id;
use paystreams_program::{
    Event,
    client::{self, VaultRef},
    instruction::ExtensionSettings,
    payment_streams_program_id,
    state::{StreamConfig, VaultConfig, VaultPrivacyTier},
};
use paystreams_runtime::ReceiptEvent;

use crate::common::{Harness, key, native};

fn advance(h: &mut Harness, seconds: u64) {
    h.chain.advance_to(seconds).expect("clock update");
}

#[test]
fn vault_deposit_stream_and_claim() {
    let (owner, provider) = (key(1), key(2));
    // The provider is initialised (balance 0, owned by authenticated transfer) at genesis.
    let mut h = Harness::new(&[(owner.account_id(), 10_000), (provider.account_id(), 0)], &[]);
    let vault = VaultRef::native(payment_streams_program_id(), owner.account_id(), 0);

    let call = client::initialize_vault(&vault, VaultPrivacyTier::Public);
    let applied = h.call(call.program_id, call.account_ids.clone(), call.instruction_data(), &[&owner]).expect("init");
    assert!(matches!(
        applied.receipt.events.as_slice(),
        [ReceiptEvent::PaymentStreams { event: Event::VaultInitialized { .. } }]
    ));
    assert_eq!(h.account(&vault.config()).program_owner, payment_streams_program_id());
    assert_eq!(h.account(&vault.holding()).program_owner, payment_streams_program_id());

    let call = client::deposit(&vault, 1_000, authenticated_transfer_program_id(), None);
    let applied =
        h.call(call.program_id, call.account_ids.clone(), call.instruction_data(), &[&owner]).expect("deposit");
    assert_eq!(
        applied.receipt.events,
        vec![
            ReceiptEvent::PaymentStreams {
                event: Event::Deposited { owner: owner.account_id(), vault_id: 0, amount: 1_000 }
            },
            ReceiptEvent::NativeTransfer { from: owner.account_id(), to: vault.holding(), amount: 1_000 },
        ]
    );
    assert_eq!(h.account(&vault.holding()).balance, 1_000);
    assert_eq!(h.account(&owner.account_id()).balance, 9_000);

    advance(&mut h, 100);
    let call = client::create_stream(&vault, 0, provider.account_id(), 2, 500, ExtensionSettings::default());
    h.call(call.program_id, call.account_ids.clone(), call.instruction_data(), &[&owner]).expect("create stream");
    let config: VaultConfig = borsh::from_slice(&h.account(&vault.config()).data).expect("vault config");
    assert_eq!(config.total_allocated, 500);

    advance(&mut h, 150);
    let call = client::claim(&vault, 0, provider.account_id(), None, None);
    let applied =
        h.call(call.program_id, call.account_ids.clone(), call.instruction_data(), &[&provider]).expect("claim");
    assert!(
        applied
            .receipt
            .events
            .iter()
            .any(|e| matches!(e, ReceiptEvent::PaymentStreams { event: Event::Claimed { amount: 100, .. } }))
    );
    assert_eq!(h.account(&provider.account_id()).balance, 100);
    assert_eq!(h.account(&vault.holding()).balance, 900);
    assert_eq!(h.account(&provider.account_id()).program_owner, native());
    let stream: StreamConfig = borsh::from_slice(&h.account(&vault.stream(0)).data).expect("stream config");
    assert_eq!(stream.allocation, 400);
    // The program's own errors keep their codes and names: the owner cannot claim.
    let error = h
        .call(call.program_id, call.account_ids.clone(), call.instruction_data(), &[&owner])
        .expect_err("owner is not the provider");
    assert!(error.code() > 6000, "{error}");
    assert_ne!(error.name(), "ProgramError");
    let json = serde_json::to_string(&applied.receipt).expect("receipt json");
    assert!(json.contains("\"type\":\"payment_streams\""));
}
