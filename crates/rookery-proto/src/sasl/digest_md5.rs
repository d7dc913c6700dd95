//! DIGEST-MD5 (RFC 2831, moved to Historic by RFC 6331), server side, `qop=auth` only.
//!
//! Where it sits: only rookery-net's jabberd2 router listener (`router/auth.rs`) uses it,
//! because jabberd2's `sm` and `c2s` speak nothing else to their router (see
//! docs/decisions/0013-digest-md5-router-only.md). Client streams never offer it. The flow is
//! two messages: [`DigestMd5::challenge`] is sent as the first `<challenge/>`, the client's
//! `<response/>` goes to [`DigestMd5::parse_response`], the caller looks up the router user's
//! secret (DIGEST-MD5 needs the secret itself, which is why router secrets live in the
//! configuration) and [`DigestMd5::verify`] returns the `rspauth` for `<success/>`.
//!
//! No integrity or confidentiality layer is offered (`qop=auth`); TLS is the way to protect a
//! router link that leaves the machine.

use md5::{Digest, Md5};

use super::crypto;
use super::failure::SaslFailure;

/// Realm offered in the challenge. jabberd2's router offers this one; its clients echo the
/// realm they were offered.
pub const ROUTER_REALM: &str = "jabberd-router";

/// The service part of the `digest-uri` jabberd2 components send
/// (`jabberd-router/<their host name>`). The host part names the client's own machine and
/// cannot be checked; the service part keeps a response computed for another service (IMAP,
/// say) from being replayed here.
pub const ROUTER_SERVICE: &str = "jabberd-router";

/// Longest response accepted; a real one is about 300 bytes.
const MAX_RESPONSE: usize = 4096;

/// One DIGEST-MD5 exchange: the nonce we issued and the realm we offered.
#[derive(Debug)]
pub struct DigestMd5 {
    nonce: String,
    realm: String,
    service: String,
}

/// A parsed digest-response that passed every check not needing the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    /// The authentication identity (`username`).
    pub username: String,
    /// `authzid`, when sent; the caller must refuse any value but the username itself.
    pub authzid: Option<String>,
    realm: String,
    cnonce: String,
    nc: String,
    digest_uri: String,
    response: String,
}

impl DigestMd5 {
    /// A fresh exchange with a random 128-bit nonce, for `service` (the `digest-uri` service
    /// the client must name) in `realm`.
    pub fn new(realm: &str, service: &str) -> Result<Self, SaslFailure> {
        let bytes = crypto::random_bytes(16).map_err(|_| SaslFailure::TemporaryAuthFailure)?;
        Ok(Self::with_nonce(realm, service, &hex::encode(bytes)))
    }

    /// An exchange with a fixed nonce (tests replay RFC 2831's example with it).
    pub fn with_nonce(realm: &str, service: &str, nonce: &str) -> Self {
        DigestMd5 {
            nonce: nonce.to_owned(),
            realm: realm.to_owned(),
            service: service.to_owned(),
        }
    }

    /// The digest-challenge (RFC 2831 §2.1.1). No `maxbuf` or `cipher`: we offer no security
    /// layer.
    pub fn challenge(&self) -> Vec<u8> {
        format!(
            "realm=\"{}\",nonce=\"{}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess",
            self.realm, self.nonce
        )
        .into_bytes()
    }

    /// Parses the digest-response (RFC 2831 §2.1.2) and checks everything that does not need
    /// the secret: our nonce, `nc`, `qop`, the `digest-uri` service, `charset`.
    pub fn parse_response(&self, msg: &[u8]) -> Result<DigestResponse, SaslFailure> {
        if msg.len() > MAX_RESPONSE {
            return Err(SaslFailure::MalformedRequest);
        }
        let text = std::str::from_utf8(msg).map_err(|_| SaslFailure::MalformedRequest)?;
        let directives = parse_directives(text).ok_or(SaslFailure::MalformedRequest)?;
        let mut seen = std::collections::HashSet::new();
        let mut get = |name: &str| -> Result<Option<String>, SaslFailure> {
            let mut found = None;
            for (k, v) in &directives {
                if k.eq_ignore_ascii_case(name) {
                    // RFC 2831 §2.1.2: each directive at most once.
                    if found.is_some() || !seen.insert(name.to_owned()) {
                        return Err(SaslFailure::MalformedRequest);
                    }
                    found = Some(v.clone());
                }
            }
            Ok(found)
        };
        let required = |v: Option<String>| v.ok_or(SaslFailure::MalformedRequest);
        let username = required(get("username")?)?;
        let realm = get("realm")?.unwrap_or_default();
        let nonce = required(get("nonce")?)?;
        let cnonce = required(get("cnonce")?)?;
        let nc = required(get("nc")?)?;
        let qop = get("qop")?.unwrap_or_else(|| "auth".to_owned());
        let digest_uri = required(get("digest-uri")?)?;
        let response = required(get("response")?)?;
        let authzid = get("authzid")?;
        if let Some(charset) = get("charset")?
            && !charset.eq_ignore_ascii_case("utf-8")
        {
            return Err(SaslFailure::MalformedRequest);
        }
        if !crypto::ct_eq(nonce.as_bytes(), self.nonce.as_bytes()) {
            return Err(SaslFailure::NotAuthorized);
        }
        // One exchange per nonce, so the count must be the first.
        if nc != "00000001" || qop != "auth" {
            return Err(SaslFailure::MalformedRequest);
        }
        let service = digest_uri.split('/').next().unwrap_or_default();
        if service != self.service {
            return Err(SaslFailure::NotAuthorized);
        }
        if cnonce.is_empty() || username.is_empty() || response.len() != 32 {
            return Err(SaslFailure::MalformedRequest);
        }
        if authzid.as_deref().is_some_and(str::is_empty) {
            return Err(SaslFailure::InvalidAuthzid);
        }
        Ok(DigestResponse {
            username,
            authzid,
            realm,
            cnonce,
            nc,
            digest_uri,
            response: response.to_ascii_lowercase(),
        })
    }

    /// Checks the response against `secret`; on success returns the server's `rspauth=…`
    /// (to send in `<success/>`, RFC 6120 §6.3.10), so the client can authenticate us.
    pub fn verify(&self, resp: &DigestResponse, secret: &str) -> Result<Vec<u8>, SaslFailure> {
        let expected = response_value(self, resp, secret, "AUTHENTICATE");
        if !crypto::ct_eq(expected.as_bytes(), resp.response.as_bytes()) {
            return Err(SaslFailure::NotAuthorized);
        }
        let rspauth = response_value(self, resp, secret, "");
        Ok(format!("rspauth={rspauth}").into_bytes())
    }
}

/// RFC 2831 §2.1.2.1 `response-value` for `qop=auth`, with `a2_prefix` `AUTHENTICATE` for the
/// client's response and empty for the server's `rspauth`.
fn response_value(ex: &DigestMd5, r: &DigestResponse, secret: &str, a2_prefix: &str) -> String {
    let mut inner = Md5::new();
    inner.update(latin1_or_utf8(&r.username));
    inner.update(b":");
    inner.update(latin1_or_utf8(&r.realm));
    inner.update(b":");
    inner.update(latin1_or_utf8(secret));
    let mut a1 = inner.finalize().to_vec();
    a1.extend_from_slice(format!(":{}:{}", ex.nonce, r.cnonce).as_bytes());
    if let Some(authzid) = &r.authzid {
        a1.push(b':');
        a1.extend_from_slice(authzid.as_bytes());
    }
    let ha1 = hex::encode(Md5::digest(&a1));
    let ha2 = hex::encode(Md5::digest(
        format!("{a2_prefix}:{}", r.digest_uri).as_bytes(),
    ));
    let kd = format!("{ha1}:{}:{}:{}:auth:{ha2}", ex.nonce, r.nc, r.cnonce);
    hex::encode(Md5::digest(kd.as_bytes()))
}

/// RFC 2831 §2.1.2.1: with `charset=utf-8`, user name, realm and password are hashed in
/// ISO 8859-1 when every character fits it, and in UTF-8 otherwise.
fn latin1_or_utf8(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 0x100) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

/// Splits `name=value,name="quoted value",…` (RFC 2831 §7.1 `#rule` lists, quoted-string with
/// `\` escapes). None when malformed.
fn parse_directives(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| *c == ',' || c.is_ascii_whitespace())
        {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_ascii_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(char::is_ascii_whitespace) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(char::is_ascii_whitespace) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim_end().to_owned();
        }
        out.push((name, value));
        while chars.peek().is_some_and(char::is_ascii_whitespace) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2831 §4 example 1 (IMAP): user chris, password secret.
    fn rfc_exchange() -> DigestMd5 {
        DigestMd5::with_nonce("elwood.innosoft.com", "imap", "OA6MG9tEQGm2hh")
    }
    const RFC_RESPONSE: &str = "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",\
        nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",\
        digest-uri=\"imap/elwood.innosoft.com\",response=d388dad90d4bbd760a152321f2143af7,qop=auth";

    #[test]
    fn rfc2831_example_verifies_and_yields_its_rspauth() {
        let ex = rfc_exchange();
        let r = ex.parse_response(RFC_RESPONSE.as_bytes()).unwrap();
        assert_eq!(r.username, "chris");
        assert_eq!(
            ex.verify(&r, "secret").unwrap(),
            b"rspauth=ea40f60335c427b5527b84dbabcdfffd".to_vec()
        );
        assert_eq!(ex.verify(&r, "secreT"), Err(SaslFailure::NotAuthorized));
    }

    #[test]
    fn challenge_offers_the_router_realm() {
        let ex = DigestMd5::new(ROUTER_REALM, ROUTER_SERVICE).unwrap();
        let c = String::from_utf8(ex.challenge()).unwrap();
        assert!(c.starts_with("realm=\"jabberd-router\",nonce=\""), "{c}");
        assert!(c.ends_with("\",qop=\"auth\",charset=utf-8,algorithm=md5-sess"));
        let other = DigestMd5::new(ROUTER_REALM, ROUTER_SERVICE).unwrap();
        assert_ne!(ex.nonce, other.nonce, "nonces are fresh");
        assert_eq!(ex.nonce.len(), 32);
    }

    /// A client computation written from RFC 2831 §2.1.2.1 independently of `response_value`
    /// (one string pipeline, as a client such as jabberd2's gsasl builds it).
    fn client_response(
        user: &str,
        realm: &str,
        pass: &str,
        nonce: &str,
        cnonce: &str,
        uri: &str,
        authzid: Option<&str>,
    ) -> String {
        let h = |b: &[u8]| Md5::digest(b).to_vec();
        let hx = |b: &[u8]| hex::encode(Md5::digest(b));
        let mut a1 = h(format!("{user}:{realm}:{pass}").as_bytes());
        a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
        if let Some(z) = authzid {
            a1.extend_from_slice(format!(":{z}").as_bytes());
        }
        let resp = hx(format!(
            "{}:{nonce}:00000001:{cnonce}:auth:{}",
            hx(&a1),
            hx(format!("AUTHENTICATE:{uri}").as_bytes())
        )
        .as_bytes());
        let mut msg = format!(
            "username=\"{user}\",realm=\"{realm}\",nonce=\"{nonce}\",cnonce=\"{cnonce}\",\
             nc=00000001,qop=auth,digest-uri=\"{uri}\",response={resp},charset=utf-8"
        );
        if let Some(z) = authzid {
            msg.push_str(&format!(",authzid=\"{z}\""));
        }
        msg
    }

    #[test]
    fn jabberd2_style_client_authenticates() {
        let ex = DigestMd5::with_nonce(ROUTER_REALM, ROUTER_SERVICE, "n0nce");
        let msg = client_response(
            "jabberd",
            "jabberd-router",
            "router-secret",
            "n0nce",
            "c-n0nce",
            "jabberd-router/sm-host",
            None,
        );
        let r = ex.parse_response(msg.as_bytes()).unwrap();
        assert!(ex.verify(&r, "router-secret").is_ok());
        assert_eq!(
            ex.verify(&r, "router-secreT"),
            Err(SaslFailure::NotAuthorized)
        );
        let with_z = client_response(
            "jabberd",
            "jabberd-router",
            "router-secret",
            "n0nce",
            "c2",
            "jabberd-router/h",
            Some("jabberd"),
        );
        let r = ex.parse_response(with_z.as_bytes()).unwrap();
        assert_eq!(r.authzid.as_deref(), Some("jabberd"));
        assert!(ex.verify(&r, "router-secret").is_ok());
        // The client may leave the realm out; it is then empty in the hash.
        let no_realm = client_response(
            "jabberd",
            "",
            "router-secret",
            "n0nce",
            "c3",
            "jabberd-router/h",
            None,
        )
        .replace("realm=\"\",", "");
        let r = ex.parse_response(no_realm.as_bytes()).unwrap();
        assert!(ex.verify(&r, "router-secret").is_ok());
    }

    #[test]
    fn wrong_nonce_service_or_count_is_refused() {
        let ex = DigestMd5::with_nonce(ROUTER_REALM, ROUTER_SERVICE, "n0nce");
        let other_nonce = client_response("u", "r", "p", "stale", "c", "jabberd-router/h", None);
        assert_eq!(
            ex.parse_response(other_nonce.as_bytes()),
            Err(SaslFailure::NotAuthorized)
        );
        let imap = client_response("u", "r", "p", "n0nce", "c", "imap/h", None);
        assert_eq!(
            ex.parse_response(imap.as_bytes()),
            Err(SaslFailure::NotAuthorized)
        );
        let replay = client_response("u", "r", "p", "n0nce", "c", "jabberd-router/h", None)
            .replace("nc=00000001", "nc=00000002");
        assert_eq!(
            ex.parse_response(replay.as_bytes()),
            Err(SaslFailure::MalformedRequest)
        );
        let twice = format!("{RFC_RESPONSE},username=\"eve\"");
        assert_eq!(
            rfc_exchange().parse_response(twice.as_bytes()),
            Err(SaslFailure::MalformedRequest)
        );
        for bad in ["", "username", "username=\"unterminated", "a=b c=d"] {
            assert!(ex.parse_response(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn directives_parse_quotes_escapes_and_spaces() {
        let d = parse_directives(r#" a = "x\"y" , b=plain ,c="" "#).unwrap();
        assert_eq!(
            d,
            vec![
                ("a".into(), "x\"y".into()),
                ("b".into(), "plain".into()),
                ("c".into(), String::new())
            ]
        );
    }

    proptest::proptest! {
        /// Whatever a client sends, parsing answers (no panic, no hang) and never accepts a
        /// response that was not computed from the secret.
        #[test]
        fn arbitrary_responses_are_refused_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            text in "[a-z-]{1,10}=(\"[^\"]{0,20}\"|[a-z0-9]{0,32})(,[a-z-]{1,10}=(\"[^\"]{0,20}\"|[a-z0-9]{0,32})){0,10}",
        ) {
            let ex = DigestMd5::with_nonce(ROUTER_REALM, ROUTER_SERVICE, "n0nce");
            for msg in [bytes.as_slice(), text.as_bytes()] {
                if let Ok(r) = ex.parse_response(msg) {
                    proptest::prop_assert!(ex.verify(&r, "router-secret").is_err());
                }
            }
        }
    }

    #[test]
    fn latin1_is_used_when_it_fits() {
        assert_eq!(latin1_or_utf8("é"), vec![0xe9]);
        assert_eq!(latin1_or_utf8("€"), "€".as_bytes().to_vec());
    }
}
