//! rookery-store contract suite: `OfflineStore`, `KvStore` and `BlockStore` cases.

use super::make_account;
use crate::{StoreError, Stores};

const U: &str = "juliet";
const D: &str = "capulet.lit";

pub async fn offline_order_limit_take_all(s: &Stores) {
    make_account(s, U, D).await;
    make_account(s, "nurse", D).await;
    assert!(s.offline.take_all(U, D).await.unwrap().is_empty());

    // Stamps deliberately out of order: arrival order wins, not timestamp order.
    let msgs = [
        ("<message id='1'/>", 300),
        ("<message id='2'/>", 100),
        ("<message id='3'/>", 200),
    ];
    for (xml, stamp) in msgs {
        s.offline.push(U, D, xml, stamp, 3).await.unwrap();
    }
    s.offline
        .push("nurse", D, "<message id='n'/>", 5, 3)
        .await
        .unwrap();
    assert_eq!(s.offline.count(U, D).await.unwrap(), 3);
    assert_eq!(
        s.offline.push(U, D, "<message id='4'/>", 400, 3).await,
        Err(StoreError::Limit)
    );
    assert_eq!(
        s.offline.count(U, D).await.unwrap(),
        3,
        "a refused push stores nothing"
    );
    // The limit is per account, checked against the caller's current limit.
    s.offline
        .push(U, D, "<message id='4'/>", 400, 10)
        .await
        .unwrap();
    assert_eq!(
        s.offline.push("nurse", D, "<m/>", 6, 0).await,
        Err(StoreError::Limit)
    );

    let taken = s.offline.take_all(U, D).await.unwrap();
    let expected: Vec<(String, i64)> = msgs
        .iter()
        .chain(&[("<message id='4'/>", 400)])
        .map(|(xml, stamp)| (xml.to_string(), *stamp))
        .collect();
    assert_eq!(taken, expected);
    assert_eq!(s.offline.count(U, D).await.unwrap(), 0);
    assert!(s.offline.take_all(U, D).await.unwrap().is_empty());
    assert_eq!(s.offline.count("nurse", D).await.unwrap(), 1);

    // Order still holds for messages stored after a take.
    s.offline
        .push(U, D, "<message id='5'/>", 1, 3)
        .await
        .unwrap();
    s.offline
        .push(U, D, "<message id='6'/>", 1, 3)
        .await
        .unwrap();
    let again = s.offline.take_all(U, D).await.unwrap();
    assert_eq!(again[0].0, "<message id='5'/>");
    assert_eq!(again[1].0, "<message id='6'/>");
}

pub async fn kv_round_trip(s: &Stores) {
    make_account(s, U, D).await;
    make_account(s, "nurse", D).await;
    let ns_key = "{storage:bookmarks}storage";
    assert_eq!(s.kv.get(U, D, "private", ns_key).await.unwrap(), None);
    s.kv.put(
        U,
        D,
        "private",
        ns_key,
        "<storage xmlns='storage:bookmarks'/>",
    )
    .await
    .unwrap();
    s.kv.put(U, D, "vcard", "", "<vCard xmlns='vcard-temp'>ü</vCard>")
        .await
        .unwrap();
    // Same key in another store and another account are separate entries.
    s.kv.put(U, D, "other", ns_key, "x").await.unwrap();
    s.kv.put("nurse", D, "private", ns_key, "nurse's")
        .await
        .unwrap();

    assert_eq!(
        s.kv.get(U, D, "private", ns_key).await.unwrap().as_deref(),
        Some("<storage xmlns='storage:bookmarks'/>")
    );
    assert_eq!(
        s.kv.get(U, D, "vcard", "").await.unwrap().as_deref(),
        Some("<vCard xmlns='vcard-temp'>ü</vCard>")
    );
    s.kv.put(U, D, "private", ns_key, "replaced").await.unwrap();
    assert_eq!(
        s.kv.get(U, D, "private", ns_key).await.unwrap().as_deref(),
        Some("replaced")
    );
    assert_eq!(
        s.kv.get(U, D, "other", ns_key).await.unwrap().as_deref(),
        Some("x")
    );

    s.kv.delete(U, D, "private", ns_key).await.unwrap();
    assert_eq!(s.kv.get(U, D, "private", ns_key).await.unwrap(), None);
    s.kv.delete(U, D, "private", ns_key).await.unwrap(); // deleting again is fine
    assert_eq!(
        s.kv.get("nurse", D, "private", ns_key)
            .await
            .unwrap()
            .as_deref(),
        Some("nurse's")
    );
    // Empty values are values, not absence.
    s.kv.put(U, D, "last", "logout", "").await.unwrap();
    assert_eq!(
        s.kv.get(U, D, "last", "logout").await.unwrap().as_deref(),
        Some("")
    );
}

pub async fn blocklist(s: &Stores) {
    make_account(s, U, D).await;
    make_account(s, "nurse", D).await;
    let jids = |v: &[&str]| -> Vec<String> { v.iter().map(|j| j.to_string()).collect() };
    assert!(s.blocking.list(U, D).await.unwrap().is_empty());

    s.blocking
        .add(U, D, &jids(&["tybalt@capulet.lit", "montague.lit"]))
        .await
        .unwrap();
    s.blocking
        .add(
            U,
            D,
            &jids(&["romeo@montague.lit/balcony", "tybalt@capulet.lit"]),
        )
        .await
        .unwrap();
    s.blocking.add(U, D, &[]).await.unwrap();
    assert_eq!(
        s.blocking.list(U, D).await.unwrap(),
        jids(&[
            "montague.lit",
            "romeo@montague.lit/balcony",
            "tybalt@capulet.lit"
        ])
    );
    assert!(
        s.blocking
            .is_blocked(U, D, "tybalt@capulet.lit")
            .await
            .unwrap()
    );
    assert!(s.blocking.is_blocked(U, D, "montague.lit").await.unwrap());
    // Exact match only: no bare/full/domain matching inside the store.
    assert!(
        !s.blocking
            .is_blocked(U, D, "romeo@montague.lit")
            .await
            .unwrap()
    );
    assert!(
        !s.blocking
            .is_blocked(U, D, "tybalt@capulet.lit/x")
            .await
            .unwrap()
    );
    assert!(
        !s.blocking
            .is_blocked("nurse", D, "tybalt@capulet.lit")
            .await
            .unwrap()
    );

    s.blocking
        .remove(U, D, &jids(&["montague.lit", "never@blocked.lit"]))
        .await
        .unwrap();
    assert_eq!(
        s.blocking.list(U, D).await.unwrap(),
        jids(&["romeo@montague.lit/balcony", "tybalt@capulet.lit"])
    );
    s.blocking.add("nurse", D, &jids(&["x@y"])).await.unwrap();
    s.blocking.clear(U, D).await.unwrap();
    assert!(s.blocking.list(U, D).await.unwrap().is_empty());
    assert!(
        !s.blocking
            .is_blocked(U, D, "tybalt@capulet.lit")
            .await
            .unwrap()
    );
    assert_eq!(s.blocking.list("nurse", D).await.unwrap(), jids(&["x@y"]));
}
