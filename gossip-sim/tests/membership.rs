//! Deterministic multi-node membership tests on the simulator.

use std::time::Duration;

use gossip_core::{Config, Event, MemberState};
use gossip_sim::{NetConfig, NodeId, Sim, TraceEntry};

fn cluster(seed: u64, n: usize, config: Config, net: NetConfig) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, net);
    let ids: Vec<NodeId> = (0..n).map(|i| sim.add_node(format!("n{i}"), config.clone())).collect();
    for &id in &ids[1..] {
        sim.join(id, &[ids[0]]);
    }
    (sim, ids)
}

fn dead_declarations(trace: &[TraceEntry]) -> Vec<(NodeId, String)> {
    trace
        .iter()
        .filter_map(|e| match &e.event {
            Event::MemberDown(m) => Some((e.node, m.name.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn hundred_nodes_join_through_one_seed() {
    let (mut sim, _) = cluster(1, 100, Config::lan(), NetConfig::default());
    let ok = sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged);
    assert!(ok, "100 nodes did not converge in 60 virtual seconds");
    eprintln!("converged after {:?}", sim.elapsed());
}

#[test]
fn thousand_nodes_join_through_one_seed() {
    let mut sim = Sim::new(2, NetConfig::default());
    sim.record_trace(false);
    let ids: Vec<NodeId> = (0..1000).map(|i| sim.add_node(format!("n{i}"), Config::lan())).collect();
    for &id in &ids[1..] {
        sim.join(id, &[ids[0]]);
    }
    let ok = sim.run_until_cond(Duration::from_secs(1), Duration::from_secs(180), Sim::converged);
    assert!(ok, "1000 nodes did not converge in 180 virtual seconds");
    eprintln!("converged after {:?}", sim.elapsed());
}

#[test]
fn crashed_member_is_declared_dead_by_all_and_no_live_member_is() {
    let (mut sim, ids) = cluster(3, 30, Config::lan(), NetConfig::default());
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
    sim.take_trace();
    let victim = ids[17];
    sim.crash(victim);
    let ok = sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(120), |s| {
        s.count_seeing_gone("n17") == s.up_ids().len()
    });
    assert!(ok, "not every survivor declared the crashed member dead");
    let deaths = dead_declarations(&sim.take_trace());
    assert!(deaths.iter().all(|(_, name)| name == "n17"), "live member declared dead: {deaths:?}");
    assert!(sim.converged());
}

#[test]
fn same_seed_gives_the_same_event_trace() {
    let run = |seed| {
        let net = NetConfig { loss: 0.05, duplicate: 0.02, reorder: 0.05, ..NetConfig::default() };
        let (mut sim, ids) = cluster(seed, 20, Config::lan(), net);
        sim.run_for(Duration::from_secs(10));
        sim.crash(ids[5]);
        sim.run_for(Duration::from_secs(40));
        (sim.take_trace(), sim.stats().clone())
    };
    let (a, sa) = run(7);
    let (b, sb) = run(7);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let (c, _) = run(8);
    assert_ne!(a, c, "a different seed should give a different trace");
}
