//! rookery-store contract suite: `KvStore` cases (small per-account documents).

use super::make_account;
use crate::Stores;

const U: &str = "juliet";
const D: &str = "capulet.lit";

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
