//! Stored SCRAM credentials: what the account store keeps instead of a password.

/// The hash a SCRAM credential was derived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
}

/// RFC 5802 §3 server-side credential: never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// One account's credentials, one per supported hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub sha1: ScramCredential,
    pub sha256: ScramCredential,
}
