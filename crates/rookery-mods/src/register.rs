//! XEP-0077 In-Band Registration for a logged-in account: password change (§3.3) and account
//! removal (§3.2). Creating accounts happens before authentication, in the c2s negotiation
//! (rookery-net); this module only sees bound sessions' iqs, which core dispatches to us when
//! addressed to the server's domain or to the account's own bare JID (or without `to`).

use crate::util::{self, parts};
use async_trait::async_trait;
use rookery_core::accounts::{self, AccountError};
use rookery_core::{
    IqReply, IqTarget, IqType, Module, ModuleCx, Scope, Server, StartResult, Targets,
};
use rookery_proto::error::{Condition, ErrorType, StanzaError, StreamCondition, StreamError};
use rookery_proto::ns;
use rookery_proto::sasl::DEFAULT_ITERATIONS;
use rookery_proto::stanza::{BareJid, Jid, Stanza};
use rookery_xml::Element;

#[derive(Debug, Default)]
pub struct Register;

impl Register {
    pub fn new() -> Self {
        Register
    }
}

/// The account the request is about: the sender's own, on this domain, and nobody else's.
fn own_account(target: &IqTarget, iq: &Stanza) -> Result<BareJid, StanzaError> {
    let sender = util::requester(iq)
        .filter(|s| s.node().is_some())
        .ok_or_else(StanzaError::forbidden)?;
    let ok = match target {
        IqTarget::Account(b) => *b == sender,
        // To the domain: only that domain's own users (§3.2: the home server).
        IqTarget::Server => iq.to().is_some_and(|to| to.domain() == sender.domain()),
        IqTarget::Domain(_) => false,
    };
    if ok {
        Ok(sender)
    } else {
        Err(StanzaError::forbidden())
    }
}

fn account_error(account: &BareJid, e: AccountError) -> StanzaError {
    match e {
        AccountError::BadPassword(why) => {
            util::error(Condition::NotAcceptable, ErrorType::Modify, &why)
        }
        AccountError::NotFound(_) => StanzaError::new(Condition::RegistrationRequired),
        other => {
            tracing::error!(jid = %account, error = %other, what = "register", "account operation failed");
            StanzaError::internal()
        }
    }
}

/// §3.3: a new password for the account.
async fn change_password(
    server: &Server,
    account: &BareJid,
    query: &Element,
) -> Result<IqReply, StanzaError> {
    if let Some(u) = query.get_child("username", ns::REGISTER) {
        // The username, when given, must name this account (normalised like a JID localpart).
        let named = BareJid::new(&format!("{}@{}", u.text().trim(), account.domain()));
        if named.ok().as_ref() != Some(account) {
            return Err(StanzaError::bad_request(
                "username does not match the account",
            ));
        }
    }
    let password = query
        .get_child("password", ns::REGISTER)
        .map(|p| p.text())
        .unwrap_or_default();
    // §3.3: an empty password must never replace the existing one.
    if password.is_empty() {
        return Err(StanzaError::bad_request("missing password"));
    }
    if let Err(why) = accounts::check_password_policy(&server.config().registration, &password) {
        return Err(util::error(
            Condition::NotAcceptable,
            ErrorType::Modify,
            &why,
        ));
    }
    accounts::set_password(server.stores(), account, &password, DEFAULT_ITERATIONS)
        .await
        .map_err(|e| account_error(account, e))?;
    tracing::info!(jid = %account, what = "password-changed", "password changed in-band");
    Ok(IqReply::Empty)
}

/// §3.2: delete the account, answer, then end every session of it with `<not-authorized/>`.
async fn remove(server: &Server, account: &BareJid, iq: &Stanza) -> Result<IqReply, StanzaError> {
    // Caches first (the hook's contract: "about to be deleted"), then the data.
    server.fire_account_deleted(account).await;
    accounts::delete(server.stores(), account)
        .await
        .map_err(|e| account_error(account, e))?;
    tracing::info!(jid = %account, what = "account-removed", "account removed in-band");
    // The result must reach the client before the stream error: route it now, then close. Both
    // go through the same session mailbox, which keeps their order.
    let mut reply = iq.iq_result(None);
    if reply.from().is_none() {
        reply.set_from(Some(Jid::from(account.clone())));
    }
    server.route(reply).await;
    server.sessions().close_account(
        account,
        StreamError::new(StreamCondition::NotAuthorized).with_text("account removed"),
    );
    Ok(IqReply::Handled)
}

#[async_trait]
impl Module for Register {
    fn name(&self) -> &'static str {
        "register"
    }
    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        for ty in [IqType::Get, IqType::Set] {
            cx.iq(ty, ns::REGISTER, Targets::SERVER_AND_ACCOUNT);
        }
        cx.feature(Scope::Server, ns::REGISTER);
        Ok(())
    }

    async fn handle_iq(
        &self,
        server: &Server,
        target: &IqTarget,
        iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        let account = own_account(target, iq)?;
        let Some(query) = iq.iq_payload().filter(|q| q.name() == "query") else {
            return Err(StanzaError::bad_request(
                "expected <query xmlns='jabber:iq:register'/>",
            ));
        };
        match iq.type_attr() {
            // §3.1: a registered entity gets <registered/> and its current username.
            "get" => {
                let (user, _) = parts(&account);
                Ok(IqReply::Payload(
                    Element::new("query", ns::REGISTER)
                        .child(Element::new("registered", ns::REGISTER))
                        .child(Element::new("username", ns::REGISTER).with_text(user))
                        .child(Element::new("password", ns::REGISTER)),
                ))
            }
            "set" if query.get_child("remove", ns::REGISTER).is_some() => {
                // §3.2 error table: <remove/> must be the only child.
                if query.children().count() != 1 {
                    return Err(StanzaError::bad_request("<remove/> must be alone"));
                }
                remove(server, &account, iq).await
            }
            "set" => change_password(server, &account, query).await,
            _ => Err(util::unsupported()),
        }
    }
}

#[cfg(test)]
mod tests {
    use rookery_core::SessionMsg;
    use rookery_proto::error::StreamCondition;
    use rookery_proto::ns;
    use rookery_proto::sasl::HashAlg;
    use rookery_testkit::Harness;

    async fn password_is(h: &Harness, user: &str, pw: &str) -> bool {
        let creds = h
            .server
            .stores()
            .accounts
            .credentials(user, "localhost")
            .await
            .unwrap()
            .expect("account");
        creds
            .get(HashAlg::Sha256)
            .verify_password(HashAlg::Sha256, pw)
    }

    #[tokio::test]
    async fn get_reports_registration() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='g' to='localhost'><query xmlns='jabber:iq:register'/></iq>")
            .await;
        let r = c.recv_result("g");
        let q = r.iq_payload().expect("query");
        assert!(q.get_child("registered", ns::REGISTER).is_some());
        assert_eq!(
            q.get_child("username", ns::REGISTER)
                .map(|u| u.text())
                .as_deref(),
            Some("romeo")
        );
    }

    #[tokio::test]
    async fn password_change() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut c = h.login("romeo", "a").await;
        c.send(
            "<iq type='set' id='p' to='localhost'><query xmlns='jabber:iq:register'>\
            <username>romeo</username><password>n3w-passw0rd</password></query></iq>",
        )
        .await;
        c.recv_result("p");
        assert!(password_is(&h, "romeo", "n3w-passw0rd").await);
        // Without `to`, username optional.
        c.send("<iq type='set' id='q'><query xmlns='jabber:iq:register'><password>another-one</password></query></iq>")
            .await;
        c.recv_result("q");
        assert!(password_is(&h, "romeo", "another-one").await);
        // Empty, short, or someone else's username: refused, password unchanged.
        c.send("<iq type='set' id='e'><query xmlns='jabber:iq:register'><password/></query></iq>")
            .await;
        c.recv_error("e", "bad-request");
        c.send("<iq type='set' id='s'><query xmlns='jabber:iq:register'><password>short</password></query></iq>")
            .await;
        c.recv_error("s", "not-acceptable");
        c.send(
            "<iq type='set' id='u'><query xmlns='jabber:iq:register'>\
            <username>juliet</username><password>long-enough-pw</password></query></iq>",
        )
        .await;
        c.recv_error("u", "bad-request");
        assert!(password_is(&h, "romeo", "another-one").await);
    }

    #[tokio::test]
    async fn other_accounts_and_domains_are_forbidden() {
        let h = Harness::new(crate::iq_modules()).await;
        h.account("juliet").await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='set' id='x' to='juliet@localhost'><query xmlns='jabber:iq:register'><remove/></query></iq>")
            .await;
        c.recv_error("x", "forbidden");
        assert!(h.server.account_exists(&h.bare("juliet")).await);
    }

    #[tokio::test]
    async fn remove_deletes_account_and_closes_sessions() {
        let h = Harness::new(crate::iq_modules()).await;
        let mut c = h.login("romeo", "a").await;
        let mut other = h.login("romeo", "b").await;
        c.send("<iq type='set' id='bad'><query xmlns='jabber:iq:register'><remove/><username/></query></iq>")
            .await;
        c.recv_error("bad", "bad-request");
        c.send("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>")
            .await;
        c.recv_result("rm");
        for s in [&mut c, &mut other] {
            match s.rx.rx.try_recv() {
                Ok(SessionMsg::Close(e)) => assert_eq!(e.condition, StreamCondition::NotAuthorized),
                other => panic!("expected close, got {other:?}"),
            }
        }
        let exists = h
            .server
            .stores()
            .accounts
            .exists("romeo", "localhost")
            .await
            .unwrap();
        assert!(!exists);
    }
}
