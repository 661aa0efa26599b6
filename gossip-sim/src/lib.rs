//! # gossip-sim — a deterministic discrete-event simulator for gossip-core
//!
//! Runs many real [`gossip_core::Node`]s over a simulated network, in virtual time, without
//! sockets. Every datagram goes through the real codec. The network injects
//! per-link latency (uniform between two bounds), loss, duplication, reordering and
//! partitions; nodes can crash, restart under a new generation, stall (their inputs and
//! timers are held back, as when a process is CPU-starved or paused by a GC) and run slow
//! (every datagram processed late, timers on time).
//!
//! Same seed, same calls: same trace, bit for bit, on any number of threads. Addresses are `u32` node ids, so memory
//! goes to the protocol, and 10,000 nodes fit in one process.
//!
//! Time advances in windows as long as the shortest link latency: nothing a node sends in a
//! window arrives before the window ends, so within one the nodes are independent and run in
//! parallel (rayon, on every core) when enough of them have work. Each node owns its event
//! queue and the randomness of what it sends, and events at the same instant are ordered by
//! sender and the sender's count, so results do not depend on the number of threads.
//!
//! [`scenarios`] holds the experiments behind `gossip sim` (join, failure, partition, stall,
//! churn, anti-entropy, CRDT, push-sum), and [`script`] the engine behind `gossip sim run`:
//! incidents written as TOML timelines of faults and checks.
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
use rayon::prelude::*;

/// Least work a window must be expected to hold to be spread over threads: waking the pool
/// and waiting for it costs tens of microseconds, and most windows of a small or quiet
/// simulation hold a few microseconds of work.
const PARALLEL_WORK: Duration = Duration::from_micros(400);

/// A simulated node's address.
pub type NodeId = u32;

/// The nodes of `ids` (sorted, distinct), each with its id, found in O(`ids`) steps.
fn busy_nodes<'a>(nodes: &'a mut [SimNode], ids: &[NodeId]) -> Vec<(NodeId, &'a mut SimNode)> {
    let mut busy = Vec::with_capacity(ids.len());
    let mut rest = nodes;
    let mut first_id = 0usize;
    for &id in ids {
        let Some(skip) = (id as usize).checked_sub(first_id) else { continue };
        let Some((node, tail)) = std::mem::take(&mut rest).get_mut(skip..).and_then(|r| r.split_first_mut()) else {
            break;
        };
        busy.push((id, node));
        rest = tail;
        first_id = id as usize + 1;
    }
    busy
}

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
    stalled_until: Option<Instant>,
    held: Vec<(NodeId, Vec<u8>)>,
    /// While slow: until when, and how late each input is processed.
    slow: Option<(Instant, Duration)>,
    /// When the last delayed input of a slow node is processed (keeps them in order).
    slow_last: Instant,
    /// Deadline a wake-up is scheduled for (later duplicates are ignored).
    wake_at: Option<Instant>,
    /// What happens to this node next.
    queue: BinaryHeap<Scheduled>,
    /// Randomness of the network for what this node sends (loss, latency, duplication).
    rng: ChaCha8Rng,
    /// Events this node has created: with its id, orders events at the same instant.
    created: u64,
    /// Datagrams sent in the current window, queued at their receivers when it ends.
    outbox: Vec<(NodeId, Scheduled)>,
    /// Events raised in the current window, when tracing.
    trace: Vec<TraceEntry>,
    /// Network counters of the current window.
    stats: NetStats,
}

/// An event in a node's queue: when, then who created it and its count there (an order that
/// does not depend on how the work was split over threads), then what.
type Scheduled = Reverse<(Instant, NodeId, u64, Action)>;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Deliver { from: NodeId, bytes: Vec<u8>, queued: bool },
    Wake,
    Join { seeds: Vec<NodeId> },
}

/// Which events a window covers: up to `end`, or up to and including it.
#[derive(Debug, Clone, Copy)]
struct Window {
    end: Instant,
    inclusive: bool,
}

impl Window {
    fn covers(self, at: Instant) -> bool {
        if self.inclusive {
            at <= self.end
        } else {
            at < self.end
        }
    }
}

/// What every node reads while the window runs.
struct Shared<'a> {
    start: Instant,
    net: &'a NetConfig,
    groups: &'a [u32],
    zones: &'a [Option<String>],
    tracing: bool,
}

/// The simulator. See the crate docs.
#[derive(Debug)]
pub struct Sim {
    start: Instant,
    now: Instant,
    seed: u64,
    net: NetConfig,
    nodes: Vec<SimNode>,
    /// Partition group per node (0: none).
    groups: Vec<u32>,
    /// Zone per node, for the cross-zone count.
    zones: Vec<Option<String>>,
    /// (time, node) for every node's next event, and stale entries (checked when taken).
    agenda: BinaryHeap<Reverse<(Instant, NodeId)>>,
    trace: Option<Vec<TraceEntry>>,
    stats: NetStats,
    /// Windows run on several threads so far.
    parallel_windows: u64,
    /// Recent CPU time one busy node takes in a window, in seconds (a moving average): what
    /// decides whether the next window is worth spreading over threads. (Timing steers only
    /// how the work is split, never its result.)
    node_window_s: f64,
}

impl Sim {
    /// An empty simulation. Events are recorded (see [`Sim::take_trace`]) unless turned off
    /// with [`Sim::record_trace`].
    pub fn new(seed: u64, net: NetConfig) -> Self {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            seed,
            net,
            nodes: Vec::new(),
            groups: Vec::new(),
            zones: Vec::new(),
            agenda: BinaryHeap::new(),
            trace: Some(Vec::new()),
            stats: NetStats::default(),
            parallel_windows: 0,
            node_window_s: 0.0,
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

    /// How many windows (spans of virtual time as long as the shortest latency) had enough
    /// busy nodes to run on several threads.
    pub fn parallel_windows(&self) -> u64 {
        self.parallel_windows
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
        let rng = ChaCha8Rng::seed_from_u64(self.node_seed(id, 0) ^ 0x6e65_7477_6f72_6b00);
        self.zones.push(config.zone.clone());
        self.groups.push(0);
        self.nodes.push(SimNode {
            name,
            config,
            generation,
            node: Some(node),
            seeds: Vec::new(),
            stalled_until: None,
            held: Vec::new(),
            slow: None,
            slow_last: self.now,
            wake_at: None,
            queue: BinaryHeap::new(),
            rng,
            created: 0,
            outbox: Vec::new(),
            trace: Vec::new(),
            stats: NetStats::default(),
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

    /// Makes `id` join through `seeds` at virtual instant `at` (now, if that has passed):
    /// many joins planned ahead run in parallel windows, where a join per call of
    /// [`Sim::run_for`] would cut time into slivers with little work each.
    pub fn join_at(&mut self, id: NodeId, seeds: &[NodeId], at: Instant) {
        let at = at.max(self.now);
        if let Some(n) = self.nodes.get_mut(id as usize) {
            n.schedule(id, at, Action::Join { seeds: seeds.to_vec() });
            self.agenda.push(Reverse((at, id)));
        }
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
            n.schedule(id, until, Action::Wake);
        }
        self.agenda.push(Reverse((until, id)));
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
        self.heal();
        for (g, ids) in groups.iter().enumerate() {
            for &id in ids.iter() {
                if let Some(group) = self.groups.get_mut(id as usize) {
                    *group = g as u32 + 1;
                }
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.groups.iter_mut().for_each(|g| *g = 0);
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
        let hop = self.net.latency_min;
        while let Some(t) = self.next_event_time().filter(|&t| t <= until) {
            // Nothing sent in this window arrives before it ends.
            let window = if hop.is_zero() {
                Window { end: t, inclusive: true }
            } else if t + hop > until {
                Window { end: until, inclusive: true }
            } else {
                Window { end: t + hop, inclusive: false }
            };
            let mut active = Vec::new();
            while let Some(&Reverse((at, id))) = self.agenda.peek() {
                if !window.covers(at) {
                    break;
                }
                self.agenda.pop();
                if self.next_of(id) == Some(at) {
                    active.push(id);
                }
            }
            active.sort_unstable();
            active.dedup();
            let expected = self.node_window_s * active.len() as f64;
            let parallel = active.len() >= 2 && expected >= PARALLEL_WORK.as_secs_f64();
            let timer = std::time::Instant::now();
            self.parallel_windows += u64::from(parallel);
            let (nodes, shared) = self.split();
            if parallel {
                busy_nodes(nodes, &active).into_par_iter().for_each(|(id, n)| n.run_window(id, window, &shared));
            } else {
                for &id in &active {
                    if let Some(n) = nodes.get_mut(id as usize) {
                        n.run_window(id, window, &shared);
                    }
                }
            }
            // CPU time per node: wall time, times the threads that shared it.
            let threads = if parallel { rayon::current_num_threads() as f64 } else { 1.0 };
            let per_node = timer.elapsed().as_secs_f64() * threads / active.len().max(1) as f64;
            self.node_window_s = 0.9 * self.node_window_s + 0.1 * per_node;
            self.now = self.now.max(t);
            self.settle(&active);
        }
        self.now = self.now.max(until);
    }

    /// Time of the earliest event of any node.
    fn next_event_time(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, id))) = self.agenda.peek() {
            if self.next_of(id) == Some(at) {
                return Some(at);
            }
            self.agenda.pop(); // stale: that event was taken, or an earlier one came
        }
        None
    }

    fn next_of(&self, id: NodeId) -> Option<Instant> {
        self.nodes.get(id as usize).and_then(|n| n.queue.peek()).map(|Reverse((at, ..))| *at)
    }

    /// After nodes ran: queues what they sent at the receivers, collects their events and
    /// counters, and notes their next events.
    fn settle(&mut self, ids: &[NodeId]) {
        let mut trace = Vec::new();
        for &id in ids {
            let Some(n) = self.nodes.get_mut(id as usize) else { continue };
            let outbox = std::mem::take(&mut n.outbox);
            trace.append(&mut n.trace);
            let stats = std::mem::take(&mut n.stats);
            self.stats.add(&stats);
            if let Some(at) = n.queue.peek().map(|Reverse((at, ..))| *at) {
                self.agenda.push(Reverse((at, id)));
            }
            for (to, event) in outbox {
                let at = event.0 .0;
                if let Some(dest) = self.nodes.get_mut(to as usize) {
                    dest.queue.push(event);
                    self.agenda.push(Reverse((at, to)));
                }
            }
        }
        if let Some(all) = self.trace.as_mut() {
            // Each node's events are in order; across nodes, order by time, then node.
            trace.sort_by_key(|e| (e.at, e.node));
            all.append(&mut trace);
        }
    }

    /// Collects a node's outputs and schedules its next wake-up (outside a window).
    fn after_input(&mut self, id: NodeId) {
        let now = self.now;
        let (nodes, shared) = self.split();
        if let Some(n) = nodes.get_mut(id as usize) {
            n.after_input(id, now, &shared);
        }
        self.settle(&[id]);
    }

    /// The nodes, apart from what they read while they run.
    fn split(&mut self) -> (&mut Vec<SimNode>, Shared<'_>) {
        let shared = Shared {
            start: self.start,
            net: &self.net,
            groups: &self.groups,
            zones: &self.zones,
            tracing: self.trace.is_some(),
        };
        (&mut self.nodes, shared)
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

    fn stalled(&self, id: NodeId) -> bool {
        self.nodes.get(id as usize).and_then(|n| n.stalled_until).is_some_and(|u| u > self.now)
    }

    /// Whether `observer` believes `name` is in `state`.
    pub fn sees(&self, observer: NodeId, name: &str, state: MemberState) -> bool {
        self.node(observer).and_then(|n| n.member(name)).is_some_and(|m| m.state == state)
    }
}

impl Drop for Sim {
    /// Frees the nodes on every core: at 10,000 nodes their tables hold gigabytes.
    fn drop(&mut self) {
        std::mem::take(&mut self.nodes).into_par_iter().for_each(drop);
    }
}

impl NetStats {
    fn add(&mut self, o: &NetStats) {
        self.sent += o.sent;
        self.bytes += o.bytes;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.blocked += o.blocked;
        self.cross_zone += o.cross_zone;
    }
}

impl SimNode {
    /// Queues an event for this node itself.
    fn schedule(&mut self, id: NodeId, at: Instant, action: Action) {
        self.created += 1;
        self.queue.push(Reverse((at, id, self.created, action)));
    }

    /// Runs this node's events that fall in `window`, in order.
    fn run_window(&mut self, id: NodeId, window: Window, shared: &Shared<'_>) {
        while let Some(Reverse((at, ..))) = self.queue.peek() {
            if !window.covers(*at) {
                break;
            }
            let Some(Reverse((at, _, _, action))) = self.queue.pop() else { break };
            match action {
                Action::Deliver { from, bytes, queued } => self.deliver(id, at, from, bytes, queued, shared),
                Action::Wake => self.wake(id, at, shared),
                Action::Join { seeds } => {
                    if let Some(node) = self.node.as_mut() {
                        node.join(at, seeds.clone());
                    }
                    self.seeds = seeds;
                    self.after_input(id, at, shared);
                }
            }
        }
    }

    fn deliver(&mut self, id: NodeId, now: Instant, from: NodeId, bytes: Vec<u8>, queued: bool, shared: &Shared<'_>) {
        if self.node.is_none() {
            self.stats.blocked += 1;
            return;
        }
        if let Some((until, max)) = self.slow {
            if until <= now {
                self.slow = None;
            } else if !queued {
                // A slow node reads its input late, in order: its socket queue is `delay` long.
                let at = (now + max).max(self.slow_last);
                self.slow_last = at;
                self.schedule(id, at, Action::Deliver { from, bytes, queued: true });
                return;
            }
        }
        if self.stalled_until.is_some_and(|u| u > now) {
            self.held.push((from, bytes));
            return;
        }
        self.stats.delivered += 1;
        if let Some(node) = self.node.as_mut() {
            let _ = node.handle_message(now, from, &bytes);
        }
        self.after_input(id, now, shared);
    }

    fn wake(&mut self, id: NodeId, now: Instant, shared: &Shared<'_>) {
        if self.stalled_until.is_some_and(|u| u > now) {
            return; // the stall's own wake-up comes later
        }
        if self.stalled_until.is_some() {
            // A starved process catches up: its overdue timers fire before it reads the
            // datagrams that piled up (so late acks look like missed ones, as in real stalls).
            self.stalled_until = None;
            let held = std::mem::take(&mut self.held);
            if let Some(node) = self.node.as_mut() {
                node.poll_timer(now);
                for (from, bytes) in held {
                    let _ = node.handle_message(now, from, &bytes);
                }
            }
        }
        self.wake_at = None;
        if let Some(node) = self.node.as_mut() {
            node.poll_timer(now);
        }
        self.after_input(id, now, shared);
    }

    /// Drains the node's transmits and events, and schedules its next timer.
    fn after_input(&mut self, id: NodeId, now: Instant, shared: &Shared<'_>) {
        let Some(node) = self.node.as_mut() else { return };
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        while let Some(event) = node.poll_event() {
            if shared.tracing {
                self.trace.push(TraceEntry { at: now - shared.start, node: id, event });
            }
        }
        let next = node.next_deadline();
        let stalled = self.stalled_until.is_some_and(|u| u > now);
        if let Some(at) = next {
            if !stalled && self.wake_at.is_none_or(|w| at < w || w < now) {
                self.wake_at = Some(at);
                self.schedule(id, at.max(now), Action::Wake);
            }
        }
        for t in out {
            self.send(id, now, t.destination, t.contents, shared);
        }
    }

    fn send(&mut self, from: NodeId, now: Instant, to: NodeId, bytes: Vec<u8>, shared: &Shared<'_>) {
        self.stats.sent += 1;
        self.stats.bytes += bytes.len() as u64;
        let (Some(a), Some(b)) = (shared.groups.get(from as usize), shared.groups.get(to as usize)) else {
            self.stats.blocked += 1;
            return;
        };
        if shared.zones.get(from as usize) != shared.zones.get(to as usize) {
            self.stats.cross_zone += 1;
        }
        if a != b {
            self.stats.blocked += 1;
            return;
        }
        let net = shared.net;
        if net.loss > 0.0 && self.rng.random_bool(net.loss.min(1.0)) {
            self.stats.lost += 1;
            return;
        }
        if net.duplicate > 0.0 && self.rng.random_bool(net.duplicate.min(1.0)) {
            let at = now + self.delay(net);
            self.created += 1;
            let event =
                Reverse((at, from, self.created, Action::Deliver { from, bytes: bytes.clone(), queued: false }));
            self.outbox.push((to, event));
        }
        let at = now + self.delay(net);
        self.created += 1;
        self.outbox.push((to, Reverse((at, from, self.created, Action::Deliver { from, bytes, queued: false }))));
    }

    /// One datagram's latency, plus a reordering delay now and then.
    fn delay(&mut self, net: &NetConfig) -> Duration {
        let (lo, hi) = (net.latency_min, net.latency_max);
        let mut delay = if hi <= lo { lo } else { lo + (hi - lo).mul_f64(self.rng.random::<f64>()) };
        if net.reorder > 0.0 && self.rng.random_bool(net.reorder.min(1.0)) {
            delay += net.reorder_delay.mul_f64(self.rng.random::<f64>());
        }
        delay
    }
}
