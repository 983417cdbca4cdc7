//! What a collective moves and combines: the element types (f32, f64, i32, i64, u8), their
//! little-endian bytes, and the reduce operations. Pure.

/// How values from the members are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ReduceOp {
    /// The sum (integers wrap on overflow).
    #[default]
    Sum,
    /// The sum divided by the number of members (integers: the wrapped sum divided,
    /// truncating toward zero).
    Mean,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
}

mod sealed {
    pub trait Sealed {}
}

/// An element type a collective works on: `f32`, `f64`, `i32`, `i64` or `u8`. Elements
/// travel as their little-endian bytes, copied in bulk, never encoded one by one.
pub trait Element: bytemuck::Pod + Send + Sync + sealed::Sealed {
    /// Bytes per element.
    const WIDTH: usize;
    /// The type's name, for errors.
    const NAME: &'static str;
    /// Appends the elements' little-endian bytes to `out`.
    fn write_le(src: &[Self], out: &mut Vec<u8>);
    /// Overwrites `dst` with elements read from `bytes` (as many as `dst` holds).
    fn read_le(bytes: &[u8], dst: &mut [Self]);
    /// Combines each element of `dst` with the one read from `bytes`, by `op` (`Mean` sums).
    fn reduce_le(dst: &mut [Self], bytes: &[u8], op: ReduceOp);
    /// Divides each element by `n` (the last step of a mean).
    fn divide(dst: &mut [Self], n: usize);
}

macro_rules! element {
    ($t:ty, $name:literal, $add:expr, $min:expr, $max:expr, $div:expr) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const WIDTH: usize = std::mem::size_of::<$t>();
            const NAME: &'static str = $name;

            fn write_le(src: &[Self], out: &mut Vec<u8>) {
                if cfg!(target_endian = "little") {
                    // The elements' memory is their little-endian bytes: one copy.
                    out.extend_from_slice(bytemuck::cast_slice(src));
                    return;
                }
                let start = out.len();
                out.resize(start + src.len() * Self::WIDTH, 0);
                for (bytes, x) in out[start..].chunks_exact_mut(Self::WIDTH).zip(src) {
                    bytes.copy_from_slice(&x.to_le_bytes());
                }
            }

            fn read_le(bytes: &[u8], dst: &mut [Self]) {
                if cfg!(target_endian = "little") {
                    let n = dst.len().min(bytes.len() / Self::WIDTH);
                    let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut dst[..n]);
                    dst.copy_from_slice(&bytes[..n * Self::WIDTH]);
                    return;
                }
                for (x, b) in dst.iter_mut().zip(bytes.chunks_exact(Self::WIDTH)) {
                    *x = <$t>::from_le_bytes(b.try_into().expect("exact chunks"));
                }
            }

            fn reduce_le(dst: &mut [Self], bytes: &[u8], op: ReduceOp) {
                // Elements read in place when the bytes are aligned for them (a buffer from
                // the allocator is), one by one otherwise.
                if cfg!(target_endian = "little")
                    && let Ok(src) = bytemuck::try_cast_slice::<u8, $t>(bytes)
                {
                    let pairs = dst.iter_mut().zip(src);
                    // One loop per op, so that each vectorizes.
                    match op {
                        ReduceOp::Sum | ReduceOp::Mean => {
                            pairs.for_each(|(x, y)| *x = $add(*x, *y))
                        }
                        ReduceOp::Min => pairs.for_each(|(x, y)| *x = $min(*x, *y)),
                        ReduceOp::Max => pairs.for_each(|(x, y)| *x = $max(*x, *y)),
                    }
                    return;
                }
                let pairs = dst.iter_mut().zip(bytes.chunks_exact(Self::WIDTH));
                let read = |b: &[u8]| <$t>::from_le_bytes(b.try_into().expect("exact chunks"));
                match op {
                    ReduceOp::Sum | ReduceOp::Mean => {
                        pairs.for_each(|(x, b)| *x = $add(*x, read(b)))
                    }
                    ReduceOp::Min => pairs.for_each(|(x, b)| *x = $min(*x, read(b))),
                    ReduceOp::Max => pairs.for_each(|(x, b)| *x = $max(*x, read(b))),
                }
            }

            fn divide(dst: &mut [Self], n: usize) {
                for x in dst {
                    *x = $div(*x, n);
                }
            }
        }
    };
}

element!(
    f32,
    "f32",
    |a: f32, b| a + b,
    f32::min,
    f32::max,
    |a: f32, n| a / n as f32
);
element!(
    f64,
    "f64",
    |a: f64, b| a + b,
    f64::min,
    f64::max,
    |a: f64, n| a / n as f64
);
element!(
    i32,
    "i32",
    i32::wrapping_add,
    Ord::min,
    Ord::max,
    |a: i32, n| a / n as i32
);
element!(
    i64,
    "i64",
    i64::wrapping_add,
    Ord::min,
    Ord::max,
    |a: i64, n| a / n as i64
);
element!(
    u8,
    "u8",
    u8::wrapping_add,
    Ord::min,
    Ord::max,
    |a: u8, n| a / n as u8
);

/// The elements of `src` as little-endian bytes.
#[cfg(test)]
fn to_bytes<T: Element>(src: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() * T::WIDTH);
    T::write_le(src, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_reduce_by_each_op() {
        let a = [1.5f32, -2.0, 7.25];
        let bytes = to_bytes(&a);
        assert_eq!(bytes.len(), 12);
        let mut back = [0f32; 3];
        f32::read_le(&bytes, &mut back);
        assert_eq!(back, a);
        let mut x = [1.0f32, 5.0, 7.0];
        f32::reduce_le(&mut x, &bytes, ReduceOp::Sum);
        assert_eq!(x, [2.5, 3.0, 14.25]);
        let mut x = [1i64, 5, -7];
        i64::reduce_le(&mut x, &to_bytes(&[3i64, 2, -9]), ReduceOp::Min);
        assert_eq!(x, [1, 2, -9]);
        let mut x = [200u8, 5];
        u8::reduce_le(&mut x, &to_bytes(&[100u8, 9]), ReduceOp::Sum);
        assert_eq!(x, [44, 14], "u8 sums wrap");
        // Bytes not aligned for the type take the element-by-element path.
        let mut unaligned = vec![0u8];
        unaligned.extend_from_slice(&to_bytes(&[1.0f64, 2.0]));
        let mut x = [10.0f64, 20.0];
        f64::reduce_le(&mut x, &unaligned[1..], ReduceOp::Sum);
        assert_eq!(x, [11.0, 22.0]);
        let mut x = [4i32, -9];
        i32::reduce_le(&mut x, &to_bytes(&[8i32, -1]), ReduceOp::Max);
        i32::divide(&mut x, 2);
        assert_eq!(x, [4, 0]);
    }
}
