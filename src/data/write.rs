//! Writing blocks to files: each block in its own task, on the node that holds it.

use serde::{Deserialize, Serialize};

use super::DataError;
use super::batch::Batch;

/// A file format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Format {
    Parquet,
    Csv,
    Json,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// Writes `input` to `path` (through a temporary file and a rename, so a reader never sees
/// half a file); the rows written.
#[crate::remote]
pub(crate) fn write_block(input: Batch, path: String, format: Format) -> Result<u64, DataError> {
    let err = |e: &dyn std::fmt::Display| DataError::Write {
        path: path.clone(),
        reason: e.to_string(),
    };
    let tmp = format!("{path}.tmp-{}", std::process::id());
    let file = std::fs::File::create(&tmp).map_err(|e| err(&e))?;
    let written = (|| -> Result<(), String> {
        match format {
            Format::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                let mut w = parquet::arrow::ArrowWriter::try_new(file, input.schema(), Some(props))
                    .map_err(|e| e.to_string())?;
                w.write(&input).map_err(|e| e.to_string())?;
                w.close().map_err(|e| e.to_string())?;
            }
            Format::Csv => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file);
                w.write(&input).map_err(|e| e.to_string())?;
            }
            Format::Json => {
                let mut w = arrow::json::LineDelimitedWriter::new(std::io::BufWriter::new(file));
                w.write(&input).map_err(|e| e.to_string())?;
                w.finish().map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(&e));
    }
    std::fs::rename(&tmp, &path).map_err(|e| err(&e))?;
    Ok(input.num_rows() as u64)
}
