//! The object store: put and get, freeing, refs inside values, spilling and restoring, and
//! surviving failures in user code.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Gate, eventually, start};
use mobula::prelude::*;
use mobula::state::object_store;
use serde::{Deserialize, Serialize};

fn objects() -> usize {
    object_store().unwrap().objects
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    scores: Vec<f32>,
    nested: Option<Box<Record>>,
}

#[test]
fn values_of_any_serializable_type_round_trip() {
    let _node = start(Config::default().num_cpus(1));
    let r = Record {
        name: "a".into(),
        scores: vec![1.0, 2.5],
        nested: Some(Box::new(Record {
            name: "b".into(),
            scores: vec![],
            nested: None,
        })),
    };
    assert_eq!(mobula::put(r.clone()).unwrap().get().unwrap(), r);
    assert_eq!(
        mobula::put(String::from("text")).unwrap().get().unwrap(),
        "text"
    );
    assert_eq!(mobula::put(()).unwrap().get().unwrap(), ());
    let refs: Vec<_> = (0..10u32).map(|i| mobula::put(i).unwrap()).collect();
    assert_eq!(mobula::get_all(&refs).unwrap(), (0..10).collect::<Vec<_>>());
}

#[mobula::remote]
fn length(v: Vec<u8>) -> usize {
    v.len()
}

static GATE: Gate = Gate::new();

#[mobula::remote]
fn length_later(v: Vec<u8>) -> usize {
    GATE.pass();
    v.len()
}

#[test]
fn objects_are_freed_when_the_last_ref_drops() {
    let _node = start(Config::default().num_cpus(2));
    assert_eq!(objects(), 0);
    let refs: Vec<_> = (0..100)
        .map(|i| mobula::put(vec![i as u8; 1000]).unwrap())
        .collect();
    assert_eq!(objects(), 100);
    assert!(object_store().unwrap().memory_used >= 100 * 1000);
    let copies = refs.clone();
    drop(refs);
    assert_eq!(objects(), 100, "clones keep them");
    drop(copies);
    assert_eq!(objects(), 0);
    assert_eq!(object_store().unwrap().memory_used, 0);

    // A pending task keeps its arguments alive, and its result lives until its ref drops.
    GATE.close();
    let data = mobula::put(vec![1u8; 10]).unwrap();
    let result = length_later.remote(&data);
    drop(data);
    assert_eq!(objects(), 2, "the argument and the pending result");
    GATE.open();
    assert_eq!(result.get().unwrap(), 10);
    eventually(
        "the argument is freed when the task is done with it",
        || objects() == 1,
    );
    drop(result);
    assert_eq!(objects(), 0);

    // Results nobody kept are freed when they arrive.
    let results: Vec<_> = (0..50).map(|_| length.remote(vec![0u8; 3])).collect();
    mobula::get_all(&results).unwrap();
    drop(results);
    eventually("everything is freed", || objects() == 0);
}

#[test]
fn refs_inside_stored_values_keep_their_objects_alive() {
    let _node = start(Config::default().num_cpus(1));
    let inner = mobula::put(7u64).unwrap();
    let outer = mobula::put(vec![inner.clone(), inner.clone()]).unwrap();
    drop(inner);
    assert_eq!(objects(), 2);
    let got = outer.get().unwrap();
    assert_eq!(got[0].get().unwrap(), 7);
    drop(got);
    drop(outer);
    eventually("the container took its refs with it", || objects() == 0);
}

/// Files in the node directories under a spill root.
fn spill_files(root: &std::path::Path) -> usize {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap())
        .count()
}

#[test]
fn past_the_memory_limit_objects_spill_and_come_back() {
    let dir = std::env::temp_dir().join(format!("mobula-test-spill-{}", std::process::id()));
    let _node = start(
        Config::default()
            .num_cpus(2)
            .object_store_memory(1 << 20)
            .spill_dir(&dir),
    );
    let values: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; 200_000]).collect();
    let refs: Vec<_> = values
        .iter()
        .map(|v| mobula::put(v.clone()).unwrap())
        .collect();
    eventually("memory use falls under the limit", || {
        object_store().unwrap().memory_used <= 1 << 20
    });
    let stats = object_store().unwrap();
    assert!(stats.spilled_objects >= 15, "{stats:?}");
    assert!(stats.spilled_bytes >= 15 * 200_000, "{stats:?}");
    let files = spill_files(&dir);
    assert!(files >= 15, "spill files are on disk: {files}");
    #[cfg(unix)]
    {
        // The node's directory and its files are this user's alone.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for node_dir in std::fs::read_dir(&dir).unwrap().flatten() {
            assert_eq!(
                mode(&node_dir.path()),
                0o700,
                "{}",
                node_dir.path().display()
            );
            for file in std::fs::read_dir(node_dir.path()).unwrap().flatten() {
                assert_eq!(mode(&file.path()), 0o600, "{}", file.path().display());
            }
        }
    }
    // Every value comes back, by get and as a task argument.
    for (r, v) in refs.iter().zip(&values) {
        assert_eq!(&r.get().unwrap(), v);
    }
    assert!(object_store().unwrap().restored_objects >= 15);
    let lens: Vec<_> = refs.iter().map(|r| length.remote(r)).collect();
    assert_eq!(mobula::get_all(&lens).unwrap(), vec![200_000; 20]);
    drop((refs, lens));
    eventually("all freed", || objects() == 0);
    eventually("spill files of freed objects are deleted", || {
        spill_files(&dir) == 0
    });
    drop(_node);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_spilled_container_keeps_the_refs_it_holds() {
    let _node = start(Config::default().num_cpus(1).object_store_memory(100_000));
    let inner: Vec<_> = (0..3)
        .map(|i| mobula::put(vec![i as u8; 30_000]).unwrap())
        .collect();
    let container = mobula::put(inner.clone()).unwrap();
    drop(inner);
    // Push everything out.
    let filler: Vec<_> = (0..10)
        .map(|_| mobula::put(vec![9u8; 50_000]).unwrap())
        .collect();
    eventually("the container spilled", || {
        object_store().unwrap().spilled_objects >= 4
    });
    let back = container.get().unwrap();
    assert_eq!(back[2].get().unwrap(), vec![2u8; 30_000]);
    drop((back, container, filler));
    eventually("all freed", || objects() == 0);
}

/// Counts how often it is serialized; panics once past its allowance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Touchy(Vec<u8>);

static TOUCHY_SERIALIZES: AtomicUsize = AtomicUsize::new(0);
static TOUCHY_ALLOWANCE: AtomicUsize = AtomicUsize::new(usize::MAX);

impl Serialize for Touchy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if TOUCHY_SERIALIZES.fetch_add(1, Ordering::SeqCst)
            >= TOUCHY_ALLOWANCE.load(Ordering::SeqCst)
        {
            panic!("Touchy refuses to be serialized");
        }
        self.0.serialize(s)
    }
}

#[test]
fn a_local_get_does_not_serialize() {
    let _node = start(Config::default().num_cpus(1));
    TOUCHY_ALLOWANCE.store(usize::MAX, Ordering::SeqCst);
    let r = mobula::put(Touchy(vec![1, 2, 3])).unwrap();
    let after_put = TOUCHY_SERIALIZES.load(Ordering::SeqCst);
    for _ in 0..10 {
        assert_eq!(r.get().unwrap(), Touchy(vec![1, 2, 3]));
    }
    assert_eq!(TOUCHY_SERIALIZES.load(Ordering::SeqCst), after_put);
}

#[test]
fn a_value_that_cannot_be_serialized_stays_in_memory() {
    let _node = start(Config::default().num_cpus(1).object_store_memory(10_000));
    // Measuring its size at put is allowed; encoding it for the spill panics.
    TOUCHY_ALLOWANCE.store(
        TOUCHY_SERIALIZES.load(Ordering::SeqCst) + 1,
        Ordering::SeqCst,
    );
    let touchy = mobula::put(Touchy(vec![5; 20_000])).unwrap();
    eventually("the spill was tried and failed", || {
        object_store().unwrap().spill_failures >= 1
    });
    TOUCHY_ALLOWANCE.store(usize::MAX, Ordering::SeqCst);
    assert_eq!(
        touchy.get().unwrap(),
        Touchy(vec![5; 20_000]),
        "nothing was lost"
    );
    // Other objects still spill and come back.
    let other: Vec<_> = (0..5)
        .map(|i| mobula::put(vec![i as u8; 10_000]).unwrap())
        .collect();
    eventually("the others spilled", || {
        object_store().unwrap().spilled_objects >= 4
    });
    assert_eq!(other[0].get().unwrap(), vec![0u8; 10_000]);
}

#[test]
fn when_the_disk_refuses_objects_stay_in_memory() {
    let root = std::env::temp_dir().join(format!("mobula-test-full-{}", std::process::id()));
    let node = start(
        Config::default()
            .num_cpus(1)
            .object_store_memory(10_000)
            .spill_dir(&root),
    );
    // Make the node's spill directory unusable: replace it with a file.
    let dir = root.join(format!("mobula-{}", node.guard.as_ref().unwrap().node_id()));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let refs: Vec<_> = (0..5)
        .map(|i| mobula::put(vec![i as u8; 10_000]).unwrap())
        .collect();
    eventually("spills failed", || {
        object_store().unwrap().spill_failures >= 1
    });
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(r.get().unwrap(), vec![i as u8; 10_000], "nothing was lost");
    }
    std::fs::remove_file(&dir).unwrap();
    drop(node);
    let _ = std::fs::remove_dir_all(&root);
}

/// Panics when dropped, if told to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Grenade(u32, bool);

impl Drop for Grenade {
    fn drop(&mut self) {
        if self.1 && !std::thread::panicking() {
            panic!("Grenade {} went off in Drop", self.0);
        }
    }
}

#[test]
fn a_shard_that_panics_is_restarted_and_the_node_keeps_serving() {
    let _node = start(Config::default().num_cpus(1));
    let bystanders: Vec<_> = (0..64u64).map(|i| mobula::put(i).unwrap()).collect();
    let mut live = mobula::put(Grenade(1, true)).unwrap().get().unwrap();
    live.1 = false; // the copy we got must not go off here
    let armed = mobula::put(Grenade(2, true)).unwrap();
    drop(armed); // the store's copy goes off inside its shard
    eventually("the shard was restarted", || {
        object_store().unwrap().shard_restarts >= 1
    });
    assert_eq!(
        mobula::get_all(&bystanders).unwrap(),
        (0..64).collect::<Vec<_>>()
    );
    let more: Vec<_> = (0..64u64).map(|i| mobula::put(i * 2).unwrap()).collect();
    assert_eq!(more[63].get().unwrap(), 126);
    assert_eq!(length.remote(vec![1u8; 4]).get().unwrap(), 4);
    drop((bystanders, more));
    // The store's copy of Grenade 1 stays alive until the one ref to it (dropped above) went;
    // nothing is left over.
    eventually("all freed", || objects() == 0);
}

#[mobula::remote]
fn address_of(data: std::sync::Arc<Vec<u64>>) -> usize {
    data.as_ptr() as usize
}

#[test]
fn an_arc_value_is_shared_with_the_store_not_copied() {
    let _node = start(Config::default().num_cpus(1));
    let data = std::sync::Arc::new((0..1_000_000u64).collect::<Vec<_>>());
    let r = mobula::put(std::sync::Arc::clone(&data)).unwrap();
    let got = r.get().unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&got, &data),
        "get shares the caller's buffer"
    );
    assert_eq!(
        address_of.remote(&r).get().unwrap(),
        data.as_ptr() as usize,
        "a task argument shares it too"
    );
    assert_eq!(got[999_999], 999_999);
}
