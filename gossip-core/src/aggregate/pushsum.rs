//! Push-sum (Kempe, Dobra, Gehrke 2003) for one named aggregate, as a pure state machine.
//!
//! Each node holds a mass: a sum `s` of the values it contributes, a count `c` of
//! contributors, and a weight `w`, 1 at every node when an epoch starts. Every round it keeps
//! half and sends half to one random member; on receipt the shares add up. Mass is conserved
//! (what is sent is added on receipt), so at every node `s / w` converges to the mean of the
//! contributions over all N nodes and `c / w` to the fraction that contribute; the average
//! is `s / c`, and N times them gives the sum and count. A message lost loses its mass.
//!
//! Epochs restart the computation so that results track the cluster: a node that changes its
//! value or sees membership change moves to the next epoch, and a share of a newer epoch
//! restarts its receiver in that epoch (shares of older epochs are dropped).

use serde::{Deserialize, Serialize};

/// Furthest ahead of this node's epoch a share may be. Epochs advance one at a time (a
/// membership change, or `aggregate_epoch_rounds` rounds), so a node back from a long
/// partition is behind by thousands at most; a forger needs about 10^8 datagrams (of some 40
/// shares each) to push an epoch to `u64::MAX`. A node new to an aggregate counts from 0.
pub const MAX_EPOCH_JUMP: u64 = 1 << 32;

/// Largest weight a share may carry: the most members a node may hold (see
/// [`crate::Config::max_members`]).
const MAX_WEIGHT: f64 = (1u64 << 24) as f64;

/// What one node holds of one aggregate in the current epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mass {
    /// Sum of the contributed values.
    pub sum: f64,
    /// Number of contributors.
    pub count: f64,
    /// Weight: 1 per node when an epoch starts, so the cluster's size in total.
    pub weight: f64,
}

impl Mass {
    const ZERO: Mass = Mass { sum: 0.0, count: 0.0, weight: 0.0 };

    fn half(self) -> Mass {
        Mass { sum: self.sum / 2.0, count: self.count / 2.0, weight: self.weight / 2.0 }
    }

    fn add(&mut self, other: Mass) {
        self.sum += other.sum;
        self.count += other.count;
        self.weight += other.weight;
    }

    /// Whether a peer could have sent this: finite, a weight no larger than a cluster's
    /// (one per member), and a count between 0 and the weight (each node starts with a count
    /// of 0 or 1 and a weight of 1, and halving and adding, rounded alike, keep the order).
    /// A negative weight could cancel the cluster's and make every estimate divide by almost
    /// nothing.
    fn is_plausible(&self) -> bool {
        self.sum.is_finite() && (0.0..=self.weight).contains(&self.count) && self.weight <= MAX_WEIGHT
    }
}

/// One node's push-sum state for one aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct PushSum {
    /// This node's own value, if it contributes one.
    value: Option<f64>,
    epoch: u64,
    mass: Mass,
    /// Rounds run in this epoch.
    rounds: u32,
    /// The mass held when the previous epoch ended here, and its rounds: estimates to show
    /// while the new epoch is young.
    previous: Option<(Mass, u32)>,
}

/// The current estimates at one node, per node of the cluster (multiply the first two by
/// N for the sum and the count).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Mean contribution over all nodes (non-contributors count as 0).
    pub mean: f64,
    /// Fraction of nodes that contribute.
    pub fraction: f64,
    /// Average over the contributors.
    pub average: f64,
    /// The epoch these come from.
    pub epoch: u64,
    /// Rounds this node has run in the epoch.
    pub rounds: u32,
}

impl PushSum {
    /// A node's state, contributing `value` (or only relaying mass), in `epoch`.
    pub fn new(value: Option<f64>, epoch: u64) -> Self {
        let mut p = PushSum { value, epoch, mass: Mass::ZERO, rounds: 0, previous: None };
        p.restart(epoch);
        p
    }

    fn restart(&mut self, epoch: u64) {
        if self.rounds > 0 {
            self.previous = Some((self.mass, self.rounds));
        }
        self.epoch = epoch;
        self.rounds = 0;
        self.mass =
            Mass { sum: self.value.unwrap_or(0.0), count: if self.value.is_some() { 1.0 } else { 0.0 }, weight: 1.0 };
    }

    /// The epoch in force here.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The mass held now.
    pub fn mass(&self) -> Mass {
        self.mass
    }

    /// This node's own value.
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// Changes this node's value and starts the next epoch. Returns the new epoch.
    pub fn set_value(&mut self, value: Option<f64>) -> u64 {
        self.value = value;
        self.restart(self.epoch.saturating_add(1));
        self.epoch
    }

    /// Rounds run in the epoch.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// The mass to estimate from, with its rounds: the current epoch's, unless it has run
    /// fewer than `settle` rounds here and the previous epoch had run at least that many.
    pub fn settled_mass(&self, settle: u32) -> (Mass, u32) {
        match self.previous {
            Some(previous) if self.rounds < settle && previous.1 >= settle => previous,
            _ => (self.mass, self.rounds),
        }
    }

    /// Starts the next epoch (membership changed). Returns it.
    pub fn next_epoch(&mut self) -> u64 {
        self.restart(self.epoch.saturating_add(1));
        self.epoch
    }

    /// One round: the half of the mass to send to a random member (this node keeps the
    /// other half).
    pub fn round(&mut self) -> (u64, Mass) {
        let share = self.mass.half();
        self.mass = share;
        self.rounds = self.rounds.saturating_add(1);
        (self.epoch, share)
    }

    /// A share from a peer: added if of this epoch, restarting here first if of a newer one,
    /// dropped if older, implausible (see `Mass::is_plausible`), or further ahead than
    /// [`MAX_EPOCH_JUMP`] (a forged epoch near `u64::MAX` would otherwise wedge every node
    /// that takes it for good). Returns whether it was taken.
    pub fn receive(&mut self, epoch: u64, share: Mass) -> bool {
        if epoch < self.epoch || epoch - self.epoch > MAX_EPOCH_JUMP || !share.is_plausible() {
            return false;
        }
        if epoch > self.epoch {
            self.restart(epoch);
        }
        self.mass.add(share);
        true
    }

    /// The estimates, once this node holds some weight.
    pub fn estimate(&self) -> Option<Estimate> {
        let m = self.mass;
        (m.weight > 0.0).then(|| Estimate {
            mean: m.sum / m.weight,
            fraction: m.count / m.weight,
            average: if m.count > 0.0 { m.sum / m.count } else { f64::NAN },
            epoch: self.epoch,
            rounds: self.rounds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_a_forged_far_epoch_is_dropped_and_epochs_never_wrap() {
        let mut a = PushSum::new(Some(1.0), 5);
        let (_, share) = PushSum::new(Some(2.0), 0).round();
        assert!(!a.receive(u64::MAX, share), "far ahead: forged");
        assert_eq!(a.epoch(), 5);
        assert!(a.receive(5 + MAX_EPOCH_JUMP, share), "a long partition's worth is taken");
        let mut last = PushSum::new(None, u64::MAX);
        assert_eq!(last.next_epoch(), u64::MAX, "saturates instead of wrapping to 0");
    }

    #[test]
    fn two_nodes_exchange_to_the_exact_figures() {
        let mut a = PushSum::new(Some(10.0), 0);
        let mut b = PushSum::new(None, 0);
        for _ in 0..60 {
            let (e, to_b) = a.round();
            let (f, to_a) = b.round();
            assert!(b.receive(e, to_b) && a.receive(f, to_a));
        }
        for est in [a.estimate().expect("weight"), b.estimate().expect("weight")] {
            // Two nodes, one contributing 10: mean 5, half contribute, average 10.
            assert!((est.mean - 5.0).abs() < 1e-9 && (est.fraction - 0.5).abs() < 1e-9);
            assert!((est.average - 10.0).abs() < 1e-9);
        }
        let total = a.mass().weight + b.mass().weight;
        assert!((total - 2.0).abs() < 1e-12, "mass conserved: {total}");
    }

    #[test]
    fn a_newer_epoch_restarts_and_an_older_one_is_dropped() {
        let mut a = PushSum::new(Some(1.0), 3);
        assert!(!a.receive(2, Mass { sum: 5.0, count: 0.5, weight: 0.5 }));
        assert!(a.receive(4, Mass { sum: 5.0, count: 0.5, weight: 0.5 }));
        assert_eq!(a.epoch(), 4);
        assert_eq!(a.mass(), Mass { sum: 6.0, count: 1.5, weight: 1.5 });
        assert!(!a.receive(4, Mass { sum: f64::NAN, count: 0.0, weight: 0.0 }));
        for forged in [
            Mass { sum: 1.0, count: 0.0, weight: -1.5 },
            Mass { sum: 1.0, count: -1.0, weight: 1.0 },
            Mass { sum: 1.0, count: 2.0, weight: 1.0 },
            Mass { sum: 1.0, count: 0.0, weight: 1e30 },
            Mass { sum: 1.0, count: 0.0, weight: f64::INFINITY },
        ] {
            assert!(!a.receive(4, forged), "{forged:?}");
        }
    }
}
