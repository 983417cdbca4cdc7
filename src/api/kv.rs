//! A small key-value store for libraries and programs, as Ray's internal KV: keys in
//! namespaces, values of bytes. In a cluster the head keeps it in its database, so what a
//! call stored outlives the head's crash; on one node it lives as long as the runtime.
//!
//! Bounds: a key or namespace of at most 1 KiB, a value of at most 1 MiB, 256 MiB in all;
//! a listing gives at most 10,000 keys.
//!
//! ```no_run
//! # fn main() -> Result<(), mobula::KvError> {
//! let _m = mobula::init(mobula::Config::default()).unwrap();
//! mobula::kv::put("tune", "experiment/1", b"running", true)?;
//! assert_eq!(mobula::kv::get("tune", "experiment/1")?, Some(b"running".to_vec()));
//! assert_eq!(mobula::kv::keys("tune", "experiment/")?, vec!["experiment/1".to_string()]);
//! mobula::kv::delete("tune", "experiment/1")?;
//! # Ok(())
//! # }
//! ```

use std::sync::{Arc, Mutex};

use crate::base::error::KvError;
use crate::base::kv::Kv;
use crate::runtime::global::{Runtime, with_runtime};
use crate::wire::Message;

/// The store of a runtime that is in no cluster.
#[derive(Default)]
struct LocalKv(Mutex<Kv>);

/// Asks the head (in a cluster) or runs `local` on this runtime's own store.
fn ask<R>(
    message: Message,
    answer: impl FnOnce(Message) -> Result<R, KvError>,
    local: impl FnOnce(&mut Kv) -> Result<R, String>,
) -> Result<R, KvError> {
    with_runtime(|rt: &Runtime| match crate::cluster::node_of(rt) {
        Some(cluster) => match cluster.ask_head_blocking(&rt.node_arbiter, message) {
            Ok(Message::Refused { reason }) => Err(KvError::Refused(reason)),
            Ok(other) => answer(other),
            Err(reason) => Err(KvError::Head(reason)),
        },
        None => {
            let store = rt.extension_or_insert_with(|| Arc::new(LocalKv::default()));
            let mut kv = store.0.lock().unwrap_or_else(|e| e.into_inner());
            local(&mut kv).map_err(KvError::Refused)
        }
    })
    .unwrap_or(Err(KvError::NotInitialized))
}

fn unexpected<R>(m: Message) -> Result<R, KvError> {
    Err(KvError::Head(format!("the head answered {}", m.name())))
}

/// Sets `key` in `namespace` to `value`; unless `overwrite`, a key that has a value keeps
/// it. Returns whether the key had a value. In a cluster, returns once the head made the
/// change durable.
pub fn put(namespace: &str, key: &str, value: &[u8], overwrite: bool) -> Result<bool, KvError> {
    let message = Message::KvPut {
        namespace: namespace.into(),
        key: key.into(),
        value: value.to_vec(),
        overwrite,
    };
    ask(
        message,
        |m| match m {
            Message::KvDone { existed } => Ok(existed),
            other => unexpected(other),
        },
        |kv| {
            kv.put(
                (namespace.into(), key.into()),
                value.to_vec(),
                overwrite,
                |_, _| Ok(()),
            )
        },
    )
}

/// The value of `key` in `namespace`, if it has one.
pub fn get(namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    let message = Message::KvGet {
        namespace: namespace.into(),
        key: key.into(),
    };
    ask(
        message,
        |m| match m {
            Message::KvValue { value } => Ok(value),
            other => unexpected(other),
        },
        |kv| Ok(kv.get(&(namespace.into(), key.into())).cloned()),
    )
}

fn remove(namespace: &str, key: &str, by_prefix: bool) -> Result<bool, KvError> {
    let message = Message::KvDelete {
        namespace: namespace.into(),
        key: key.into(),
        by_prefix,
    };
    ask(
        message,
        |m| match m {
            Message::KvDone { existed } => Ok(existed),
            other => unexpected(other),
        },
        |kv| kv.delete(namespace, key, by_prefix, |_| Ok(())),
    )
}

/// Deletes `key` in `namespace`; whether it had a value.
pub fn delete(namespace: &str, key: &str) -> Result<bool, KvError> {
    remove(namespace, key, false)
}

/// Deletes every key in `namespace` that starts with `prefix`; whether there was one.
pub fn delete_prefix(namespace: &str, prefix: &str) -> Result<bool, KvError> {
    remove(namespace, prefix, true)
}

/// The keys in `namespace` that start with `prefix`, in order (at most 10,000; an error
/// says when there are more).
pub fn keys(namespace: &str, prefix: &str) -> Result<Vec<String>, KvError> {
    let message = Message::KvList {
        namespace: namespace.into(),
        prefix: prefix.into(),
    };
    let listed = ask(
        message,
        |m| match m {
            Message::KvKeys { keys, more } => Ok((keys, more)),
            other => unexpected(other),
        },
        |kv| Ok(kv.list(namespace, prefix)),
    )?;
    match listed {
        (keys, false) => Ok(keys),
        (keys, true) => Err(KvError::Refused(format!(
            "more than {} keys start with {prefix:?}: list a longer prefix",
            keys.len()
        ))),
    }
}
