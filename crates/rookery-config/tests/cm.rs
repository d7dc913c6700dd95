//! `[cm]` and the `cm` listener kind: defaults, the secret a `cm` listener needs, and errors
//! that name file, line and key.
#![allow(clippy::unwrap_used)]

use rookery_config::{Config, ConfigError, ListenerKind};
use std::path::Path;
use std::time::Duration;

const FILE: &str = "/etc/rookery/rookery.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        &format!("[[host]]\ndomain = \"example.org\"\n{text}"),
        Path::new(FILE),
    )
}

const CM_LISTENER: &str = "[[listen]]\naddress = \"127.0.0.1\"\nport = 5262\nkind = \"cm\"\n";

#[test]
fn cm_listener_with_secret_and_defaults() {
    let c = parse(&format!("[cm]\nsecret = \"s3cret\"\n{CM_LISTENER}")).unwrap();
    assert_eq!(c.cm.secret.as_deref(), Some("s3cret"));
    assert_eq!(c.cm.heartbeat(), Duration::from_secs(30));
    assert_eq!(c.cm.idle_timeout(), Duration::from_secs(300));
    assert_eq!(c.cm.resume_grace(), Duration::from_secs(60));
    assert_eq!(c.listeners[0].kind, ListenerKind::Cm);
}

#[test]
fn cm_listener_without_secret_names_the_listener() {
    let e = parse(CM_LISTENER).unwrap_err();
    let shown = e.to_string();
    assert_eq!(e.key.as_deref(), Some("listen[0].kind"), "{shown}");
    assert_eq!(e.line, Some(6), "{shown}");
    assert!(shown.contains("[cm] secret"), "{shown}");
}

#[test]
fn bad_cm_values_are_located() {
    let e = parse("[cm]\nsecret = \"\"\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("cm.secret"), "{e}");
    assert_eq!(e.line, Some(4), "{e}");
    let e = parse("[cm]\nsecret = \"x\"\nheartbeat_secs = 0\n").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("cm.heartbeat_secs"), "{e}");
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = parse("[cm]\nsecret = \"x\"\nresume_grace = 3\n").unwrap_err();
    assert!(e.to_string().contains("resume_grace"), "{e}");
}

#[test]
fn a_secret_without_a_listener_is_fine() {
    let c = parse("[cm]\nsecret = \"x\"\n").unwrap();
    assert!(c.listeners.iter().all(|l| l.kind != ListenerKind::Cm));
}
