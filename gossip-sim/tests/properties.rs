//! Property test: whatever the fault plan, once faults stop every running node's view
//! converges to the true set of running members, and no node ever declares itself dead.

use std::time::Duration;

use gossip_core::{Config, Event, MemberState};
use gossip_sim::{NetConfig, NodeId, Sim};
use proptest::prelude::*;

mod common;
use common::Fault;

#[derive(Debug, Clone)]
struct Plan {
    seed: u64,
    nodes: usize,
    loss: f64,
    duplicate: f64,
    reorder: f64,
    faults: Vec<(u64, Fault)>,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        any::<u64>(),
        4usize..12,
        0.0f64..0.3,
        0.0f64..0.1,
        0.0f64..0.2,
        prop::collection::vec((0u64..30_000, common::fault(12, 8000)), 0..12),
    )
        .prop_map(|(seed, nodes, loss, duplicate, reorder, mut faults)| {
            faults.sort_by_key(|(at, _)| *at);
            Plan { seed, nodes, loss, duplicate, reorder, faults }
        })
}

fn run(plan: &Plan) -> Result<(), TestCaseError> {
    let net = NetConfig { loss: plan.loss, duplicate: plan.duplicate, reorder: plan.reorder, ..NetConfig::default() };
    let mut sim = Sim::new(plan.seed, net);
    let ids: Vec<NodeId> = (0..plan.nodes).map(|i| sim.add_node(format!("n{i}"), Config::lan())).collect();
    let seeds: Vec<NodeId> = ids.iter().copied().take(3).collect();
    for &id in &ids[1..] {
        sim.join(id, &seeds);
    }
    let mut t = 0;
    for (at, f) in &plan.faults {
        sim.run_for(Duration::from_millis(at - t));
        t = *at;
        common::apply(&mut sim, &ids, f);
    }
    sim.run_for(Duration::from_millis(30_000u64.saturating_sub(t)));
    // Faults stop.
    sim.heal();
    *sim.net_mut() = NetConfig::default();
    let ok = sim.run_until_cond(Duration::from_secs(1), Duration::from_secs(400), Sim::converged);
    let trace = sim.take_trace();
    for e in &trace {
        if let Event::MemberDown(m) = &e.event {
            prop_assert_ne!(m.name.as_str(), sim.name(e.node), "a node declared itself dead");
        }
    }
    for id in sim.up_ids() {
        prop_assert_eq!(sim.node(id).map(|n| n.self_record().state), Some(MemberState::Alive));
    }
    prop_assert!(ok, "views did not converge after faults stopped (at {:?})", sim.elapsed());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn views_converge_once_faults_stop(plan in plan()) {
        run(&plan)?;
    }
}
