//! `[[component]]` and the `component` listener kind: accepted entries come out normalised,
//! and every mistake is an error naming file, line and key.
#![allow(clippy::unwrap_used)]

use rookery_config::{Config, ConfigError, ListenerKind};
use std::path::Path;

const FILE: &str = "/etc/rookery/rookery.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        &format!("[[host]]\ndomain = \"example.org\"\n{text}"),
        Path::new(FILE),
    )
}

fn check_err(text: &str, line: usize, key: &str, needle: &str) {
    let e = parse(text).unwrap_err();
    let shown = e.to_string();
    // Two lines of [[host]] precede `text`.
    assert_eq!(e.line, Some(line + 2), "{shown}");
    assert_eq!(e.key.as_deref(), Some(key), "{shown}");
    assert!(
        shown.starts_with(&format!("{FILE}:{}:", line + 2)),
        "{shown}"
    );
    assert!(shown.contains(needle), "{shown:?} lacks {needle:?}");
}

#[test]
fn components_are_normalised_and_listed_in_order() {
    let c = parse(
        "[[component]]\ndomain = \"Echo.Example.org.\"\nsecret = \"s3cret\"\n\
         [[component]]\ndomain = \"muc.example.org\"\nsecret = \"other\"\n\
         [[listen]]\naddress = \"127.0.0.1\"\nport = 5275\nkind = \"component\"\n",
    )
    .unwrap();
    let domains: Vec<&str> = c.components.iter().map(|x| x.domain.as_str()).collect();
    assert_eq!(domains, ["echo.example.org", "muc.example.org"]);
    assert_eq!(c.component("echo.example.org").unwrap().secret, "s3cret");
    assert!(c.component("example.org").is_none());
    assert_eq!(c.listeners[0].kind, ListenerKind::Component);
    assert!(!c.listeners[0].kind.is_c2s() && !c.listeners[0].kind.is_direct_tls());
}

#[test]
fn no_components_by_default() {
    assert!(parse("").unwrap().components.is_empty());
}

#[test]
fn debug_output_hides_the_secret() {
    let c = parse("[[component]]\ndomain = \"echo.example.org\"\nsecret = \"hunter2-secret\"\n")
        .unwrap();
    let shown = format!("{c:?}");
    assert!(shown.contains("echo.example.org"), "{shown}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
}

#[test]
fn errors_name_the_key() {
    check_err(
        "[[component]]\ndomain = \"EXAMPLE.org\"\nsecret = \"x\"\n",
        2,
        "component[0].domain",
        "is a [[host]]",
    );
    check_err(
        "[[component]]\ndomain = \"a.example.org\"\nsecret = \"x\"\n\
         [[component]]\ndomain = \"A.example.org\"\nsecret = \"y\"\n",
        5,
        "component[1].domain",
        "already defined by component[0]",
    );
    check_err(
        "[[component]]\ndomain = \"a.example.org\"\nsecret = \"\"\n",
        3,
        "component[0].secret",
        "must not be empty",
    );
    check_err(
        "[[component]]\ndomain = \"a@example.org\"\nsecret = \"x\"\n",
        2,
        "component[0].domain",
        "invalid domain",
    );
    check_err(
        "[[component]]\ndomain = \"a.example.org\"\n",
        1,
        "component[0].secret",
        "secret",
    );
    check_err(
        "[[component]]\ndomain = \"a.example.org\"\nsecret = 42\n",
        3,
        "component[0].secret",
        "string",
    );
    check_err(
        "[[component]]\ndomain = \"a.example.org\"\nsecret = \"x\"\npassword = \"y\"\n",
        4,
        "component[0].password",
        "unknown key",
    );
}
