//! Property test of the replicated key/value state: whatever the fault plan (loss,
//! duplication, reordering, partitions, crashes, restarts, stalls) and the writes made during
//! it, once faults stop every running node holds exactly what each running owner holds: no
//! acknowledged write of a live owner is lost and no deleted key comes back.

use std::time::Duration;

use gossip_core::Config;
use gossip_sim::{NetConfig, NodeId, Sim};
use proptest::prelude::*;

mod common;
use common::Fault;

#[derive(Debug, Clone)]
enum Step {
    Set { node: usize, key: u8, len: usize },
    Delete { node: usize, key: u8 },
    Fault(Fault),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0usize..10, 0u8..6, 0usize..200).prop_map(|(node, key, len)| Step::Set { node, key, len }),
        2 => (0usize..10, 0u8..6).prop_map(|(node, key)| Step::Delete { node, key }),
        5 => common::fault(10, 6000).prop_map(Step::Fault),
    ]
}

#[derive(Debug, Clone)]
struct Plan {
    seed: u64,
    nodes: usize,
    loss: f64,
    duplicate: f64,
    reorder: f64,
    steps: Vec<(u64, Step)>,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        any::<u64>(),
        3usize..10,
        0.0f64..0.3,
        0.0f64..0.1,
        0.0f64..0.2,
        prop::collection::vec((0u64..40_000, step()), 0..40),
    )
        .prop_map(|(seed, nodes, loss, duplicate, reorder, mut steps)| {
            steps.sort_by_key(|(at, _)| *at);
            Plan { seed, nodes, loss, duplicate, reorder, steps }
        })
}

type Keys = Vec<(String, Vec<u8>, u64)>;

fn keys_of(sim: &Sim, holder: NodeId, owner: &str) -> Keys {
    sim.node(holder)
        .map_or_else(Vec::new, |n| n.keys(owner).map(|(k, v, ver)| (k.to_owned(), v.to_vec(), ver)).collect())
}

/// Every running node holds exactly each running owner's own keys.
fn state_converged(sim: &Sim) -> bool {
    let up = sim.up_ids();
    up.iter().all(|&owner| {
        let name = sim.name(owner).to_owned();
        let truth = keys_of(sim, owner, &name);
        up.iter().all(|&holder| keys_of(sim, holder, &name) == truth)
    })
}

/// What replicas hold that their owner does not, for a failure message.
fn divergence(sim: &Sim) -> String {
    let mut out = String::new();
    for &owner in &sim.up_ids() {
        let name = sim.name(owner).to_owned();
        let truth = keys_of(sim, owner, &name);
        for &holder in &sim.up_ids() {
            let held = keys_of(sim, holder, &name);
            if held != truth {
                let view = sim.node(holder).and_then(|n| n.member(&name));
                out += &format!("{} holds {held:?} of {name} ({view:?}), which holds {truth:?}; ", sim.name(holder));
            }
        }
    }
    out
}

fn run(plan: &Plan) -> Result<(), TestCaseError> {
    let net = NetConfig { loss: plan.loss, duplicate: plan.duplicate, reorder: plan.reorder, ..NetConfig::default() };
    let config = Config {
        state_sync_interval: Some(Duration::from_secs(1)),
        // Short, so tombstones are collected during the run and resets get exercised.
        tombstone_grace: Duration::from_secs(5),
        ..Config::lan()
    };
    let mut sim = Sim::new(plan.seed, net);
    let ids: Vec<NodeId> = (0..plan.nodes).map(|i| sim.add_node(format!("n{i}"), config.clone())).collect();
    for &id in &ids[1..] {
        sim.join(id, &ids[..1]);
    }
    let mut t = 0;
    for (at, s) in &plan.steps {
        sim.run_for(Duration::from_millis(at - t));
        t = *at;
        let pick = |i: &usize| ids[*i % ids.len()];
        match s {
            Step::Set { node, key, len } => {
                if let Some(n) = sim.node_mut(pick(node)) {
                    n.set(&format!("k{key}"), vec![*key; *len]).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            Step::Delete { node, key } => {
                let now = sim.now();
                if let Some(n) = sim.node_mut(pick(node)) {
                    n.delete(now, &format!("k{key}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            Step::Fault(f) => common::apply(&mut sim, &ids, f),
        }
    }
    sim.heal();
    *sim.net_mut() = NetConfig::default();
    let ok =
        sim.run_until_cond(Duration::from_secs(1), Duration::from_secs(600), |s| s.converged() && state_converged(s));
    prop_assert!(ok, "state did not converge after faults stopped (at {:?}): {}", sim.elapsed(), divergence(&sim));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // More with GOSSIP_PROPTEST_CASES=N, for a long hunt.
        cases: std::env::var("GOSSIP_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_converge_to_their_owners_once_faults_stop(plan in plan()) {
        run(&plan)?;
    }
}

/// Plans the property test once found.
#[test]
fn plans_that_once_failed_converge() {
    let set = |node| Step::Set { node, key: 0, len: 0 };
    let plans = [
        // An owner restarts while a restarted peer is filling in from replicas that still hold
        // the old life's state.
        Plan {
            seed: 3530443259134783179,
            nodes: 6,
            loss: 0.2447532282120573,
            duplicate: 0.061076456668397956,
            reorder: 0.037613642632901276,
            steps: vec![
                (0, set(2)),
                (3364, set(2)),
                (4004, set(1)),
                (4083, Step::Fault(Fault::Stall(8, 3236))),
                (5190, set(6)),
                (12347, Step::Fault(Fault::Stall(8, 4192))),
                (15344, Step::Fault(Fault::Crash(7))),
                (19947, set(4)),
                (20440, set(5)),
                (34167, Step::Fault(Fault::Crash(4))),
                (35512, Step::Fault(Fault::Restart(4))),
                (36335, Step::Fault(Fault::Restart(1))),
            ],
        },
        Plan {
            seed: 17433985932506712285,
            nodes: 5,
            loss: 0.12297623945113456,
            duplicate: 0.07398427332576381,
            reorder: 0.12753563826846254,
            steps: vec![
                (0, set(6)),
                (0, Step::Delete { node: 0, key: 0 }),
                (1907, Step::Fault(Fault::Crash(3))),
                (1907, set(8)),
                (3984, Step::Fault(Fault::Partition(4))),
                (5151, set(4)),
                (5702, set(0)),
                (6495, set(2)),
                (10099, Step::Fault(Fault::Crash(2))),
                (15761, Step::Fault(Fault::Stall(5, 1405))),
                (17165, Step::Fault(Fault::Stall(0, 1704))),
                (17553, Step::Fault(Fault::Partition(1))),
                (19085, Step::Fault(Fault::Restart(2))),
                (19756, set(2)),
                (20530, Step::Fault(Fault::Restart(8))),
                (23520, Step::Fault(Fault::Partition(4))),
                (26528, set(5)),
                (34496, Step::Fault(Fault::Crash(6))),
                (35598, Step::Fault(Fault::Restart(1))),
            ],
        },
    ];
    for plan in &plans {
        if let Err(e) = run(plan) {
            panic!("seed {}: {e}", plan.seed);
        }
    }
}
