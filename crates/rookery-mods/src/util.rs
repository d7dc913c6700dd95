//! Helpers shared by the IQ modules: who is asking (the requester's bare JID), the store-key
//! split of an account, store-error mapping, the RFC 6121 "may see presence" check, and XEP-0082
//! timestamps. Everything here runs inside `Module::handle_iq` / hooks, after core has routed the
//! stanza to a local account or the server.

use rookery_core::Server;
use rookery_proto::error::{Condition, ErrorType, StanzaError};
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_store::{StoreError, Subscription};
use std::time::{SystemTime, UNIX_EPOCH};

/// `(user, domain)` as the stores key an account (rookery-store's conventions: already normalised).
pub fn parts(bare: &BareJid) -> (&str, &str) {
    (
        bare.node().map(|n| n.as_str()).unwrap_or_default(),
        bare.domain().as_str(),
    )
}

/// The bare JID of whoever sent `st` (core stamps `from` on everything from a client).
pub fn requester(st: &Stanza) -> Option<BareJid> {
    st.from().map(Jid::to_bare)
}

/// Whether `st` was sent by the account `owner` itself (any of its resources).
pub fn is_own(st: &Stanza, owner: &BareJid) -> bool {
    requester(st).is_some_and(|r| &r == owner)
}

/// Logs a storage failure with context and turns it into the stanza error the requester sees
/// (the details stay in the log; the requester gets `internal-server-error`, RFC 6120 §8.3.3.6).
pub fn store_error(what: &'static str, account: &BareJid, e: &StoreError) -> StanzaError {
    tracing::error!(jid = %account, error = %e, what, "store error");
    StanzaError::internal()
}

/// A get-only namespace received a set (or the reverse): RFC 6120 §8.4 lets the entity answer
/// `service-unavailable` for a request it does not support.
pub fn unsupported() -> StanzaError {
    StanzaError::service_unavailable()
}

/// An error with an explicit type and a human-readable text.
pub fn error(condition: Condition, kind: ErrorType, text: &str) -> StanzaError {
    StanzaError::new(condition).with_type(kind).with_text(text)
}

/// RFC 6121 §3 / XEP-0012 §3: whether `contact` may see `owner`'s presence, i.e. the owner's
/// roster holds the contact with subscription `from` or `both`. Store errors deny (never leak
/// presence because storage hiccupped).
pub async fn may_see_presence(server: &Server, owner: &BareJid, contact: &BareJid) -> bool {
    let (user, domain) = parts(owner);
    match server
        .stores()
        .roster
        .get(user, domain, contact.as_str())
        .await
    {
        Ok(Some(item)) => matches!(item.subscription, Subscription::From | Subscription::Both),
        Ok(None) => false,
        Err(e) => {
            tracing::error!(jid = %owner, error = %e, what = "roster-get", "store error");
            false
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before 1970, which only a broken clock is).
pub fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Days since 1970-01-01 → proleptic Gregorian `(year, month 1..=12, day 1..=31)`. The
/// era-based civil-from-days algorithm (H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms"): 400-year eras of 146097 days, years starting on March 1st so the leap day is
/// last.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // shift the epoch to 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year, 0..=365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12 by construction, so the casts cannot truncate.
    (year, month as u32, day as u32)
}

/// XEP-0082 DateTime in UTC, `CCYY-MM-DDThh:mm:ssZ`.
pub fn format_utc(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2000-02-29 (a leap day in a century year divisible by 400).
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        // 2100 is not a leap year: 2100-02-28 is followed by 2100-03-01.
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    #[test]
    fn utc_format_matches_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        // XEP-0202's example instant.
        assert_eq!(format_utc(1_166_551_115), "2006-12-19T17:58:35Z");
        assert_eq!(format_utc(951_782_399), "2000-02-28T23:59:59Z");
        assert_eq!(format_utc(1_709_251_199), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn round_trip_every_day_for_800_years() {
        // Walk day by day and check the calendar advances by exactly one day each time.
        let (mut y, mut m, mut d) = civil_from_days(-146_097);
        for days in -146_096..146_097 {
            let next = civil_from_days(days);
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expect = if d < len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!(next, expect, "day {days}");
            (y, m, d) = next;
        }
    }
}
