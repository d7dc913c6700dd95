//! rookery-store contract suite: `OfflineStore` cases (XEP-0160 offline messages).

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
