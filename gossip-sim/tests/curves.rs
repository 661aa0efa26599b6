//! The time curves `gossip sim antientropy` and `gossip sim crdt` plot: in range, in time
//! order, rising to everyone up to date; and kept out of the JSON.

use std::time::Duration;

use gossip_core::Config;
use gossip_sim::scenarios::{self, Common};

fn common(nodes: usize, loss: f64) -> Common {
    Common { nodes, runs: 1, seed: 3, loss, config: Config::lan() }
}

fn well_formed(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let points: Vec<(f64, f64)> = points.collect();
    assert!(points.len() >= 3, "{points:?}");
    assert!(points.windows(2).all(|w| w[0].0 <= w[1].0), "time goes forward: {points:?}");
    assert!(points.iter().all(|p| (0.0..=1.0).contains(&p.1)), "fractions: {points:?}");
    points
}

#[test]
fn antientropy_curve_rises_and_ends_in_sync() {
    let r = scenarios::antientropy(&common(20, 0.0), 20, 5, 5.0, Duration::from_secs(10), |_| {});
    assert!(r.converged);
    let nodes = well_formed(r.curve.iter().map(|c| (c.0, c.1)));
    let replicas = well_formed(r.curve.iter().map(|c| (c.0, c.2)));
    assert!(nodes[0].1 < 1.0 && replicas[0].1 < 1.0, "not everywhere at once: {:?}", r.curve.first());
    assert_eq!(nodes.last().map(|p| p.1), Some(1.0));
    assert_eq!(replicas.last().map(|p| p.1), Some(1.0));
    let (from, to) = r.updates_window_s;
    assert!(0.0 < from && from < to, "{:?}", r.updates_window_s);
    let json = serde_json::to_string(&r).expect("serializes");
    assert!(!json.contains("curve") && !json.contains("updates_window"), "{json}");
}

#[test]
fn crdt_curve_ends_with_every_replica_settled() {
    let r = scenarios::crdt(
        &common(30, 0.1),
        scenarios::CrdtOptions { ops_per_node: 3, with_set: true, join_first: false, steady: None, signed: false },
        |_| {},
    );
    assert!(r.exact);
    let counter = well_formed(r.curve.iter().map(|c| (c.0, c.1)));
    let set = well_formed(r.curve.iter().map(|c| (c.0, c.2)));
    assert_eq!(counter[0], (0.0, 0.0));
    assert!(counter.windows(2).all(|w| w[0].1 <= w[1].1), "settling only grows: {counter:?}");
    assert_eq!(counter.last().map(|p| p.1), Some(1.0));
    assert_eq!(set.last().map(|p| p.1), Some(1.0));
    let json = serde_json::to_string(&r).expect("serializes");
    assert!(!json.contains("curve"), "{json}");
}
