-- Prosody 0.12 under bench/compare.sh. @DIR@ and @PORT@ are filled in by compare.sh.
-- Own instance: compare.sh starts it in the foreground (prosody -F) as the invoking user, data in
-- a temporary directory.
run_as_root = true
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
log = { warn = "@DIR@/prosody.log" }
network_backend = "epoll"
-- Tuned: Prosody keeps Nagle's algorithm on by default (nagle = true in net/server_epoll.lua).
-- Its multi-write replies then wait for the client's delayed ACK (~40 ms per round trip on
-- loopback: a trial run measured a 48 ms median login with the default). Rookery and ejabberd
-- set TCP_NODELAY, so Prosody gets it too.
-- The listen backlog is raised from 128 to 1024, as Rookery's (tokio) and ejabberd's here.
network_settings = { nagle = false; tcp_backlog = 1024 }

interfaces = { "127.0.0.1" }
c2s_ports = { @PORT@ }
s2s_ports = { }
-- Encryption optional (the plain variants of idle and login); TLS clients still use STARTTLS.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

authentication = "internal_hashed"
certificates = "@DIR@"
ssl = { certificate = "@DIR@/cert.pem"; key = "@DIR@/key.pem"; }

-- The same feature set as Rookery's built-in modules (roster, presence, offline, disco, ping,
-- version, time, last activity, vcard-temp, private XML, blocking, stream management).
-- mod_presence, mod_message, mod_iq, mod_c2s and mod_offline are always loaded. Not loaded
-- compared with Debian's prosody.cfg.lua: mod_limits (c2s rate = "10kb/s" there), carbons, pep,
-- bookmarks, vcard4, csi_simple, invites*, register, admin_adhoc, posix, dialback.
-- mod_admin_shell (a Unix socket) is loaded only so that compare.sh can create the accounts in
-- one `prosodyctl shell`.
-- smacks (XEP-0198, part of Prosody itself since 0.12) with its defaults: resumption for 600 s,
-- the unacknowledged queue in memory. Loaded for every scenario, as Rookery offers stream
-- management to every client; only messages_sm's clients enable it.
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "version"; "time"; "uptime";
	"lastactivity"; "vcard"; "private"; "blocklist"; "smacks";
	"admin_shell";
}

VirtualHost "localhost"
