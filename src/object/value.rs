//! What can be stored: the [`Value`] bound, and values with their type erased.
//!
//! Local values are kept as `Arc<T>` behind `dyn Any`: a put moves the value in without
//! copying it and a local get clones it out without serializing. Serialization happens only
//! when a value leaves memory (spilling, and later the network); the functions that do it are
//! kept in a per-type table ([`ValueVTable`]) chosen when the value enters the store.

use std::any::Any;
use std::cell::RefCell;
use std::io::Write;
use std::sync::Arc;

use super::{codec, size};
use crate::base::id::{ActorId, ObjectId};

pub use crate::base::value::Value;

/// The per-type functions a stored value needs once its type is erased.
pub(crate) struct ValueVTable {
    pub type_name: fn() -> &'static str,
    /// Writes the value (see [`codec`](super::codec)) and reports the refs and handles it
    /// contains.
    pub write: fn(&(dyn Any + Send + Sync), &mut dyn Write) -> Result<Contained, String>,
}

impl std::fmt::Debug for ValueVTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str((self.type_name)())
    }
}

/// The object refs and actor handles found inside a value as it was written.
#[derive(Debug, Default)]
pub(crate) struct Contained {
    pub objects: Vec<ObjectId>,
    pub actors: Vec<ActorId>,
}

struct VTableOf<T>(std::marker::PhantomData<T>);

impl<T: Value> VTableOf<T> {
    const VTABLE: ValueVTable = ValueVTable {
        type_name: std::any::type_name::<T>,
        write: write_erased::<T>,
    };
}

fn write_erased<T: Value>(
    value: &(dyn Any + Send + Sync),
    out: &mut dyn Write,
) -> Result<Contained, String> {
    let value = value
        .downcast_ref::<T>()
        .ok_or_else(|| format!("stored value is not a {}", std::any::type_name::<T>()))?;
    collecting_refs(|| codec::write(value, out)).map(|((), found)| found)
}

/// Runs `f` (which serializes something), gathering the refs and handles serialized.
pub(crate) fn collecting_refs<R>(
    f: impl FnOnce() -> Result<R, String>,
) -> Result<(R, Contained), String> {
    let previous = REF_COLLECTOR.with(|c| c.borrow_mut().replace(Collected::default()));
    let result = f();
    let found = REF_COLLECTOR
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), previous))
        .unwrap_or_default();
    result.map(|r| {
        (
            r,
            Contained {
                objects: found.objects,
                actors: found.actors,
            },
        )
    })
}

#[derive(Default)]
struct Collected {
    objects: Vec<ObjectId>,
    actors: Vec<ActorId>,
}

thread_local! {
    /// While a value is being encoded, the ids of the refs it contains are gathered here.
    static REF_COLLECTOR: RefCell<Option<Collected>> = const { RefCell::new(None) };
}

/// Called by `ObjectRef`'s `Serialize` impl: records that the value being encoded holds `id`.
pub(crate) fn note_serialized_ref(id: ObjectId) {
    REF_COLLECTOR.with(|c| {
        if let Some(found) = c.borrow_mut().as_mut() {
            found.objects.push(id);
        }
    });
}

/// Called by `ActorHandle`'s `Serialize` impl: the value being encoded holds a handle.
pub(crate) fn note_serialized_actor(id: ActorId) {
    REF_COLLECTOR.with(|c| {
        if let Some(found) = c.borrow_mut().as_mut() {
            found.actors.push(id);
        }
    });
}

/// A value in the store: shared, typed behind `dyn Any`, with its estimated size.
#[derive(Clone, Debug)]
pub(crate) struct StoredValue {
    pub data: Arc<dyn Any + Send + Sync>,
    pub vtable: &'static ValueVTable,
    pub size: u64,
}

impl StoredValue {
    /// Wraps a value; this moves it and measures it, it does not copy it.
    pub fn new<T: Value>(value: T) -> Self {
        let size = size::estimate(&value);
        Self::from_arc(Arc::new(value), size)
    }

    pub fn from_arc<T: Value>(value: Arc<T>, size: u64) -> Self {
        StoredValue {
            data: value,
            vtable: &VTableOf::<T>::VTABLE,
            size,
        }
    }

    /// The typed value, or the name of the type actually stored.
    pub fn downcast<T: Value>(&self) -> Result<Arc<T>, &'static str> {
        Arc::clone(&self.data)
            .downcast::<T>()
            .map_err(|_| (self.vtable.type_name)())
    }

    /// True when nobody but the store holds the value, so it may leave memory.
    pub fn is_unshared(&self) -> bool {
        Arc::strong_count(&self.data) == 1
    }

    /// Writes the value for leaving memory.
    pub fn write_to(&self, out: &mut dyn Write) -> Result<Contained, String> {
        (self.vtable.write)(&*self.data, out)
    }
}

/// Decodes bytes written by [`StoredValue::write_to`] into a `T`.
pub(crate) fn decode<T: Value>(bytes: &[u8]) -> Result<T, String> {
    codec::read(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_value_downcasts_to_its_own_type_only() {
        let v = StoredValue::new(vec![1u32, 2, 3]);
        assert_eq!(*v.downcast::<Vec<u32>>().unwrap(), vec![1, 2, 3]);
        assert_eq!(v.downcast::<String>().unwrap_err(), "alloc::vec::Vec<u32>");
    }

    #[test]
    fn encoding_round_trips() {
        let v = StoredValue::new((String::from("a"), 7u64));
        let mut bytes = Vec::new();
        let found = v.write_to(&mut bytes).unwrap();
        assert!(found.objects.is_empty() && found.actors.is_empty());
        assert_eq!(
            decode::<(String, u64)>(&bytes).unwrap(),
            ("a".to_string(), 7)
        );
    }

    #[test]
    fn unshared_tracks_outside_readers() {
        let v = StoredValue::new(5u8);
        assert!(v.is_unshared());
        let reader = v.downcast::<u8>().unwrap();
        assert!(!v.is_unshared());
        drop(reader);
        assert!(v.is_unshared());
    }
}
