//! One captured line and how a driver's terminal shows it. Pure.

use serde::{Deserialize, Serialize};

use crate::base::id::{ActorId, NodeId, TaskId};

/// Where a line came from: [`mobula::println!`](crate::println),
/// [`mobula::eprintln!`](crate::eprintln), or a `tracing` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A `tracing` event (its level leads the text).
    Tracing,
}

impl LogStream {
    /// The name filters and tables use.
    pub fn name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Tracing => "tracing",
        }
    }
}

/// One line a task or actor printed or logged, with where it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogLine {
    /// The node it ran on.
    pub node_id: NodeId,
    /// The task, or the actor method call, that wrote it.
    pub task_id: TaskId,
    /// The actor, for a line written by an actor's constructor or method.
    pub actor_id: Option<ActorId>,
    /// The function (`path::to::square`), or the actor method (`path::to::Counter.incr`).
    pub function: String,
    /// Which stream.
    pub stream: LogStream,
    /// The text, without its line end.
    pub text: String,
    /// When it was written: microseconds since the Unix epoch.
    pub time_us: u64,
    /// Its number among the lines its node kept, for a stable order.
    pub seq: u64,
}

impl LogLine {
    /// The short name the prefix shows: the function's (`square`), or the actor's class
    /// (`Counter`).
    pub fn source_name(&self) -> &str {
        let path = if self.actor_id.is_some() {
            self.function.split('.').next().unwrap_or(&self.function)
        } else {
            &self.function
        };
        path.rsplit("::").next().unwrap_or(path)
    }

    /// What a driver's terminal shows before the text, as Ray does: the function or class,
    /// the task or actor id (what `mobula logs` takes) and the node's short id, as in
    /// `(square task=5c1e0f3a9b2d4e11000000a3 node=ab12cd34)`.
    pub fn prefix(&self) -> String {
        let node = self.node_id.to_string();
        let node = &node[..node.len().min(8)];
        match self.actor_id {
            Some(actor) => format!("({} actor={actor} node={node})", self.source_name()),
            None => format!("({} task={} node={node})", self.source_name(), self.task_id),
        }
    }

    /// The id `mobula logs <id>` finds the line by: its actor's, or else its task's.
    pub fn owner_id(&self) -> String {
        match self.actor_id {
            Some(actor) => actor.to_string(),
            None => self.task_id.to_string(),
        }
    }

    /// The line as the driver's terminal shows it: the prefix before each of its lines.
    pub fn render(&self) -> String {
        let prefix = self.prefix();
        let mut out = String::with_capacity(self.text.len() + prefix.len() + 2);
        for (i, part) in self.text.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&prefix);
            out.push(' ');
            out.push_str(part);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(actor: Option<ActorId>, function: &str, text: &str) -> LogLine {
        LogLine {
            node_id: "6a1b2c3d4e5f40718293a4b5c6d7e8f9".parse().unwrap(),
            task_id: TaskId::from_parts(0x11, 7),
            actor_id: actor,
            function: function.into(),
            stream: LogStream::Stdout,
            text: text.into(),
            time_us: 1,
            seq: 0,
        }
    }

    #[test]
    fn a_task_line_names_its_function_task_and_node() {
        let l = line(None, "my_crate::jobs::square", "hello");
        assert_eq!(l.source_name(), "square");
        assert_eq!(
            l.render(),
            "(square task=000000000000001100000007 node=6a1b2c3d) hello"
        );
        assert_eq!(l.owner_id(), "000000000000001100000007");
    }

    #[test]
    fn an_actor_line_names_its_class_and_actor() {
        let actor = ActorId::from_parts(0x22, 3);
        let l = line(Some(actor), "my_crate::Counter.incr", "at 5");
        assert_eq!(l.source_name(), "Counter");
        assert_eq!(
            l.prefix(),
            "(Counter actor=000000000000002200000003 node=6a1b2c3d)"
        );
        assert_eq!(l.owner_id(), actor.to_string());
        // A constructor's line carries the class path alone.
        assert_eq!(
            line(Some(actor), "my_crate::Counter", "").source_name(),
            "Counter"
        );
    }

    #[test]
    fn each_line_of_a_multi_line_text_gets_the_prefix() {
        let l = line(None, "f", "one\ntwo");
        assert_eq!(
            l.render(),
            "(f task=000000000000001100000007 node=6a1b2c3d) one\n\
             (f task=000000000000001100000007 node=6a1b2c3d) two"
        );
    }
}
