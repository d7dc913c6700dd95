//! Mapping between byte offsets in the TOML text and key paths such as `listen[1].kind`.
//!
//! Errors have to name file, line, column and key. The toml crate reports a byte span but not
//! the key path, and semantic validation knows the key path but not the span; both directions
//! are answered here from the spanned document tree (`toml::de::DeTable`) parsed once.

use std::fmt;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step in a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path as shown to users: `server.admins[2]`, `host[0].domain`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub(crate) fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path extended by a table key.
    pub(crate) fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_owned()));
        p
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "\"{}\"", k.escape_debug())?;
                    }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// The key path of the innermost key or value whose span contains `offset`.
///
/// Tables opened by a `[header]` have the header as their span, not the body, so the walk
/// descends into every table regardless of its span and keeps the smallest match.
pub(crate) fn path_at(doc: &Spanned<DeTable<'_>>, offset: usize) -> Option<KeyPath> {
    let mut best: Option<(usize, KeyPath)> = None;
    walk_table(doc.get_ref(), &KeyPath::root(), offset, &mut best);
    best.map(|(_, p)| p)
}

fn consider(
    span: Range<usize>,
    path: &KeyPath,
    offset: usize,
    best: &mut Option<(usize, KeyPath)>,
) {
    if !contains(&span, offset) {
        return;
    }
    let len = span.len();
    // `<=` so that among equal spans the later-visited, deeper path wins (an array of tables
    // and its first element share the first header's span).
    if best.as_ref().is_none_or(|(l, _)| len <= *l) {
        *best = Some((len, path.clone()));
    }
}

fn walk_table(
    table: &DeTable<'_>,
    path: &KeyPath,
    offset: usize,
    best: &mut Option<(usize, KeyPath)>,
) {
    for (k, v) in table.iter() {
        let p = path.key(k.get_ref());
        consider(k.span(), &p, offset, best);
        walk_value(v, &p, offset, best);
    }
}

fn walk_value(
    v: &Spanned<DeValue<'_>>,
    path: &KeyPath,
    offset: usize,
    best: &mut Option<(usize, KeyPath)>,
) {
    consider(v.span(), path, offset, best);
    match v.get_ref() {
        DeValue::Table(t) => walk_table(t, path, offset, best),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                walk_value(item, &path.index(i), offset, best);
            }
        }
        _ => {}
    }
}

/// The span of the value at `path` (for a `[header]` table: the header), or of the deepest
/// existing ancestor when the path names something absent (e.g. a missing required key is
/// reported at its table).
pub(crate) fn span_of(doc: &Spanned<DeTable<'_>>, path: &KeyPath) -> Option<Range<usize>> {
    let mut current: Option<&Spanned<DeValue<'_>>> = None;
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    for seg in &path.0 {
        let next = match (seg, table, current.map(|c| c.get_ref())) {
            (Seg::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                .map(|(_, v)| v),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        current = Some(next);
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    current.map(|c| c.span())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DOC: &str = "[server]\ndata_dir = \"x\"\n\n[[listen]]\nport = 1\n\n[[listen]]\nkind = \"c2s\"\nadmins = [\"a\", \"b\"]\n";

    #[test]
    fn finds_paths() {
        let doc = DeTable::parse(DOC).unwrap();
        let at = |needle: &str| {
            let off = DOC.find(needle).unwrap();
            path_at(&doc, off).map(|p| p.to_string())
        };
        assert_eq!(at("\"x\"").as_deref(), Some("server.data_dir"));
        assert_eq!(at("data_dir").as_deref(), Some("server.data_dir"));
        assert_eq!(at("port").as_deref(), Some("listen[0].port"));
        assert_eq!(at("\"c2s\"").as_deref(), Some("listen[1].kind"));
        assert_eq!(at("\"b\"").as_deref(), Some("listen[1].admins[1]"));
    }

    #[test]
    fn finds_spans() {
        let doc = DeTable::parse(DOC).unwrap();
        let p = KeyPath::root().key("listen").index(1).key("kind");
        let span = span_of(&doc, &p).unwrap();
        assert_eq!(&DOC[span.clone()], "\"c2s\"");
        assert_eq!(line_col(DOC, span.start), (8, 8));
        // Missing key: falls back to its table's header.
        let p = KeyPath::root().key("listen").index(0).key("kind");
        let span = span_of(&doc, &p).unwrap();
        assert_eq!(&DOC[span], "[[listen]]");
    }

    #[test]
    fn displays_paths() {
        let p = KeyPath::root().key("host").index(0).key("a b");
        assert_eq!(p.to_string(), "host[0].\"a b\"");
    }
}
