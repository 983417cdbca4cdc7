//! Column expressions: what `filter` keeps and what `add_column` computes, evaluated on a
//! whole batch with Arrow's kernels (Ray Data's `expr=` strings, as typed values).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, Scalar};
use arrow::array::{RecordBatch, StringArray};
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

/// A column expression, built with [`col`] and [`lit`]:
///
/// ```
/// use mobula::data::{col, lit};
/// let cheap = col("price").lt(10.0).and(col("stock").gt(0));
/// let total = col("price").mul(col("count"));
/// # let _ = (cheap, total, lit(1));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// A column by name.
    Column(String),
    /// A literal value.
    Literal(Literal),
    /// A comparison.
    Compare(Box<Expr>, CompareOp, Box<Expr>),
    /// Arithmetic.
    Arith(Box<Expr>, ArithOp, Box<Expr>),
    /// Both true.
    And(Box<Expr>, Box<Expr>),
    /// Either true.
    Or(Box<Expr>, Box<Expr>),
    /// Not true.
    Not(Box<Expr>),
    /// True where the value is null.
    IsNull(Box<Expr>),
}

/// A literal in an expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
}

/// How two values compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

/// Arithmetic on two values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%` (the remainder, with the sign of the dividend)
    Rem,
}

/// The column `name`.
pub fn col(name: &str) -> Expr {
    Expr::Column(name.to_string())
}

/// A literal value.
pub fn lit(value: impl Into<Literal>) -> Expr {
    Expr::Literal(value.into())
}

impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int(v)
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Literal::Int(v.into())
    }
}
impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Literal::Float(v)
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Bool(v)
    }
}
impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::Str(v.to_string())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::Str(v)
    }
}

/// A literal or an expression, as an operand.
pub trait IntoExpr {
    /// The operand as an expression.
    fn into_expr(self) -> Expr;
}
impl IntoExpr for Expr {
    fn into_expr(self) -> Expr {
        self
    }
}
impl<T: Into<Literal>> IntoExpr for T {
    fn into_expr(self) -> Expr {
        Expr::Literal(self.into())
    }
}

macro_rules! compare {
    ($($name:ident => $op:ident,)*) => {$(
        #[doc = concat!("This ", stringify!($name), " `other`.")]
        pub fn $name(self, other: impl IntoExpr) -> Expr {
            Expr::Compare(Box::new(self), CompareOp::$op, Box::new(other.into_expr()))
        }
    )*};
}
macro_rules! arith {
    ($($name:ident => $op:ident,)*) => {$(
        #[doc = concat!("This ", stringify!($name), " `other`.")]
        #[allow(clippy::should_implement_trait)]
        pub fn $name(self, other: impl IntoExpr) -> Expr {
            Expr::Arith(Box::new(self), ArithOp::$op, Box::new(other.into_expr()))
        }
    )*};
}

impl Expr {
    compare! { eq => Eq, not_eq => NotEq, lt => Lt, lt_eq => LtEq, gt => Gt, gt_eq => GtEq, }
    arith! { add => Add, sub => Sub, mul => Mul, div => Div, rem => Rem, }

    /// The columns it reads, added to `out`.
    pub(crate) fn columns_into(&self, out: &mut std::collections::BTreeSet<String>) {
        match self {
            Expr::Column(c) => {
                out.insert(c.clone());
            }
            Expr::Literal(_) => {}
            Expr::Compare(a, _, b) | Expr::Arith(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                a.columns_into(out);
                b.columns_into(out);
            }
            Expr::Not(a) | Expr::IsNull(a) => a.columns_into(out),
        }
    }

    /// Both this and `other`.
    pub fn and(self, other: Expr) -> Expr {
        Expr::And(Box::new(self), Box::new(other))
    }

    /// This or `other`.
    pub fn or(self, other: Expr) -> Expr {
        Expr::Or(Box::new(self), Box::new(other))
    }

    /// Not this.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }

    /// True where this is null.
    pub fn is_null(self) -> Expr {
        Expr::IsNull(Box::new(self))
    }

    /// The expression on every row of `batch`.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, String> {
        match self.eval(batch)? {
            Value::Array(a) => Ok(a),
            Value::Scalar(s) => {
                // A constant: as many copies as rows.
                let one = s.into_inner();
                let idx = arrow::array::UInt32Array::from(vec![0u32; batch.num_rows()]);
                arrow::compute::take(&one, &idx, None).map_err(|e| e.to_string())
            }
        }
    }

    /// The rows of `batch` where the expression is true (null counts as false).
    pub fn mask(&self, batch: &RecordBatch) -> Result<BooleanArray, String> {
        let a = self.evaluate(batch)?;
        a.as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .ok_or_else(|| format!("{self} is a {}, not a boolean", a.data_type()))
    }

    fn eval(&self, batch: &RecordBatch) -> Result<Value, String> {
        let err = |e: arrow::error::ArrowError| format!("{self}: {e}");
        Ok(match self {
            Expr::Column(name) => Value::Array(
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| missing(name, batch))?,
            ),
            Expr::Literal(l) => Value::Scalar(Scalar::new(l.array())),
            Expr::Compare(a, op, b) => {
                let (a, b) = coerce(a.eval(batch)?, b.eval(batch)?).map_err(err)?;
                let (a, b): (&dyn Datum, &dyn Datum) = (&a, &b);
                let out = match op {
                    CompareOp::Eq => cmp::eq(a, b),
                    CompareOp::NotEq => cmp::neq(a, b),
                    CompareOp::Lt => cmp::lt(a, b),
                    CompareOp::LtEq => cmp::lt_eq(a, b),
                    CompareOp::Gt => cmp::gt(a, b),
                    CompareOp::GtEq => cmp::gt_eq(a, b),
                }
                .map_err(err)?;
                Value::Array(Arc::new(out))
            }
            Expr::Arith(a, op, b) => {
                let (a, b) = coerce(a.eval(batch)?, b.eval(batch)?).map_err(err)?;
                let (a, b): (&dyn Datum, &dyn Datum) = (&a, &b);
                let out = match op {
                    ArithOp::Add => numeric::add(a, b),
                    ArithOp::Sub => numeric::sub(a, b),
                    ArithOp::Mul => numeric::mul(a, b),
                    ArithOp::Div => numeric::div(a, b),
                    ArithOp::Rem => numeric::rem(a, b),
                }
                .map_err(err)?;
                Value::Array(out)
            }
            Expr::And(a, b) => {
                let (a, b) = (a.mask(batch)?, b.mask(batch)?);
                Value::Array(Arc::new(boolean::and_kleene(&a, &b).map_err(err)?))
            }
            Expr::Or(a, b) => {
                let (a, b) = (a.mask(batch)?, b.mask(batch)?);
                Value::Array(Arc::new(boolean::or_kleene(&a, &b).map_err(err)?))
            }
            Expr::Not(a) => Value::Array(Arc::new(boolean::not(&a.mask(batch)?).map_err(err)?)),
            Expr::IsNull(a) => Value::Array(Arc::new(
                boolean::is_null(&a.evaluate(batch)?).map_err(err)?,
            )),
        })
    }
}

fn missing(name: &str, batch: &RecordBatch) -> String {
    let names: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    format!("no column \"{name}\" (the columns are {names:?})")
}

impl Literal {
    fn array(&self) -> ArrayRef {
        match self {
            Literal::Int(v) => Arc::new(Int64Array::from(vec![*v])),
            Literal::Float(v) => Arc::new(Float64Array::from(vec![*v])),
            Literal::Bool(v) => Arc::new(BooleanArray::from(vec![*v])),
            Literal::Str(v) => Arc::new(StringArray::from(vec![v.as_str()])),
        }
    }
}

enum Value {
    Array(ArrayRef),
    Scalar(Scalar<ArrayRef>),
}

impl Datum for Value {
    fn get(&self) -> (&dyn Array, bool) {
        match self {
            Value::Array(a) => (a.as_ref(), false),
            Value::Scalar(s) => s.get(),
        }
    }
}

impl Value {
    fn data_type(&self) -> DataType {
        self.get().0.data_type().clone()
    }

    fn cast(self, to: &DataType) -> Result<Value, arrow::error::ArrowError> {
        if &self.data_type() == to {
            return Ok(self);
        }
        Ok(match self {
            Value::Array(a) => Value::Array(arrow::compute::cast(&a, to)?),
            Value::Scalar(s) => {
                Value::Scalar(Scalar::new(arrow::compute::cast(&s.into_inner(), to)?))
            }
        })
    }
}

/// Both sides in one type: a literal takes its column's type; two numbers of different
/// types meet in the wider one (any float wins; otherwise 64-bit integers).
fn coerce(a: Value, b: Value) -> Result<(Value, Value), arrow::error::ArrowError> {
    let (ta, tb) = (a.data_type(), b.data_type());
    if ta == tb {
        return Ok((a, b));
    }
    let (a_lit, b_lit) = (matches!(a, Value::Scalar(_)), matches!(b, Value::Scalar(_)));
    let to = if b_lit && !a_lit {
        ta.clone()
    } else if a_lit && !b_lit {
        tb.clone()
    } else if ta.is_floating() || tb.is_floating() {
        DataType::Float64
    } else if ta.is_integer() && tb.is_integer() {
        DataType::Int64
    } else {
        ta.clone()
    };
    // A float literal against an integer column compares as floats, not truncated.
    let to = if to.is_integer() && (ta.is_floating() || tb.is_floating()) {
        DataType::Float64
    } else {
        to
    };
    Ok((a.cast(&to)?, b.cast(&to)?))
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Column(c) => write!(f, "{c}"),
            Expr::Literal(Literal::Int(v)) => write!(f, "{v}"),
            Expr::Literal(Literal::Float(v)) => write!(f, "{v:?}"),
            Expr::Literal(Literal::Bool(v)) => write!(f, "{v}"),
            Expr::Literal(Literal::Str(v)) => write!(f, "{v:?}"),
            Expr::Compare(a, op, b) => {
                let op = match op {
                    CompareOp::Eq => "==",
                    CompareOp::NotEq => "!=",
                    CompareOp::Lt => "<",
                    CompareOp::LtEq => "<=",
                    CompareOp::Gt => ">",
                    CompareOp::GtEq => ">=",
                };
                write!(f, "({a} {op} {b})")
            }
            Expr::Arith(a, op, b) => {
                let op = match op {
                    ArithOp::Add => "+",
                    ArithOp::Sub => "-",
                    ArithOp::Mul => "*",
                    ArithOp::Div => "/",
                    ArithOp::Rem => "%",
                };
                write!(f, "({a} {op} {b})")
            }
            Expr::And(a, b) => write!(f, "({a} and {b})"),
            Expr::Or(a, b) => write!(f, "({a} or {b})"),
            Expr::Not(a) => write!(f, "(not {a})"),
            Expr::IsNull(a) => write!(f, "({a} is null)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("i", Arc::new(Int64Array::from(vec![1, 5, 10])) as ArrayRef),
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(0.25), None, Some(0.75)])) as _,
            ),
            (
                "f",
                Arc::new(arrow::array::Float32Array::from(vec![1.0f32, 2.0, 3.0])) as _,
            ),
            ("k", Arc::new(StringArray::from(vec!["a", "b", "a"])) as _),
        ])
        .unwrap()
    }

    fn mask(e: Expr) -> Vec<Option<bool>> {
        e.mask(&batch()).unwrap().iter().collect()
    }

    #[test]
    fn comparisons_follow_the_values_and_null_is_unknown() {
        assert_eq!(mask(col("x").gt(0.5)), vec![Some(false), None, Some(true)]);
        assert_eq!(
            mask(col("i").gt_eq(5)),
            vec![Some(false), Some(true), Some(true)]
        );
        assert_eq!(
            mask(col("i").lt(5.5)),
            vec![Some(true), Some(true), Some(false)]
        );
        assert_eq!(
            mask(col("k").eq("a")),
            vec![Some(true), Some(false), Some(true)]
        );
        assert_eq!(
            mask(col("f").gt(1.5)),
            vec![Some(false), Some(true), Some(true)]
        );
        assert_eq!(
            mask(col("k").eq("a").and(col("i").gt(1))),
            vec![Some(false), Some(false), Some(true)]
        );
        assert_eq!(
            mask(col("x").is_null()),
            vec![Some(false), Some(true), Some(false)]
        );
    }

    #[test]
    fn arithmetic_widens_and_keeps_nulls() {
        let a = col("i").mul(col("x")).evaluate(&batch()).unwrap();
        let a = a.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![Some(0.25), None, Some(7.5)]
        );
        let b = col("i").add(1).evaluate(&batch()).unwrap();
        let b = b.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(b.values().to_vec(), vec![2, 6, 11]);
        let r = col("i").rem(4).evaluate(&batch()).unwrap();
        let r = r.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(r.values().to_vec(), vec![1, 1, 2]);
    }

    #[test]
    fn a_missing_column_names_the_columns() {
        let e = col("y").gt(1).mask(&batch()).unwrap_err();
        assert!(e.contains("no column \"y\"") && e.contains("\"x\""), "{e}");
    }
}
