//! SASL mechanisms, server side, sans-IO (filled in by the SASL work).
pub mod creds;
pub use creds::{Credentials, HashAlg, ScramCredential};
