//! rookery-store contract suite: `RosterStore` cases (items, XEP-0237 versioning, pending
//! inbound subscriptions).

use super::make_account;
use crate::{RosterChange, RosterItem, Stores, Subscription};

const U: &str = "romeo";
const D: &str = "montague.lit";

fn item(jid: &str) -> RosterItem {
    RosterItem {
        jid: jid.into(),
        ..Default::default()
    }
}

pub async fn roster_item_round_trip(s: &Stores) {
    make_account(s, U, D).await;
    let full = RosterItem {
        jid: "juliet@capulet.lit".into(),
        name: Some("Juliet ❤".into()),
        subscription: Subscription::From,
        ask_out: true,
        approved: true,
        // Unsorted with a duplicate: the store keeps a sorted set.
        groups: vec!["Lovers".into(), "Capulets".into(), "Lovers".into()],
    };
    s.roster.put(U, D, &full).await.unwrap();
    let expected = RosterItem {
        groups: vec!["Capulets".into(), "Lovers".into()],
        ..full.clone()
    };
    assert_eq!(
        s.roster.get(U, D, "juliet@capulet.lit").await.unwrap(),
        Some(expected)
    );

    // Every subscription state survives, and replacing drops the old name and groups.
    for sub in [Subscription::None, Subscription::To, Subscription::Both] {
        let plain = RosterItem {
            subscription: sub,
            ..item("juliet@capulet.lit")
        };
        s.roster.put(U, D, &plain).await.unwrap();
        assert_eq!(
            s.roster.get(U, D, "juliet@capulet.lit").await.unwrap(),
            Some(plain)
        );
    }
    assert_eq!(s.roster.get(U, D, "nurse@capulet.lit").await.unwrap(), None);

    s.roster
        .put(U, D, &item("benvolio@montague.lit"))
        .await
        .unwrap();
    let (_, all) = s.roster.get_all(U, D).await.unwrap();
    let jids: Vec<_> = all.iter().map(|i| i.jid.as_str()).collect();
    assert_eq!(jids, ["benvolio@montague.lit", "juliet@capulet.lit"]);

    for sub in [
        Subscription::None,
        Subscription::To,
        Subscription::From,
        Subscription::Both,
    ] {
        assert_eq!(sub.as_str().parse::<Subscription>(), Ok(sub));
    }
    assert!("remove".parse::<Subscription>().is_err());
}

pub async fn roster_versioning(s: &Stores) {
    make_account(s, U, D).await;
    assert_eq!(s.roster.get_all(U, D).await.unwrap(), (0, Vec::new()));
    assert_eq!(
        s.roster.changes_since(U, D, 0).await.unwrap(),
        Some((0, Vec::new()))
    );

    let v1 = s.roster.put(U, D, &item("a@x")).await.unwrap();
    let v2 = s.roster.put(U, D, &item("b@x")).await.unwrap();
    let v3 = s.roster.put(U, D, &item("c@x")).await.unwrap();
    assert!(
        0 < v1 && v1 < v2 && v2 < v3,
        "versions must increase: {v1} {v2} {v3}"
    );
    assert_eq!(s.roster.get_all(U, D).await.unwrap().0, v3);

    // Change a, remove b: the delta from v2 is c (v3), a (v4), b removed (v5), in order.
    let a2 = RosterItem {
        name: Some("A".into()),
        ..item("a@x")
    };
    let v4 = s.roster.put(U, D, &a2).await.unwrap();
    let v5 = s
        .roster
        .remove(U, D, "b@x")
        .await
        .unwrap()
        .expect("b was in the roster");
    assert!(v3 < v4 && v4 < v5);
    let (current, changes) = s.roster.changes_since(U, D, v2).await.unwrap().unwrap();
    assert_eq!(current, v5);
    assert_eq!(
        changes,
        vec![
            RosterChange::Updated {
                version: v3,
                item: item("c@x")
            },
            RosterChange::Updated {
                version: v4,
                item: a2.clone()
            },
            RosterChange::Removed {
                version: v5,
                jid: "b@x".into()
            },
        ]
    );

    // Only strictly newer changes; up to date means an empty delta at the current version.
    let (_, since4) = s.roster.changes_since(U, D, v4).await.unwrap().unwrap();
    assert_eq!(
        since4,
        vec![RosterChange::Removed {
            version: v5,
            jid: "b@x".into()
        }]
    );
    assert_eq!(
        s.roster.changes_since(U, D, v5).await.unwrap(),
        Some((v5, Vec::new()))
    );

    // A version we never handed out cannot be answered.
    assert_eq!(s.roster.changes_since(U, D, v5 + 1).await.unwrap(), None);
    assert_eq!(s.roster.changes_since(U, D, u64::MAX).await.unwrap(), None);

    // Removing something absent changes nothing, including the version.
    assert_eq!(s.roster.remove(U, D, "b@x").await.unwrap(), None);
    assert_eq!(s.roster.remove(U, D, "nobody@x").await.unwrap(), None);
    assert_eq!(s.roster.get_all(U, D).await.unwrap().0, v5);

    // Re-adding a removed contact turns its removal into an update.
    let v6 = s.roster.put(U, D, &item("b@x")).await.unwrap();
    let (_, since2) = s.roster.changes_since(U, D, v2).await.unwrap().unwrap();
    let summary: Vec<_> = since2
        .iter()
        .map(|c| (c.version(), c.jid().to_owned()))
        .collect();
    assert_eq!(
        summary,
        vec![(v3, "c@x".into()), (v4, "a@x".into()), (v6, "b@x".into())]
    );
    assert!(matches!(since2[2], RosterChange::Updated { .. }));

    // The full history from 0 replays into the current roster.
    let (_, since0) = s.roster.changes_since(U, D, 0).await.unwrap().unwrap();
    assert_eq!(since0.len(), 3);
    let (_, all) = s.roster.get_all(U, D).await.unwrap();
    assert_eq!(all.len(), 3);
}

pub async fn roster_versions_are_per_account(s: &Stores) {
    make_account(s, U, D).await;
    make_account(s, "mercutio", D).await;
    s.roster.put(U, D, &item("a@x")).await.unwrap();
    s.roster.put(U, D, &item("b@x")).await.unwrap();
    let v = s.roster.put("mercutio", D, &item("a@x")).await.unwrap();
    assert_eq!(v, 1, "a fresh roster's first change is version 1");
    let (_, other) = s
        .roster
        .changes_since("mercutio", D, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(s.roster.get_all(U, D).await.unwrap().1.len(), 2);
    s.roster.remove("mercutio", D, "a@x").await.unwrap();
    assert!(s.roster.get(U, D, "a@x").await.unwrap().is_some());
}

pub async fn roster_pending_in(s: &Stores) {
    make_account(s, U, D).await;
    let stanza = |n: u32| {
        format!(
            "<presence from='x' type='subscribe' id='{n}'><status>hi &amp; ✓</status></presence>"
        )
    };
    assert!(s.roster.pending_in(U, D).await.unwrap().is_empty());
    s.roster
        .put_pending_in(U, D, "z@x", &stanza(1))
        .await
        .unwrap();
    s.roster
        .put_pending_in(U, D, "a@x", &stanza(2))
        .await
        .unwrap();
    // A repeated request replaces the stanza but keeps its place in arrival order.
    s.roster
        .put_pending_in(U, D, "z@x", &stanza(3))
        .await
        .unwrap();
    assert_eq!(
        s.roster.pending_in(U, D).await.unwrap(),
        vec![
            ("z@x".to_string(), stanza(3)),
            ("a@x".to_string(), stanza(2))
        ]
    );
    assert!(s.roster.has_pending_in(U, D, "a@x").await.unwrap());
    assert!(!s.roster.has_pending_in(U, D, "b@x").await.unwrap());

    // Pending requests are not roster items and do not touch the roster version.
    assert_eq!(s.roster.get_all(U, D).await.unwrap(), (0, Vec::new()));

    assert!(s.roster.remove_pending_in(U, D, "z@x").await.unwrap());
    assert!(!s.roster.remove_pending_in(U, D, "z@x").await.unwrap());
    assert!(!s.roster.has_pending_in(U, D, "z@x").await.unwrap());
    assert_eq!(s.roster.pending_in(U, D).await.unwrap().len(), 1);
}
