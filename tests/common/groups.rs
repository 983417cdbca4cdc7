//! Checks on placement groups across nodes.

use mobula::PlacementGroup;

/// The node a task runs on.
#[mobula::remote]
fn node_here() -> String {
    mobula::context().node_id().expect("a runtime").to_string()
}

/// Runs a task of one CPU in each of the first `bundles` bundles of `group`, and checks that
/// each ran on its bundle's node.
pub fn each_bundle_runs_on_its_node(group: &PlacementGroup, bundles: usize) {
    for i in 0..bundles {
        let at = node_here
            .options()
            .placement_group(group, Some(i))
            .num_cpus(1)
            .remote()
            .get()
            .unwrap();
        assert_eq!(at, group.bundle_node(i).unwrap().to_string(), "bundle {i}");
    }
}
