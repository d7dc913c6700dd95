//! rookery-store contract suite: cases that need several handles on one database —
//! durability across reopening, two processes sharing a database, concurrent writers.

use std::time::Duration;

use super::{Opener, creds, make_account};
use crate::{RosterItem, Stores, Subscription};

const D: &str = "example.org";

/// Generous: a deadlock hangs forever, a slow CI machine takes seconds.
const DEADLINE: Duration = Duration::from_secs(60);

pub async fn pending_in_survives_reopen(o: &dyn Opener) {
    let xml = "<presence from='bob@example.net' to='alice@example.org' type='subscribe'/>";
    {
        let s = o.open().await;
        make_account(&s, "alice", D).await;
        s.roster
            .put_pending_in("alice", D, "bob@example.net", xml)
            .await
            .unwrap();
    } // every handle on the database is dropped here
    let s = o.open().await;
    assert_eq!(
        s.roster.pending_in("alice", D).await.unwrap(),
        vec![("bob@example.net".to_string(), xml.to_string())]
    );
    assert!(
        s.roster
            .has_pending_in("alice", D, "bob@example.net")
            .await
            .unwrap()
    );
}

pub async fn data_survives_reopen(o: &dyn Opener) {
    let item = RosterItem {
        jid: "bob@example.net".into(),
        subscription: Subscription::To,
        groups: vec!["G".into()],
        ..Default::default()
    };
    let version = {
        let s = o.open().await;
        s.accounts.create("alice", D, &creds(5)).await.unwrap();
        s.roster.put("alice", D, &item).await.unwrap();
        s.roster
            .put(
                "alice",
                D,
                &RosterItem {
                    jid: "gone@x".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let v = s
            .roster
            .remove("alice", D, "gone@x")
            .await
            .unwrap()
            .unwrap();
        s.offline
            .push("alice", D, "<message/>", 7, 10)
            .await
            .unwrap();
        s.kv.put("alice", D, "vcard", "", "<vCard/>").await.unwrap();
        s.blocking.add("alice", D, &["eve@x".into()]).await.unwrap();
        v
    };
    let s = o.open().await;
    assert_eq!(
        s.accounts.credentials("alice", D).await.unwrap(),
        Some(creds(5))
    );
    assert_eq!(
        s.roster.get_all("alice", D).await.unwrap(),
        (version, vec![item])
    );
    let (_, changes) = s
        .roster
        .changes_since("alice", D, version - 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changes.len(), 1, "tombstones survive too");
    assert_eq!(
        s.offline.take_all("alice", D).await.unwrap(),
        vec![("<message/>".into(), 7)]
    );
    assert_eq!(
        s.kv.get("alice", D, "vcard", "").await.unwrap().as_deref(),
        Some("<vCard/>")
    );
    assert!(s.blocking.is_blocked("alice", D, "eve@x").await.unwrap());
}

/// The server and the admin CLI each hold a handle; each must see the other's commits.
pub async fn two_handles_see_each_others_writes(o: &dyn Opener) {
    let server = o.open().await;
    let cli = o.open().await;
    assert!(!server.accounts.exists("alice", D).await.unwrap());
    cli.accounts.create("alice", D, &creds(1)).await.unwrap();
    assert!(server.accounts.exists("alice", D).await.unwrap());
    assert_eq!(
        server.accounts.credentials("alice", D).await.unwrap(),
        Some(creds(1))
    );

    // Conflicts are detected across handles.
    assert!(server.accounts.create("alice", D, &creds(2)).await.is_err());

    let v1 = server
        .roster
        .put(
            "alice",
            D,
            &RosterItem {
                jid: "a@x".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v2 = cli
        .roster
        .put(
            "alice",
            D,
            &RosterItem {
                jid: "b@x".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(v2 > v1, "one version counter shared by both handles");
    assert_eq!(server.roster.get_all("alice", D).await.unwrap().1.len(), 2);

    cli.accounts
        .set_credentials("alice", D, &creds(3))
        .await
        .unwrap();
    assert_eq!(
        server.accounts.credentials("alice", D).await.unwrap(),
        Some(creds(3))
    );

    server
        .offline
        .push("alice", D, "<message/>", 1, 1)
        .await
        .unwrap();
    assert_eq!(cli.offline.count("alice", D).await.unwrap(), 1);
    // The limit is enforced against the other handle's message too.
    assert!(
        cli.offline
            .push("alice", D, "<message/>", 2, 1)
            .await
            .is_err()
    );

    cli.accounts.delete("alice", D).await.unwrap();
    assert!(!server.accounts.exists("alice", D).await.unwrap());
    assert!(
        server
            .roster
            .get_all("alice", D)
            .await
            .unwrap()
            .1
            .is_empty()
    );
}

/// Many tasks hammering every kind of write (and some reads) through `handles`, round
/// robin. Every write must succeed (no SQLITE_BUSY, no lost update) within [`DEADLINE`].
async fn hammer(handles: Vec<Stores>) {
    const TASKS: usize = 24;
    const OPS: usize = 20;
    make_account(&handles[0], "alice", D).await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = handles[t % handles.len()].clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("user{t}");
            s.accounts.create(&user, D, &creds(t as u8)).await.unwrap();
            for i in 0..OPS {
                let jid = format!("c{t}-{i}@x");
                s.roster
                    .put(
                        "alice",
                        D,
                        &RosterItem {
                            jid,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                s.offline
                    .push("alice", D, &format!("<m t='{t}' i='{i}'/>"), 0, usize::MAX)
                    .await
                    .unwrap();
                s.kv.put(&user, D, "k", &i.to_string(), "v").await.unwrap();
                s.blocking
                    .add(&user, D, &[format!("b{i}@x")])
                    .await
                    .unwrap();
                assert!(s.accounts.exists(&user, D).await.unwrap());
                s.roster.get_all("alice", D).await.unwrap();
            }
        }));
    }
    let all = async {
        for task in tasks {
            task.await.expect("writer task panicked");
        }
    };
    tokio::time::timeout(DEADLINE, all)
        .await
        .expect("concurrent writers did not finish: deadlock?");

    let s = &handles[0];
    let total = TASKS * OPS;
    let (version, items) = s.roster.get_all("alice", D).await.unwrap();
    assert_eq!(items.len(), total);
    assert_eq!(
        version, total as u64,
        "one version per put: no lost updates"
    );
    assert_eq!(s.offline.count("alice", D).await.unwrap(), total);
    assert_eq!(s.accounts.list(Some(D)).await.unwrap().len(), TASKS + 1);
    for t in 0..TASKS {
        assert_eq!(
            s.blocking.list(&format!("user{t}"), D).await.unwrap().len(),
            OPS
        );
    }
    // Messages from one task arrive in the order that task sent them.
    let taken = s.offline.take_all("alice", D).await.unwrap();
    for t in 0..TASKS {
        let prefix = format!("<m t='{t}' ");
        let mine: Vec<_> = taken
            .iter()
            .filter(|(m, _)| m.starts_with(&prefix))
            .collect();
        let expected: Vec<_> = (0..OPS).map(|i| format!("<m t='{t}' i='{i}'/>")).collect();
        assert_eq!(
            mine.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
            expected
        );
    }
}

pub async fn concurrent_writers(o: &dyn Opener) {
    hammer(vec![o.open().await]).await;
}

/// Two handles = two writer connections contending for the database's write lock, as two
/// processes would.
pub async fn concurrent_writers_two_handles(o: &dyn Opener) {
    hammer(vec![o.open().await, o.open().await]).await;
}
