//! rookery-store, PostgreSQL backend: connection plumbing shared by every store in
//! `postgres/`.
//!
//! The per-feature stores (accounts.rs, roster.rs, ...) hand an async closure over a [`Conn`]
//! to [`Pg::run`]; this file owns the pool, runs each call as its own task, prepares
//! statements once per connection and sends multi-statement transactions as one pipeline.
//! The scheme is explained in `postgres/mod.rs`.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row, Statement};

use super::{PgOptions, check_schema_name, migrate};
use crate::StoreError;

/// How long opening one connection may take (unless the URL sets `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for a free connection when all `pool_size` are busy before it
/// fails; generous, since waiting is the pool's backpressure.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A statement's parameters, as tokio-postgres takes them.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// `params![a, b]`: the values as a [`Params`] slice, for the steps of [`Conn::pipeline`]
/// (where the element type is not inferred from a function signature).
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$(&$p as &(dyn tokio_postgres::types::ToSql + Sync)),*][..]
    };
}
pub(crate) use params;

/// How a pipelined transaction starts.
#[derive(Clone, Copy)]
pub(crate) enum Begin {
    /// A read-write transaction (READ COMMITTED, PostgreSQL's default).
    Write,
    /// One consistent snapshot for several reads.
    ReadSnapshot,
}

impl Begin {
    fn sql(self) -> &'static str {
        match self {
            Begin::Write => "BEGIN",
            Begin::ReadSnapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }
}

/// A handle on one PostgreSQL schema: the connection pool.
pub(crate) struct Pg {
    pool: Pool,
}

impl Pg {
    /// Builds the pool and migrates the schema on its first connection, so a wrong URL, an
    /// unreachable server or a too-new schema is reported here rather than on first use.
    pub(crate) async fn open(opts: &PgOptions) -> Result<Arc<Pg>, StoreError> {
        check_schema_name(&opts.schema).map_err(StoreError::Backend)?;
        if opts.pool_size == 0 {
            return Err(StoreError::Backend(
                "postgres: pool_size must be at least 1".into(),
            ));
        }
        let mut cfg: tokio_postgres::Config = opts
            .url
            .parse()
            .map_err(|e| store_error("parsing the database url", &e))?;
        // The schema is a plain identifier (checked above), so it needs no quoting here. Any
        // options the URL already carries are kept.
        let search_path = format!("-c search_path={}", opts.schema);
        let options = match cfg.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {search_path}"),
            _ => search_path,
        };
        cfg.options(options);
        if cfg.get_application_name().is_none() {
            cfg.application_name("rookery");
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                // A closed connection is still noticed (and replaced) without a round trip
                // per checkout; a connection that died while idle fails one call.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(1)))
            .build()
            .map_err(|e| StoreError::backend("postgres: building the connection pool", e))?;
        let pg = Arc::new(Pg { pool });
        let mut conn = pg.conn().await?;
        migrate::run(&mut conn, &opts.schema).await?;
        Ok(pg)
    }

    /// A connection from the pool.
    async fn conn(&self) -> Result<Conn, StoreError> {
        let obj = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("postgres: connecting: {}", chain(&e))))?;
        Ok(Conn {
            obj: Some(obj),
            in_tx: false,
        })
    }

    /// Runs `op` with a pooled connection in a task of its own and waits for it. The task
    /// finishes even if the caller stops waiting, so a call is never abandoned between two
    /// of its statements (see `postgres/mod.rs`).
    pub(crate) async fn run<T, F, Fut>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pg = Arc::clone(self);
        let task = tokio::spawn(async move {
            let conn = pg.conn().await?;
            op(conn).await
        });
        task.await
            .map_err(|e| StoreError::Backend(format!("postgres store task failed: {e}")))?
    }
}

/// One pooled connection, lent to one store call.
///
/// If it is dropped while a transaction may still be open (a panic or a runtime shutdown
/// between `BEGIN` and `COMMIT`), it is closed instead of going back to the pool, so the
/// server rolls the transaction back and the next call never inherits it.
pub(crate) struct Conn {
    /// Always `Some` until `drop` takes it.
    obj: Option<Object>,
    in_tx: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.in_tx
            && let Some(obj) = self.obj.take()
        {
            // Detached from the pool: dropping the client closes the connection.
            drop(Object::take(obj));
        }
    }
}

impl Conn {
    fn client(&self) -> &ClientWrapper {
        match &self.obj {
            Some(obj) => obj,
            // `obj` is only taken by `drop`, after which `self` cannot be used.
            None => unreachable!("postgres connection used after drop"),
        }
    }

    /// The statement for `sql`, prepared on this connection the first time it is used and
    /// cached with the connection afterwards.
    pub(crate) async fn prepare(&self, sql: &str) -> Result<Statement, StoreError> {
        self.client()
            .prepare_cached(sql)
            .await
            .map_err(|e| store_error("preparing a statement", &e))
    }

    /// Every row of one statement, run on its own (autocommit).
    pub(crate) async fn query(
        &self,
        what: &str,
        stmt: &Statement,
        params: Params<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        self.client()
            .query(stmt, params)
            .await
            .map_err(|e| store_error(what, &e))
    }

    /// At most one row of one statement, run on its own (autocommit).
    pub(crate) async fn query_opt(
        &self,
        what: &str,
        stmt: &Statement,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        self.client()
            .query_opt(stmt, params)
            .await
            .map_err(|e| store_error(what, &e))
    }

    /// Exactly one row of one statement, run on its own (autocommit).
    pub(crate) async fn query_one(
        &self,
        what: &str,
        stmt: &Statement,
        params: Params<'_>,
    ) -> Result<Row, StoreError> {
        self.client()
            .query_one(stmt, params)
            .await
            .map_err(|e| store_error(what, &e))
    }

    /// The number of rows one statement changed, run on its own (autocommit).
    pub(crate) async fn execute(
        &self,
        what: &str,
        stmt: &Statement,
        params: Params<'_>,
    ) -> Result<u64, StoreError> {
        self.client()
            .execute(stmt, params)
            .await
            .map_err(|e| store_error(what, &e))
    }

    /// Runs `sql`, one or more statements without parameters (DDL), with the simple query
    /// protocol: nothing is prepared or cached.
    pub(crate) async fn batch(&self, what: &str, sql: &str) -> Result<(), StoreError> {
        self.client()
            .batch_execute(sql)
            .await
            .map_err(|e| store_error(what, &e))
    }

    /// Starts a transaction driven statement by statement (migrations); ended by
    /// [`Conn::commit`]. Returning early in between closes the connection (see [`Conn`]).
    pub(crate) async fn begin(&mut self) -> Result<(), StoreError> {
        self.in_tx = true;
        self.client()
            .batch_execute(Begin::Write.sql())
            .await
            .map_err(|e| store_error("beginning a transaction", &e))
    }

    /// Commits the transaction started by [`Conn::begin`].
    pub(crate) async fn commit(&mut self) -> Result<(), StoreError> {
        self.client()
            .batch_execute("COMMIT")
            .await
            .map_err(|e| store_error("committing", &e))?;
        self.in_tx = false;
        Ok(())
    }

    /// Runs `steps` in one transaction, sent as one pipeline: `BEGIN`, every statement and
    /// `COMMIT` go out together and PostgreSQL answers them in order, so the whole
    /// transaction costs one round trip. Returns each statement's rows, or the first error
    /// (a failed statement makes the ones after it fail too and the `COMMIT` a rollback,
    /// so nothing of the transaction is kept).
    pub(crate) async fn pipeline(
        &mut self,
        what: &str,
        begin: Begin,
        steps: &[(&Statement, Params<'_>)],
    ) -> Result<Vec<Vec<Row>>, StoreError> {
        self.in_tx = true;
        let client = self.client();
        let mut futures: Vec<StepFuture<'_>> = Vec::with_capacity(steps.len() + 2);
        futures.push(Box::pin(async move {
            client.batch_execute(begin.sql()).await.map(|()| Vec::new())
        }));
        for (stmt, params) in steps {
            futures.push(Box::pin(client.query(*stmt, params)));
        }
        futures.push(Box::pin(async move {
            client.batch_execute("COMMIT").await.map(|()| Vec::new())
        }));
        let mut results = join_in_order(futures).await;
        let commit = results.pop();
        let begun = !results.is_empty() && results.remove(0).is_ok();
        // The transaction is over (committed, or rolled back by the COMMIT of a failed
        // transaction) only if both ends went through; otherwise the connection is closed.
        if begun && matches!(commit, Some(Ok(_))) {
            self.in_tx = false;
        }
        let mut rows = Vec::with_capacity(results.len());
        for result in results {
            rows.push(result.map_err(|e| store_error(what, &e))?);
        }
        match commit {
            Some(Err(e)) => Err(store_error(&format!("{what} (commit)"), &e)),
            _ if !begun => Err(StoreError::Backend(format!(
                "postgres: {what}: the transaction did not start"
            ))),
            _ => Ok(rows),
        }
    }
}

type StepFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>>;

/// Waits for all `futures`, polling them always in list order. tokio-postgres sends a
/// request when its future is first polled, so this order is the order of the statements
/// on the wire.
async fn join_in_order(
    futures: Vec<StepFuture<'_>>,
) -> Vec<Result<Vec<Row>, tokio_postgres::Error>> {
    let mut slots: Vec<(Option<StepFuture<'_>>, Option<_>)> =
        futures.into_iter().map(|f| (Some(f), None)).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, result) in &mut slots {
            if let Some(f) = future {
                match f.as_mut().poll(cx) {
                    Poll::Ready(r) => {
                        *result = Some(r);
                        *future = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    slots.into_iter().filter_map(|(_, r)| r).collect()
}

/// A driver error as `StoreError`: a foreign key violation means the account a write names
/// was deleted concurrently (every foreign key leads to an account, directly or through its
/// roster item), which is `NotFound` like any write for a missing account; anything else is
/// `Backend` with the server's message.
pub(crate) fn store_error(what: &str, e: &tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
        return StoreError::NotFound;
    }
    StoreError::Backend(format!("postgres: {what}: {}", chain(e)))
}

/// An error and its causes, "outer: inner: ...", since tokio-postgres keeps the server's
/// message in the cause.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut last = text.clone();
    let mut cause = e.source();
    while let Some(c) = cause {
        // Wrappers sometimes repeat their cause's message; say it once.
        let this = c.to_string();
        if this != last {
            text.push_str(": ");
            text.push_str(&this);
        }
        last = this;
        cause = c.source();
    }
    text
}

/// "postgresql://user@host:port/database, schema s" for logs and errors, without the password.
pub(crate) fn describe(cfg: &tokio_postgres::Config, schema: &str) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match cfg.get_ports().get(i).or(cfg.get_ports().first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    format!(
        "postgresql://{}@{}/{}, schema {schema}",
        cfg.get_user().unwrap_or(""),
        hosts.join(","),
        cfg.get_dbname().unwrap_or("")
    )
}
