//! The behaviour every backend shows, run against memory, redb and PostgreSQL (each case on a
//! fresh database from `paystreams_testkit::postgres`; ignored by name where the machine has no
//! PostgreSQL), and the fixtures the unit tests share.

use std::future::Future;

use paystreams_testkit::postgres::TestDatabase;

use super::{
    record::{index_key, replay_key},
    *,
};
use crate::session::{AcceptedParams, EndReason, PinnedPolicy, Session, SessionId, SessionState, StreamKey, VaultKey};

/// The requester every fixture session is accepted from.
pub(super) const PEER: &[u8] = b"peer";

pub(super) fn session(byte: u8, vault_id: u64, deadline: u64) -> Session {
    Session {
        id: SessionId([byte; 32]),
        vault: VaultKey { owner: [1; 32], vault_id },
        owner_public_key: [2; 32],
        token_id: [0; 32],
        params: AcceptedParams { service_id: "s".into(), rate: 1, allocation: 10, create_stream_deadline: deadline },
        policy: PinnedPolicy {
            max_create_stream_deadline_delay: 300,
            first_response_cap: 10,
            min_rate: 1,
            min_allocation: 1,
            deferred_first_proof: false,
        },
        session_key: [4; 32],
        accepted_at: 0,
        predicted_stream_id: 0,
        state: SessionState::Pending,
        matching_stream: None,
        suspended_until: 0,
    }
}

async fn exercise(store: &impl SessionStore) {
    let a = session(10, 0, 100);
    assert_eq!(store.accept(&a, PEER, 50).await.expect("accept"), AcceptOutcome::Accepted);
    // One pending session per vault; a used proposal stays used.
    assert_eq!(store.accept(&session(11, 0, 100), PEER, 50).await.expect("accept"), AcceptOutcome::PendingExists(a.id));
    assert_eq!(store.accept(&a, PEER, 50).await.expect("accept"), AcceptOutcome::PendingExists(a.id));
    // Another vault is independent, and may race for the same stream id 0.
    let b = session(12, 1, 100);
    assert_eq!(store.accept(&b, PEER, 50).await.expect("accept"), AcceptOutcome::Accepted);
    let ids: Vec<SessionId> = store.requester_sessions(PEER).await.expect("requester").iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![a.id, b.id], "the requester's sessions, newest last");
    // First binding wins; a second bind names the bound stream.
    assert_eq!(store.bind_stream(a.id, 0).await.expect("bind"), BindOutcome::Bound);
    assert_eq!(store.bind_stream(a.id, 1).await.expect("bind"), BindOutcome::AlreadyBound(0));
    assert!(store.pending(a.vault).await.expect("pending").is_none());
    // A stream backs one session only.
    let c = session(13, 0, 100);
    assert_eq!(store.accept(&c, PEER, 50).await.expect("accept"), AcceptOutcome::Accepted);
    assert_eq!(store.bind_stream(c.id, 0).await.expect("bind"), BindOutcome::StreamTaken(a.id));
    // Replay: check and insert are one step.
    assert!(store.record_request(a.id, [9; 32]).await.expect("record"));
    assert!(!store.record_request(a.id, [9; 32]).await.expect("record"));
    assert!(store.seen_request(a.id, [9; 32]).await.expect("seen"));
    assert!(!store.seen_request(b.id, [9; 32]).await.expect("seen"));
    // Attempts inside the window.
    for expected in 1..=3 {
        assert_eq!(store.record_attempt(a.vault, 100, 600).await.expect("attempt"), expected);
    }
    assert_eq!(store.record_attempt(a.vault, 700, 600).await.expect("attempt"), 1);
    // An expired pending session gives way.
    assert_eq!(store.accept(&session(14, 0, 200), PEER, 101).await.expect("accept"), AcceptOutcome::Accepted);
    let ended = store.session(c.id).await.expect("read").expect("kept");
    assert!(matches!(ended.state, SessionState::Ended { reason: EndReason::DeadlineMissed, .. }));
    assert_eq!(store.claimables().await.expect("claimables").len(), 1);
    store.purge(a.id).await.expect("purge");
    assert!(store.session(a.id).await.expect("read").is_none());
    assert!(!store.seen_request(a.id, [9; 32]).await.expect("seen"));
    assert_eq!(store.accept(&a, PEER, 500).await.expect("accept"), AcceptOutcome::ProposalUsed);
    exercise_receipts(store).await;
}

pub(super) fn receipt(total: u128) -> paystreams_program::receipt::DeliveryReceipt {
    use paystreams_program::receipt::{DeliveryReceipt, ReceiptBody};
    DeliveryReceipt {
        body: ReceiptBody {
            program_id: paystreams_lez_core::ProgramId([5; 8]),
            stream_config: paystreams_lez_core::AccountId([6; 32]),
            stream_id: 3,
            acknowledged_total: total,
            deliveries_digest: [7; 32],
        },
        signature: [8; 64],
    }
}

/// Receipts: kept per stream, totals only grow, gone with the claimable entry.
async fn exercise_receipts(store: &impl SessionStore) {
    let stream = StreamKey { vault: VaultKey { owner: [9; 32], vault_id: 4 }, stream_id: 3 };
    let other = StreamKey { stream_id: 4, ..stream };
    assert_eq!(store.latest_receipt(stream).await.expect("read"), None);
    assert!(store.put_receipt(stream, &receipt(10)).await.expect("put"));
    assert!(!store.put_receipt(stream, &receipt(10)).await.expect("put"), "same total");
    assert!(!store.put_receipt(stream, &receipt(9)).await.expect("put"), "lower total");
    assert!(store.put_receipt(stream, &receipt(u128::MAX)).await.expect("put"));
    assert_eq!(store.latest_receipt(stream).await.expect("read"), Some(receipt(u128::MAX)));
    assert_eq!(store.latest_receipt(other).await.expect("read"), None);
    store.add_claimable(stream, [0; 32]).await.expect("claimable");
    store.remove_claimable(stream).await.expect("unclaimable");
    assert_eq!(store.latest_receipt(stream).await.expect("read"), None);
    // Left for the reopen checks.
    assert!(store.put_receipt(other, &receipt(5)).await.expect("put"));
}

#[tokio::test]
async fn memory_store_rules() {
    exercise(&MemoryStore::new()).await;
}

#[tokio::test]
async fn redb_store_rules_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.redb");
    exercise(&RedbStore::open(&path).expect("open")).await;
    let reopened = RedbStore::open(&path).expect("reopen");
    assert_eq!(reopened.sessions().await.expect("sessions").len(), 3);
    let kept = StreamKey { vault: VaultKey { owner: [9; 32], vault_id: 4 }, stream_id: 4 };
    assert_eq!(reopened.latest_receipt(kept).await.expect("read"), Some(receipt(5)));
    assert_eq!(reopened.accept(&session(10, 0, 100), PEER, 1).await.expect("accept"), AcceptOutcome::ProposalUsed);
}

/// Layout-1 bytes of a session (the borsh `Session` of that layout: the provider id after
/// the owner's key, the token id repeated inside the pinned policy), built field by field.
pub(super) fn layout1_session(s: &Session) -> Vec<u8> {
    let p = &s.policy;
    let policy = (
        p.max_create_stream_deadline_delay,
        p.first_response_cap,
        s.token_id,
        p.min_rate,
        p.min_allocation,
        p.deferred_first_proof,
    );
    let head = (s.id, s.vault, s.owner_public_key, [3_u8; 32], s.token_id, &s.params, policy);
    let tail = (s.session_key, s.accepted_at, s.predicted_stream_id, s.state, s.matching_stream, s.suspended_until);
    [borsh::to_vec(&head).expect("head"), borsh::to_vec(&tail).expect("tail")].concat()
}

/// What the same history leaves in both layouts: `a` bound to (vault 0, stream 0) with a
/// recorded request; `b` pending on vault 1; `c` bound to (vault 2, stream 1), ended and
/// purged (its stream still claimable and still bound); `d` ended without a stream;
/// attempts on vault 0.
pub(super) fn history() -> [Session; 4] {
    let mut a = session(10, 0, 100);
    a.state = SessionState::Bound { stream_id: 0 };
    a.matching_stream = Some((0, 60));
    let b = session(11, 1, 100);
    let mut c = session(12, 2, 100);
    c.predicted_stream_id = 1;
    c.state = SessionState::Ended { reason: EndReason::StreamClosed, at: 90 };
    c.token_id = [6; 32];
    let mut d = session(13, 3, 80);
    d.predicted_stream_id = 2;
    d.state = SessionState::Ended { reason: EndReason::DeadlineMissed, at: 81 };
    d.policy.deferred_first_proof = true;
    d.suspended_until = 7;
    [a, b, c, d]
}

/// The history through the current code.
async fn replay_history(store: &impl SessionStore) {
    let [a, b, c, d] = history();
    assert_eq!(store.record_attempt(a.vault, 40, 600).await.expect("attempt"), 1);
    for s in [&a, &b, &c, &d] {
        let mut pending = s.clone();
        pending.state = SessionState::Pending;
        pending.matching_stream = None;
        assert_eq!(store.accept(&pending, PEER, 50).await.expect("accept"), AcceptOutcome::Accepted);
    }
    assert_eq!(store.bind_stream(a.id, 0).await.expect("bind"), BindOutcome::Bound);
    assert_eq!(store.bind_stream(c.id, 1).await.expect("bind"), BindOutcome::Bound);
    for s in [&a, &c, &d] {
        store.update(s).await.expect("update");
    }
    assert!(store.record_request(a.id, [9; 32]).await.expect("record"));
    store.purge(c.id).await.expect("purge");
}

/// The history as layout 1 stored it, written entry by entry.
pub(super) fn write_layout1(kv: &impl Kv) {
    let [a, b, c, d] = history();
    let stream = |s: &Session, id: u64| StreamKey { vault: s.vault, stream_id: id }.to_key();
    kv.transact(|t| {
        for s in [&a, &b, &d] {
            t.put(Table::Sessions, &s.id.0, &layout1_session(s))?;
        }
        t.put(Table::Pending, &b.vault.to_key(), &b.id.0)?;
        for s in [&a, &b, &c, &d] {
            t.put(Table::Used, &s.id.0, &[])?;
        }
        for (stream_id, s) in [(0, &a), (0, &b), (2, &d)] {
            t.put(Table::Index, &index_key(stream_id, s.id), &[])?;
        }
        t.put(Table::Bound, &stream(&a, 0), &a.id.0)?;
        // Purging an ended session keeps its binding (the state no longer names the stream).
        t.put(Table::Bound, &stream(&c, 1), &c.id.0)?;
        t.put(Table::Claimable, &stream(&a, 0), &a.token_id)?;
        t.put(Table::Claimable, &stream(&c, 1), &c.token_id)?;
        t.put(Table::Replay, &replay_key(a.id, &[9; 32]), &[])?;
        t.put(Table::Attempts, &a.vault.to_key(), &borsh::to_vec(&vec![40_u64]).expect("attempts"))
    })
    .expect("write layout 1");
}

/// Every answer the store gives about the history, then the outcomes of further calls.
async fn observe(store: &impl SessionStore) -> Vec<String> {
    let [a, b, c, d] = history();
    let mut out = Vec::new();
    let mut sessions = store.sessions().await.expect("sessions");
    sessions.sort_by_key(|s| s.id);
    out.push(format!("{sessions:?}"));
    let mut claimables = store.claimables().await.expect("claimables");
    claimables.sort();
    out.push(format!("{claimables:?}"));
    for s in [&a, &b, &c, &d] {
        out.push(format!("{:?}", store.session(s.id).await.expect("session")));
        out.push(format!("{:?}", store.pending(s.vault).await.expect("pending")));
        for stream_id in 0..3 {
            out.push(format!(
                "{:?}",
                store.bound_session(StreamKey { vault: s.vault, stream_id }).await.expect("bound")
            ));
        }
        out.push(format!("{}", store.seen_request(s.id, [9; 32]).await.expect("seen")));
    }
    // Behaviour from here on.
    for s in [&a, &b, &c, &d] {
        let mut again = s.clone();
        again.state = SessionState::Pending;
        out.push(format!("{:?}", store.accept(&again, PEER, 60).await.expect("accept")));
    }
    out.push(format!("{:?}", store.accept(&session(14, 1, 100), PEER, 60).await.expect("accept")));
    out.push(format!("{:?}", store.record_attempt(a.vault, 100, 600).await.expect("attempt")));
    out.push(format!("{:?}", store.record_request(a.id, [9; 32]).await.expect("record")));
    out.push(format!("{:?}", store.bind_stream(b.id, 0).await.expect("bind")));
    let c_stream = StreamKey { vault: c.vault, stream_id: 1 };
    out.push(format!("{:?}", store.bind_stream(session(15, 2, 100).id, 1).await.expect("bind")));
    let mut e = session(15, 2, 100);
    e.predicted_stream_id = 1;
    out.push(format!("{:?}", store.accept(&e, PEER, 60).await.expect("accept")));
    out.push(format!("{:?}", store.bind_stream(e.id, 1).await.expect("bind")));
    out.push(format!("{:?}", store.bound_session(c_stream).await.expect("bound")));
    store.remove_claimable(c_stream).await.expect("remove");
    store.remove_claimable(StreamKey { vault: a.vault, stream_id: 0 }).await.expect("remove");
    store.add_claimable(StreamKey { vault: d.vault, stream_id: 5 }, [8; 32]).await.expect("add");
    let mut claimables = store.claimables().await.expect("claimables");
    claimables.sort();
    out.push(format!("{claimables:?}"));
    store.purge(a.id).await.expect("purge");
    out.push(format!("{:?}", store.bound_session(StreamKey { vault: a.vault, stream_id: 0 }).await.expect("bound")));
    out.push(format!("{:?}", store.accept(&a, PEER, 60).await.expect("accept")));
    out.push(format!("{}", store.seen_request(a.id, [9; 32]).await.expect("seen")));
    out
}

#[tokio::test]
async fn a_layout_1_memory_store_is_converted_and_behaves_the_same() {
    let expected = MemoryStore::new();
    replay_history(&expected).await;
    let expected = observe(&expected).await;

    let kv = MemoryKv::default();
    write_layout1(&kv);
    let store = KvStore::with_kv(kv).expect("migrate");
    // Used marks remain only for purged proposals; the claimable table is empty.
    assert_eq!(store.kv().len(Table::Used).expect("len"), 1);
    assert_eq!(store.kv().len(Table::Claimable).expect("len"), 0);
    assert_eq!(observe(&store).await, expected);
}

#[tokio::test]
async fn a_layout_1_redb_file_is_converted_once_and_behaves_the_same() {
    let expected = MemoryStore::new();
    replay_history(&expected).await;
    let expected = observe(&expected).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.redb");
    write_layout1(&RedbKv::open(&path).expect("open raw"));
    drop(RedbStore::open(&path).expect("migrate"));
    let store = RedbStore::open(&path).expect("reopen");
    assert_eq!(observe(&store).await, expected);
}

/// The history as layout 2 stored it: today's session records, a candidate index entry per
/// predicted and bound stream id, and the layout mark 2.
fn write_layout2(kv: &impl Kv) {
    let [a, b, c, d] = history();
    let stream = |s: &Session, id: u64| StreamKey { vault: s.vault, stream_id: id }.to_key();
    kv.transact(|t| {
        for s in [&a, &b, &d] {
            t.put(Table::Sessions, &s.id.0, &encode_session(s))?;
        }
        t.put(Table::Pending, &b.vault.to_key(), &b.id.0)?;
        t.put(Table::Used, &c.id.0, &[])?;
        for (stream_id, s) in [(0, &a), (0, &b), (2, &d)] {
            t.put(Table::Index, &index_key(stream_id, s.id), &[])?;
        }
        t.put(Table::Bound, &stream(&a, 0), &[a.id.0, a.token_id].concat())?;
        // Purging an ended session keeps its binding (the state no longer names the stream).
        t.put(Table::Bound, &stream(&c, 1), &[c.id.0, c.token_id].concat())?;
        t.put(Table::Replay, &replay_key(a.id, &[9; 32]), &[])?;
        t.put(Table::Attempts, &a.vault.to_key(), &borsh::to_vec(&vec![40_u64]).expect("attempts"))?;
        t.put(Table::Meta, b"layout", &2_u32.to_be_bytes())
    })
    .expect("write layout 2");
}

#[tokio::test]
async fn a_layout_2_store_loses_its_candidate_index_and_behaves_the_same() {
    let expected = MemoryStore::new();
    replay_history(&expected).await;
    let expected = observe(&expected).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v2.redb");
    write_layout2(&RedbKv::open(&path).expect("open raw"));
    drop(RedbStore::open(&path).expect("migrate"));
    let store = RedbStore::open(&path).expect("reopen");
    let (index, layout) =
        store.kv().read(|t| Ok((t.scan(Table::Index, &[], 10)?.len(), t.get(Table::Meta, b"layout")?))).expect("read");
    assert_eq!((index, layout), (0, Some(LAYOUT_VERSION.to_be_bytes().to_vec())));
    // Sessions from before have no requester: proofs find none of them.
    assert!(store.requester_sessions(PEER).await.expect("read").is_empty());
    assert_eq!(observe(&store).await, expected);
}

/// Connects from a blocking thread, as the service does (connecting waits on the server).
async fn pg_connect(url: &str) -> Result<crate::PgStore, StoreError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || crate::PgStore::connect(&url)).await.expect("connect task")
}

#[tokio::test]
#[cfg_attr(not(has_postgres), ignore = "needs PostgreSQL: apt-get install postgresql")]
async fn postgres_store_rules_and_reconnect() {
    let db = TestDatabase::create().expect("a test database");
    let store = pg_connect(db.url()).await.expect("connect");
    exercise(&store).await;
    drop(store);
    let reopened = pg_connect(db.url()).await.expect("reconnect");
    assert_eq!(reopened.sessions().await.expect("sessions").len(), 3);
    let kept = StreamKey { vault: VaultKey { owner: [9; 32], vault_id: 4 }, stream_id: 4 };
    assert_eq!(reopened.latest_receipt(kept).await.expect("read"), Some(receipt(5)));
    assert_eq!(reopened.accept(&session(10, 0, 100), PEER, 1).await.expect("accept"), AcceptOutcome::ProposalUsed);
    assert!(
        pg_connect("postgres://nobody@127.0.0.1:1/none")
            .await
            .expect_err("refused")
            .to_string()
            .contains("is the server running")
    );
}

#[tokio::test]
#[cfg_attr(not(has_postgres), ignore = "needs PostgreSQL: apt-get install postgresql")]
async fn a_layout_1_postgres_database_is_converted_and_behaves_the_same() {
    let db = TestDatabase::create().expect("a test database");
    let expected = MemoryStore::new();
    replay_history(&expected).await;
    let expected = observe(&expected).await;
    let url = db.url().to_owned();
    tokio::task::spawn_blocking(move || write_layout1(&crate::PgKv::connect(&url).expect("connect raw")))
        .await
        .expect("layout 1 writer");
    // As a database written by the previous version: schema version 1.
    let schema_version = |sql: &str| {
        db.batch_execute(sql).expect("statement");
        let rows = db.query("SELECT max(version) FROM paystreams_sessions_schema").expect("version");
        rows.first().expect("one row").get::<_, i32>(0)
    };
    assert_eq!(schema_version("UPDATE paystreams_sessions_schema SET version = 1"), 1);
    drop(pg_connect(db.url()).await.expect("migrate"));
    assert_eq!(schema_version("SELECT 1"), crate::store::postgres::PG_SCHEMA_VERSION);
    let store = pg_connect(db.url()).await.expect("reconnect");
    assert_eq!(observe(&store).await, expected);
}

#[tokio::test]
#[cfg_attr(not(has_postgres), ignore = "needs PostgreSQL: apt-get install postgresql")]
async fn a_layout_2_postgres_database_is_converted_and_behaves_the_same() {
    let db = TestDatabase::create().expect("a test database");
    let expected = MemoryStore::new();
    replay_history(&expected).await;
    let expected = observe(&expected).await;
    let url = db.url().to_owned();
    tokio::task::spawn_blocking(move || write_layout2(&crate::PgKv::connect(&url).expect("connect raw")))
        .await
        .expect("layout 2 writer");
    db.batch_execute("UPDATE paystreams_sessions_schema SET version = 2").expect("as version 2");
    drop(pg_connect(db.url()).await.expect("migrate"));
    let rows = db.query("SELECT max(version) FROM paystreams_sessions_schema").expect("version");
    assert_eq!(rows.first().expect("one row").get::<_, i32>(0), crate::store::postgres::PG_SCHEMA_VERSION);
    let store = pg_connect(db.url()).await.expect("reconnect");
    let index = db.query(&format!("SELECT count(*) FROM paystreams_sessions_kv WHERE tbl = {}", Table::Index.code()));
    assert_eq!(index.expect("count").first().expect("one row").get::<_, i64>(0), 0);
    assert_eq!(observe(&store).await, expected);
}

/// Two stores on one database (two provider processes) racing from many threads, each
/// thread with its own runtime: every check-and-write succeeds exactly once.
#[test]
#[cfg_attr(not(has_postgres), ignore = "needs PostgreSQL: apt-get install postgresql")]
fn postgres_races_between_processes_have_one_winner() {
    let db = TestDatabase::create().expect("a test database");
    let (store_a, store_b) =
        (crate::PgStore::connect(db.url()).expect("a"), crate::PgStore::connect(db.url()).expect("b"));
    let race = |op: &(dyn Fn(&crate::PgStore, usize) -> bool + Sync)| -> usize {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let store = if i % 2 == 0 { &store_a } else { &store_b };
                    s.spawn(move || op(store, i))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).filter(|won| *won).count()
        })
    };
    let run = |f: std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>>| {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
    };
    // The same request digest recorded by eight racers: one records it.
    let a = session(30, 7, 100);
    run(Box::pin(async { store_a.accept(&a, PEER, 1).await.expect("accept") == AcceptOutcome::Accepted }));
    assert_eq!(
        race(&|store, _| run(Box::pin(async move { store.record_request(a.id, [5; 32]).await.expect("record") }))),
        1
    );
    // Eight different proposals for one vault: one is accepted (one pending per vault).
    let accepted = race(&|store, i| {
        let mut s = session(40, 8, 100);
        s.id = SessionId([40 + u8::try_from(i).expect("small"); 32]);
        run(Box::pin(async move { store.accept(&s, PEER, 1).await.expect("accept") == AcceptOutcome::Accepted }))
    });
    assert_eq!(accepted, 1);
    // One pending session bound by eight racers (to two different stream ids): one binds.
    let b = session(50, 9, 100);
    run(Box::pin(async { store_b.accept(&b, PEER, 1).await.expect("accept") == AcceptOutcome::Accepted }));
    let bound = race(&|store, i| {
        let stream_id = 5 + u64::try_from(i % 2).expect("small");
        run(Box::pin(async move { store.bind_stream(b.id, stream_id).await.expect("bind") == BindOutcome::Bound }))
    });
    assert_eq!(bound, 1, "a session binds once");
}
