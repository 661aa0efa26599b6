//! Running a [`Script`] on the simulator: its actions applied on time, its checks evaluated
//! at their moments (or as soon as they hold within their windows), the first run sampled.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gossip_core::{Event, MemberState};

use super::compile::Life;
use super::spec::StartMode;
use super::{Action, CheckKind, Script, STEP};
use crate::{NodeId, Sim};

impl Script {
    pub(super) fn run_once(&self, seed: u64, mut curve: Option<&mut Vec<Sample>>) -> RunOutcome {
        let mut st = RunState::start(self, seed);
        // Joins of the initial nodes (start = "join") go first, then the script's events.
        let mut actions: Vec<(Duration, Action)> = Vec::new();
        if self.start == StartMode::Join {
            // The first seed there from the start goes first, so that the others find it (a late
            // one starts at its own `join` event); it joins too, which records whom it rejoins
            // through after a restart. Compiling made sure one seed is not late.
            let first = self.seeds.iter().copied().find(|&s| !self.late[s]).unwrap_or(0);
            let mut joiners: Vec<usize> = (0..self.nodes).filter(|&i| !self.late[i] && i != first).collect();
            joiners.insert(0, first);
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

#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) passed: bool,
    pub(super) held_at: Duration,
    pub(super) detail: String,
}

pub(super) struct RunOutcome {
    pub(super) outcomes: Vec<Outcome>,
    pub(super) false_dead: usize,
}

/// One sample of the first run's membership: virtual seconds, running members, and the
/// mean and smallest number of live members a running node sees (itself included).
pub type Sample = (f64, f64, f64, f64);

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) id: Option<NodeId>,
    pub(super) generation: u64,
    pub(super) life: Life,
}

/// A live member declared dead: when, by whom, whom (indices) and which life.
#[derive(Debug, Clone, Copy)]
pub(super) struct FalseDead {
    pub(super) at: Duration,
    pub(super) observer: usize,
    pub(super) subject: usize,
    pub(super) generation: u64,
}

pub(super) struct RunState<'a> {
    pub(super) script: &'a Script,
    pub(super) sim: Sim,
    pub(super) slots: Vec<Slot>,
    /// Script index of each simulator id.
    pub(super) index_of: Vec<usize>,
    pub(super) partition: Option<Vec<Vec<usize>>>,
    pub(super) false_dead: Vec<FalseDead>,
}

impl<'a> RunState<'a> {
    pub(super) fn start(script: &'a Script, seed: u64) -> RunState<'a> {
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
    pub(super) fn seeds_for(&self, i: usize) -> Vec<NodeId> {
        let mut seeds: Vec<NodeId> =
            self.script.seeds.iter().filter(|&&s| s != i).filter_map(|&s| self.slots[s].id).collect();
        if seeds.is_empty() {
            seeds.extend((0..self.slots.len()).filter(|&s| s != i).find_map(|s| self.slots[s].id));
        }
        seeds
    }

    pub(super) fn index_of_name(&self, name: &str) -> Option<usize> {
        name.strip_prefix('n').and_then(|n| n.parse::<usize>().ok()).filter(|&i| i < self.slots.len())
    }

    /// Records declarations of running members as dead since the last call.
    pub(super) fn drain_trace(&mut self) {
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

    pub(super) fn apply(&mut self, action: &Action) {
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

    pub(super) fn apply_partition(&mut self) {
        let Some(groups) = &self.partition else { return };
        let ids: Vec<Vec<NodeId>> =
            groups.iter().map(|g| g.iter().filter_map(|&i| self.slots[i].id).collect()).collect();
        let refs: Vec<&[NodeId]> = ids.iter().map(Vec::as_slice).collect();
        self.sim.partition(&refs);
    }

    pub(super) fn name(&self, id: NodeId) -> String {
        self.sim.name(id).to_owned()
    }

    pub(super) fn sample(&self, now: Duration) -> Sample {
        let up = self.sim.up_ids();
        let views: Vec<usize> = up.iter().filter_map(|&id| self.sim.node(id).map(|n| n.live_count() + 1)).collect();
        let mean = views.iter().sum::<usize>() as f64 / views.len().max(1) as f64;
        let min = views.iter().copied().min().unwrap_or(0) as f64;
        (now.as_secs_f64(), up.len() as f64, mean, min)
    }

    /// Whether a check holds now: `Ok` with a short account, or `Err` with what is wrong.
    pub(super) fn evaluate(&self, kind: &CheckKind, now: Duration) -> Result<String, String> {
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

    pub(super) fn converged(&self) -> Result<String, String> {
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
    pub(super) fn observers(&self, by: Option<&[usize]>) -> Vec<NodeId> {
        match by {
            Some(o) => o.iter().filter_map(|&i| self.slots[i].id).filter(|&id| self.sim.is_up(id)).collect(),
            None => self.sim.up_ids(),
        }
    }

    pub(super) fn dead_declared(&self, nodes: &[usize], by: Option<&[usize]>) -> Result<String, String> {
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

    pub(super) fn alive(&self, nodes: &[usize], by: Option<&[usize]>) -> Result<String, String> {
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

    pub(super) fn members_seen(
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
pub(super) fn list(items: &[&str]) -> String {
    let mut s = items.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        s.push_str(&format!(" +{} more", items.len() - 5));
    }
    s
}
