//! Push-sum conserves mass every round without loss, and converges to the true figures.

use gossip_core::aggregate::{Mass, PushSum};
use proptest::prelude::*;

fn total(nodes: &[PushSum]) -> (f64, f64, f64) {
    nodes.iter().map(PushSum::mass).fold((0.0, 0.0, 0.0), |t, m: Mass| (t.0 + m.sum, t.1 + m.count, t.2 + m.weight))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mass_is_conserved_every_round_and_every_node_converges(
        values in proptest::collection::vec(proptest::option::of(-1000.0f64..1000.0), 2..60),
        targets in proptest::collection::vec(any::<u32>(), 200 * 60),
    ) {
        let n = values.len();
        let mut nodes: Vec<PushSum> = values.iter().map(|&v| PushSum::new(v, 0)).collect();
        let start = total(&nodes);
        let mut t = targets.iter();
        for _ in 0..200 {
            let shares: Vec<_> = (0..n).map(|i| {
                let to = (i + 1 + *t.next().unwrap_or(&0) as usize % (n - 1)) % n; // anyone but i
                (to, nodes[i].round())
            }).collect();
            for (to, (epoch, share)) in shares {
                prop_assert!(nodes[to].receive(epoch, share));
            }
            let now = total(&nodes);
            for (a, b) in [(now.0, start.0), (now.1, start.1), (now.2, start.2)] {
                prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "mass {a} != {b}");
            }
        }
        let contributing: Vec<f64> = values.iter().flatten().copied().collect();
        if let Some(average) = (!contributing.is_empty()).then(|| contributing.iter().sum::<f64>() / contributing.len() as f64) {
            for p in &nodes {
                let e = p.estimate().expect("every node holds weight");
                prop_assert!((e.average - average).abs() <= 1e-6 * average.abs().max(1.0), "{} vs {average}", e.average);
                prop_assert!((e.fraction * n as f64 - contributing.len() as f64).abs() < 1e-6);
            }
        }
    }
}
