//! What an experiment shows: the status table while it runs and the results table. Pure
//! formatting; the tuner prints it.

use std::fmt::Write as _;

use super::experiment::{Experiment, Trial};
use super::result::TrialResult;

/// Columns of the parameters: every leaf of the first trial's config, at most 6.
fn param_keys(trials: &[&Trial]) -> Vec<String> {
    let mut keys = trials.first().map(|t| t.config.keys()).unwrap_or_default();
    keys.truncate(6);
    keys
}

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

fn trial_rows(trials: &[&Trial], metric: Option<&str>) -> (Vec<String>, Vec<Vec<String>>) {
    let keys = param_keys(trials);
    let mut header = vec!["trial".to_string(), "status".to_string()];
    header.extend(keys.iter().cloned());
    header.push("iter".into());
    header.push(metric.unwrap_or("metric").to_string());
    let rows = trials
        .iter()
        .map(|t| {
            let mut row = vec![t.name.clone(), t.status.to_string()];
            row.extend(keys.iter().map(|k| cell(t.config.lookup(k))));
            let last = t.last_result();
            row.push(last.map_or(0, |r| r.training_iteration).to_string());
            row.push(
                metric
                    .and_then(|m| last?.get(m))
                    .map_or(String::new(), |x| format!("{x:.5}")),
            );
            row
        })
        .collect();
    (header, rows)
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
    let trials: Vec<&Trial> = e.trials.iter().take(max_rows).collect();
    let (header, rows) = trial_rows(&trials, e.metric.as_deref());
    out.push_str(&render(&header, &rows));
    if e.trials.len() > max_rows {
        let _ = writeln!(out, "... and {} more", e.trials.len() - max_rows);
    }
    out
}

/// The final results as a table (for [`ResultGrid::table`](super::ResultGrid::table)).
pub(crate) fn results_table(trials: &[TrialResult]) -> String {
    let keys: Vec<String> = trials
        .first()
        .map(|t| {
            let mut k = t.config.keys();
            k.truncate(6);
            k
        })
        .unwrap_or_default();
    let metric_names: Vec<String> = trials
        .first()
        .map(|t| t.metrics().keys().take(4).cloned().collect())
        .unwrap_or_default();
    let mut header = vec!["trial".to_string(), "status".to_string()];
    header.extend(keys.iter().cloned());
    header.push("iter".into());
    header.extend(metric_names.iter().cloned());
    let rows: Vec<Vec<String>> = trials
        .iter()
        .map(|t| {
            let mut row = vec![t.name.clone(), t.status.to_string()];
            row.extend(keys.iter().map(|k| cell(t.config.lookup(k))));
            row.push(t.iterations().to_string());
            let m = t.metrics();
            row.extend(
                metric_names
                    .iter()
                    .map(|k| m.get(k).map_or(String::new(), |x| format!("{x:.5}"))),
            );
            row
        })
        .collect();
    render(&header, &rows)
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
