//! The archive read that runs beside the verdict for a requester in good standing: it starts
//! only after that requester's last stream proof was granted, a refused request never gets its
//! page even though its read ran, the refusal is counted as before, and one refusal ends the
//! overlap until the requester's next grant. Ends with the exact balance check.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use paystreams_rpc::remote::RpcChain;
use paystreams_store::{
    Archive, STORE_SERVICE_ID,
    archive::{ArchiveError, ArchivePage, ArchiveQuery, SqliteArchive, StoredMessage},
    client::{PaidStore, StoreClient},
    provider::start,
    service::Metrics,
    wire::StoreQueryResponse,
};
use paystreams_user::{Terms, User, UserConfig};
use paystreams_wire::StatusCode;

use crate::common::{funded_chain, messages, provider_config, query};

const DEPOSIT: u128 = 5_000;

/// An archive that counts the pages read from it.
#[derive(Debug)]
struct CountingArchive {
    inner: SqliteArchive,
    reads: AtomicU64,
}

impl Archive for CountingArchive {
    fn insert(&self, messages: &[StoredMessage]) -> Result<u64, ArchiveError> {
        self.inner.insert(messages)
    }

    fn query(&self, query: &ArchiveQuery) -> Result<ArchivePage, ArchiveError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.query(query)
    }

    fn count(&self) -> Result<u64, ArchiveError> {
        self.inner.count()
    }
}

/// The counters a refusal must leave as they were, and the overlap's own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Counts {
    served: u64,
    messages_served: u64,
    bytes_served: u64,
    refused_proof_invalid: u64,
    archive_errors: u64,
    speculative: u64,
    discarded: u64,
}

fn counts(m: &Metrics) -> Counts {
    let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
    Counts {
        served: get(&m.served),
        messages_served: get(&m.messages_served),
        bytes_served: get(&m.bytes_served),
        refused_proof_invalid: get(&m.refused[1]),
        archive_errors: get(&m.archive_errors),
        speculative: get(&m.speculative_reads),
        discarded: get(&m.speculative_reads_discarded),
    }
}

fn assert_refused(response: &StoreQueryResponse) {
    assert_eq!(response.status_code, Some(400), "{response:?}");
    assert!(response.messages.is_empty(), "a refused request gets no page");
    assert!(response.pagination_cursor.is_none());
    let eligibility = response.eligibility.as_ref().expect("verdict at field 30");
    assert_eq!(eligibility.status.code(), Some(StatusCode::ProofInvalid));
}

/// Waits until `archive` has served `reads` pages (a discarded read may end after the answer).
async fn wait_reads(archive: &CountingArchive, reads: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while archive.reads.load(Ordering::SeqCst) < reads {
        assert!(Instant::now() < deadline, "{} archive reads, expected {reads}", archive.reads.load(Ordering::SeqCst));
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(archive.reads.load(Ordering::SeqCst), reads, "no read beyond those expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_read_beside_the_verdict_never_releases_a_refused_page() {
    let chain = funded_chain(1, DEPOSIT).await;
    let (client, user_key) = (chain.client.clone(), chain.users[0].clone());
    let provider_id = chain.provider_account.0;
    let archive = Arc::new(CountingArchive { inner: SqliteArchive::in_memory().expect("archive"), reads: 0.into() });
    archive.insert(&messages(23)).expect("seed");
    let provider = start(
        provider_config(chain.node.rpc_url(), chain.provider_key.clone(), "/ip4/127.0.0.1/tcp/0"),
        Arc::clone(&archive) as Arc<dyn Archive>,
    )
    .await
    .expect("provider");
    let address = provider.addrs()[0].to_string();
    let user = Arc::new(User::new(user_key.clone(), RpcChain::new(client.clone()), UserConfig::default()));
    let store = StoreClient::connect(&address).await.expect("client");
    let terms = Terms { vault_id: 0, token_id: [0; 32], service_id: STORE_SERVICE_ID.into(), rate: 0, allocation: 0 };
    let paid = PaidStore::new(store.clone(), Arc::clone(&user), terms).await.expect("policy");
    let metrics = provider.metrics();

    // The proposal's first response and the first stream proof: the requester is not yet in
    // good standing (no stream proof granted before either), so both read only after the grant.
    let first = paid.page(&query()).await.expect("first page");
    assert!(first.stream_created.is_some());
    paid.page(&query()).await.expect("first stream proof");
    let before = counts(metrics);
    assert_eq!((before.speculative, before.discarded), (0, 0));
    wait_reads(&archive, 2).await;

    // Granted once: the next request's page is read beside the verdict and served.
    let page = paid.page(&query()).await.expect("paid page");
    assert_eq!(page.response.messages.len(), 5);
    assert_eq!(counts(metrics).speculative, 1);
    wait_reads(&archive, 3).await;

    // A replay of a served request: its page is read beside the verdict, then dropped unseen.
    let mut once = query();
    once.eligibility_proof = Some(user.proof(&provider_id, &once.canonical()).await.expect("proof"));
    assert_eq!(store.send(&once).await.expect("served").status_code, Some(200));
    let served = counts(metrics);
    assert_eq!(served.speculative, 2);
    let replay = store.send(&once).await.expect("answer");
    assert_refused(&replay);
    let after = counts(metrics);
    assert_eq!(
        after,
        Counts {
            refused_proof_invalid: served.refused_proof_invalid + 1,
            speculative: served.speculative + 1,
            discarded: served.discarded + 1,
            ..served
        },
        "the refusal counted as before, nothing served, the read discarded"
    );
    wait_reads(&archive, 5).await;

    // After a refusal the requester is out of good standing: a forged proof (a signature over
    // another request) reads nothing.
    let mut forged = query();
    let other = query();
    forged.eligibility_proof = Some(user.proof(&provider_id, &other.canonical()).await.expect("proof"));
    assert_refused(&store.send(&forged).await.expect("answer"));
    let forged_counts = counts(metrics);
    assert_eq!(
        forged_counts,
        Counts { refused_proof_invalid: after.refused_proof_invalid + 1, ..after },
        "no read for a requester whose last proof was refused"
    );
    // Nor does a peer without a session, sending a proof it copied.
    let stranger = StoreClient::connect(&address).await.expect("client");
    let mut copied = query();
    copied.eligibility_proof = Some(user.proof(&provider_id, &copied.canonical()).await.expect("proof"));
    assert_refused(&stranger.send(&copied).await.expect("answer"));
    assert_eq!(counts(metrics).speculative, forged_counts.speculative);

    // The next grant restores it: one page read after its grant, the one after beside it.
    paid.page(&query()).await.expect("paid page");
    assert_eq!(counts(metrics).speculative, forged_counts.speculative);
    paid.page(&query()).await.expect("paid page");
    let end = counts(metrics);
    assert_eq!((end.speculative, end.discarded), (forged_counts.speculative + 1, forged_counts.discarded));
    // Every read is accounted for: the served pages, and the one discarded.
    wait_reads(&archive, end.served + end.discarded).await;
    assert_eq!(end.archive_errors, 0);

    // Money is exact: service accrues, the user closes, the provider claims on the close.
    client.advance_time(10).await.expect("time");
    let stream_id = paid.close().await.expect("close").expect("a stream to close");
    let owner = user_key.account_id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.require_stream(owner, 0, stream_id).await.expect("stream").accrued.0 != 0 {
        assert!(Instant::now() < deadline, "the provider claimed what accrued after the close");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let vault = client.vault(owner, 0).await.expect("vault").expect("exists");
    let earned = client.balance(chain.provider_account).await.expect("balance") - chain.provider_before;
    assert!(earned >= 10, "ten seconds of service at least at the minimum rate: {earned}");
    assert_eq!(vault.unallocated.0 + earned, DEPOSIT, "every unit deposited is in the vault or was earned");
    assert_eq!(vault.balance.0, vault.unallocated.0);
    provider.shutdown().await;
    chain.node.shutdown().await;
}
