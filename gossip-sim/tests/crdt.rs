//! Replicated CRDT objects on the simulator: exact counts under loss, add-wins sets, repair by
//! anti-entropy alone.

use std::time::Duration;

use gossip_core::crdt::{AwSet, GCounter, PnCounter};
use gossip_core::Config;
use gossip_sim::{NetConfig, NodeId, Sim};

fn cluster(seed: u64, n: usize, config: Config, net: NetConfig) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, net);
    sim.record_trace(false);
    let ids: Vec<NodeId> = (0..n).map(|i| sim.add_node(format!("n{i}"), config.clone())).collect();
    sim.prime_converged();
    (sim, ids)
}

fn config() -> Config {
    Config { state_sync_interval: Some(Duration::from_secs(1)), ..Config::lan() }
}

fn counter_everywhere(sim: &Sim, name: &str) -> Vec<i128> {
    sim.up_ids().iter().map(|&i| sim.node(i).and_then(|n| n.crdt::<PnCounter>(name)).map_or(0, |c| c.value())).collect()
}

#[test]
fn two_hundred_nodes_count_exactly_under_twenty_percent_loss() {
    let (mut sim, ids) = cluster(11, 200, config(), NetConfig { loss: 0.2, ..NetConfig::default() });
    sim.run_for(Duration::from_secs(1));
    // Every node adds its index + 1 three times, a little apart, and one in ten subtracts 5.
    let mut expected = 0i128;
    for round in 0..3 {
        for (i, &id) in ids.iter().enumerate() {
            let n = sim.node_mut(id).expect("running");
            n.update_crdt::<PnCounter>("hits", |c, me| c.increment(me, i as u64 + 1)).expect("update");
            expected += i as i128 + 1;
            if round == 0 && i % 10 == 0 {
                n.update_crdt::<PnCounter>("hits", |c, me| c.decrement(me, 5)).expect("update");
                expected -= 5;
            }
        }
        sim.run_for(Duration::from_millis(300));
    }
    let ok = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(300), |s| {
        counter_everywhere(s, "hits").iter().all(|&v| v == expected)
    });
    let values = counter_everywhere(&sim, "hits");
    assert!(ok, "not every replica reached {expected}: min {:?} max {:?}", values.iter().min(), values.iter().max());
    eprintln!("converged on {expected} after {:?}", sim.elapsed());
}

#[test]
fn anti_entropy_alone_repairs_a_partitioned_side() {
    let config = Config { state_retransmit_mult: 0, ..config() }; // no rumors at all
    let (mut sim, ids) = cluster(12, 20, config, NetConfig::default());
    sim.run_for(Duration::from_secs(1));
    sim.partition(&[&ids[..10], &ids[10..]]);
    for &id in &ids {
        let n = sim.node_mut(id).expect("running");
        n.update_crdt::<GCounter>("g", |c, me| c.increment(me, 1)).expect("update");
    }
    sim.run_for(Duration::from_secs(20));
    // Each side agrees on its own half.
    let side = |s: &Sim, id: NodeId| s.node(id).and_then(|n| n.crdt::<GCounter>("g")).map_or(0, |c| c.value());
    assert!(ids[..10].iter().all(|&id| side(&sim, id) == 10));
    sim.heal();
    let ok = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), |s| {
        ids.iter().all(|&id| side(s, id) == 20)
    });
    assert!(ok, "anti-entropy did not bring the sides together");
}

#[test]
fn concurrent_add_and_remove_end_add_wins_everywhere() {
    let (mut sim, ids) = cluster(13, 30, config(), NetConfig { loss: 0.1, ..NetConfig::default() });
    sim.run_for(Duration::from_secs(1));
    sim.node_mut(ids[0]).expect("running").update_crdt::<AwSet>("s", |s, me| s.add(me, b"x".to_vec())).expect("add");
    sim.node_mut(ids[0]).expect("running").update_crdt::<AwSet>("s", |s, me| s.add(me, b"y".to_vec())).expect("add");
    let has = |s: &Sim, e: &[u8]| {
        s.up_ids().iter().all(|&i| s.node(i).and_then(|n| n.crdt::<AwSet>("s")).is_some_and(|set| set.contains(e)))
    };
    assert!(sim.run_until_cond(Duration::from_millis(200), Duration::from_secs(60), |s| has(s, b"x") && has(s, b"y")));
    // Partitioned: one side removes x and y, the other adds x again.
    sim.partition(&[&ids[..15], &ids[15..]]);
    sim.node_mut(ids[1]).expect("running").update_crdt::<AwSet>("s", |s, _| s.remove(b"x")).expect("remove");
    sim.node_mut(ids[1]).expect("running").update_crdt::<AwSet>("s", |s, _| s.remove(b"y")).expect("remove");
    sim.node_mut(ids[20]).expect("running").update_crdt::<AwSet>("s", |s, me| s.add(me, b"x".to_vec())).expect("add");
    sim.run_for(Duration::from_secs(10));
    sim.heal();
    let settled = |s: &Sim| {
        let sets: Vec<AwSet> =
            s.up_ids().iter().filter_map(|&i| s.node(i).and_then(|n| n.crdt::<AwSet>("s")).cloned()).collect();
        sets.len() == s.up_ids().len() && sets.windows(2).all(|w| w[0] == w[1])
    };
    assert!(sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), settled));
    let set = sim.node(ids[5]).and_then(|n| n.crdt::<AwSet>("s")).cloned().expect("set");
    assert!(set.contains(b"x"), "the concurrent add wins");
    assert!(!set.contains(b"y"), "the remove of y, with no concurrent add, holds");
}

#[test]
fn an_object_of_another_type_is_refused_not_merged() {
    let (mut sim, ids) = cluster(14, 5, config(), NetConfig::default());
    sim.node_mut(ids[0]).expect("running").update_crdt::<GCounter>("x", |c, me| c.increment(me, 1)).expect("update");
    sim.run_for(Duration::from_secs(5));
    let err = sim.node_mut(ids[1]).expect("running").update_crdt::<AwSet>("x", |s, me| s.add(me, vec![1]));
    assert!(err.is_err(), "x is a counter");
}

#[test]
fn a_restarted_node_gets_the_whole_counter_back_through_repair() {
    // Rumors off: what the restarted node holds, anti-entropy brought (whole states first, then
    // delta intervals once its peers know what it holds; those of its old life are forgotten).
    let config = Config { state_retransmit_mult: 0, ..config() };
    let (mut sim, ids) = cluster(15, 10, config, NetConfig { loss: 0.05, ..NetConfig::default() });
    sim.run_for(Duration::from_secs(1));
    let value = |s: &Sim, id: NodeId| s.node(id).and_then(|n| n.crdt::<GCounter>("g")).map_or(0, |c| c.value());
    let bump = |sim: &mut Sim| {
        for &id in &ids {
            sim.node_mut(id)
                .expect("running")
                .update_crdt::<GCounter>("g", |c, me| c.increment(me, 1))
                .expect("update");
        }
    };
    bump(&mut sim);
    assert!(sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), |s| {
        ids.iter().all(|&id| value(s, id) == 10)
    }));
    sim.crash(ids[3]);
    sim.run_for(Duration::from_secs(2));
    sim.restart(ids[3]);
    bump(&mut sim); // the restarted node counts under its new replica id
    let ok = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), |s| {
        ids.iter().all(|&id| value(s, id) == 20)
    });
    let values: Vec<u128> = ids.iter().map(|&id| value(&sim, id)).collect();
    assert!(ok, "not every replica reached 20: {values:?}");
    let intervals: u64 = ids.iter().filter_map(|&id| sim.node(id)).map(|n| n.metrics().crdt_intervals_sent).sum();
    assert!(intervals > 0, "repairs between peers that knew each other were intervals");
}
