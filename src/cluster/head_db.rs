//! The head's durable tables: what it must still know after a crash and a restart on the
//! same cluster directory. An embedded redb database (`head.redb` in the cluster directory),
//! written by a thread of its own: the changes that arrive together go into one transaction
//! (group commit), and each is acknowledged once that transaction is durable. So a change
//! the head acknowledged survives a `kill -9`, and one it did not acknowledge is either
//! whole or absent.
//!
//! Tables: the members and what they announced; actor names (namespace and name to actor,
//! class and node); where actors created on other nodes than their owner's run; the head's
//! restarts (when each outage began and ended); and a counter of membership versions, so a
//! restarted head's views are newer than any a node already has.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::base::id::{ActorId, NodeId};
use crate::base::jobs::Jobs;
use crate::base::kv::Key as KvKey;
pub use crate::base::membership::HeadOutage as Outage;
use crate::base::rows::PlacementGroupInfo;
use crate::wire::NodeInfo;

const MEMBERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("members");
const NAMES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("names");
const LOCATIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("locations");
const RESTARTS: TableDefinition<u64, &[u8]> = TableDefinition::new("restarts");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The job table, as one entry (it is small: running jobs and the last ended ones).
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
/// Placement groups: id to the group (its bundles and their nodes, its creator).
const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");
/// The key-value store for libraries: (namespace, key) to value.
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// The file in the cluster directory.
pub(crate) const FILE: &str = "head.redb";

/// A table of the head's database could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HeadDbError {
    /// The database could not be opened (or made).
    #[error("the head's database {path} cannot be opened: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A change could not be made durable; it did not happen.
    #[error("the head's database could not record {what}: {reason}")]
    Write {
        /// The change.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A table could not be read.
    #[error("the head's database could not read {what}: {reason}")]
    Read {
        /// The table.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// An actor's name: its namespace and name.
pub(crate) type NameKey = (String, String);
/// What a name points at: the actor, its class, its node.
pub(crate) type Named = (ActorId, String, NodeId);

/// What the head finds in its database when it starts.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    pub members: Vec<NodeInfo>,
    pub names: Vec<(NameKey, Named)>,
    pub locations: Vec<(ActorId, (String, NodeId))>,
    /// Every outage so far, this start's included (none for a new cluster).
    pub outages: Vec<Outage>,
    /// The last membership version a node may have seen.
    pub view_version: u64,
    /// The job table, if one was recorded.
    pub jobs: Option<Jobs>,
    /// The key-value store's entries.
    pub kv: Vec<(KvKey, Vec<u8>)>,
    /// The placement groups.
    pub groups: Vec<PlacementGroupInfo>,
}

/// The head's database (closed once the head stops). Changes are made durable by a writer
/// thread of its own, which puts every change waiting when it starts a transaction into
/// that one transaction: one `fsync` for all the requests that arrived together (group
/// commit). A change is durable when the writer acknowledges it.
pub(crate) struct HeadDb {
    db: Option<Arc<Database>>,
    writer: Option<Writer>,
    /// Submissions not yet acknowledged (for [`HeadDb::settled`]).
    pending: Arc<AtomicUsize>,
    /// Transactions the writer committed.
    #[cfg_attr(not(test), allow(dead_code))]
    commits: Arc<AtomicUsize>,
}

/// The writer thread and the way to it.
struct Writer {
    to: mpsc::Sender<Submission>,
    thread: std::thread::JoinHandle<()>,
}

/// Changes made durable together, and who is told when they are.
struct Submission {
    changes: Vec<Change>,
    done: Box<dyn FnOnce(Result<(), HeadDbError>) + Send>,
}

/// At most this many submissions go into one transaction.
const MOST_PER_COMMIT: usize = 1024;

/// One change to the head's tables.
#[derive(Debug)]
pub(crate) enum Change {
    /// A member joined (or announced itself again), at membership version `version`.
    Member { info: NodeInfo, version: u64 },
    /// Members left or were declared dead, at membership version `version`.
    MembersGone { gone: Vec<NodeId>, version: u64 },
    /// A name now points at an actor.
    Name(NameKey, Named),
    /// Names no longer held.
    NamesFreed(Vec<NameKey>),
    /// An actor (of a class) runs on a node.
    Location(ActorId, String, NodeId),
    /// Actors whose locations are no longer kept.
    LocationsGone(Vec<ActorId>),
    /// The job table, written whole.
    Jobs(Vec<u8>),
    /// A key of the key-value store has a value.
    Kv(KvKey, Vec<u8>),
    /// Keys of the key-value store deleted.
    KvGone(Vec<KvKey>),
    /// A placement group was made.
    Group(PlacementGroupInfo),
    /// Placement groups removed (or whose creator is gone).
    GroupsGone(Vec<String>),
    /// The head is alive at this time (Unix ms).
    Alive(u64),
}

impl Change {
    /// The job table as it is now.
    pub fn jobs(jobs: &Jobs) -> Change {
        Change::Jobs(encode(jobs))
    }

    /// What the change records, for errors.
    fn what(&self) -> &'static str {
        match self {
            Change::Member { .. } => "a member",
            Change::MembersGone { .. } => "members gone",
            Change::Name(..) => "an actor's name",
            Change::NamesFreed(_) => "names freed",
            Change::Location(..) => "where an actor runs",
            Change::LocationsGone(_) => "actors gone",
            Change::Jobs(_) => "the jobs",
            Change::Kv(..) => "a key's value",
            Change::KvGone(_) => "keys deleted",
            Change::Group(_) => "a placement group",
            Change::GroupsGone(_) => "placement groups removed",
            Change::Alive(_) => "the head's liveness",
        }
    }

    fn apply(&self, txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
        match self {
            Change::Member { info, version } => {
                txn.open_table(MEMBERS)?
                    .insert(encode(&info.node_id).as_slice(), encode(info).as_slice())?;
                txn.open_table(META)?.insert("view_version", *version)?;
            }
            Change::MembersGone { gone, version } => {
                let mut members = txn.open_table(MEMBERS)?;
                for id in gone {
                    members.remove(encode(id).as_slice())?;
                }
                txn.open_table(META)?.insert("view_version", *version)?;
            }
            Change::Name(key, named) => {
                txn.open_table(NAMES)?
                    .insert(encode(key).as_slice(), encode(named).as_slice())?;
            }
            Change::NamesFreed(keys) => {
                let mut names = txn.open_table(NAMES)?;
                for key in keys {
                    names.remove(encode(key).as_slice())?;
                }
            }
            Change::Location(actor, class, node) => {
                txn.open_table(LOCATIONS)?
                    .insert(encode(actor).as_slice(), encode(&(class, node)).as_slice())?;
            }
            Change::LocationsGone(actors) => {
                let mut locations = txn.open_table(LOCATIONS)?;
                for actor in actors {
                    locations.remove(encode(actor).as_slice())?;
                }
            }
            Change::Jobs(table) => {
                txn.open_table(JOBS)?.insert("table", table.as_slice())?;
            }
            Change::Kv(key, value) => {
                txn.open_table(KV)?
                    .insert(encode(key).as_slice(), value.as_slice())?;
            }
            Change::KvGone(keys) => {
                let mut kv = txn.open_table(KV)?;
                for key in keys {
                    kv.remove(encode(key).as_slice())?;
                }
            }
            Change::Group(group) => {
                txn.open_table(GROUPS)?
                    .insert(group.id.as_str(), encode(group).as_slice())?;
            }
            Change::GroupsGone(ids) => {
                let mut groups = txn.open_table(GROUPS)?;
                for id in ids {
                    groups.remove(id.as_str())?;
                }
            }
            Change::Alive(now_ms) => {
                txn.open_table(META)?.insert("alive_ms", *now_ms)?;
            }
        }
        Ok(())
    }
}

/// The writer thread: takes every submission waiting, makes them durable in one
/// transaction, and tells each. It ends when the database is closed.
fn write_loop(
    database: Arc<Database>,
    from: mpsc::Receiver<Submission>,
    pending: Arc<AtomicUsize>,
    commits: Arc<AtomicUsize>,
) {
    while let Ok(first) = from.recv() {
        let mut batch = vec![first];
        while batch.len() < MOST_PER_COMMIT {
            match from.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // A batch of nothing but barriers (`settled`) needs no transaction.
        let failed = if batch.iter().all(|s| s.changes.is_empty()) {
            None
        } else {
            commits.fetch_add(1, Ordering::Relaxed);
            commit(&database, batch.iter().flat_map(|s| &s.changes)).err()
        };
        if let Some(reason) = &failed {
            tracing::error!(
                "the head's database could not make {} changes durable: {reason}",
                batch.len()
            );
        }
        for submission in batch {
            let what = submission.changes.first().map_or("a barrier", Change::what);
            let result = match &failed {
                None => Ok(()),
                Some(reason) => Err(HeadDbError::Write {
                    what,
                    reason: reason.clone(),
                }),
            };
            pending.fetch_sub(1, Ordering::SeqCst);
            (submission.done)(result);
        }
    }
}

/// One durable transaction of `changes`.
fn commit<'a>(
    database: &Database,
    changes: impl IntoIterator<Item = &'a Change>,
) -> Result<(), String> {
    let txn = database.begin_write().map_err(|e| e.to_string())?;
    for change in changes {
        change.apply(&txn).map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())
}

/// Resolves once the changes it waits for are durable (or could not be made so).
pub(crate) struct Durable(tokio::sync::oneshot::Receiver<Result<(), HeadDbError>>);

impl Durable {
    /// Waits for the changes. (A database closed on purpose still makes durable what it was
    /// given first; only a writer that died answers nothing.)
    pub async fn wait(self) -> Result<(), HeadDbError> {
        self.0.await.unwrap_or_else(|_| Err(writer_gone()))
    }
}

/// The error for changes the writer thread can no longer take.
fn writer_gone() -> HeadDbError {
    HeadDbError::Write {
        what: "a change",
        reason: "the database's writer thread ended".into(),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("the head's tables encode")
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, HeadDbError> {
    postcard::from_bytes(bytes).map_err(|e| HeadDbError::Read {
        what,
        reason: format!("an entry does not decode: {e}"),
    })
}

fn write_err(what: &'static str) -> impl Fn(redb::Error) -> HeadDbError {
    move |e| HeadDbError::Write {
        what,
        reason: e.to_string(),
    }
}

fn read_err(what: &'static str) -> impl Fn(redb::Error) -> HeadDbError {
    move |e| HeadDbError::Read {
        what,
        reason: e.to_string(),
    }
}

impl HeadDb {
    /// Opens (or makes) the database in `dir` and reads what it holds. `now_ms` (Unix ms) is
    /// when this head starts: if the database held a previous head's tables, this start ends
    /// an outage that began when that head last recorded itself alive.
    pub fn open(dir: &Path, now_ms: u64) -> Result<(HeadDb, Restored), HeadDbError> {
        let path = dir.join(FILE);
        let db = Database::create(&path).map_err(|e| HeadDbError::Open {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        HeadDb::start(db, now_ms, path)
    }

    /// A database on `backend` (a test's: a disk that fills up).
    #[cfg(test)]
    pub fn open_on(
        backend: impl redb::StorageBackend,
        now_ms: u64,
    ) -> Result<(HeadDb, Restored), HeadDbError> {
        let path = PathBuf::from("(a test's storage)");
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| HeadDbError::Open {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        HeadDb::start(db, now_ms, path)
    }

    /// Reads what `db` holds and starts its writer.
    fn start(db: Database, now_ms: u64, path: PathBuf) -> Result<(HeadDb, Restored), HeadDbError> {
        let mut db = HeadDb {
            db: Some(Arc::new(db)),
            writer: None,
            pending: Arc::default(),
            commits: Arc::default(),
        };
        let restored = db.restore(now_ms)?;
        let (to, from) = mpsc::channel();
        let database = db.db.clone().expect("open");
        let (pending, commits) = (db.pending.clone(), db.commits.clone());
        let thread = std::thread::Builder::new()
            .name("mobula-head-db".into())
            .spawn(move || write_loop(database, from, pending, commits))
            .map_err(|e| HeadDbError::Open {
                path,
                reason: format!("its writer thread cannot start: {e}"),
            })?;
        db.writer = Some(Writer { to, thread });
        Ok((db, restored))
    }

    fn restore(&self, now_ms: u64) -> Result<Restored, HeadDbError> {
        let mut out = Restored::default();
        let Some(database) = &self.db else {
            return Ok(out);
        };
        let (alive, started) = {
            let txn = database
                .begin_read()
                .map_err(|e| read_err("the tables")(e.into()))?;
            let meta = |key: &str| -> Result<Option<u64>, HeadDbError> {
                match txn.open_table(META) {
                    Ok(t) => Ok(t
                        .get(key)
                        .map_err(|e| read_err("meta")(e.into()))?
                        .map(|v| v.value())),
                    Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                    Err(e) => Err(read_err("meta")(e.into())),
                }
            };
            out.view_version = meta("view_version")?.unwrap_or(0);
            let alive = meta("alive_ms")?;
            let started = meta("started_ms")?;
            macro_rules! each {
                ($table:expr, $what:expr, |$k:ident, $v:ident| $body:expr) => {
                    match txn.open_table($table) {
                        Ok(t) => {
                            for entry in t.iter().map_err(|e| read_err($what)(e.into()))? {
                                let (k, v) = entry.map_err(|e| read_err($what)(e.into()))?;
                                let ($k, $v) = (k.value(), v.value());
                                $body;
                            }
                        }
                        Err(redb::TableError::TableDoesNotExist(_)) => {}
                        Err(e) => return Err(read_err($what)(e.into())),
                    }
                };
            }
            each!(MEMBERS, "members", |_k, v| out
                .members
                .push(decode(v, "members")?));
            each!(NAMES, "names", |k, v| out
                .names
                .push((decode(k, "names")?, decode(v, "names")?)));
            each!(LOCATIONS, "locations", |k, v| out
                .locations
                .push((decode(k, "locations")?, decode(v, "locations")?)));
            each!(JOBS, "jobs", |_k, v| out.jobs = Some(decode(v, "jobs")?));
            each!(KV, "kv", |k, v| out.kv.push((decode(k, "kv")?, v.to_vec())));
            each!(GROUPS, "groups", |_k, v| out
                .groups
                .push(decode(v, "groups")?));
            each!(RESTARTS, "restarts", |_k, v| out
                .outages
                .push(decode(v, "restarts")?));
            (alive, started)
        };
        // A previous head ran on these tables: this start ends its outage.
        if let Some(started) = started {
            let outage = Outage {
                down_ms: alive.unwrap_or(started).max(started),
                up_ms: now_ms,
            };
            let index = out.outages.len() as u64;
            self.write("a restart", |txn| {
                txn.open_table(RESTARTS)?
                    .insert(index, encode(&outage).as_slice())?;
                Ok(())
            })?;
            out.outages.push(outage);
        }
        self.write("the head's start", |txn| {
            let mut meta = txn.open_table(META)?;
            meta.insert("started_ms", now_ms)?;
            meta.insert("alive_ms", now_ms)?;
            Ok(())
        })?;
        Ok(out)
    }

    /// One durable transaction (none once the database is closed: the head is stopping),
    /// made here rather than by the writer (at the start, and at the stop).
    fn write(
        &self,
        what: &'static str,
        change: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), HeadDbError> {
        let Some(database) = &self.db else {
            return Ok(());
        };
        let txn = database
            .begin_write()
            .map_err(|e| write_err(what)(e.into()))?;
        change(&txn).map_err(write_err(what))?;
        txn.commit().map_err(|e| write_err(what)(e.into()))
    }

    /// Hands `changes` to the writer, to be made durable in one transaction (with whatever
    /// else is waiting), and calls `done` when they are. Submissions are made durable in the
    /// order they are made. Once the database is closed, `done` is told `Ok` at once.
    fn submit_then(
        &self,
        changes: Vec<Change>,
        done: impl FnOnce(Result<(), HeadDbError>) + Send + 'static,
    ) {
        let Some(writer) = &self.writer else {
            return done(Ok(()));
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        let submission = Submission {
            changes,
            done: Box::new(done),
        };
        if let Err(mpsc::SendError(lost)) = writer.to.send(submission) {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            (lost.done)(Err(writer_gone()));
        }
    }

    /// Hands `changes` to the writer; the answer says when they are durable. Call it under
    /// the lock that decided the changes, so that the order of the decisions is the order
    /// on disk, and wait outside it, so that other requests' changes join the same commit.
    pub fn submit(&self, changes: Vec<Change>) -> Durable {
        let (tell, told) = tokio::sync::oneshot::channel();
        self.submit_then(changes, move |result| {
            let _ = tell.send(result);
        });
        Durable(told)
    }

    /// Makes `changes` durable, waiting here (in one transaction with whatever else is
    /// waiting).
    pub fn commit(&self, changes: Vec<Change>) -> Result<(), HeadDbError> {
        if changes.is_empty() {
            return Ok(());
        }
        let (tell, told) = mpsc::channel();
        self.submit_then(changes, move |result| {
            let _ = tell.send(result);
        });
        told.recv().unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Hands `changes` to the writer without waiting; a failure is logged (by the writer).
    pub fn record(&self, changes: Vec<Change>) {
        self.submit_then(changes, |_| {});
    }

    /// Resolves once every change submitted so far is durable: an answer that reads the
    /// tables waits for it, so that it never shows what a crash could still undo. `None`
    /// when nothing is on its way.
    pub fn settled(&self) -> Option<Durable> {
        (self.pending.load(Ordering::SeqCst) > 0).then(|| self.submit(Vec::new()))
    }

    /// The cluster stops on purpose (`mobula stop`, the head's guard dropped): every node
    /// was told to stop, so no member, name or location is left to carry over, and the next
    /// start ends no outage. The database is closed (another head may open it).
    pub fn stop_cleanly(&mut self) -> Result<(), HeadDbError> {
        self.close_writer();
        let cleared = self.write("the cluster's stop", |txn| {
            for table in [MEMBERS, NAMES, LOCATIONS] {
                txn.delete_table(table)?;
            }
            txn.delete_table(JOBS)?;
            txn.delete_table(KV)?;
            txn.delete_table(GROUPS)?;
            txn.open_table(META)?.remove("started_ms")?;
            Ok(())
        });
        self.db = None;
        cleared
    }

    /// Submissions waiting to be made durable (the writer's queue).
    pub fn waiting(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Ends the writer once it has made durable what it was given.
    fn close_writer(&mut self) {
        if let Some(Writer { to, thread }) = self.writer.take() {
            drop(to);
            let _ = thread.join();
        }
    }
}

impl Drop for HeadDb {
    /// The database is closed (its file free for another head) once the writer has ended.
    fn drop(&mut self) {
        self.close_writer();
    }
}

/// A disk that fills up when a test says so: storage in memory whose writes, syncs and
/// growth fail with `StorageFull` from then on.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct FillingDisk {
    bytes: redb::backends::InMemoryBackend,
    /// Set: the disk is full.
    pub full: Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(test)]
impl FillingDisk {
    fn check(&self) -> Result<(), redb::BackendError> {
        if self.full.load(Ordering::SeqCst) {
            let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
            return Err(redb::BackendError::Io(full));
        }
        Ok(())
    }
}

#[cfg(test)]
impl redb::StorageBackend for FillingDisk {
    fn len(&self) -> Result<u64, redb::BackendError> {
        self.bytes.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), redb::BackendError> {
        self.bytes.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), redb::BackendError> {
        self.check()?;
        self.bytes.set_len(len)
    }
    fn sync_data(&self) -> Result<(), redb::BackendError> {
        self.check()?;
        self.bytes.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), redb::BackendError> {
        self.check()?;
        self.bytes.write(offset, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mobula-head-db-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn tables_outlive_the_head_and_restarts_are_counted() {
        let d = dir("outlive");
        let (a, b) = (NodeId::random(), NodeId::random());
        let actor = ActorId::from_parts(7, 1);
        {
            let (db, restored) = HeadDb::open(&d, 1_000).unwrap();
            assert!(restored.names.is_empty() && restored.outages.is_empty());
            db.commit(vec![
                Change::Name(
                    ("ns".into(), "counter".into()),
                    (actor, "Counter".into(), a),
                ),
                Change::Name(("ns".into(), "gone".into()), (actor, "Counter".into(), a)),
            ])
            .unwrap();
            // Submitted without waiting: still made durable before the head's end.
            db.record(vec![Change::NamesFreed(vec![("ns".into(), "gone".into())])]);
            db.commit(vec![Change::Location(actor, "Counter".into(), b)])
                .unwrap();
            db.record(vec![Change::Alive(1_500)]);
        } // the head dies here
        let (db, restored) = HeadDb::open(&d, 4_000).unwrap();
        assert_eq!(
            restored.names,
            vec![(
                ("ns".into(), "counter".into()),
                (actor, "Counter".into(), a)
            )]
        );
        assert_eq!(restored.locations, vec![(actor, ("Counter".into(), b))]);
        assert_eq!(
            restored.outages,
            vec![Outage {
                down_ms: 1_500,
                up_ms: 4_000
            }]
        );
        db.commit(vec![Change::LocationsGone(vec![actor])]).unwrap();
        drop(db);
        let (mut db, restored) = HeadDb::open(&d, 9_000).unwrap();
        assert!(restored.locations.is_empty());
        assert_eq!(restored.outages.len(), 2);
        assert_eq!(restored.outages[1].down_ms, 4_000);
        // A clean stop leaves nothing to carry over, and ends no outage.
        db.stop_cleanly().unwrap();
        let (_, restored) = HeadDb::open(&d, 12_000).unwrap();
        assert!(restored.names.is_empty() && restored.members.is_empty());
        assert_eq!(restored.outages.len(), 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn changes_that_arrive_while_the_writer_commits_share_one_commit_in_order() {
        let d = dir("group");
        let (db, _) = HeadDb::open(&d, 0).unwrap();
        // The writer is held inside its first acknowledgement while 100 more arrive.
        let (hold, held) = mpsc::channel::<()>();
        let (inside, writer_inside) = mpsc::channel::<()>();
        db.submit_then(vec![Change::Alive(1)], move |r| {
            r.unwrap();
            inside.send(()).unwrap();
            held.recv().unwrap();
        });
        writer_inside.recv().unwrap();
        let key = |i: usize| ("ns".to_string(), format!("k{}", i % 10));
        let mut waiting: Vec<_> = (0..100)
            .map(|i| db.submit(vec![Change::Kv(key(i), vec![i as u8])]))
            .collect();
        // The first is acknowledged (it is durable); the 100 wait.
        assert_eq!(db.waiting(), 100);
        // Nothing is acknowledged before it is durable.
        assert!(waiting.iter_mut().all(|d| d.0.try_recv().is_err()));
        // A reader's barrier waits behind them.
        waiting.push(db.settled().expect("changes are on their way"));
        hold.send(()).unwrap();
        for d in waiting {
            futures::executor::block_on(d.wait()).unwrap();
        }
        assert_eq!(db.waiting(), 0);
        assert!(db.settled().is_none());
        // The first transaction, then the 100 changes in one more.
        assert_eq!(db.commits.load(Ordering::Relaxed), 2);
        drop(db);
        // Applied in the order submitted: each key holds its last value.
        let (_, restored) = HeadDb::open(&d, 0).unwrap();
        let mut kv = restored.kv;
        kv.sort();
        let expected: Vec<_> = (90..100).map(|i| (key(i), vec![i as u8])).collect();
        assert_eq!(kv, expected);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_database_that_cannot_be_opened_says_which_and_why() {
        let d = dir("bad");
        std::fs::write(d.join(FILE), b"not a database at all, just some bytes").unwrap();
        let e = HeadDb::open(&d, 0).err().expect("refused");
        let text = e.to_string();
        assert!(
            text.contains("head.redb") && text.contains("cannot be opened"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
