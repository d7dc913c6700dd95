//! Account operations shared by the admin CLI, in-band registration and password change: JID
//! normalisation, SCRAM credential derivation (off the async runtime: PBKDF2 is deliberately
//! slow), and the store calls. Passwords never reach storage; only SCRAM keys do.

use rookery_proto::sasl::Credentials;
use rookery_proto::stanza::BareJid;
use rookery_store::{StoreError, Stores};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    #[error("invalid JID {0:?}: {1}")]
    InvalidJid(String, String),
    #[error("{0} is not a local host of this server")]
    UnknownHost(String),
    #[error("account {0} already exists")]
    Exists(String),
    #[error("account {0} does not exist")]
    NotFound(String),
    #[error("password rejected: {0}")]
    BadPassword(String),
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

/// Parses and normalises `user@domain` (nodeprep + nameprep, RFC 6122 as the jid crate does).
pub fn parse_account(jid: &str) -> Result<BareJid, AccountError> {
    let bare =
        BareJid::new(jid).map_err(|e| AccountError::InvalidJid(jid.into(), e.to_string()))?;
    if bare.node().is_none() {
        return Err(AccountError::InvalidJid(
            jid.into(),
            "an account needs a user part (user@domain)".into(),
        ));
    }
    Ok(bare)
}

fn parts(bare: &BareJid) -> (&str, &str) {
    (
        bare.node().map(|n| n.as_str()).unwrap_or_default(),
        bare.domain().as_str(),
    )
}

/// The password rule for registration and in-band password change
/// (`[registration] min_password_len`); the admin CLI is not bound by it. `Err` is the text to
/// show the user.
pub fn check_password_policy(
    registration: &rookery_config::RegistrationConfig,
    password: &str,
) -> Result<(), String> {
    let min = registration.min_password_len;
    if password.chars().count() < min {
        return Err(format!("password shorter than {min} characters"));
    }
    Ok(())
}

/// Derives SCRAM credentials on the blocking pool.
pub async fn derive(password: &str, iterations: u32) -> Result<Credentials, AccountError> {
    let pw = password.to_owned();
    tokio::task::spawn_blocking(move || Credentials::new(&pw, iterations))
        .await
        .map_err(|e| AccountError::BadPassword(format!("derivation task failed: {e}")))?
        .map_err(|e| AccountError::BadPassword(e.to_string()))
}

pub async fn create(
    stores: &Stores,
    bare: &BareJid,
    password: &str,
    iterations: u32,
) -> Result<(), AccountError> {
    let creds = derive(password, iterations).await?;
    let (user, domain) = parts(bare);
    match stores.accounts.create(user, domain, &creds).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(AccountError::Exists(bare.to_string())),
        Err(e) => Err(e.into()),
    }
}

pub async fn set_password(
    stores: &Stores,
    bare: &BareJid,
    password: &str,
    iterations: u32,
) -> Result<(), AccountError> {
    let creds = derive(password, iterations).await?;
    let (user, domain) = parts(bare);
    match stores.accounts.set_credentials(user, domain, &creds).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => Err(AccountError::NotFound(bare.to_string())),
        Err(e) => Err(e.into()),
    }
}

pub async fn delete(stores: &Stores, bare: &BareJid) -> Result<(), AccountError> {
    let (user, domain) = parts(bare);
    match stores.accounts.delete(user, domain).await {
        Ok(()) => {
            // Its stream-management records and dead letters go with it (the other stores'
            // rows cascade from the account; these are keyed by session).
            stores.sm.remove_account(user, domain).await?;
            Ok(())
        }
        Err(StoreError::NotFound) => Err(AccountError::NotFound(bare.to_string())),
        Err(e) => Err(e.into()),
    }
}
