//! rookery-store contract suite: `AccountStore` cases, including the delete cascade over
//! every other store.

use rookery_proto::sasl::ScramCredential;

use super::{creds, make_account};
use crate::{RosterItem, StoreError, Stores, Subscription};

pub async fn account_create_conflict_exists(s: &Stores) {
    assert!(!s.accounts.exists("alice", "example.org").await.unwrap());
    make_account(s, "alice", "example.org").await;
    assert!(s.accounts.exists("alice", "example.org").await.unwrap());
    assert_eq!(
        s.accounts.create("alice", "example.org", &creds(9)).await,
        Err(StoreError::Conflict)
    );
    // The failed create must not have touched the original credentials.
    assert_eq!(
        s.accounts
            .credentials("alice", "example.org")
            .await
            .unwrap(),
        Some(creds(0))
    );
    // Same localpart, other domain; other localpart, same domain: distinct accounts.
    make_account(s, "alice", "example.net").await;
    make_account(s, "bob", "example.org").await;
    // Keys are compared exactly; normalising is the caller's job.
    assert!(!s.accounts.exists("Alice", "example.org").await.unwrap());
}

pub async fn account_credentials_round_trip(s: &Stores) {
    s.accounts.create("a", "d", &creds(7)).await.unwrap();
    assert_eq!(
        s.accounts.credentials("a", "d").await.unwrap(),
        Some(creds(7))
    );
    assert_eq!(s.accounts.credentials("nobody", "d").await.unwrap(), None);

    let mut extreme = creds(3);
    extreme.sha1 = ScramCredential {
        salt: Vec::new(),
        iterations: u32::MAX,
        stored_key: (0..=255).collect(),
        server_key: vec![0; 64],
    };
    s.accounts.create("b", "d", &extreme).await.unwrap();
    assert_eq!(
        s.accounts.credentials("b", "d").await.unwrap(),
        Some(extreme)
    );
}

pub async fn account_set_credentials(s: &Stores) {
    make_account(s, "a", "d").await;
    s.accounts
        .set_credentials("a", "d", &creds(42))
        .await
        .unwrap();
    assert_eq!(
        s.accounts.credentials("a", "d").await.unwrap(),
        Some(creds(42))
    );
    assert_eq!(
        s.accounts.set_credentials("ghost", "d", &creds(1)).await,
        Err(StoreError::NotFound)
    );
    assert!(!s.accounts.exists("ghost", "d").await.unwrap());
}

pub async fn account_list_sorted_and_filtered(s: &Stores) {
    assert!(s.accounts.list(None).await.unwrap().is_empty());
    for (user, domain) in [
        ("zed", "b.org"),
        ("amy", "b.org"),
        ("bob", "a.org"),
        ("amy", "a.org"),
    ] {
        make_account(s, user, domain).await;
    }
    let all = s.accounts.list(None).await.unwrap();
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(u, d)| (u.to_string(), d.to_string()))
            .collect()
    };
    assert_eq!(
        all,
        pairs(&[
            ("amy", "a.org"),
            ("amy", "b.org"),
            ("bob", "a.org"),
            ("zed", "b.org")
        ])
    );
    assert_eq!(
        s.accounts.list(Some("b.org")).await.unwrap(),
        pairs(&[("amy", "b.org"), ("zed", "b.org")])
    );
    assert!(s.accounts.list(Some("c.org")).await.unwrap().is_empty());
}

pub async fn account_delete_cascades(s: &Stores) {
    let (u, d) = ("alice", "example.org");
    make_account(s, u, d).await;
    make_account(s, "bob", d).await;
    // Give both accounts data in every store; only alice's may disappear.
    for user in [u, "bob"] {
        let item = RosterItem {
            jid: "carol@example.com".into(),
            groups: vec!["Friends".into()],
            subscription: Subscription::Both,
            ..Default::default()
        };
        s.roster.put(user, d, &item).await.unwrap();
        s.roster
            .put(
                user,
                d,
                &RosterItem {
                    jid: "x@y".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        s.roster.remove(user, d, "x@y").await.unwrap();
        s.roster
            .put_pending_in(user, d, "dave@example.com", "<presence/>")
            .await
            .unwrap();
        s.offline.push(user, d, "<message/>", 1, 100).await.unwrap();
        s.kv.put(user, d, "vcard", "", "<vCard/>").await.unwrap();
        s.blocking
            .add(user, d, &["eve@example.com".into()])
            .await
            .unwrap();
    }

    s.accounts.delete(u, d).await.unwrap();
    assert!(!s.accounts.exists(u, d).await.unwrap());
    assert_eq!(s.accounts.credentials(u, d).await.unwrap(), None);
    assert_eq!(s.accounts.delete(u, d).await, Err(StoreError::NotFound));

    // Recreating the account must not resurrect anything.
    make_account(s, u, d).await;
    assert_eq!(s.roster.get_all(u, d).await.unwrap(), (0, Vec::new()));
    assert_eq!(
        s.roster.changes_since(u, d, 0).await.unwrap(),
        Some((0, Vec::new()))
    );
    assert!(s.roster.pending_in(u, d).await.unwrap().is_empty());
    assert_eq!(s.offline.count(u, d).await.unwrap(), 0);
    assert_eq!(s.kv.get(u, d, "vcard", "").await.unwrap(), None);
    assert!(s.blocking.list(u, d).await.unwrap().is_empty());

    // Bob's data is untouched.
    assert_eq!(s.roster.get_all("bob", d).await.unwrap().1.len(), 1);
    assert_eq!(s.roster.pending_in("bob", d).await.unwrap().len(), 1);
    assert_eq!(s.offline.count("bob", d).await.unwrap(), 1);
    assert!(s.kv.get("bob", d, "vcard", "").await.unwrap().is_some());
    assert!(
        s.blocking
            .is_blocked("bob", d, "eve@example.com")
            .await
            .unwrap()
    );
}

pub async fn account_missing_reads_empty_writes_not_found(s: &Stores) {
    let (u, d) = ("ghost", "example.org");
    let nf = Err(StoreError::NotFound);
    let item = RosterItem {
        jid: "a@b".into(),
        ..Default::default()
    };
    assert_eq!(s.accounts.delete(u, d).await, nf);
    assert_eq!(s.roster.put(u, d, &item).await.map(drop), nf);
    assert_eq!(s.roster.remove(u, d, "a@b").await.map(drop), nf);
    assert_eq!(
        s.roster.put_pending_in(u, d, "a@b", "<presence/>").await,
        nf
    );
    assert_eq!(s.roster.remove_pending_in(u, d, "a@b").await.map(drop), nf);
    assert_eq!(s.offline.push(u, d, "<message/>", 0, 10).await, nf);
    assert_eq!(s.kv.put(u, d, "s", "k", "v").await, nf);
    assert_eq!(s.kv.delete(u, d, "s", "k").await, nf);
    assert_eq!(s.blocking.add(u, d, &["a@b".into()]).await, nf);
    assert_eq!(s.blocking.remove(u, d, &["a@b".into()]).await, nf);
    assert_eq!(s.blocking.clear(u, d).await, nf);

    assert_eq!(s.roster.get_all(u, d).await.unwrap(), (0, Vec::new()));
    assert_eq!(s.roster.get(u, d, "a@b").await.unwrap(), None);
    assert!(s.roster.pending_in(u, d).await.unwrap().is_empty());
    assert!(!s.roster.has_pending_in(u, d, "a@b").await.unwrap());
    assert_eq!(s.offline.count(u, d).await.unwrap(), 0);
    assert!(s.offline.take_all(u, d).await.unwrap().is_empty());
    assert_eq!(s.kv.get(u, d, "s", "k").await.unwrap(), None);
    assert!(s.blocking.list(u, d).await.unwrap().is_empty());
    assert!(!s.blocking.is_blocked(u, d, "a@b").await.unwrap());
    // None of that may have created the account as a side effect.
    assert!(!s.accounts.exists(u, d).await.unwrap());
}
