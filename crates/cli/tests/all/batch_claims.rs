//! Claims submitted as one batch against a real node: consecutive nonces, all sent before any
//! inclusion is awaited (`ChainWriter::submit_batch` over `sendTransactions`).

use paystreams_client::RpcChain;
use paystreams_program::ExtensionSettings;
use paystreams_provider::{ChainClaimer, Claim, ClaimSubmitter as _, StreamKey, VaultKey};

use crate::common::dev_node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_claims_is_included_and_pays_exactly_what_accrued() {
    let (node, client) = dev_node(None).await;
    let (user, provider) = (node.dev_keys()[0].clone(), node.dev_keys()[1].clone());
    client.init_vault(&user, 0, None).await.expect("vault");
    client.deposit(&user, 0, 30_000).await.expect("deposit");
    let mut claims = Vec::new();
    for rate in [10, 20, 30] {
        let (stream_id, _) = client
            .create_stream(&user, 0, provider.account_id(), rate, 5_000, ExtensionSettings::default())
            .await
            .expect("stream");
        let stream = StreamKey { vault: VaultKey { owner: user.account_id().0, vault_id: 0 }, stream_id };
        claims.push(Claim { stream, token_id: [0; 32], receipt: None });
    }
    client.advance_time(20).await.expect("advance");
    // Paused, so what accrued no longer changes while the claims are in flight.
    let mut accrued = 0_u128;
    for claim in &claims {
        client.pause(&user, 0, claim.stream.stream_id).await.expect("pause");
        accrued += client.require_stream(user.account_id(), 0, claim.stream.stream_id).await.expect("read").accrued.0;
    }
    assert!(accrued > 0);
    let before = client.balance(provider.account_id()).await.expect("balance");
    let claimer = ChainClaimer::new(RpcChain::new(client.clone()), provider.clone(), client.program_id(), None);
    assert_eq!(claimer.claim_batch(&claims).await.expect("batch"), vec![true; 3]);
    assert_eq!(client.balance(provider.account_id()).await.expect("balance"), before + accrued);
    for claim in &claims {
        let view = client.require_stream(user.account_id(), 0, claim.stream.stream_id).await.expect("read");
        assert_eq!(view.accrued.0, 0, "stream {} fully claimed", claim.stream.stream_id);
    }
    // A second batch finds nothing to pay: each claim is refused by the program, none panics.
    assert_eq!(claimer.claim_batch(&claims).await.expect("batch"), vec![false; 3]);
    node.shutdown().await;
}
