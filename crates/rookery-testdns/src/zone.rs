//! The zone file format of the `rookery-testdns` binary (and [`crate::TestDns::load_zone`]):
//! interop tests write one, start the binary on it and point Prosody/ejabberd (or Rookery) at the
//! printed address. Deliberately not RFC 1035 master-file syntax, only what federation tests need:
//!
//! ```text
//! # comment; blank lines are ignored
//! _xmpp-server._tcp.a.test  SRV  10 5 5269 xmpp.a.test
//! _xmpps-server._tcp.a.test SRV  0 0 0 .
//! xmpp.a.test               A    127.0.0.2
//! xmpp.a.test               AAAA ::1
//! ```
//!
//! Fields are separated by whitespace; the type is case-insensitive.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData};

/// A line of a zone file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for ZoneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "zone line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ZoneError {}

/// Parses a whole zone text into (owner name, record data) pairs, in file order.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, RData)>, ZoneError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let entry = parse_line(&fields).map_err(|message| ZoneError {
            line: index + 1,
            message,
        })?;
        out.push(entry);
    }
    Ok(out)
}

fn parse_line(fields: &[&str]) -> Result<(String, RData), String> {
    let [name, kind, rest @ ..] = fields else {
        return Err("expected NAME TYPE DATA...".to_owned());
    };
    check_name(name)?;
    let rdata = match (kind.to_ascii_uppercase().as_str(), rest) {
        ("A", [ip]) => RData::A(A(ip
            .parse::<Ipv4Addr>()
            .map_err(|e| format!("bad IPv4 address {ip:?}: {e}"))?)),
        ("AAAA", [ip]) => RData::AAAA(AAAA(
            ip.parse::<Ipv6Addr>()
                .map_err(|e| format!("bad IPv6 address {ip:?}: {e}"))?,
        )),
        ("SRV", [priority, weight, port, target]) => {
            let target = check_name(target)?;
            RData::SRV(SRV::new(
                number(priority, "priority")?,
                number(weight, "weight")?,
                number(port, "port")?,
                target,
            ))
        }
        ("A" | "AAAA", _) => return Err(format!("{kind} takes one address")),
        ("SRV", _) => return Err("SRV takes: priority weight port target".to_owned()),
        _ => return Err(format!("unsupported record type {kind:?} (A, AAAA, SRV)")),
    };
    Ok(((*name).to_owned(), rdata))
}

fn check_name(name: &str) -> Result<Name, String> {
    Name::from_ascii(name).map_err(|e| format!("bad DNS name {name:?}: {e}"))
}

fn number(text: &str, what: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|e| format!("bad SRV {what} {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_record_kinds_and_skips_comments() {
        let text = "# federation\n\n\
                    _xmpp-server._tcp.a.test SRV 10 5 5269 xmpp.a.test  # main\n\
                    _xmpps-server._tcp.a.test srv 0 0 0 .\n\
                    xmpp.a.test A 127.0.0.2\n\
                    xmpp.a.test AAAA ::1\n";
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].0, "_xmpp-server._tcp.a.test");
        let RData::SRV(srv) = &entries[0].1 else {
            panic!("not SRV: {:?}", entries[0].1)
        };
        assert_eq!((srv.priority, srv.weight, srv.port), (10, 5, 5269));
        assert_eq!(srv.target, Name::from_ascii("xmpp.a.test").unwrap());
        let RData::SRV(dot) = &entries[1].1 else {
            panic!("not SRV")
        };
        assert!(dot.target.is_root());
        assert_eq!(entries[2].1, RData::A(A(Ipv4Addr::new(127, 0, 0, 2))));
        assert_eq!(entries[3].1, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("a.test A 127.0.0.1\nb.test A nope\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("IPv4"), "{err}");
        assert_eq!(parse("a.test MX 10 b.test").unwrap_err().line, 1);
        assert!(parse("a.test SRV 1 2 3").is_err());
        assert!(parse("a.test SRV 1 2 70000 b.test").is_err());
        assert!(parse("a.test").is_err());
    }
}
