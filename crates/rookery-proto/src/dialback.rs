//! Server Dialback (XEP-0220) wire elements and XEP-0185 keys, sans-IO. The s2s actors in
//! rookery-net use these: the outgoing stream sends `db:result` with a key and waits for the
//! verdict; the incoming stream asks the authoritative server with `db:verify`; any stream
//! answers `db:verify` for our own keys. Verdicts are only accepted when they answer a request
//! we made on that stream (the 2012 "unsolicited dialback" attacks): see `Pending`.

use crate::error::StanzaError;
use crate::ns;
use hmac::{KeyInit, Mac};
use rookery_xml::Element;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use subtle::ConstantTimeEq;

/// XEP-0185 §3: hex(HMAC-SHA256(key = hex(SHA256(secret)), receiving ' ' originating ' ' id)).
/// The HMAC key is the lowercase hex *string* of the secret's hash, not the raw bytes.
pub fn key(secret: &[u8], receiving: &str, originating: &str, stream_id: &str) -> String {
    let hashed = hex::encode(Sha256::digest(secret));
    // HMAC takes keys of any length; this cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac =
        <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(hashed.as_bytes()).expect("HMAC key");
    mac.update(receiving.as_bytes());
    mac.update(b" ");
    mac.update(originating.as_bytes());
    mac.update(b" ");
    mac.update(stream_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a received key in constant time (hex accepted in either case).
pub fn verify_key(
    secret: &[u8],
    receiving: &str,
    originating: &str,
    stream_id: &str,
    candidate: &str,
) -> bool {
    let expected = key(secret, receiving, originating, stream_id);
    let candidate = candidate.trim().to_ascii_lowercase();
    expected.len() == candidate.len() && bool::from(expected.as_bytes().ct_eq(candidate.as_bytes()))
}

/// `db:result` (on the stream being authenticated) or `db:verify` (to the authoritative server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Result,
    Verify,
}

/// The type of a dialback element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbType {
    /// A request carrying a key (no `type` attribute).
    Request(String),
    Valid,
    Invalid,
    /// `type='error'` with its stanza error (XEP-0220 §2.4).
    Error(Option<StanzaError>),
}

/// One dialback element, domains normalised to lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialback {
    pub kind: DbKind,
    pub from: String,
    pub to: String,
    /// The stream id (`db:verify` only).
    pub id: Option<String>,
    pub ty: DbType,
}

/// Why an element is not acceptable dialback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbParseError {
    NotDialback,
    /// Missing `from`/`to` (a stream error `improper-addressing`).
    Addressing,
    /// Bad `type`, missing key or id (a stream error `invalid-xml` / `bad-format`).
    Malformed(&'static str),
}

impl Dialback {
    pub fn parse(el: &Element) -> Result<Dialback, DbParseError> {
        if el.ns() != ns::DIALBACK {
            return Err(DbParseError::NotDialback);
        }
        let kind = match el.name() {
            "result" => DbKind::Result,
            "verify" => DbKind::Verify,
            _ => return Err(DbParseError::NotDialback),
        };
        let (Some(from), Some(to)) = (el.attr("from"), el.attr("to")) else {
            return Err(DbParseError::Addressing);
        };
        let id = el.attr("id").map(str::to_owned);
        if kind == DbKind::Verify && id.is_none() {
            return Err(DbParseError::Malformed("db:verify needs an id"));
        }
        let ty = match el.attr("type") {
            None => {
                let k = el.text();
                let k = k.trim();
                if k.is_empty() {
                    return Err(DbParseError::Malformed("dialback request without a key"));
                }
                DbType::Request(k.to_owned())
            }
            Some("valid") => DbType::Valid,
            Some("invalid") => DbType::Invalid,
            // The error child is in the content namespace; accept any namespace, since peers
            // differ (some put it in the dialback namespace).
            Some("error") => DbType::Error(
                el.children()
                    .find(|c| c.name() == "error")
                    .and_then(StanzaError::from_element),
            ),
            Some(_) => return Err(DbParseError::Malformed("unknown dialback type")),
        };
        Ok(Dialback {
            kind,
            from: from.to_ascii_lowercase(),
            to: to.to_ascii_lowercase(),
            id,
            ty,
        })
    }

    pub fn to_element(&self) -> Element {
        let name = match self.kind {
            DbKind::Result => "result",
            DbKind::Verify => "verify",
        };
        let mut el = Element::new(name, ns::DIALBACK)
            .with_attr("from", self.from.as_str())
            .with_attr("to", self.to.as_str());
        if let Some(id) = &self.id {
            el.set_attr("id", id.as_str());
        }
        match &self.ty {
            DbType::Request(k) => el.append_text(k.as_str()),
            DbType::Valid => el.set_attr("type", "valid"),
            DbType::Invalid => el.set_attr("type", "invalid"),
            DbType::Error(e) => {
                el.set_attr("type", "error");
                if let Some(e) = e {
                    // XEP-0220 §2.4: an unprefixed `<error/>` inside `db:result`, i.e. in the
                    // stream's content namespace (`jabber:client` inside the server, written
                    // as the stream's default).
                    el.append_child(e.to_element(ns::CLIENT));
                }
            }
        }
        el
    }

    /// The verdict answering this request (from/to swapped, id kept).
    pub fn verdict(&self, ty: DbType) -> Dialback {
        Dialback {
            kind: self.kind,
            from: self.to.clone(),
            to: self.from.clone(),
            id: self.id.clone(),
            ty,
        }
    }
}

/// Requests awaiting a verdict on one stream. A verdict is accepted only if it answers one of
/// these; everything else is ignored (XEP-0220 §5 security considerations).
#[derive(Debug, Default)]
pub struct Pending {
    results: HashSet<(String, String)>,
    verifies: HashSet<(String, String, String)>,
}

impl Pending {
    /// Remember a `db:result` we sent (`from` = our domain, `to` = theirs).
    pub fn sent_result(&mut self, from: &str, to: &str) {
        self.results.insert((from.to_owned(), to.to_owned()));
    }
    /// Remember a `db:verify` we sent.
    pub fn sent_verify(&mut self, from: &str, to: &str, id: &str) {
        self.verifies
            .insert((from.to_owned(), to.to_owned(), id.to_owned()));
    }
    pub fn has_result(&self, from: &str, to: &str) -> bool {
        self.results.contains(&(from.to_owned(), to.to_owned()))
    }

    /// If `v` is a verdict for a request of ours, takes the request and returns true.
    pub fn take_verdict(&mut self, v: &Dialback) -> bool {
        if matches!(v.ty, DbType::Request(_)) {
            return false;
        }
        // A verdict travels back with from/to swapped relative to our request.
        match v.kind {
            DbKind::Result => self.results.remove(&(v.to.clone(), v.from.clone())),
            DbKind::Verify => match &v.id {
                Some(id) => self
                    .verifies
                    .remove(&(v.to.clone(), v.from.clone(), id.clone())),
                None => false,
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.results.is_empty() && self.verifies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0185_vectors() {
        assert_eq!(
            key(
                b"s3cr3tf0rd14lb4ck",
                "xmpp.example.com",
                "example.org",
                "D60000229F"
            ),
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
        );
        assert_eq!(
            key(
                b"s3cr3tf0rd14lb4ck",
                "montague.example",
                "capulet.example",
                "D60000229F"
            ),
            "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
        );
        assert_eq!(
            key(
                b"d14lb4ck43v3r",
                "capulet.example",
                "montague.example",
                "417GAF25"
            ),
            "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"
        );
    }

    #[test]
    fn key_binds_both_domains_and_the_stream() {
        let s = b"secret-secret-secret";
        let k = key(s, "b.test", "a.test", "id1");
        assert!(verify_key(s, "b.test", "a.test", "id1", &k));
        assert!(verify_key(s, "b.test", "a.test", "id1", &k.to_uppercase()));
        assert!(
            !verify_key(s, "a.test", "b.test", "id1", &k),
            "swapped domains"
        );
        assert!(
            !verify_key(s, "c.test", "a.test", "id1", &k),
            "other receiver"
        );
        assert!(
            !verify_key(s, "b.test", "a.test", "id2", &k),
            "other stream"
        );
        assert!(!verify_key(
            b"other-secret-xxxx",
            "b.test",
            "a.test",
            "id1",
            &k
        ));
        assert!(!verify_key(s, "b.test", "a.test", "id1", ""));
    }

    #[test]
    fn parse_and_build_round_trip() {
        let el = Element::parse(
            "<db:result xmlns:db='jabber:server:dialback' from='A.test' to='b.test'>abc</db:result>",
        )
        .unwrap();
        let db = Dialback::parse(&el).unwrap();
        assert_eq!(db.kind, DbKind::Result);
        assert_eq!(db.from, "a.test");
        assert_eq!(db.ty, DbType::Request("abc".into()));
        assert_eq!(Dialback::parse(&db.to_element()).unwrap(), db);
        let v = db.verdict(DbType::Valid);
        assert_eq!((v.from.as_str(), v.to.as_str()), ("b.test", "a.test"));
        assert_eq!(Dialback::parse(&v.to_element()).unwrap(), v);
    }

    #[test]
    fn malformed_dialback() {
        let no_to =
            Element::parse("<result xmlns='jabber:server:dialback' from='a'>k</result>").unwrap();
        assert_eq!(Dialback::parse(&no_to), Err(DbParseError::Addressing));
        let no_id =
            Element::parse("<verify xmlns='jabber:server:dialback' from='a' to='b'>k</verify>")
                .unwrap();
        assert!(matches!(
            Dialback::parse(&no_id),
            Err(DbParseError::Malformed(_))
        ));
        let no_key =
            Element::parse("<result xmlns='jabber:server:dialback' from='a' to='b'/>").unwrap();
        assert!(matches!(
            Dialback::parse(&no_key),
            Err(DbParseError::Malformed(_))
        ));
    }

    #[test]
    fn error_verdict_carries_the_condition() {
        let el = Element::parse(
            "<result xmlns='jabber:server:dialback' from='b' to='a' type='error'>\
             <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></result>",
        )
        .unwrap();
        match Dialback::parse(&el).unwrap().ty {
            DbType::Error(Some(e)) => {
                assert_eq!(e.condition, crate::error::Condition::ItemNotFound)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsolicited_verdicts_are_not_taken() {
        let mut p = Pending::default();
        p.sent_result("a.test", "b.test");
        p.sent_verify("b.test", "a.test", "s1");
        let forged = Dialback {
            kind: DbKind::Result,
            from: "b.test".into(),
            to: "evil.test".into(),
            id: None,
            ty: DbType::Valid,
        };
        assert!(!p.take_verdict(&forged));
        let ok = Dialback {
            kind: DbKind::Result,
            from: "b.test".into(),
            to: "a.test".into(),
            id: None,
            ty: DbType::Valid,
        };
        assert!(p.take_verdict(&ok));
        assert!(!p.take_verdict(&ok), "a verdict is used once");
        let wrong_id = Dialback {
            kind: DbKind::Verify,
            from: "a.test".into(),
            to: "b.test".into(),
            id: Some("s2".into()),
            ty: DbType::Valid,
        };
        assert!(!p.take_verdict(&wrong_id));
        let verify_ok = Dialback {
            id: Some("s1".into()),
            ..wrong_id
        };
        assert!(p.take_verdict(&verify_ok));
        assert!(p.is_empty());
    }
}
