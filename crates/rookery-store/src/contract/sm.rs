//! rookery-store contract suite: `SmStore` cases (XEP-0198 sessions made durable).

use crate::{DeadLetter, OutboxRow, SmOp, SmSession, Stores};

const U: &str = "juliet";
pub(super) const D: &str = "capulet.lit";
pub(super) const NODE: &str = "node-1";

/// A session record of `U`@`D` on `NODE` with every field at a plain value.
pub(super) fn session(id: &str) -> SmSession {
    SmSession {
        id: id.to_owned(),
        user: U.to_owned(),
        domain: D.to_owned(),
        resource: "balcony".to_owned(),
        node: NODE.to_owned(),
        handled: 0,
        acked: 0,
        parked_until: None,
        presence: None,
        priority: 0,
        interested: false,
        directed: Vec::new(),
        seen: Vec::new(),
    }
}

/// A row as appended: written once, its xml naming its seq.
pub(super) fn row(seq: u64, origin: Option<&str>) -> OutboxRow {
    OutboxRow {
        seq,
        stanza_id: format!("id{seq}"),
        xml: format!("<message id='id{seq}'/>"),
        attempts: 1,
        origin: origin.map(str::to_owned),
    }
}

pub(super) fn put(s: &SmSession) -> SmOp {
    SmOp::Put(s.clone())
}

/// A `State` op setting `s`'s presence fields on its session.
pub(super) fn state(s: &SmSession) -> SmOp {
    SmOp::State {
        session: s.id.clone(),
        presence: s.presence.clone(),
        priority: s.priority,
        interested: s.interested,
        directed: s.directed.clone(),
    }
}

pub(super) fn append(session: &str, row: OutboxRow) -> SmOp {
    SmOp::Append {
        session: session.to_owned(),
        row,
    }
}

pub(super) fn ack(session: &str, upto: u64) -> SmOp {
    SmOp::Ack {
        session: session.to_owned(),
        upto,
    }
}

pub(super) fn attempt(session: &str, max_attempts: u32, now_ms: i64) -> SmOp {
    SmOp::Attempt {
        session: session.to_owned(),
        max_attempts,
        now_ms,
    }
}

pub(super) fn end(session: &str) -> SmOp {
    SmOp::End {
        session: session.to_owned(),
    }
}

pub(super) async fn apply(s: &Stores, ops: &[SmOp]) {
    s.sm.apply(ops)
        .await
        .unwrap_or_else(|e| panic!("applying {ops:?}: {e}"));
}

/// `NODE`'s session `id` with its rows, `None` if it has no record.
async fn loaded(s: &Stores, id: &str) -> Option<(SmSession, Vec<OutboxRow>)> {
    s.sm.load(NODE)
        .await
        .unwrap()
        .into_iter()
        .find(|(record, _)| record.id == id)
}

/// The seqs of `NODE`'s session `id`'s live rows (empty without a record).
async fn seqs(s: &Stores, id: &str) -> Vec<u64> {
    loaded(s, id)
        .await
        .map(|(_, rows)| rows.iter().map(|r| r.seq).collect())
        .unwrap_or_default()
}

/// The `seen` of `NODE`'s session `id`, sorted (the store gives it in any order).
async fn seen(s: &Stores, id: &str) -> Vec<String> {
    let mut seen = loaded(s, id)
        .await
        .map(|(record, _)| record.seen)
        .unwrap_or_default();
    seen.sort();
    seen
}

pub(super) fn handled(session: &str, handled: u32) -> SmOp {
    SmOp::Handled {
        session: session.to_owned(),
        handled,
    }
}

pub async fn sm_session_round_trip(s: &Stores) {
    assert!(s.sm.load(NODE).await.unwrap().is_empty());
    // Every field away from its default, with extremes and text that needs care.
    let full = SmSession {
        id: "sess-\u{e9}\u{1f600}".to_owned(),
        user: U.to_owned(),
        domain: D.to_owned(),
        resource: "balc\u{f3}ny 2".to_owned(),
        node: NODE.to_owned(),
        handled: u32::MAX,
        acked: i64::MAX as u64,
        parked_until: Some(-1),
        presence: Some(
            "<presence><show>away</show><status>\u{2603} 'q' \"d\" &amp;</status></presence>"
                .to_owned(),
        ),
        priority: -128,
        interested: true,
        // Order sent, not sorted; a bare JID, a full JID and one with non-ASCII text.
        directed: vec![
            "romeo@montague.lit/garden".to_owned(),
            "nurse@capulet.lit".to_owned(),
            "benvolio@montague.lit/\u{e9}t\u{e9}".to_owned(),
        ],
        seen: Vec::new(),
    };
    apply(s, &[put(&full)]).await;
    assert_eq!(s.sm.load(NODE).await.unwrap(), vec![(full.clone(), vec![])]);

    // A row with every field set, one with none of the optional ones.
    let rich = OutboxRow {
        seq: i64::MAX as u64,
        stanza_id: "st\u{e1}ble-1".to_owned(),
        xml: "<message xml:lang='en'><body>\u{1f339} &lt;3</body></message>".to_owned(),
        attempts: u32::MAX,
        origin: Some("other-session#4294967296".to_owned()),
    };
    let plain = OutboxRow {
        seq: 1,
        stanza_id: String::new(),
        xml: "<iq/>".to_owned(),
        attempts: 0,
        origin: None,
    };
    apply(
        s,
        &[
            append(&full.id, rich.clone()),
            append(&full.id, plain.clone()),
        ],
    )
    .await;

    // Put replaces every field of the record and leaves the rows alone.
    let bare = SmSession {
        handled: 0,
        acked: 0,
        parked_until: None,
        presence: None,
        priority: 127,
        interested: false,
        directed: Vec::new(),
        resource: "tomb".to_owned(),
        ..full.clone()
    };
    apply(s, &[put(&bare)]).await;
    assert_eq!(
        s.sm.load(NODE).await.unwrap(),
        vec![(bare.clone(), vec![plain.clone(), rich.clone()])]
    );
    let moved = SmSession {
        node: "node-2".to_owned(),
        parked_until: Some(i64::MAX),
        directed: vec!["a@b".to_owned()],
        ..bare.clone()
    };
    apply(s, &[put(&moved)]).await;
    assert!(s.sm.load(NODE).await.unwrap().is_empty());
    assert_eq!(
        s.sm.load("node-2").await.unwrap(),
        vec![(moved.clone(), vec![plain.clone(), rich.clone()])]
    );

    // State sets the presence fields and nothing else, rows included.
    let stated = SmSession {
        presence: Some("<presence><priority>-3</priority></presence>".to_owned()),
        priority: -3,
        interested: true,
        directed: vec!["z@x".to_owned(), "a@x".to_owned()],
        ..moved.clone()
    };
    apply(s, &[state(&stated)]).await;
    assert_eq!(
        s.sm.load("node-2").await.unwrap(),
        vec![(stated.clone(), vec![plain.clone(), rich.clone()])]
    );
    apply(s, &[state(&moved)]).await;
    assert_eq!(
        s.sm.load("node-2").await.unwrap(),
        vec![(moved, vec![plain, rich])]
    );
    // An empty batch is fine and changes nothing.
    apply(s, &[]).await;
    assert_eq!(s.sm.load("node-2").await.unwrap().len(), 1);
}

pub async fn sm_ops_apply_in_order(s: &Stores) {
    let a = session("a");
    let b = session("b");
    // The record is there for the appends after it and not for the one before it; acks and
    // appends of one session act in the order given, whatever other sessions do in between.
    apply(
        s,
        &[
            append("a", row(1, None)),
            put(&a),
            append("a", row(2, None)),
            put(&b),
            append("b", row(1, None)),
            append("a", row(3, None)),
            ack("a", 2),
            append("b", row(2, None)),
            append("a", row(2, None)),
            ack("b", 1),
            append("a", row(4, None)),
            SmOp::Handled {
                session: "a".to_owned(),
                handled: 7,
            },
            state(&SmSession {
                priority: 1,
                ..a.clone()
            }),
            put(&SmSession {
                priority: 2,
                ..b.clone()
            }),
            state(&SmSession {
                priority: 3,
                ..b.clone()
            }),
            ack("a", 3),
            append("a", row(3, None)),
            SmOp::Park {
                session: "b".to_owned(),
                until_ms: 99,
            },
            SmOp::Attach {
                session: "b".to_owned(),
            },
            SmOp::Attach {
                session: "a".to_owned(),
            },
            SmOp::Park {
                session: "a".to_owned(),
                until_ms: 1234,
            },
        ],
    )
    .await;
    let (record, rows) = loaded(s, "a").await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(
        (
            record.acked,
            record.handled,
            record.parked_until,
            record.priority
        ),
        (3, 7, Some(1234), 1)
    );
    let (record, rows) = loaded(s, "b").await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
    // The Put replaced the acked mark, the State after it set the priority.
    assert_eq!(
        (record.acked, record.parked_until, record.priority),
        (0, None, 3)
    );

    // End then Put: a fresh record without the old rows; Put then End: nothing.
    apply(
        s,
        &[
            end("a"),
            append("a", row(9, None)),
            put(&a),
            append("a", row(10, None)),
            put(&session("c")),
            append("c", row(1, None)),
            end("c"),
            append("c", row(2, None)),
        ],
    )
    .await;
    assert_eq!(seqs(s, "a").await, [10]);
    assert_eq!(loaded(s, "a").await.unwrap().0, a);
    assert!(loaded(s, "c").await.is_none());

    // Attempts count the rows there at that point of the batch.
    apply(
        s,
        &[
            append("a", row(11, None)),
            attempt("a", 5, 1),
            append("a", row(12, None)),
            attempt("a", 5, 2),
        ],
    )
    .await;
    let attempts: Vec<(u64, u32)> = loaded(s, "a")
        .await
        .unwrap()
        .1
        .iter()
        .map(|r| (r.seq, r.attempts))
        .collect();
    assert_eq!(attempts, [(10, 3), (11, 3), (12, 2)]);
}

pub async fn sm_ack_deletes_and_never_lowers_acked(s: &Stores) {
    apply(s, &[put(&session("a")), put(&session("b"))]).await;
    let rows: Vec<SmOp> = (1..=5)
        .flat_map(|n| [append("a", row(n, None)), append("b", row(n, None))])
        .collect();
    apply(s, &rows).await;

    apply(s, &[ack("a", 3)]).await;
    assert_eq!(seqs(s, "a").await, [4, 5]);
    assert_eq!(loaded(s, "a").await.unwrap().0.acked, 3);
    assert_eq!(
        seqs(s, "b").await,
        [1, 2, 3, 4, 5],
        "another session's rows"
    );
    assert_eq!(loaded(s, "b").await.unwrap().0.acked, 0);

    // A lower (or repeated) ack deletes nothing more and keeps the higher mark.
    apply(s, &[ack("a", 2)]).await;
    apply(s, &[ack("a", 3)]).await;
    assert_eq!(seqs(s, "a").await, [4, 5]);
    assert_eq!(loaded(s, "a").await.unwrap().0.acked, 3);

    // Within one batch too, in either order.
    apply(s, &[ack("a", 4), ack("a", 1)]).await;
    assert_eq!(seqs(s, "a").await, [5]);
    assert_eq!(loaded(s, "a").await.unwrap().0.acked, 4);
    apply(s, &[ack("b", 1), ack("b", 4), ack("b", 2)]).await;
    assert_eq!(seqs(s, "b").await, [5]);
    assert_eq!(loaded(s, "b").await.unwrap().0.acked, 4);

    // Beyond the last row: everything goes, the mark still rises.
    apply(s, &[ack("a", 10)]).await;
    assert!(seqs(s, "a").await.is_empty());
    assert_eq!(loaded(s, "a").await.unwrap().0.acked, 10);
    // An ack below a row leaves it.
    apply(s, &[append("a", row(11, None)), ack("a", 10)]).await;
    assert_eq!(seqs(s, "a").await, [11]);
}

pub async fn sm_duplicate_appends_are_ignored(s: &Stores) {
    apply(s, &[put(&session("a")), put(&session("b"))]).await;
    let other_xml = |mut r: OutboxRow| {
        r.xml = "<message id='resent'/>".to_owned();
        r
    };
    // A second row with a seq already there: the first stays, across batches and within one.
    apply(s, &[append("a", row(1, None))]).await;
    apply(
        s,
        &[
            append("a", other_xml(row(1, None))),
            append("a", row(2, None)),
            append("a", other_xml(row(2, None))),
        ],
    )
    .await;
    let rows = loaded(s, "a").await.unwrap().1;
    assert_eq!(rows, [row(1, None), row(2, None)]);

    // A second row with an origin already there, under another seq.
    apply(s, &[append("a", row(3, Some("x#1")))]).await;
    apply(
        s,
        &[
            append("a", row(4, Some("x#1"))),
            append("a", row(5, Some("x#2"))),
            append("a", row(6, Some("x#2"))),
            // Rows without an origin never clash with each other.
            append("a", row(7, None)),
            append("a", row(8, None)),
            // Origins are per session.
            append("b", row(1, Some("x#1"))),
        ],
    )
    .await;
    assert_eq!(seqs(s, "a").await, [1, 2, 3, 5, 7, 8]);
    assert_eq!(seqs(s, "b").await, [1]);
    let origins: Vec<Option<String>> = loaded(s, "a")
        .await
        .unwrap()
        .1
        .into_iter()
        .map(|r| r.origin)
        .collect();
    assert_eq!(
        origins,
        [
            None,
            None,
            Some("x#1".to_owned()),
            Some("x#2".to_owned()),
            None,
            None
        ]
    );
    // Acknowledged rows count too: their origins are remembered (`sm_seen_*` cases).
    apply(s, &[ack("a", 3), append("a", row(9, Some("x#1")))]).await;
    assert_eq!(seqs(s, "a").await, [5, 7, 8]);

    // An origin that does not parse is a duplicate of a live row's, within a batch and
    // across batches; not once that row is acknowledged (nothing remembers it).
    apply(
        s,
        &[
            append("a", row(10, Some("junk"))),
            append("a", row(11, Some("junk"))),
            append("a", row(12, Some("x#01"))),
        ],
    )
    .await;
    apply(
        s,
        &[
            append("a", row(13, Some("x#01"))),
            append("b", row(2, Some("junk"))),
        ],
    )
    .await;
    assert_eq!(seqs(s, "a").await, [5, 7, 8, 10, 12]);
    assert_eq!(seqs(s, "b").await, [1, 2]);
    apply(s, &[ack("a", 12), append("a", row(14, Some("junk")))]).await;
    assert_eq!(seqs(s, "a").await, [14]);
}

pub async fn sm_ops_on_a_missing_session_do_nothing(s: &Stores) {
    apply(s, &[put(&session("real")), append("real", row(1, None))]).await;
    apply(
        s,
        &[
            append("ghost", row(1, None)),
            append("ghost", row(2, Some("o#1"))),
            ack("ghost", 1),
            SmOp::Handled {
                session: "ghost".to_owned(),
                handled: 3,
            },
            attempt("ghost", 0, 5),
            SmOp::Park {
                session: "ghost".to_owned(),
                until_ms: 5,
            },
            SmOp::Attach {
                session: "ghost".to_owned(),
            },
            state(&SmSession {
                priority: 5,
                ..session("ghost")
            }),
            end("ghost"),
        ],
    )
    .await;
    let all = s.sm.load(NODE).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0], (session("real"), vec![row(1, None)]));
    assert!(s.sm.dead_letters(U, D).await.unwrap().is_empty());
    // Nothing was kept for it either: a record made now starts empty.
    apply(s, &[put(&session("ghost"))]).await;
    assert_eq!(
        loaded(s, "ghost").await.unwrap(),
        (session("ghost"), vec![])
    );
}

pub async fn sm_attempts_make_dead_letters(s: &Stores) {
    let mut a = session("a");
    a.resource = "orchard".to_owned();
    apply(s, &[put(&a), put(&session("b"))]).await;
    let twice = OutboxRow {
        attempts: 2,
        ..row(3, None)
    };
    apply(
        s,
        &[
            append("a", row(1, None)),
            append("a", row(2, Some("o#1"))),
            append("a", twice.clone()),
            append("b", row(1, None)),
        ],
    )
    .await;

    // At most 2 connections: the row written twice already is given up on, the others go
    // out a second time.
    apply(s, &[attempt("a", 2, 1_000)]).await;
    let rows = loaded(s, "a").await.unwrap().1;
    assert_eq!(
        rows.iter().map(|r| (r.seq, r.attempts)).collect::<Vec<_>>(),
        [(1, 2), (2, 2)]
    );
    let dead = DeadLetter {
        session: "a".to_owned(),
        resource: "orchard".to_owned(),
        seq: 3,
        stanza_id: twice.stanza_id.clone(),
        xml: twice.xml.clone(),
        attempts: 2,
        died_at: 1_000,
    };
    assert_eq!(s.sm.dead_letters(U, D).await.unwrap(), [dead]);
    assert_eq!(seqs(s, "b").await, [1], "another session's rows");

    // The next attempt gives up on the rest, in seq order; an ack of a dead row is nothing.
    apply(s, &[attempt("a", 2, 2_000), ack("a", 3)]).await;
    assert!(seqs(s, "a").await.is_empty());
    // Given up on earlier (by its stamp), though recorded later: listed first.
    apply(s, &[attempt("b", 0, 500)]).await;
    let letters = s.sm.dead_letters(U, D).await.unwrap();
    let summary: Vec<(&str, u64, u32, i64)> = letters
        .iter()
        .map(|l| (l.session.as_str(), l.seq, l.attempts, l.died_at))
        .collect();
    assert_eq!(
        summary,
        [
            ("b", 1, 1, 500),
            ("a", 3, 2, 1_000),
            ("a", 1, 2, 2_000),
            ("a", 2, 2, 2_000)
        ]
    );
    assert_eq!(letters[3].xml, row(2, None).xml);

    // Dead letters outlive their session and belong to its account only.
    apply(s, &[end("a"), end("b")]).await;
    assert_eq!(s.sm.dead_letters(U, D).await.unwrap(), letters);
    assert!(s.sm.dead_letters("romeo", D).await.unwrap().is_empty());
    assert!(
        s.sm.dead_letters(U, "montague.lit")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.sm.load(NODE).await.unwrap().is_empty());
}

pub async fn sm_end_deletes_record_and_rows(s: &Stores) {
    apply(s, &[put(&session("a")), put(&session("b"))]).await;
    apply(
        s,
        &[
            append("a", row(1, None)),
            append("a", row(2, Some("o#1"))),
            append("b", row(1, None)),
        ],
    )
    .await;
    apply(s, &[end("a")]).await;
    let all = s.sm.load(NODE).await.unwrap();
    assert_eq!(all, [(session("b"), vec![row(1, None)])]);
    // Ending again is nothing; a new record under the id has none of the old rows, and
    // their seqs and origins are free again.
    apply(s, &[end("a")]).await;
    apply(
        s,
        &[
            put(&session("a")),
            append("a", row(2, Some("o#1"))),
            append("a", row(3, None)),
        ],
    )
    .await;
    assert_eq!(
        loaded(s, "a").await.unwrap().1,
        [row(2, Some("o#1")), row(3, None)]
    );
    assert!(s.sm.dead_letters(U, D).await.unwrap().is_empty());
}

pub async fn sm_load_filters_by_node(s: &Stores) {
    let on = |id: &str, node: &str| SmSession {
        node: node.to_owned(),
        ..session(id)
    };
    // Byte order: "B" < "a" < "b" < "\u{e4}" (0xc3 0xa4).
    let ids = ["b", "\u{e4}", "B", "a"];
    let mut ops: Vec<SmOp> = ids.iter().map(|id| put(&on(id, "n1"))).collect();
    ops.push(put(&on("c", "n2")));
    ops.push(put(&on("A", "n1-")));
    // Appended out of seq order, loaded in it.
    for id in ids {
        ops.push(append(id, row(5, None)));
        ops.push(append(id, row(3, None)));
    }
    ops.push(append("c", row(1, None)));
    apply(s, &ops).await;

    let n1 = s.sm.load("n1").await.unwrap();
    let loaded_ids: Vec<&str> = n1.iter().map(|(r, _)| r.id.as_str()).collect();
    assert_eq!(loaded_ids, ["B", "a", "b", "\u{e4}"]);
    for (record, rows) in &n1 {
        assert_eq!(record, &on(&record.id, "n1"));
        assert_eq!(rows, &[row(3, None), row(5, None)]);
    }
    assert_eq!(
        s.sm.load("n2").await.unwrap(),
        [(on("c", "n2"), vec![row(1, None)])]
    );
    assert_eq!(s.sm.load("n1-").await.unwrap().len(), 1);
    assert!(s.sm.load("n").await.unwrap().is_empty());
    assert!(s.sm.load("").await.unwrap().is_empty());
}

pub async fn sm_apply_is_atomic(s: &Stores) {
    apply(
        s,
        &[
            put(&session("a")),
            append("a", row(1, None)),
            append("a", row(2, None)),
        ],
    )
    .await;
    let before = s.sm.load(NODE).await.unwrap();
    // RFC 6121 §4.7.2.3: a priority outside -128..=127 is refused by the store.
    let refused = SmSession {
        priority: 128,
        ..session("bad")
    };
    let changes = [
        append("a", row(3, None)),
        ack("a", 1),
        SmOp::Handled {
            session: "a".to_owned(),
            handled: 9,
        },
        put(&session("new")),
        append("new", row(1, None)),
        attempt("a", 0, 7),
    ];
    // The bad op first, in the middle and last; and a seq too large to store.
    let mut batches = Vec::new();
    for (at, bad) in [
        (0, put(&refused)),
        (3, put(&refused)),
        (changes.len(), put(&refused)),
        (
            4,
            state(&SmSession {
                id: "a".to_owned(),
                ..refused.clone()
            }),
        ),
    ] {
        let mut ops = changes.to_vec();
        ops.insert(at, bad);
        batches.push(ops);
    }
    let mut too_far = changes.to_vec();
    too_far.insert(2, append("a", row(u64::MAX, None)));
    batches.push(too_far);
    for ops in batches {
        assert!(s.sm.apply(&ops).await.is_err(), "{ops:?}");
        assert_eq!(s.sm.load(NODE).await.unwrap(), before, "after {ops:?}");
        assert!(s.sm.dead_letters(U, D).await.unwrap().is_empty());
    }
    // The store goes on working, and the same changes without the bad op go through.
    apply(s, &changes).await;
    assert_eq!(seqs(s, "new").await, [1]);
    assert!(seqs(s, "a").await.is_empty());
    assert_eq!(s.sm.dead_letters(U, D).await.unwrap().len(), 2);
}

pub async fn sm_remove_account(s: &Stores) {
    let of = |id: &str, user: &str, domain: &str, node: &str| SmSession {
        user: user.to_owned(),
        domain: domain.to_owned(),
        node: node.to_owned(),
        ..session(id)
    };
    let sessions = [
        of("j1", U, D, "n1"),
        of("j2", U, D, "n2"),
        of("r1", "romeo", D, "n1"),
        of("j3", U, "elsewhere.lit", "n1"),
    ];
    let mut ops: Vec<SmOp> = sessions.iter().map(put).collect();
    // Every session gets a dead letter (the row written twice) and two live rows. The dead
    // row came from another session: its origin stays in `seen`.
    let senders = ["r1#8", "r1#9", "j1#7", "r1#7"];
    for (s, sender) in sessions.iter().zip(senders) {
        ops.push(append(&s.id, row(1, None)));
        ops.push(append(&s.id, row(2, None)));
        let twice = OutboxRow {
            attempts: 2,
            ..row(3, Some(sender))
        };
        ops.push(append(&s.id, twice));
        ops.push(attempt(&s.id, 2, 1));
    }
    apply(s, &ops).await;
    assert_eq!(s.sm.dead_letters(U, D).await.unwrap().len(), 2);
    let seen_on = |node| async move {
        s.sm.load(node)
            .await
            .unwrap()
            .into_iter()
            .map(|(r, _)| (r.id, r.seen))
            .collect::<Vec<_>>()
    };
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        seen_on("n1").await,
        [
            ("j1".to_owned(), strings(&["r1#8"])),
            ("j3".to_owned(), strings(&["r1#7"])),
            ("r1".to_owned(), strings(&["j1#7"])),
        ]
    );

    assert_eq!(s.sm.remove_account(U, D).await.unwrap(), 2);
    // What the account's sessions sent is forgotten, what others sent stays.
    assert_eq!(
        seen_on("n1").await,
        [
            ("j3".to_owned(), strings(&["r1#7"])),
            ("r1".to_owned(), Vec::new()),
        ]
    );
    assert!(s.sm.dead_letters(U, D).await.unwrap().is_empty());
    let left = |node| async move {
        s.sm.load(node)
            .await
            .unwrap()
            .into_iter()
            .map(|(r, rows)| (r.id, rows.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        left("n1").await,
        [("j3".to_owned(), 2), ("r1".to_owned(), 2)]
    );
    assert!(left("n2").await.is_empty());
    assert_eq!(s.sm.dead_letters("romeo", D).await.unwrap().len(), 1);
    assert_eq!(
        s.sm.dead_letters(U, "elsewhere.lit").await.unwrap().len(),
        1
    );
    // Nothing left to remove; a new session of the account has no old rows.
    assert_eq!(s.sm.remove_account(U, D).await.unwrap(), 0);
    apply(s, &[put(&sessions[0])]).await;
    assert_eq!(
        s.sm.load("n1").await.unwrap()[0],
        (sessions[0].clone(), vec![])
    );
}

pub async fn sm_seen_outlives_acks(s: &Stores) {
    apply(
        s,
        &[put(&session("r")), put(&session("r2")), put(&session("s"))],
    )
    .await;
    apply(
        s,
        &[
            append("r", row(1, Some("s#1"))),
            append("r", row(2, Some("s#2"))),
            // Not plain decimal, or too large: kept on the row, not remembered.
            append("r", row(3, Some("s#05"))),
            append("r", row(4, Some("s#4294967296"))),
            // From a sender without a record.
            append("r", row(5, Some("t#1"))),
            append("r2", row(1, Some("s#1"))),
        ],
    )
    .await;
    // Live rows carry their origins; `seen` holds the others only.
    assert!(seen(s, "r").await.is_empty());
    apply(s, &[ack("r", 3)]).await;
    assert_eq!(seen(s, "r").await, ["s#1", "s#2"]);

    // Resent after the ack: ignored, in a later batch and in the batch of the ack.
    apply(
        s,
        &[
            append("r", row(6, Some("s#1"))),
            ack("r", 5),
            append("r", row(7, Some("t#1"))),
            append("r", row(8, Some("s#05"))),
            append("r", row(9, Some("s#4294967296"))),
        ],
    )
    .await;
    assert_eq!(seqs(s, "r").await, [8, 9]);
    assert_eq!(seen(s, "r").await, ["s#1", "s#2", "t#1"]);
    // Other recipients have their own; a Put leaves `seen` alone whatever it holds.
    assert!(seen(s, "r2").await.is_empty());
    apply(
        s,
        &[put(&SmSession {
            seen: vec!["z#1".to_owned()],
            ..session("r")
        })],
    )
    .await;
    assert_eq!(seen(s, "r").await, ["s#1", "s#2", "t#1"]);
    // A row given up on counts as delivered too.
    apply(
        s,
        &[
            append("r", row(10, Some("u#1"))),
            attempt("r", 0, 1),
            append("r", row(11, Some("u#1"))),
        ],
    )
    .await;
    assert!(seqs(s, "r").await.is_empty());
    assert_eq!(seen(s, "r").await, ["s#1", "s#2", "t#1", "u#1"]);

    // The sender's Handled forgets what it will never resend, for every recipient (the live
    // row at r2 still guards on its own); the origin is then accepted again.
    apply(s, &[handled("s", 1)]).await;
    assert_eq!(seen(s, "r").await, ["s#2", "t#1", "u#1"]);
    apply(s, &[ack("r2", 1), append("r2", row(2, Some("s#1")))]).await;
    assert!(seen(s, "r2").await.is_empty());
    assert_eq!(seqs(s, "r2").await, [2]);
    assert_eq!(loaded(s, "s").await.unwrap().0.handled, 1);
    // In one batch, an append before the Handled is still a duplicate, one after it not.
    apply(
        s,
        &[
            append("r", row(12, Some("s#2"))),
            handled("s", 2),
            append("r", row(13, Some("s#2"))),
        ],
    )
    .await;
    assert_eq!(seqs(s, "r").await, [13]);

    // The sender's End forgets what it sent, with or without a record.
    apply(s, &[ack("r", 13), end("t")]).await;
    assert_eq!(seen(s, "r").await, ["s#2", "u#1"]);
    apply(s, &[end("s")]).await;
    assert_eq!(seen(s, "r").await, ["u#1"]);
    apply(s, &[append("r", row(14, Some("s#2"))), ack("r", 14)]).await;
    assert_eq!(seen(s, "r").await, ["s#2", "u#1"]);

    // The recipient's End forgets what it received, what it sent to itself included.
    apply(
        s,
        &[append("r", row(15, Some("r#1"))), ack("r", 15), end("r")],
    )
    .await;
    apply(s, &[put(&session("r")), append("r", row(1, Some("u#1")))]).await;
    assert_eq!(
        loaded(s, "r").await.unwrap(),
        (session("r"), vec![row(1, Some("u#1"))])
    );
}

/// XEP-0198 counts wrap at 2^32: a `Handled` forgets the origins behind it in serial-number
/// order, never one sent after a wrap it has not caught up with.
pub async fn sm_seen_pruning_survives_the_wrap(s: &Stores) {
    const MAX: u32 = u32::MAX;
    apply(s, &[put(&session("r"))]).await;
    let origins = [MAX - 1, MAX, 0, 3, 10];
    let mut ops: Vec<SmOp> = origins
        .iter()
        .zip(1..)
        .map(|(n, seq)| append("r", row(seq, Some(&format!("w#{n}")))))
        .collect();
    ops.push(ack("r", 5));
    apply(s, &ops).await;
    let remembered = |ns: &[u32]| ns.iter().map(|n| format!("w#{n}")).collect::<Vec<_>>();
    let mut all = remembered(&origins);
    all.sort();
    assert_eq!(seen(s, "r").await, all);

    // A handled from before the wrap: the small origins sent after it stay.
    apply(s, &[handled("w", MAX - 1)]).await;
    let mut left = remembered(&[MAX, 0, 3, 10]);
    left.sort();
    assert_eq!(seen(s, "r").await, left);
    // Past the wrap: what came before it goes, what is ahead stays.
    apply(s, &[handled("w", 1)]).await;
    assert_eq!(seen(s, "r").await, remembered(&[10, 3]));
    apply(s, &[handled("w", 3)]).await;
    assert_eq!(seen(s, "r").await, remembered(&[10]));
    // 2^31 behind counts as ahead: kept (late, until a nearer Handled or an End); 2^31 - 1
    // behind goes.
    apply(s, &[handled("w", 10 + (1 << 31))]).await;
    assert_eq!(seen(s, "r").await, remembered(&[10]));
    apply(s, &[handled("w", 9 + (1 << 31))]).await;
    assert!(seen(s, "r").await.is_empty());
}
