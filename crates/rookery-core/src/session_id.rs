//! Session identity: which node a session lives on, and a random 128-bit id that names it
//! across the whole deployment. The id is unguessable (OS randomness), so it can double as a
//! XEP-0198 stream management id (§5: "the server SHOULD make the id unpredictable"); it
//! carries the node so that anyone holding it knows where the session is homed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;
use std::sync::Arc;

/// A node of the deployment (`[cluster] node`, or `local` on a single node).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// The name a single-node server uses.
    pub const LOCAL: &'static str = "local";

    pub fn new(name: &str) -> NodeName {
        NodeName(Arc::from(name))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session's id: its home node and 128 random bits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    node: NodeName,
    bits: u128,
}

impl SessionId {
    /// A fresh id homed on `node`.
    pub fn random(node: &NodeName) -> SessionId {
        let mut b = [0u8; 16];
        // Without OS randomness no id (nor any key the server makes) would be safe; the
        // server already refuses to start in that case (`Server::new`), so this cannot fail
        // on a running server.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut b).expect("OS random number generator unavailable");
        SessionId {
            node: node.clone(),
            bits: u128::from_le_bytes(b),
        }
    }

    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The random part as text (URL-safe base64, 22 characters): what a client may be shown.
    pub fn token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.bits.to_le_bytes())
    }

    /// Parses what `Display` prints: `node/token`.
    pub fn parse(s: &str) -> Option<SessionId> {
        let (node, token) = s.rsplit_once('/')?;
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        let bits = u128::from_le_bytes(raw.try_into().ok()?);
        (!node.is_empty()).then(|| SessionId {
            node: NodeName::new(node),
            bits,
        })
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.token())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_carry_the_node_and_round_trip() {
        let n = NodeName::new("n1");
        let a = SessionId::random(&n);
        let b = SessionId::random(&n);
        assert_ne!(a, b);
        assert_eq!(a.node().as_str(), "n1");
        assert_eq!(a.token().len(), 22);
        assert_eq!(SessionId::parse(&a.to_string()), Some(a.clone()));
        assert_eq!(SessionId::parse("n1/short"), None);
        assert_eq!(SessionId::parse(&format!("/{}", a.token())), None);
    }
}
