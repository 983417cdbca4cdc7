//! The head's durable tables: what it must still know after a crash and a restart on the
//! same cluster directory. An embedded redb database (`head.redb` in the cluster directory);
//! each change is one transaction, durable when the call returns, so a change the head
//! acknowledged survives a `kill -9`, and one it did not acknowledge is either whole or
//! absent.
//!
//! Tables: the members and what they announced; actor names (namespace and name to actor,
//! class and node); where actors created on other nodes than their owner's run; the head's
//! restarts (when each outage began and ended); and a counter of membership versions, so a
//! restarted head's views are newer than any a node already has.

use std::path::{Path, PathBuf};

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

/// The head's database (closed once the head stops).
pub(crate) struct HeadDb {
    db: Option<Database>,
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
        let db = HeadDb { db: Some(db) };
        let restored = db.restore(now_ms)?;
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

    /// One durable transaction (none once the database is closed: the head is stopping).
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

    /// A member joined (or announced itself again), at membership version `version`.
    pub fn put_member(&self, info: &NodeInfo, version: u64) -> Result<(), HeadDbError> {
        self.write("a member", |txn| {
            txn.open_table(MEMBERS)?
                .insert(encode(&info.node_id).as_slice(), encode(info).as_slice())?;
            txn.open_table(META)?.insert("view_version", version)?;
            Ok(())
        })
    }

    /// Members left or were declared dead, at membership version `version`.
    pub fn remove_members(&self, gone: &[NodeId], version: u64) -> Result<(), HeadDbError> {
        self.write("members gone", |txn| {
            let mut members = txn.open_table(MEMBERS)?;
            for id in gone {
                members.remove(encode(id).as_slice())?;
            }
            txn.open_table(META)?.insert("view_version", version)?;
            Ok(())
        })
    }

    /// `key` names `named`.
    pub fn put_name(&self, key: &NameKey, named: &Named) -> Result<(), HeadDbError> {
        self.write("an actor's name", |txn| {
            txn.open_table(NAMES)?
                .insert(encode(key).as_slice(), encode(named).as_slice())?;
            Ok(())
        })
    }

    /// Names no longer held.
    pub fn remove_names(&self, keys: &[NameKey]) -> Result<(), HeadDbError> {
        self.write("names freed", |txn| {
            let mut names = txn.open_table(NAMES)?;
            for key in keys {
                names.remove(encode(key).as_slice())?;
            }
            Ok(())
        })
    }

    /// `actor` (of `class`) runs on `node`.
    pub fn put_location(
        &self,
        actor: ActorId,
        class: &str,
        node: NodeId,
    ) -> Result<(), HeadDbError> {
        self.write("where an actor runs", |txn| {
            txn.open_table(LOCATIONS)?
                .insert(encode(&actor).as_slice(), encode(&(class, node)).as_slice())?;
            Ok(())
        })
    }

    /// Actors whose locations are no longer kept.
    pub fn remove_locations(&self, actors: &[ActorId]) -> Result<(), HeadDbError> {
        self.write("actors gone", |txn| {
            let mut locations = txn.open_table(LOCATIONS)?;
            for actor in actors {
                locations.remove(encode(actor).as_slice())?;
            }
            Ok(())
        })
    }

    /// The job table changed: it is written whole.
    pub fn put_jobs(&self, jobs: &Jobs) -> Result<(), HeadDbError> {
        self.write("the jobs", |txn| {
            txn.open_table(JOBS)?
                .insert("table", encode(jobs).as_slice())?;
            Ok(())
        })
    }

    /// `key` of the key-value store is `value`.
    pub fn put_kv(&self, key: &KvKey, value: &[u8]) -> Result<(), HeadDbError> {
        self.write("a key's value", |txn| {
            txn.open_table(KV)?.insert(encode(key).as_slice(), value)?;
            Ok(())
        })
    }

    /// Keys of the key-value store deleted.
    pub fn remove_kv(&self, keys: &[KvKey]) -> Result<(), HeadDbError> {
        self.write("keys deleted", |txn| {
            let mut kv = txn.open_table(KV)?;
            for key in keys {
                kv.remove(encode(key).as_slice())?;
            }
            Ok(())
        })
    }

    /// A placement group was made.
    pub fn put_group(&self, group: &PlacementGroupInfo) -> Result<(), HeadDbError> {
        self.write("a placement group", |txn| {
            txn.open_table(GROUPS)?
                .insert(group.id.as_str(), encode(group).as_slice())?;
            Ok(())
        })
    }

    /// Placement groups removed (or whose creator is gone).
    pub fn remove_groups(&self, ids: &[String]) -> Result<(), HeadDbError> {
        self.write("placement groups removed", |txn| {
            let mut groups = txn.open_table(GROUPS)?;
            for id in ids {
                groups.remove(id.as_str())?;
            }
            Ok(())
        })
    }

    /// The cluster stops on purpose (`mobula stop`, the head's guard dropped): every node
    /// was told to stop, so no member, name or location is left to carry over, and the next
    /// start ends no outage. The database is closed (another head may open it).
    pub fn stop_cleanly(&mut self) -> Result<(), HeadDbError> {
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

    /// The head is alive at `now_ms` (Unix ms): where the next outage will be counted from.
    pub fn alive(&self, now_ms: u64) -> Result<(), HeadDbError> {
        self.write("the head's liveness", |txn| {
            txn.open_table(META)?.insert("alive_ms", now_ms)?;
            Ok(())
        })
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
            db.put_name(
                &("ns".into(), "counter".into()),
                &(actor, "Counter".into(), a),
            )
            .unwrap();
            db.put_name(&("ns".into(), "gone".into()), &(actor, "Counter".into(), a))
                .unwrap();
            db.remove_names(&[("ns".into(), "gone".into())]).unwrap();
            db.put_location(actor, "Counter", b).unwrap();
            db.alive(1_500).unwrap();
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
        db.remove_locations(&[actor]).unwrap();
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
