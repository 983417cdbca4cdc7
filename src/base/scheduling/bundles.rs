//! Placement groups, the pure part: where each bundle of a group goes, and the resources a
//! reserved bundle becomes.
//!
//! As in Ray, a reserved bundle turns into custom resources on its node: `CPU_group_<i>_<g>`
//! (only tasks placed into bundle `i` of group `g` may use it) and `CPU_group_<g>` (any
//! bundle of the group), likewise for GPUs and custom resources. A task placed into a group
//! asks for those names instead of the plain ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::resources::ResourceRequest;
use crate::base::id::NodeId;

/// How a placement group's bundles are spread over nodes (Ray's `strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PlacementStrategy {
    /// As few nodes as possible: one if they fit, else fill nodes in turn.
    #[default]
    Pack,
    /// Over as many nodes as possible: each bundle where the fewest bundles are so far.
    Spread,
    /// All bundles on one node, or none.
    StrictPack,
    /// Every bundle on a different node, or none.
    StrictSpread,
}

/// Room on one node for bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Room {
    pub node: NodeId,
    pub cpu: i64,
    pub gpu: i64,
    pub custom: BTreeMap<Arc<str>, i64>,
}

impl Room {
    fn fits(&self, req: &ResourceRequest) -> bool {
        req.cpu <= self.cpu
            && req.gpu <= self.gpu
            && req
                .custom
                .iter()
                .all(|(n, a)| self.custom.get(n).copied().unwrap_or(0) >= *a)
    }

    fn take(&mut self, req: &ResourceRequest) {
        self.cpu -= req.cpu;
        self.gpu -= req.gpu;
        for (n, a) in &req.custom {
            if let Some(free) = self.custom.get_mut(n) {
                *free -= a;
            }
        }
    }

    fn size(&self) -> i64 {
        self.cpu + self.gpu + self.custom.values().sum::<i64>()
    }
}

fn sum(bundles: &[ResourceRequest]) -> ResourceRequest {
    let mut custom: BTreeMap<Arc<str>, i64> = BTreeMap::new();
    for b in bundles {
        for (n, a) in &b.custom {
            *custom.entry(n.clone()).or_default() += a;
        }
    }
    ResourceRequest {
        cpu: bundles.iter().map(|b| b.cpu).sum(),
        gpu: bundles.iter().map(|b| b.gpu).sum(),
        custom: custom.into_iter().collect(),
    }
}

/// The node of each bundle, in order, or why the group cannot be placed. `rooms` are the
/// candidate nodes with what they can still give, the preferred (local) one first.
pub(crate) fn plan(
    bundles: &[ResourceRequest],
    strategy: PlacementStrategy,
    rooms: &[Room],
) -> Result<Vec<NodeId>, String> {
    if bundles.is_empty() {
        return Err("a placement group needs at least one bundle".into());
    }
    let mut rooms = rooms.to_vec();
    let nowhere = |i: usize| {
        format!(
            "bundle {i} ({}) fits on no node with what is left there",
            bundles[i]
        )
    };
    match strategy {
        PlacementStrategy::StrictPack | PlacementStrategy::Pack => {
            let all = sum(bundles);
            if let Some(room) = rooms.iter().find(|r| r.fits(&all)) {
                return Ok(vec![room.node; bundles.len()]);
            }
            if strategy == PlacementStrategy::StrictPack {
                return Err(format!(
                    "STRICT_PACK needs one node with {all} free for the whole group; none has"
                ));
            }
            // Fill the node in use while it fits, then the roomiest other node.
            let mut out = Vec::with_capacity(bundles.len());
            let mut current: Option<usize> = None;
            for (i, b) in bundles.iter().enumerate() {
                let pick = current
                    .filter(|&c| rooms[c].fits(b))
                    .or_else(|| {
                        (0..rooms.len())
                            .filter(|&r| rooms[r].fits(b))
                            .max_by_key(|&r| rooms[r].size())
                    })
                    .ok_or_else(|| nowhere(i))?;
                rooms[pick].take(b);
                current = Some(pick);
                out.push(rooms[pick].node);
            }
            Ok(out)
        }
        PlacementStrategy::Spread | PlacementStrategy::StrictSpread => {
            let strict = strategy == PlacementStrategy::StrictSpread;
            let mut used = vec![0usize; rooms.len()];
            let mut out = Vec::with_capacity(bundles.len());
            for (i, b) in bundles.iter().enumerate() {
                let pick = (0..rooms.len())
                    .filter(|&r| rooms[r].fits(b) && (!strict || used[r] == 0))
                    .min_by_key(|&r| (used[r], r))
                    .ok_or_else(|| {
                        if strict {
                            format!(
                                "STRICT_SPREAD needs a different node for each of the {} bundles; only {} can take bundle {i} ({})",
                                bundles.len(),
                                rooms.iter().filter(|r| r.fits(b)).count(),
                                bundles[i]
                            )
                        } else {
                            nowhere(i)
                        }
                    })?;
                rooms[pick].take(b);
                used[pick] += 1;
                out.push(rooms[pick].node);
            }
            Ok(out)
        }
    }
}

/// The custom resources a reserved bundle becomes on its node: for each resource it holds,
/// the bundle's own name and the group-wide name, with the bundle's amount.
pub(crate) fn group_resources(
    group: &str,
    index: usize,
    bundle: &ResourceRequest,
) -> Vec<(Arc<str>, i64)> {
    let mut out = Vec::new();
    let mut add = |name: &str, amount: i64| {
        if amount > 0 {
            out.push((Arc::from(format!("{name}_group_{index}_{group}")), amount));
            out.push((Arc::from(format!("{name}_group_{group}")), amount));
        }
    };
    add("CPU", bundle.cpu);
    add("GPU", bundle.gpu);
    for (name, amount) in &bundle.custom {
        add(name, *amount);
    }
    out
}

/// What a task or actor placed into bundle `index` of `group` (any bundle: `None`) asks for
/// instead of `req`.
pub(crate) fn in_group(
    group: &str,
    index: Option<usize>,
    req: &ResourceRequest,
) -> ResourceRequest {
    let name = |resource: &str| match index {
        Some(i) => format!("{resource}_group_{i}_{group}"),
        None => format!("{resource}_group_{group}"),
    };
    let mut custom: BTreeMap<Arc<str>, i64> = BTreeMap::new();
    if req.cpu > 0 {
        custom.insert(Arc::from(name("CPU")), req.cpu);
    }
    if req.gpu > 0 {
        custom.insert(Arc::from(name("GPU")), req.gpu);
    }
    for (n, a) in &req.custom {
        custom.insert(Arc::from(name(n)), *a);
    }
    ResourceRequest {
        cpu: 0,
        gpu: 0,
        custom: custom.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::scheduling::resources::UNIT;

    fn cpus(n: i64) -> ResourceRequest {
        ResourceRequest {
            cpu: n * UNIT,
            gpu: 0,
            custom: Vec::new(),
        }
    }

    fn nodes(cpus: &[i64]) -> Vec<Room> {
        cpus.iter()
            .map(|&c| Room {
                node: NodeId::random(),
                cpu: c * UNIT,
                gpu: 0,
                custom: BTreeMap::new(),
            })
            .collect()
    }

    fn distinct(plan: &[NodeId]) -> usize {
        let mut v = plan.to_vec();
        v.sort();
        v.dedup();
        v.len()
    }

    #[test]
    fn pack_uses_one_node_when_the_group_fits_else_fills_nodes_in_turn() {
        let rooms = nodes(&[2, 4, 4]);
        let p = plan(&[cpus(1), cpus(1)], PlacementStrategy::Pack, &rooms).unwrap();
        assert_eq!(
            p,
            vec![rooms[0].node; 2],
            "the first (local) node that fits all"
        );
        let p = plan(
            &[cpus(2), cpus(2), cpus(2)],
            PlacementStrategy::Pack,
            &rooms,
        )
        .unwrap();
        assert_eq!(distinct(&p), 2);
        assert_eq!(p[0], p[1], "the node in use is filled first");
        assert!(plan(&[cpus(5)], PlacementStrategy::Pack, &rooms).is_err());
    }

    #[test]
    fn strict_pack_is_one_node_or_nothing() {
        let rooms = nodes(&[2, 3]);
        let p = plan(&[cpus(1), cpus(2)], PlacementStrategy::StrictPack, &rooms).unwrap();
        assert_eq!(p, vec![rooms[1].node; 2]);
        let err = plan(&[cpus(2), cpus(2)], PlacementStrategy::StrictPack, &rooms).unwrap_err();
        assert!(err.contains("STRICT_PACK"), "{err}");
    }

    #[test]
    fn spread_balances_and_strict_spread_needs_a_node_per_bundle() {
        let rooms = nodes(&[4, 4, 4]);
        let p = plan(&vec![cpus(1); 3], PlacementStrategy::Spread, &rooms).unwrap();
        assert_eq!(distinct(&p), 3);
        let p = plan(&vec![cpus(1); 6], PlacementStrategy::Spread, &rooms).unwrap();
        for room in &rooms {
            assert_eq!(p.iter().filter(|n| **n == room.node).count(), 2);
        }
        let p = plan(&vec![cpus(1); 3], PlacementStrategy::StrictSpread, &rooms).unwrap();
        assert_eq!(distinct(&p), 3);
        let err = plan(&vec![cpus(1); 4], PlacementStrategy::StrictSpread, &rooms).unwrap_err();
        assert!(err.contains("STRICT_SPREAD"), "{err}");
        // Room is taken as bundles are placed: two 3-CPU bundles do not share a 4-CPU node.
        let p = plan(
            &[cpus(3), cpus(3)],
            PlacementStrategy::Spread,
            &nodes(&[4, 4]),
        )
        .unwrap();
        assert_eq!(distinct(&p), 2);
        assert!(
            plan(
                &vec![cpus(3); 3],
                PlacementStrategy::Spread,
                &nodes(&[4, 4])
            )
            .is_err()
        );
    }

    #[test]
    fn a_bundle_becomes_named_resources_and_a_request_in_the_group_asks_for_them() {
        let bundle = ResourceRequest::new(2.0, 0.0, &[("fpga".into(), 1.0)]).unwrap();
        let names: Vec<String> = group_resources("g1", 0, &bundle)
            .iter()
            .map(|(n, a)| format!("{n}={a}"))
            .collect();
        assert_eq!(
            names,
            vec![
                "CPU_group_0_g1=20000",
                "CPU_group_g1=20000",
                "fpga_group_0_g1=10000",
                "fpga_group_g1=10000"
            ]
        );
        let req = ResourceRequest::new(1.0, 0.0, &[]).unwrap();
        let inside = in_group("g1", Some(0), &req);
        assert_eq!((inside.cpu, inside.gpu), (0, 0));
        assert_eq!(inside.custom, vec![(Arc::from("CPU_group_0_g1"), UNIT)]);
        assert_eq!(
            in_group("g1", None, &req).custom,
            vec![(Arc::from("CPU_group_g1"), UNIT)]
        );
    }
}
