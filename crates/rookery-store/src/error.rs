//! rookery-store: the one error type every storage trait returns.
//!
//! Backend-neutral on purpose: callers in rookery-mods match on `Conflict` / `NotFound` /
//! `Limit` to pick an XMPP error condition, and treat `Backend` as an internal server error.
//! Driver errors (rusqlite, tokio-postgres) are flattened into `Backend` with a
//! short description of what was being done, so no driver type leaks into the public API.

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The thing being created already exists (e.g. an account with that name).
    #[error("already exists")]
    Conflict,
    /// The thing being changed does not exist. Also returned by every write that names an
    /// account which does not exist: per-account data cannot outlive (or predate) its account.
    #[error("not found")]
    NotFound,
    /// A per-account quota was reached (e.g. the offline message limit).
    #[error("storage limit reached")]
    Limit,
    /// The backend failed; the text says what was being attempted and the driver's message.
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Builds a `Backend` error as "{context}: {cause}".
    pub(crate) fn backend(context: &str, cause: impl std::fmt::Display) -> Self {
        StoreError::Backend(format!("{context}: {cause}"))
    }
}
