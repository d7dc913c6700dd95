//! `[[component]]`: the external components (XEP-0114) this server accepts, resolved. Each
//! names the domain a component serves and the shared secret it authenticates with; the
//! component connects to a `kind = "component"` listener. Raw parsing and validation live in
//! `resolve/component.rs`; rookery-server reserves these domains at start and rookery-net's
//! component listener looks the secret up by the stream header's `to`.

use std::fmt;

/// One `[[component]]` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct ComponentConfig {
    /// `domain` (string, required): the domain the component serves, e.g. `"echo.example.org"`.
    /// Validated and normalised like a `[[host]]` domain; must not be one of the `[[host]]`
    /// domains and may appear once. Stanzas to it (and to its subdomains) go to the connected
    /// component; while none is connected they bounce with `service-unavailable`.
    pub domain: String,
    /// `secret` (string, required, non-empty): the shared secret of the XEP-0114 handshake, the
    /// same as Prosody's `component_secret` or ejabberd's `password`. The component proves it
    /// with SHA-1(stream id ‖ secret); the secret itself never crosses the wire.
    pub secret: String,
}

// Hand-written so that printing a `Config` (check-config, debug logs) never shows the secret.
impl fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentConfig")
            .field("domain", &self.domain)
            .field("secret", &"<redacted>")
            .finish()
    }
}
