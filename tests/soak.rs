//! Short runs of the churn and chaos soaks (tests/common/soak.rs says what each does; the
//! long runs are `cargo bench --bench soak`). Each prints what it did and saw.

mod common;
#[path = "common/soak.rs"]
mod soak;

use common::turn;

#[test]
fn churn_leaves_every_table_at_its_baseline() {
    let _turn = turn();
    let mut cluster = soak::start(2);
    let report = soak::churn(&mut cluster, 4, true);
    eprintln!("{report:#?}");
    assert_eq!(report.nodes_replaced, 2);
    // Everything made in the rounds is gone again: no value held, no lineage, no group,
    // no channel to an actor, no dead member left listed.
    for table in [
        "held_values",
        "lineage",
        "hosted_groups",
        "remote_actors",
        "actor_locations",
        "dead_members",
        "suspects",
        "awaiting_args",
    ] {
        assert!(
            report.after.get(table).copied().unwrap_or(0)
                <= report.baseline.get(table).copied().unwrap_or(0),
            "{table}: {report:?}"
        );
    }
    assert_eq!(report.after.get("dead_members").copied().unwrap_or(0), 0);
}

#[test]
fn chaos_gives_every_get_a_value_or_a_typed_error() {
    let _turn = turn();
    let mut cluster = soak::start(3);
    let report = soak::chaos(&mut cluster, 3);
    eprintln!("{report:#?}");
    assert_eq!(report.faults, 3);
    assert_eq!(report.checked, 3 * (40 + 4 + 3 + 3));
}
