//! What an experiment shows: the status table while it runs and the results table. Pure
//! formatting; the tuner prints it.

use std::fmt::Write as _;

use super::experiment::{Experiment, ReportedResult, Trial, TrialStatus};
use super::result::TrialResult;
use super::space::TrialConfig;

fn cell(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::Number(n)) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.5}"),
            _ => n.to_string(),
        },
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header);
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1)));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// What a row of a trials table shows.
struct Row<'a> {
    name: &'a str,
    status: TrialStatus,
    config: &'a TrialConfig,
    last: Option<&'a ReportedResult>,
}

impl<'a> Row<'a> {
    fn of_trial(t: &'a Trial) -> Self {
        Row {
            name: &t.name,
            status: t.status,
            config: &t.config,
            last: t.last_result(),
        }
    }

    fn of_result(t: &'a TrialResult) -> Self {
        Row {
            name: &t.name,
            status: t.status,
            config: &t.config,
            last: t.history.last(),
        }
    }
}

/// A row per trial: its name, status, parameters (every leaf of the first trial's config, at
/// most 6), iterations and the `metrics` of its latest result.
fn trials_table(rows: &[Row], metrics: &[String]) -> String {
    let mut keys = rows.first().map(|r| r.config.keys()).unwrap_or_default();
    keys.truncate(6);
    let mut header = vec!["trial".to_string(), "status".to_string()];
    header.extend(keys.iter().cloned());
    header.push("iter".into());
    header.extend(metrics.iter().cloned());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![r.name.to_string(), r.status.to_string()];
            row.extend(keys.iter().map(|k| cell(r.config.lookup(k))));
            row.push(r.last.map_or(0, |l| l.training_iteration).to_string());
            row.extend(metrics.iter().map(|m| {
                r.last
                    .and_then(|l| l.get(m))
                    .map_or(String::new(), |x| format!("{x:.5}"))
            }));
            row
        })
        .collect();
    render(&header, &cells)
}

/// The status of a running experiment: counts by status, the best so far, and a row per
/// trial (the first `max_rows`).
pub(crate) fn status(e: &Experiment, elapsed: f64, max_rows: usize) -> String {
    let mut out = String::new();
    let counts: Vec<String> = e
        .counts()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let _ = writeln!(
        out,
        "== {} | {:.1} s | {} trials: {} | scheduler {}",
        e.name,
        elapsed,
        e.trials.len(),
        counts.join(", "),
        e.scheduler.name()
    );
    if let (Some((best, value)), Some(metric)) = (e.best(), e.metric.as_deref()) {
        let _ = writeln!(
            out,
            "best so far: {} with {metric} = {value:.5}, config {}",
            best.name, best.config
        );
    }
    let rows: Vec<Row> = e.trials.iter().take(max_rows).map(Row::of_trial).collect();
    let metric = e.metric.clone().unwrap_or_else(|| "metric".into());
    out.push_str(&trials_table(&rows, &[metric]));
    if e.trials.len() > max_rows {
        let _ = writeln!(out, "... and {} more", e.trials.len() - max_rows);
    }
    out
}

/// The final results as a table (for [`ResultGrid::table`](super::ResultGrid::table)).
pub(crate) fn results_table(trials: &[TrialResult]) -> String {
    let metrics: Vec<String> = trials
        .first()
        .and_then(|t| t.history.last())
        .map(|r| r.metrics.keys().take(4).cloned().collect())
        .unwrap_or_default();
    let rows: Vec<Row> = trials.iter().map(Row::of_result).collect();
    trials_table(&rows, &metrics)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tune::experiment::{Mode, StopCriteria};
    use crate::tune::schedulers::Fifo;
    use crate::tune::space::{SearchSpace, uniform};

    #[test]
    fn the_status_shows_counts_the_best_and_a_row_per_trial() {
        let mut e = Experiment::new(
            "exp".into(),
            Some("score".into()),
            Mode::Max,
            Box::new(Fifo),
            StopCriteria::new(),
        );
        let space = SearchSpace::new().param("a", uniform(0.0, 1.0));
        let mut rng = crate::tune::rng::Rng::seeded(1);
        for _ in 0..3 {
            e.add_trial(space.resolve(&[], &mut rng));
        }
        e.start(0);
        e.start(1);
        let m = |x: f64| [("score".to_string(), x)].into_iter().collect();
        e.report(0, 1, m(1.5), None, Duration::ZERO);
        e.report(1, 1, m(2.5), None, Duration::ZERO);
        let text = status(&e, 1.0, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("3 trials: 1 PENDING, 2 RUNNING"),
            "{text}"
        );
        assert!(
            lines[1].contains("best so far: exp_00001 with score = 2.50000"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("trial")
                && lines[2].contains(" a ")
                && lines[2].ends_with("score")
        );
        assert!(lines[4].starts_with("exp_00000  RUNNING"), "{text}");
        assert!(lines[4].ends_with("1.50000"), "{text}");
        assert!(lines[6].contains("... and 1 more"), "{text}");
    }
}
