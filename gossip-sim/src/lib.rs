//! # gossip-sim — a deterministic discrete-event simulator for gossip-core
//!
//! Runs many real [`gossip_core::Node`]s over a simulated network, in virtual time, without
//! sockets or threads. Every datagram goes through the real codec. The network injects
//! per-link latency (uniform between two bounds), loss, duplication, reordering and
//! partitions; nodes can crash, restart under a new generation, and stall (their inputs and
//! timers are held back, as when a process is CPU-starved or paused by a GC).
//!
//! Same seed, same calls: same trace, bit for bit. Addresses are `u32` node ids, so memory
//! goes to the protocol, and 10,000 nodes fit in one process.
//!
//! [`rumor`] is apart: Demers et al.'s rumor-mongering models in synchronous rounds, without
//! the core (one byte per node), for millions of nodes.
//!
//! ```
//! use std::time::Duration;
//! use gossip_core::Config;
//! use gossip_sim::{NetConfig, Sim};
//!
//! let mut sim = Sim::new(42, NetConfig::default());
//! let ids: Vec<_> = (0..20).map(|i| sim.add_node(format!("n{i}"), Config::lan())).collect();
//! for &id in &ids[1..] {
//!     sim.join(id, &[ids[0]]);
//! }
//! sim.run_for(Duration::from_secs(10));
//! assert!(sim.converged());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod rumor;
pub mod scenarios;
pub mod script;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use gossip_core::wire::{codec, Message};
use gossip_core::{Config, Event, Identity, MemberState, Node};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A simulated node's address.
pub type NodeId = u32;

/// Network behaviour. Probabilities apply per datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Shortest one-way latency.
    pub latency_min: Duration,
    /// Longest one-way latency (uniform in between).
    pub latency_max: Duration,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability a datagram is held back by up to `reorder_delay` extra, so that later
    /// datagrams overtake it.
    pub reorder: f64,
    /// Longest extra delay of a reordered datagram.
    pub reorder_delay: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency_min: Duration::from_micros(500),
            latency_max: Duration::from_millis(3),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(20),
        }
    }
}

/// An event a node raised, with when and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Virtual time since the start of the simulation.
    pub at: Duration,
    /// Node that raised it.
    pub node: NodeId,
    /// The event.
    pub event: Event<NodeId>,
}

/// Network counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams sent by nodes.
    pub sent: u64,
    /// Bytes sent by nodes.
    pub bytes: u64,
    /// Datagrams delivered (duplicates count twice).
    pub delivered: u64,
    /// Datagrams lost to random loss.
    pub lost: u64,
    /// Datagrams dropped by a partition or because the receiver was down.
    pub blocked: u64,
    /// Datagrams sent between nodes configured with different zones.
    pub cross_zone: u64,
}

#[derive(Debug)]
struct SimNode {
    name: String,
    config: Config,
    generation: u64,
    node: Option<Node<NodeId>>,
    seeds: Vec<NodeId>,
    group: u32,
    stalled_until: Option<Instant>,
    held: Vec<(NodeId, Vec<u8>)>,
    /// While slow: until when, and how late each input is processed.
    slow: Option<(Instant, Duration)>,
    /// When the last delayed input of a slow node is processed (keeps them in order).
    slow_last: Instant,
    /// Deadline a wake-up is scheduled for (later duplicates are ignored).
    wake_at: Option<Instant>,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Deliver { to: NodeId, from: NodeId, bytes: Vec<u8>, queued: bool },
    Wake { node: NodeId },
}

/// The simulator. See the crate docs.
#[derive(Debug)]
pub struct Sim {
    start: Instant,
    now: Instant,
    rng: ChaCha8Rng,
    seed: u64,
    net: NetConfig,
    nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(Instant, u64, Action)>>,
    seq: u64,
    trace: Option<Vec<TraceEntry>>,
    stats: NetStats,
}

impl Sim {
    /// An empty simulation. Events are recorded (see [`Sim::take_trace`]) unless turned off
    /// with [`Sim::record_trace`].
    pub fn new(seed: u64, net: NetConfig) -> Self {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            net,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            trace: Some(Vec::new()),
            stats: NetStats::default(),
        }
    }

    /// Turns event recording on or off (off saves memory for big runs).
    pub fn record_trace(&mut self, on: bool) {
        self.trace = if on { Some(self.trace.take().unwrap_or_default()) } else { None };
    }

    /// Takes the events recorded so far.
    pub fn take_trace(&mut self) -> Vec<TraceEntry> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The network's behaviour, to change loss or latency mid-run.
    pub fn net_mut(&mut self) -> &mut NetConfig {
        &mut self.net
    }

    /// Network counters.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Current virtual instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn node_seed(&self, id: NodeId, generation: u64) -> u64 {
        self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(u64::from(id) << 20).wrapping_add(generation)
    }

    /// Adds a node (generation 1), alone until it joins or is joined.
    ///
    /// # Panics
    /// If `config` or `name` is invalid: a simulation set-up error.
    pub fn add_node(&mut self, name: impl Into<String>, config: Config) -> NodeId {
        self.add_node_life(name, 1, config)
    }

    /// Adds a node at a new address with a given generation: a member restarted elsewhere.
    ///
    /// # Panics
    /// If `config` or `name` is invalid: a simulation set-up error.
    pub fn add_node_life(&mut self, name: impl Into<String>, generation: u64, config: Config) -> NodeId {
        let id = self.nodes.len() as NodeId;
        let name = name.into();
        let node = Node::new(
            config.clone(),
            Identity { name: name.clone(), addr: id, generation },
            self.node_seed(id, generation),
            self.now,
        )
        .unwrap_or_else(|e| panic!("simulation set-up: {e}"));
        self.nodes.push(SimNode {
            name,
            config,
            generation,
            node: Some(node),
            seeds: Vec::new(),
            group: 0,
            stalled_until: None,
            held: Vec::new(),
            slow: None,
            slow_last: self.now,
            wake_at: None,
        });
        self.after_input(id);
        id
    }

    /// The node at `id`, if it is up.
    pub fn node(&self, id: NodeId) -> Option<&Node<NodeId>> {
        self.nodes.get(id as usize).and_then(|n| n.node.as_ref())
    }

    /// Mutable access to the node at `id`, if up. Call [`Sim::poke`] after changing it.
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node<NodeId>> {
        self.nodes.get_mut(id as usize).and_then(|n| n.node.as_mut())
    }

    /// Name of the node at `id`.
    pub fn name(&self, id: NodeId) -> &str {
        self.nodes.get(id as usize).map(|n| n.name.as_str()).unwrap_or("")
    }

    /// Whether the node is running (not crashed, not left).
    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_some_and(|n| !n.has_left())
    }

    /// Ids of running nodes.
    pub fn up_ids(&self) -> Vec<NodeId> {
        (0..self.nodes.len() as NodeId).filter(|&id| self.is_up(id)).collect()
    }

    /// Ids of nodes that are running, including nodes that left but were not stopped.
    pub fn running_ids(&self) -> Vec<NodeId> {
        (0..self.nodes.len() as NodeId).filter(|&id| self.node(id).is_some()).collect()
    }

    /// Collects a node's outputs and schedules its next wake-up after it was changed.
    pub fn poke(&mut self, id: NodeId) {
        self.after_input(id);
    }

    /// Makes `id` join through `seeds`.
    pub fn join(&mut self, id: NodeId, seeds: &[NodeId]) {
        let now = self.now;
        if let Some(n) = self.nodes.get_mut(id as usize) {
            n.seeds = seeds.to_vec();
            if let Some(node) = n.node.as_mut() {
                node.join(now, seeds.to_vec());
            }
        }
        self.after_input(id);
    }

    /// Makes `id` leave gracefully.
    pub fn leave(&mut self, id: NodeId) {
        let now = self.now;
        if let Some(node) = self.node_mut(id) {
            let _ = node.leave(now);
        }
        self.after_input(id);
    }

    /// Broadcasts a payload from `id`.
    pub fn broadcast(&mut self, id: NodeId, payload: Vec<u8>) -> Option<u64> {
        let now = self.now;
        let r = self.node_mut(id).and_then(|n| n.broadcast(now, payload).ok());
        self.after_input(id);
        r
    }

    /// Stops a node at once, without a leave; datagrams to it are dropped.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(id as usize) {
            n.node = None;
            n.held.clear();
            n.slow = None;
            n.stalled_until = None;
            n.wake_at = None;
        }
    }

    /// Restarts a crashed (or running) node under the next generation, same name and address,
    /// and joins it through its seeds again.
    pub fn restart(&mut self, id: NodeId) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(id as usize) else { return };
        n.generation += 1;
        n.held.clear();
        n.stalled_until = None;
        n.wake_at = None;
        let generation = n.generation;
        let (name, config, seeds) = (n.name.clone(), n.config.clone(), n.seeds.clone());
        let seed = self.node_seed(id, generation);
        let mut node = match Node::new(config, Identity { name, addr: id, generation }, seed, now) {
            Ok(node) => node,
            Err(_) => return,
        };
        node.join(now, seeds);
        self.nodes[id as usize].node = Some(node);
        self.after_input(id);
    }

    /// Holds back the node's inputs and timers for `duration` (a CPU stall or GC pause).
    pub fn stall(&mut self, id: NodeId, duration: Duration) {
        let until = self.now + duration;
        if let Some(n) = self.nodes.get_mut(id as usize) {
            if n.node.is_none() {
                return;
            }
            n.stalled_until = Some(n.stalled_until.map_or(until, |u| u.max(until)));
        }
        self.schedule(until, Action::Wake { node: id });
    }

    /// Makes the node slow for `duration`: every datagram it receives is processed `delay`
    /// late, in order, as when a CPU-starved process's socket queue backs up, while its timers
    /// stay on time. Acks then look missed, which is what Lifeguard's local health is for.
    pub fn slow_down(&mut self, id: NodeId, delay: Duration, duration: Duration) {
        let until = self.now + duration;
        if let Some(n) = self.nodes.get_mut(id as usize) {
            if n.node.is_some() {
                n.slow = Some((until, delay));
            }
        }
    }

    /// Whether the node is slow now.
    pub fn is_slow(&self, id: NodeId) -> bool {
        self.nodes.get(id as usize).and_then(|n| n.slow).is_some_and(|(u, _)| u > self.now)
    }

    /// Whether the node is in a stall now.
    pub fn is_stalled(&self, id: NodeId) -> bool {
        self.stalled(id)
    }

    /// Splits the network: nodes in different groups cannot reach each other. Nodes not
    /// listed go to group 0.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        for n in &mut self.nodes {
            n.group = 0;
        }
        for (g, ids) in groups.iter().enumerate() {
            for &id in ids.iter() {
                if let Some(n) = self.nodes.get_mut(id as usize) {
                    n.group = g as u32 + 1;
                }
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.group = 0;
        }
    }

    /// Gives every running node the full membership at once, as if it had long converged:
    /// each receives the records of all others through the real codec (a push-pull page).
    pub fn prime_converged(&mut self) {
        let records: Vec<_> = self.up_ids().iter().filter_map(|&id| self.node(id).map(|n| n.self_record())).collect();
        let label = self.nodes.first().map(|n| n.config.cluster_label.clone()).unwrap_or_default();
        let datagrams: Vec<Vec<u8>> = records
            .chunks(1000)
            .map(|chunk| {
                let page = Message::SyncPage { end: None, members: chunk.to_vec() };
                codec::encode_datagram(&label, "sim-primer", &[page])
            })
            .collect();
        let now = self.now;
        for id in self.up_ids() {
            if let Some(node) = self.node_mut(id) {
                for d in &datagrams {
                    let _ = node.handle_message(now, NodeId::MAX, d);
                }
                while node.poll_event().is_some() {}
                // The primer is not a real member: drop any answer meant for it.
                while node.poll_transmit().is_some() {}
            }
            self.after_input(id);
        }
    }

    /// Runs until virtual time `now + d`.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until virtual instant `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, _, action))) = self.queue.pop() else { break };
            self.now = self.now.max(at);
            match action {
                Action::Deliver { to, from, bytes, queued } => self.deliver(to, from, bytes, queued),
                Action::Wake { node } => self.wake(node),
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs in steps of `step` until `done` holds or `limit` passes; returns whether it held.
    pub fn run_until_cond(&mut self, step: Duration, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.now >= end {
                return false;
            }
            let next = (self.now + step).min(end);
            self.run_until(next);
        }
    }

    /// Whether every running node sees exactly the other running nodes as live members, each
    /// at its current generation and incarnation. O(N): compares membership digests.
    pub fn converged(&self) -> bool {
        let up = self.up_ids();
        let expected = up
            .iter()
            .filter_map(|&id| self.node(id).map(|n| n.self_record()))
            .fold(0u64, |acc, r| acc ^ gossip_core::record_hash(&r.name, r.generation, r.incarnation));
        up.iter().all(|&id| {
            self.node(id).is_some_and(|n| n.live_count() + 1 == up.len() && n.membership_digest() == expected)
        })
    }

    /// How many running nodes consider `name` dead or left (or have forgotten it).
    pub fn count_seeing_gone(&self, name: &str) -> usize {
        self.up_ids()
            .iter()
            .filter(|&&id| self.node(id).is_some_and(|n| n.member(name).is_none_or(|m| m.state.is_gone())))
            .count()
    }

    fn schedule(&mut self, at: Instant, action: Action) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, action)));
    }

    fn stalled(&self, id: NodeId) -> bool {
        self.nodes.get(id as usize).and_then(|n| n.stalled_until).is_some_and(|u| u > self.now)
    }

    fn deliver(&mut self, to: NodeId, from: NodeId, bytes: Vec<u8>, queued: bool) {
        let Some(n) = self.nodes.get_mut(to as usize) else { return };
        if n.node.is_none() {
            self.stats.blocked += 1;
            return;
        }
        if let Some((until, max)) = n.slow {
            if until <= self.now {
                n.slow = None;
            } else if !queued {
                // A slow node reads its input late, in order: its socket queue is `delay` long.
                let at = (self.now + max).max(n.slow_last);
                n.slow_last = at;
                self.schedule(at, Action::Deliver { to, from, bytes, queued: true });
                return;
            }
        }
        let Some(n) = self.nodes.get_mut(to as usize) else { return };
        if n.stalled_until.is_some_and(|u| u > self.now) {
            n.held.push((from, bytes));
            return;
        }
        self.stats.delivered += 1;
        let now = self.now;
        if let Some(node) = n.node.as_mut() {
            let _ = node.handle_message(now, from, &bytes);
        }
        self.after_input(to);
    }

    fn wake(&mut self, id: NodeId) {
        if self.stalled(id) {
            return; // the stall's own wake-up comes later
        }
        let now = self.now;
        let Some(n) = self.nodes.get_mut(id as usize) else { return };
        if n.stalled_until.is_some() {
            // A starved process catches up: its overdue timers fire before it reads the
            // datagrams that piled up (so late acks look like missed ones, as in real stalls).
            n.stalled_until = None;
            let held = std::mem::take(&mut n.held);
            if let Some(node) = n.node.as_mut() {
                node.poll_timer(now);
                for (from, bytes) in held {
                    let _ = node.handle_message(now, from, &bytes);
                }
            }
        }
        n.wake_at = None;
        if let Some(node) = n.node.as_mut() {
            node.poll_timer(now);
        }
        self.after_input(id);
    }

    /// Drains a node's transmits and events, and schedules its next timer.
    fn after_input(&mut self, id: NodeId) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(id as usize) else { return };
        let Some(node) = n.node.as_mut() else { return };
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        while let Some(event) = node.poll_event() {
            if let Some(trace) = self.trace.as_mut() {
                trace.push(TraceEntry { at: now - self.start, node: id, event });
            }
        }
        let next = node.next_deadline();
        let stalled = n.stalled_until.is_some_and(|u| u > now);
        if let Some(at) = next {
            if !stalled && n.wake_at.is_none_or(|w| at < w || w < now) {
                n.wake_at = Some(at);
                let at = at.max(now);
                self.schedule(at, Action::Wake { node: id });
            }
        }
        for t in out {
            self.send(id, t.destination, t.contents);
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, bytes: Vec<u8>) {
        self.stats.sent += 1;
        self.stats.bytes += bytes.len() as u64;
        let (Some(a), Some(b)) = (self.nodes.get(from as usize), self.nodes.get(to as usize)) else {
            self.stats.blocked += 1;
            return;
        };
        if a.config.zone != b.config.zone {
            self.stats.cross_zone += 1;
        }
        if a.group != b.group {
            self.stats.blocked += 1;
            return;
        }
        if self.net.loss > 0.0 && self.rng.random_bool(self.net.loss.min(1.0)) {
            self.stats.lost += 1;
            return;
        }
        if self.net.duplicate > 0.0 && self.rng.random_bool(self.net.duplicate.min(1.0)) {
            let delay = self.delay();
            self.schedule(self.now + delay, Action::Deliver { to, from, bytes: bytes.clone(), queued: false });
        }
        let delay = self.delay();
        self.schedule(self.now + delay, Action::Deliver { to, from, bytes, queued: false });
    }

    /// One datagram's latency, plus a reordering delay now and then.
    fn delay(&mut self) -> Duration {
        let mut delay = self.latency();
        if self.net.reorder > 0.0 && self.rng.random_bool(self.net.reorder.min(1.0)) {
            delay += self.net.reorder_delay.mul_f64(self.rng.random::<f64>());
        }
        delay
    }

    fn latency(&mut self) -> Duration {
        let (lo, hi) = (self.net.latency_min, self.net.latency_max);
        if hi <= lo {
            return lo;
        }
        lo + (hi - lo).mul_f64(self.rng.random::<f64>())
    }

    /// Whether `observer` believes `name` is in `state`.
    pub fn sees(&self, observer: NodeId, name: &str, state: MemberState) -> bool {
        self.node(observer).and_then(|n| n.member(name)).is_some_and(|m| m.state == state)
    }
}
