//! PLAIN (RFC 4616) server side. Only offered over TLS (RFC 6120 §13.8.3) and verified by
//! re-deriving the stored SHA-256 SCRAM credential from the offered password, so accounts keep
//! a single credential format.

use zeroize::Zeroizing;

use super::creds::{Credentials, HashAlg, ScramCredential};
use super::failure::{CheckFailure, SaslFailure};
use super::session::{self, SaslConfig};

/// A parsed PLAIN message waiting for the account lookup.
pub(crate) struct PlainRequest {
    /// The authentication identity after SASLprep.
    pub(crate) username: String,
    /// Wiped on drop; never printed (see the `Debug` impl).
    password: Zeroizing<String>,
}

impl std::fmt::Debug for PlainRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Parses `[authzid] NUL authcid NUL passwd` and checks the authzid. Both authcid and password
/// must be non-empty (RFC 4616 §2 `1*SAFE`).
pub(crate) fn parse(msg: &[u8], cfg: &SaslConfig<'_>) -> Result<PlainRequest, SaslFailure> {
    let malformed = SaslFailure::MalformedRequest;
    let text = std::str::from_utf8(msg).map_err(|_| malformed)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed);
    };
    if authcid.is_empty() || password.is_empty() {
        return Err(malformed);
    }
    let username = session::prepare_username(authcid)?;
    if !authzid.is_empty() {
        session::check_authzid(authzid, &username, cfg.domain)?;
    }
    Ok(PlainRequest {
        username,
        password: Zeroizing::new(password.to_owned()),
    })
}

/// Checks the password against the account (or, for an unknown account, against a fake
/// credential whose result is discarded, so both cases cost one PBKDF2 run and look alike).
pub(crate) fn verify(
    req: PlainRequest,
    creds: Option<&Credentials>,
    cfg: &SaslConfig<'_>,
) -> Result<String, CheckFailure> {
    let alg = HashAlg::Sha256;
    let ok = match creds {
        Some(c) if !c.sha256.is_well_formed(alg) => {
            return Err(CheckFailure::Other(SaslFailure::TemporaryAuthFailure));
        }
        Some(c) => c.sha256.verify_password(alg, &req.password),
        None => {
            let fake = ScramCredential::fake(alg, &req.username, cfg.server_secret);
            // The result is meaningless; the call exists for its cost.
            let _ = fake.verify_password(alg, &req.password);
            false
        }
    };
    if ok {
        Ok(req.username.clone())
    } else {
        Err(CheckFailure::Mismatch)
    }
}
