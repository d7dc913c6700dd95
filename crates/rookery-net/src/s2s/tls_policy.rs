//! `[s2s] require_tls`, the one place it is read. The rule is the same in both directions: a
//! stream must be TLS-protected (STARTTLS or Direct TLS) before it authenticates. Incoming
//! (`inbound`): STARTTLS is offered as mandatory-to-negotiate, with `<required/>` (RFC 6120
//! §5.3.1), and neither SASL EXTERNAL nor dialback is offered or accepted on a plaintext
//! stream. Outgoing (`connect`): a peer that offers no STARTTLS is left with
//! `policy-violation` rather than authenticated to in plaintext.

use rookery_core::Server;

/// The TLS rule for s2s streams, read from `[s2s] require_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TlsPolicy {
    required: bool,
}

impl TlsPolicy {
    pub(crate) fn of(server: &Server) -> TlsPolicy {
        TlsPolicy {
            required: server.config().s2s.require_tls,
        }
    }

    /// Whether STARTTLS is mandatory (offered with `<required/>`).
    pub(crate) fn tls_required(self) -> bool {
        self.required
    }

    /// Whether authentication (SASL EXTERNAL, dialback) may happen on a stream without TLS.
    pub(crate) fn allows_plaintext_auth(self) -> bool {
        !self.required
    }

    /// Whether a stream may authenticate, given whether it is TLS-protected.
    pub(crate) fn allows_auth(self, tls: bool) -> bool {
        tls || self.allows_plaintext_auth()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_tls_refuses_plaintext_auth_only() {
        let p = TlsPolicy { required: true };
        assert!(p.tls_required() && !p.allows_plaintext_auth());
        assert!(p.allows_auth(true) && !p.allows_auth(false));
        let p = TlsPolicy { required: false };
        assert!(!p.tls_required() && p.allows_plaintext_auth());
        assert!(p.allows_auth(true) && p.allows_auth(false));
    }
}
