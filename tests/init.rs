//! Starting and stopping the runtime, and every misuse of it, with the errors they give.

mod common;

use std::time::Duration;

use common::{Gate, start, turn};
use mobula::prelude::*;
use mobula::{InitError, PutError, WaitError};

#[mobula::remote]
fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn using_mobula_before_init_says_what_to_do() {
    let _turn = turn();
    assert!(!mobula::is_initialized());
    let err = mobula::put(1u8).unwrap_err();
    assert!(matches!(err, PutError::NotInitialized));
    assert!(
        err.to_string()
            .contains("call mobula::init(Config::default()) first"),
        "{err}"
    );
    let r = double.remote(2);
    let err = r.get().unwrap_err();
    assert!(matches!(err, GetError::NotInitialized), "{err:?}");
    assert!(err.to_string().contains("mobula::init"), "{err}");
    assert!(matches!(
        mobula::wait(std::slice::from_ref(&r), 1, None),
        Err(WaitError::NotInitialized)
    ));
    assert!(matches!(
        mobula::cancel(&r),
        Err(mobula::CancelError::NotInitialized)
    ));
    assert!(mobula::state::object_store().is_none());
    assert_eq!(mobula::context().node_id(), None);
}

#[test]
fn init_twice_is_refused_and_names_the_running_node() {
    let node = start(Config::default().num_cpus(1));
    let err = mobula::init(Config::default()).unwrap_err();
    let running = node.guard.as_ref().unwrap().node_id();
    assert!(matches!(err, InitError::AlreadyInitialized { node_id } if node_id == running));
    assert!(err.to_string().contains("mobula::shutdown()"), "{err}");
    assert_eq!(
        double.remote(4).get().unwrap(),
        8,
        "the running node is untouched"
    );
}

#[test]
fn dropping_the_guard_shuts_down_and_init_works_again() {
    let _turn = turn();
    let first = mobula::init(Config::default().num_cpus(1)).unwrap();
    let old = double.remote(1);
    assert_eq!(old.get().unwrap(), 2);
    let first_id = first.node_id();
    drop(first);
    assert!(!mobula::is_initialized());
    assert!(
        matches!(old.get(), Err(GetError::ShutDown { .. })),
        "a ref from a stopped node says so"
    );

    let second = mobula::init(Config::default().num_cpus(1)).unwrap();
    assert_ne!(second.node_id(), first_id);
    assert_eq!(double.remote(5).get().unwrap(), 10);
    mobula::shutdown();
    assert!(!mobula::is_initialized());
    drop(second); // a guard of a node already stopped does nothing
    mobula::shutdown(); // nor does a second shutdown
}

static GATE: Gate = Gate::new();

#[mobula::remote]
fn stuck() -> u8 {
    GATE.pass();
    1
}

#[test]
fn shutdown_wakes_a_blocked_get_with_an_error() {
    let _turn = turn();
    GATE.close();
    let guard = mobula::init(Config::default().num_cpus(1)).unwrap();
    let r = stuck.remote();
    let waiter = std::thread::spawn(move || r.get());
    std::thread::sleep(Duration::from_millis(20));
    drop(guard);
    let result = waiter.join().unwrap();
    assert!(
        matches!(result, Err(GetError::ShutDown { .. })),
        "{result:?}"
    );
    GATE.open();
}

#[test]
fn invalid_configuration_is_refused_with_the_reason() {
    let _turn = turn();
    let err = mobula::init(Config::default().num_cpus(f64::NAN)).unwrap_err();
    assert!(matches!(err, InitError::InvalidConfig(_)), "{err:?}");
    let err = mobula::init(Config::default().resource("", 1)).unwrap_err();
    assert!(err.to_string().contains("needs a name"), "{err}");
    let not_a_dir = std::env::temp_dir().join(format!("mobula-test-file-{}", std::process::id()));
    std::fs::write(&not_a_dir, b"x").unwrap();
    let err = mobula::init(Config::default().spill_dir(&not_a_dir)).unwrap_err();
    assert!(matches!(err, InitError::SpillDir { .. }), "{err:?}");
    assert!(err.to_string().contains("Config::spill_dir"), "{err}");
    std::fs::remove_file(&not_a_dir).unwrap();
    assert!(
        !mobula::is_initialized(),
        "a failed init leaves nothing running"
    );
}

#[test]
fn defaults_come_from_the_machine() {
    let _node = start(Config::default());
    let stats = mobula::state::object_store().unwrap();
    assert!(stats.memory_limit > 0);
    // As many 1-CPU tasks as the machine has cores can run.
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    let refs: Vec<_> = (0..cores).map(|i| double.remote(i)).collect();
    assert_eq!(
        mobula::get_all(&refs).unwrap(),
        (0..cores).map(|x| x * 2).collect::<Vec<_>>()
    );
}

/// Threads of Mobula runtimes in this process: the node, its store thread and its workers.
fn runtime_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .collect::<Vec<String>>()
        })
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("mobula-") || n.starts_with("actix-rt"))
        .collect()
}

#[test]
fn shutdown_leaves_no_threads_behind() {
    let _turn = turn();
    for round in 0..10u64 {
        let guard = mobula::init(Config::default().num_cpus(2)).unwrap();
        let refs: Vec<_> = (0..8).map(|i| double.remote(i + round)).collect();
        mobula::get_all(&refs).unwrap();
        assert!(runtime_threads().contains(&"mobula-node".to_string()));
        drop(guard);
    }
    common::eventually("every runtime thread has exited", || {
        runtime_threads().is_empty()
    });
}

#[test]
fn refs_are_clone_send_sync_and_serializable() {
    fn assert_traits<T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned>() {}
    assert_traits::<ObjectRef<u64>>();
    assert_traits::<ObjectRef<Vec<ObjectRef<String>>>>();
}
