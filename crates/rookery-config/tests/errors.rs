//! Every kind of configuration error names file, line, column and key.
#![allow(clippy::unwrap_used)]

use rookery_config::{Config, ConfigError};
use std::path::Path;

const FILE: &str = "/etc/rookery/rookery.toml";
const HOST: &str = "[[host]]\ndomain = \"example.com\"\n";

fn err(text: &str) -> ConfigError {
    match Config::parse(text, Path::new(FILE)) {
        Ok(c) => panic!("accepted:\n{text}\n=> {c:?}"),
        Err(e) => e,
    }
}

/// Asserts the error sits at `line`, names `key`, and its message contains `needle`; also
/// that the rendered form starts with `file:line:` and contains `key:`.
fn check(text: &str, line: usize, key: &str, needle: &str) -> ConfigError {
    let e = err(text);
    let shown = e.to_string();
    assert_eq!(e.file, Path::new(FILE), "{shown}");
    assert_eq!(e.line, Some(line), "{shown}");
    assert!(e.column.is_some(), "{shown}");
    assert_eq!(e.key.as_deref(), Some(key), "{shown}");
    assert!(shown.starts_with(&format!("{FILE}:{line}:")), "{shown}");
    assert!(shown.contains(&format!(" {key}: ")), "{shown}");
    assert!(shown.contains(needle), "{shown:?} lacks {needle:?}");
    e
}

#[test]
fn brief_example_format() {
    let text = "\
[[host]]
domain = \"example.com\"

[[listen]]
address = \"127.0.0.1\"
port = 5222
kind = \"c2s\"


[[listen]]
address = \"127.0.0.1\"
kind = \"c2s-tsl\"
port = 5223
";
    let e = Config::parse(text, Path::new("rookery.toml")).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"rookery.toml:12:8: listen[1].kind: unknown value "c2s-tsl", expected one of "c2s", "c2s-tls", "s2s", "s2s-tls", "cm", "component", "router""#
    );
    assert_eq!((e.line, e.column), (Some(12), Some(8)));
}

#[test]
fn syntax_error() {
    let e = err("[server\nlog_level = \"info\"\n");
    assert_eq!(e.line, Some(1), "{e}");
    assert!(e.to_string().starts_with(&format!("{FILE}:1:")), "{e}");
    let e = err(&format!("{HOST}[c2s]\nmax_resources = 12x\n"));
    assert_eq!(e.line, Some(4), "{e}");
    let e = err(&format!(
        "{HOST}[c2s]\nmax_resources = 1\nmax_resources = 2\n"
    ));
    assert_eq!(e.line, Some(5), "{e}");
    assert!(
        e.message.contains(r#"duplicate key "max_resources""#),
        "{e}"
    );
}

#[test]
fn unknown_key_top_level_with_hint() {
    check(
        "[[hosts]]\ndomain = \"example.com\"\n",
        1,
        "hosts",
        r#"unknown key "hosts" (did you mean "host"?)"#,
    );
    check(
        &format!("{HOST}[[listener]]\nport = 1\n"),
        3,
        "listener",
        r#"did you mean "listen"?"#,
    );
    check(
        &format!("zzz = 1\n{HOST}"),
        1,
        "zzz",
        r#"expected one of "server""#,
    );
}

#[test]
fn unknown_key_in_section() {
    check(
        &format!("[server]\ndata_dri = \"x\"\n{HOST}"),
        2,
        "server.data_dri",
        r#"unknown key "data_dri" (did you mean "data_dir"?)"#,
    );
    check(
        &format!("{HOST}[limits]\nstanza_bytes = 1000\nbogus_limit = 3\n"),
        5,
        "limits.bogus_limit",
        "unknown key \"bogus_limit\", expected one of",
    );
}

#[test]
fn unknown_key_in_array_of_tables() {
    let text = format!(
        "{HOST}[[listen]]\naddress = \"127.0.0.1\"\nport = 1\nkind = \"c2s\"\n[[listen]]\naddress = \"127.0.0.1\"\nprot = 2\nkind = \"c2s\"\n"
    );
    check(&text, 9, "listen[1].prot", r#"did you mean "port"?"#);
    check(
        "[[host]]\ndomain = \"a.example\"\n[[host]]\ndomain = \"b.example\"\ncertificate = \"x\"\n",
        5,
        "host[1].certificate",
        "unknown key \"certificate\"",
    );
}

#[test]
fn unknown_key_in_inline_and_nested_tables() {
    check(
        &format!(
            "listen = [{{ address = \"::1\", port = 1, kind = \"c2s\", tls = true }}]\n{HOST}"
        ),
        1,
        "listen[0].tls",
        "unknown key \"tls\"",
    );
    check(
        &format!("{HOST}[limits.per_ip]\nmax = 3\n"),
        3,
        "limits.per_ip",
        "unknown key \"per_ip\"",
    );
}

#[test]
fn wrong_types() {
    check(
        &format!("{HOST}[c2s]\nrequire_encryption = \"yes\"\n"),
        4,
        "c2s.require_encryption",
        "invalid type: string \"yes\", expected true or false",
    );
    check(
        &format!("{HOST}[[listen]]\naddress = \"::1\"\nport = \"5222\"\nkind = \"c2s\"\n"),
        5,
        "listen[0].port",
        "invalid type",
    );
    check(
        &format!("{HOST}[[listen]]\naddress = \"::1\"\nport = 70000\nkind = \"c2s\"\n"),
        5,
        "listen[0].port",
        "expected an integer from 0 to 65535",
    );
    check(
        &format!("[server]\nadmins = \"admin@example.com\"\n{HOST}"),
        2,
        "server.admins",
        "expected an array",
    );
    check(
        &format!("server = 3\n{HOST}"),
        1,
        "server",
        "expected a table",
    );
    check(
        &format!("{HOST}[limits]\nmax_depth = -1\n"),
        4,
        "limits.max_depth",
        "expected a non-negative integer",
    );
}

#[test]
fn bad_enum_values() {
    check(
        &format!("[server]\nlog_level = \"verbose\"\n{HOST}"),
        2,
        "server.log_level",
        r#"unknown value "verbose", expected one of "error", "warn", "info", "debug", "trace""#,
    );
    check(
        &format!("{HOST}[c2s]\nresource_conflict = \"kick\"\n"),
        4,
        "c2s.resource_conflict",
        r#"expected one of "kick_old", "refuse_new", "random_suffix""#,
    );
    check(
        &format!("[storage]\nbackend = \"mysql\"\n{HOST}"),
        2,
        "storage.backend",
        r#"unknown value "mysql", expected one of "sqlite", "postgres""#,
    );
}

#[test]
fn storage_keys_belong_to_their_backend() {
    let pg = "[storage]\nbackend = \"postgres\"\n";
    let url = "url = \"postgresql://rookery:pw@127.0.0.1/xmpp\"\n";
    // PostgreSQL needs a URL; the error points at [storage], where it belongs.
    check(&format!("{pg}{HOST}"), 1, "storage.url", "needs url =");
    check(
        &format!("{pg}url = \"mysql://x@y/z\"\n{HOST}"),
        3,
        "storage.url",
        "starting with \"postgresql://\"",
    );
    let e = check(
        &format!("{pg}url = \"postgresql://u:secret@h/d x\"\n{HOST}"),
        3,
        "storage.url",
        "spaces",
    );
    assert!(!e.to_string().contains("secret"), "{e}");
    check(
        &format!("{pg}{url}schema = \"Rookery\"\n{HOST}"),
        4,
        "storage.schema",
        "invalid schema name \"Rookery\"",
    );
    check(
        &format!("{pg}{url}schema = \"pg_temp\"\n{HOST}"),
        4,
        "storage.schema",
        "reserved",
    );
    check(
        &format!("{pg}{url}pool_size = 0\n{HOST}"),
        4,
        "storage.pool_size",
        "must be at least 1",
    );
    check(
        &format!("{pg}{url}path = \"x.sqlite\"\n{HOST}"),
        4,
        "storage.path",
        "SQLite database file",
    );
    // The PostgreSQL keys with SQLite (explicit or by default) are mistakes too.
    check(
        &format!("[storage]\n{url}{HOST}"),
        2,
        "storage.url",
        "only used with backend = \"postgres\"",
    );
    check(
        &format!("[storage]\nbackend = \"sqlite\"\npool_size = 4\n{HOST}"),
        3,
        "storage.pool_size",
        "only used with backend = \"postgres\"",
    );
    check(
        &format!("[storage]\nschema = \"x\"\n{HOST}"),
        2,
        "storage.schema",
        "only used with backend = \"postgres\"",
    );
}

#[test]
fn bad_domains() {
    for bad in [
        "exa mple.com",
        "user@example.com",
        "example.com/res",
        "10.0.0.1",
        "-bad-.com",
        "",
    ] {
        let text = format!("[[host]]\ndomain = \"{bad}\"\n");
        let e = check(&text, 2, "host[0].domain", "");
        assert_eq!(e.column, Some(10), "{e}");
    }
    check(
        "[[host]]\ndomain = \"bücher.example\"\n",
        2,
        "host[0].domain",
        "xn--",
    );
}

#[test]
fn missing_domain() {
    check(
        "[[host]]\nregistration = true\n",
        1,
        "host[0].domain",
        "missing required key \"domain\"",
    );
}

#[test]
fn duplicate_host() {
    check(
        "[[host]]\ndomain = \"example.com\"\n[[host]]\ndomain = \"EXAMPLE.com.\"\n",
        4,
        "host[1].domain",
        "duplicate host \"example.com\" (already defined by host[0])",
    );
}

#[test]
fn no_host() {
    let e = err("[server]\nlog_level = \"info\"\n");
    assert_eq!(e.key.as_deref(), Some("host"));
    assert!(e.message.contains("at least one [[host]]"), "{e}");
    check("host = []\n", 1, "host", "at least one [[host]]");
}

#[test]
fn cert_and_key_pairing() {
    check(
        "[[host]]\ndomain = \"example.com\"\ncert = \"a.pem\"\n",
        3,
        "host[0].cert",
        "\"key\" is missing",
    );
    check(
        "[[host]]\ndomain = \"example.com\"\nkey = \"a.key\"\n",
        3,
        "host[0].key",
        "\"cert\" is missing",
    );
}

#[test]
fn certs_list_errors() {
    check(
        "[[host]]\ndomain = \"example.com\"\ncert = \"a.pem\"\nkey = \"a.key\"\ncerts = [{ cert = \"b.pem\", key = \"b.key\" }]\n",
        5,
        "host[0].certs",
        "not both",
    );
    check(
        "[[host]]\ndomain = \"example.com\"\ncerts = []\n",
        3,
        "host[0].certs",
        "lists no certificate",
    );
    check(
        "[[host]]\ndomain = \"example.com\"\ncerts = [{ cert = \"b.pem\" }]\n",
        3,
        "host[0].certs[0].key",
        "missing required key \"key\"",
    );
    check(
        "[[host]]\ndomain = \"example.com\"\ncerts = [{ cert = \"b.pem\", key = \"b.key\", chain = \"c\" }]\n",
        3,
        "host[0].certs[0].chain",
        "unknown key \"chain\"",
    );

    let dir = tempfile::tempdir().unwrap();
    for f in ["a.pem", "a.key", "b.pem"] {
        std::fs::write(dir.path().join(f), "x").unwrap();
    }
    let file = dir.path().join("rookery.toml");
    std::fs::write(
        &file,
        "[[host]]\ndomain = \"example.com\"\ncerts = [\n  { cert = \"a.pem\", key = \"a.key\" },\n  { cert = \"b.pem\", key = \"gone.key\" },\n]\n",
    )
    .unwrap();
    let e = Config::load(&file).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(5), Some("host[0].certs[1].key")),
        "{e}"
    );
    assert!(e.message.contains("gone.key\" does not exist"), "{e}");
}

#[test]
fn missing_cert_or_key_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.pem"), "x").unwrap();
    let file = dir.path().join("rookery.toml");
    std::fs::write(
        &file,
        "[[host]]\ndomain = \"example.com\"\ncert = \"missing.pem\"\nkey = \"a.pem\"\n",
    )
    .unwrap();
    let e = Config::load(&file).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(3), Some("host[0].cert")),
        "{e}"
    );
    assert!(e.message.contains("missing.pem\" does not exist"), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}:3:8: host[0].cert: ", file.display()))
    );

    std::fs::write(
        &file,
        "[[host]]\ndomain = \"example.com\"\ncert = \"a.pem\"\nkey = \"gone.key\"\n",
    )
    .unwrap();
    let e = Config::load(&file).unwrap_err();
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(4), Some("host[0].key")),
        "{e}"
    );

    std::fs::write(
        &file,
        "[[host]]\ndomain = \"example.com\"\ncert = \".\"\nkey = \"a.pem\"\n",
    )
    .unwrap();
    let e = Config::load(&file).unwrap_err();
    assert!(e.message.contains("not a regular file"), "{e}");
}

#[test]
fn invalid_admins() {
    check(
        &format!("[server]\nadmins = [\"ok@example.com\", \"a@b@example.com\"]\n{HOST}"),
        2,
        "server.admins[1]",
        "invalid JID \"a@b@example.com\"",
    );
    check(
        &format!("[server]\nadmins = [\"example.com\"]\n{HOST}"),
        2,
        "server.admins[0]",
        "is not an account",
    );
    check(
        &format!("[server]\nadmins = [\"admin@example.com/phone\"]\n{HOST}"),
        2,
        "server.admins[0]",
        "invalid JID",
    );
    check(
        &format!("[server]\nadmins = [\"admin@elsewhere.net\"]\n{HOST}"),
        2,
        "server.admins[0]",
        "has no [[host]]",
    );
}

#[test]
fn invalid_address() {
    check(
        &format!("{HOST}[[listen]]\naddress = \"localhost\"\nport = 5222\nkind = \"c2s\"\n"),
        4,
        "listen[0].address",
        "invalid IP address \"localhost\"",
    );
    check(
        &format!("{HOST}[[listen]]\naddress = \"127.0.0.1:5222\"\nport = 5222\nkind = \"c2s\"\n"),
        4,
        "listen[0].address",
        "invalid IP address",
    );
}

#[test]
fn listener_problems() {
    let l = "[[listen]]\naddress = \"127.0.0.1\"\nport = 5222\nkind = \"c2s\"\n";
    check(
        &format!("{HOST}{l}{l}"),
        9,
        "listen[1].port",
        "already used by listen[0]",
    );
    check(&format!("listen = []\n{HOST}"), 1, "listen", "no listeners");
    check(
        &format!("{HOST}[[listen]]\naddress = \"::1\"\nkind = \"c2s\"\n"),
        3,
        "listen[0].port",
        "missing required key \"port\"",
    );
    // Port 0 may repeat: each bind gets a fresh port.
    let z = "[[listen]]\naddress = \"127.0.0.1\"\nport = 0\nkind = \"c2s\"\n";
    assert!(Config::parse(&format!("{HOST}{z}{z}"), Path::new(FILE)).is_ok());
}

#[test]
fn zero_limits_are_rejected() {
    let keys = [
        "stanza_bytes",
        "preauth_stanza_bytes",
        "max_depth",
        "max_elements",
        "max_attrs",
        "max_ns_decls",
        "header_timeout_secs",
        "auth_timeout_secs",
        "stanza_idle_timeout_secs",
        "session_mailbox",
        "unauth_per_ip",
        "auth_failures_per_ip",
        "auth_ban_threshold",
        "auth_ban_secs",
    ];
    for k in keys {
        check(
            &format!("{HOST}[limits]\n{k} = 0\n"),
            4,
            &format!("limits.{k}"),
            "must be at least 1",
        );
    }
    check(
        &format!("{HOST}[c2s]\nmax_resources = 0\n"),
        4,
        "c2s.max_resources",
        "at least 1",
    );
    check(
        &format!("{HOST}[c2s]\nping_timeout_secs = 0\n"),
        4,
        "c2s.ping_timeout_secs",
        "at least 1 while pings are on",
    );
    check(
        &format!("{HOST}[registration]\nmin_password_len = 0\n"),
        4,
        "registration.min_password_len",
        "at least 1",
    );
}

#[test]
fn inconsistent_limits() {
    check(
        &format!("{HOST}[limits]\nstanza_bytes = 1000\npreauth_stanza_bytes = 2000\n"),
        5,
        "limits.preauth_stanza_bytes",
        "must not exceed stanza_bytes (1000)",
    );
    check(
        &format!("{HOST}[limits]\nauth_ban_threshold = 3\n"),
        4,
        "limits.auth_ban_threshold",
        "must be at least auth_failures_per_ip (5)",
    );
}

#[test]
fn empty_paths() {
    check(
        &format!("[server]\ndata_dir = \"\"\n{HOST}"),
        2,
        "server.data_dir",
        "must not be empty",
    );
    check(
        &format!("[storage]\npath = \"\"\n{HOST}"),
        2,
        "storage.path",
        "must not be empty",
    );
}

#[test]
fn unreadable_file_names_the_file() {
    let e = Config::load(Path::new("/nonexistent/rookery.toml")).unwrap_err();
    assert_eq!(e.file, Path::new("/nonexistent/rookery.toml"));
    assert_eq!(e.line, None);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/rookery.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn invalid_utf8_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.toml");
    std::fs::write(&file, b"[[host]]\ndomain = \"ex\xffample.com\"\n").unwrap();
    let e = Config::load(&file).unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(13)), "{e}");
    assert!(e.message.contains("UTF-8"));
}
