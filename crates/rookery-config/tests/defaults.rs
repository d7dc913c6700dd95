//! Defaults, path resolution, the example file and the lookup helpers of `rookery-config`.
#![allow(clippy::unwrap_used)]

use rookery_config::*;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

const MINIMAL: &str = "[[host]]\ndomain = \"example.com\"\n";

fn assert_default_sections(c: &Config) {
    assert_eq!(c.server.log_level, LogLevel::Info);
    assert!(c.server.admins.is_empty());
    assert_eq!(c.storage.backend, StorageBackend::Sqlite);
    assert_eq!(
        c.storage.path,
        c.server.data_dir.join("rookery.sqlite"),
        "storage path defaults to data_dir/rookery.sqlite"
    );

    assert!(c.c2s.require_encryption);
    assert!(!c.c2s.allow_plain_unencrypted);
    assert_eq!(c.c2s.resource_conflict, ResourceConflict::KickOld);
    assert_eq!(c.c2s.max_resources, 10);
    assert_eq!(c.c2s.ping_interval_secs, 300);
    assert_eq!(c.c2s.ping_timeout_secs, 60);
    assert_eq!(c.c2s.tls_session_tickets, None);

    assert!(!c.registration.allow);
    assert_eq!(c.registration.min_password_len, 8);

    let l = &c.limits;
    assert_eq!(l.stanza_bytes, 262_144);
    assert_eq!(l.preauth_stanza_bytes, 10_000);
    assert_eq!(l.max_depth, 64);
    assert_eq!(l.max_elements, 5_000);
    assert_eq!(l.max_attrs, 100);
    assert_eq!(l.max_ns_decls, 100);
    assert_eq!(l.header_timeout_secs, 10);
    assert_eq!(l.auth_timeout_secs, 30);
    assert_eq!(l.stanza_idle_timeout_secs, 60);
    assert_eq!(l.session_mailbox, 1024);
    assert_eq!(l.offline_max, 1000);
    assert_eq!(l.unauth_per_ip, 16);
    assert_eq!(l.auth_failures_per_ip, 5);
    assert_eq!(l.auth_ban_threshold, 20);
    assert_eq!(l.auth_ban_secs, 600);

    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(
        (
            c.listeners[0].address,
            c.listeners[0].port,
            c.listeners[0].kind
        ),
        (lo, 5222, ListenerKind::C2s)
    );
    assert_eq!(
        (
            c.listeners[1].address,
            c.listeners[1].port,
            c.listeners[1].kind
        ),
        (lo, 5223, ListenerKind::C2sTls)
    );
}

#[test]
fn zero_config_defaults() {
    let c = Config::zero_config(Path::new("/srv/x"));
    assert_default_sections(&c);
    assert_eq!(c.server.data_dir, Path::new("/srv/x/rookery-data"));
    assert_eq!(
        c.storage.path,
        Path::new("/srv/x/rookery-data/rookery.sqlite")
    );
    assert_eq!(c.hosts.len(), 1);
    assert_eq!(c.hosts[0].domain, "localhost");
    assert!(c.hosts[0].certs.is_empty());
    assert!(!c.hosts[0].registration);
    assert_eq!(c.source, None);
}

#[test]
fn zero_config_relative_cwd_becomes_absolute() {
    let c = Config::zero_config(Path::new("."));
    assert!(c.server.data_dir.is_absolute());
    assert!(c.server.data_dir.ends_with("rookery-data"));
}

#[test]
fn minimal_file_gets_defaults() {
    let c = Config::parse(MINIMAL, Path::new("/etc/rookery/rookery.toml")).unwrap();
    assert_default_sections(&c);
    assert_eq!(c.server.data_dir, Path::new("/etc/rookery/rookery-data"));
    assert_eq!(c.hosts.len(), 1);
    assert_eq!(c.hosts[0].domain, "example.com");
    assert_eq!(
        c.source.as_deref(),
        Some(Path::new("/etc/rookery/rookery.toml"))
    );
}

#[test]
fn empty_sections_get_defaults() {
    let text = format!("[server]\n[storage]\n[c2s]\n[registration]\n[limits]\n{MINIMAL}");
    let c = Config::parse(&text, Path::new("/etc/rookery/rookery.toml")).unwrap();
    assert_default_sections(&c);
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/a.pem"), "x").unwrap();
    std::fs::write(dir.path().join("certs/a.key"), "x").unwrap();
    let text = r#"
[server]
data_dir = "state"
[storage]
path = "db/main.sqlite"
[[host]]
domain = "a.example"
cert = "certs/a.pem"
key = "certs/a.key"
"#;
    let file = dir.path().join("rookery.toml");
    std::fs::write(&file, text).unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(c.server.data_dir, dir.path().join("state"));
    assert_eq!(c.storage.path, dir.path().join("state/db/main.sqlite"));
    assert_eq!(
        c.hosts[0].certs,
        [CertKeyPaths {
            cert: dir.path().join("certs/a.pem"),
            key: dir.path().join("certs/a.key"),
        }]
    );
    assert_eq!(c.source, Some(file));
}

#[test]
fn several_certificates_per_host() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["ec.pem", "ec.key", "rsa.pem", "rsa.key"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let text = r#"
[c2s]
tls_session_tickets = false
[[host]]
domain = "a.example"
certs = [
    { cert = "rsa.pem", key = "rsa.key" },
    { cert = "ec.pem", key = "ec.key" },
]
"#;
    let file = dir.path().join("rookery.toml");
    std::fs::write(&file, text).unwrap();
    let c = Config::load(&file).unwrap();
    let pair = |c: &str, k: &str| CertKeyPaths {
        cert: dir.path().join(c),
        key: dir.path().join(k),
    };
    // Kept in the order given: which one a handshake gets is decided per client.
    assert_eq!(
        c.hosts[0].certs,
        [pair("rsa.pem", "rsa.key"), pair("ec.pem", "ec.key")]
    );
    assert_eq!(c.c2s.tls_session_tickets, Some(false));
}

#[test]
fn absolute_paths_are_kept() {
    let text = format!(
        "[server]\ndata_dir = \"/var/lib/rookery\"\n[storage]\npath = \"/db/r.sqlite\"\n{MINIMAL}"
    );
    let c = Config::parse(&text, Path::new("/etc/rookery.toml")).unwrap();
    assert_eq!(c.server.data_dir, Path::new("/var/lib/rookery"));
    assert_eq!(c.storage.path, Path::new("/db/r.sqlite"));
}

#[test]
fn relative_config_path_is_made_absolute() {
    let c = Config::parse(MINIMAL, Path::new("rookery.toml")).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.server.data_dir, cwd.join("rookery-data"));
    assert_eq!(c.source, Some(cwd.join("rookery.toml")));
}

#[test]
fn example_file_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rookery.example.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.hosts.len(), 2);
    assert_eq!(c.hosts[0].domain, "example.com");
    assert!(c.hosts[0].registration, "per-host override");
    assert!(!c.hosts[1].registration, "inherits [registration].allow");
    assert_eq!(c.server.admins.len(), 1);
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.listeners[1].kind, ListenerKind::C2sTls);
    assert_eq!(c.listeners[1].address, "::".parse::<IpAddr>().unwrap());
    // The example spells out every default, so apart from hosts, admins and listeners it
    // must agree with the built-in defaults.
    let z = Config::zero_config(Path::new("/"));
    assert_eq!(c.c2s, z.c2s);
    assert_eq!(c.registration, z.registration);
    assert_eq!(c.limits, z.limits);
    assert_eq!(c.server.log_level, z.server.log_level);
    assert_eq!(c.storage.backend, z.storage.backend);
}

#[test]
fn full_settings_are_read() {
    let text = r#"
[server]
log_level = "debug"
admins = ["Admin@Example.com", "root@example.org"]
[c2s]
require_encryption = false
allow_plain_unencrypted = true
resource_conflict = "random_suffix"
max_resources = 3
ping_interval_secs = 0
ping_timeout_secs = 0
[registration]
allow = true
min_password_len = 12
[limits]
stanza_bytes = 5000
preauth_stanza_bytes = 5000
offline_max = 0
[[host]]
domain = "Example.COM."
registration = false
[[host]]
domain = "example.org"
[[listen]]
address = "::1"
port = 0
kind = "s2s"
[[listen]]
address = "::1"
port = 0
kind = "s2s-tls"
"#;
    let c = Config::parse(text, Path::new("/x/r.toml")).unwrap();
    assert_eq!(c.server.log_level, LogLevel::Debug);
    assert_eq!(c.server.admins[0].to_string(), "admin@example.com");
    assert_eq!(c.c2s.resource_conflict, ResourceConflict::RandomSuffix);
    assert_eq!(c.c2s.ping_interval(), None);
    assert_eq!(c.limits.offline_max, 0);
    assert_eq!(c.hosts[0].domain, "example.com");
    assert!(!c.hosts[0].registration);
    assert!(c.hosts[1].registration);
    assert_eq!(c.listeners[0].kind, ListenerKind::S2s);
    assert!(c.listeners[1].kind.is_direct_tls());
    assert!(!c.listeners[1].kind.is_c2s());
    assert!(c.is_admin(&"root@example.org".parse().unwrap()));
    assert!(!c.is_admin(&"user@example.org".parse().unwrap()));
}

#[test]
fn postgres_storage_is_read() {
    let text = "[storage]\nbackend = \"postgres\"\n\
                url = \"postgresql://rookery:s3cret@db.internal:5433/xmpp?connect_timeout=3\"\n\
                schema = \"rookery\"\npool_size = 4\n[[host]]\ndomain = \"example.com\"\n";
    let c = Config::parse(text, Path::new("/x/r.toml")).unwrap();
    assert_eq!(c.storage.backend, StorageBackend::Postgres);
    let pg = c.storage.postgres.clone().unwrap();
    assert_eq!(
        pg.url,
        "postgresql://rookery:s3cret@db.internal:5433/xmpp?connect_timeout=3"
    );
    assert_eq!((pg.schema.as_str(), pg.pool_size), ("rookery", 4));
    // The password never shows in debug output.
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("postgresql://rookery:***@db.internal:5433/xmpp"),
        "{shown}"
    );

    let minimal = "[storage]\nbackend = \"postgres\"\nurl = \"postgres://h/d\"\n\
                   [[host]]\ndomain = \"example.com\"\n";
    let pg = Config::parse(minimal, Path::new("/x/r.toml"))
        .unwrap()
        .storage
        .postgres
        .unwrap();
    assert_eq!(pg.schema, PostgresConfig::DEFAULT_SCHEMA);
    assert_eq!(pg.pool_size, PostgresConfig::DEFAULT_POOL_SIZE);
    // SQLite (the default) has no PostgreSQL settings.
    assert_eq!(Config::zero_config(Path::new("/")).storage.postgres, None);
}

#[test]
fn host_lookup_ignores_case_and_root_dot() {
    let c = Config::parse(MINIMAL, Path::new("/r.toml")).unwrap();
    assert!(c.host("example.com").is_some());
    assert!(c.host("EXAMPLE.com.").is_some());
    assert!(c.host("other.example").is_none());
    assert!(c.host("conference.example.com").is_none());
}

#[test]
fn duration_getters() {
    let c = Config::zero_config(Path::new("/"));
    assert_eq!(c.c2s.ping_interval(), Some(Duration::from_secs(300)));
    assert_eq!(c.c2s.ping_timeout(), Duration::from_secs(60));
    assert_eq!(c.limits.header_timeout(), Duration::from_secs(10));
    assert_eq!(c.limits.auth_timeout(), Duration::from_secs(30));
    assert_eq!(c.limits.stanza_idle_timeout(), Duration::from_secs(60));
    assert_eq!(c.limits.auth_ban(), Duration::from_secs(600));
    assert_eq!(
        c.listeners[0].socket_addr(),
        "127.0.0.1:5222".parse().unwrap()
    );
}
