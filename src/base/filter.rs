//! Filters on state rows (`state=RUNNING`, `node_id!=...`) and the fields each kind of row
//! can be filtered on. Pure.

use serde::{Deserialize, Serialize};

use super::rows::{ActorInfo, NodeEntry, ObjectInfo, PlacementGroupInfo, StateKind, TaskInfo};
use crate::base::jobs::JobInfo;
use crate::base::log_line::LogLine;

/// How a filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// The field equals the value (`=`).
    Eq,
    /// The field differs from the value (`!=`).
    Ne,
}

/// One condition on a field: `key=value` or `key!=value`. Values compare as text, without
/// regard to case (`state=running` matches `RUNNING`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// The field.
    pub key: String,
    /// How it compares.
    pub op: Op,
    /// The value.
    pub value: String,
}

/// A filter that cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The text is not `key=value` or `key!=value`.
    #[error("a filter is key=value or key!=value, not {0:?}")]
    Syntax(String),
    /// The kind of row has no such field.
    #[error("{kind} have no field `{key}`; they have: {fields}")]
    UnknownField {
        /// The rows asked for.
        kind: &'static str,
        /// The field named.
        key: String,
        /// The fields they have.
        fields: String,
    },
}

impl Filter {
    /// Parses `key=value` or `key!=value`.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let (key, op, value) = if let Some((k, v)) = text.split_once("!=") {
            (k, Op::Ne, v)
        } else if let Some((k, v)) = text.split_once('=') {
            (k, Op::Eq, v)
        } else {
            return Err(FilterError::Syntax(text.to_string()));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() {
            return Err(FilterError::Syntax(text.to_string()));
        }
        Ok(Filter {
            key: key.to_string(),
            op,
            value: value.to_string(),
        })
    }

    fn holds(&self, field: Option<String>) -> bool {
        let equal = field.is_some_and(|f| {
            f.eq_ignore_ascii_case(&self.value)
                // A path (`crate::module::work`, `Class.method`) also matches by its last
                // part: `function=work`.
                || (NAMED.contains(&self.key.as_str()) && short_name(&f).eq_ignore_ascii_case(&self.value))
        });
        match self.op {
            Op::Eq => equal,
            Op::Ne => !equal,
        }
    }
}

/// Fields holding a function's or class's path, which also match by their short name.
const NAMED: &[&str] = &["function", "class", "name"];

/// The last part of a path: `work` of `my_crate::jobs::work`, `increment` of
/// `my_crate::Counter.increment` (a method keeps its class: `Counter.increment`).
fn short_name(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

/// A row that filters can read.
pub trait Row {
    /// The fields filters can name.
    const FIELDS: &'static [&'static str];
    /// A field as text (`None` when it has no value).
    fn field(&self, key: &str) -> Option<String>;
}

/// Whether `row` passes every filter.
pub fn passes<R: Row>(row: &R, filters: &[Filter]) -> bool {
    filters.iter().all(|f| f.holds(row.field(&f.key)))
}

/// Rows that pass the filters: the first `limit` kept, the rest counted.
pub(crate) struct Capped<'a, T> {
    filters: &'a [Filter],
    limit: usize,
    rows: Vec<T>,
    more: u64,
}

impl<'a, T: Row> Capped<'a, T> {
    pub fn new(filters: &'a [Filter], limit: usize) -> Self {
        Capped {
            filters,
            limit,
            rows: Vec::new(),
            more: 0,
        }
    }

    /// Keeps `row` if it passes and there is room; counts it if it passes and there is not.
    pub fn offer(&mut self, row: T) {
        if passes(&row, self.filters) {
            if self.rows.len() < self.limit {
                self.rows.push(row);
            } else {
                self.more += 1;
            }
        }
    }

    /// Offers every row of `rows`. Without filters, the rows past the limit are only counted:
    /// a lazy iterator (`ended.iter().map(to_row)`) does not build them, which matters when
    /// a node keeps 10,000 ended tasks and a query wants 100.
    pub fn offer_all(&mut self, rows: impl IntoIterator<Item = T>) {
        let mut rows = rows.into_iter();
        if !self.filters.is_empty() {
            for row in rows {
                self.offer(row);
            }
            return;
        }
        let room = self.limit.saturating_sub(self.rows.len());
        self.rows.extend(rows.by_ref().take(room));
        self.more += match rows.size_hint() {
            (low, Some(high)) if low == high => low as u64,
            _ => rows.count() as u64,
        };
    }

    /// The rows kept, and how many more passed.
    pub fn finish(self) -> (Vec<T>, u64) {
        (self.rows, self.more)
    }
}

/// Checks that the filters name fields of `kind`'s rows.
pub fn check(kind: StateKind, filters: &[Filter]) -> Result<(), FilterError> {
    let (name, fields) = match kind {
        StateKind::Tasks => ("tasks", TaskInfo::FIELDS),
        StateKind::Actors => ("actors", ActorInfo::FIELDS),
        StateKind::Objects => ("objects", ObjectInfo::FIELDS),
        StateKind::Nodes => ("nodes", NodeEntry::FIELDS),
        StateKind::PlacementGroups => ("placement groups", PlacementGroupInfo::FIELDS),
        StateKind::Summary => ("summaries", &[][..]),
        StateKind::Logs => ("log lines", LogLine::FIELDS),
        StateKind::Jobs => ("jobs", JobInfo::FIELDS),
    };
    match filters.iter().find(|f| !fields.contains(&f.key.as_str())) {
        Some(f) => Err(FilterError::UnknownField {
            kind: name,
            key: f.key.clone(),
            fields: fields.join(", "),
        }),
        None => Ok(()),
    }
}

fn text<T: ToString>(v: &T) -> Option<String> {
    Some(v.to_string())
}

impl Row for TaskInfo {
    const FIELDS: &'static [&'static str] = &[
        "task_id", "function", "state", "node_id", "actor_id", "attempts", "error",
    ];
    fn field(&self, key: &str) -> Option<String> {
        match key {
            "task_id" => text(&self.task_id),
            "actor_id" => self.actor_id.as_ref().and_then(text),
            "function" => text(&self.function),
            "state" => text(&self.state),
            "node_id" => text(&self.node_id),
            "attempts" => text(&self.attempts),
            "error" => self.error.clone(),
            _ => None,
        }
    }
}

impl Row for LogLine {
    const FIELDS: &'static [&'static str] =
        &["id", "task_id", "actor_id", "node_id", "function", "stream"];
    fn field(&self, key: &str) -> Option<String> {
        match key {
            // What `mobula logs <id>` names: the actor, or the task if not an actor's.
            "id" => Some(self.owner_id()),
            "task_id" => text(&self.task_id),
            "actor_id" => self.actor_id.as_ref().and_then(text),
            "node_id" => text(&self.node_id),
            "function" => text(&self.function),
            "stream" => text(&self.stream.name()),
            _ => None,
        }
    }
}

impl Row for ActorInfo {
    const FIELDS: &'static [&'static str] =
        &["actor_id", "class", "name", "state", "node_id", "restarts"];
    fn field(&self, key: &str) -> Option<String> {
        match key {
            "actor_id" => text(&self.actor_id),
            "class" => text(&self.class),
            "name" => self.name.clone(),
            "state" => text(&self.state),
            "node_id" => text(&self.node_id),
            "restarts" => text(&self.restarts),
            _ => None,
        }
    }
}

impl Row for ObjectInfo {
    const FIELDS: &'static [&'static str] = &[
        "object_id",
        "state",
        "node_id",
        "spilled",
        "function",
        "size",
    ];
    fn field(&self, key: &str) -> Option<String> {
        match key {
            "object_id" => text(&self.object_id),
            "state" => text(&self.state),
            "node_id" => text(&self.node_id),
            "spilled" => text(&self.spilled),
            "function" => self.function.clone(),
            "size" => text(&self.size),
            _ => None,
        }
    }
}

impl Row for NodeEntry {
    const FIELDS: &'static [&'static str] = &["node_id", "address", "is_head", "alive"];
    fn field(&self, key: &str) -> Option<String> {
        match key {
            "node_id" => text(&self.node_id),
            "address" => self.address.clone(),
            "is_head" => text(&self.is_head),
            "alive" => text(&self.alive),
            _ => None,
        }
    }
}

impl Row for JobInfo {
    const FIELDS: &'static [&'static str] = &["job_id", "status", "driver", "submitted"];
    fn field(&self, key: &str) -> Option<String> {
        match key {
            "job_id" => text(&self.job_id),
            "status" => text(&self.status),
            "driver" => self.driver.as_ref().and_then(text),
            "submitted" => text(&self.submitted),
            _ => None,
        }
    }
}

impl Row for PlacementGroupInfo {
    const FIELDS: &'static [&'static str] = &["id", "strategy", "state", "creator"];
    fn field(&self, key: &str) -> Option<String> {
        match key {
            "id" => text(&self.id),
            "strategy" => text(&self.strategy),
            "state" => text(&self.state),
            "creator" => text(&self.creator),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::id::{NodeId, TaskId};
    use crate::base::rows::TaskState;

    #[test]
    fn rows_past_the_limit_are_counted_and_without_filters_not_built() {
        let built = std::cell::Cell::new(0);
        let make = |i: usize| {
            built.set(built.get() + 1);
            task(if i % 2 == 0 {
                TaskState::Finished
            } else {
                TaskState::Failed
            })
        };
        let mut rows = Capped::new(&[], 3);
        rows.offer_all((0..1000).map(make));
        let (kept, more) = rows.finish();
        assert_eq!((kept.len(), more), (3, 997));
        assert_eq!(built.get(), 3, "only the kept rows were built");

        let failed = [Filter::parse("state=FAILED").unwrap()];
        let mut rows = Capped::new(&failed, 3);
        rows.offer_all((0..1000).map(make));
        let (kept, more) = rows.finish();
        assert_eq!((kept.len(), more), (3, 497));
        assert!(kept.iter().all(|t| t.state == TaskState::Failed));
        // A filter needs every row; so does an iterator whose length is not known.
        let mut rows = Capped::new(&[], 3);
        rows.offer_all((0..10).filter(|i| i % 3 == 0).map(make));
        assert_eq!(rows.finish().1, 1);
    }

    fn task(state: TaskState) -> TaskInfo {
        TaskInfo {
            task_id: TaskId::NIL,
            function: "app::f".into(),
            state,
            node_id: NodeId::random(),
            actor_id: None,
            attempts: 1,
            submitted_us: 0,
            started_us: None,
            ended_us: None,
            error: None,
        }
    }

    #[test]
    fn filters_parse_and_compare_without_case() {
        let running = Filter::parse("state=running").unwrap();
        assert!(passes(
            &task(TaskState::Running),
            std::slice::from_ref(&running)
        ));
        assert!(!passes(&task(TaskState::Finished), &[running]));
        let not_f = Filter::parse(" function != app::f ").unwrap();
        assert_eq!(not_f.op, Op::Ne);
        assert!(!passes(&task(TaskState::Running), &[not_f]));
        // A field without a value equals nothing.
        let error = Filter::parse("error=boom").unwrap();
        assert!(!passes(&task(TaskState::Failed), &[error]));
    }

    #[test]
    fn a_function_matches_by_its_short_name_too() {
        let row = task(TaskState::Running);
        for matching in ["function=f", "function=app::f", "function=F"] {
            assert!(
                passes(&row, &[Filter::parse(matching).unwrap()]),
                "{matching}"
            );
        }
        for other in ["function=app", "function=pp::f", "state=f"] {
            assert!(!passes(&row, &[Filter::parse(other).unwrap()]), "{other}");
        }
        assert!(!passes(&row, &[Filter::parse("function!=f").unwrap()]));
    }

    #[test]
    fn bad_filters_say_what_is_wrong() {
        assert_eq!(
            Filter::parse("state"),
            Err(FilterError::Syntax("state".into()))
        );
        assert!(Filter::parse("=x").is_err());
        let wrong = Filter::parse("colour=red").unwrap();
        let err = check(StateKind::Tasks, &[wrong]).unwrap_err().to_string();
        assert!(err.contains("`colour`") && err.contains("state"), "{err}");
    }
}
