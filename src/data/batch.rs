//! `Batch`: one block of a dataset, an Arrow record batch that can live in the object store.
//!
//! Within a node a batch is moved and shared, never encoded. When it leaves memory (another
//! node, a spill file) it is written in Arrow's IPC stream format. Its size for the store's
//! limit is the memory its arrays hold.

use std::ops::Deref;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// One block of a [`Dataset`](super::Dataset): an Arrow [`RecordBatch`], shared (cloning it
/// clones its arrays' handles, not their data).
///
/// ```
/// use mobula::data::Batch;
/// use arrow::array::{Int64Array, RecordBatch};
/// use std::sync::Arc;
///
/// let rb = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 2])) as _)]).unwrap();
/// let batch = Batch::new(rb);
/// assert_eq!(batch.num_rows(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Batch(RecordBatch);

impl Batch {
    /// Wraps a record batch.
    pub fn new(batch: RecordBatch) -> Self {
        Batch(batch)
    }

    /// A batch with no rows and no columns.
    pub fn empty() -> Self {
        Batch::new(RecordBatch::new_empty(Arc::new(Schema::empty())))
    }

    /// A batch with no rows of `schema`.
    pub fn empty_of(schema: SchemaRef) -> Self {
        Batch::new(RecordBatch::new_empty(schema))
    }

    /// The record batch.
    pub fn record_batch(&self) -> &RecordBatch {
        &self.0
    }

    /// The record batch, taken out.
    pub fn into_inner(self) -> RecordBatch {
        self.0
    }

    /// The rows as values of `T`, by column name (serde).
    pub fn to_items<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, super::DataError> {
        serde_arrow::from_record_batch(&self.0).map_err(|e| super::DataError::Rows {
            reason: e.to_string(),
        })
    }

    /// A batch of `items`, one row each, its columns traced from their fields (serde).
    pub fn from_items<T: Serialize + serde::de::DeserializeOwned>(
        items: &[T],
    ) -> Result<Self, super::DataError> {
        use serde_arrow::schema::{SchemaLike, TracingOptions};
        let rows = |e: serde_arrow::Error| super::DataError::Rows {
            reason: e.to_string(),
        };
        let options = TracingOptions::default()
            .allow_null_fields(true)
            .enums_without_data_as_strings(true)
            // Arrow's common types, as Parquet files and Ray Data use them.
            .strings_as_large_utf8(false)
            .bytes_as_large_binary(false)
            .sequence_as_large_list(false);
        let fields = if items.is_empty() {
            Vec::<arrow::datatypes::FieldRef>::from_type::<T>(options)
        } else {
            Vec::<arrow::datatypes::FieldRef>::from_samples(items, options)
        }
        .map_err(rows)?;
        serde_arrow::to_record_batch(&fields, &items)
            .map(Batch::new)
            .map_err(rows)
    }

    /// Bytes its arrays hold in memory.
    pub fn memory_size(&self) -> u64 {
        self.0.get_array_memory_size() as u64
    }
}

impl Deref for Batch {
    type Target = RecordBatch;
    fn deref(&self) -> &RecordBatch {
        &self.0
    }
}

impl From<RecordBatch> for Batch {
    fn from(batch: RecordBatch) -> Self {
        Batch::new(batch)
    }
}

/// The batch in Arrow's IPC stream format.
pub(crate) fn to_ipc(batch: &RecordBatch) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// A batch from Arrow's IPC stream format (its batches concatenated; none gives no rows).
pub(crate) fn from_ipc(bytes: &[u8]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    arrow::compute::concat_batches(&schema, &batches)
}

impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if crate::object::size::is_counting() {
            // The store is sizing it: its arrays' memory, without encoding them.
            crate::object::size::report(self.memory_size());
            return serializer.serialize_unit();
        }
        let bytes = to_ipc(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ipc;
        impl<'de> Visitor<'de> for Ipc {
            type Value = Batch;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an Arrow IPC stream")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Batch, E> {
                from_ipc(v).map(Batch::new).map_err(E::custom)
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Batch, E> {
                self.visit_bytes(&v)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Batch, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                self.visit_bytes(&bytes)
            }
        }
        deserializer.deserialize_byte_buf(Ipc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};

    fn sample() -> Batch {
        Batch::new(
            RecordBatch::try_from_iter([
                ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
                (
                    "x",
                    Arc::new(Float64Array::from(vec![Some(0.5), None, Some(2.0)])) as _,
                ),
                ("k", Arc::new(StringArray::from(vec!["a", "b", "c"])) as _),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn a_batch_round_trips_through_postcard_and_json() {
        let b = sample();
        let bytes = postcard::to_allocvec(&b).unwrap();
        assert_eq!(postcard::from_bytes::<Batch>(&bytes).unwrap(), b);
        let text = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Batch>(&text).unwrap(), b);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let bytes = postcard::to_allocvec(&vec![1u8, 2, 3, 4, 5]).unwrap();
        assert!(postcard::from_bytes::<Batch>(&bytes).is_err());
    }

    #[test]
    fn the_store_sizes_a_batch_by_its_memory() {
        let b = sample();
        assert_eq!(crate::object::size::estimate(&b), b.memory_size());
    }

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Row {
        id: i64,
        name: String,
        score: Option<f64>,
    }

    #[test]
    fn typed_rows_round_trip() {
        let rows = vec![
            Row {
                id: 1,
                name: "a".into(),
                score: Some(1.5),
            },
            Row {
                id: 2,
                name: "b".into(),
                score: None,
            },
        ];
        let b = Batch::from_items(&rows).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.to_items::<Row>().unwrap(), rows);
        assert_eq!(Batch::from_items::<Row>(&[]).unwrap().num_rows(), 0);
    }
}
