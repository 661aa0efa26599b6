//! From the file as written to a [`Script`]: every value checked, node sets resolved, and the
//! timeline replayed once so that impossible events are refused before anything runs.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gossip_core::Config;

use crate::NetConfig;

use super::spec::{CheckSpec, EventSpec, FileSpec, NodeSet, PresetName};
use super::{invalid, Action, Check, CheckKind, Script, ScriptError, MAX_NODES, MAX_RUNS, MAX_TIME_S};

/// `ranges` as text: `n3`, `n10-n19`, `n1, n4-n6`.
pub(super) fn describe(nodes: &[usize]) -> String {
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
pub(super) fn seconds(what: &str, s: f64) -> Result<Duration, ScriptError> {
    if !s.is_finite() || s < 0.0 {
        return Err(invalid(format!("{what} = {s}: must be a number of seconds, zero or more")));
    }
    if s > MAX_TIME_S {
        return Err(invalid(format!("{what} = {s}: must be at most {MAX_TIME_S} seconds (one day)")));
    }
    Ok(Duration::from_secs_f64(s))
}

pub(super) fn probability(what: &str, p: f64) -> Result<f64, ScriptError> {
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid(format!("{what} = {p}: must be a probability between 0 and 1")));
    }
    Ok(p)
}

pub(super) fn latency(what: &str, [lo, hi]: [f64; 2]) -> Result<(Duration, Duration), ScriptError> {
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
pub(super) enum Life {
    /// A `late` node before its `join`.
    Waiting,
    Up,
    Crashed,
    /// Left gracefully (the process is still there until crashed or restarted).
    Left,
}

impl Life {
    pub(super) fn after(self, event: &str) -> Result<Life, &'static str> {
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
                    if !(e.delay_ms.is_finite() && (0.0..=MAX_TIME_S * 1000.0).contains(&e.delay_ms)) {
                        return Err(invalid(format!(
                            "{what}: delay_ms = {}: must be a number of milliseconds, zero to {}",
                            e.delay_ms,
                            MAX_TIME_S * 1000.0
                        )));
                    }
                    let delay = Duration::from_secs_f64(e.delay_ms / 1000.0);
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
}
