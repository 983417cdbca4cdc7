//! Randomized inputs for what reads bytes from the network and from disk: the wire decoder
//! (frames from peers) and the object codec (values from peers and spill files). Arbitrary
//! bytes, valid inputs, and valid inputs mutated (bytes flipped, inserted, deleted, cut, huge
//! lengths written in) must decode or fail with an error: never a panic, never an allocation
//! past what the input can justify. A short run; `cargo bench --bench fuzz` runs long.

#[path = "common/fuzz.rs"]
mod fuzz;

use fuzz::*;
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn arbitrary_bytes_are_no_frame_and_no_value_that_panics(bytes in arbitrary_bytes()) {
        check_frame(&bytes).map_err(TestCaseError::fail)?;
        check_value(&bytes).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mutated_frames_decode_or_fail_cleanly(frame in mutated_frame()) {
        check_frame(&frame).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mutated_values_decode_or_fail_cleanly(bytes in mutated_value()) {
        check_value(&bytes).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn every_message_comes_back_as_it_went(message in message()) {
        check_round_trip(&message).map_err(TestCaseError::fail)?;
    }
}

/// The checks catch what they are for: a decode that allocates a huge buffer is reported.
#[test]
fn the_allocation_check_sees_a_large_allocation() {
    let (_, largest) = largest_allocation(|| vec![0u8; 8 << 20]);
    assert!(largest >= 8 << 20);
    assert!(largest > allocation_bound(16));
    let (_, small) = largest_allocation(|| 1 + 1);
    assert_eq!(small, 0);
}

/// Lengths past the end, on each kind of value the codec has a fast path for.
#[test]
fn huge_lengths_are_refused_not_allocated() {
    let huge = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3,
    ];
    check_value(&huge).unwrap();
    let mut frame = 12u32.to_le_bytes().to_vec();
    frame.extend_from_slice(&huge);
    check_frame(&frame).unwrap();
}
