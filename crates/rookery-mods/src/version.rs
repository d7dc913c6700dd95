//! XEP-0092 Software Version of the server. Core's `dispatch_iq` hands us `jabber:iq:version`
//! gets addressed to a local domain. Asked of an account's bare JID there is no software to
//! describe (the account's clients answer at their full JIDs, which core forwards), so that is
//! `service-unavailable`.

use async_trait::async_trait;
use rookery_core::{
    IqReply, IqTarget, IqType, Module, ModuleCx, Scope, Server, StartResult, Targets,
};
use rookery_proto::error::StanzaError;
use rookery_proto::ns;
use rookery_proto::stanza::Stanza;
use rookery_xml::Element;
use serde::Deserialize;
use std::sync::OnceLock;

/// The `<name/>` we report.
pub const SOFTWARE_NAME: &str = "Rookery";

/// `[modules.version]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VersionConfig {
    /// `show_version` (bool, default `true`): report the version number. Operators who do
    /// not want to tell scanners which release runs answer with the name only (the
    /// `<version/>` element then says `unknown`, as XEP-0092 §2 requires one).
    pub show_version: bool,
}

impl Default for VersionConfig {
    fn default() -> Self {
        VersionConfig { show_version: true }
    }
}

#[derive(Debug, Default)]
pub struct Version {
    config: OnceLock<VersionConfig>,
}

impl Version {
    pub fn new() -> Self {
        Version::default()
    }
}

#[async_trait]
impl Module for Version {
    fn name(&self) -> &'static str {
        "version"
    }

    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        let config: VersionConfig = cx.config()?;
        // The configuration does not change while the server runs: a restart of the module
        // reads the same table.
        let _ = self.config.set(config);
        cx.iq(IqType::Get, ns::VERSION, Targets::SERVER)
            .feature(Scope::Server, ns::VERSION);
        Ok(())
    }

    async fn handle_iq(
        &self,
        _server: &Server,
        _target: &IqTarget,
        _iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        let shown = self.config.get().is_none_or(|c| c.show_version);
        let version = if shown {
            env!("CARGO_PKG_VERSION")
        } else {
            "unknown"
        };
        // XEP-0092 §2: <name/> and <version/> are required; <os/> is optional and left out on
        // purpose: it tells attackers which exploits to try.
        let q = Element::new("query", ns::VERSION)
            .child(Element::new("name", ns::VERSION).with_text(SOFTWARE_NAME))
            .child(Element::new("version", ns::VERSION).with_text(version));
        Ok(IqReply::Payload(q))
    }
}

#[cfg(test)]
mod tests {
    use rookery_proto::ns;
    use rookery_testkit::Harness;

    #[tokio::test]
    async fn server_reports_name_and_version_without_os() {
        let h = Harness::new(crate::iq_modules()).await;
        h.account("juliet").await;
        let mut c = h.login("romeo", "a").await;
        c.send("<iq type='get' id='v' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
            .await;
        let r = c.recv_result("v");
        let q = r.iq_payload().expect("query");
        assert_eq!(
            q.get_child("name", ns::VERSION)
                .map(|e| e.text())
                .as_deref(),
            Some("Rookery")
        );
        assert_eq!(
            q.get_child("version", ns::VERSION)
                .map(|e| e.text())
                .as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert!(q.get_child("os", ns::VERSION).is_none());
        c.send(
            "<iq type='get' id='u' to='juliet@localhost'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await;
        c.recv_error("u", "service-unavailable");
    }
}
