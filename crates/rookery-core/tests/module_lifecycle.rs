//! The module lifecycle through core's public door: what a module registers in `start` is
//! live (hooks, IQ handlers, disco and stream features, a service domain, a task), and
//! `stop_module` leaves none of it behind; per-module configuration errors name file, line
//! and key; a module disabled for one host is absent on that host only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use rookery_config::Config;
use rookery_core::components::ComponentRoute;
use rookery_core::{
    Flow, IqReply, IqTarget, IqType, Module, ModuleCx, Point, Priority, Scope, Server, Session,
    Stage, StartResult, Targets,
};
use rookery_proto::error::StanzaError;
use rookery_proto::stanza::{Kind, Stanza};
use rookery_testkit::Client;
use rookery_xml::Element;
use serde::Deserialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const NS: &str = "urn:rookery:test:lifecycle";

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    greeting: String,
    repeat: u32,
}

/// Registers one of everything and counts what reaches it.
#[derive(Default)]
struct Probe {
    hooked: AtomicUsize,
    domain: Mutex<Vec<String>>,
    domain_seen: tokio::sync::Notify,
    task_ended: Arc<tokio::sync::Notify>,
    greeting: Mutex<String>,
}

/// Signals when dropped (the module's task was cancelled).
struct OnDrop(Arc<tokio::sync::Notify>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

#[async_trait]
impl Module for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn start(&self, cx: &mut ModuleCx<'_>) -> StartResult {
        let s: Settings = cx.config()?;
        if s.repeat > 10 {
            return Err(cx.config_error("repeat", "must be at most 10"));
        }
        *self.greeting.lock().unwrap() = s.greeting;
        let guard = OnDrop(self.task_ended.clone());
        cx.hook(Point::FromClient, &[Kind::Message], Priority::DEFAULT)
            .iq(IqType::Get, NS, Targets::SERVER)
            .iq(IqType::Get, NS, Targets::DOMAIN)
            .feature(Scope::Server, NS)
            .stream_features(Stage::AfterAuth)
            .serve_domain("svc.a.test")
            .spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        Ok(())
    }
    async fn from_client(&self, _server: &Server, _session: &Session, _st: &mut Stanza) -> Flow {
        self.hooked.fetch_add(1, Ordering::SeqCst);
        Flow::Continue
    }
    async fn handle_iq(
        &self,
        _server: &Server,
        target: &IqTarget,
        _iq: &Stanza,
    ) -> Result<IqReply, StanzaError> {
        let who = match target {
            IqTarget::Domain(d) => d.clone(),
            _ => "server".to_owned(),
        };
        Ok(IqReply::Payload(
            Element::new("answer", NS).with_attr("by", who),
        ))
    }
    async fn domain_stanza(&self, _server: &Server, st: Stanza) {
        self.domain
            .lock()
            .unwrap()
            .push(st.id().unwrap_or_default().to_owned());
        self.domain_seen.notify_one();
    }
    fn stream_features(&self, _stage: Stage, _host: &str) -> Vec<Element> {
        vec![Element::new("probe", NS)]
    }
}

const TWO_HOSTS: &str = "[[host]]\ndomain = \"a.test\"\n\n[[host]]\ndomain = \"b.test\"\n";

fn parse(text: &str, dir: &std::path::Path) -> Result<Config, rookery_config::ConfigError> {
    Config::parse(text, &dir.join("rookery.toml"))
}

async fn new_server(config: Config, dir: &std::path::Path) -> Server {
    let stores = rookery_store::open_sqlite(&dir.join("db.sqlite"))
        .await
        .unwrap();
    Server::new(Arc::new(config), stores)
}

fn iq_to(to: &str, id: &str) -> String {
    format!("<iq xmlns='jabber:client' type='get' id='{id}' to='{to}'><q xmlns='{NS}'/></iq>")
}

#[tokio::test]
async fn a_stopped_module_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = new_server(parse(TWO_HOSTS, dir.path()).unwrap(), dir.path()).await;
    let probe = Arc::new(Probe::default());
    server.start_modules(vec![probe.clone()]).unwrap();
    let mut me = Client::bind(&server, "u@a.test/r").await;

    // Everything registered is live.
    assert_eq!(server.module_names(), vec!["probe"]);
    assert_eq!(server.features(Scope::Server, "a.test"), vec![NS]);
    assert_eq!(server.stream_features(Stage::AfterAuth, "a.test").len(), 1);
    assert!(matches!(
        server.components().lookup("svc.a.test"),
        ComponentRoute::Bound(_)
    ));
    me.send("<message xmlns='jabber:client' to='a.test' id='m1'/>")
        .await;
    assert_eq!(probe.hooked.load(Ordering::SeqCst), 1);
    me.send(&iq_to("a.test", "i1")).await;
    let reply = me.recv();
    assert_eq!(reply.type_attr(), "result", "{}", reply.element().to_xml());
    assert_eq!(
        reply.iq_payload().and_then(|p| p.attr("by")),
        Some("server")
    );
    // The service domain: iqs it registered go to handle_iq, the rest to domain_stanza.
    me.send(&iq_to("svc.a.test", "i2")).await;
    let reply = me.next(5).await;
    assert_eq!(
        reply.iq_payload().and_then(|p| p.attr("by")),
        Some("svc.a.test")
    );
    let seen = probe.domain_seen.notified();
    me.send("<message xmlns='jabber:client' to='room@svc.a.test' id='m2'/>")
        .await;
    seen.await;
    assert_eq!(*probe.domain.lock().unwrap(), vec!["m2"]);

    // Stopped: no hook, IQ handler, feature, stream feature, domain or task is left.
    let hooked = probe.hooked.load(Ordering::SeqCst);
    let ended = probe.task_ended.notified();
    server.stop_module("probe").await.unwrap();
    ended.await;
    assert!(server.module_names().is_empty());
    assert!(server.features(Scope::Server, "a.test").is_empty());
    assert!(
        server
            .stream_features(Stage::AfterAuth, "a.test")
            .is_empty()
    );
    assert!(matches!(
        server.components().lookup("svc.a.test"),
        ComponentRoute::None
    ));
    me.send("<message xmlns='jabber:client' to='a.test' id='m3'/>")
        .await;
    assert_eq!(probe.hooked.load(Ordering::SeqCst), hooked);
    me.send(&iq_to("a.test", "i3")).await;
    let reply = me.recv();
    assert_eq!(reply.type_attr(), "error");
    assert!(reply.element().to_xml().contains("service-unavailable"));
    // And it can start again.
    server.start_module(probe.clone()).unwrap();
    assert_eq!(server.features(Scope::Server, "a.test"), vec![NS]);
}

#[tokio::test]
async fn module_config_is_typed_and_errors_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{TWO_HOSTS}\n[modules.probe]\ngreeting = \"hi\"\nrepeat = 3\n");
    let server = new_server(parse(&text, dir.path()).unwrap(), dir.path()).await;
    let probe = Arc::new(Probe::default());
    server.start_modules(vec![probe.clone()]).unwrap();
    assert_eq!(*probe.greeting.lock().unwrap(), "hi");

    let cases = [
        // A wrong type, found by serde.
        (
            "[modules.probe]\nrepeat = \"three\"\n",
            8,
            "modules.probe.repeat",
        ),
        // An unknown key.
        (
            "[modules.probe]\ngreting = \"x\"\n",
            8,
            "modules.probe.greting",
        ),
        // A check the module makes after parsing.
        ("[modules.probe]\nrepeat = 11\n", 8, "modules.probe.repeat"),
        // A table for a module that is not loaded.
        ("[modules.nosuch]\nx = 1\n", 7, "modules.nosuch"),
    ];
    for (section, line, key) in cases {
        let text = format!("{TWO_HOSTS}\n{section}");
        let server = new_server(parse(&text, dir.path()).unwrap(), dir.path()).await;
        let err = server
            .start_modules(vec![Arc::new(Probe::default())])
            .expect_err(section);
        let shown = err.to_string();
        assert!(shown.contains("rookery.toml:"), "{shown}");
        assert!(shown.contains(&format!(":{line}:")), "{section}: {shown}");
        assert!(shown.contains(&format!(" {key}: ")), "{section}: {shown}");
    }

    let text = "[[host]]\ndomain = \"a.test\"\nmodules_disabled = [\"probe\", \"nosuch\"]\n";
    let server = new_server(parse(text, dir.path()).unwrap(), dir.path()).await;
    let shown = server
        .start_modules(vec![Arc::new(Probe::default())])
        .unwrap_err()
        .to_string();
    assert!(
        shown.contains(":3:") && shown.contains("host[0].modules_disabled[1]: "),
        "{shown}"
    );
}

#[tokio::test]
async fn a_module_disabled_for_one_host_is_absent_there_only() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[host]]\ndomain = \"a.test\"\n\n[[host]]\ndomain = \"b.test\"\nmodules_disabled = [\"probe\"]\n";
    let server = new_server(parse(text, dir.path()).unwrap(), dir.path()).await;
    let probe = Arc::new(Probe::default());
    server.start_modules(vec![probe.clone()]).unwrap();

    assert_eq!(server.features(Scope::Server, "a.test"), vec![NS]);
    assert!(server.features(Scope::Server, "b.test").is_empty());
    assert_eq!(server.stream_features(Stage::AfterAuth, "a.test").len(), 1);
    assert!(
        server
            .stream_features(Stage::AfterAuth, "b.test")
            .is_empty()
    );

    let mut a = Client::bind(&server, "u@a.test/r").await;
    let mut b = Client::bind(&server, "u@b.test/r").await;
    a.send(&iq_to("a.test", "1")).await;
    assert_eq!(a.recv().type_attr(), "result");
    b.send(&iq_to("b.test", "2")).await;
    assert_eq!(b.recv().type_attr(), "error");
    // Hooks too: a message from a b.test user does not reach it.
    b.send("<message xmlns='jabber:client' to='x@b.test'/>")
        .await;
    assert_eq!(probe.hooked.load(Ordering::SeqCst), 0);
    a.send("<message xmlns='jabber:client' to='x@a.test'/>")
        .await;
    assert_eq!(probe.hooked.load(Ordering::SeqCst), 1);
}
