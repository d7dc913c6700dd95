//! `[router]` and the `router` listener kind: users, ACL defaults, located errors.
#![allow(clippy::unwrap_used)]

use rookery_config::{Config, ConfigError, ListenerKind};
use std::path::Path;

const FILE: &str = "/etc/rookery/rookery.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        &format!("[[host]]\ndomain = \"a.test\"\n{text}"),
        Path::new(FILE),
    )
}

fn check_err(text: &str, line: usize, key: &str, needle: &str) {
    let e = parse(text).unwrap_err();
    let shown = e.to_string();
    // Two lines of [[host]] precede `text`.
    assert_eq!(e.line, Some(line + 2), "{shown}");
    assert_eq!(e.key.as_deref(), Some(key), "{shown}");
    assert!(shown.contains(needle), "{shown:?} lacks {needle:?}");
}

#[test]
fn users_with_acl_defaults_and_a_router_listener() {
    let c = parse(
        "[[listen]]\naddress = \"127.0.0.1\"\nport = 5347\nkind = \"router\"\n\
         [[router.user]]\nname = \"jabberd\"\nsecret = \"s3cret-router\"\n\
         [[router.user]]\nname = \"s2s\"\nsecret = \"another-secret\"\nbind_any = false\ndefault_route = true\n",
    )
    .unwrap();
    assert_eq!(c.listeners[0].kind, ListenerKind::Router);
    let j = c.router.user("jabberd").unwrap();
    assert_eq!(j.secret, "s3cret-router");
    assert!(j.bind_any, "binding any name is the default");
    assert!(!j.default_route, "the default route must be granted");
    let s = c.router.user("s2s").unwrap();
    assert!(!s.bind_any && s.default_route);
    assert!(c.router.user("JABBERD").is_none(), "names are exact");
    assert!(
        !format!("{:?}", c.router).contains("s3cret"),
        "Debug must not print secrets"
    );
}

#[test]
fn no_router_section_means_no_users_and_a_minute_keepalive() {
    let c = parse("").unwrap();
    assert!(c.router.users.is_empty());
    assert_eq!(c.router.keepalive().as_secs(), 60);
    assert!(!c.router.require_tls);
    let c = parse("[router]\nkeepalive_secs = 5\nrequire_tls = true\n").unwrap();
    assert_eq!(c.router.keepalive_secs, 5);
    assert!(c.router.require_tls);
}

#[test]
fn router_listener_without_users_is_an_error() {
    check_err(
        "[[listen]]\naddress = \"127.0.0.1\"\nport = 5347\nkind = \"router\"\n",
        4,
        "listen[0].kind",
        "needs at least one [[router.user]]",
    );
}

#[test]
fn located_user_errors() {
    check_err(
        "[router]\nkeepalive_secs = 0\n",
        2,
        "router.keepalive_secs",
        "must be at least 1",
    );
    check_err(
        "[[router.user]]\nname = \"jabberd\"\nsecret = \"secret\"\n",
        3,
        "router.user[0].secret",
        "at least 8 characters",
    );
    check_err(
        "[[router.user]]\nname = \"a\"\nsecret = \"long-enough\"\n\
         [[router.user]]\nname = \"a\"\nsecret = \"long-enough\"\n",
        5,
        "router.user[1].name",
        "duplicate router user \"a\"",
    );
    check_err(
        "[[router.user]]\nname = \"sm@x\"\nsecret = \"long-enough\"\n",
        2,
        "router.user[0].name",
        "may not contain",
    );
    check_err(
        "[[router.user]]\nname = \"a\"\nsecret = \"long-enough\"\nbind = true\n",
        4,
        "router.user[0].bind",
        "unknown",
    );
    check_err(
        "[[router.user]]\nname = \"a\"\n",
        1,
        "router.user[0].secret",
        "secret",
    );
}
