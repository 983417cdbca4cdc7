//! The object codec (how values are written to leave memory: spilled, or sent to another
//! node), for fuzzing and benchmarks outside the crate: what goes in here is what the object
//! store and the links read.

use crate::base::value::Value;
use crate::object::codec;

/// Encodes `value` as the object store writes it.
pub fn encode<T: Value>(value: &T) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    codec::write(value, &mut out)?;
    Ok(out)
}

/// Decodes bytes as the object store reads a value of type `T` (borrowing them).
pub fn decode<T: Value>(bytes: &[u8]) -> Result<T, String> {
    codec::read(bytes)
}

/// Decodes bytes as the object store reads a value of type `T` (taking them).
pub fn decode_owned<T: Value>(bytes: Vec<u8>) -> Result<T, String> {
    codec::read_owned(bytes)
}
