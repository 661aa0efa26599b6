//! Scripted scenarios: the engine behind `gossip sim run FILE.toml`.
//!
//! A script is a small TOML file that replays an incident on the simulator so that it can be
//! shared and rerun: the cluster (size, seed, preset, a few protocol settings, the network),
//! a timeline of faults, and checks of what the cluster should look like at given moments.
//! Same file, same result, bit for bit.
//!
//! ```toml
//! description = "a 50/50 split for a minute, then healed"
//! nodes = 20
//! seed = 7
//! preset = "lan"                 # lan | wan | local
//!
//! [config]                       # optional overrides of the preset
//! suspicion_mult = 2
//!
//! [network]                      # optional; defaults: no loss, 0.5-3 ms one way
//! loss = 0.01
//!
//! [[event]]
//! at = 10                        # virtual seconds since the start
//! do = "partition"
//! groups = ["0-9", "10-19"]      # node indices: 3, "3-7", or a list of those
//!
//! [[event]]
//! at = 70
//! do = "heal"
//!
//! [[check]]
//! at = 70
//! expect = "dead_declared"       # the other side considers these gone
//! nodes = "10-19"
//! by = "0-9"
//!
//! [[check]]
//! at = 70
//! expect = "converged"           # every running node sees exactly the running nodes
//! within = 30                    # ... at some moment between 70 s and 100 s
//! ```
//!
//! Top-level keys: `nodes` (required), `seed` (default 1), `runs` (default 1; runs use seeds
//! `seed`, `seed + 1`, …; `gossip sim run --seed --runs` replace both), `preset`, `description`, `start` (`"converged"`, the default: the
//! cluster starts with a full view everywhere; or `"join"`: nodes join through the seeds during
//! the first second), `seeds` (default node 0: whom joining and restarted nodes contact),
//! `late` (nodes that exist only from their `join` event on), `duration_s` (default: the last
//! event or check).
//!
//! `[config]`: `probe_interval_ms`, `probe_timeout_ms`, `indirect_checks`, `suspicion_mult`,
//! `suspicion_max_timeout_mult`, `gossip_interval_ms`, `gossip_fanout`, `retransmit_mult`,
//! `push_pull_interval_s` (0: off), `awareness_max_multiplier`, `lifeguard` (true / false).
//!
//! `[network]` and the `network` event: `loss`, `duplicate`, `reorder` (probabilities per
//! datagram) and `latency_ms = [min, max]` (one way, uniform in between).
//!
//! Events (`[[event]]`, in time order; events at the same time apply in file order): `network`,
//! `partition` (`groups`: nodes in different groups cannot reach each other; nodes listed in
//! no group form one more group), `heal`, `crash`, `restart` (a new generation, rejoining
//! through the seeds), `leave` (graceful), `join` (a `late` node starts), `stall` (`for_s`: the
//! node's CPU is stalled, inputs and timers held back), `slow` (`delay_ms`, `for_s`: every
//! datagram is processed that late, timers on time). Events naming nodes take `nodes` (or
//! `node`).
//!
//! Checks (`[[check]]`, in time order): `converged`, `dead_declared` (`nodes` are dead or left
//! for every other running node, or for those of them listed in `by`), `alive` (`nodes` seen
//! alive at their current generation by every other running node, or by `by`),
//! `no_false_dead` (no running member declared dead so far, or `since` a time; members cut off
//! by a partition are alive, so their removal counts), `members_seen` (`min` and/or `max` live
//! members, itself included, in the view of every running node, or of `by`). A check holds
//! or not at its `at`; with `within = S` it passes at the first moment it holds in the next
//! `S` seconds. A check at the same time as an event sees the cluster just before the event.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use gossip_core::{Config, Event, MemberState};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::{NetConfig, NodeId, Sim};

/// Largest cluster a script may ask for.
pub const MAX_NODES: usize = 10_000;
/// Most runs a script may ask for.
pub const MAX_RUNS: usize = 1_000;
/// Latest virtual time a script may name, in seconds (one day).
pub const MAX_TIME_S: f64 = 86_400.0;

/// How often checks with a window are evaluated and the curve is sampled, at most.
const STEP: Duration = Duration::from_millis(100);

/// Why a script was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// Not valid TOML, or not the expected shape (unknown field, wrong type, …).
    Parse(String),
    /// Well-formed, but impossible (a node out of range, times out of order, …).
    Invalid(String),
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptError::Parse(m) => write!(f, "{}", m.trim_end()),
            ScriptError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ScriptError {}

fn invalid(message: impl Into<String>) -> ScriptError {
    ScriptError::Invalid(message.into())
}

// ----- the file, as written ---------------------------------------------------------------

/// Node indices as written: `3`, `"3-7"`, or a list of those (inclusive ranges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NodeSet(Vec<(i64, i64)>);

impl<'de> Deserialize<'de> for NodeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeSetVisitor)
    }
}

struct NodeSetVisitor;

impl<'de> Visitor<'de> for NodeSetVisitor {
    type Value = NodeSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node index (3), a range of indices (\"3-7\"), or a list of those")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeSet, E> {
        Ok(NodeSet(vec![(v, v)]))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeSet, E> {
        let v = i64::try_from(v).map_err(|_| E::custom(format!("node index {v} is too large")))?;
        Ok(NodeSet(vec![(v, v)]))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeSet, E> {
        let bad = || E::custom(format!("`{v}` is not a node index or a range like \"3-7\""));
        let parse = |s: &str| s.trim().parse::<i64>().map_err(|_| bad());
        match v.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b {
                    return Err(E::custom(format!("range \"{v}\" is empty: write the lower index first")));
                }
                Ok(NodeSet(vec![(a, b)]))
            }
            None => {
                let a = parse(v)?;
                Ok(NodeSet(vec![(a, a)]))
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeSet, A::Error> {
        let mut all = Vec::new();
        while let Some(NodeSet(part)) = seq.next_element::<NodeSet>()? {
            all.extend(part);
        }
        Ok(NodeSet(all))
    }
}

/// Protocol preset a script starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PresetName {
    #[default]
    Lan,
    Wan,
    Local,
}

/// How the cluster starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StartMode {
    /// Every (not late) node starts with the full membership, as a long-running cluster.
    #[default]
    Converged,
    /// Nodes join through the seeds, spread over the first second.
    Join,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    description: Option<String>,
    nodes: i64,
    #[serde(default = "one")]
    seed: u64,
    #[serde(default = "one_i64")]
    runs: i64,
    #[serde(default)]
    preset: PresetName,
    #[serde(default)]
    start: StartMode,
    seeds: Option<NodeSet>,
    late: Option<NodeSet>,
    duration_s: Option<f64>,
    #[serde(default)]
    config: ConfigSpec,
    #[serde(default)]
    network: NetSpec,
    #[serde(default, rename = "event")]
    events: Vec<EventSpec>,
    #[serde(default, rename = "check")]
    checks: Vec<CheckSpec>,
}

fn one() -> u64 {
    1
}

fn one_i64() -> i64 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSpec {
    probe_interval_ms: Option<u64>,
    probe_timeout_ms: Option<u64>,
    indirect_checks: Option<usize>,
    suspicion_mult: Option<u32>,
    suspicion_max_timeout_mult: Option<u32>,
    gossip_interval_ms: Option<u64>,
    gossip_fanout: Option<usize>,
    retransmit_mult: Option<u32>,
    push_pull_interval_s: Option<f64>,
    awareness_max_multiplier: Option<u32>,
    lifeguard: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetSpec {
    loss: Option<f64>,
    duplicate: Option<f64>,
    reorder: Option<f64>,
    latency_ms: Option<[f64; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetEventSpec {
    at: f64,
    loss: Option<f64>,
    duplicate: Option<f64>,
    reorder: Option<f64>,
    latency_ms: Option<[f64; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AtSpec {
    at: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionSpec {
    at: f64,
    groups: Vec<NodeSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesSpec {
    at: f64,
    #[serde(alias = "node")]
    nodes: NodeSet,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StallSpec {
    at: f64,
    #[serde(alias = "node")]
    nodes: NodeSet,
    for_s: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowSpec {
    at: f64,
    #[serde(alias = "node")]
    nodes: NodeSet,
    delay_ms: f64,
    for_s: f64,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
enum EventSpec {
    Network(NetEventSpec),
    Partition(PartitionSpec),
    Heal(AtSpec),
    Crash(NodesSpec),
    Restart(NodesSpec),
    Leave(NodesSpec),
    Join(NodesSpec),
    Stall(StallSpec),
    Slow(SlowSpec),
}

impl EventSpec {
    fn at(&self) -> f64 {
        match self {
            EventSpec::Network(e) => e.at,
            EventSpec::Partition(e) => e.at,
            EventSpec::Heal(e) => e.at,
            EventSpec::Crash(e) | EventSpec::Restart(e) | EventSpec::Leave(e) | EventSpec::Join(e) => e.at,
            EventSpec::Stall(e) => e.at,
            EventSpec::Slow(e) => e.at,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            EventSpec::Network(_) => "network",
            EventSpec::Partition(_) => "partition",
            EventSpec::Heal(_) => "heal",
            EventSpec::Crash(_) => "crash",
            EventSpec::Restart(_) => "restart",
            EventSpec::Leave(_) => "leave",
            EventSpec::Join(_) => "join",
            EventSpec::Stall(_) => "stall",
            EventSpec::Slow(_) => "slow",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowSpec {
    at: f64,
    within: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesCheckSpec {
    at: f64,
    within: Option<f64>,
    #[serde(alias = "node")]
    nodes: NodeSet,
    by: Option<NodeSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinceSpec {
    at: f64,
    since: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenSpec {
    at: f64,
    within: Option<f64>,
    min: Option<i64>,
    max: Option<i64>,
    by: Option<NodeSet>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "expect", rename_all = "snake_case")]
enum CheckSpec {
    Converged(WindowSpec),
    DeadDeclared(NodesCheckSpec),
    Alive(NodesCheckSpec),
    NoFalseDead(SinceSpec),
    MembersSeen(SeenSpec),
}

impl CheckSpec {
    fn at(&self) -> f64 {
        match self {
            CheckSpec::Converged(c) => c.at,
            CheckSpec::DeadDeclared(c) | CheckSpec::Alive(c) => c.at,
            CheckSpec::NoFalseDead(c) => c.at,
            CheckSpec::MembersSeen(c) => c.at,
        }
    }

    fn within(&self) -> Option<f64> {
        match self {
            CheckSpec::Converged(c) => c.within,
            CheckSpec::DeadDeclared(c) | CheckSpec::Alive(c) => c.within,
            CheckSpec::NoFalseDead(_) => None,
            CheckSpec::MembersSeen(c) => c.within,
        }
    }
}

// ----- the validated script -----------------------------------------------------------------

#[derive(Debug, Clone)]
enum Action {
    Network { loss: Option<f64>, duplicate: Option<f64>, reorder: Option<f64>, latency: Option<(Duration, Duration)> },
    Partition(Vec<Vec<usize>>),
    Heal,
    Crash(Vec<usize>),
    Restart(Vec<usize>),
    Leave(Vec<usize>),
    Join(Vec<usize>),
    Stall(Vec<usize>, Duration),
    Slow(Vec<usize>, Duration, Duration),
}

#[derive(Debug, Clone)]
enum CheckKind {
    Converged,
    DeadDeclared { nodes: Vec<usize>, by: Option<Vec<usize>> },
    Alive { nodes: Vec<usize>, by: Option<Vec<usize>> },
    NoFalseDead { since: Duration },
    MembersSeen { observers: Option<Vec<usize>>, min: Option<usize>, max: Option<usize> },
}

#[derive(Debug, Clone)]
struct Check {
    at: Duration,
    within: Duration,
    kind: CheckKind,
    label: String,
}

/// A validated script, ready to run: see the module docs for the file format.
#[derive(Debug, Clone)]
pub struct Script {
    description: Option<String>,
    nodes: usize,
    seed: u64,
    runs: usize,
    start: StartMode,
    seeds: Vec<usize>,
    late: Vec<bool>,
    config: Config,
    net: NetConfig,
    actions: Vec<(Duration, Action)>,
    checks: Vec<Check>,
    end: Duration,
}

/// `ranges` as text: `n3`, `n10-n19`, `n1, n4-n6`.
fn describe(nodes: &[usize]) -> String {
    let mut sorted = nodes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { format!("n{}", sorted[i]) } else { format!("n{}-n{}", sorted[i], sorted[j]) });
        i = j + 1;
    }
    parts.join(", ")
}

/// Seconds as written in a file, checked and turned into a duration.
fn seconds(what: &str, s: f64) -> Result<Duration, ScriptError> {
    if !s.is_finite() || s < 0.0 {
        return Err(invalid(format!("{what} = {s}: must be a number of seconds, zero or more")));
    }
    if s > MAX_TIME_S {
        return Err(invalid(format!("{what} = {s}: must be at most {MAX_TIME_S} seconds (one day)")));
    }
    Ok(Duration::from_secs_f64(s))
}

fn probability(what: &str, p: f64) -> Result<f64, ScriptError> {
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid(format!("{what} = {p}: must be a probability between 0 and 1")));
    }
    Ok(p)
}

fn latency(what: &str, [lo, hi]: [f64; 2]) -> Result<(Duration, Duration), ScriptError> {
    let ok = |v: f64| v.is_finite() && (0.0..=60_000.0).contains(&v);
    if !ok(lo) || !ok(hi) || lo > hi {
        return Err(invalid(format!(
            "{what} = [{lo}, {hi}]: must be [min, max] milliseconds with 0 <= min <= max <= 60000"
        )));
    }
    Ok((Duration::from_secs_f64(lo / 1000.0), Duration::from_secs_f64(hi / 1000.0)))
}

/// Liveness of one node along the timeline, to refuse impossible events up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// A `late` node before its `join`.
    Waiting,
    Up,
    Crashed,
    /// Left gracefully (the process is still there until crashed or restarted).
    Left,
}

impl Life {
    fn after(self, event: &str) -> Result<Life, &'static str> {
        use Life::*;
        match (event, self) {
            ("join", Waiting) => Ok(Up),
            ("join", _) => Err("has already started (only `late` nodes join; use restart)"),
            ("crash", Up | Left) => Ok(Crashed),
            ("restart", Up | Left | Crashed) => Ok(Up),
            ("leave", Up) => Ok(Left),
            ("leave", Left) => Err("has already left"),
            ("stall" | "slow", Up) => Ok(Up),
            (_, Waiting) => Err("has not started yet (it is `late`: add a join event first)"),
            (_, Crashed) => Err("is crashed (restart it first)"),
            (_, Left) => Err("has left (restart it first)"),
            _ => Err("cannot take this event"),
        }
    }
}

impl Script {
    /// Parses and validates a script.
    pub fn from_toml(text: &str) -> Result<Script, ScriptError> {
        let spec: FileSpec = toml::from_str(text).map_err(|e| ScriptError::Parse(e.to_string()))?;
        Script::from_spec(spec)
    }

    fn from_spec(spec: FileSpec) -> Result<Script, ScriptError> {
        if !(2..=MAX_NODES as i64).contains(&spec.nodes) {
            return Err(invalid(format!("nodes = {}: must be between 2 and {MAX_NODES}", spec.nodes)));
        }
        let nodes = spec.nodes as usize;
        if !(1..=MAX_RUNS as i64).contains(&spec.runs) {
            return Err(invalid(format!("runs = {}: must be between 1 and {MAX_RUNS}", spec.runs)));
        }
        let resolve = |what: &str, set: &NodeSet| -> Result<Vec<usize>, ScriptError> {
            let mut out = Vec::new();
            for &(a, b) in &set.0 {
                for i in [a, b] {
                    if i < 0 || i >= nodes as i64 {
                        return Err(invalid(format!(
                            "{what}: node {i} is out of range: the cluster has {nodes} nodes, 0 to {}",
                            nodes - 1
                        )));
                    }
                }
                out.extend(a as usize..=b as usize);
            }
            if out.is_empty() {
                return Err(invalid(format!("{what}: names no node")));
            }
            let mut seen = HashSet::new();
            out.retain(|i| seen.insert(*i));
            Ok(out)
        };
        let mut late = vec![false; nodes];
        if let Some(set) = &spec.late {
            for i in resolve("late", set)? {
                late[i] = true;
            }
        }
        let seeds = match &spec.seeds {
            Some(set) => resolve("seeds", set)?,
            None => vec![0],
        };
        if seeds.iter().all(|&i| late[i]) {
            return Err(invalid("seeds: every seed is `late`; at least one must be there from the start"));
        }
        if late.iter().all(|&l| l) {
            return Err(invalid("late: every node is late; at least one must be there from the start"));
        }

        let mut config = match spec.preset {
            PresetName::Lan => Config::lan(),
            PresetName::Wan => Config::wan(),
            PresetName::Local => Config::local(),
        };
        let c = &spec.config;
        let millis = |what: &str, ms: u64| -> Result<Duration, ScriptError> {
            if ms == 0 || ms as f64 > MAX_TIME_S * 1000.0 {
                return Err(invalid(format!("config.{what} = {ms}: must be between 1 and {} ms", MAX_TIME_S * 1000.0)));
            }
            Ok(Duration::from_millis(ms))
        };
        if let Some(ms) = c.probe_interval_ms {
            config.probe_interval = millis("probe_interval_ms", ms)?;
        }
        if let Some(ms) = c.probe_timeout_ms {
            config.probe_timeout = millis("probe_timeout_ms", ms)?;
            // The adaptive floor of the direct wait may not exceed the timeout itself.
            config.min_probe_timeout = config.min_probe_timeout.min(config.probe_timeout);
        }
        if let Some(ms) = c.gossip_interval_ms {
            config.gossip_interval = millis("gossip_interval_ms", ms)?;
        }
        if let Some(s) = c.push_pull_interval_s {
            let d = seconds("config.push_pull_interval_s", s)?;
            config.push_pull_interval = (!d.is_zero()).then_some(d);
        }
        if let Some(v) = c.indirect_checks {
            config.indirect_checks = v;
        }
        if let Some(v) = c.suspicion_mult {
            config.suspicion_mult = v;
        }
        if let Some(v) = c.suspicion_max_timeout_mult {
            config.suspicion_max_timeout_mult = v;
        }
        if let Some(v) = c.gossip_fanout {
            config.gossip_fanout = v;
        }
        if let Some(v) = c.retransmit_mult {
            config.retransmit_mult = v;
        }
        if let Some(v) = c.awareness_max_multiplier {
            config.awareness_max_multiplier = v;
        }
        if let Some(v) = c.lifeguard {
            config.lifeguard = v;
        }
        config.validate().map_err(|e| invalid(format!("config: {e}")))?;

        let mut net = NetConfig::default();
        let n = &spec.network;
        if let Some(p) = n.loss {
            net.loss = probability("network.loss", p)?;
        }
        if let Some(p) = n.duplicate {
            net.duplicate = probability("network.duplicate", p)?;
        }
        if let Some(p) = n.reorder {
            net.reorder = probability("network.reorder", p)?;
        }
        if let Some(l) = n.latency_ms {
            (net.latency_min, net.latency_max) = latency("network.latency_ms", l)?;
        }

        let mut life: Vec<Life> = late.iter().map(|&l| if l { Life::Waiting } else { Life::Up }).collect();
        let mut actions = Vec::new();
        let mut last = (0.0f64, 0usize);
        for (k, event) in spec.events.iter().enumerate() {
            let what = format!("event {} ({} at {} s)", k + 1, event.name(), event.at());
            let at = seconds(&format!("{what}: at"), event.at())?;
            if k > 0 && event.at() < last.0 {
                return Err(invalid(format!(
                    "{what}: comes before event {} at {} s; list events in time order",
                    last.1, last.0
                )));
            }
            last = (event.at(), k + 1);
            let mut nodes_of = |set: &NodeSet| -> Result<Vec<usize>, ScriptError> {
                let ids = resolve(&what, set)?;
                for &i in &ids {
                    life[i] = life[i].after(event.name()).map_err(|why| invalid(format!("{what}: node {i} {why}")))?;
                }
                Ok(ids)
            };
            let action = match event {
                EventSpec::Network(e) => Action::Network {
                    loss: e.loss.map(|p| probability(&format!("{what}: loss"), p)).transpose()?,
                    duplicate: e.duplicate.map(|p| probability(&format!("{what}: duplicate"), p)).transpose()?,
                    reorder: e.reorder.map(|p| probability(&format!("{what}: reorder"), p)).transpose()?,
                    latency: e.latency_ms.map(|l| latency(&format!("{what}: latency_ms"), l)).transpose()?,
                },
                EventSpec::Partition(e) => {
                    if e.groups.is_empty() {
                        return Err(invalid(format!("{what}: groups is empty; give at least one group")));
                    }
                    let mut owner: HashMap<usize, usize> = HashMap::new();
                    let mut groups = Vec::new();
                    for (g, set) in e.groups.iter().enumerate() {
                        let ids = resolve(&format!("{what}, group {}", g + 1), set)?;
                        for &i in &ids {
                            if let Some(other) = owner.insert(i, g) {
                                return Err(invalid(format!(
                                    "{what}: node {i} is in group {} and in group {}",
                                    other + 1,
                                    g + 1
                                )));
                            }
                        }
                        groups.push(ids);
                    }
                    Action::Partition(groups)
                }
                EventSpec::Heal(_) => Action::Heal,
                EventSpec::Crash(e) => Action::Crash(nodes_of(&e.nodes)?),
                EventSpec::Restart(e) => Action::Restart(nodes_of(&e.nodes)?),
                EventSpec::Leave(e) => Action::Leave(nodes_of(&e.nodes)?),
                EventSpec::Join(e) => Action::Join(nodes_of(&e.nodes)?),
                EventSpec::Stall(e) => {
                    let d = seconds(&format!("{what}: for_s"), e.for_s)?;
                    if d.is_zero() {
                        return Err(invalid(format!("{what}: for_s must be more than zero")));
                    }
                    Action::Stall(nodes_of(&e.nodes)?, d)
                }
                EventSpec::Slow(e) => {
                    let d = seconds(&format!("{what}: for_s"), e.for_s)?;
                    let delay = seconds(&format!("{what}: delay_ms"), e.delay_ms / 1000.0)?;
                    if d.is_zero() || delay.is_zero() {
                        return Err(invalid(format!("{what}: for_s and delay_ms must be more than zero")));
                    }
                    Action::Slow(nodes_of(&e.nodes)?, delay, d)
                }
            };
            actions.push((at, action));
        }

        let mut checks = Vec::new();
        let mut last = (0.0f64, 0usize);
        let mut latest = actions.last().map_or(Duration::ZERO, |a| a.0);
        for (k, spec) in spec.checks.iter().enumerate() {
            let what = format!("check {} (at {} s)", k + 1, spec.at());
            let at = seconds(&format!("{what}: at"), spec.at())?;
            if k > 0 && spec.at() < last.0 {
                return Err(invalid(format!(
                    "{what}: comes before check {} at {} s; list checks in time order",
                    last.1, last.0
                )));
            }
            last = (spec.at(), k + 1);
            let within = seconds(&format!("{what}: within"), spec.within().unwrap_or(0.0))?;
            let window = if within.is_zero() { String::new() } else { format!(" within {} s", within.as_secs_f64()) };
            let (kind, label) = match spec {
                CheckSpec::Converged(_) => (CheckKind::Converged, format!("converged{window}")),
                CheckSpec::DeadDeclared(c) | CheckSpec::Alive(c) => {
                    let nodes = resolve(&what, &c.nodes)?;
                    let by = c.by.as_ref().map(|set| resolve(&format!("{what}: by"), set)).transpose()?;
                    let by_label = by.as_ref().map(|o| format!(" by {}", describe(o))).unwrap_or_default();
                    if matches!(spec, CheckSpec::Alive(_)) {
                        let label = format!("alive {}{by_label}{window}", describe(&nodes));
                        (CheckKind::Alive { nodes, by }, label)
                    } else {
                        let label = format!("dead_declared {}{by_label}{window}", describe(&nodes));
                        (CheckKind::DeadDeclared { nodes, by }, label)
                    }
                }
                CheckSpec::NoFalseDead(c) => {
                    let since = seconds(&format!("{what}: since"), c.since.unwrap_or(0.0))?;
                    if since > at {
                        return Err(invalid(format!("{what}: since must not be later than at")));
                    }
                    let label = if since.is_zero() {
                        "no_false_dead".to_owned()
                    } else {
                        format!("no_false_dead since {} s", since.as_secs_f64())
                    };
                    (CheckKind::NoFalseDead { since }, label)
                }
                CheckSpec::MembersSeen(c) => {
                    let bound = |name: &str, v: Option<i64>| -> Result<Option<usize>, ScriptError> {
                        match v {
                            Some(v) if !(0..=nodes as i64).contains(&v) => {
                                Err(invalid(format!("{what}: {name} = {v}: must be between 0 and {nodes}")))
                            }
                            v => Ok(v.map(|v| v as usize)),
                        }
                    };
                    let (min, max) = (bound("min", c.min)?, bound("max", c.max)?);
                    let range = match (min, max) {
                        (None, None) => return Err(invalid(format!("{what}: members_seen needs min, max or both"))),
                        (Some(a), Some(b)) if a > b => {
                            return Err(invalid(format!("{what}: min ({a}) is larger than max ({b})")))
                        }
                        (Some(a), Some(b)) if a == b => format!("== {a}"),
                        (Some(a), Some(b)) => format!("in [{a}, {b}]"),
                        (Some(a), None) => format!(">= {a}"),
                        (None, Some(b)) => format!("<= {b}"),
                    };
                    let observers = c.by.as_ref().map(|set| resolve(&format!("{what}: by"), set)).transpose()?;
                    let by = observers.as_ref().map(|o| format!(" by {}", describe(o))).unwrap_or_default();
                    (CheckKind::MembersSeen { observers, min, max }, format!("members_seen {range}{by}{window}"))
                }
            };
            latest = latest.max(at + within);
            checks.push(Check { at, within, kind, label });
        }
        let end = match spec.duration_s {
            Some(s) => {
                let d = seconds("duration_s", s)?;
                if d < latest {
                    return Err(invalid(format!(
                        "duration_s = {s} ends before the last event or check window ({} s)",
                        latest.as_secs_f64()
                    )));
                }
                d
            }
            None if checks.is_empty() && actions.is_empty() => {
                return Err(invalid("nothing to run: add events, checks or duration_s"));
            }
            None => latest,
        };
        Ok(Script {
            description: spec.description,
            nodes,
            seed: spec.seed,
            runs: spec.runs as usize,
            start: spec.start,
            seeds,
            late,
            config,
            net,
            actions,
            checks,
            end,
        })
    }

    /// Cluster size.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Runs (seeds `seed`, `seed + 1`, …).
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// Seed of the first run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The same script with another first seed and/or number of runs (what
    /// `gossip sim run --seed --runs` give), checked like the file's own values.
    pub fn with_runs(mut self, seed: Option<u64>, runs: Option<usize>) -> Result<Self, ScriptError> {
        if let Some(runs) = runs {
            if !(1..=MAX_RUNS).contains(&runs) {
                return Err(invalid(format!("runs = {runs}: must be between 1 and {MAX_RUNS}")));
            }
            self.runs = runs;
        }
        if let Some(seed) = seed {
            self.seed = seed;
        }
        Ok(self)
    }

    /// The script's own description, if it has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Virtual time each run lasts.
    pub fn duration(&self) -> Duration {
        self.end
    }

    /// Number of checks.
    pub fn check_count(&self) -> usize {
        self.checks.len()
    }

    /// The protocol configuration every node runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs the script `runs` times; `progress` is told how many runs are done.
    pub fn run(&self, mut progress: impl FnMut(usize)) -> ScriptResult {
        let mut per_check: Vec<Vec<Outcome>> = vec![Vec::new(); self.checks.len()];
        let mut curve = Vec::new();
        let mut false_dead = 0;
        for run in 0..self.runs {
            let seed = self.seed.wrapping_add(run as u64);
            let out = self.run_once(seed, (run == 0).then_some(&mut curve));
            false_dead += out.false_dead;
            for (all, one) in per_check.iter_mut().zip(out.outcomes) {
                all.push(one);
            }
            progress(run + 1);
        }
        let checks: Vec<CheckResult> = self
            .checks
            .iter()
            .zip(per_check)
            .map(|(check, outcomes)| {
                let runs_passed = outcomes.iter().filter(|o| o.passed).count();
                let failed = outcomes.iter().enumerate().find(|(_, o)| !o.passed);
                let detail = match failed {
                    Some((run, o)) if self.runs > 1 => {
                        format!("seed {}: {}", self.seed.wrapping_add(run as u64), o.detail)
                    }
                    Some((_, o)) => o.detail.clone(),
                    None => outcomes.first().map(|o| o.detail.clone()).unwrap_or_default(),
                };
                let held = outcomes.iter().filter(|o| o.passed).map(|o| o.held_at.as_secs_f64());
                CheckResult {
                    at_s: check.at.as_secs_f64(),
                    check: check.label.clone(),
                    passed: runs_passed == outcomes.len(),
                    runs_passed,
                    held_at_s: held.fold(None, |m: Option<f64>, h| Some(m.map_or(h, |m| m.max(h)))),
                    detail,
                }
            })
            .collect();
        let failed = checks.iter().filter(|c| !c.passed).count();
        ScriptResult {
            scenario: "run",
            description: self.description.clone(),
            nodes: self.nodes,
            runs: self.runs,
            seed: self.seed,
            duration_s: self.end.as_secs_f64(),
            passed: failed == 0,
            checks_passed: checks.len() - failed,
            checks_failed: failed,
            false_dead,
            checks,
            curve,
        }
    }

    fn run_once(&self, seed: u64, mut curve: Option<&mut Vec<Sample>>) -> RunOutcome {
        let mut st = RunState::start(self, seed);
        // Joins of the initial nodes (start = "join") go first, then the script's events.
        let mut actions: Vec<(Duration, Action)> = Vec::new();
        if self.start == StartMode::Join {
            // The first seed goes first, so that the others find it; it joins too, which records
            // whom it rejoins through after a restart.
            let mut joiners: Vec<usize> = (0..self.nodes).filter(|&i| !self.late[i] && i != self.seeds[0]).collect();
            joiners.insert(0, self.seeds[0]);
            let step = Duration::from_secs(1) / (joiners.len().max(1) as u32);
            for (k, &i) in joiners.iter().enumerate() {
                actions.push((step * k as u32, Action::Join(vec![i])));
            }
        }
        actions.extend(self.actions.iter().cloned());
        actions.sort_by_key(|a| a.0); // stable: file order within one instant
        let sample_every = (self.end / 500).max(STEP);
        let mut next_sample = Duration::ZERO;
        let (mut next_action, mut next_check) = (0, 0);
        let mut active: Vec<usize> = Vec::new();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; self.checks.len()];
        loop {
            let now = st.sim.elapsed();
            st.drain_trace();
            while next_check < self.checks.len() && self.checks[next_check].at <= now {
                active.push(next_check);
                next_check += 1;
            }
            let mut still = Vec::new();
            for c in active.drain(..) {
                let check = &self.checks[c];
                match st.evaluate(&check.kind, now) {
                    Ok(detail) => {
                        let detail = if check.within.is_zero() {
                            detail
                        } else {
                            format!("held at {:.1} s; {detail}", now.as_secs_f64())
                        };
                        outcomes[c] = Some(Outcome { passed: true, held_at: now, detail });
                    }
                    Err(detail) if now >= check.at + check.within => {
                        let detail = if check.within.is_zero() {
                            detail
                        } else {
                            format!("still not by {:.1} s: {detail}", now.as_secs_f64())
                        };
                        outcomes[c] = Some(Outcome { passed: false, held_at: now, detail });
                    }
                    Err(_) => still.push(c),
                }
            }
            active = still;
            while next_action < actions.len() && actions[next_action].0 <= now {
                st.apply(&actions[next_action].1);
                next_action += 1;
            }
            if let Some(curve) = curve.as_deref_mut() {
                if now >= next_sample {
                    curve.push(st.sample(now));
                    next_sample = now + sample_every;
                }
            }
            if now >= self.end {
                break;
            }
            let mut next = (now + STEP).min(self.end);
            if let Some((t, _)) = actions.get(next_action) {
                next = next.min(*t);
            }
            if let Some(c) = self.checks.get(next_check) {
                next = next.min(c.at);
            }
            st.sim.run_for(next.saturating_sub(now));
        }
        let outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome { passed: false, held_at: self.end, detail: "never evaluated".to_owned() }))
            .collect();
        RunOutcome { outcomes, false_dead: st.false_dead.len() }
    }
}

// ----- running --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Outcome {
    passed: bool,
    held_at: Duration,
    detail: String,
}

struct RunOutcome {
    outcomes: Vec<Outcome>,
    false_dead: usize,
}

/// One sample of the first run's membership: virtual seconds, running members, and the
/// mean and smallest number of live members a running node sees (itself included).
pub type Sample = (f64, f64, f64, f64);

#[derive(Debug, Clone, Copy)]
struct Slot {
    id: Option<NodeId>,
    generation: u64,
    life: Life,
}

/// A live member declared dead: when, by whom, whom (indices) and which life.
#[derive(Debug, Clone, Copy)]
struct FalseDead {
    at: Duration,
    observer: usize,
    subject: usize,
    generation: u64,
}

struct RunState<'a> {
    script: &'a Script,
    sim: Sim,
    slots: Vec<Slot>,
    /// Script index of each simulator id.
    index_of: Vec<usize>,
    partition: Option<Vec<Vec<usize>>>,
    false_dead: Vec<FalseDead>,
}

impl<'a> RunState<'a> {
    fn start(script: &'a Script, seed: u64) -> RunState<'a> {
        let mut sim = Sim::new(seed, script.net.clone());
        let mut slots = vec![Slot { id: None, generation: 1, life: Life::Waiting }; script.nodes];
        let mut index_of = Vec::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            if !script.late[i] {
                let id = sim.add_node(format!("n{i}"), script.config.clone());
                index_of.push(i);
                *slot = Slot { id: Some(id), generation: 1, life: Life::Up };
            }
        }
        let mut st = RunState { script, sim, slots, index_of, partition: None, false_dead: Vec::new() };
        if script.start == StartMode::Converged {
            st.sim.prime_converged();
            // Joining records each node's seeds, which a restart goes back to.
            for i in 0..script.nodes {
                if let Some(id) = st.slots[i].id {
                    let seeds = st.seeds_for(i);
                    st.sim.join(id, &seeds);
                }
            }
        }
        st.sim.take_trace();
        st
    }

    /// Whom node `i` joins through: the seeds that have started, other than itself; a lone
    /// seed goes to the first other started node.
    fn seeds_for(&self, i: usize) -> Vec<NodeId> {
        let mut seeds: Vec<NodeId> =
            self.script.seeds.iter().filter(|&&s| s != i).filter_map(|&s| self.slots[s].id).collect();
        if seeds.is_empty() {
            seeds.extend((0..self.slots.len()).filter(|&s| s != i).find_map(|s| self.slots[s].id));
        }
        seeds
    }

    fn index_of_name(&self, name: &str) -> Option<usize> {
        name.strip_prefix('n').and_then(|n| n.parse::<usize>().ok()).filter(|&i| i < self.slots.len())
    }

    /// Records declarations of running members as dead since the last call.
    fn drain_trace(&mut self) {
        for e in self.sim.take_trace() {
            let Event::MemberDown(m) = &e.event else { continue };
            let Some(subject) = self.index_of_name(&m.name) else { continue };
            let slot = self.slots[subject];
            if slot.life == Life::Up && slot.generation == m.generation {
                let observer = self.index_of.get(e.node as usize).copied().unwrap_or(usize::MAX);
                self.false_dead.push(FalseDead { at: e.at, observer, subject, generation: m.generation });
            }
        }
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::Network { loss, duplicate, reorder, latency } => {
                let net = self.sim.net_mut();
                if let Some(p) = loss {
                    net.loss = *p;
                }
                if let Some(p) = duplicate {
                    net.duplicate = *p;
                }
                if let Some(p) = reorder {
                    net.reorder = *p;
                }
                if let Some((lo, hi)) = latency {
                    (net.latency_min, net.latency_max) = (*lo, *hi);
                }
            }
            Action::Partition(groups) => {
                self.partition = Some(groups.clone());
                self.apply_partition();
            }
            Action::Heal => {
                self.partition = None;
                self.sim.heal();
            }
            Action::Crash(nodes) => {
                for &i in nodes {
                    if let Some(id) = self.slots[i].id {
                        self.sim.crash(id);
                        self.slots[i].life = Life::Crashed;
                    }
                }
            }
            Action::Restart(nodes) => {
                for &i in nodes {
                    if let Some(id) = self.slots[i].id {
                        self.sim.restart(id);
                        self.slots[i].generation += 1;
                        self.slots[i].life = Life::Up;
                    }
                }
            }
            Action::Leave(nodes) => {
                for &i in nodes {
                    if let Some(id) = self.slots[i].id {
                        self.sim.leave(id);
                        self.slots[i].life = Life::Left;
                    }
                }
            }
            Action::Join(nodes) => {
                for &i in nodes {
                    let id = match self.slots[i].id {
                        Some(id) => id, // an initial node joining (start = "join")
                        None => {
                            let id = self.sim.add_node(format!("n{i}"), self.script.config.clone());
                            self.index_of.push(i);
                            self.slots[i] = Slot { id: Some(id), generation: 1, life: Life::Up };
                            id
                        }
                    };
                    let seeds = self.seeds_for(i);
                    self.sim.join(id, &seeds);
                }
                if self.partition.is_some() {
                    self.apply_partition();
                }
            }
            Action::Stall(nodes, d) => {
                for &i in nodes {
                    if let Some(id) = self.slots[i].id {
                        self.sim.stall(id, *d);
                    }
                }
            }
            Action::Slow(nodes, delay, d) => {
                for &i in nodes {
                    if let Some(id) = self.slots[i].id {
                        self.sim.slow_down(id, *delay, *d);
                    }
                }
            }
        }
    }

    fn apply_partition(&mut self) {
        let Some(groups) = &self.partition else { return };
        let ids: Vec<Vec<NodeId>> =
            groups.iter().map(|g| g.iter().filter_map(|&i| self.slots[i].id).collect()).collect();
        let refs: Vec<&[NodeId]> = ids.iter().map(Vec::as_slice).collect();
        self.sim.partition(&refs);
    }

    fn name(&self, id: NodeId) -> String {
        self.sim.name(id).to_owned()
    }

    fn sample(&self, now: Duration) -> Sample {
        let up = self.sim.up_ids();
        let views: Vec<usize> = up.iter().filter_map(|&id| self.sim.node(id).map(|n| n.live_count() + 1)).collect();
        let mean = views.iter().sum::<usize>() as f64 / views.len().max(1) as f64;
        let min = views.iter().copied().min().unwrap_or(0) as f64;
        (now.as_secs_f64(), up.len() as f64, mean, min)
    }

    /// Whether a check holds now: `Ok` with a short account, or `Err` with what is wrong.
    fn evaluate(&self, kind: &CheckKind, now: Duration) -> Result<String, String> {
        match kind {
            CheckKind::Converged => self.converged(),
            CheckKind::DeadDeclared { nodes, by } => self.dead_declared(nodes, by.as_deref()),
            CheckKind::Alive { nodes, by } => self.alive(nodes, by.as_deref()),
            CheckKind::NoFalseDead { since } => {
                let found: Vec<&FalseDead> = self.false_dead.iter().filter(|f| f.at >= *since && f.at <= now).collect();
                if found.is_empty() {
                    return Ok("no running member declared dead".to_owned());
                }
                let lives: HashSet<(usize, u64)> = found.iter().map(|f| (f.subject, f.generation)).collect();
                let examples: Vec<String> = found
                    .iter()
                    .take(3)
                    .map(|f| {
                        let by = if f.observer == usize::MAX { "?".to_owned() } else { format!("n{}", f.observer) };
                        format!("n{} by {by} at {:.1} s", f.subject, f.at.as_secs_f64())
                    })
                    .collect();
                Err(format!(
                    "{} declarations of {} running members as dead, e.g. {}",
                    found.len(),
                    lives.len(),
                    examples.join(", ")
                ))
            }
            CheckKind::MembersSeen { observers, min, max } => self.members_seen(observers.as_deref(), *min, *max),
        }
    }

    fn converged(&self) -> Result<String, String> {
        let up = self.sim.up_ids();
        let truth: HashMap<String, (u64, u32)> = up
            .iter()
            .filter_map(|&id| self.sim.node(id).map(|n| n.self_record()))
            .map(|r| (r.name.to_string(), (r.generation, r.incarnation)))
            .collect();
        let expected = truth.iter().fold(0u64, |acc, (name, &(g, inc))| acc ^ gossip_core::record_hash(name, g, inc));
        let bad: Vec<NodeId> = up
            .iter()
            .copied()
            .filter(|&id| {
                !self.sim.node(id).is_some_and(|n| n.live_count() + 1 == up.len() && n.membership_digest() == expected)
            })
            .collect();
        if bad.is_empty() {
            return Ok(format!("all {} running nodes see exactly the running nodes", up.len()));
        }
        let examples: Vec<String> = bad
            .iter()
            .take(3)
            .filter_map(|&id| {
                let node = self.sim.node(id)?;
                let me = node.name().to_owned();
                let seen: HashMap<String, (u64, u32)> =
                    node.members().into_iter().map(|r| (r.name.to_string(), (r.generation, r.incarnation))).collect();
                let mut missing: Vec<&str> = truth
                    .iter()
                    .filter(|(n, life)| **n != me && seen.get(*n).is_none_or(|s| s.0 != life.0))
                    .map(|(n, _)| n.as_str())
                    .collect();
                let mut extra: Vec<&str> = seen
                    .iter()
                    .filter(|(n, s)| truth.get(*n).is_none_or(|t| t.0 != s.0))
                    .map(|(n, _)| n.as_str())
                    .collect();
                let stale =
                    seen.iter().filter(|(n, s)| truth.get(*n).is_some_and(|t| t.0 == s.0 && t.1 != s.1)).count();
                missing.sort_unstable_by_key(|n| self.index_of_name(n));
                extra.sort_unstable_by_key(|n| self.index_of_name(n));
                let mut parts = vec![format!("{me} sees {} live", seen.len() + 1)];
                if !missing.is_empty() {
                    parts.push(format!("missing {}", list(&missing)));
                }
                if !extra.is_empty() {
                    parts.push(format!("extra {}", list(&extra)));
                }
                if stale > 0 {
                    parts.push(format!("{stale} stale"));
                }
                Some(parts.join(", "))
            })
            .collect();
        Err(format!("{} of {} running nodes see another membership: {}", bad.len(), up.len(), examples.join("; ")))
    }

    /// Running nodes among `by` (all running nodes without it).
    fn observers(&self, by: Option<&[usize]>) -> Vec<NodeId> {
        match by {
            Some(o) => o.iter().filter_map(|&i| self.slots[i].id).filter(|&id| self.sim.is_up(id)).collect(),
            None => self.sim.up_ids(),
        }
    }

    fn dead_declared(&self, nodes: &[usize], by: Option<&[usize]>) -> Result<String, String> {
        let observers = self.observers(by);
        let mut problems = Vec::new();
        let mut counted = 0;
        for &i in nodes {
            let name = format!("n{i}");
            let asked: Vec<NodeId> = observers.iter().copied().filter(|&id| Some(id) != self.slots[i].id).collect();
            counted = counted.max(asked.len());
            let holdouts: Vec<String> = asked
                .iter()
                .filter(|&&id| self.sim.node(id).is_some_and(|n| n.member(&name).is_some_and(|m| !m.state.is_gone())))
                .map(|&id| self.name(id))
                .collect();
            if !holdouts.is_empty() {
                problems.push(format!(
                    "{name} still live for {} of {} ({})",
                    holdouts.len(),
                    asked.len(),
                    list(&holdouts.iter().map(String::as_str).collect::<Vec<_>>())
                ));
            }
        }
        if observers.is_empty() {
            return Err("no observer is running".to_owned());
        }
        if problems.is_empty() {
            Ok(format!("gone for all {counted} running observers"))
        } else {
            let more = if problems.len() > 3 { format!("; {} more nodes", problems.len() - 3) } else { String::new() };
            Err(problems.into_iter().take(3).collect::<Vec<_>>().join("; ") + &more)
        }
    }

    fn alive(&self, nodes: &[usize], by: Option<&[usize]>) -> Result<String, String> {
        let up = self.observers(by);
        if up.is_empty() {
            return Err("no observer is running".to_owned());
        }
        let mut problems = Vec::new();
        for &i in nodes {
            let name = format!("n{i}");
            let slot = self.slots[i];
            let Some(id) = slot.id.filter(|&id| self.sim.is_up(id)) else {
                problems.push(format!("{name} is not running"));
                continue;
            };
            let holdouts: Vec<String> = up
                .iter()
                .filter(|&&o| o != id)
                .filter_map(|&o| {
                    let n = self.sim.node(o)?;
                    match n.member(&name) {
                        Some(m) if m.generation == slot.generation && m.state == MemberState::Alive => None,
                        Some(m) => {
                            Some(format!("{} ({:?}, gen {})", self.name(o), m.state, m.generation).to_lowercase())
                        }
                        None => Some(format!("{} (unknown)", self.name(o))),
                    }
                })
                .collect();
            if !holdouts.is_empty() {
                problems.push(format!(
                    "{name} (gen {}) not seen alive by {} of {}: {}",
                    slot.generation,
                    holdouts.len(),
                    up.iter().filter(|&&o| o != id).count(),
                    list(&holdouts.iter().map(String::as_str).collect::<Vec<_>>())
                ));
            }
        }
        if problems.is_empty() {
            Ok(format!("alive for all {} running observers", up.len().saturating_sub(1)))
        } else {
            let more = if problems.len() > 3 { format!("; {} more nodes", problems.len() - 3) } else { String::new() };
            Err(problems.into_iter().take(3).collect::<Vec<_>>().join("; ") + &more)
        }
    }

    fn members_seen(
        &self,
        observers: Option<&[usize]>,
        min: Option<usize>,
        max: Option<usize>,
    ) -> Result<String, String> {
        let ids = self.observers(observers);
        if ids.is_empty() {
            return Err("no observer is running".to_owned());
        }
        let views: Vec<(NodeId, usize)> =
            ids.iter().filter_map(|&id| self.sim.node(id).map(|n| (id, n.live_count() + 1))).collect();
        let lo = views.iter().map(|v| v.1).min().unwrap_or(0);
        let hi = views.iter().map(|v| v.1).max().unwrap_or(0);
        let outside: Vec<String> = views
            .iter()
            .filter(|(_, v)| min.is_some_and(|m| *v < m) || max.is_some_and(|m| *v > m))
            .map(|&(id, v)| format!("{} sees {v}", self.name(id)))
            .collect();
        if outside.is_empty() {
            Ok(format!("views of {} nodes from {lo} to {hi}", views.len()))
        } else {
            Err(format!(
                "{} of {} views out of range (from {lo} to {hi}): {}",
                outside.len(),
                views.len(),
                list(&outside.iter().map(String::as_str).collect::<Vec<_>>())
            ))
        }
    }
}

/// At most five items, then how many more.
fn list(items: &[&str]) -> String {
    let mut s = items.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        s.push_str(&format!(" +{} more", items.len() - 5));
    }
    s
}

// ----- results ----------------------------------------------------------------------------------

/// One check's result over all runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// When it is checked, virtual seconds.
    pub at_s: f64,
    /// What is checked, e.g. `converged within 30 s`, `dead_declared n3`.
    pub check: String,
    /// Whether it held in every run.
    pub passed: bool,
    /// Runs in which it held.
    pub runs_passed: usize,
    /// When it was seen to hold (the latest over runs that passed); `null` if it never did.
    pub held_at_s: Option<f64>,
    /// What was seen: for a failure, of the first run that failed.
    pub detail: String,
}

/// Result of `gossip sim run FILE.toml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptResult {
    /// Scenario name: `run`.
    pub scenario: &'static str,
    /// The script's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Cluster size (late nodes included).
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Seed of the first run.
    pub seed: u64,
    /// Virtual seconds each run lasted.
    pub duration_s: f64,
    /// Whether every check held in every run.
    pub passed: bool,
    /// Checks that held in every run.
    pub checks_passed: usize,
    /// Checks that failed in some run.
    pub checks_failed: usize,
    /// Declarations of running members as dead, summed over runs.
    pub false_dead: usize,
    /// Each check, in file order.
    pub checks: Vec<CheckResult>,
    /// First run: membership over time, for plots.
    #[serde(skip)]
    pub curve: Vec<Sample>,
}
