//! The string-valued settings of the configuration (`log_level`, `backend`,
//! `resource_conflict`, listener `kind`). Each is an enum with a hand-written `Deserialize`
//! so that a bad value produces one uniform, user-facing message listing the accepted values,
//! e.g. `unknown value "c2s-tsl", expected one of "c2s", "c2s-tls", "s2s", "s2s-tls", ...`;
//! `rookery-config`'s error layer then adds file, line, column and key.

use serde::de::{Deserialize, Deserializer, Error as _};
use std::fmt;
use std::str::FromStr;

/// The message for a value outside an enum's accepted set.
pub(crate) fn unknown_value(got: &str, expected: &[&str]) -> String {
    let list: Vec<String> = expected.iter().map(|v| format!("\"{v}\"")).collect();
    format!(
        "unknown value \"{}\", expected one of {}",
        got.escape_debug(),
        list.join(", ")
    )
}

/// Declares a unit enum whose TOML spelling is a fixed string per variant, with `as_str`,
/// `Display`, `FromStr` (error = the user-facing message) and `Deserialize`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every accepted spelling, in documentation order.
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            /// The spelling used in the configuration file.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text ),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    other => Err(unknown_value(other, Self::VALUES)),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(D::Error::custom)
            }
        }
    };
}

string_enum! {
    /// `[server].log_level`: the most verbose level that is logged.
    #[derive(Default)]
    pub enum LogLevel {
        /// Only errors.
        Error => "error",
        /// Errors and warnings.
        Warn => "warn",
        /// The default: lifecycle events (start, listeners, connections) plus the above.
        #[default]
        Info => "info",
        /// Protocol-level detail useful when diagnosing a client.
        Debug => "debug",
        /// Everything, including stanza traffic.
        Trace => "trace",
    }
}

string_enum! {
    /// `[c2s].resource_conflict`: what happens when a client binds a resource that another
    /// session of the same account already holds (RFC 6120 §7.7.2.2).
    #[derive(Default)]
    pub enum ResourceConflict {
        /// Disconnect the existing session (with a `<conflict/>` stream error) and let the new
        /// one bind. The default: a client that reconnects after a network change would
        /// otherwise be locked out by its own ghost session.
        #[default]
        KickOld => "kick_old",
        /// Refuse the new bind with a `<conflict/>` error; the old session keeps the resource.
        RefuseNew => "refuse_new",
        /// Let the new session bind, but append a random suffix to its resource.
        RandomSuffix => "random_suffix",
    }
}

string_enum! {
    /// `[[listen]].kind`: the protocol a listener speaks.
    pub enum ListenerKind {
        /// Client-to-server with STARTTLS negotiated inside the stream (RFC 6120), usually
        /// port 5222.
        C2s => "c2s",
        /// Client-to-server with Direct TLS (XEP-0368): TLS from the first byte, usually
        /// port 5223.
        C2sTls => "c2s-tls",
        /// Server-to-server with STARTTLS, usually port 5269.
        S2s => "s2s",
        /// Server-to-server with Direct TLS (XEP-0368), usually port 5270.
        S2sTls => "s2s-tls",
        /// Connection-manager links (`rookery cm`, Openfire's `jabber:connectionmanager`),
        /// usually port 5262; needs `[cm] secret`.
        Cm => "cm",
        /// External components (XEP-0114, `jabber:component:accept`), plain TCP: bind it to
        /// loopback or a private network. Port 5275 by Openfire's convention; 5347 (Prosody,
        /// ejabberd examples) is common too.
        Component => "component",
        /// The jabberd2 router component protocol: jabberd2's `sm`, `c2s` and other
        /// components connect here (jabberd2's default port 5347) and authenticate with a
        /// `[[router.user]]`. Bind it to loopback or a private network.
        Router => "router",
    }
}

impl ListenerKind {
    /// Whether TLS starts at connect time (the acceptor wraps the socket before any XML).
    pub fn is_direct_tls(self) -> bool {
        matches!(self, ListenerKind::C2sTls | ListenerKind::S2sTls)
    }

    /// Whether this listener accepts clients (as opposed to federating servers).
    pub fn is_c2s(self) -> bool {
        matches!(self, ListenerKind::C2s | ListenerKind::C2sTls)
    }
}

/// `[storage].backend`: where accounts, rosters and offline messages live.
///
/// Marked `non_exhaustive` because more backends may come; code matching on it in other
/// crates must keep a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StorageBackend {
    /// A single SQLite database file (`[storage].path`).
    #[default]
    Sqlite,
    /// A PostgreSQL database (`[storage].url`, `schema`, `pool_size`).
    Postgres,
}

impl StorageBackend {
    /// Backends that can be selected in this build.
    pub const VALUES: &'static [&'static str] = &["sqlite", "postgres"];

    /// The spelling used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageBackend::Sqlite => "sqlite",
            StorageBackend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for StorageBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StorageBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqlite" => Ok(StorageBackend::Sqlite),
            "postgres" => Ok(StorageBackend::Postgres),
            other => Err(unknown_value(other, Self::VALUES)),
        }
    }
}

impl<'de> Deserialize<'de> for StorageBackend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for v in ListenerKind::VALUES {
            assert_eq!(v.parse::<ListenerKind>().map(|k| k.as_str()), Ok(*v));
        }
        for v in ResourceConflict::VALUES {
            assert_eq!(v.parse::<ResourceConflict>().map(|k| k.as_str()), Ok(*v));
        }
        for v in LogLevel::VALUES {
            assert_eq!(v.parse::<LogLevel>().map(|k| k.as_str()), Ok(*v));
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            "c2s-tsl".parse::<ListenerKind>(),
            Err(
                r#"unknown value "c2s-tsl", expected one of "c2s", "c2s-tls", "s2s", "s2s-tls", "cm", "component", "router""#
                    .to_owned()
            )
        );
        for v in StorageBackend::VALUES {
            assert_eq!(v.parse::<StorageBackend>().map(|k| k.as_str()), Ok(*v));
        }
        assert_eq!(
            "postgresql".parse::<StorageBackend>(),
            Err(r#"unknown value "postgresql", expected one of "sqlite", "postgres""#.to_owned())
        );
    }
}
