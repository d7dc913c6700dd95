//! The core's side of a router name, and which holder a route goes to.
//!
//! Where it sits: `table.rs` binds a [`NameLink`] in the core's `Components` for every name a
//! router connection holds, so `Server::route` hands stanzas for that domain to it; it wraps
//! them in `<route/>` and puts them into the chosen holder's mailbox without waiting. For a name
//! several connections hold (`multi`), [`multi_index`] is jabberd2's choice, so one bare JID
//! always reaches the same instance.

use super::NS_COMPONENT;
use super::table::{Table, Target};
use rookery_core::components::ComponentLink;
use rookery_proto::stanza::{Jid, Stanza};
use rookery_xml::Element;
use sha1::{Digest, Sha1};
use std::sync::{Mutex, Weak};

/// jabberd2's choice among the holders of a multi-bound name: SHA-1 of the bare JID, its five
/// 32-bit words XOR-folded (read little-endian, as jabberd2 does on the x86/ARM machines it
/// runs on), shifted right by 2, modulo the number of holders. `None` for a node-less JID,
/// which jabberd2 spreads at random.
pub fn multi_index(jid: &Jid, holders: usize) -> Option<usize> {
    let node = jid.node()?;
    if holders == 0 {
        return None;
    }
    let bare = format!("{}@{}", node.as_str(), jid.domain().as_str());
    let digest = Sha1::digest(bare.as_bytes());
    let mut folded = 0u32;
    for word in digest.chunks_exact(4) {
        folded ^= u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
    }
    Some(((folded >> 2) as usize) % holders)
}

/// A uniformly chosen holder, for node-less JIDs (jabberd2 picks at random too).
pub(super) fn random_index(n: usize) -> usize {
    let mut b = [0u8; 8];
    // A failed RNG only makes the spread uneven; index 0 is still a valid holder.
    let _ = getrandom::fill(&mut b);
    (u64::from_le_bytes(b) % n as u64) as usize
}

/// The core's sink for one router name: wraps stanzas from Rookery into
/// `<route from='<sender domain>' to='<name>'>` and puts them into the holder's mailbox.
pub(crate) struct NameLink {
    id: u64,
    name: String,
    hub: Weak<Mutex<Table>>,
}

impl NameLink {
    pub(super) fn new(id: u64, name: String, hub: Weak<Mutex<Table>>) -> Self {
        NameLink { id, name, hub }
    }

    /// The id it is bound under in the core's `Components`.
    pub(super) fn id(&self) -> u64 {
        self.id
    }
}

impl ComponentLink for NameLink {
    fn link_id(&self) -> u64 {
        self.id
    }

    fn send(&self, st: Stanza) -> Result<(), Stanza> {
        // The core's table also hands us subdomains of this name; jabberd2 routes by exact
        // name, so those are not ours to deliver (the core then bounces them).
        let exact = st
            .to()
            .is_some_and(|t| t.domain().as_str().eq_ignore_ascii_case(&self.name));
        if !exact {
            return Err(st);
        }
        let Some(table) = self.hub.upgrade() else {
            return Err(st);
        };
        let target = table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pick(&self.name, st.to());
        let Target::Link(_, tx) = target else {
            return Err(st);
        };
        // Reserve first so a full mailbox hands the stanza back untouched, without a copy.
        let Ok(permit) = tx.try_reserve() else {
            return Err(st);
        };
        let from = st
            .from()
            .map(|f| f.domain().as_str().to_owned())
            .unwrap_or_default();
        let route = Element::new("route", NS_COMPONENT)
            .with_attr("from", from)
            .with_attr("to", self.name.clone())
            .child(st.into_element());
        permit.send(route);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_index_is_stable_per_bare_jid_and_none_without_node() {
        let a: Jid = "alice@jd2.test/one".parse().unwrap();
        let a2: Jid = "alice@jd2.test/two".parse().unwrap();
        assert_eq!(multi_index(&a, 3), multi_index(&a2, 3));
        assert!(multi_index(&a, 3).unwrap() < 3);
        let d: Jid = "jd2.test".parse().unwrap();
        assert_eq!(multi_index(&d, 3), None);
        // SHA-1("alice@jd2.test") folded as jabberd2 folds it, computed independently.
        let digest = Sha1::digest(b"alice@jd2.test");
        let w: Vec<u32> = digest
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let expect = ((w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4]) >> 2) as usize % 7;
        assert_eq!(multi_index(&a, 7), Some(expect));
    }
}
