//! `[modules.<name>]`: each feature module's own settings, and `[[host]] modules_disabled`.
//!
//! The configuration crate cannot know the modules' keys (they live with the modules, in
//! rookery-mods or further out), so it keeps the text and lets each module deserialize its
//! own table when it starts (`Config::module_config`). Errors still name file, line, column
//! and key: the table is read from the same spanned document as the rest of the file, so a
//! serde error inside `[modules.ping]` is located exactly like one inside `[c2s]`.

use crate::Config;
use crate::error::{ConfigError, reword};
use crate::locate::{KeyPath, line_col, path_at, span_of};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Arc;
use toml::Spanned;
use toml::de::{DeTable, DeValue, Deserializer};

/// The text the configuration came from, kept for module sections and located errors.
/// Its `Debug` shows neither the text nor the module tables: they may hold secrets.
#[derive(Clone, PartialEq, Default)]
pub struct ModulesConfig {
    /// The file and its text; `None` in zero-config mode (every module at its defaults).
    pub(crate) source: Option<(PathBuf, Arc<str>)>,
    /// The names under `[modules]`, in file order.
    pub(crate) names: Vec<String>,
}

impl std::fmt::Debug for ModulesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModulesConfig")
            .field("file", &self.source.as_ref().map(|(file, _)| file))
            .field("names", &self.names)
            .finish()
    }
}

impl ModulesConfig {
    pub(crate) fn new(file: PathBuf, text: &str, names: Vec<String>) -> ModulesConfig {
        ModulesConfig {
            source: Some((file, Arc::from(text))),
            names,
        }
    }
}

/// Parses `"host[0].modules_disabled[1]"` into a key path (only what this crate prints).
fn parse_path(key: &str) -> KeyPath {
    let mut path = KeyPath::root();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        path = path.key(name);
        while let Some((idx, after)) = rest.split_once(']') {
            if let Ok(i) = idx.parse() {
                path = path.index(i);
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    path
}

impl Config {
    /// The module names that have a `[modules.<name>]` table.
    pub fn module_sections(&self) -> &[String] {
        &self.modules.names
    }

    /// Deserializes `[modules.<name>]` into the module's settings type; absent (or zero-config)
    /// = `T::default()`. Unknown keys are refused if `T` says `deny_unknown_fields`.
    pub fn module_config<T: DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<T, ConfigError> {
        let Some((file, text)) = &self.modules.source else {
            return Ok(T::default());
        };
        let doc = DeTable::parse(text)
            .map_err(|e| ConfigError::whole_file(file.clone(), e.to_string()))?;
        let table = match doc.get_ref().get("modules").map(Spanned::get_ref) {
            Some(DeValue::Table(t)) => t.get(name),
            _ => None,
        };
        let Some(value) = table else {
            return Ok(T::default());
        };
        let DeValue::Table(t) = value.get_ref() else {
            return Err(self.located_error(&format!("modules.{name}"), "must be a table"));
        };
        let sub = Spanned::new(value.span(), t.clone());
        T::deserialize(Deserializer::from(sub)).map_err(|e| {
            let r = reword(e.message());
            let (pos, mut path) = match e.span() {
                Some(span) => (
                    Some(line_col(text, span.start)),
                    path_at(&doc, span.start).unwrap_or_default(),
                ),
                None => (None, parse_path(&format!("modules.{name}"))),
            };
            if let Some(missing) = &r.missing_key {
                path = path.key(missing);
            }
            ConfigError {
                file: file.clone(),
                line: pos.map(|p| p.0),
                column: pos.map(|p| p.1),
                key: (!path.is_root()).then(|| path.to_string()),
                message: r.message,
            }
        })
    }

    /// An error about the value at `key` (a path as errors print it, e.g.
    /// `modules.ping.interval` or `host[0].modules_disabled[1]`), located in the file when
    /// there is one: for checks the modules make after deserializing.
    pub fn located_error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let path = parse_path(key);
        let Some((file, text)) = &self.modules.source else {
            return ConfigError {
                file: PathBuf::from("(built-in configuration)"),
                line: None,
                column: None,
                key: Some(key.to_owned()),
                message: message.into(),
            };
        };
        let pos = DeTable::parse(text)
            .ok()
            .and_then(|doc| span_of(&doc, &path))
            .map(|s| line_col(text, s.start));
        ConfigError {
            file: file.clone(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_round_trip() {
        for p in ["modules.ping", "host[0].modules_disabled[1]", "a[2][3].b"] {
            assert_eq!(parse_path(p).to_string(), p);
        }
    }
}
