//! rookery-mods: the feature modules. Each is a `rookery_core::Module` whose `start` registers
//! what it serves (see rookery-core `hooks.rs` for the hook points and the flow of a stanza).
//! `default_modules` is the list the server loads. Hook order comes from the priorities the
//! modules register, not from this list: blocking filters first (a blocked stanza must not
//! reach presence, roster or offline handling), last activity observes broadcast presence
//! before the presence module consumes it, offline storage takes what nobody else did.

// `StanzaError` (the `Module::handle_iq` error type, defined in rookery-proto) is large;
// boxing it in each helper that returns it would only move the cost around.
#![allow(clippy::result_large_err)]
// Test code: a panic is how a failed expectation is reported.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use rookery_core::Module;
use std::sync::Arc;

pub mod blocking;
pub mod disco;
pub mod last;
pub mod offline;
pub mod ping;
pub mod presence;
pub mod private;
pub mod register;
pub mod roster;
pub mod time;
pub mod util;
pub mod vcard;
pub mod version;

/// The IQ feature modules of this crate.
pub fn iq_modules() -> Vec<Arc<dyn Module>> {
    vec![
        Arc::new(blocking::Blocking::new()),
        Arc::new(last::LastActivity::new()),
        Arc::new(disco::Disco::new()),
        Arc::new(ping::Ping::new()),
        Arc::new(version::Version::new()),
        Arc::new(time::Time::new()),
        Arc::new(vcard::VCard::new()),
        Arc::new(private::Private::new()),
        Arc::new(register::Register::new()),
    ]
}

/// Every module the server loads by default.
pub fn default_modules() -> Vec<Arc<dyn Module>> {
    let mut all = iq_modules();
    all.push(Arc::new(roster::Roster::new()));
    all.push(Arc::new(presence::Presence::new()));
    all.push(Arc::new(offline::Offline::new()));
    all
}

#[cfg(test)]
mod tests {
    //! The whole default module stack together: blocking.scs and lastactivity.scs as far as
    //! they concern these modules' interplay with presence and roster.

    use rookery_proto::ns;
    use rookery_testkit::{Client, Harness, error_condition};

    fn drain(c: &mut Client) {
        while c.try_recv().is_some() {}
    }

    #[tokio::test]
    async fn default_modules_load_without_namespace_clashes() {
        let h = Harness::new(super::default_modules()).await;
        let mut names = h.server.module_names();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "blocking", "disco", "last", "offline", "ping", "presence", "private", "register",
                "roster", "time", "vcard", "version"
            ]
        );
    }

    #[tokio::test]
    async fn blocking_scenario_with_presence_and_roster() {
        let h = Harness::new(super::default_modules()).await;
        let mut r = h.login("blocker", "r").await;
        let mut j = h.login("blockee", "j").await;
        r.send("<presence/>").await;
        j.send("<presence/>").await;
        r.send("<presence type='subscribe' to='blockee@localhost'/>")
            .await;
        j.send("<presence type='subscribed' to='blocker@localhost'/>")
            .await;
        j.send("<presence type='subscribe' to='blocker@localhost'/>")
            .await;
        r.send("<presence type='subscribed' to='blockee@localhost'/>")
            .await;
        drain(&mut r);
        drain(&mut j);

        j.send("<message type='chat' to='blocker@localhost'><body>ohai</body></message>")
            .await;
        assert_eq!(r.recv().type_attr(), "chat");

        r.send("<iq type='set' id='lx2'><block xmlns='urn:xmpp:blocking'><item jid='blockee@localhost'/></block></iq>")
            .await;
        r.recv_result("lx2");
        let p = j.recv();
        assert_eq!(p.type_attr(), "unavailable");
        assert_eq!(p.from().map(|f| f.as_str()), Some("blocker@localhost/r"));
        j.assert_silent();

        r.send("<message type='chat' to='blockee@localhost'><body>hello?</body></message>")
            .await;
        let e = r.recv();
        assert_eq!(error_condition(&e).as_deref(), Some("not-acceptable"));
        let err = e.element().get_child("error", ns::CLIENT).expect("error");
        assert!(err.get_child("blocked", ns::BLOCKING_ERRORS).is_some());
        j.send("<message type='chat' to='blocker@localhost'/>")
            .await;
        assert_eq!(
            error_condition(&j.recv()).as_deref(),
            Some("service-unavailable")
        );
        // A presence change of the blocker does not reach the blocked contact.
        r.send("<presence><show>away</show></presence>").await;
        drain(&mut r);
        j.assert_silent();
        // Blocked: no last activity either (the contact is still subscribed, but
        // its iqs do not get through).
        j.send(
            "<iq type='get' id='la' to='blocker@localhost'><query xmlns='jabber:iq:last'/></iq>",
        )
        .await;
        j.recv_error("la", "service-unavailable");

        r.send("<iq type='set' id='lx3'><unblock xmlns='urn:xmpp:blocking'><item jid='blockee@localhost'/></unblock></iq>")
            .await;
        r.recv_result("lx3");
        let p = j.recv();
        assert_eq!(p.type_attr(), "");
        assert_eq!(p.from().map(|f| f.as_str()), Some("blocker@localhost/r"));
        r.send("<message type='chat' to='blockee@localhost'><body>hello!</body></message>")
            .await;
        assert_eq!(j.recv().type_attr(), "chat");
        // Subscribed and online: last activity is 0 (XEP-0012 §3).
        j.send(
            "<iq type='get' id='lb' to='blocker@localhost'><query xmlns='jabber:iq:last'/></iq>",
        )
        .await;
        let res = j.recv_result("lb");
        assert_eq!(res.iq_payload().and_then(|q| q.attr("seconds")), Some("0"));
    }

    #[tokio::test]
    async fn last_activity_scenario_with_presence() {
        // lastactivity.scs
        let h = Harness::new(super::default_modules()).await;
        let mut r = h.login("romeo", "a").await;
        r.send("<presence><status>Hello</status></presence>").await;
        assert_eq!(r.recv().kind(), rookery_proto::stanza::Kind::Presence);
        r.send("<presence type='unavailable'><status>Goodbye</status></presence>")
            .await;
        assert_eq!(r.recv().type_attr(), "unavailable");
        r.send("<iq id='a' type='get'><query xmlns='jabber:iq:last'/></iq>")
            .await;
        let res = r.recv_result("a");
        assert_eq!(
            res.iq_payload().map(|q| q.text()).as_deref(),
            Some("Goodbye")
        );
    }
}
