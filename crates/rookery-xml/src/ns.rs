//! Namespace scopes: prefix → URI resolution for the element tree builder.
//!
//! Flow: bytes from a socket → [`crate::Framer`] (rxml's raw parser →
//! `tree.rs`, which asks this module what prefixes mean) →
//! [`crate::StreamEvent`] → protocol machines in rookery-proto.
//!
//! rxml's own resolver is not used: it drops namespace declarations (the
//! stream header needs them), only reports attributes after the whole start
//! tag is buffered (limits must trip per attribute), and walks the whole
//! scope stack on every lookup. Here the default namespace is a per-depth
//! stack (O(1) lookup) and each prefix has its own binding stack in a hash
//! map, so lookups stay O(1) however deep or declaration-heavy the input.

use std::collections::HashMap;
use std::sync::Arc;

use crate::NS_XML;

#[derive(Debug)]
pub(crate) struct NsScopes {
    /// The empty namespace, shared so "no default namespace" costs nothing.
    none: Arc<str>,
    /// Default namespace in effect inside each open element.
    defaults: Vec<Arc<str>>,
    /// Binding stack per prefix; the last entry is the one in scope.
    prefixes: HashMap<String, Vec<Arc<str>>>,
    /// Prefixes declared by the open elements, innermost last.
    declared: Vec<String>,
    /// `declared.len()` when each open element was entered.
    marks: Vec<usize>,
}

impl NsScopes {
    pub(crate) fn new() -> Self {
        NsScopes {
            none: Arc::from(""),
            defaults: Vec::new(),
            prefixes: HashMap::new(),
            declared: Vec::new(),
            marks: Vec::new(),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.defaults.clear();
        self.prefixes.clear();
        self.declared.clear();
        self.marks.clear();
    }

    /// Enter an element that declares `default_decl` (`xmlns='…'`, empty
    /// string = undeclare) and the `(prefix, uri)` pairs in `decls`.
    pub(crate) fn push(&mut self, default_decl: Option<&str>, decls: &[(String, String)]) {
        let default = match default_decl {
            Some("") => self.none.clone(),
            Some(uri) => Arc::from(uri),
            None => self.default_ns().clone(),
        };
        self.defaults.push(default);
        self.marks.push(self.declared.len());
        for (prefix, uri) in decls {
            // `xml` may be declared, but only to its fixed URI (rxml checks
            // that), so there is nothing to record.
            if prefix == "xml" {
                continue;
            }
            self.prefixes
                .entry(prefix.clone())
                .or_default()
                .push(Arc::from(uri.as_str()));
            self.declared.push(prefix.clone());
        }
    }

    /// Leave the innermost element.
    pub(crate) fn pop(&mut self) {
        self.defaults.pop();
        let mark = self.marks.pop().unwrap_or(0);
        for prefix in self.declared.drain(mark..) {
            if let Some(stack) = self.prefixes.get_mut(&prefix) {
                stack.pop();
                if stack.is_empty() {
                    // Keeps the map from growing with every distinct prefix a
                    // long-lived stream ever used.
                    self.prefixes.remove(&prefix);
                }
            }
        }
    }

    /// Default namespace in scope (empty = none).
    pub(crate) fn default_ns(&self) -> &Arc<str> {
        self.defaults.last().unwrap_or(&self.none)
    }

    /// URI bound to `prefix`, if any. `xml` is always bound.
    pub(crate) fn lookup(&self, prefix: &str) -> Option<&str> {
        if prefix == "xml" {
            return Some(NS_XML);
        }
        self.prefixes
            .get(prefix)
            .and_then(|s| s.last())
            .map(|u| &**u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_unwind() {
        let mut ns = NsScopes::new();
        ns.push(Some("a"), &[("p".into(), "urn:p1".into())]);
        assert_eq!(&**ns.default_ns(), "a");
        ns.push(None, &[("p".into(), "urn:p2".into())]);
        assert_eq!(&**ns.default_ns(), "a");
        assert_eq!(ns.lookup("p"), Some("urn:p2"));
        ns.push(Some(""), &[]);
        assert_eq!(&**ns.default_ns(), "");
        ns.pop();
        ns.pop();
        assert_eq!(ns.lookup("p"), Some("urn:p1"));
        ns.pop();
        assert_eq!(ns.lookup("p"), None);
        assert!(ns.prefixes.is_empty());
        assert_eq!(ns.lookup("xml"), Some(NS_XML));
    }
}
