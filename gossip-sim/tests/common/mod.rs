//! What the simulator's property tests share: the faults a plan injects, and how one is
//! applied to a running simulation.

use std::time::Duration;

use gossip_sim::{NodeId, Sim};
use proptest::prelude::*;

/// One fault, naming nodes by index (taken modulo the cluster size).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Crash a node (never node 0, the seed everyone can always go back to).
    Crash(usize),
    /// Restart a crashed node under a new generation.
    Restart(usize),
    /// Starve a node of CPU for so many milliseconds.
    Stall(usize, u64),
    /// Split the cluster before this index.
    Partition(usize),
    /// End every partition.
    Heal,
}

/// Faults on clusters of up to `max_nodes`, stalls up to `max_stall_ms`.
pub fn fault(max_nodes: usize, max_stall_ms: u64) -> impl Strategy<Value = Fault> {
    prop_oneof![
        (1usize..max_nodes).prop_map(Fault::Crash),
        (1usize..max_nodes).prop_map(Fault::Restart),
        ((0usize..max_nodes), (100u64..max_stall_ms)).prop_map(|(n, ms)| Fault::Stall(n, ms)),
        (1usize..max_nodes - 1).prop_map(Fault::Partition),
        Just(Fault::Heal),
    ]
}

/// Applies `fault` to the nodes `ids`.
pub fn apply(sim: &mut Sim, ids: &[NodeId], fault: &Fault) {
    let pick = |i: &usize| ids[*i % ids.len()];
    match fault {
        Fault::Crash(i) if pick(i) != ids[0] => sim.crash(pick(i)),
        Fault::Crash(_) => {}
        Fault::Restart(i) => {
            if sim.node(pick(i)).is_none() {
                sim.restart(pick(i));
            }
        }
        Fault::Stall(i, ms) => sim.stall(pick(i), Duration::from_millis(*ms)),
        Fault::Partition(at) => {
            let cut = (*at).min(ids.len() - 1);
            let (a, b) = ids.split_at(cut);
            sim.partition(&[a, b]);
        }
        Fault::Heal => sim.heal(),
    }
}
