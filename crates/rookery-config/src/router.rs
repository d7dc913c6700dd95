//! `[router]`: the jabberd2 router listener's accounts (the resolved, public side). jabberd2's
//! `sm`, `c2s` and other components log in to a `kind = "router"` listener with one of these
//! users, then bind names (domains) on it. Raw parsing and validation live in
//! `resolve/router.rs`; rookery-net's `router/` module uses the result.

use std::fmt;

/// `[router]`: who may attach to a router listener, and what each may do.
#[derive(Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// `keepalive_secs` (integer ≥ 1, default `60`): a single space goes to a component link
    /// idle this long, so a dead link is noticed (and its names freed) instead of making the
    /// component's restart run into `409`.
    pub keepalive_secs: u64,
    /// `require_tls` (bool, default `false`): components must STARTTLS before SASL (jabberd2
    /// does when its `<router>` section has a `<pemfile>`). Off by default because jabberd2's
    /// components don't without one and the listener usually sits on loopback.
    pub require_tls: bool,
    /// `[[router.user]]`: the accounts components authenticate with (jabberd2's
    /// `router-users.xml`). Empty: every router connection fails authentication.
    pub users: Vec<RouterUser>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            keepalive_secs: 60,
            require_tls: false,
            users: Vec::new(),
        }
    }
}

impl fmt::Debug for RouterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterConfig")
            .field("keepalive_secs", &self.keepalive_secs)
            .field("require_tls", &self.require_tls)
            .field("users", &self.users)
            .finish()
    }
}

/// One `[[router.user]]`.
#[derive(Clone, PartialEq, Eq)]
pub struct RouterUser {
    /// `name` (string, required): the SASL username (jabberd2's `router.user`, `jabberd` in its
    /// shipped configs). Unique.
    pub name: String,
    /// `secret` (string, required, ≥ 8 characters): the shared secret (jabberd2's
    /// `router.pass`). Kept in plain text because DIGEST-MD5, the only mechanism jabberd2
    /// speaks, needs it; protect the configuration file accordingly.
    pub secret: String,
    /// `bind_any` (bool, default `true`): may bind names other than its own `name` (jabberd2's
    /// ACL `bind`). jabberd2's sm binds its domains and c2s binds `c2s`, so the usual single
    /// shared user needs it.
    pub bind_any: bool,
    /// `default_route` (bool, default `false`): may bind the default route (`<default/>`,
    /// jabberd2's ACL `default-route`), which receives routes to names nobody holds — the job
    /// of jabberd2's s2s. Off by default: Rookery then takes such routes (federates stanzas).
    pub default_route: bool,
}

impl fmt::Debug for RouterUser {
    // Hand-written so the secret never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterUser")
            .field("name", &self.name)
            .field("bind_any", &self.bind_any)
            .field("default_route", &self.default_route)
            .finish_non_exhaustive()
    }
}

impl RouterConfig {
    /// `keepalive_secs` as a duration.
    pub fn keepalive(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.keepalive_secs)
    }

    /// The user called `name` (exact match: SASL usernames are case-sensitive).
    pub fn user(&self, name: &str) -> Option<&RouterUser> {
        self.users.iter().find(|u| u.name == name)
    }
}
