//! Aggregation: cluster-wide sum, count and average of a per-node value by push-sum.
//!
//! Each named aggregate runs [`pushsum::PushSum`] with every node starting an epoch at weight
//! 1, so that `sum / weight` is the mean over all nodes of what they contribute and
//! `count / weight` the fraction that contribute; the node's membership view gives N, which
//! turns them into the cluster's sum and count (no leader whose loss would lose the weight).
//! Every `aggregate_interval` a node sends half of every aggregate's mass to one random
//! member in one datagram (`PushSum`). A node that changes its value, or sees the number of
//! members change, starts the next epoch; shares of a newer epoch restart their receiver.
//!
//! Under loss, a lost share takes its mass with it: sum, count and weight shrink together,
//! so the estimates stay unbiased in expectation while their variance grows as the mass
//! drains (10 % per round at 20 % loss). So epochs also restart every
//! `aggregate_epoch_rounds` rounds, and estimates come from the last settled epoch.

pub mod pushsum;

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

pub use pushsum::{Estimate, Mass, PushSum};

use crate::error::CommandError;
use crate::membership::table::Address;
use crate::node::{Node, Outgoing};
use crate::wire::Message;

/// One aggregate's share in a `PushSum` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateShare {
    /// The aggregate's name.
    pub name: CompactString,
    /// The epoch the share belongs to.
    pub epoch: u64,
    /// Half of the sender's mass.
    pub mass: Mass,
}

/// The aggregates a node takes part in.
#[derive(Debug, Default)]
pub(crate) struct Aggregates {
    pub by_name: BTreeMap<CompactString, PushSum>,
    /// Members seen at the last round: a change starts the next epoch.
    pub members_seen: usize,
}

/// Cluster-wide figures of one aggregate as one node estimates them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AggregateEstimate {
    /// Sum of the values of the contributing nodes.
    pub sum: f64,
    /// Number of contributing nodes.
    pub count: f64,
    /// Their average.
    pub average: f64,
    /// Epoch of the estimate.
    pub epoch: u64,
    /// Rounds run in this epoch.
    pub rounds: u32,
}

fn valid_aggregate_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && !name.chars().any(char::is_control)
}

impl<A: Address> Node<A> {
    /// Sets this node's value in aggregate `name` (created if new; `None`: stop
    /// contributing, keep relaying). Starts the aggregate's next epoch.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use gossip_core::{Config, Identity, Node};
    /// # let mut node = Node::new(Config::local(), Identity { name: "a".into(), addr: 1u32, generation: 1 }, 7, Instant::now()).expect("valid config");
    /// node.set_aggregate_value("load", Some(0.75))?;
    /// let alone = node.aggregate("load").expect("estimate");
    /// assert_eq!((alone.count, alone.average), (1.0, 0.75));
    /// # Ok::<(), gossip_core::CommandError>(())
    /// ```
    pub fn set_aggregate_value(&mut self, name: &str, value: Option<f64>) -> Result<(), CommandError> {
        if self.self_state == crate::wire::MemberState::Left {
            return Err(CommandError::Left);
        }
        if !valid_aggregate_name(name) {
            return Err(CommandError::BadAggregate(format!("name must be 1 to 128 bytes, got {}", name.len())));
        }
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(CommandError::BadAggregate("value must be finite".into()));
        }
        match self.aggregates.by_name.get_mut(name) {
            Some(p) => {
                p.set_value(value);
            }
            None => {
                if self.aggregates.by_name.len() >= self.config.max_aggregates {
                    return Err(CommandError::BadAggregate(format!(
                        "too many aggregates (limit {})",
                        self.config.max_aggregates
                    )));
                }
                self.aggregates.by_name.insert(name.into(), PushSum::new(value, 0));
            }
        }
        Ok(())
    }

    /// This node's estimate of aggregate `name`: sum, count and average over the nodes that
    /// contribute a value. `None` if the node knows no such aggregate.
    ///
    /// While an epoch is younger than half of `aggregate_epoch_rounds` here, the estimate is
    /// the previous epoch's final one (a fresh epoch has not mixed yet).
    pub fn aggregate(&self, name: &str) -> Option<AggregateEstimate> {
        let p = self.aggregates.by_name.get(name)?;
        let (m, rounds) = p.settled_mass(self.config.aggregate_epoch_rounds / 2);
        let nodes = (self.members.live_count() + 1) as f64;
        (m.weight > 0.0).then(|| AggregateEstimate {
            sum: m.sum / m.weight * nodes,
            count: m.count / m.weight * nodes,
            average: if m.count > 0.0 { m.sum / m.count } else { f64::NAN },
            epoch: p.epoch(),
            rounds,
        })
    }

    /// The names of the aggregates this node takes part in.
    pub fn aggregates(&self) -> impl Iterator<Item = &str> + '_ {
        self.aggregates.by_name.keys().map(CompactString::as_str)
    }

    /// A push-sum round: half of every aggregate's mass to one random member.
    pub(crate) fn aggregate_tick(&mut self) {
        if self.aggregates.by_name.is_empty() {
            return;
        }
        let members = self.members.live_count();
        if members != self.aggregates.members_seen {
            self.aggregates.members_seen = members;
            for p in self.aggregates.by_name.values_mut() {
                p.next_epoch();
            }
        }
        let Some(slot) = self.pick_members(1, None).into_iter().next() else { return };
        let Some(dest) = self.members.get(slot).map(|m| m.addr.clone()) else { return };
        let room = self.state_room();
        let mut shares = Vec::new();
        let mut used = 0;
        let epoch_rounds = self.config.aggregate_epoch_rounds;
        for (name, p) in self.aggregates.by_name.iter_mut() {
            if p.rounds() >= epoch_rounds {
                // Lost shares drain the mass: start over now and then (the first node to get
                // here starts the next epoch for everyone).
                p.next_epoch();
            }
            let (epoch, mass) = p.round();
            let share = AggregateShare { name: name.clone(), epoch, mass };
            let size = crate::wire::codec::encoded_len(&share);
            if used + size > room && !shares.is_empty() {
                let message = Message::PushSum { shares: std::mem::take(&mut shares) };
                self.outbox.push_back(Outgoing { dest: dest.clone(), messages: vec![message], piggyback: true });
                used = 0;
            }
            used += size;
            shares.push(share);
        }
        if !shares.is_empty() {
            let message = Message::PushSum { shares };
            self.outbox.push_back(Outgoing { dest, messages: vec![message], piggyback: true });
        }
    }

    pub(crate) fn on_push_sum(&mut self, shares: Vec<AggregateShare>) {
        for share in shares {
            if !valid_aggregate_name(&share.name) {
                self.metrics.aggregate_refused += 1;
                continue;
            }
            let limit = self.config.max_aggregates;
            let count = self.aggregates.by_name.len();
            let p = match self.aggregates.by_name.entry(share.name) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    // A new aggregate starts from epoch 0 as far as the jump bound goes: a forged
                    // epoch must not create it stuck at `u64::MAX`.
                    if count >= limit || share.epoch > pushsum::MAX_EPOCH_JUMP {
                        self.metrics.aggregate_refused += 1;
                        continue;
                    }
                    // Relays mass without contributing.
                    e.insert(PushSum::new(None, share.epoch))
                }
            };
            if !p.receive(share.epoch, share.mass) {
                self.metrics.aggregate_refused += 1;
            }
        }
    }
}
