//! The node's periodic and one-shot timers, as a closed enum in a table.
//!
//! Per-member deadlines (suspicions, indirect-probe relays) live in ordered sets beside it;
//! `Node::poll_timer` fires whatever is due across all of them and reports the earliest
//! remaining deadline.

use std::time::Instant;

/// A node-wide timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The current probe's direct ping timed out: ask helpers.
    ProbeTimeout,
    /// Start of the next probe period.
    Probe,
    /// Next gossip round.
    Gossip,
    /// Next push-pull with a random member.
    PushPull,
    /// Next reconnection attempt with a member believed dead.
    Reconnect,
    /// Next join attempt while no seed has answered.
    Join,
    /// Next check for being alone (contact seeds again).
    Rejoin,
    /// Next sweep forgetting long-dead members.
    Reclaim,
    /// Next anti-entropy exchange of the key/value state.
    StateSync,
    /// Next push-sum round.
    Aggregate,
}

impl Timer {
    /// Firing order when several are due at once.
    pub const ALL: [Timer; 10] = [
        Timer::ProbeTimeout,
        Timer::Probe,
        Timer::Gossip,
        Timer::PushPull,
        Timer::Reconnect,
        Timer::Join,
        Timer::Rejoin,
        Timer::Reclaim,
        Timer::StateSync,
        Timer::Aggregate,
    ];
}

/// Deadlines of the node-wide timers.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; 10],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    /// Clears and returns true if `timer` is due at `now`.
    pub fn take_due(&mut self, timer: Timer, now: Instant) -> bool {
        match self.deadlines[timer as usize] {
            Some(at) if at <= now => {
                self.deadlines[timer as usize] = None;
                true
            }
            _ => false,
        }
    }

    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}
