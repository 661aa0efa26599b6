//! The experiments behind `gossip sim`: each runs the real core on the simulator by seed and
//! returns the figures DESIGN.md §5 names (plus a few more), ready to print as JSON.
//!
//! Every scenario takes [`Common`] options; `runs` independent runs use seeds `seed`,
//! `seed + 1`, … and the result aggregates them.
//!
//! - `membership`: join, failure, stall, partition, churn.
//! - `state`: anti-entropy of key/values, CRDT convergence.
//! - `aggregate`: push-sum.

use gossip_core::Config;

use crate::{NetConfig, NodeId, Sim};

mod aggregate;
mod membership;
mod state;

pub use aggregate::{pushsum, PushSumResult};
pub use membership::{
    churn, failure, join, partition, stall, ChurnResult, FailureResult, JoinResult, PartitionResult, StallResult,
};
pub use state::{antientropy, crdt, AntiEntropyResult, CrdtOptions, CrdtResult};

/// Options shared by every scenario.
#[derive(Debug, Clone)]
pub struct Common {
    /// Cluster size.
    pub nodes: usize,
    /// Independent runs.
    pub runs: usize,
    /// Seed of the first run.
    pub seed: u64,
    /// Datagram loss probability.
    pub loss: f64,
    /// Protocol configuration of every node.
    pub config: Config,
}

impl Common {
    fn net(&self) -> NetConfig {
        NetConfig { loss: self.loss, ..NetConfig::default() }
    }
}

/// Mean and sample standard deviation.
pub(crate) fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

pub(crate) fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) fn new_cluster(seed: u64, common: &Common, config: &Config) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, common.net());
    let ids = (0..common.nodes).map(|i| sim.add_node(format!("n{i}"), config.clone())).collect();
    (sim, ids)
}

/// [`new_cluster`] with signed self-state: node `i` signs with a key derived from `i` (for
/// measurement only: such keys are guessable).
pub(crate) fn new_signed_cluster(seed: u64, common: &Common, config: &Config) -> (Sim, Vec<NodeId>) {
    use gossip_core::wire::signing::{Keypair, Signing};
    let mut sim = Sim::new(seed, common.net());
    let ids = (0..common.nodes)
        .map(|i| {
            let mut secret = [0x5a; 32];
            secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let signing = Some(Signing::new(Keypair::from_secret(secret)));
            sim.add_node(format!("n{i}"), Config { signing, ..config.clone() })
        })
        .collect();
    (sim, ids)
}
