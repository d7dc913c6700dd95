//! Self-signed certificates for hosts configured without `cert`/`key`, so that `rookery serve`
//! works with zero configuration and STARTTLS is still available (and required) from the
//! first start. The certificate is generated once into `data_dir/certs/<domain>.crt` and
//! `<domain>.key` and reused afterwards: clients that pinned it on first use keep working
//! across restarts. It is replaced only when it is about to expire.

use crate::TlsError;
use crate::pem::load_pair;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Validity of a generated certificate.
const VALIDITY_DAYS: i64 = 3650;
/// Start of validity is backdated so that peers whose clock is slightly behind accept it.
const BACKDATE_DAYS: i64 = 1;
/// A reused certificate expiring sooner than this is regenerated at start-up.
const RENEW_BEFORE_SECS: i64 = 30 * 24 * 3600;

/// Where the generated certificate and key for `domain` live.
pub(crate) fn paths(domain: &str, certs_dir: &Path) -> (PathBuf, PathBuf) {
    (
        certs_dir.join(format!("{domain}.crt")),
        certs_dir.join(format!("{domain}.key")),
    )
}

/// Loads the generated certificate for `domain` from `certs_dir`, generating it first if it is
/// missing (or only half there after an interrupted start) or close to expiry.
pub(crate) fn load_or_generate(
    domain: &str,
    certs_dir: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let (cert_path, key_path) = paths(domain, certs_dir);
    if cert_path.exists() && key_path.exists() {
        // A damaged file is reported rather than silently replaced: the operator may be
        // relying on clients having pinned this certificate.
        let certified = load_pair(&cert_path, &key_path, provider)?;
        match seconds_left(&certified) {
            Some(left) if left < RENEW_BEFORE_SECS => tracing::warn!(
                cert = %cert_path.display(),
                "self-signed certificate for {domain} expires soon; generating a new one"
            ),
            _ => return Ok(certified),
        }
    }
    generate(domain, &cert_path, &key_path)?;
    tracing::info!(
        cert = %cert_path.display(),
        "generated a self-signed certificate for {domain}; clients will not trust it unless \
         configured to (set cert/key in [[host]] for a CA-issued one)"
    );
    load_pair(&cert_path, &key_path, provider)
}

/// Seconds until the leaf certificate expires (negative when expired); `None` when it cannot
/// be parsed, in which case it is kept and rustls decides.
fn seconds_left(certified: &CertifiedKey) -> Option<i64> {
    let leaf = certified.cert.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(cert.validity().not_after.timestamp() - i64::try_from(now).ok()?)
}

fn generate(domain: &str, cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let gen_err = |e: rcgen::Error| TlsError::Generate {
        domain: domain.to_owned(),
        detail: e.to_string(),
    };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
    // `*.domain` covers components such as conference.domain and upload.domain, which are
    // served from the same process and fall back to the parent host's certificate.
    let mut params =
        CertificateParams::new(vec![domain.to_owned(), format!("*.{domain}")]).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, domain);
    params.distinguished_name = dn;
    // clientAuth as well as serverAuth: the same certificate authenticates this server when
    // it connects out to other servers (s2s).
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(BACKDATE_DAYS);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
    let cert = params.self_signed(&key).map_err(gen_err)?;

    if let Some(dir) = cert_path.parent() {
        create_private_dir(dir)?;
    }
    // Key first: a crash in between leaves a key without certificate, which the next start
    // treats as "not generated yet".
    write_atomically(key_path, key.serialize_pem().as_bytes(), true)?;
    write_atomically(cert_path, cert.pem().as_bytes(), false)
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes via a temporary file and rename, so a reader never sees a half-written file. The
/// key is created with mode 0600 from the start (not chmod-ed afterwards), so it is never
/// readable by others even briefly.
fn write_atomically(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    let write_err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_err(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(write_err)?;
    file.write_all(contents).map_err(write_err)?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(write_err)
}
