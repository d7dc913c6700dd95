//! `TlsError`: why certificates could not be loaded or generated. The `rookery` binary prints
//! it at start-up and exits before binding, so every variant names the file (or domain) and
//! what is wrong with it.

use std::io;
use std::path::PathBuf;

/// A certificate store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `CertStore::load` was given no hosts.
    #[error("no hosts: at least one domain is needed to serve TLS")]
    NoHosts,

    /// A host entry is unusable as given (bad domain, duplicate, cert without key).
    #[error("host \"{domain}\": {reason}")]
    InvalidHost {
        /// The domain as given.
        domain: String,
        /// What is wrong.
        reason: String,
    },

    /// A certificate or key file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A generated certificate or key could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// The file (or directory).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The file is not well-formed PEM.
    #[error("{}: malformed PEM: {detail}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        detail: String,
    },

    /// The certificate file holds no certificate.
    #[error("{}: no certificate in file (expected a PEM \"BEGIN CERTIFICATE\" block)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },

    /// The key file holds no usable private key.
    #[error("{}: no private key in file ({hint})", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
        /// What was expected, or why what is there cannot be used.
        hint: &'static str,
    },

    /// The certificate cannot be parsed or used.
    #[error("{}: invalid certificate: {detail}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// The private key cannot be parsed or its algorithm is not supported.
    #[error("{}: unusable private key: {detail}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// The private key belongs to a different certificate.
    #[error("{}: private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },

    /// A self-signed certificate could not be generated.
    #[error("cannot generate a self-signed certificate for \"{domain}\": {detail}")]
    Generate {
        /// The domain.
        domain: String,
        /// What went wrong.
        detail: String,
    },

    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}
