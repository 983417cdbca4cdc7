//! Which task the current thread (or the current async poll) is running, and whether the
//! current thread belongs to the runtime.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context as PollContext, Poll};

use crate::base::id::{ActorId, NodeId, TaskId};

/// What a running task knows about itself.
#[derive(Debug)]
pub(crate) struct TaskContext {
    pub task_id: TaskId,
    pub node_id: NodeId,
    pub function: &'static str,
    /// The actor whose method this is, for an actor call.
    pub actor_id: Option<ActorId>,
    pub attempt: u32,
    /// The node whose terminal shows what it prints: its driver's.
    pub log_to: NodeId,
    pub gpu_ids: Vec<u32>,
    pub cancelled: Arc<AtomicBool>,
    /// Gets and awaits in progress; while there is one, the task's CPUs are lent out.
    pub waits: AtomicUsize,
}

impl TaskContext {
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

thread_local! {
    static CURRENT_TASK: RefCell<Option<Arc<TaskContext>>> = const { RefCell::new(None) };
    static RUNTIME_THREAD: Cell<bool> = const { Cell::new(false) };
    /// Outside a task: the driver whose terminal work submitted now logs to, while this
    /// node submits work another node sent it.
    static ON_BEHALF: Cell<Option<NodeId>> = const { Cell::new(None) };
}

/// The task running on this thread, if any.
pub(crate) fn current_task() -> Option<Arc<TaskContext>> {
    CURRENT_TASK.with(|c| c.borrow().clone())
}

/// Whether a task runs on this thread.
pub(crate) fn in_task() -> bool {
    CURRENT_TASK.with(|c| c.borrow().is_some())
}

/// The driver whose terminal work submitted here now logs to: the running task's, or the
/// one given by [`on_behalf_of`]; `None` means this node's own.
pub(crate) fn log_to() -> Option<NodeId> {
    CURRENT_TASK
        .with(|c| c.borrow().as_ref().map(|t| t.log_to))
        .or_else(|| ON_BEHALF.with(Cell::get))
}

/// Runs `f`, which submits work another node sent, as work of `driver`.
pub(crate) fn on_behalf_of<R>(driver: NodeId, f: impl FnOnce() -> R) -> R {
    let previous = ON_BEHALF.with(|c| c.replace(Some(driver)));
    struct Restore(Option<NodeId>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ON_BEHALF.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(previous);
    f()
}

/// Runs `f` as `task`, with what it logs through `tracing` captured as the task's.
pub(crate) fn with_task<R>(task: &Arc<TaskContext>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT_TASK.with(|c| c.borrow_mut().replace(Arc::clone(task)));
    struct Restore(Option<Arc<TaskContext>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT_TASK.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    crate::runtime::logs::capture::scoped(f)
}

/// Marks this thread as one of the runtime's event-loop threads, where a blocking get would
/// stall every task.
pub(crate) fn mark_runtime_thread() {
    RUNTIME_THREAD.with(|r| r.set(true));
}

pub(crate) fn on_runtime_thread() -> bool {
    RUNTIME_THREAD.with(|r| r.get())
}

/// Yields the CPU a few times, checking `ready` after each; true as soon as it holds.
///
/// A blocking wait costs a sleep and a wake-up (tens of microseconds here); when the awaited
/// result is a few microseconds away, yielding first hands the CPU to the thread making it
/// and returns without sleeping. Yielding (not spinning) costs nothing when others need the
/// CPU more.
pub(crate) fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    const YIELDS: usize = 32;
    for _ in 0..YIELDS {
        std::thread::yield_now();
        if ready() {
            return true;
        }
    }
    false
}

/// A future that runs as `task` each time it is polled, so that async task bodies see their
/// own context even though many share one thread.
pub(crate) struct WithTask<F: ?Sized> {
    pub task: Arc<TaskContext>,
    pub inner: Pin<Box<F>>,
}

impl<F: Future + ?Sized> Future for WithTask<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut PollContext<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let task = Arc::clone(&this.task);
        with_task(&task, || this.inner.as_mut().poll(cx))
    }
}
