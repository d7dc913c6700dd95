//! The handful of primitives SCRAM and PLAIN need (H, HMAC, Hi = PBKDF2, randomness), dispatched
//! on [`HashAlg`] so the mechanisms above stay free of generic parameters. Everything returns
//! owned byte vectors: the sizes involved are tiny and this keeps call sites readable.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::creds::HashAlg;

/// H(data) from RFC 5802 §2.2.
pub(crate) fn hash(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    match alg {
        HashAlg::Sha1 => Sha1::digest(data).to_vec(),
        HashAlg::Sha256 => Sha256::digest(data).to_vec(),
    }
}

/// HMAC(key, data) from RFC 5802 §2.2.
pub(crate) fn hmac(alg: HashAlg, key: &[u8], data: &[u8]) -> Vec<u8> {
    match alg {
        HashAlg::Sha1 => hmac_with::<Hmac<Sha1>>(key, data),
        HashAlg::Sha256 => hmac_with::<Hmac<Sha256>>(key, data),
    }
}

fn hmac_with<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // Invariant: HMAC accepts keys of any length (long keys are hashed, short ones padded), so
    // `new_from_slice` cannot fail for the Hmac<_> types this is instantiated with.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Hi(password, salt, i) from RFC 5802 §2.2, which is PBKDF2 with HMAC-H and dkLen = output size.
/// SaltedPassword is password-equivalent, so it is wiped when dropped.
pub(crate) fn salted_password(
    alg: HashAlg,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; alg.output_len()]);
    match alg {
        HashAlg::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
        HashAlg::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
    }
    out
}

/// Constant-time equality for secrets (proofs, keys, channel-binding data). Different lengths
/// compare unequal; lengths themselves are public in every use here.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// `len` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes(len: usize) -> Result<Vec<u8>, getrandom::Error> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}
