//! Arguments of remote calls: a value or a ref to one, resolved before the body runs.

use std::ops::Deref;
use std::sync::Arc;

use futures::future::LocalBoxFuture;

use super::object_ref::ObjectRef;
use crate::base::args::{ArgList, Params};
use crate::base::error::GetError;
use crate::base::id::ObjectId;
use crate::base::value::Value;

/// One argument of a remote call, as given by the caller: a value, or a ref whose value the
/// task receives once it is ready (Ray's rule for top-level ref arguments).
#[derive(Clone, Debug)]
pub enum Arg<T> {
    /// The value itself, moved into the task.
    Value(T),
    /// A ref; the task waits for it and receives its value.
    Ref(ObjectRef<T>),
    /// Many refs gathered into one value (a `Vec<ObjectRef<E>>` passed where a `Vec<E>` is
    /// taken): the task waits for all of them, as Ray's `f.remote(*refs)`.
    Gather(Arc<dyn Gather<T>>),
}

/// Refs that resolve together into one `T`.
#[doc(hidden)]
pub trait Gather<T>: Send + Sync + std::fmt::Debug {
    /// The ids of the refs.
    fn deps(&self, out: &mut Vec<ObjectId>);
    /// Resolves on a thread that may block.
    fn resolve_blocking(&self) -> Result<T, GetError>;
    /// Resolves without blocking.
    fn resolve(&self) -> LocalBoxFuture<'static, Result<T, GetError>>;
}

struct GatherVec<E>(Vec<ObjectRef<E>>);

impl<E> std::fmt::Debug for GatherVec<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} refs", self.0.len())
    }
}

impl<E: Value> Gather<Vec<E>> for GatherVec<E> {
    fn deps(&self, out: &mut Vec<ObjectId>) {
        out.extend(self.0.iter().map(ObjectRef::id));
    }

    fn resolve_blocking(&self) -> Result<Vec<E>, GetError> {
        self.0.iter().map(ObjectRef::get).collect()
    }

    fn resolve(&self) -> LocalBoxFuture<'static, Result<Vec<E>, GetError>> {
        let refs = self.0.clone();
        Box::pin(async move {
            let mut out = Vec::with_capacity(refs.len());
            for r in refs {
                out.push(r.await?);
            }
            Ok(out)
        })
    }
}

/// Refs to pass where a remote function takes a `Vec<E>`: made by [`gather`].
pub struct Gathered<E>(Vec<ObjectRef<E>>);

impl<E> std::fmt::Debug for Gathered<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gathered({} refs)", self.0.len())
    }
}

/// Passes many refs as one `Vec<E>` argument, each resolved before the task runs (Ray's
/// `f.remote(*refs)`): `total.remote(mobula::gather(&refs))` for `fn total(xs: Vec<u64>)`.
/// Takes the refs by value or by reference, as `get_all` and `wait` do.
pub fn gather<R: RefItem>(refs: impl IntoIterator<Item = R>) -> Gathered<R::Elem> {
    Gathered(refs.into_iter().map(RefItem::into_ref).collect())
}

/// An `ObjectRef<E>` or a `&ObjectRef<E>`, as [`gather`] takes them.
pub trait RefItem {
    /// The value's type.
    type Elem: Value;
    /// The ref (a clone, for a reference).
    fn into_ref(self) -> ObjectRef<Self::Elem>;
}

impl<E: Value> RefItem for ObjectRef<E> {
    type Elem = E;
    fn into_ref(self) -> ObjectRef<E> {
        self
    }
}

impl<E: Value> RefItem for &ObjectRef<E> {
    type Elem = E;
    fn into_ref(self) -> ObjectRef<E> {
        self.clone()
    }
}

impl<E: Value> IntoArg<Vec<E>> for Gathered<E> {
    fn into_arg(self) -> Arg<Vec<E>> {
        Arg::Gather(Arc::new(GatherVec(self.0)))
    }
}

/// What may be passed where a remote function takes a `T`: a `T`, an `ObjectRef<T>` or a
/// `&ObjectRef<T>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed where the remote function takes a `{T}`",
    label = "expected `{T}`, `ObjectRef<{T}>` or `&ObjectRef<{T}>`",
    note = "a remote call takes each argument as a value of the parameter's type or as a ref to one",
    note = "for a `Vec<E>` parameter, many refs go as one argument with `mobula::gather(&refs)`"
)]
pub trait IntoArg<T> {
    /// Converts into an argument.
    fn into_arg(self) -> Arg<T>;
}

impl<T: Value> IntoArg<T> for T {
    fn into_arg(self) -> Arg<T> {
        Arg::Value(self)
    }
}

/// An argument already made (a library passing on what its caller gave).
impl<T: Value> IntoArg<T> for Arg<T> {
    fn into_arg(self) -> Arg<T> {
        self
    }
}

impl<T: Value> IntoArg<T> for ObjectRef<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Ref(self)
    }
}

impl<T: Value> IntoArg<T> for &ObjectRef<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Ref(self.clone())
    }
}

/// An argument ready for the body: owned (a value argument, copied for this attempt) or shared
/// with the object store (a ref argument). A parameter of type `&T` borrows it without a copy.
#[doc(hidden)]
#[derive(Debug)]
pub enum Resolved<T> {
    /// A value of the task's own.
    Owned(T),
    /// A value shared with the store.
    Shared(Arc<T>),
}

impl<T: Clone> Resolved<T> {
    /// The value, copied out of the store only if someone else still reads it there.
    pub fn into_owned(self) -> T {
        match self {
            Resolved::Owned(v) => v,
            Resolved::Shared(a) => Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone()),
        }
    }
}

impl<T> Deref for Resolved<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self {
            Resolved::Owned(v) => v,
            Resolved::Shared(a) => a,
        }
    }
}

impl<T: Value> Arg<T> {
    fn deps(&self, out: &mut Vec<ObjectId>) {
        match self {
            Arg::Value(_) => {}
            Arg::Ref(r) => out.push(r.id()),
            Arg::Gather(g) => g.deps(out),
        }
    }

    fn resolve_blocking(&self) -> Result<Resolved<T>, GetError> {
        match self {
            Arg::Value(v) => Ok(Resolved::Owned(v.clone())),
            Arg::Ref(r) => r.get_shared_blocking(None).map(Resolved::Shared),
            Arg::Gather(g) => g.resolve_blocking().map(Resolved::Owned),
        }
    }

    async fn resolve(self) -> Result<Resolved<T>, GetError> {
        match self {
            Arg::Value(v) => Ok(Resolved::Owned(v)),
            Arg::Ref(r) => r.get_shared().await.map(Resolved::Shared),
            Arg::Gather(g) => g.resolve().await.map(Resolved::Owned),
        }
    }
}

macro_rules! tuples {
    ($( ($($t:ident $v:ident),*) )*) => {$(
        impl<$($t: Value),*> Params for ($($t,)*) {
            type Args = ($(Arg<$t>,)*);
            type Resolved = ($(Resolved<$t>,)*);
        }

        #[allow(unused_variables, unused_mut, clippy::unused_unit)]
        impl<$($t: Value),*> ArgList for ($(Arg<$t>,)*) {
            type Resolved = ($(Resolved<$t>,)*);

            fn deps(&self, out: &mut Vec<ObjectId>) {
                let ($($v,)*) = self;
                $( $v.deps(out); )*
            }

            fn resolve_blocking(&self) -> Result<Self::Resolved, GetError> {
                let ($($v,)*) = self;
                Ok(($($v.resolve_blocking()?,)*))
            }

            fn resolve(&self) -> LocalBoxFuture<'static, Result<Self::Resolved, GetError>> {
                let ($($v,)*) = self.clone();
                Box::pin(async move { Ok(($($v.resolve().await?,)*)) })
            }

            fn encode(resolved: &Self::Resolved) -> Result<Vec<Vec<u8>>, String> {
                let ($($v,)*) = resolved;
                let mut out = Vec::new();
                $(
                    let mut buffer = Vec::new();
                    crate::object::codec::write::<$t>($v, &mut buffer)?;
                    out.push(buffer);
                )*
                Ok(out)
            }

            fn decode(buffers: &[Vec<u8>]) -> Result<Self, String> {
                let mut next = buffers.iter();
                let tuple = ($(
                    Arg::Value(crate::object::codec::read::<$t>(
                        next.next().ok_or("too few arguments")?,
                    )?),
                )*);
                if next.next().is_some() {
                    return Err("too many arguments".into());
                }
                Ok(tuple)
            }
        }
    )*};
}

tuples! {
    ()
    (A a)
    (A a, B b)
    (A a, B b, C c)
    (A a, B b, C c, D d)
    (A a, B b, C c, D d, E e)
    (A a, B b, C c, D d, E e, F f)
    (A a, B b, C c, D d, E e, F f, G g)
    (A a, B b, C c, D d, E e, F f, G g, H h)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i, J j)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l)
}
