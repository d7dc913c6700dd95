//! The module host: starting and stopping `Module`s, what each registered (`ModuleCx`), and
//! the dispatch tables core reads on every stanza. The tables are rebuilt whenever a module
//! starts or stops and swapped in whole, so dispatch takes one read lock and an `Arc` clone,
//! then walks only the entries registered for that point and stanza kind.
//!
//! Per-host enabling: `[[host]] modules_disabled` lists modules that do not run for that host;
//! each entry carries those hosts and dispatch skips it for stanzas of that host.

use crate::components::{BindError, ComponentLink, next_link_id};
use crate::hooks::{
    Event, IqTarget, IqType, Module, Point, Priority, Scope, Stage, Targets, kind_index,
};
use crate::server::Server;
use rookery_config::ConfigError;
use rookery_proto::stanza::{Kind, Stanza};
use rookery_xml::Element;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why a module could not start or stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("iq {ty:?} {ns} is registered by both {first} and {second}")]
    DuplicateIq {
        ty: IqType,
        ns: &'static str,
        first: &'static str,
        second: &'static str,
    },
    #[error("module {0} is already running")]
    AlreadyRunning(&'static str),
    #[error("no module named {0} is running")]
    NotRunning(String),
    #[error("module {module} cannot serve {domain}: {reason}")]
    Domain {
        module: &'static str,
        domain: String,
        reason: BindError,
    },
}

/// Stanzas a module's service domain may have queued before it is behind (then they bounce,
/// as for a component that does not keep up).
const DOMAIN_QUEUE: usize = 4096;

/// What one module registered.
#[derive(Default)]
struct Registrations {
    hooks: Vec<(Point, Kind, Priority)>,
    events: Vec<Event>,
    iqs: Vec<(IqType, &'static str, Targets)>,
    features: Vec<(Scope, &'static str)>,
    stream_features: Vec<Stage>,
    domains: Vec<String>,
    tasks: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
}

/// The registration context a module's `start` gets.
pub struct ModuleCx<'a> {
    server: &'a Server,
    name: &'static str,
    regs: Registrations,
    token: CancellationToken,
}

impl<'a> ModuleCx<'a> {
    pub fn server(&self) -> &'a Server {
        self.server
    }

    /// The module's `[modules.<name>]` table as `T` (its defaults when absent). Errors name
    /// file, line and key.
    pub fn config<T: DeserializeOwned + Default>(&self) -> Result<T, ModuleError> {
        Ok(self.server.config().module_config(self.name)?)
    }

    /// An error about `[modules.<name>].key`, located in the file (for checks after parsing).
    pub fn config_error(&self, key: &str, message: impl Into<String>) -> ModuleError {
        let path = format!("modules.{}.{key}", self.name);
        ModuleError::Config(self.server.config().located_error(&path, message))
    }

    /// Calls the module's method for `point` for stanzas of `kinds`, at `priority`.
    pub fn hook(&mut self, point: Point, kinds: &[Kind], priority: Priority) -> &mut Self {
        for k in kinds {
            self.regs.hooks.push((point, *k, priority));
        }
        self
    }

    /// Calls the module's method for `event`.
    pub fn on(&mut self, event: Event) -> &mut Self {
        self.regs.events.push(event);
        self
    }

    /// Answers iq `ty` requests whose payload is in `ns`, addressed to `targets`. One module
    /// per (type, namespace, target).
    pub fn iq(&mut self, ty: IqType, ns: &'static str, targets: Targets) -> &mut Self {
        self.regs.iqs.push((ty, ns, targets));
        self
    }

    /// Announces a disco feature (XEP-0030) in `scope`.
    pub fn feature(&mut self, scope: Scope, var: &'static str) -> &mut Self {
        self.regs.features.push((scope, var));
        self
    }

    /// Offers stream features at `stage` (`Module::stream_features` says which).
    pub fn stream_features(&mut self, stage: Stage) -> &mut Self {
        self.regs.stream_features.push(stage);
        self
    }

    /// Serves `domain` (and its subdomains) through the route table components use:
    /// stanzas to it reach `Module::domain_stanza`, iqs the module registered with
    /// `Targets::DOMAIN` its `handle_iq`.
    pub fn serve_domain(&mut self, domain: &str) -> &mut Self {
        self.regs.domains.push(domain.to_ascii_lowercase());
        self
    }

    /// Cancelled when the module stops or the server shuts down.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs `task` while the module runs (dropped at its stop or at shutdown).
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) -> &mut Self {
        self.regs.tasks.push(Box::pin(task));
        self
    }
}

/// One dispatch entry: a module and the hosts it is disabled for.
#[derive(Clone)]
pub(crate) struct Entry {
    pub module: Arc<dyn Module>,
    disabled: Arc<[String]>,
}

impl Entry {
    pub(crate) fn enabled_for(&self, host: &str) -> bool {
        self.disabled.is_empty() || !self.disabled.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// The dispatch tables.
#[derive(Default)]
pub(crate) struct Table {
    /// `[point][kind]`, in priority order.
    stanza: Vec<[Vec<Entry>; 3]>,
    events: Vec<Vec<Entry>>,
    iq: HashMap<(IqType, &'static str), Vec<(Targets, Entry)>>,
    features: Vec<(Scope, &'static str, Entry)>,
    stream_features: Vec<(Stage, Entry)>,
}

/// The modules of `entries` that run for `host`, in order.
fn enabled<'a>(entries: &'a [Entry], host: &'a str) -> impl Iterator<Item = &'a dyn Module> {
    entries
        .iter()
        .filter(move |e| e.enabled_for(host))
        .map(|e| e.module.as_ref())
}

impl Table {
    fn hook_entries(&self, point: Point, kind: Kind) -> &[Entry] {
        self.stanza
            .get(point.index())
            .map_or(&[], |k| k[kind_index(kind)].as_slice())
    }
    /// The modules hooked at `point` for stanzas of `kind`, in priority order, that run for
    /// `host`.
    pub(crate) fn hooks<'a>(
        &'a self,
        point: Point,
        kind: Kind,
        host: &'a str,
    ) -> impl Iterator<Item = &'a dyn Module> {
        enabled(self.hook_entries(point, kind), host)
    }
    /// Whether anything is hooked at `point` for `kind` (on any host).
    pub(crate) fn hooked(&self, point: Point, kind: Kind) -> bool {
        !self.hook_entries(point, kind).is_empty()
    }
    pub(crate) fn has_hooks(&self, point: Point) -> bool {
        self.stanza
            .get(point.index())
            .is_some_and(|k| k.iter().any(|v| !v.is_empty()))
    }
    /// The modules registered for `event` that run for `host`, in load order.
    pub(crate) fn events<'a>(
        &'a self,
        event: Event,
        host: &'a str,
    ) -> impl Iterator<Item = &'a dyn Module> {
        enabled(
            self.events.get(event.index()).map_or(&[], Vec::as_slice),
            host,
        )
    }
    pub(crate) fn iq_handler(&self, ty: IqType, ns: &str, target: &IqTarget) -> Option<&Entry> {
        // The key borrows a 'static str; look up by a fitting entry instead of allocating.
        self.iq
            .iter()
            .find(|((t, n), _)| *t == ty && *n == ns)
            .and_then(|(_, v)| v.iter().find(|(tg, _)| tg.matches(target)))
            .map(|(_, e)| e)
    }
}

/// A running module.
struct Loaded {
    module: Arc<dyn Module>,
    disabled: Arc<[String]>,
    regs: Registrations,
    token: CancellationToken,
    domain_link: Option<u64>,
}

/// The host's state inside `Server`.
#[derive(Default)]
pub(crate) struct ModuleHost {
    loaded: std::sync::Mutex<Vec<Loaded>>,
    table: RwLock<Arc<Table>>,
}

impl ModuleHost {
    pub(crate) fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn loaded(&self) -> std::sync::MutexGuard<'_, Vec<Loaded>> {
        // Held for list edits only, never across an await.
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn build(loaded: &[Loaded]) -> Table {
    let mut t = Table {
        stanza: Point::ALL.iter().map(|_| Default::default()).collect(),
        events: Event::ALL.iter().map(|_| Vec::new()).collect(),
        ..Table::default()
    };
    let mut ordered: Vec<Vec<(Priority, usize, Entry)>> = vec![Vec::new(); Point::ALL.len() * 3];
    for (n, l) in loaded.iter().enumerate() {
        let entry = Entry {
            module: l.module.clone(),
            disabled: l.disabled.clone(),
        };
        for (point, kind, prio) in &l.regs.hooks {
            ordered[point.index() * 3 + kind_index(*kind)].push((*prio, n, entry.clone()));
        }
        for ev in &l.regs.events {
            t.events[ev.index()].push(entry.clone());
        }
        for (ty, ns, targets) in &l.regs.iqs {
            t.iq.entry((*ty, *ns))
                .or_default()
                .push((*targets, entry.clone()));
        }
        for (scope, var) in &l.regs.features {
            t.features.push((*scope, var, entry.clone()));
        }
        for stage in &l.regs.stream_features {
            t.stream_features.push((*stage, entry.clone()));
        }
    }
    for (i, mut list) in ordered.into_iter().enumerate() {
        // Higher priority first; equal ones in load order.
        list.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        t.stanza[i / 3][i % 3] = list.into_iter().map(|(_, _, e)| e).collect();
    }
    t
}

/// Carries stanzas for a module's service domain to its drain task.
struct DomainLink {
    id: u64,
    tx: mpsc::Sender<Stanza>,
}

impl ComponentLink for DomainLink {
    fn link_id(&self) -> u64 {
        self.id
    }
    fn send(&self, st: Stanza) -> Result<(), Stanza> {
        self.tx.try_send(st).map_err(|e| match e {
            mpsc::error::TrySendError::Full(st) | mpsc::error::TrySendError::Closed(st) => st,
        })
    }
}

impl Server {
    /// Starts modules in order, then checks that every `[modules.<name>]` table and every
    /// `[[host]] modules_disabled` entry names a module that runs.
    pub fn start_modules(&self, modules: Vec<Arc<dyn Module>>) -> Result<(), ModuleError> {
        for m in modules {
            self.start_module(m)?;
        }
        let running: Vec<&'static str> = self.module_names();
        let cfg = self.config();
        for name in cfg.module_sections() {
            if !running.contains(&name.as_str()) {
                return Err(cfg
                    .located_error(
                        &format!("modules.{name}"),
                        format!(
                            "no module named \"{name}\" is loaded (loaded: {})",
                            running.join(", ")
                        ),
                    )
                    .into());
            }
        }
        for (i, h) in cfg.hosts.iter().enumerate() {
            for (j, name) in h.modules_disabled.iter().enumerate() {
                if !running.contains(&name.as_str()) {
                    return Err(cfg
                        .located_error(
                            &format!("host[{i}].modules_disabled[{j}]"),
                            format!(
                                "no module named \"{name}\" is loaded (loaded: {})",
                                running.join(", ")
                            ),
                        )
                        .into());
                }
            }
        }
        Ok(())
    }

    /// Starts one module: runs its `start`, checks its registrations against the running
    /// modules, binds its domains, spawns its tasks, and swaps in the new tables.
    pub fn start_module(&self, module: Arc<dyn Module>) -> Result<(), ModuleError> {
        let name = module.name();
        if self.module_names().contains(&name) {
            return Err(ModuleError::AlreadyRunning(name));
        }
        let token = self.shutdown_token().child_token();
        let mut cx = ModuleCx {
            server: self,
            name,
            regs: Registrations::default(),
            token: token.clone(),
        };
        module.start(&mut cx)?;
        let mut regs = cx.regs;
        let disabled: Arc<[String]> = self
            .config()
            .hosts
            .iter()
            .filter(|h| h.modules_disabled.iter().any(|m| m == name))
            .map(|h| h.domain.clone())
            .collect();

        let host = &self.inner().modules;
        let mut loaded = host.loaded();
        for (ty, ns, targets) in &regs.iqs {
            for l in loaded.iter() {
                if let Some((_, _, _)) = l
                    .regs
                    .iqs
                    .iter()
                    .find(|(t, n, tg)| t == ty && n == ns && tg.overlaps(*targets))
                {
                    return Err(ModuleError::DuplicateIq {
                        ty: *ty,
                        ns,
                        first: l.module.name(),
                        second: name,
                    });
                }
            }
        }
        let domain_link = if regs.domains.is_empty() {
            None
        } else {
            let (tx, rx) = mpsc::channel(DOMAIN_QUEUE);
            let link = Arc::new(DomainLink {
                id: next_link_id(),
                tx,
            });
            for d in &regs.domains {
                if let Err(reason) = self.components().bind(d, link.clone()) {
                    self.components().unbind_all(link.id);
                    return Err(ModuleError::Domain {
                        module: name,
                        domain: d.clone(),
                        reason,
                    });
                }
            }
            regs.tasks
                .push(Box::pin(drain_domain(self.clone(), module.clone(), rx)));
            Some(link.id)
        };
        for task in std::mem::take(&mut regs.tasks) {
            let token = token.clone();
            self.tasks().spawn(async move {
                tokio::select! {
                    () = token.cancelled() => {}
                    () = task => {}
                }
            });
        }
        loaded.push(Loaded {
            module,
            disabled,
            regs,
            token,
            domain_link,
        });
        *host.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(build(&loaded));
        Ok(())
    }

    /// Stops a module: its registrations leave the tables, its domains the route table, its
    /// tasks are cancelled, then its `stopped` runs.
    pub async fn stop_module(&self, name: &str) -> Result<(), ModuleError> {
        let host = &self.inner().modules;
        let gone = {
            let mut loaded = host.loaded();
            let Some(pos) = loaded.iter().position(|l| l.module.name() == name) else {
                return Err(ModuleError::NotRunning(name.to_owned()));
            };
            let gone = loaded.remove(pos);
            *host.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(build(&loaded));
            gone
        };
        if let Some(id) = gone.domain_link {
            self.components().unbind_all(id);
        }
        gone.token.cancel();
        gone.module.stopped(self).await;
        Ok(())
    }

    /// The running modules' names, in load order.
    pub fn module_names(&self) -> Vec<&'static str> {
        self.inner()
            .modules
            .loaded()
            .iter()
            .map(|l| l.module.name())
            .collect()
    }

    /// Disco features for `scope` on `host`, sorted, without duplicates.
    pub fn features(&self, scope: Scope, host: &str) -> Vec<&'static str> {
        let t = self.inner().modules.table();
        let mut v: Vec<&'static str> = t
            .features
            .iter()
            .filter(|(s, _, e)| *s == scope && e.enabled_for(host))
            .map(|(_, var, _)| *var)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The stream features modules offer at `stage` on a stream for `host`.
    pub fn stream_features(&self, stage: Stage, host: &str) -> Vec<Element> {
        let t = self.inner().modules.table();
        t.stream_features
            .iter()
            .filter(|(s, e)| *s == stage && e.enabled_for(host))
            .flat_map(|(_, e)| e.module.stream_features(stage, host))
            .collect()
    }

    /// `Point::ToClient`, run by a session's write loop: the stanza to write, or `None` if a
    /// module held or dropped it.
    pub fn to_client(&self, session: &crate::session::Session, mut st: Stanza) -> Option<Stanza> {
        let t = self.inner().modules.table();
        if !t.has_hooks(Point::ToClient) {
            return Some(st);
        }
        let host = session.jid().domain().as_str();
        for m in t.hooks(Point::ToClient, st.kind(), host) {
            if m.to_client(session, &mut st) == crate::hooks::Flow::Done {
                return None;
            }
        }
        Some(st)
    }
}

/// One module domain's stanzas, in order: registered iqs to `handle_iq`, the rest to
/// `domain_stanza`.
async fn drain_domain(server: Server, module: Arc<dyn Module>, mut rx: mpsc::Receiver<Stanza>) {
    while let Some(st) = rx.recv().await {
        let domain = st
            .to()
            .map(|t| t.domain().as_str().to_owned())
            .unwrap_or_default();
        let registered = IqType::of(&st).is_some_and(|ty| {
            let ns = st
                .iq_payload()
                .map(|p| p.ns().to_owned())
                .unwrap_or_default();
            server
                .inner()
                .modules
                .table()
                .iq_handler(ty, &ns, &IqTarget::Domain(domain.clone()))
                .is_some_and(|e| Arc::ptr_eq(&e.module, &module))
        });
        if registered {
            server.dispatch_iq(IqTarget::Domain(domain), st).await;
        } else {
            module.domain_stanza(&server, st).await;
        }
    }
}
