//! Encoding values for leaving memory: postcard's format, written straight to a writer.
//!
//! serde hands a `Vec<u8>` or `Vec<f64>` to a serializer one element at a time, which costs
//! about 8 ns a byte (34 s for a 4 GiB spill here). Byte and float vectors, the bulk of big
//! objects, take a fast path instead: postcard encodes them as a length and the elements'
//! little-endian bytes, so the same bytes are written with bulk copies, and read back the same
//! way. Everything else goes through postcard unchanged.

use std::any::{Any, TypeId};
use std::io::Write;

use super::value::Value;

/// Writes `n` as postcard's variable-length integer (LEB128).
fn write_varint(out: &mut dyn Write, mut n: u64) -> std::io::Result<()> {
    let mut buf = [0u8; 10];
    let mut i = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[i] = byte;
            i += 1;
            break;
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
    out.write_all(&buf[..i])
}

/// Reads a postcard varint; returns it and the bytes it took.
fn read_varint(bytes: &[u8]) -> Result<(u64, usize), String> {
    let mut n = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((n, i + 1));
        }
    }
    Err("a length is cut short".into())
}

/// Elements at a time in a bulk copy of floats.
const CHUNK: usize = 16 * 1024;

macro_rules! floats {
    ($write:ident, $read:ident, $t:ty, $w:expr) => {
        fn $write(v: &[$t], out: &mut dyn Write) -> std::io::Result<()> {
            write_varint(out, v.len() as u64)?;
            if cfg!(target_endian = "little") {
                // The elements' memory is their little-endian bytes: written as they are.
                return out.write_all(bytemuck::cast_slice(v));
            }
            let mut buf = Vec::with_capacity(CHUNK * $w);
            for chunk in v.chunks(CHUNK) {
                buf.clear();
                for x in chunk {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                out.write_all(&buf)?;
            }
            Ok(())
        }

        fn $read(bytes: &[u8]) -> Result<Vec<$t>, String> {
            let (n, used) = read_varint(bytes)?;
            let body = &bytes[used..];
            // `n` comes from the bytes: a count whose size overflows cannot match them.
            if n.checked_mul($w) != Some(body.len() as u64) {
                return Err(format!(
                    "expected {} elements, found {} bytes",
                    n,
                    body.len()
                ));
            }
            if cfg!(target_endian = "little") {
                // One bulk copy into the elements' memory.
                let mut out: Vec<$t> = vec![0.0; n as usize];
                bytemuck::cast_slice_mut::<$t, u8>(&mut out).copy_from_slice(body);
                return Ok(out);
            }
            Ok(body
                .chunks_exact($w)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("exact chunks")))
                .collect())
        }
    };
}

floats!(write_f64s, read_f64s, f64, 8);
floats!(write_f32s, read_f32s, f32, 4);

fn is<T: 'static, U: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<U>()
}

/// Writes `value` in postcard's format.
pub(crate) fn write<T: Value>(value: &T, out: &mut dyn Write) -> Result<(), String> {
    let any = value as &dyn Any;
    let fast = if let Some(v) = any.downcast_ref::<Vec<u8>>() {
        Some(write_varint(out, v.len() as u64).and_then(|()| out.write_all(v)))
    } else if let Some(v) = any.downcast_ref::<Vec<f64>>() {
        Some(write_f64s(v, out))
    } else {
        any.downcast_ref::<Vec<f32>>().map(|v| write_f32s(v, out))
    };
    match fast {
        Some(written) => written.map_err(|e| e.to_string()),
        None => postcard::to_io(value, out)
            .map(drop)
            .map_err(|e| e.to_string()),
    }
}

/// Reads a value written by [`write`], taking its buffer: a byte vector keeps the buffer
/// rather than copying it.
pub(crate) fn read_owned<T: Value>(mut bytes: Vec<u8>) -> Result<T, String> {
    if !is::<T, Vec<u8>>() {
        return read::<T>(&bytes);
    }
    let (n, used) = read_varint(&bytes)?;
    if (bytes.len() - used) as u64 != n {
        return Err(format!(
            "cannot decode a Vec<u8>: expected {n} bytes, found {}",
            bytes.len() - used
        ));
    }
    bytes.drain(..used);
    let any: Box<dyn Any> = Box::new(bytes);
    Ok(*any.downcast::<T>().expect("checked by type id"))
}

/// Reads a value written by [`write`].
pub(crate) fn read<T: Value>(bytes: &[u8]) -> Result<T, String> {
    let fast: Option<Result<Box<dyn Any>, String>> = if is::<T, Vec<u8>>() {
        Some(read_varint(bytes).and_then(|(n, used)| {
            let body = &bytes[used..];
            if body.len() as u64 == n {
                Ok(Box::new(body.to_vec()) as Box<dyn Any>)
            } else {
                Err(format!("expected {n} bytes, found {}", body.len()))
            }
        }))
    } else if is::<T, Vec<f64>>() {
        Some(read_f64s(bytes).map(|v| Box::new(v) as Box<dyn Any>))
    } else if is::<T, Vec<f32>>() {
        Some(read_f32s(bytes).map(|v| Box::new(v) as Box<dyn Any>))
    } else {
        None
    };
    let read = match fast {
        Some(value) => value.map(|b| *b.downcast::<T>().expect("checked by type id")),
        None => postcard::from_bytes(bytes).map_err(|e| e.to_string()),
    };
    read.map_err(|e| format!("cannot decode a {}: {e}", std::any::type_name::<T>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Value + PartialEq + std::fmt::Debug>(v: T) {
        let mut fast = Vec::new();
        write(&v, &mut fast).unwrap();
        assert_eq!(
            fast,
            postcard::to_allocvec(&v).unwrap(),
            "the fast path writes postcard's bytes"
        );
        assert_eq!(read::<T>(&fast).unwrap(), v);
    }

    #[test]
    fn fast_paths_match_postcard_exactly() {
        round_trip(vec![0u8, 1, 2, 255]);
        round_trip((0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        round_trip(vec![0.5f64, -1.25, f64::MAX]);
        round_trip((0..40_000).map(|i| i as f32 * 0.5).collect::<Vec<f32>>());
        round_trip(Vec::<u8>::new());
    }

    #[test]
    fn other_types_go_through_postcard() {
        round_trip((String::from("a"), vec![1u64, 2], Some(3i16)));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut bytes = Vec::new();
        write(&vec![1f64; 10], &mut bytes).unwrap();
        assert!(
            read::<Vec<f64>>(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .contains("cannot decode")
        );
        assert!(read::<Vec<u8>>(&[0x80]).is_err());
    }

    #[test]
    fn a_count_whose_size_overflows_is_an_error() {
        // 2^61 elements of 8 bytes is 2^64 bytes: it wraps to 0 without checked arithmetic,
        // which would match an empty body.
        let mut bytes = Vec::new();
        write_varint(&mut bytes, 1u64 << 61).unwrap();
        assert!(read::<Vec<f64>>(&bytes).is_err());
        let mut bytes = Vec::new();
        write_varint(&mut bytes, (1u64 << 62) + 1).unwrap();
        bytes.extend_from_slice(&[0; 4]);
        assert!(read::<Vec<f32>>(&bytes).is_err());
    }
}
