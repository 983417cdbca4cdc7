//! What can be stored, passed to a task and returned from one.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A type that Mobula can store, pass to a task and return from one.
///
/// Every type that is `Serialize + DeserializeOwned + Clone + Send + Sync + 'static` is a
/// `Value`; there is nothing to implement. `Clone` is what lets [`ObjectRef::get`] hand out a
/// copy of a local object without serializing it; `Serialize` is what lets an object spill to
/// disk (and, in a cluster, cross the network).
///
/// [`ObjectRef::get`]: crate::ObjectRef::get
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored by Mobula",
    label = "not a Mobula value",
    note = "a value passed to or returned from a remote function must be \
            Serialize + Deserialize + Clone + Send + Sync + 'static (derive Serialize, Deserialize, Clone)"
)]
pub trait Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T> Value for T where T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
