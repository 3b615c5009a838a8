//! The archives against a naive model of Store v3's query rules: filters, the inclusive start and
//! exclusive end, hash lookups, `(timestamp, hash)` order, exclusive cursors in both directions,
//! page limits and `has_more`. SQLite always; PostgreSQL on a fresh database from
//! `paystreams_testkit::postgres` (ignored by name where the machine has no PostgreSQL).

use paystreams_store::{
    Archive,
    archive::{ArchiveError, ArchivePage, ArchiveQuery, PostgresArchive, SqliteArchive, StoredMessage},
    wire::WakuMessage,
};
use paystreams_testkit::postgres::TestDatabase;
use proptest::prelude::*;

const PUBSUBS: [&str; 2] = ["/p/0", "/p/1"];
const TOPICS: [&str; 3] = ["/a", "/b", "/c"];

fn message(pubsub: usize, topic: usize, timestamp: i64, salt: u8) -> StoredMessage {
    let m = WakuMessage {
        payload: vec![salt, u8::try_from(topic).unwrap_or(0)],
        content_topic: TOPICS[topic].into(),
        timestamp: Some(timestamp),
        ..WakuMessage::default()
    };
    StoredMessage::new(PUBSUBS[pubsub].into(), m).expect("valid")
}

/// The model: filter, sort, cursor, page.
fn model(all: &[StoredMessage], q: &ArchiveQuery) -> Result<ArchivePage, ()> {
    let mut matching: Vec<&StoredMessage> = all
        .iter()
        .filter(|m| q.pubsub_topic.as_ref().is_none_or(|p| *p == m.pubsub_topic))
        .filter(|m| q.content_topics.is_empty() || q.content_topics.contains(&m.message.content_topic))
        .filter(|m| q.time_start.is_none_or(|s| m.timestamp >= s))
        .filter(|m| q.time_end.is_none_or(|e| m.timestamp < e))
        .filter(|m| q.message_hashes.is_empty() || q.message_hashes.contains(&m.hash))
        .collect();
    matching.sort_by_key(|m| (m.timestamp, m.hash));
    if let Some(cursor) = q.cursor {
        let at = all.iter().find(|m| m.hash == cursor).ok_or(())?;
        let key = (at.timestamp, at.hash);
        matching.retain(|m| if q.forward { (m.timestamp, m.hash) > key } else { (m.timestamp, m.hash) < key });
    }
    if !q.forward {
        matching.reverse();
    }
    let limit = q.limit.max(1) as usize;
    let has_more = matching.len() > limit;
    let mut page: Vec<StoredMessage> = matching.into_iter().take(limit).cloned().collect();
    if !q.forward {
        page.reverse();
    }
    Ok(ArchivePage { messages: page, has_more })
}

fn check(archive: &dyn Archive, all: &[StoredMessage], q: &ArchiveQuery) {
    match (archive.query(q), model(all, q)) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "query {q:?}"),
        (Err(ArchiveError::CursorNotFound), Err(())) => {}
        (got, want) => panic!("query {q:?}: archive {got:?}, model {want:?}"),
    }
}

fn arb_messages() -> impl Strategy<Value = Vec<StoredMessage>> {
    // Few distinct timestamps, so ties are ordered by hash.
    proptest::collection::vec((0..2usize, 0..3usize, 0..8i64, any::<u8>()), 0..40).prop_map(|v| {
        // The archive keys messages by hash: a repeated message is stored once.
        let mut out: Vec<StoredMessage> = Vec::new();
        for (p, t, ts, salt) in v {
            let m = message(p, t, ts * 10, salt);
            if !out.iter().any(|o| o.hash == m.hash) {
                out.push(m);
            }
        }
        out
    })
}

fn arb_query(all_hashes: Vec<[u8; 32]>) -> impl Strategy<Value = ArchiveQuery> {
    let hashes = all_hashes.clone();
    (
        any::<bool>(),
        proptest::option::of(0..2usize),
        proptest::collection::vec(0..3usize, 0..3),
        proptest::option::of(0..90i64),
        proptest::option::of(0..90i64),
        proptest::option::of(proptest::sample::select(if hashes.is_empty() {
            vec![[0u8; 32]]
        } else {
            hashes.clone()
        })),
        any::<bool>(),
        1..6u32,
        proptest::collection::vec(
            proptest::sample::select(if all_hashes.is_empty() { vec![[9u8; 32]] } else { all_hashes }),
            0..3,
        ),
    )
        .prop_map(|(lookup, pubsub, topics, start, end, cursor, forward, limit, lookup_hashes)| {
            if lookup {
                ArchiveQuery { message_hashes: lookup_hashes, cursor, forward, limit, ..ArchiveQuery::default() }
            } else {
                let content_topics: Vec<String> = topics.iter().map(|t| TOPICS[*t].to_owned()).collect();
                ArchiveQuery {
                    pubsub_topic: pubsub.map(|p| PUBSUBS[p].to_owned()),
                    content_topics,
                    time_start: start,
                    time_end: end,
                    cursor,
                    forward,
                    limit,
                    ..ArchiveQuery::default()
                }
            }
        })
}

fn with_queries() -> impl Strategy<Value = (Vec<StoredMessage>, Vec<ArchiveQuery>)> {
    arb_messages().prop_flat_map(|all| {
        let hashes: Vec<[u8; 32]> = all.iter().map(|m| m.hash).collect();
        (Just(all), proptest::collection::vec(arb_query(hashes), 1..12))
    })
}

/// Every page of a query in `forward` direction, following cursors; all matches exactly once.
fn walk(archive: &dyn Archive, base: &ArchiveQuery) -> Vec<StoredMessage> {
    let mut out: Vec<StoredMessage> = Vec::new();
    let mut q = base.clone();
    loop {
        let page = archive.query(&q).expect("page");
        let edge = if q.forward { page.messages.last() } else { page.messages.first() }.map(|m| m.hash);
        if q.forward {
            out.extend(page.messages);
        } else {
            let mut newer = page.messages;
            newer.extend(out);
            out = newer;
        }
        if !page.has_more {
            return out;
        }
        q.cursor = edge;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn sqlite_answers_like_the_model((all, queries) in with_queries()) {
        let archive = SqliteArchive::in_memory().expect("archive");
        archive.insert(&all).expect("insert");
        for q in &queries {
            check(&archive, &all, q);
        }
    }
}

#[test]
fn pagination_walks_every_match_once_in_both_directions() {
    let archive = SqliteArchive::in_memory().expect("archive");
    let all: Vec<StoredMessage> = (0..57)
        .map(|i| message(i % 2, i % 3, i64::try_from(i / 4).expect("small"), u8::try_from(i).expect("small")))
        .collect();
    assert_eq!(archive.insert(&all).expect("insert"), 57);
    assert_eq!(archive.insert(&all).expect("insert again"), 0, "re-import is idempotent");
    assert_eq!(archive.count().expect("count"), 57);
    let mut sorted = all.clone();
    sorted.sort_by_key(|m| (m.timestamp, m.hash));
    for forward in [true, false] {
        let q = ArchiveQuery { forward, limit: 7, ..ArchiveQuery::default() };
        assert_eq!(walk(&archive, &q), sorted, "forward = {forward}");
    }
    let unknown = ArchiveQuery { cursor: Some([0xee; 32]), limit: 5, forward: true, ..ArchiveQuery::default() };
    assert!(matches!(archive.query(&unknown), Err(ArchiveError::CursorNotFound)));
}

#[test]
fn sqlite_archive_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("archive.sqlite");
    let all: Vec<StoredMessage> = (0..5).map(|i| message(0, 0, i, 1)).collect();
    SqliteArchive::open(&path).expect("open").insert(&all).expect("insert");
    let reopened = SqliteArchive::open(&path).expect("reopen");
    assert_eq!(reopened.count().expect("count"), 5);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

#[test]
#[cfg_attr(not(has_postgres), ignore = "needs PostgreSQL: apt-get install postgresql")]
fn postgres_answers_like_sqlite_and_the_model() {
    let db = TestDatabase::create().expect("a test database");
    let pg = PostgresArchive::connect(db.url()).expect("connect");
    // A second process starting at the same time creates the schema safely too.
    let pg2 = PostgresArchive::connect(db.url()).expect("connect again");
    let sqlite = SqliteArchive::in_memory().expect("sqlite");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    let stored: std::cell::RefCell<Vec<StoredMessage>> = std::cell::RefCell::new(Vec::new());
    runner
        .run(&with_queries(), |(all, queries)| {
            // Accumulate into one database: inserting the same message twice is a no-op.
            pg.insert(&all).expect("insert");
            sqlite.insert(&all).expect("insert");
            let mut known = stored.borrow_mut();
            for m in all {
                if !known.iter().any(|s| s.hash == m.hash) {
                    known.push(m);
                }
            }
            for q in &queries {
                check(&pg, &known, q);
                check(&sqlite, &known, q);
            }
            Ok(())
        })
        .expect("postgres matches the model");
    assert_eq!(pg2.count().expect("count"), u64::try_from(stored.borrow().len()).expect("fits"));
    let q = ArchiveQuery { forward: false, limit: 3, ..ArchiveQuery::default() };
    assert_eq!(walk(&pg2, &q), walk(&sqlite, &q));
    drop((pg, pg2));
}
