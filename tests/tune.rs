//! mobula::tune end to end: the lecture's experiment, early stopping, grids, stop criteria,
//! failures resumed from checkpoints, concurrency, result files.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use common::{Concurrency, start};
use mobula::Config;
use mobula::tune::{
    self, Asha, Checkpoint, Mode, ReportError, RunConfig, Scope, SearchSpace, Session,
    StopCriteria, TrialConfig, TrialStatus, TuneConfig, Tuner,
};

fn storage(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mobula-tune-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn quiet(test: &str) -> RunConfig {
    RunConfig::new().storage_path(storage(test)).verbose(0)
}

/// The lecture's objective: `score = a * step + b` for 100 steps.
#[mobula::remote]
fn objective(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let a: f64 = config.get("a").unwrap();
    let b: f64 = config.get("b").unwrap();
    for step in 0..100 {
        session.report([("score", a * step as f64 + b)])?;
    }
    Ok(())
}

fn lecture_space() -> SearchSpace {
    SearchSpace::new()
        .param("a", tune::uniform(0.0, 1.0))
        .param("b", tune::uniform(0.0, 20.0))
}

fn final_score(config: &TrialConfig) -> f64 {
    config.get::<f64>("a").unwrap() * 99.0 + config.get::<f64>("b").unwrap()
}

#[test]
fn the_lecture_experiment_runs_with_asha_and_finds_the_best_config() {
    let _node = start(Config::default().num_cpus(4));
    let results = Tuner::new(objective)
        .param_space(lecture_space())
        .tune_config(
            TuneConfig::new()
                .metric("score")
                .mode(Mode::Max)
                .num_samples(10)
                .seed(42)
                .scheduler(Asha::new()),
        )
        .run_config(quiet("lecture"))
        .fit()
        .unwrap();
    assert_eq!(results.len(), 10);
    assert!(results.errors().is_empty());
    assert!(
        results
            .trials()
            .iter()
            .all(|t| t.status == TrialStatus::Terminated)
    );
    // ASHA stopped some trials early; none ran past max_t = 100.
    let iterations: Vec<u64> = results.trials().iter().map(|t| t.iterations()).collect();
    assert!(
        iterations.iter().all(|&i| (1..=100).contains(&i)),
        "{iterations:?}"
    );
    let total: u64 = iterations.iter().sum();
    assert!(
        total < 1000,
        "early stopping saved reports: {total} of 1000"
    );
    // The best is the trial whose last score is highest, and its score is its formula's.
    let best = results.best_result().unwrap();
    let best_last = best.metrics()["score"];
    for t in results.trials() {
        assert!(t.metrics()["score"] <= best_last);
    }
    assert_eq!(best.iterations(), 100, "the best ran its whole budget");
    assert!((best_last - final_score(&best.config)).abs() < 1e-9);
    assert_eq!(results.best_config(), Some(&best.config));
    // Scopes: the best single result ever is at least the best last one.
    let ever = results
        .best_result_by("score", Mode::Max, Scope::All)
        .unwrap();
    assert!(ever.value("score", Mode::Max, Scope::All).unwrap() >= best_last);
}

#[test]
fn a_seeded_experiment_with_one_trial_at_a_time_repeats_exactly() {
    let _node = start(Config::default().num_cpus(2));
    let once = |name: &str| {
        let r = Tuner::new(objective)
            .param_space(lecture_space())
            .tune_config(
                TuneConfig::new()
                    .metric("score")
                    .mode(Mode::Max)
                    .num_samples(8)
                    .seed(7)
                    .max_concurrent_trials(1)
                    .scheduler(Asha::new().grace_period(2).reduction_factor(2)),
            )
            .run_config(quiet(name))
            .fit()
            .unwrap();
        r.trials()
            .iter()
            .map(|t| (t.config.clone(), t.iterations(), t.stopped_early))
            .collect::<Vec<_>>()
    };
    let (first, second) = (once("repeat1"), once("repeat2"));
    assert_eq!(first, second);
    assert!(first.iter().any(|t| t.2), "some trial was stopped early");
}

#[mobula::remote]
fn count_to(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let limit: u32 = config.get("limit").unwrap();
    let lr: f64 = config.get("opt.lr").unwrap();
    for i in 1..=limit {
        session.report([("i", f64::from(i)), ("lr", lr)])?;
    }
    Ok(())
}

#[test]
fn grids_nested_configs_and_stop_criteria() {
    let _node = start(Config::default().num_cpus(4));
    let space = SearchSpace::new()
        .param("limit", tune::grid_search([3, 5, 50]))
        .nested(
            "opt",
            SearchSpace::new().param("lr", tune::loguniform(1e-4, 1e-1)),
        );
    let results = Tuner::new(count_to)
        .param_space(space)
        .tune_config(TuneConfig::new().metric("i").num_samples(2).seed(1))
        .run_config(quiet("grid").stop(StopCriteria::new().metric_at_least("i", 10.0)))
        .fit()
        .unwrap();
    assert_eq!(results.len(), 6, "3 grid values, twice");
    let mut limits: Vec<u32> = results
        .trials()
        .iter()
        .map(|t| t.config.get("limit").unwrap())
        .collect();
    limits.sort();
    assert_eq!(limits, vec![3, 3, 5, 5, 50, 50]);
    for t in results.trials() {
        let limit: u64 = t.config.get("limit").unwrap();
        let lr: f64 = t.config.get("opt.lr").unwrap();
        assert!((1e-4..1e-1).contains(&lr));
        assert_eq!(t.metrics()["lr"], lr);
        // The stop criterion ends the 50-step ones at 10.
        assert_eq!(t.iterations(), limit.min(10));
        assert_eq!(t.stopped_early, limit > 10);
        assert_eq!(t.status, TrialStatus::Terminated);
    }
    let lrs: HashSet<u64> = results
        .trials()
        .iter()
        .map(|t| t.config.get::<f64>("opt.lr").unwrap().to_bits())
        .collect();
    assert_eq!(lrs.len(), 6, "the random part is drawn for each trial");
}

/// Fails once at step 5 on its first attempt; saves a checkpoint every step.
#[mobula::remote]
fn flaky(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let fail_at: u64 = config.get("fail_at").unwrap();
    let start = match session.checkpoint() {
        Some(c) => c.to_value::<u64>().unwrap(),
        None => 0,
    };
    for step in start + 1..=10 {
        if step == fail_at && session.attempt() == 1 {
            panic!("lost at step {step}");
        }
        session.report_with_checkpoint(
            [("step", step as f64)],
            Checkpoint::from_value(&step).unwrap(),
        )?;
    }
    Ok(())
}

#[test]
fn a_failed_trial_resumes_from_its_checkpoint_within_max_failures() {
    let _node = start(Config::default().num_cpus(2));
    let space = SearchSpace::new().param("fail_at", tune::grid_search([5]));
    let resumed = Tuner::new(flaky)
        .param_space(space.clone())
        .tune_config(TuneConfig::new().metric("step"))
        .run_config(quiet("flaky1").max_failures(1))
        .fit()
        .unwrap();
    let t = &resumed.trials()[0];
    assert_eq!(t.status, TrialStatus::Terminated);
    let steps: Vec<f64> = t.history.iter().map(|r| r.metrics["step"]).collect();
    assert_eq!(
        steps,
        (1..=10).map(f64::from).collect::<Vec<_>>(),
        "no step repeated or lost"
    );
    let iterations: Vec<u64> = t.history.iter().map(|r| r.training_iteration).collect();
    assert_eq!(iterations, (1..=10).collect::<Vec<u64>>());
    assert!(t.error.as_deref().unwrap().contains("lost at step 5"));
    assert_eq!(
        t.checkpoint.as_ref().unwrap().to_value::<u64>().unwrap(),
        10
    );

    // Without restarts the trial ends in ERROR, with the panic's message.
    let failed = Tuner::new(flaky)
        .param_space(space)
        .tune_config(TuneConfig::new().metric("step"))
        .run_config(quiet("flaky2"))
        .fit()
        .unwrap();
    assert_eq!(failed.errors().len(), 1);
    assert_eq!(failed.trials()[0].iterations(), 4);
}

/// Every attempt of a trial seen by `in_actor`: (trial, attempt, the actor it ran in).
static ATTEMPTS: std::sync::Mutex<Vec<(String, u32, Option<mobula::ActorId>)>> =
    std::sync::Mutex::new(Vec::new());

/// Notes the actor it runs in; fails on its first attempt after one report.
#[mobula::remote]
fn in_actor(_config: TrialConfig, session: Session) -> Result<(), ReportError> {
    ATTEMPTS.lock().unwrap().push((
        session.trial_name().to_string(),
        session.attempt(),
        mobula::context().actor_id(),
    ));
    session.report([("x", 1.0)])?;
    if session.attempt() == 1 {
        panic!("first attempt lost");
    }
    Ok(())
}

#[test]
fn every_attempt_of_a_function_trial_runs_in_an_actor_of_its_own() {
    let _node = start(Config::default().num_cpus(2));
    let results = Tuner::new(in_actor)
        .param_space(SearchSpace::new().param("k", tune::grid_search([1, 2, 3])))
        .tune_config(TuneConfig::new().metric("x"))
        .run_config(quiet("in_actor").max_failures(1))
        .fit()
        .unwrap();
    assert!(results.errors().is_empty());
    let attempts = ATTEMPTS.lock().unwrap().clone();
    assert_eq!(attempts.len(), 6, "3 trials, 2 attempts each: {attempts:?}");
    let actors: HashSet<mobula::ActorId> = attempts
        .iter()
        .map(|(_, _, actor)| actor.expect("a trial runs in an actor"))
        .collect();
    assert_eq!(actors.len(), 6, "a new actor for every attempt");
    for trial in results.trials() {
        let mut seen: Vec<u32> = attempts
            .iter()
            .filter(|(name, _, _)| *name == trial.name)
            .map(|(_, attempt, _)| *attempt)
            .collect();
        seen.sort();
        assert_eq!(seen, vec![1, 2], "{}", trial.name);
    }
}

#[mobula::remote]
fn reads_a_missing_key(config: TrialConfig, session: Session) -> Result<(), String> {
    let x: f64 = config.get("x").map_err(|e| e.to_string())?;
    session.report([("x", x)]).map_err(|e| e.to_string())
}

#[test]
fn a_bad_config_read_fails_the_trial_with_a_clear_error_and_bad_settings_fail_fit() {
    let _node = start(Config::default().num_cpus(2));
    let results = Tuner::new(reads_a_missing_key)
        .param_space(SearchSpace::new().param("y", tune::uniform(0.0, 1.0)))
        .run_config(quiet("missing"))
        .fit()
        .unwrap();
    let err = results.trials()[0].error.clone().unwrap();
    assert!(err.contains("no `x`") && err.contains("y"), "{err}");

    let bad = Tuner::new(objective)
        .param_space(SearchSpace::new().param("a", tune::uniform(1.0, 0.0)))
        .run_config(quiet("bad"))
        .fit();
    assert!(matches!(bad, Err(tune::TuneError::InvalidConfig(ref m)) if m.contains("`a`")));
    let no_metric = Tuner::new(objective)
        .param_space(lecture_space())
        .tune_config(TuneConfig::new().scheduler(Asha::new()))
        .run_config(quiet("nometric"))
        .fit();
    assert!(matches!(no_metric, Err(tune::TuneError::InvalidConfig(_))));
}

static RUNNING: Concurrency = Concurrency::new();

#[mobula::remote]
fn occupies(_config: TrialConfig, session: Session) -> Result<(), ReportError> {
    RUNNING.run(2);
    session.report([("done", 1.0)])
}

#[test]
fn trials_run_in_parallel_up_to_max_concurrent_trials() {
    let _node = start(Config::default().num_cpus(4));
    RUNNING.reset();
    let results = Tuner::new(occupies)
        .tune_config(TuneConfig::new().num_samples(6).max_concurrent_trials(2))
        .run_config(quiet("concurrent"))
        .fit()
        .unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(RUNNING.max(), 2);
}

#[test]
fn result_files_hold_every_report_and_the_summary() {
    let _node = start(Config::default().num_cpus(2));
    let results = tune::Tuner::new(count_to)
        .param_space(
            SearchSpace::new()
                .param("limit", tune::grid_search([4, 7]))
                .nested("opt", SearchSpace::new().constant("lr", 0.5)),
        )
        .tune_config(TuneConfig::new().metric("i"))
        .run_config(quiet("files").name("files"))
        .fit()
        .unwrap();
    assert!(results.path().ends_with("files"));
    let read = |file: &str| std::fs::read_to_string(results.path().join(file)).unwrap();
    let json_lines = |file: &str| -> Vec<serde_json::Value> {
        read(file)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let reports = json_lines("result.jsonl");
    let params = json_lines("params.jsonl");
    let csv = read("progress.csv");
    let mut csv_lines = csv.lines();
    assert_eq!(
        csv_lines.next().unwrap(),
        "trial_id,training_iteration,time_total_s,i,lr"
    );
    let csv_rows: Vec<Vec<&str>> = csv_lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(params.len(), 2);
    assert_eq!(reports.len(), 4 + 7);
    assert_eq!(csv_rows.len(), 4 + 7);
    for (id, t) in results.trials().iter().enumerate() {
        let mine: Vec<&serde_json::Value> =
            reports.iter().filter(|r| r["trial_id"] == id).collect();
        assert_eq!(mine.len() as u64, t.iterations());
        assert!(mine.iter().all(|r| r["trial"] == t.name.as_str()));
        let its: Vec<u64> = mine
            .iter()
            .map(|r| r["training_iteration"].as_u64().unwrap())
            .collect();
        assert_eq!(its, (1..=t.iterations()).collect::<Vec<_>>(), "in order");
        assert_eq!(
            mine.last().unwrap()["i"],
            serde_json::json!(t.iterations() as f64)
        );
        let rows = csv_rows.iter().filter(|r| r[0] == id.to_string()).count();
        assert_eq!(rows as u64, t.iterations());
        assert_eq!(params[id]["trial_id"], id);
        assert_eq!(params[id]["trial"], t.name.as_str());
        assert_eq!(params[id]["config"]["opt"]["lr"], serde_json::json!(0.5));
        assert!(
            !t.path.exists(),
            "no directory for a trial without checkpoints"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.path().join("experiment_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["trials"].as_array().unwrap().len(), 2);
    assert_eq!(summary["best"]["value"], serde_json::json!(7.0));
    assert!(results.table().contains("TERMINATED"));
}

/// "Trains" a value that grows by `lr` each step for 40 steps, saving it in a checkpoint at
/// every step.
#[mobula::remote]
fn grow(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let lr: f64 = config.get("lr").unwrap();
    let (mut value, start) = match session.checkpoint() {
        Some(c) => (c.to_value::<f64>().unwrap(), c.iteration()),
        None => (0.0, 0),
    };
    for _ in start..40 {
        value += lr;
        session
            .report_with_checkpoint([("value", value)], Checkpoint::from_value(&value).unwrap())?;
    }
    Ok(())
}

#[test]
fn pbt_continues_poor_trials_from_good_ones_checkpoints_with_explored_configs() {
    let _node = start(Config::default().num_cpus(4));
    let pbt = tune::Pbt::new()
        .perturbation_interval(2)
        .mutation("lr", vec![0.1, 0.5, 1.0, 2.0])
        .resample_probability(0.0)
        .seed(2);
    let results = Tuner::new(grow)
        // The slowest grower starts last, so that others have scores when it reports.
        .param_space(SearchSpace::new().param("lr", tune::grid_search([2.0, 1.0, 0.5, 0.1])))
        .tune_config(
            TuneConfig::new()
                .metric("value")
                .mode(Mode::Max)
                .scheduler(pbt),
        )
        .run_config(quiet("pbt"))
        .fit()
        .unwrap();
    assert_eq!(results.len(), 4);
    assert!(results.errors().is_empty());
    let exploited: Vec<_> = results
        .trials()
        .iter()
        .filter(|t| !t.exploited_from.is_empty())
        .collect();
    assert!(!exploited.is_empty(), "some trial exploited another");
    let names: HashSet<String> = results.trials().iter().map(|t| t.name.clone()).collect();
    for t in &exploited {
        assert!(
            t.exploited_from
                .iter()
                .all(|d| names.contains(d) && *d != t.name)
        );
        // A continued trial picks up at its donor's iteration and ends at 40 like the others.
        assert_eq!(t.checkpoint.as_ref().unwrap().iteration(), 40, "{}", t.name);
        let lr: f64 = t.config.get("lr").unwrap();
        assert!([0.1, 0.5, 1.0, 2.0].contains(&lr));
    }
    // An exploited trial went on from its donor's state: its checkpoint holds at least the
    // value its own first iteration reached.
    for t in &exploited {
        let first = t.history[0].metrics["value"];
        let saved: f64 = t.checkpoint.as_ref().unwrap().to_value().unwrap();
        assert!(saved >= first);
    }
}

/// Reports `level` for 10 steps.
#[mobula::remote]
fn constant_level(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let level: f64 = config.get("level").unwrap();
    for _ in 0..10 {
        session.report([("level", level)])?;
    }
    Ok(())
}

#[test]
fn the_median_stopping_rule_stops_trials_below_the_median_after_the_grace_period() {
    let _node = start(Config::default().num_cpus(2));
    let results = Tuner::new(constant_level)
        .param_space(SearchSpace::new().param("level", tune::grid_search([10.0, 9.0, 1.0, 0.0])))
        .tune_config(
            TuneConfig::new()
                .metric("level")
                .mode(Mode::Max)
                .max_concurrent_trials(1)
                .scheduler(
                    tune::MedianStopping::new()
                        .grace_period(3)
                        .min_samples_required(2),
                ),
        )
        .run_config(quiet("median"))
        .fit()
        .unwrap();
    let runs: Vec<(f64, u64, bool)> = results
        .trials()
        .iter()
        .map(|t| {
            (
                t.config.get("level").unwrap(),
                t.iterations(),
                t.stopped_early,
            )
        })
        .collect();
    // 10 and 9 run through (fewer than 2 others, then above the median); 1 and 0 stop at 3.
    assert_eq!(
        runs,
        vec![
            (10.0, 10, false),
            (9.0, 10, false),
            (1.0, 3, true),
            (0.0, 3, true)
        ]
    );
}

const KILL_DIR: &str = "MOBULA_TUNE_KILL_DIR";

/// The trials `ended.jsonl` in experiment directory `exp` lists (whole lines only).
fn ended(exp: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(exp.join("ended.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["trial"].as_u64())
        .collect()
}

/// Ten steps, a checkpoint at each; logs each step it reports to `steps.log`. In the process
/// the restore test starts, trial 3 kills that process (SIGKILL) at its step 5, once trials 0
/// to 2 are recorded as ended and its own checkpoint of step 4 is on disk.
#[mobula::remote]
fn ten_steps(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let root = PathBuf::from(config.get::<String>("root").unwrap());
    let exp = root.join("killed");
    let start = session
        .checkpoint()
        .map_or(0, |c| c.to_value::<u64>().unwrap());
    for step in start + 1..=10 {
        if std::env::var_os(KILL_DIR).is_some()
            && session.trial_name().ends_with("_00003")
            && step == 5
        {
            let ready = || {
                exp.join("killed_00003/checkpoint_000004.bin").exists()
                    && (0..3).all(|t| ended(&exp).contains(&t))
            };
            while !ready() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let _ = std::process::Command::new("kill")
                .args(["-9", &std::process::id().to_string()])
                .status();
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        session.report_with_checkpoint(
            [("step", step as f64)],
            Checkpoint::from_value(&step).unwrap(),
        )?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("steps.log"))
            .unwrap();
        std::io::Write::write_all(
            &mut log,
            format!("{} {step}\n", session.trial_name()).as_bytes(),
        )
        .unwrap();
    }
    Ok(())
}

fn killable_tune_config() -> TuneConfig {
    TuneConfig::new()
        .metric("step")
        .num_samples(6)
        .seed(5)
        .max_concurrent_trials(2)
}

fn killable_space(root: &std::path::Path) -> SearchSpace {
    SearchSpace::new()
        .param("x", tune::uniform(0.0, 1.0))
        .constant("root", root.display().to_string())
}

/// Not a test: the process the restore test kills in the middle of an experiment (started
/// with `--ignored`). Run any other way it fails.
#[test]
#[ignore = "child-process entry point: the experiment the restore test starts and kills"]
fn killed_experiment_main() {
    let Ok(root) = std::env::var(KILL_DIR) else {
        panic!("not a test: the experiment the restore test starts and kills");
    };
    let _mobula = mobula::init(Config::default().num_cpus(2)).unwrap();
    let _ = Tuner::new(ten_steps)
        .param_space(killable_space(std::path::Path::new(&root)))
        .tune_config(killable_tune_config())
        .run_config(
            RunConfig::new()
                .storage_path(&root)
                .name("killed")
                .verbose(0),
        )
        .fit();
    panic!("the experiment should have been killed");
}

#[test]
fn an_experiment_killed_mid_run_is_resumed_by_restore() {
    let _node = start(Config::default().num_cpus(2));
    let root = storage("restore");
    std::fs::create_dir_all(&root).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "killed_experiment_main",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_DIR, &root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the first run was killed");
    let exp = root.join("killed");
    assert!(ended(&exp).contains(&2));
    assert!(!ended(&exp).contains(&3));

    let results = Tuner::restore(&exp, ten_steps)
        .unwrap()
        .param_space(killable_space(&root))
        .tune_config(killable_tune_config())
        .run_config(RunConfig::new().verbose(0))
        .fit()
        .unwrap();
    assert_eq!(results.len(), 6);
    for t in results.trials() {
        assert_eq!(t.status, TrialStatus::Terminated, "{}", t.name);
        let its: Vec<u64> = t.history.iter().map(|r| r.training_iteration).collect();
        assert_eq!(its, (1..=10).collect::<Vec<_>>(), "{}", t.name);
        let steps: Vec<f64> = t.history.iter().map(|r| r.metrics["step"]).collect();
        assert_eq!(
            steps,
            (1..=10).map(|s| s as f64).collect::<Vec<_>>(),
            "{}",
            t.name
        );
    }
    // Trials 0-2 ended before the kill and did not run again; trial 3 went on from its step-4
    // checkpoint: each of their steps ran exactly once.
    let log = std::fs::read_to_string(root.join("steps.log")).unwrap();
    for t in 0..4 {
        for step in 1..=10 {
            let line = format!("killed_{t:05} {step}");
            assert_eq!(log.lines().filter(|l| *l == line).count(), 1, "{line}");
        }
    }
    // The same six configs as the first run drew (seeded), not new ones.
    let first_configs: Vec<String> = std::fs::read_to_string(exp.join("params.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["config"].to_string())
        .collect();
    let configs: Vec<String> = results
        .trials()
        .iter()
        .map(|t| t.config.to_string())
        .collect();
    assert_eq!(configs, first_configs);
    // A directory that is not an experiment is a clear error.
    assert!(matches!(
        Tuner::restore(&root, ten_steps),
        Err(tune::TuneError::Restore(_))
    ));
}

#[test]
fn checkpoints_on_disk_are_the_latest_and_the_best_by_the_score_attribute() {
    let _node = start(Config::default().num_cpus(2));
    let results = Tuner::new(flaky)
        .param_space(SearchSpace::new().param("fail_at", tune::grid_search([0])))
        .tune_config(TuneConfig::new().metric("step"))
        .run_config(
            quiet("keep").checkpoint_config(
                tune::CheckpointConfig::new()
                    .num_to_keep(2)
                    .score_attribute("step", Mode::Min),
            ),
        )
        .fit()
        .unwrap();
    let dir = &results.trials()[0].path;
    let mut kept: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("checkpoint_"))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        vec![
            "checkpoint_000001.bin",
            "checkpoint_000002.bin",
            "checkpoint_000010.bin"
        ]
    );
    let latest = std::fs::read(dir.join("checkpoint_000010.bin")).unwrap();
    assert_eq!(
        Checkpoint::from_bytes(latest).to_value::<u64>().unwrap(),
        10
    );
}

#[mobula::remote]
fn bowl(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let x: f64 = config.get("x").unwrap();
    session.report([("loss", (x - 0.3).powi(2))])
}

#[test]
fn tpe_plugs_in_as_the_search_algorithm() {
    let _node = start(Config::default().num_cpus(2));
    let results = Tuner::new(bowl)
        .param_space(SearchSpace::new().param("x", tune::uniform(-1.0, 1.0)))
        .tune_config(
            TuneConfig::new()
                .metric("loss")
                .mode(Mode::Min)
                .num_samples(40)
                .seed(4)
                .max_concurrent_trials(1)
                .search_alg(tune::Tpe::new()),
        )
        .run_config(quiet("tpe"))
        .fit()
        .unwrap();
    assert_eq!(results.len(), 40);
    let best: f64 = results.best_config().unwrap().get("x").unwrap();
    assert!((best - 0.3).abs() < 0.05, "{best}");
    let grid = Tuner::new(bowl)
        .param_space(SearchSpace::new().param("x", tune::grid_search([0.0, 1.0])))
        .tune_config(
            TuneConfig::new()
                .metric("loss")
                .search_alg(tune::Tpe::new()),
        )
        .run_config(quiet("tpegrid"))
        .fit();
    assert!(
        matches!(grid, Err(tune::TuneError::InvalidConfig(ref m)) if m.contains("grid_search"))
    );
}

/// Reports `level` for up to 9 steps, resuming from its checkpoint after a pause.
#[mobula::remote]
fn steady(config: TrialConfig, session: Session) -> Result<(), ReportError> {
    let level: f64 = config.get("level").unwrap();
    let start = session.checkpoint().map_or(0, |c| c.iteration());
    for step in start + 1..=9 {
        session
            .report_with_checkpoint([("level", level)], Checkpoint::from_value(&step).unwrap())?;
    }
    Ok(())
}

#[test]
fn hyperband_pauses_trials_at_milestones_and_halves_in_lockstep() {
    let _node = start(Config::default().num_cpus(2));
    let results = Tuner::new(steady)
        .param_space(SearchSpace::new().param("level", tune::grid_search(1..=9)))
        .tune_config(
            TuneConfig::new()
                .metric("level")
                .mode(Mode::Max)
                .scheduler(tune::HyperBand::new().max_t(9).reduction_factor(3)),
        )
        .run_config(quiet("hyperband"))
        .fit()
        .unwrap();
    let mut runs: Vec<(i64, u64)> = results
        .trials()
        .iter()
        .map(|t| (t.config.get("level").unwrap(), t.iterations()))
        .collect();
    runs.sort();
    // All nine reach 1; the best three go on to 3; the best one to 9.
    assert_eq!(
        runs,
        vec![
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 1),
            (7, 3),
            (8, 3),
            (9, 9)
        ]
    );
    for t in results.trials() {
        assert_eq!(t.status, TrialStatus::Terminated);
        let its: Vec<u64> = t.history.iter().map(|r| r.training_iteration).collect();
        assert_eq!(
            its,
            (1..=t.iterations()).collect::<Vec<_>>(),
            "resumed, not repeated"
        );
    }
}

/// A class-style trainable: a weight moving towards 1 at rate `lr`; `done` at step 30.
struct Approach {
    weight: f64,
    lr: f64,
    steps: u32,
    fail_once_at: Option<u32>,
}

static APPROACH_SETUPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static APPROACH_RESTORES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl tune::Trainable for Approach {
    fn setup(config: &TrialConfig) -> Result<Self, String> {
        APPROACH_SETUPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Approach {
            weight: 0.0,
            lr: config.get("lr").map_err(|e| e.to_string())?,
            steps: 0,
            fail_once_at: config.get::<u32>("fail_at").ok(),
        })
    }

    fn step(&mut self) -> Result<tune::Metrics, String> {
        self.steps += 1;
        if self.fail_once_at == Some(self.steps) {
            return Err(format!("failed at step {}", self.steps));
        }
        self.weight += self.lr * (1.0 - self.weight);
        Ok([
            ("weight".to_string(), self.weight),
            ("done".to_string(), if self.steps >= 30 { 1.0 } else { 0.0 }),
        ]
        .into_iter()
        .collect())
    }

    fn save(&self) -> Option<Checkpoint> {
        Checkpoint::from_value(&(self.weight, self.steps)).ok()
    }

    fn restore(&mut self, checkpoint: &Checkpoint) -> Result<(), String> {
        APPROACH_RESTORES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (self.weight, self.steps) = checkpoint.to_value().map_err(|e| e.to_string())?;
        // A restored trial has got past its failure.
        self.fail_once_at = None;
        Ok(())
    }
}

mobula::register_trainable!(Approach);

#[test]
fn a_class_trainable_is_set_up_stepped_checkpointed_and_restored() {
    use std::sync::atomic::Ordering::SeqCst;
    let _node = start(Config::default().num_cpus(2));
    APPROACH_SETUPS.store(0, SeqCst);
    APPROACH_RESTORES.store(0, SeqCst);
    let results = Tuner::with_class::<Approach>()
        .param_space(SearchSpace::new().param("lr", tune::grid_search([0.05, 0.2])))
        .tune_config(TuneConfig::new().metric("weight").mode(Mode::Max))
        .run_config(quiet("class"))
        .fit()
        .unwrap();
    assert_eq!(results.len(), 2);
    for t in results.trials() {
        let lr: f64 = t.config.get("lr").unwrap();
        assert_eq!(t.iterations(), 30, "ends at done");
        let expected = 1.0 - (1.0 - lr).powi(30);
        assert!((t.metrics()["weight"] - expected).abs() < 1e-12);
    }
    assert_eq!(APPROACH_SETUPS.load(SeqCst), 2);
    assert_eq!(
        results.best_config().unwrap().get::<f64>("lr").unwrap(),
        0.2
    );
    assert!(
        results
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("Approach_")
    );

    // A step that fails: the trial is made again and restored from its latest checkpoint,
    // and its weight ends where an unbroken run would have.
    let resumed = Tuner::with_class::<Approach>()
        .param_space(
            SearchSpace::new()
                .param("lr", tune::grid_search([0.1]))
                .constant("fail_at", 12),
        )
        .tune_config(TuneConfig::new().metric("weight"))
        .run_config(quiet("class2").max_failures(1))
        .fit()
        .unwrap();
    let t = &resumed.trials()[0];
    assert_eq!(t.status, TrialStatus::Terminated);
    assert_eq!(t.failures, 1);
    assert!((t.metrics()["weight"] - (1.0 - 0.9f64.powi(30))).abs() < 1e-12);
    let its: Vec<u64> = t.history.iter().map(|r| r.training_iteration).collect();
    assert_eq!(its, (1..=30).collect::<Vec<_>>());
    assert!(APPROACH_RESTORES.load(SeqCst) >= 1);
}
