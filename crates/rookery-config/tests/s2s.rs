//! `[s2s]`: defaults, per-domain policy, static routes, and located errors.
#![allow(clippy::unwrap_used)]

use rookery_config::{Config, ConfigError};
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
fn defaults_federate_with_dialback_over_tls() {
    let c = parse("").unwrap();
    let p = c.s2s.policy("b.test");
    assert!(c.s2s.require_tls);
    assert!(p.allowed && p.allow_dialback && !p.require_valid_certs);
    assert_eq!(c.s2s.queue_max, 2000);
    assert_eq!(c.s2s.connect_timeout().as_secs(), 10);
    assert_eq!(c.s2s.idle_timeout().as_secs(), 1800);
    assert!(c.s2s.route("b.test").is_none());
}

#[test]
fn per_domain_policy_and_lists() {
    let c = parse(
        "[s2s]\nrequire_valid_certs = true\ndeny = [\"EVIL.test\"]\nnameserver = \"127.0.0.9:5353\"\n\
         [[s2s.domain]]\ndomain = \"old.test\"\nrequire_valid_certs = false\nallow_dialback = true\n\
         [[s2s.route]]\ndomain = \"priv.test\"\naddress = \"127.0.0.7\"\n",
    )
    .unwrap();
    assert!(
        !c.s2s.policy("evil.test").allowed,
        "deny list is case-insensitive"
    );
    assert!(c.s2s.policy("b.test").require_valid_certs);
    assert!(!c.s2s.policy("old.test").require_valid_certs);
    let r = c.s2s.route("priv.test").unwrap();
    assert_eq!(
        (r.address.to_string().as_str(), r.port, r.direct_tls),
        ("127.0.0.7", 5269, false)
    );
    assert_eq!(c.s2s.nameserver.unwrap().port(), 5353);

    let only = parse("[s2s]\nallow = [\"b.test\"]\n").unwrap();
    assert!(only.s2s.policy("b.test").allowed);
    assert!(!only.s2s.policy("c.test").allowed);
    let off = parse("[s2s]\nenabled = false\n").unwrap();
    assert!(!off.s2s.policy("b.test").allowed);
}

#[test]
fn errors_name_the_key() {
    check_err("[s2s]\nqueue_max = 0\n", 2, "s2s.queue_max", "at least 1");
    check_err(
        "[s2s]\nnameserver = \"dns.example\"\n",
        2,
        "s2s.nameserver",
        "not an address",
    );
    check_err(
        "[s2s]\nallow = [\"b.test\"]\ndeny = [\"b.test\"]\n",
        2,
        "s2s.allow[0]",
        "both allowed and denied",
    );
    check_err(
        "[[s2s.route]]\ndomain = \"p.test\"\naddress = \"not-an-ip\"\n",
        3,
        "s2s.route[0].address",
        "not an IP address",
    );
    check_err(
        "[s2s]\ndialback_secret = \"short\"\n",
        2,
        "s2s.dialback_secret",
        "16 characters",
    );
    check_err(
        "[s2s]\nca_files = [\"/nonexistent/ca.pem\"]\n",
        2,
        "s2s.ca_files[0]",
        "does not exist",
    );
    check_err(
        "[[s2s.domain]]\ndomain = \"x.test\"\nallow_dialbak = true\n",
        3,
        "s2s.domain[0].allow_dialbak",
        "allow_dialback",
    );
}
