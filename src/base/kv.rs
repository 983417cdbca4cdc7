//! The key-value store for libraries (Ray's internal KV), as the head keeps it: keys in
//! namespaces, values of bytes, bounded in key length, value size and total size. Pure: the
//! head records each change durably before it applies it here.

use std::collections::BTreeMap;

/// The largest value kept.
pub const VALUE_MAX: usize = 1 << 20;
/// The longest key (and namespace), in bytes.
pub const KEY_MAX: usize = 1024;
/// The most bytes all keys and values together take.
pub const TOTAL_MAX: usize = 256 << 20;
/// The most keys one listing gives.
pub const LIST_MAX: usize = 10_000;

/// A key: its namespace and itself.
pub type Key = (String, String);

/// The store.
#[derive(Debug, Default)]
pub struct Kv {
    entries: BTreeMap<Key, Vec<u8>>,
    bytes: usize,
}

fn size(key: &Key, value: &[u8]) -> usize {
    key.0.len() + key.1.len() + value.len()
}

impl Kv {
    /// A store holding `entries` (read back by a restarted head).
    pub fn from_entries(entries: impl IntoIterator<Item = (Key, Vec<u8>)>) -> Self {
        let mut kv = Kv::default();
        for (k, v) in entries {
            kv.insert(k, v);
        }
        kv
    }

    /// Whether `key` may be set to `value`: `Ok(true)` when it is to be written, `Ok(false)`
    /// when it has a value that stays (`overwrite` false), else why not.
    pub fn may_put(&self, key: &Key, value: &[u8], overwrite: bool) -> Result<bool, String> {
        if key.0.len() > KEY_MAX || key.1.len() > KEY_MAX {
            return Err(format!("a key or namespace is longer than {KEY_MAX} bytes"));
        }
        if value.len() > VALUE_MAX {
            return Err(format!(
                "a value of {} bytes is over the limit of {VALUE_MAX} bytes",
                value.len()
            ));
        }
        let old = self.entries.get(key);
        if old.is_some() && !overwrite {
            return Ok(false);
        }
        let after = self.bytes - old.map_or(0, |v| size(key, v)) + size(key, value);
        if after > TOTAL_MAX {
            return Err(format!(
                "the key-value store is full ({TOTAL_MAX} bytes); delete keys to make room"
            ));
        }
        Ok(true)
    }

    /// Sets `key` (checked with [`Kv::may_put`]); whether it had a value.
    pub fn insert(&mut self, key: Key, value: Vec<u8>) -> bool {
        self.bytes += size(&key, &value);
        match self.entries.insert(key.clone(), value) {
            Some(old) => {
                self.bytes -= size(&key, &old);
                true
            }
            None => false,
        }
    }

    /// Sets `key` to `value` (unless it has a value and `overwrite` is false), once
    /// `record` made the change durable; whether it had a value, or why not.
    pub fn put(
        &mut self,
        key: Key,
        value: Vec<u8>,
        overwrite: bool,
        record: impl FnOnce(&Key, &[u8]) -> Result<(), String>,
    ) -> Result<bool, String> {
        if !self.may_put(&key, &value, overwrite)? {
            return Ok(true);
        }
        record(&key, &value)?;
        Ok(self.insert(key, value))
    }

    /// Deletes `key` (every key starting with it, with `by_prefix`), once `record` made the
    /// change durable; whether any had a value, or why not.
    pub fn delete(
        &mut self,
        namespace: &str,
        key: &str,
        by_prefix: bool,
        record: impl FnOnce(&[Key]) -> Result<(), String>,
    ) -> Result<bool, String> {
        let keys = self.matching(namespace, key, by_prefix);
        if keys.is_empty() {
            return Ok(false);
        }
        record(&keys)?;
        self.remove(&keys);
        Ok(true)
    }

    /// The value of `key`.
    pub fn get(&self, key: &Key) -> Option<&Vec<u8>> {
        self.entries.get(key)
    }

    /// The keys a delete of `key` (every key starting with it, with `by_prefix`) removes.
    pub fn matching(&self, namespace: &str, key: &str, by_prefix: bool) -> Vec<Key> {
        if !by_prefix {
            let k = (namespace.to_string(), key.to_string());
            return self
                .entries
                .contains_key(&k)
                .then_some(k)
                .into_iter()
                .collect();
        }
        self.starting(namespace, key).cloned().collect()
    }

    /// Removes `keys`.
    pub fn remove(&mut self, keys: &[Key]) {
        for k in keys {
            if let Some(v) = self.entries.remove(k) {
                self.bytes -= size(k, &v);
            }
        }
    }

    fn starting<'a>(&'a self, namespace: &str, prefix: &'a str) -> impl Iterator<Item = &'a Key> {
        let from = (namespace.to_string(), prefix.to_string());
        let namespace = namespace.to_string();
        self.entries
            .range(from..)
            .map(|(k, _)| k)
            .take_while(move |k| k.0 == namespace && k.1.starts_with(prefix))
    }

    /// The keys of `namespace` starting with `prefix`, in order: at most [`LIST_MAX`], and
    /// whether there are more.
    pub fn list(&self, namespace: &str, prefix: &str) -> (Vec<String>, bool) {
        let mut keys: Vec<String> = self
            .starting(namespace, prefix)
            .take(LIST_MAX + 1)
            .map(|k| k.1.clone())
            .collect();
        let more = keys.len() > LIST_MAX;
        keys.truncate(LIST_MAX);
        (keys, more)
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, k: &str) -> Key {
        (ns.into(), k.into())
    }

    #[test]
    fn puts_gets_prefixes_and_namespaces() {
        let mut kv = Kv::default();
        assert_eq!(kv.may_put(&key("a", "x/1"), b"1", false), Ok(true));
        assert!(!kv.insert(key("a", "x/1"), b"1".to_vec()));
        kv.insert(key("a", "x/2"), b"2".to_vec());
        kv.insert(key("a", "y"), b"3".to_vec());
        kv.insert(key("b", "x/3"), b"4".to_vec());
        // Not overwritten unless asked; overwritten says it existed.
        assert_eq!(kv.may_put(&key("a", "x/1"), b"9", false), Ok(false));
        assert_eq!(kv.may_put(&key("a", "x/1"), b"9", true), Ok(true));
        assert!(kv.insert(key("a", "x/1"), b"9".to_vec()));
        assert_eq!(kv.get(&key("a", "x/1")).unwrap(), b"9");
        assert_eq!(
            kv.list("a", "x/"),
            (vec!["x/1".into(), "x/2".into()], false)
        );
        assert_eq!(kv.list("b", "").0, vec!["x/3".to_string()]);
        let gone = kv.matching("a", "x/", true);
        assert_eq!(gone.len(), 2);
        kv.remove(&gone);
        assert_eq!(kv.list("a", "").0, vec!["y".to_string()]);
        assert!(kv.matching("a", "nope", false).is_empty());
        assert_eq!(kv.len(), 2);
    }

    #[test]
    fn keys_values_and_the_whole_are_bounded() {
        let mut kv = Kv::default();
        let long = "k".repeat(KEY_MAX + 1);
        assert!(kv.may_put(&key("a", &long), b"", true).is_err());
        assert!(kv.may_put(&key(&long, "k"), b"", true).is_err());
        let big = vec![0u8; VALUE_MAX + 1];
        assert!(
            kv.may_put(&key("a", "k"), &big, true)
                .unwrap_err()
                .contains("limit")
        );
        // Full: the total is kept as values are replaced and removed.
        let value = vec![0u8; VALUE_MAX];
        let fits = TOTAL_MAX / (VALUE_MAX + 3);
        for i in 0..fits {
            let k = key("a", &format!("{i:03}"));
            assert_eq!(kv.may_put(&k, &value, true), Ok(true), "{i}");
            kv.insert(k, value.clone());
        }
        let next = key("a", "zzz");
        assert!(
            kv.may_put(&next, &value, true)
                .unwrap_err()
                .contains("full")
        );
        assert_eq!(
            kv.may_put(&key("a", "000"), &value, true),
            Ok(true),
            "a replacement fits"
        );
        let first = kv.matching("a", "000", false);
        kv.remove(&first);
        assert_eq!(kv.may_put(&next, &value, true), Ok(true));
    }
}
