//! Loading a certificate chain and its private key from PEM files into a rustls
//! `CertifiedKey`. Operator-provided files and the generated self-signed ones go through this
//! same path, so both get the same checks (PEM syntax, key format, key ↔ certificate match) and
//! errors that name the offending file.

use crate::TlsError;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{Error as RustlsError, InconsistentKeys};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// Reads `path` fully, mapping failure to an error naming it.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file, leaf first (as the file lists them).
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(path, &e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// The first private key in a PEM file: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or
/// SEC1 (`EC PRIVATE KEY`).
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey {
            path: path.to_path_buf(),
            hint: if contains(&bytes, b"ENCRYPTED PRIVATE KEY") {
                // The server starts unattended, so there is nobody to type a passphrase.
                "the key is encrypted; store it unencrypted, e.g. `openssl pkey -in KEY -out KEY.plain`"
            } else {
                "expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block"
            },
        }),
        Err(e) => Err(bad_pem(path, &e)),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn bad_pem(path: &Path, e: &pem::Error) -> TlsError {
    TlsError::BadPem {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Loads `cert_path` and `key_path` and checks that the key belongs to the leaf certificate.
pub(crate) fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert_path)?;
    let key_der = private_key(key_path)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::BadKey {
            path: key_path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // The key type cannot report its public key, so the match cannot be checked here; a
        // wrong key would still fail every handshake, which is how rustls itself treats it.
        Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            })
        }
        Err(e) => Err(TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}
