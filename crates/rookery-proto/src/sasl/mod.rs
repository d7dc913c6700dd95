//! SASL authentication, server side, sans-IO: SCRAM-SHA-1, SCRAM-SHA-256 (with and without
//! channel binding, RFC 5802 / RFC 7677 / RFC 9266 / RFC 5929) and PLAIN (RFC 4616).
//!
//! Where it sits: c2s negotiation in rookery-net advertises [`advertised_mechanisms`] and
//! [`channel_binding_types`] (XEP-0440), receives `<auth/>`, and drives a [`SaslSession`] with
//! the base64-decoded payloads; the machine asks for the account's [`Credentials`] when it
//! needs them, and the caller looks them up in rookery-store. The store keeps nothing but the
//! salt, iteration count, StoredKey and ServerKey per hash, so neither a database leak nor this
//! code ever handles a stored password.
//!
//! SCRAM server-first-messages carry the XEP-0474 downgrade-protection attribute `h`
//! ([`downgrade_protection_hash`]), which signs the advertised mechanism and channel-binding
//! lists into the exchange.
//!
//! [`digest_md5`] is the exception: DIGEST-MD5 (RFC 2831, historic) exists only for jabberd2
//! components on the router listener, which need the shared secret in plain text and speak
//! nothing else; client streams never offer it.

pub mod creds;
mod crypto;
pub mod digest_md5;
mod failure;
mod mechanism;
mod plain;
mod scram;
mod session;

#[cfg(test)]
mod tests;

pub use creds::{
    Credentials, DEFAULT_ITERATIONS, HashAlg, MIN_ITERATIONS, SALT_LEN, SaslError, ScramCredential,
};
pub use failure::{MAX_MESSAGE_LEN, SaslFailure, decode_b64_payload, encode_b64_payload};
pub use mechanism::{
    CbType, ChannelBindings, Mechanism, advertised_mechanisms, channel_binding_types,
    downgrade_protection_hash,
};
pub use session::{SaslConfig, SaslSession, Step};
