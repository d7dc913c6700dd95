//! Raw `[router]` as written in the file, and its validation into `RouterConfig`: user names
//! non-empty and unique, secrets long enough that the shipped jabberd2 default `secret` is
//! refused.

use super::Cx;
use crate::locate::KeyPath;
use crate::router::{RouterConfig, RouterUser};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawRouter {
    keepalive_secs: u64,
    require_tls: bool,
    user: Vec<RawUser>,
}

impl Default for RawRouter {
    fn default() -> Self {
        RawRouter {
            keepalive_secs: RouterConfig::default().keepalive_secs,
            require_tls: false,
            user: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    name: String,
    secret: String,
    #[serde(default = "yes")]
    bind_any: bool,
    #[serde(default)]
    default_route: bool,
}

fn yes() -> bool {
    true
}

/// Shortest accepted secret. jabberd2 ships `secret` (6 characters) as the router password; a
/// router link carries every stanza of the domains bound on it, so the default must be changed.
const MIN_SECRET_LEN: usize = 8;

impl Cx<'_> {
    pub(super) fn router(&self, raw: RawRouter) -> Result<RouterConfig, crate::ConfigError> {
        let rk = KeyPath::root().key("router");
        if raw.keepalive_secs == 0 {
            return Err(self.at(
                &rk.key("keepalive_secs"),
                "must be at least 1 (dead component links must be noticed)",
            ));
        }
        let k = rk.key("user");
        let mut users: Vec<RouterUser> = Vec::with_capacity(raw.user.len());
        for (i, u) in raw.user.into_iter().enumerate() {
            let uk = k.index(i);
            if u.name.is_empty() {
                return Err(self.at(&uk.key("name"), "must not be empty"));
            }
            if u.name.contains(['@', '/', ' ', ',', '"']) {
                return Err(self.at(
                    &uk.key("name"),
                    format!(
                        "\"{}\" may not contain '@', '/', ',', '\"' or spaces (it is a SASL username)",
                        u.name.escape_debug()
                    ),
                ));
            }
            if let Some(j) = users.iter().position(|o| o.name == u.name) {
                return Err(self.at(
                    &uk.key("name"),
                    format!(
                        "duplicate router user \"{}\" (already router.user[{j}])",
                        u.name
                    ),
                ));
            }
            if u.secret.chars().count() < MIN_SECRET_LEN {
                return Err(self.at(
                    &uk.key("secret"),
                    format!("must be at least {MIN_SECRET_LEN} characters"),
                ));
            }
            users.push(RouterUser {
                name: u.name,
                secret: u.secret,
                bind_any: u.bind_any,
                default_route: u.default_route,
            });
        }
        Ok(RouterConfig {
            keepalive_secs: raw.keepalive_secs,
            require_tls: raw.require_tls,
            users,
        })
    }
}
