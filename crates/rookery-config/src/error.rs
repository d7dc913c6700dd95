//! `ConfigError`, the single error type of `rookery-config`, and the translation of the toml
//! and serde messages into the wording users see. `rookery serve` and `rookery check-config`
//! print it as `file:line:column: key: message`, the format editors and CI logs link to.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file, as the user named it.
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// 1-based column in characters, when the problem has a place in the file.
    pub column: Option<usize>,
    /// The key path, e.g. `listen[1].kind` or `host[0].cert`.
    pub key: Option<String>,
    /// What is wrong, in words.
    pub message: String,
}

impl ConfigError {
    /// An error about the file as a whole (unreadable, no `[[host]]`, ...).
    pub(crate) fn whole_file(file: PathBuf, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file,
            line: None,
            column: None,
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// What a serde/toml message says once reworded.
pub(crate) struct Reworded {
    pub message: String,
    /// A key to append to the located path: serde's "missing field" is reported at the
    /// enclosing table, but the key the user must add is the useful thing to name.
    pub missing_key: Option<String>,
}

/// Rewords the messages serde's derive and the toml crate produce into the configuration's
/// vocabulary ("key", "table", "array") and adds a "did you mean" hint for unknown keys.
pub(crate) fn reword(message: &str) -> Reworded {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = backticked(rest);
        if let Some((got, expected)) = names.split_first() {
            return Reworded {
                message: unknown_key_message(got, expected),
                missing_key: None,
            };
        }
    }
    if let Some(rest) = message.strip_prefix("missing field ")
        && let Some(name) = backticked(rest).into_iter().next()
    {
        return Reworded {
            message: format!("missing required key \"{name}\""),
            missing_key: Some(name),
        };
    }
    let mut message = message.to_owned();
    if let Some(i) = message.find("expected struct ") {
        message.truncate(i);
        message.push_str("expected a table");
    }
    let replacements = [
        ("expected a sequence", "expected an array"),
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u32", "expected an integer from 0 to 4294967295"),
        ("expected u64", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected a boolean", "expected true or false"),
    ];
    for (from, to) in replacements {
        if message.ends_with(from) {
            message.truncate(message.len() - from.len());
            message.push_str(to);
        }
    }
    Reworded {
        message,
        missing_key: None,
    }
}

/// `unknown key "prot" (did you mean "port"?)`, or with no close match the list of keys.
pub(crate) fn unknown_key_message(got: &str, expected: &[String]) -> String {
    let got_q = format!("\"{}\"", got.escape_debug());
    if let Some(hint) = did_you_mean(got, expected.iter().map(String::as_str)) {
        return format!("unknown key {got_q} (did you mean \"{hint}\"?)");
    }
    if expected.is_empty() {
        return format!("unknown key {got_q}; this table takes no keys");
    }
    let list: Vec<String> = expected.iter().map(|e| format!("\"{e}\"")).collect();
    format!("unknown key {got_q}, expected one of {}", list.join(", "))
}

/// The backtick-quoted names in a serde message, in order.
fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, name)| name.to_owned())
        .collect()
}

/// The closest candidate within edit distance 2 (ties: the first), if any.
pub(crate) fn did_you_mean<'a>(
    got: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(got, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, so the common
/// typo `c2s-tsl` is one edit from `c2s-tls`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = v;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("c2s-tsl", "c2s-tls"), 1);
        assert_eq!(edit_distance("listener", "listen"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn rewording() {
        let r = reword("unknown field `prot`, expected one of `address`, `port`, `kind`");
        assert_eq!(r.message, r#"unknown key "prot" (did you mean "port"?)"#);
        let r = reword("unknown field `zzz`, expected `a` or `b`");
        assert_eq!(r.message, r#"unknown key "zzz", expected one of "a", "b""#);
        let r = reword("missing field `domain`");
        assert_eq!(r.missing_key.as_deref(), Some("domain"));
        let r = reword("invalid type: integer `3`, expected struct RawServer");
        assert_eq!(r.message, "invalid type: integer `3`, expected a table");
    }

    #[test]
    fn display() {
        let e = ConfigError {
            file: "rookery.toml".into(),
            line: Some(12),
            column: Some(8),
            key: Some("listen[1].kind".into()),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "rookery.toml:12:8: listen[1].kind: bad");
        let e = ConfigError::whole_file("x.toml".into(), "at least one [[host]] is required");
        assert_eq!(e.to_string(), "x.toml: at least one [[host]] is required");
    }
}
