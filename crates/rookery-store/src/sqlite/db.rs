//! rookery-store, SQLite backend: connection plumbing shared by every store in `sqlite/`.
//!
//! The per-concern stores (accounts.rs, roster.rs, ...) hand closures over a `&Connection`
//! to [`Db::write`] or [`Db::read`]; this file decides which thread and connection runs
//! them so the tokio runtime never blocks on SQLite. The scheme is explained in
//! `sqlite/mod.rs`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::{Ctx, Location, migrate};
use crate::StoreError;

/// How long a connection waits for another connection's (or process's) lock before giving
/// up with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Writes queued beyond this make callers wait (backpressure instead of unbounded memory).
const QUEUE_DEPTH: usize = 256;
/// Upper bound on jobs committed together, so one transaction never grows without limit and
/// the write lock is released regularly for other processes.
const MAX_BATCH: usize = 64;
/// Reader threads, each with its own connection. WAL readers never block each other or the
/// writer; more threads would only compete for the two cores.
const READERS: usize = 4;
/// WAL pages after which a commit checkpoints (see `configure`).
const WAL_AUTOCHECKPOINT: i64 = 10_000;
/// Prepared statements kept per connection: more than the crate has, so none is evicted.
const STATEMENT_CACHE: usize = 128;

/// A write job as the writer thread sees it: run inside a savepoint, then told whether the
/// enclosing transaction committed.
trait WriteJob: Send {
    /// Runs the statements; returns `true` to keep them, `false` to roll back the savepoint.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Delivers the outcome. `commit` is the fate of the whole batch's transaction: a job's
    /// own result only counts once its changes are durable.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let outcome = match (commit, self.result) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(result)) => result,
            // Only reachable if the job panicked (the writer caught it) and never stored a
            // result.
            (Ok(()), None) => Err(StoreError::Backend("sqlite write job panicked".into())),
        };
        // The caller may have stopped waiting (dropped future); nothing to do then.
        let _ = self.reply.send(outcome);
    }
}

/// A handle on one SQLite database: the writer thread's queue plus the reader pool.
pub(crate) struct Db {
    jobs: mpsc::Sender<Box<dyn WriteJob>>,
    /// `None` for in-memory databases, whose only connection is the writer's.
    readers: Option<ReaderPool>,
}

impl Db {
    /// Starts the writer thread, which opens the database and migrates it before `open`
    /// returns, so a broken file or a too-new schema is reported here.
    pub(crate) async fn open(location: Location) -> Result<Arc<Db>, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let (ready_tx, ready_rx) = oneshot::channel();
        let reader_threads: ReaderThreads = Arc::default();
        let writer_location = location.clone();
        let writer_readers = Arc::clone(&reader_threads);
        std::thread::Builder::new()
            .name("rookery-sqlite-writer".into())
            .spawn(move || writer_main(&writer_location, queue, ready_tx, &writer_readers))
            .map_err(|e| StoreError::backend("spawning the sqlite writer thread", e))?;
        ready_rx
            .await
            .map_err(|_| StoreError::Backend("sqlite writer thread died while opening".into()))??;
        let readers = match location {
            Location::File(path) => Some(ReaderPool::start(path, &reader_threads)?),
            Location::Memory => None,
        };
        Ok(Arc::new(Db { jobs, readers }))
    }

    /// Runs `work` on the writer connection inside its own savepoint: an `Err` rolls back
    /// everything `work` did, an `Ok` is returned only after the transaction committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work: Some(work),
            result: None,
            reply,
        });
        self.jobs.send(job).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs `work` in a read transaction (one consistent snapshot) on a reader connection.
    /// `work` must not write; reader connections are `query_only`.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.readers {
            Some(pool) => pool.run(work).await,
            // In-memory: there is no second connection that could see the data.
            None => self.write(work).await,
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Backend("sqlite writer thread is gone".into())
}

/// The reader threads, joined by the writer thread before it closes its own connection.
type ReaderThreads = Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>;

/// The writer thread: open + migrate, report readiness, then serve batches until every
/// `Db` handle (and so every sender) is dropped.
fn writer_main(
    location: &Location,
    mut queue: mpsc::Receiver<Box<dyn WriteJob>>,
    ready: oneshot::Sender<Result<(), StoreError>>,
    reader_threads: &ReaderThreads,
) {
    let mut conn = match open_writer(location) {
        Ok(conn) => conn,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return; // the opener gave up waiting
    }
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        // Group commit: whatever queued up while the previous batch ran shares one
        // transaction, so a burst of writes pays for one commit instead of many.
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = run_batch(&mut conn, &mut batch);
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, jobs = batch.len(), "sqlite write batch failed");
        }
        for job in batch.drain(..) {
            job.finish(outcome.clone());
        }
    }
    // Every `Db` handle is gone, so the readers' queue is closed too: wait for them to close
    // their connections, then close ours. The last connection to close checkpoints the WAL,
    // and that file I/O belongs on this thread, not on whatever async task dropped the final
    // `Stores` handle.
    for reader in std::mem::take(&mut *lock(reader_threads)) {
        let _ = reader.join();
    }
    drop(conn);
}

/// Poisoning can only come from a panic while the lock is held, and no code here panics
/// while holding one, so the inner value is still good.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs every job in one IMMEDIATE transaction, each in its own savepoint so a failing job
/// (e.g. a Conflict) does not undo its neighbours. IMMEDIATE takes the write lock up front:
/// a deferred transaction that upgrades from read to write can fail with SQLITE_BUSY
/// without the busy timeout helping, which is exactly the multi-process case.
fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn WriteJob>]) -> Result<(), StoreError> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("beginning write transaction")?;
    for job in batch.iter_mut() {
        let sp = tx.savepoint().ctx("opening savepoint")?;
        // A panicking job must not kill the writer thread (that would break the store for
        // the rest of the process); its savepoint is rolled back like a failed job's.
        let keep = catch_unwind(AssertUnwindSafe(|| job.run(&sp))).unwrap_or(false);
        if keep {
            sp.commit().ctx("releasing savepoint")?;
        } else {
            sp.finish().ctx("rolling back savepoint")?; // drop behaviour is Rollback
        }
    }
    tx.commit().ctx("committing write transaction")
}

fn open_writer(location: &Location) -> Result<Connection, StoreError> {
    let mut conn = match location {
        Location::File(path) => {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::backend("creating database directory", e))?;
            }
            Connection::open(path).ctx("opening database")?
        }
        Location::Memory => Connection::open_in_memory().ctx("opening in-memory database")?,
    };
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx("setting busy_timeout")?;
    if let Location::File(_) = location {
        // Persistent in the file, but setting it again is a cheap no-op; a database that
        // refuses WAL (e.g. on a filesystem without shared memory) is rejected rather than
        // silently running with readers that block the writer.
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .ctx("enabling WAL")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "database refused WAL journal mode (got {mode})"
            )));
        }
    }
    configure(&conn)?;
    migrate::run(&mut conn)?;
    Ok(conn)
}

/// Per-connection settings shared by the writer and the readers.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    // In WAL mode NORMAL only syncs at checkpoints: a power cut can lose the last commits
    // but never corrupts the database, which is the usual trade for a chat server.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .ctx("setting synchronous")?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .ctx("enabling foreign keys")?;
    // Every write job runs in a savepoint (`writer_main`), whose journal of the pages it
    // changed is a temporary file once it outgrows a small memory buffer: with batches of a
    // few hundred stream-management ops that was most of them, a second pwrite of every page
    // on top of the WAL's. In memory it is bounded by the batch the writer commits.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .ctx("setting temp_store")?;
    // A checkpoint copies the WAL's pages into the database and syncs both. At the default
    // of 1,000 pages a busy stream-management outbox checkpointed a dozen times a second,
    // copying the same few hundred hot pages each time; at 10,000 (a WAL of up to 40 MB)
    // it is about once a second, with an eighth of the fsyncs.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)
        .ctx("setting wal_autocheckpoint")?;
    // Account deletion relies on ON DELETE CASCADE; the pragma is silently ignored in some
    // builds and inside transactions, so check it actually took.
    let fk: i64 = conn
        .pragma_query_value(None, "foreign_keys", |row| row.get(0))
        .ctx("checking foreign keys")?;
    if fk != 1 {
        return Err(StoreError::Backend(
            "sqlite foreign key enforcement could not be enabled".into(),
        ));
    }
    // Every store prepares its statements once (`prepare_cached`); the default cache of 16
    // is smaller than the crate's set of statements, and an evicted one is parsed again on
    // its next use, which the stream-management outbox (sqlite/sm.rs) would pay per batch.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    // No CREATE flag: the writer created the file before any reader exists.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).ctx("opening reader connection")?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .ctx("setting busy_timeout")?;
    configure(&conn)?;
    // Opened read-write (a read-only WAL connection needs extra care around the -shm file)
    // but refuses writes, so a write routed here by mistake fails loudly.
    conn.pragma_update(None, "query_only", "ON")
        .ctx("setting query_only")?;
    Ok(conn)
}

/// A read as a reader thread sees it: given the thread's connection (or why it could not be
/// opened), it runs and replies.
type ReadJob = Box<dyn FnOnce(Result<&mut Connection, StoreError>) + Send>;

/// A fixed set of reader threads, each with its own `query_only` connection, opened on first
/// use and reopened after a job panicked. Fixed threads rather than `spawn_blocking`: with
/// the blocking pool, a read finishing on one thread while the next was already being
/// spawned made tokio start another thread, and logins under load left ~36 idle threads
/// (each with its own malloc arena) behind.
struct ReaderPool {
    jobs: std::sync::mpsc::Sender<ReadJob>,
}

impl ReaderPool {
    fn start(path: PathBuf, threads: &ReaderThreads) -> Result<Self, StoreError> {
        let (jobs, queue) = std::sync::mpsc::channel::<ReadJob>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..READERS {
            let queue = Arc::clone(&queue);
            let path = path.clone();
            let handle = std::thread::Builder::new()
                .name(format!("rookery-sqlite-r{i}"))
                .spawn(move || reader_main(&path, &queue))
                .map_err(|e| StoreError::backend("spawning a sqlite reader thread", e))?;
            lock(threads).push(handle);
        }
        Ok(ReaderPool { jobs })
    }

    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            // The caller may have stopped waiting (dropped future); nothing to do then.
            let _ = reply.send(conn.and_then(|c| read_snapshot(c, work)));
        });
        self.jobs.send(job).map_err(|_| readers_gone())?;
        // A dropped reply means the job panicked (the thread caught it).
        answer
            .await
            .map_err(|_| StoreError::Backend("sqlite read job panicked".into()))?
    }
}

fn readers_gone() -> StoreError {
    StoreError::Backend("sqlite reader threads are gone".into())
}

/// One reader thread: takes jobs from the shared queue until every `Db` handle is dropped.
fn reader_main(path: &Path, queue: &Mutex<std::sync::mpsc::Receiver<ReadJob>>) {
    let mut conn: Option<Connection> = None;
    loop {
        // One thread waits in `recv` while the others wait for the lock; a job releases it.
        let Ok(job) = lock(queue).recv() else {
            return;
        };
        if conn.is_none() {
            match open_reader(path) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    job(Err(e));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if catch_unwind(AssertUnwindSafe(|| job(Ok(c)))).is_err() {
            // The connection may be mid-transaction: drop it, open a fresh one next time.
            conn = None;
        }
    }
}

fn read_snapshot<T, F>(conn: &mut Connection, work: F) -> Result<T, StoreError>
where
    F: FnOnce(&Connection) -> Result<T, StoreError>,
{
    // A deferred transaction pins one WAL snapshot for all of `work`'s statements (e.g.
    // the roster version and the items it belongs to).
    let tx = conn.transaction().ctx("beginning read transaction")?;
    let value = work(&tx)?;
    tx.commit().ctx("ending read transaction")?;
    Ok(value)
}
