//! Raw `[storage]` as written in the file, and its validation into `StorageConfig`: each
//! backend's keys only with that backend (a key of the other one is a mistake, not
//! something to ignore), the SQLite path resolved against `data_dir`, and for PostgreSQL a
//! `postgresql://` URL, a schema name that needs no quoting, and a pool of at least one
//! connection. Whether the database can be reached is found out at start (`rookery serve`
//! and `rookery check-config` do not connect).

use super::Cx;
use crate::enums::StorageBackend;
use crate::locate::KeyPath;
use crate::sections::{PostgresConfig, StorageConfig};
use crate::{ConfigError, DEFAULT_SQLITE_FILE};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStorage {
    backend: StorageBackend,
    path: Option<String>,
    url: Option<String>,
    schema: Option<String>,
    pool_size: Option<usize>,
}

impl Cx<'_> {
    pub(super) fn storage(
        &self,
        raw: &RawStorage,
        data_dir: &Path,
    ) -> Result<StorageConfig, ConfigError> {
        let k = KeyPath::root().key("storage");
        let path = self.path(
            data_dir,
            raw.path.as_deref().unwrap_or(DEFAULT_SQLITE_FILE),
            &k.key("path"),
        )?;
        let postgres = match raw.backend {
            StorageBackend::Postgres => {
                if raw.path.is_some() {
                    return Err(self.at(
                        &k.key("path"),
                        "\"path\" is the SQLite database file; with backend = \"postgres\" the database is given by \"url\"",
                    ));
                }
                Some(self.postgres(raw, &k)?)
            }
            other => {
                for (key, set) in [
                    ("url", raw.url.is_some()),
                    ("schema", raw.schema.is_some()),
                    ("pool_size", raw.pool_size.is_some()),
                ] {
                    if set {
                        return Err(self.at(
                            &k.key(key),
                            format!(
                                "\"{key}\" is only used with backend = \"postgres\" (backend is \"{other}\")"
                            ),
                        ));
                    }
                }
                None
            }
        };
        Ok(StorageConfig {
            backend: raw.backend,
            path,
            postgres,
        })
    }

    fn postgres(&self, raw: &RawStorage, k: &KeyPath) -> Result<PostgresConfig, ConfigError> {
        let Some(url) = raw.url.as_deref() else {
            return Err(self.at(
                &k.key("url"),
                "backend = \"postgres\" needs url = \"postgresql://user@host/database\"",
            ));
        };
        // The URL is not echoed back: it may hold a password.
        if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
            return Err(self.at(
                &k.key("url"),
                "must be a URL starting with \"postgresql://\" (postgresql://user[:password]@host[:port]/database)",
            ));
        }
        if url.chars().any(char::is_whitespace) {
            return Err(self.at(
                &k.key("url"),
                "must not contain spaces (percent-encode them as %20)",
            ));
        }
        let schema = raw
            .schema
            .clone()
            .unwrap_or_else(|| PostgresConfig::DEFAULT_SCHEMA.to_owned());
        check_schema_name(&schema).map_err(|m| self.at(&k.key("schema"), m))?;
        let pool_size = raw.pool_size.unwrap_or(PostgresConfig::DEFAULT_POOL_SIZE);
        if pool_size == 0 {
            return Err(self.at(&k.key("pool_size"), "must be at least 1"));
        }
        Ok(PostgresConfig {
            url: url.to_owned(),
            schema,
            pool_size,
        })
    }
}

/// Whether `name` is usable as `[storage] schema`: 1 to 63 characters (PostgreSQL's
/// identifier length), lowercase ASCII letters, digits and `_`, not starting with a digit,
/// and not `pg_`-prefixed (reserved for system schemas). So it never needs quoting, in SQL or
/// in the connection's `-c search_path=` option. Checked here so a bad name is reported with
/// its line, and again by rookery-store (which calls this) before it builds any SQL.
pub fn check_schema_name(name: &str) -> Result<(), String> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if name.is_empty() || name.len() > 63 || !first_ok || !rest_ok {
        return Err(format!(
            "invalid schema name \"{}\": use 1 to 63 lowercase letters, digits and '_', not starting with a digit",
            name.escape_debug()
        ));
    }
    if name.starts_with("pg_") {
        return Err(format!(
            "invalid schema name \"{name}\": names starting with \"pg_\" are reserved by PostgreSQL"
        ));
    }
    Ok(())
}
