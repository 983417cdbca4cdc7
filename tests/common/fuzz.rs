//! What the fuzz test (tests/fuzz.rs) and the long fuzz run (benches/fuzz.rs) share: inputs
//! for the wire decoder and the object codec (arbitrary bytes, valid frames and values, and
//! those mutated), the checks each input must pass (no panic, no allocation beyond what the
//! input can justify, valid input decodes back to itself), and an allocator that measures the
//! largest single allocation a decode asks for.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mobula::testing::codec;
use mobula::wire::{self, ClusterView, Message, NodeInfo, NodeState, Role, RunTask};
use mobula::{NodeId, TaskId};
use proptest::prelude::*;

/// The system allocator, noting the largest single allocation a thread asks for while it is
/// watched ([`largest_allocation`]).
pub struct Tracking;

thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = WATCHED.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call goes to the system allocator unchanged; noting a size allocates nothing
// (the thread-locals are const-initialized cells).
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns what it returned and the largest single allocation it asked for.
pub fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    WATCHED.with(|w| w.set(true));
    let r = f();
    WATCHED.with(|w| w.set(false));
    (r, LARGEST.with(|l| l.get()))
}

/// The most a decode of `len` bytes may allocate at once: what the input holds, twice, plus
/// what serde reserves at most for a sequence whose announced length it cannot trust yet
/// (1 MiB of elements; a hash map's table around them comes to 1.6 MB).
pub fn allocation_bound(len: usize) -> usize {
    2 * len + (2 << 20)
}

/// Decodes `bytes` as a frame and as a frame's body: never a panic, never an allocation past
/// [`allocation_bound`].
pub fn check_frame(bytes: &[u8]) -> Result<(), String> {
    let (outcome, largest) = largest_allocation(|| {
        catch_unwind(AssertUnwindSafe(|| {
            let _ = wire::decode(bytes);
            let _ = wire::decode_body(bytes);
            if let Some(prefix) = bytes.get(..4) {
                let prefix: [u8; 4] = prefix.try_into().expect("four bytes");
                let limit = wire::JOIN_FRAME_LIMIT;
                if let Ok(len) = wire::frame_len_within(prefix, limit) {
                    assert!(len <= limit, "a frame longer than its limit was let in");
                }
            }
        }))
    });
    if outcome.is_err() {
        return Err(format!("decoding a frame panicked: {bytes:02x?}"));
    }
    if largest > allocation_bound(bytes.len()) {
        return Err(format!(
            "decoding {} bytes allocated {largest} bytes at once",
            bytes.len()
        ));
    }
    Ok(())
}

/// Decodes `bytes` as each kind of value the object codec reads (byte and float vectors take
/// its fast path; the rest go through postcard): never a panic, never an allocation past
/// [`allocation_bound`].
pub fn check_value(bytes: &[u8]) -> Result<(), String> {
    let (outcome, largest) = largest_allocation(|| {
        catch_unwind(AssertUnwindSafe(|| {
            let _ = codec::decode::<Vec<u8>>(bytes);
            let _ = codec::decode_owned::<Vec<u8>>(bytes.to_vec());
            let _ = codec::decode::<Vec<f64>>(bytes);
            let _ = codec::decode::<Vec<f32>>(bytes);
            let _ = codec::decode::<String>(bytes);
            let _ = codec::decode::<Vec<String>>(bytes);
            let _ = codec::decode::<Vec<u64>>(bytes);
            let _ = codec::decode::<(u32, Vec<Vec<i64>>, Option<String>)>(bytes);
            let _ = codec::decode::<HashMap<String, Vec<u8>>>(bytes);
        }))
    });
    if outcome.is_err() {
        return Err(format!("decoding a value panicked: {bytes:02x?}"));
    }
    if largest > allocation_bound(bytes.len()) {
        return Err(format!(
            "decoding {} bytes as a value allocated {largest} bytes at once",
            bytes.len()
        ));
    }
    Ok(())
}

/// A change to an input: flip a byte, insert one, delete one, cut the input short, or write
/// a huge varint (a length or count) over it.
#[derive(Debug, Clone)]
pub enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Cut(usize),
    HugeLength(usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Cut),
        any::<usize>().prop_map(Mutation::HugeLength),
    ]
}

/// Applies `mutations` to `bytes`.
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Flip(i, x) if len > 0 => bytes[i % len] ^= x,
            Mutation::Insert(i, x) => bytes.insert(i % (len + 1), x),
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Cut(i) => bytes.truncate(i % (len + 1)),
            Mutation::HugeLength(i) => {
                let at = i % (len + 1);
                let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
                bytes.splice(at..(at + huge.len()).min(len), huge);
            }
            _ => {}
        }
    }
    bytes
}

/// Re-announces a frame's length after its body changed, so that the decoder reads on past
/// the prefix.
pub fn reprefix(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() >= 4 {
        let len = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&len.to_le_bytes());
    }
    frame
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,24}", Just(String::new())]
}

fn resources() -> impl Strategy<Value = Vec<(String, f64)>> {
    prop::collection::vec((text(), -1e12..1e12f64), 0..4)
}

fn node_info() -> impl Strategy<Value = NodeInfo> {
    (
        resources(),
        any::<u64>(),
        any::<bool>(),
        any::<[u8; 4]>(),
        any::<u16>(),
    )
        .prop_map(|(resources, registry, runs_tasks, ip, port)| NodeInfo {
            node_id: NodeId::random(),
            address: std::net::SocketAddr::from((ip, port)),
            resources,
            registry,
            runs_tasks,
            role: Role::Node,
            build: (registry % 2 == 0).then(|| mobula::wire::Build {
                id: mobula::wire::BuildId([registry as u8; 32]),
                size: registry,
                target: "x86_64-linux".into(),
            }),
            target: "x86_64-linux".into(),
            agent: runs_tasks,
            started_by: None,
            job: None,
            entrypoint: String::new(),
        })
}

/// Messages of many kinds with arbitrary contents.
pub fn message() -> impl Strategy<Value = Message> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (text(), bytes(), any::<u64>(), any::<bool>()).prop_map(
            |(token, csr_der, registry, driver)| {
                Message::Join {
                    node_id: NodeId::random(),
                    token,
                    csr_der,
                    registry,
                    role: if driver { Role::Driver } else { Role::Node },
                }
            }
        ),
        bytes().prop_map(|csr_der| Message::Renew { csr_der }),
        text().prop_map(|reason| Message::Refused { reason }),
        node_info().prop_map(Message::Register),
        (
            any::<u64>(),
            prop::collection::vec(
                (node_info(), resources(), any::<u32>(), any::<bool>()),
                0..3
            ),
            prop::collection::vec((any::<u64>(), any::<u64>()), 0..3)
        )
            .prop_map(|(version, nodes, outages)| Message::View(ClusterView {
                version,
                head_outages: outages
                    .into_iter()
                    .map(|(down_ms, up_ms)| mobula::node::HeadOutage { down_ms, up_ms })
                    .collect(),
                nodes: nodes
                    .into_iter()
                    .map(|(info, available, load, alive)| NodeState {
                        info,
                        available,
                        load,
                        alive,
                        left: !alive,
                    })
                    .collect(),
            })),
        (resources(), any::<u32>(), any::<u64>()).prop_map(|(available, load, view_version)| {
            Message::Heartbeat {
                node_id: NodeId::random(),
                available,
                load,
                view_version,
            }
        }),
        (
            text(),
            prop::collection::vec(bytes(), 0..4),
            resources(),
            any::<i64>(),
            any::<bool>(),
            proptest::option::of(text())
        )
            .prop_map(
                |(function, args, resources, max_retries, retry_exceptions, name)| {
                    Message::RunTask(RunTask {
                        task: TaskId::NIL,
                        function,
                        args,
                        streamed: Vec::new(),
                        resources,
                        max_retries,
                        retry_exceptions,
                        name,
                        log_to: NodeId::random(),
                        spill: (max_retries % 2 == 0).then_some((max_retries & 3) as u8),
                    })
                }
            ),
        (
            text(),
            prop::collection::vec((any::<u32>(), resources()), 0..4)
        )
            .prop_map(|(group, bundles)| Message::ReserveBundles { group, bundles }),
        text().prop_map(|reason| Message::Shutdown { reason }),
        Just(Message::Status),
        Just(Message::OpenTasks),
    ]
}

/// A valid frame of a message with arbitrary contents.
pub fn frame() -> impl Strategy<Value = Vec<u8>> {
    message().prop_filter_map("fits in a frame", |m| wire::encode(&m).ok())
}

/// A value of one of the kinds [`check_value`] reads, encoded.
pub fn encoded_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(|v| codec::encode(&v).unwrap()),
        prop::collection::vec(any::<f64>(), 0..64).prop_map(|v| codec::encode(&v).unwrap()),
        prop::collection::vec(any::<f32>(), 0..64).prop_map(|v| codec::encode(&v).unwrap()),
        prop::collection::vec(".{0,8}", 0..8).prop_map(|v: Vec<String>| codec::encode(&v).unwrap()),
        (
            any::<u32>(),
            prop::collection::vec(prop::collection::vec(any::<i64>(), 0..4), 0..4),
            proptest::option::of(".{0,8}")
        )
            .prop_map(|v| codec::encode(&v).unwrap()),
    ]
}

/// Arbitrary bytes, mostly short, sometimes starting like a frame.
pub fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(any::<u8>(), 0..4096),
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..512)).prop_map(|(version, rest)| {
            let mut body = version.to_le_bytes().to_vec();
            body.extend(rest);
            let mut frame = (body.len() as u32).to_le_bytes().to_vec();
            frame.extend(body);
            frame
        }),
    ]
}

/// A valid frame or value, mutated; the frame re-prefixed or not.
pub fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        frame(),
        prop::collection::vec(mutation(), 1..6),
        any::<bool>(),
    )
        .prop_map(|(frame, mutations, fix_prefix)| {
            let mutated = mutate(frame, &mutations);
            if fix_prefix {
                reprefix(mutated)
            } else {
                mutated
            }
        })
}

pub fn mutated_value() -> impl Strategy<Value = Vec<u8>> {
    (encoded_value(), prop::collection::vec(mutation(), 1..6))
        .prop_map(|(bytes, mutations)| mutate(bytes, &mutations))
}

/// A message survives the wire unchanged.
pub fn check_round_trip(message: &Message) -> Result<(), String> {
    let frame = wire::encode(message).map_err(|e| e.to_string())?;
    match wire::decode(&frame) {
        Ok(back) if &back == message => Ok(()),
        Ok(back) => Err(format!("{message:?} came back as {back:?}")),
        Err(e) => Err(format!("{message:?} did not decode: {e}")),
    }
}
