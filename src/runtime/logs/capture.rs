//! Capture: a line written inside a task or an actor call becomes a [`LogLine`] of it, from
//! [`mobula::println!`](crate::println), [`mobula::eprintln!`](crate::eprintln) or a
//! `tracing` event; outside them, lines print as they always would.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::base::log_line::{LogLine, LogStream};
use crate::runtime::context::current_task;
use crate::runtime::global;

/// Records `text` as a line of the running task or actor call; hands it back when this
/// thread runs none (or its node has stopped).
pub(crate) fn record(stream: LogStream, text: String) -> Result<(), String> {
    let Some(task) = current_task() else {
        return Err(text);
    };
    let line = LogLine {
        node_id: task.node_id,
        task_id: task.task_id,
        actor_id: task.actor_id,
        function: task.function.to_string(),
        stream,
        text,
        time_us: now_us(),
        seq: 0,
    };
    let mut line = Some(line);
    global::with_runtime(|rt| {
        if let Some(line) = line.take() {
            super::ship::keep(rt, line, task.log_to);
        }
    });
    match line {
        Some(line) => Err(line.text),
        None => Ok(()),
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What [`mobula::println!`](crate::println) and [`mobula::eprintln!`](crate::eprintln)
/// call: the line is the running task's, or printed as usual outside a task.
#[doc(hidden)]
pub fn print_line(stream: LogStream, args: fmt::Arguments<'_>) {
    use std::io::Write as _;
    let text = match args.as_str() {
        Some(s) => s.to_string(),
        None => args.to_string(),
    };
    if let Err(text) = record(stream, text) {
        // As `println!` would, but a closed pipe is not worth a panic.
        let _ = match stream {
            LogStream::Stdout => writeln!(std::io::stdout().lock(), "{text}"),
            _ => writeln!(std::io::stderr().lock(), "{text}"),
        };
    }
}

/// A `tracing` layer that captures the events of tasks and actor calls as their log lines
/// (events elsewhere pass it by). Add it to your own subscriber:
///
/// ```
/// use tracing_subscriber::prelude::*;
/// tracing_subscriber::registry().with(mobula::logs::layer()).init();
/// ```
///
/// Without a subscriber of your own, tasks and actor calls capture their events at `INFO`
/// and above by themselves.
pub fn layer() -> TaskLogLayer {
    TaskLogLayer { max_level: None }
}

/// The layer [`layer`] makes.
#[derive(Debug, Clone)]
pub struct TaskLogLayer {
    /// Set on the layer tasks fall back on: events more verbose than this are off.
    max_level: Option<LevelFilter>,
}

impl<S: Subscriber> Layer<S> for TaskLogLayer {
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        self.max_level.is_none_or(|max| metadata.level() <= &max)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if crate::runtime::context::in_task() {
            let _ = record(LogStream::Tracing, format_event(event));
        }
    }
}

/// `LEVEL target: message key=value ...`.
fn format_event(event: &Event<'_>) -> String {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    format!(
        "{} {}: {}{}",
        meta.level(),
        meta.target(),
        fields.message,
        fields.rest
    )
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

/// Runs `f` (a task's body, or one poll of it) with `tracing` events captured: through the
/// process's own subscriber if it has one (which needs [`layer`] for that), else through
/// this fallback, which keeps `INFO` and above.
pub(crate) fn scoped<R>(f: impl FnOnce() -> R) -> R {
    // A global subscriber, once set, stays: then no fallback is needed ever again.
    static GLOBAL: AtomicBool = AtomicBool::new(false);
    static FALLBACK: OnceLock<Dispatch> = OnceLock::new();
    if GLOBAL.load(Ordering::Relaxed) {
        return f();
    }
    // (`tracing::dispatcher::has_been_set` cannot tell: scoped defaults set it too.)
    let (ours, none) = tracing::dispatcher::get_default(|d| {
        (
            d.is::<FallbackMark>(),
            d.is::<tracing::subscriber::NoSubscriber>(),
        )
    });
    if ours {
        return f();
    }
    if !none {
        GLOBAL.store(true, Ordering::Relaxed);
        return f();
    }
    let dispatch = FALLBACK.get_or_init(|| {
        let layer = TaskLogLayer {
            max_level: Some(LevelFilter::INFO),
        };
        Dispatch::new(
            tracing_subscriber::registry()
                .with(layer)
                .with(FallbackMark),
        )
    });
    tracing::dispatcher::with_default(dispatch, f)
}

/// Marks the fallback subscriber, so that a task nested in a task on one thread sees it is
/// already in place.
struct FallbackMark;

impl<S: Subscriber> Layer<S> for FallbackMark {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_as_level_target_message_and_fields() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Keep(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
        impl<S: Subscriber> Layer<S> for Keep {
            fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
                self.0.lock().unwrap().push(format_event(event));
            }
        }
        let subscriber = tracing_subscriber::registry().with(Keep(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "jobs", step = 3, name = "lr", "loss went {}", "up");
        });
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["WARN jobs: loss went up step=3 name=lr"]
        );
    }

    #[test]
    fn outside_a_task_nothing_is_recorded() {
        assert_eq!(record(LogStream::Stdout, "x".into()), Err("x".to_string()));
    }
}
