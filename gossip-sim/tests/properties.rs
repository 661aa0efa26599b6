//! Property test: whatever the fault plan, once faults stop every running node's view
//! converges to the true set of running members, and no node ever declares itself dead.

use std::time::Duration;

use gossip_core::{Config, Event, MemberState};
use gossip_sim::{NetConfig, NodeId, Sim};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Fault {
    Crash(usize),
    Restart(usize),
    Stall(usize, u64),
    Partition(usize),
    Heal,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (1usize..12).prop_map(Fault::Crash),
        (1usize..12).prop_map(Fault::Restart),
        ((0usize..12), (100u64..8000)).prop_map(|(n, ms)| Fault::Stall(n, ms)),
        (1usize..11).prop_map(Fault::Partition),
        Just(Fault::Heal),
    ]
}

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
        prop::collection::vec((0u64..30_000, fault()), 0..12),
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
        let pick = |i: &usize| ids[*i % ids.len()];
        match f {
            // Node 0 is the seed everyone can always go back to; it never crashes.
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
