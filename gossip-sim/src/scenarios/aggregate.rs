//! The push-sum scenario.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{mean_sd, Common};

/// Result of `gossip sim pushsum`.
#[derive(Debug, Clone, Serialize)]
pub struct PushSumResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Nodes.
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Share loss probability.
    pub loss: f64,
    /// Whether the total mass (weight, sum, count) stayed equal to what the nodes started
    /// with after every round of every run, to 1e-9 relative (only without loss).
    pub mass_conserved: bool,
    /// Rounds until every node's average is within 1e-6 of the true average (relative),
    /// mean over runs (NaN if never within `--limit-rounds`).
    #[serde(rename = "rounds_to_1e-6")]
    pub rounds_to_1e_6: f64,
    /// Slowest run.
    pub rounds_to_1e_6_max: f64,
    /// Kempe et al.'s bound for comparison: log2(N) + log2(1 / 1e-6).
    pub kempe_log_n_plus_log_inv_eps: f64,
    /// After the last round: worst relative error of a node's average.
    pub final_average_error: f64,
    /// After the last round: worst relative error of a node's sum estimate (its mean times N).
    pub final_sum_error: f64,
    /// Fraction of the initial weight still in the system after the last round.
    pub weight_left: f64,
    /// Rounds run.
    pub rounds: usize,
    /// Wall-clock seconds.
    pub wall_s: f64,
}

/// `gossip sim pushsum`: Kempe et al.'s model in synchronous rounds, with the core's
/// [`gossip_core::aggregate::PushSum`]: every node contributes a random value in [0, 100),
/// every round sends half its mass to one uniformly random other node, and a share is lost
/// with probability `loss`. Scales to millions of nodes (no membership layer involved).
pub fn pushsum(common: &Common, rounds: usize, mut progress: impl FnMut(usize)) -> PushSumResult {
    use gossip_core::aggregate::PushSum;
    let wall = Instant::now();
    let n = common.nodes.max(2);
    let (mut conserved, mut hit) = (true, Vec::new());
    let (mut avg_err, mut sum_err, mut weight_left) = (0.0f64, 0.0f64, 1.0f64);
    for run in 0..common.runs {
        let mut rng = ChaCha8Rng::seed_from_u64(common.seed.wrapping_add(run as u64));
        let values: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..100.0)).collect();
        let true_sum: f64 = values.iter().sum();
        let true_avg = true_sum / n as f64;
        let mut nodes: Vec<PushSum> = values.iter().map(|&v| PushSum::new(Some(v), 0)).collect();
        let total = |nodes: &[PushSum]| {
            nodes.iter().fold((0.0, 0.0, 0.0), |t, p| {
                let m = p.mass();
                (t.0 + m.sum, t.1 + m.count, t.2 + m.weight)
            })
        };
        let start = total(&nodes);
        let mut reached = None;
        let mut inbox: Vec<(usize, u64, gossip_core::aggregate::Mass)> = Vec::with_capacity(n);
        for round in 1..=rounds {
            inbox.clear();
            for (i, node) in nodes.iter_mut().enumerate() {
                let (epoch, share) = node.round();
                let mut to = rng.random_range(0..n - 1);
                if to >= i {
                    to += 1;
                }
                if common.loss == 0.0 || !rng.random_bool(common.loss) {
                    inbox.push((to, epoch, share));
                }
            }
            for &(to, epoch, share) in &inbox {
                nodes[to].receive(epoch, share);
            }
            if common.loss == 0.0 {
                let now = total(&nodes);
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
                conserved &= close(now.0, start.0) && close(now.1, start.1) && close(now.2, start.2);
            }
            if reached.is_none() {
                let worst = nodes
                    .iter()
                    .map(|p| p.estimate().map_or(f64::INFINITY, |e| ((e.average - true_avg) / true_avg).abs()))
                    .fold(0.0f64, f64::max);
                if worst <= 1e-6 {
                    reached = Some(round);
                }
            }
        }
        if let Some(r) = reached {
            hit.push(r as f64);
        }
        for p in &nodes {
            if let Some(e) = p.estimate() {
                avg_err = avg_err.max(((e.average - true_avg) / true_avg).abs());
                sum_err = sum_err.max(((e.mean * n as f64 - true_sum) / true_sum).abs());
            }
        }
        weight_left = weight_left.min(total(&nodes).2 / start.2);
        progress(run + 1);
    }
    PushSumResult {
        scenario: "pushsum",
        nodes: n,
        runs: common.runs,
        loss: common.loss,
        mass_conserved: conserved && common.loss == 0.0,
        rounds_to_1e_6: if hit.len() == common.runs { mean_sd(&hit).0 } else { f64::NAN },
        rounds_to_1e_6_max: hit.iter().copied().fold(f64::NAN, f64::max),
        kempe_log_n_plus_log_inv_eps: (n as f64).log2() + (1e6f64).log2(),
        final_average_error: avg_err,
        final_sum_error: sum_err,
        weight_left,
        rounds,
        wall_s: wall.elapsed().as_secs_f64(),
    }
}
