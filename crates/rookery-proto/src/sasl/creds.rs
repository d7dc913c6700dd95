//! Stored SCRAM credentials: what the account store keeps instead of a password.
//!
//! rookery-store persists exactly the four fields of [`ScramCredential`] per hash (salt,
//! iteration count, StoredKey, ServerKey; RFC 5802 §3). They are enough to verify a SCRAM proof
//! and to authenticate the server to the client, but a stolen row cannot be replayed as a
//! password against this or any other server. PLAIN is verified by re-deriving the SHA-256
//! credential from the offered password ([`ScramCredential::verify_password`]), so no separate
//! password hash is ever needed.

use stringprep::saslprep;
use subtle::ConstantTimeEq;

use super::crypto;

/// Iteration count used for new credentials. RFC 7677 §4 asks for at least 4096 and notes that
/// more is better; 10,000 keeps a PLAIN login (which runs PBKDF2 on the server) in the low
/// milliseconds per hash.
pub const DEFAULT_ITERATIONS: u32 = 10_000;

/// Lowest iteration count [`ScramCredential::derive`] and [`Credentials::new`] accept (RFC 7677
/// §4's floor, which is also what the RFC test vectors use).
pub const MIN_ITERATIONS: u32 = 4096;

/// Length of the random salts generated for new credentials.
pub const SALT_LEN: usize = 16;

/// The hash a SCRAM credential was derived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
}

impl HashAlg {
    /// The hash's name as it appears in SCRAM mechanism names (`SCRAM-<name>`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha256 => "SHA-256",
        }
    }

    /// Output size in bytes; also the size of StoredKey, ServerKey and a ClientProof.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
        }
    }
}

/// Why credentials could not be derived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// SASLprep (RFC 4013) rejected the password, e.g. it contains control characters or
    /// unassigned code points, or it prepares to the empty string.
    #[error("password is not acceptable under SASLprep (RFC 4013)")]
    InvalidPassword,
    /// The iteration count is below [`MIN_ITERATIONS`].
    #[error("iteration count {0} is below the minimum of {MIN_ITERATIONS}")]
    TooFewIterations(u32),
    /// An empty salt would make equal passwords produce equal credentials across accounts.
    #[error("salt must not be empty")]
    EmptySalt,
    /// The operating system's random number generator failed.
    #[error("system randomness unavailable: {0}")]
    Random(getrandom::Error),
}

/// RFC 5802 §3 server-side credential: never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// Derives the credential for `password` (SASLprep'd first, RFC 5802 §2.2 `Normalize`):
    /// SaltedPassword = Hi(password, salt, i), StoredKey = H(HMAC(SaltedPassword, "Client Key")),
    /// ServerKey = HMAC(SaltedPassword, "Server Key").
    pub fn derive(
        alg: HashAlg,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, SaslError> {
        if iterations < MIN_ITERATIONS {
            return Err(SaslError::TooFewIterations(iterations));
        }
        if salt.is_empty() {
            return Err(SaslError::EmptySalt);
        }
        let prepared = prepare_password(password).ok_or(SaslError::InvalidPassword)?;
        Ok(Self::from_prepared(
            alg,
            prepared.as_bytes(),
            salt,
            iterations,
        ))
    }

    /// Derivation without the parameter policy, shared by `derive` and `verify_password`: the
    /// latter must keep working for rows written under an older, lower policy.
    fn from_prepared(alg: HashAlg, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = crypto::salted_password(alg, password, salt, iterations);
        let client_key = zeroize::Zeroizing::new(crypto::hmac(alg, &salted, b"Client Key"));
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: crypto::hash(alg, &client_key),
            server_key: crypto::hmac(alg, &salted, b"Server Key"),
        }
    }

    /// Whether `password` is the one this credential was derived from (for PLAIN). Runs the full
    /// PBKDF2 and compares both keys in constant time, so timing reveals nothing about how close
    /// a guess was.
    pub fn verify_password(&self, alg: HashAlg, password: &str) -> bool {
        let Some(prepared) = prepare_password(password) else {
            return false;
        };
        // PBKDF2 is undefined for zero rounds; a row like that is corrupt, never a match.
        if self.iterations == 0 {
            return false;
        }
        let candidate = Self::from_prepared(alg, prepared.as_bytes(), &self.salt, self.iterations);
        let stored = candidate.stored_key.ct_eq(&self.stored_key);
        let server = candidate.server_key.ct_eq(&self.server_key);
        bool::from(stored & server)
    }

    /// The stand-in for an account that does not exist: salt and keys are HMACs of the
    /// username under the server secret, so repeated attempts see the same salt (a fresh random
    /// one would give the absence away) while nobody without the secret can predict it. The
    /// keys match no password; the session additionally refuses the attempt outright.
    pub(crate) fn fake(alg: HashAlg, username: &str, server_secret: &[u8]) -> Self {
        let derive = |label: &str, len: usize| {
            let input = format!("rookery-sasl-fake\0{label}\0{}\0{username}", alg.name());
            let mut out = crypto::hmac(HashAlg::Sha256, server_secret, input.as_bytes());
            // SHA-256 output (32 bytes) covers every length asked for here.
            out.truncate(len);
            out
        };
        ScramCredential {
            salt: derive("salt", SALT_LEN),
            iterations: DEFAULT_ITERATIONS,
            stored_key: derive("stored-key", alg.output_len()),
            server_key: derive("server-key", alg.output_len()),
        }
    }

    /// Whether the key lengths fit `alg`; a mismatch means a corrupt or mislabelled store row.
    pub(crate) fn is_well_formed(&self, alg: HashAlg) -> bool {
        self.iterations > 0
            && !self.salt.is_empty()
            && self.stored_key.len() == alg.output_len()
            && self.server_key.len() == alg.output_len()
    }
}

/// SASLprep with the "stored strings" rules (unassigned code points refused), used for both
/// storing and checking so a password that could not be stored can never match. An input that
/// prepares to nothing (e.g. only soft hyphens) is refused as well.
fn prepare_password(password: &str) -> Option<zeroize::Zeroizing<String>> {
    let prepared = saslprep(password).ok()?;
    if prepared.is_empty() {
        return None;
    }
    Some(zeroize::Zeroizing::new(prepared.into_owned()))
}

/// One account's credentials, one per supported hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub sha1: ScramCredential,
    pub sha256: ScramCredential,
}

impl Credentials {
    /// Fresh credentials for `password` with independent random [`SALT_LEN`]-byte salts per
    /// hash, so the SHA-1 and SHA-256 rows cannot be correlated.
    pub fn new(password: &str, iterations: u32) -> Result<Self, SaslError> {
        let salt1 = crypto::random_bytes(SALT_LEN).map_err(SaslError::Random)?;
        let salt256 = crypto::random_bytes(SALT_LEN).map_err(SaslError::Random)?;
        Ok(Credentials {
            sha1: ScramCredential::derive(HashAlg::Sha1, password, &salt1, iterations)?,
            sha256: ScramCredential::derive(HashAlg::Sha256, password, &salt256, iterations)?,
        })
    }

    /// The credential for one hash.
    pub fn get(&self, alg: HashAlg) -> &ScramCredential {
        match alg {
            HashAlg::Sha1 => &self.sha1,
            HashAlg::Sha256 => &self.sha256,
        }
    }

    /// PLAIN verification: checks `password` against the SHA-256 credential.
    pub fn verify_password(&self, password: &str) -> bool {
        self.sha256.verify_password(HashAlg::Sha256, password)
    }
}
