//! SCRAM (RFC 5802, RFC 7677) server side: message parsing, channel-binding policy, the
//! server-first-message and proof verification. [`super::session`] sequences these calls.
//!
//! Every check that depends on the account (the proof) fails with the same `not-authorized` as
//! every check that does not depend on it but happens at the same step (nonce, channel-binding
//! data), so a client learns nothing about which part was wrong.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::creds::{HashAlg, ScramCredential};
use super::crypto;
use super::failure::{CheckFailure, Refusal, SaslFailure};
use super::mechanism::{self, CbType, Mechanism};
use super::session::SaslConfig;

/// Random bytes in the server's nonce part. RFC 5802 only asks for "fresh"; 24 bytes (192 bits,
/// above the 18 the design requires) base64-encode to 32 characters without padding.
pub(crate) const SERVER_NONCE_BYTES: usize = 24;

/// The gs2-cbind-flag of the client-first-message (RFC 5802 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CbFlag {
    /// `n`: the client does not support channel binding.
    NotSupported,
    /// `y`: the client supports it but believes the server does not.
    ClientOnly,
    /// `p=<name>`: the client binds; `None` when the name is not one we know.
    Bound(Option<CbType>),
}

/// A parsed client-first-message.
#[derive(Debug)]
struct ClientFirst<'a> {
    gs2_header: &'a str,
    flag: CbFlag,
    authzid: Option<String>,
    /// The decoded `n=` saslname before SASLprep.
    username: String,
    bare: &'a str,
    nonce: &'a str,
}

/// State after the client-first-message, waiting for the account lookup.
#[derive(Debug)]
pub(crate) struct AwaitingCredentials {
    alg: HashAlg,
    pub(crate) username: String,
    gs2_header: String,
    cb_data: Vec<u8>,
    client_first_bare: String,
    client_nonce: String,
}

/// State after the server-first-message, waiting for the client-final-message.
#[derive(Debug)]
pub(crate) struct AwaitingFinal {
    alg: HashAlg,
    username: String,
    gs2_header: String,
    cb_data: Vec<u8>,
    nonce: String,
    /// `client-first-message-bare "," server-first-message`, the first two thirds of
    /// AuthMessage.
    auth_prefix: String,
    credential: ScramCredential,
    /// False when the account does not exist; the exchange then runs to completion on a fake
    /// credential and fails at the proof, like a wrong password.
    known: bool,
}

/// Handles the client-first-message: parses it, applies the authzid and channel-binding rules,
/// and returns the state that waits for the account's credentials.
pub(crate) fn client_first(
    mech: Mechanism,
    alg: HashAlg,
    msg: &[u8],
    cfg: &SaslConfig<'_>,
) -> Result<AwaitingCredentials, Refusal> {
    let text = std::str::from_utf8(msg).map_err(|_| SaslFailure::MalformedRequest)?;
    let first = parse_client_first(text)?;
    let username = super::session::prepare_username(&first.username)?;
    if let Some(authzid) = &first.authzid {
        super::session::check_authzid(authzid, &username, cfg.domain)?;
    }
    let cb_data = binding_data(mech, first.flag, cfg)?;
    Ok(AwaitingCredentials {
        alg,
        username,
        gs2_header: first.gs2_header.to_owned(),
        cb_data,
        client_first_bare: first.bare.to_owned(),
        client_nonce: first.nonce.to_owned(),
    })
}

/// RFC 5802 §6 channel-binding negotiation rules; returns the data the client must have bound
/// to (empty without binding). Every refusal here happens before any credential is looked at,
/// and says why in `<text/>` so the client can move on to another mechanism at once.
fn binding_data(mech: Mechanism, flag: CbFlag, cfg: &SaslConfig<'_>) -> Result<Vec<u8>, Refusal> {
    let malformed = |why: &str| Refusal::with_text(SaslFailure::MalformedRequest, why);
    match (mech.is_plus(), flag) {
        // Only a type we both advertised (XEP-0440) and have data for on this connection. The
        // client's name is not echoed back: the text lists what we offer instead.
        (true, CbFlag::Bound(cb)) => cb
            .and_then(|cb| cfg.bindings.data(cb))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                malformed(&format!(
                    "channel-binding type not offered on this connection; offered (XEP-0440): {}",
                    offered_types(cfg)
                ))
            }),
        // A -PLUS mechanism without binding, or binding with a plain SCRAM mechanism, is a
        // contradiction in the client's own message.
        (true, _) => Err(malformed(
            "a -PLUS mechanism needs the p= channel-binding flag",
        )),
        (false, CbFlag::Bound(_)) => Err(malformed(
            "the p= channel-binding flag needs a -PLUS mechanism",
        )),
        (false, CbFlag::NotSupported) => Ok(Vec::new()),
        // `y` says "I could bind but you did not offer it". If we did offer a -PLUS mechanism,
        // someone removed it from the list on the way: a downgrade attack (RFC 5802 §6). Still
        // refused after a failed -PLUS attempt on the same stream: an attacker in the middle
        // could send that failing attempt itself. malformed-request rather than not-authorized:
        // nothing was wrong with a credential, and a client that reads not-authorized as
        // "wrong password" would stop instead of trying its next mechanism (docs/decisions/0008).
        (false, CbFlag::ClientOnly) => {
            if cfg.advertised.iter().any(|m| m.is_plus()) {
                Err(malformed(&format!(
                    "channel binding is offered on this connection ({}), so the 'y' flag \
                         is refused as a possible downgrade (RFC 5802 section 6)",
                    offered_types(cfg)
                )))
            } else {
                Ok(Vec::new())
            }
        }
    }
}

/// The XEP-0440 types of this connection, for refusal texts.
fn offered_types(cfg: &SaslConfig<'_>) -> String {
    let names: Vec<&str> = mechanism::channel_binding_types(cfg.bindings)
        .into_iter()
        .map(CbType::name)
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl AwaitingCredentials {
    /// Builds the server-first-message from the account's credential (or a fake one for an
    /// unknown account, with `known = false`). `server_nonce` must be fresh and printable;
    /// `ssdp` adds the XEP-0474 attribute.
    pub(crate) fn server_first(
        self,
        credential: ScramCredential,
        known: bool,
        server_nonce: &str,
        ssdp: bool,
        cfg: &SaslConfig<'_>,
    ) -> (AwaitingFinal, Vec<u8>) {
        let nonce = format!("{}{}", self.client_nonce, server_nonce);
        let mut server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        if ssdp {
            let cb_types = mechanism::channel_binding_types(cfg.bindings);
            let h = mechanism::downgrade_protection_hash(self.alg, cfg.advertised, &cb_types);
            server_first.push_str(",h=");
            server_first.push_str(&h);
        }
        let auth_prefix = format!("{},{}", self.client_first_bare, server_first);
        let next = AwaitingFinal {
            alg: self.alg,
            username: self.username,
            gs2_header: self.gs2_header,
            cb_data: self.cb_data,
            nonce,
            auth_prefix,
            credential,
            known,
        };
        (next, server_first.into_bytes())
    }
}

impl AwaitingFinal {
    /// Verifies the client-final-message. On success returns the username and the
    /// server-final-message (`v=ServerSignature`). A message that parses is always checked in
    /// full and fails as one [`CheckFailure::Mismatch`], whatever part was wrong.
    pub(crate) fn client_final(self, msg: &[u8]) -> Result<(String, Vec<u8>), CheckFailure> {
        let text = std::str::from_utf8(msg).map_err(|_| SaslFailure::MalformedRequest)?;
        // The proof is the last attribute and covers everything before it.
        let (without_proof, proof_b64) = text
            .rsplit_once(",p=")
            .ok_or(SaslFailure::MalformedRequest)?;
        let proof = STANDARD
            .decode(proof_b64)
            .map_err(|_| SaslFailure::MalformedRequest)?;
        if proof.len() != self.alg.output_len() {
            return Err(SaslFailure::MalformedRequest.into());
        }
        let mut attrs = without_proof.split(',');
        let cb_attr = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(SaslFailure::MalformedRequest)?;
        let nonce_attr = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(SaslFailure::MalformedRequest)?;
        // Unknown optional extensions are ignored (RFC 5802 §5.1); the proof still covers them.
        for ext in attrs {
            parse_extension(ext)?;
        }

        // c= must carry the same gs2 header as the first message plus this connection's
        // binding data; the header repeat stops a MITM from flipping p/y/n in flight.
        let mut expected_cb = self.gs2_header.clone().into_bytes();
        expected_cb.extend_from_slice(&self.cb_data);
        let cb_ok = crypto::ct_eq(cb_attr.as_bytes(), STANDARD.encode(&expected_cb).as_bytes());
        let nonce_ok = crypto::ct_eq(nonce_attr.as_bytes(), self.nonce.as_bytes());

        let auth_message = format!("{},{}", self.auth_prefix, without_proof);
        let cred = &self.credential;
        let client_signature = crypto::hmac(self.alg, &cred.stored_key, auth_message.as_bytes());
        let client_key: Zeroizing<Vec<u8>> = Zeroizing::new(
            proof
                .iter()
                .zip(&client_signature)
                .map(|(p, s)| p ^ s)
                .collect(),
        );
        let proof_ok = crypto::ct_eq(&crypto::hash(self.alg, &client_key), &cred.stored_key);

        if cb_ok && nonce_ok && proof_ok && self.known {
            let server_signature =
                crypto::hmac(self.alg, &cred.server_key, auth_message.as_bytes());
            let server_final = format!("v={}", STANDARD.encode(server_signature));
            Ok((self.username, server_final.into_bytes()))
        } else {
            Err(CheckFailure::Mismatch)
        }
    }
}

/// Parses `gs2-header client-first-message-bare` strictly per the RFC 5802 §7 grammar.
fn parse_client_first(text: &str) -> Result<ClientFirst<'_>, SaslFailure> {
    let malformed = SaslFailure::MalformedRequest;
    // gs2-cbind-flag "," [authzid] ","
    let (flag_str, rest) = text.split_once(',').ok_or(malformed)?;
    let flag = match flag_str {
        "n" => CbFlag::NotSupported,
        "y" => CbFlag::ClientOnly,
        _ => {
            let name = flag_str.strip_prefix("p=").ok_or(malformed)?;
            if !is_cb_name(name) {
                return Err(malformed);
            }
            CbFlag::Bound(CbType::from_name(name))
        }
    };
    let (authzid_str, bare) = rest.split_once(',').ok_or(malformed)?;
    let authzid = if authzid_str.is_empty() {
        None
    } else {
        let raw = authzid_str.strip_prefix("a=").ok_or(malformed)?;
        Some(decode_saslname(raw)?)
    };
    let gs2_header = &text[..text.len() - bare.len()];

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    let mut attrs = bare.split(',');
    let user_attr = attrs.next().ok_or(malformed)?;
    // "m=" is reserved for mandatory extensions, none of which we implement: RFC 5802 §5.1
    // requires failing rather than ignoring it.
    let raw_user = user_attr.strip_prefix("n=").ok_or(malformed)?;
    let username = decode_saslname(raw_user)?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(malformed)?;
    if nonce.is_empty() || !nonce.bytes().all(is_printable) {
        return Err(malformed);
    }
    for ext in attrs {
        parse_extension(ext)?;
    }
    Ok(ClientFirst {
        gs2_header,
        flag,
        authzid,
        username,
        bare,
        nonce,
    })
}

/// An optional extension `attr-val = ALPHA "=" value`. `m` is refused wherever it appears
/// because it announces a mandatory extension we cannot honour.
fn parse_extension(ext: &str) -> Result<(), SaslFailure> {
    let bytes = ext.as_bytes();
    match bytes {
        [b'm', b'=', ..] => Err(SaslFailure::MalformedRequest),
        [name, b'=', value @ ..]
            if name.is_ascii_alphabetic() && !value.is_empty() && !value.contains(&0) =>
        {
            Ok(())
        }
        _ => Err(SaslFailure::MalformedRequest),
    }
}

/// Decodes a saslname (RFC 5802 §7): `,` and `=` only as `=2C` and `=3D`; any other `=` and any
/// NUL are malformed, and the name must not be empty.
fn decode_saslname(raw: &str) -> Result<String, SaslFailure> {
    let malformed = SaslFailure::MalformedRequest;
    if raw.is_empty() || raw.contains('\0') {
        return Err(malformed);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let escape = rest.get(pos..pos + 3).ok_or(malformed)?;
        out.push(match escape {
            "=2C" => ',',
            "=3D" => '=',
            _ => return Err(malformed),
        });
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 5802 `printable`: %x21-7E except ",".
fn is_printable(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b','
}

/// RFC 5802 `cb-name = 1*(ALPHA / DIGIT / "." / "-")`.
fn is_cb_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn saslname_escapes() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Ok("a,b=c"));
        assert_eq!(decode_saslname("=3D=3D").as_deref(), Ok("=="));
        for bad in ["", "a=", "a=2", "a=2c", "a=3d", "a=41", "a=ZZb", "a\0b"] {
            assert_eq!(
                decode_saslname(bad),
                Err(SaslFailure::MalformedRequest),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn client_first_grammar() {
        let f = parse_client_first("n,,n=user,r=abc").unwrap();
        assert_eq!(f.flag, CbFlag::NotSupported);
        assert_eq!(f.gs2_header, "n,,");
        assert_eq!(f.bare, "n=user,r=abc");
        assert_eq!(f.nonce, "abc");
        assert_eq!(f.authzid, None);

        let f = parse_client_first("p=tls-exporter,a=u=2Cx@example.com,n=u,r=x,e=ext").unwrap();
        assert_eq!(f.flag, CbFlag::Bound(Some(CbType::TlsExporter)));
        assert_eq!(f.gs2_header, "p=tls-exporter,a=u=2Cx@example.com,");
        assert_eq!(f.authzid.as_deref(), Some("u,x@example.com"));

        let f = parse_client_first("p=tls-unique,,n=u,r=x").unwrap();
        assert_eq!(f.flag, CbFlag::Bound(None));

        for bad in [
            "",
            "n",
            "n,",
            "n,,",
            "x,,n=u,r=x",
            "p=,,n=u,r=x",
            "p=tls_exporter,,n=u,r=x",
            "n,u,n=u,r=x",
            "n,,m=ext,n=u,r=x",
            "n,,n=u",
            "n,,n=u,r=",
            "n,,n=u,r=a b",
            "n,,r=x,n=u",
            "n,,n=u,r=x,",
            "n,,n=u,r=x,m=1",
            "n,,n=u,r=x,1=1",
            "n,,n=,r=x",
            "n,,n=a=b,r=x",
        ] {
            assert_eq!(
                parse_client_first(bad).map(|_| ()),
                Err(SaslFailure::MalformedRequest),
                "{bad:?}"
            );
        }
    }
}
