//! Estimating how many bytes a value occupies, for the store's memory limit.
//!
//! The estimate walks the value through a serde serializer that only counts: fixed-size
//! numbers count their width, strings and byte buffers their length plus a length word. It
//! allocates nothing, and for a vector of numbers the compiler folds the per-element loop into
//! a multiplication, so measuring a large numeric array costs about nothing. The figure is what
//! the value would take serialized, which is close to its heap size for the data that matters
//! (large arrays, strings, buffers).

#[cfg(feature = "data")]
use std::cell::Cell;

use serde::ser::{self, Serialize};

#[cfg(feature = "data")]
thread_local! {
    /// Bytes reported by values that size themselves, while [`estimate`] walks a value on
    /// this thread (`None` when it does not).
    static REPORTED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// True while [`estimate`] is walking a value on this thread: a type whose serialized form
/// would cost a copy to make (Data's Arrow batches) reports its size with [`report`] and
/// serializes nothing instead.
#[cfg(feature = "data")]
pub(crate) fn is_counting() -> bool {
    REPORTED.with(|r| r.get().is_some())
}

/// Adds `bytes` to the size being estimated on this thread (see [`is_counting`]).
#[cfg(feature = "data")]
pub(crate) fn report(bytes: u64) {
    REPORTED.with(|r| {
        if let Some(n) = r.get() {
            r.set(Some(n.saturating_add(bytes)));
        }
    });
}

/// The estimated size of `value` in bytes (at least 1).
///
/// A `Serialize` impl that fails or panics still gets a size: what was counted before it
/// stopped, and at least the value's own size.
pub(crate) fn estimate<T: Serialize + ?Sized>(value: &T) -> u64 {
    let mut counter = Counter(0);
    // Only a build with Data has values that size themselves: a plain put pays nothing.
    #[cfg(feature = "data")]
    let outer = REPORTED.with(|r| r.replace(Some(0)));
    let walked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = value.serialize(&mut counter);
    }));
    #[cfg(feature = "data")]
    {
        let reported = REPORTED.with(|r| r.replace(outer)).unwrap_or(0);
        counter.0 = counter.0.saturating_add(reported);
    }
    if walked.is_err() {
        tracing::warn!(
            type_name = std::any::type_name::<T>(),
            "Serialize panicked while sizing a value"
        );
    }
    counter.0.max(std::mem::size_of_val(value) as u64).max(1)
}

const LEN_WORD: u64 = 8;

struct Counter(u64);

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("size estimation stopped")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Never
    }
}

macro_rules! fixed {
    ($($method:ident: $ty:ty = $n:expr;)*) => {
        $(
            #[inline]
            fn $method(self, _: $ty) -> Result<(), Never> {
                self.0 += $n;
                Ok(())
            }
        )*
    };
}

impl ser::Serializer for &mut Counter {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fixed! {
        serialize_bool: bool = 1;
        serialize_i8: i8 = 1;
        serialize_u8: u8 = 1;
        serialize_i16: i16 = 2;
        serialize_u16: u16 = 2;
        serialize_i32: i32 = 4;
        serialize_u32: u32 = 4;
        serialize_f32: f32 = 4;
        serialize_char: char = 4;
        serialize_i64: i64 = 8;
        serialize_u64: u64 = 8;
        serialize_f64: f64 = 8;
        serialize_i128: i128 = 16;
        serialize_u128: u128 = 16;
    }

    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.0 += LEN_WORD + v.len() as u64;
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.0 += LEN_WORD + v.len() as u64;
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Never> {
        self.0 += 1;
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Never> {
        self.0 += 1;
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        self.0 += 4;
        Ok(())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.0 += 4;
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Never> {
        self.0 += LEN_WORD;
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.0 += 4;
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self, Never> {
        self.0 += LEN_WORD;
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.0 += 4;
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

macro_rules! compound {
    ($($trait:ident :: $method:ident $(, $key:ty)?;)*) => {
        $(
            impl ser::$trait for &mut Counter {
                type Ok = ();
                type Error = Never;
                #[inline]
                fn $method<T: ?Sized + Serialize>(&mut self, $(_: $key,)? value: &T) -> Result<(), Never> {
                    value.serialize(&mut **self)
                }
                fn end(self) -> Result<(), Never> {
                    Ok(())
                }
            }
        )*
    };
}

compound! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
    SerializeStruct::serialize_field, &'static str;
    SerializeStructVariant::serialize_field, &'static str;
}

impl ser::SerializeMap for &mut Counter {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Never> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::estimate;
    use std::collections::BTreeMap;

    #[test]
    fn numbers_count_their_width() {
        assert_eq!(estimate(&0u64), 8);
        assert_eq!(estimate(&1.5f32), 4);
        assert_eq!(estimate(&()), 1, "nothing still counts as one byte");
        assert_eq!(estimate(&(1u8, 2u64)), 16, "at least the value's own size");
    }

    #[test]
    fn arrays_count_their_elements() {
        assert_eq!(estimate(&vec![0f64; 1_000_000]), 8 + 8_000_000);
        assert_eq!(estimate(&vec![0u8; 100]), 8 + 100);
        assert_eq!(estimate(&"hello, world!!!!!!!".to_string()), 8 + 19);
        assert_eq!(
            estimate(&"hi".to_string()),
            24,
            "never less than the value itself"
        );
    }

    #[test]
    fn nested_values_add_up() {
        let mut m = BTreeMap::new();
        m.insert("ab".to_string(), vec![1u32, 2]);
        // map length + key (8 + 2) + value (8 + 2 * 4)
        assert_eq!(estimate(&m), 8 + 10 + 16);
        assert_eq!(
            estimate(&Some((1u16, 'x', vec![0u64; 4]))),
            1 + 2 + 4 + 8 + 32
        );
    }
}
