//! rookery-store contract suite: `BlockStore` cases (XEP-0191 blocklists).

use super::make_account;
use crate::Stores;

const U: &str = "juliet";
const D: &str = "capulet.lit";

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
