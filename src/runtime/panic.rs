//! Turning panics in user code into error messages.
//!
//! A panic inside a task is caught and returned to whoever gets the task's result, with its
//! message and where it happened. While user code runs under [`catching`], the process-wide
//! panic hook records the location instead of printing the usual "thread panicked" report;
//! panics anywhere else are reported as before.

use std::any::Any;

pub(crate) use crate::base::panic::panic_message;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The payload a deliberately killed worker unwinds with; the worker pool lets its thread die.
#[derive(Debug)]
pub(crate) struct WorkerKill;

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(|c| c.get()) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
                LOCATION.with(|slot| *slot.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs user code, turning a panic into its message (with its location).
pub(crate) fn catching<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    install_hook();
    let outer = CATCHING.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    result.map_err(|payload| {
        if payload.is::<WorkerKill>() {
            // Not a panic of the task's: the worker is meant to die. Let it.
            panic::resume_unwind(payload);
        }
        describe(&*payload)
    })
}

/// The message of a caught panic, with where it happened when that is known.
pub(crate) fn describe(payload: &(dyn Any + Send)) -> String {
    let msg = panic_message(payload);
    match LOCATION.with(|slot| slot.borrow_mut().take()) {
        Some(at) => format!("{msg} (panicked at {at})"),
        None => msg,
    }
}

/// Polls a future, turning a panic into its message.
pub(crate) struct CatchPanic<F: ?Sized> {
    pub inner: std::pin::Pin<Box<F>>,
}

impl<F: std::future::Future + ?Sized> std::future::Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        match catching(|| this.inner.as_mut().poll(cx)) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(msg) => std::task::Poll::Ready(Err(msg)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_says_what_and_where() {
        let err = catching(|| -> u32 { panic!("boom {}", 7) }).unwrap_err();
        assert!(
            err.starts_with("boom 7 (panicked at src/runtime/panic.rs:"),
            "{err}"
        );
        assert_eq!(catching(|| 5).unwrap(), 5);
    }

    #[test]
    fn non_string_payloads_are_named() {
        let err = catching(|| std::panic::panic_any(42u8)).unwrap_err();
        assert!(
            err.starts_with("a panic with a non-string payload"),
            "{err}"
        );
    }
}
