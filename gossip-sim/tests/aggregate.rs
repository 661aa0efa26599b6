//! Push-sum aggregates on the simulator, through the whole node.

use std::time::Duration;

use gossip_core::Config;
use gossip_sim::{NetConfig, NodeId, Sim};

fn cluster(seed: u64, n: usize, net: NetConfig) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, net);
    sim.record_trace(false);
    let ids: Vec<NodeId> = (0..n).map(|i| sim.add_node(format!("n{i}"), Config::lan())).collect();
    sim.prime_converged();
    (sim, ids)
}

fn worst_error(sim: &Sim, ids: &[NodeId], average: f64, count: f64) -> (f64, f64) {
    ids.iter().filter_map(|&i| sim.node(i).and_then(|n| n.aggregate("load"))).fold((0.0, 0.0), |w, e| {
        (f64::max(w.0, ((e.average - average) / average).abs()), f64::max(w.1, ((e.count - count) / count).abs()))
    })
}

#[test]
fn a_hundred_nodes_agree_on_sum_count_and_average() {
    let (mut sim, ids) = cluster(21, 100, NetConfig::default());
    for (i, &id) in ids.iter().enumerate() {
        // Nine in ten contribute i; the others only relay.
        let value = (i % 10 != 9).then_some(i as f64);
        sim.node_mut(id).expect("running").set_aggregate_value("load", value).expect("value");
    }
    let contributors: Vec<f64> = (0..100).filter(|i| i % 10 != 9).map(|i| i as f64).collect();
    let (count, sum) = (contributors.len() as f64, contributors.iter().sum::<f64>());
    sim.run_for(Duration::from_secs(15));
    let (avg_err, count_err) = worst_error(&sim, &ids, sum / count, count);
    assert!(avg_err < 1e-6 && count_err < 1e-6, "average off by {avg_err:e}, count by {count_err:e}");
    let e = sim.node(ids[3]).and_then(|n| n.aggregate("load")).expect("estimate");
    assert!((e.sum - sum).abs() < 1e-3 * sum, "{e:?}");
    // One node changes its value: a new epoch, and the estimates follow.
    sim.node_mut(ids[0]).expect("running").set_aggregate_value("load", Some(10_000.0)).expect("value");
    sim.run_for(Duration::from_secs(15));
    let (avg_err, _) = worst_error(&sim, &ids, (sum + 10_000.0) / count, count);
    assert!(avg_err < 1e-6, "after the change, average off by {avg_err:e}");
}

#[test]
fn under_twenty_percent_loss_the_average_stays_close() {
    let (mut sim, ids) = cluster(22, 100, NetConfig { loss: 0.2, ..NetConfig::default() });
    for (i, &id) in ids.iter().enumerate() {
        sim.node_mut(id).expect("running").set_aggregate_value("load", Some(i as f64)).expect("value");
    }
    sim.run_for(Duration::from_secs(60));
    let (avg_err, count_err) = worst_error(&sim, &ids, 49.5, 100.0);
    eprintln!("under 20% loss: average off by {avg_err:e}, count by {count_err:e}");
    assert!(avg_err < 0.05 && count_err < 0.05, "average off by {avg_err}, count by {count_err}");
}
