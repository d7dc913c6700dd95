//! rookery-store contract suite: "sorted" means byte order of the UTF-8 strings (Rust's
//! `Ord` on `String`, the crate convention in `lib.rs`) in every listing, whatever
//! collation the backend's database would use by default.

use super::make_account;
use crate::{RosterItem, Stores};

/// Strings whose byte order differs from a dictionary (locale) order: upper case before
/// lower case, ASCII before accented letters, punctuation by code point.
const MIXED: [&str; 6] = ["b", "B", "a", "é", "Z", "_"];
const BYTE_ORDER: [&str; 6] = ["B", "Z", "_", "a", "b", "é"];

pub async fn sorting_is_byte_order(s: &Stores) {
    let d = "example.org";
    for user in MIXED {
        make_account(s, user, d).await;
    }
    let users: Vec<String> = s
        .accounts
        .list(Some(d))
        .await
        .unwrap()
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(users, BYTE_ORDER);

    let jid = |x: &str| format!("{x}@x");
    for x in MIXED {
        s.roster
            .put(
                "a",
                d,
                &RosterItem {
                    jid: jid(x),
                    groups: MIXED.iter().map(|g| g.to_string()).collect(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let (_, items) = s.roster.get_all("a", d).await.unwrap();
    let jids: Vec<String> = items.iter().map(|i| i.jid.clone()).collect();
    assert_eq!(jids, BYTE_ORDER.map(jid));
    assert!(items.iter().all(|i| i.groups == BYTE_ORDER));
    let one = s.roster.get("a", d, &jid("é")).await.unwrap().unwrap();
    assert_eq!(one.groups, BYTE_ORDER);

    let blocked: Vec<String> = MIXED.iter().map(|x| jid(x)).collect();
    s.blocking.add("a", d, &blocked).await.unwrap();
    assert_eq!(s.blocking.list("a", d).await.unwrap(), BYTE_ORDER.map(jid));
}
