//! `Row`: one row of a dataset as named values, for the per-row operators (`map`,
//! `flat_map`, `filter_rows`); typed through serde.

use std::sync::Arc;

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::DataError;

/// One row: column name to value. Read a column with [`Row::get`], the whole row as a
/// struct with [`Row::to`]; make one from a struct with [`Row::from_item`].
///
/// ```
/// use mobula::data::Row;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Trip { id: i64, km: f64 }
/// let row = Row::from_item(&Trip { id: 7, km: 2.5 }).unwrap();
/// assert_eq!(row.get::<f64>("km"), Some(2.5));
/// let trip: Trip = row.to().unwrap();
/// assert_eq!(trip.id, 7);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Row(pub Map<String, Json>);

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Row(Map::new())
    }

    /// The row made from `item`'s fields.
    pub fn from_item<T: Serialize>(item: &T) -> Result<Row, DataError> {
        match serde_json::to_value(item) {
            Ok(Json::Object(m)) => Ok(Row(m)),
            Ok(other) => Err(DataError::Rows {
                reason: format!("a row must be a struct or a map, not {other}"),
            }),
            Err(e) => Err(DataError::Rows {
                reason: e.to_string(),
            }),
        }
    }

    /// The row as a `T`, by field name.
    pub fn to<T: serde::de::DeserializeOwned>(&self) -> Result<T, DataError> {
        serde_json::from_value(Json::Object(self.0.clone())).map_err(|e| DataError::Rows {
            reason: e.to_string(),
        })
    }

    /// Column `name` as a `T`; `None` when missing, null or of another type.
    pub fn get<T: serde::de::DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.0
            .get(name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Sets column `name`.
    pub fn set(&mut self, name: &str, value: impl Serialize) -> &mut Self {
        self.0.insert(
            name.to_string(),
            serde_json::to_value(value).unwrap_or(Json::Null),
        );
        self
    }
}

/// The rows of `batch`.
pub(crate) fn rows_of(batch: &RecordBatch) -> Result<Vec<Row>, String> {
    let mut out = Vec::new();
    let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    let mut rows = Vec::with_capacity(batch.num_rows());
    for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        rows.push(serde_json::from_slice(line).map_err(|e| e.to_string())?);
    }
    // Rows that are all nulls are written as `{}`: the count is the batch's.
    debug_assert_eq!(rows.len(), batch.num_rows());
    Ok(rows)
}

/// A batch of `rows`, its columns inferred from their values (a column missing from a row
/// is null there).
pub(crate) fn batch_of(rows: &[Row]) -> Result<RecordBatch, String> {
    if rows.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::new(
            arrow::datatypes::Schema::empty(),
        )));
    }
    let values: Vec<Json> = rows.iter().map(|r| Json::Object(r.0.clone())).collect();
    let schema = arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))
        .map_err(|e| e.to_string())?;
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::new(schema))
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder.serialize(&values).map_err(|e| e.to_string())?;
    Ok(decoder
        .flush()
        .map_err(|e| e.to_string())?
        .expect("rows were given"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array, Int64Array, StringArray};

    #[test]
    fn rows_round_trip_with_nulls() {
        let b = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as _),
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(0.5), None])) as _,
            ),
            ("k", Arc::new(StringArray::from(vec!["a", "b"])) as _),
        ])
        .unwrap();
        let rows = rows_of(&b).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<i64>("id"), Some(1));
        assert_eq!(rows[1].get::<f64>("x"), None);
        let back = batch_of(&rows).unwrap();
        assert_eq!(back.num_rows(), 2);
        let x = back.column_by_name("x").unwrap();
        assert_eq!(x.null_count(), 1);
    }
}
