//! The experiments behind `gossip sim`: each runs the real core on the simulator by seed and
//! returns the figures DESIGN.md §5 names (plus a few more), ready to print as JSON.
//!
//! Every scenario takes [`Common`] options; `runs` independent runs use seeds `seed`,
//! `seed + 1`, … and the result aggregates them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use gossip_core::{Config, Event};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::{NetConfig, NodeId, Sim, TraceEntry};

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

fn percentile(xs: &[f64], p: f64) -> f64 {
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

fn new_cluster(seed: u64, common: &Common, config: &Config) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, common.net());
    let ids = (0..common.nodes).map(|i| sim.add_node(format!("n{i}"), config.clone())).collect();
    (sim, ids)
}

/// Result of `gossip sim join`.
#[derive(Debug, Clone, Serialize)]
pub struct JoinResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Cluster size.
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Whether every run converged within the limit.
    pub converged: bool,
    /// Virtual seconds from the first join until every node saw every other, mean over runs.
    pub converge_s: f64,
    /// Slowest run.
    pub converge_s_max: f64,
    /// Datagrams sent per node until convergence, mean.
    pub packets_per_node: f64,
    /// Wall-clock seconds for all runs.
    pub wall_s: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// First run: (virtual seconds, fraction of nodes that see every member), for plots.
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

/// Fraction of running nodes whose view holds as many live members as are running.
fn fraction_complete(sim: &Sim) -> f64 {
    let up = sim.up_ids();
    let full = up.iter().filter(|&&id| sim.node(id).is_some_and(|n| n.live_count() + 1 == up.len())).count();
    full as f64 / up.len().max(1) as f64
}

/// Mean live view size (members seen, itself included) over running nodes.
fn mean_view(sim: &Sim) -> f64 {
    let up = sim.up_ids();
    let total: usize = up.iter().filter_map(|&id| sim.node(id).map(|n| n.live_count() + 1)).sum();
    total as f64 / up.len().max(1) as f64
}

/// N nodes start within the first second and join through node 0.
pub fn join(common: &Common, limit: Duration, mut progress: impl FnMut(usize)) -> JoinResult {
    let wall = Instant::now();
    let mut times = Vec::new();
    let mut packets = Vec::new();
    let mut all = true;
    let mut curve = Vec::new();
    for run in 0..common.runs {
        let seed = common.seed + run as u64;
        let (mut sim, ids) = new_cluster(seed, common, &common.config);
        sim.record_trace(false);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        // Joins spread over the first second, as processes of a deployment start.
        let mut order: Vec<NodeId> = ids[1..].to_vec();
        order.shuffle(&mut rng);
        let step = Duration::from_secs(1) / (order.len().max(1) as u32);
        for id in order {
            sim.run_for(step);
            sim.join(id, &[ids[0]]);
        }
        let step = if common.nodes > 2000 { Duration::from_millis(500) } else { Duration::from_millis(100) };
        let ok = sim.run_until_cond(step, limit, |s| {
            if run == 0 {
                curve.push((s.elapsed().as_secs_f64(), fraction_complete(s)));
            }
            s.converged()
        });
        all &= ok;
        if ok {
            times.push(sim.elapsed().as_secs_f64());
        }
        packets.push(sim.stats().sent as f64 / common.nodes as f64);
        progress(run + 1);
    }
    JoinResult {
        scenario: "join",
        nodes: common.nodes,
        runs: common.runs,
        converged: all,
        converge_s: mean_sd(&times).0,
        converge_s_max: times.iter().copied().fold(f64::NAN, f64::max),
        packets_per_node: mean_sd(&packets).0,
        wall_s: wall.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_mib(),
        curve,
    }
}

/// Result of `gossip sim failure`.
#[derive(Debug, Clone, Serialize)]
pub struct FailureResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Cluster size.
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Probe periods from the crash until the first member's failed probe raises suspicion.
    pub first_detect_periods_mean: f64,
    /// Its standard deviation.
    pub first_detect_periods_sd: f64,
    /// Probe periods from the crash until the first probe of the crashed member was sent.
    pub first_probe_periods_mean: f64,
    /// Seconds from the crash until every survivor declared it dead.
    pub detect_all_s_mean: f64,
    /// Its standard deviation.
    pub detect_all_s_sd: f64,
    /// 99th percentile.
    pub detect_all_s_p99: f64,
    /// Runs where some survivor had not declared it dead within the limit.
    pub undetected_runs: usize,
    /// Live members declared dead by anyone, over all runs.
    pub false_dead: usize,
    /// Wall-clock seconds for all runs.
    pub wall_s: f64,
    /// Per run: seconds from the crash to the first suspicion, for plots.
    #[serde(skip)]
    pub first_detect_s_runs: Vec<f64>,
    /// Per run: seconds from the crash until every survivor declared it dead, for plots.
    #[serde(skip)]
    pub detect_all_s_runs: Vec<f64>,
}

fn first_time<'a>(trace: impl Iterator<Item = &'a TraceEntry>, pred: impl Fn(&TraceEntry) -> bool) -> Option<Duration> {
    trace.filter(|e| pred(e)).map(|e| e.at).min()
}

/// Counts `MemberDown` events about members other than `crashed` (false positives).
fn false_downs(trace: &[TraceEntry], crashed: &HashSet<(String, u64)>) -> usize {
    trace
        .iter()
        .filter(|e| match &e.event {
            Event::MemberDown(m) => !crashed.contains(&(m.name.to_string(), m.generation)),
            _ => false,
        })
        .count()
}

/// One member of an already-converged cluster crashes at a random moment.
pub fn failure(common: &Common, mut progress: impl FnMut(usize)) -> FailureResult {
    let wall = Instant::now();
    let probe = common.config.probe_interval.as_secs_f64();
    let (mut first, mut first_probe, mut all, mut undetected, mut false_dead) = (vec![], vec![], vec![], 0, 0);
    for run in 0..common.runs {
        let seed = common.seed + run as u64;
        let (mut sim, ids) = new_cluster(seed, common, &common.config);
        sim.prime_converged();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfa11);
        sim.run_for(Duration::from_secs(5) + Duration::from_secs_f64(rng.random::<f64>() * 5.0));
        sim.take_trace();
        let victim = ids[rng.random_range(0..ids.len())];
        let name = sim.name(victim).to_owned();
        let crash_at = sim.elapsed();
        sim.crash(victim);
        let survivors = ids.len() - 1;
        let mut downs: HashSet<NodeId> = HashSet::new();
        let mut trace = Vec::new();
        let limit = crash_at + Duration::from_secs(300);
        while downs.len() < survivors && sim.elapsed() < limit {
            sim.run_for(Duration::from_millis(100));
            for e in sim.take_trace() {
                if let Event::MemberDown(m) = &e.event {
                    if m.name == name.as_str() {
                        downs.insert(e.node);
                    }
                }
                if matches!(&e.event, Event::MemberDown(_) | Event::MemberSuspect(_)) {
                    trace.push(e);
                }
            }
        }
        let crashed: HashSet<(String, u64)> = [(name.clone(), 1)].into_iter().collect();
        false_dead += false_downs(&trace, &crashed);
        let first_suspect =
            first_time(trace.iter(), |e| matches!(&e.event, Event::MemberSuspect(m) if m.name == name.as_str()));
        if let Some(t) = first_suspect {
            first.push((t - crash_at).as_secs_f64() / probe);
            // The failed probe concluded its direct wait (at its floor once round trips are
            // measured, as here) plus probe_timeout for the helpers after it was sent.
            let wait = (common.config.min_probe_timeout + common.config.probe_timeout).as_secs_f64() / probe;
            first_probe.push(((t - crash_at).as_secs_f64() / probe - wait).max(0.0));
        }
        if downs.len() == survivors {
            let last = trace
                .iter()
                .filter(|e| matches!(&e.event, Event::MemberDown(m) if m.name == name.as_str()))
                .map(|e| e.at)
                .max()
                .unwrap_or(crash_at);
            all.push((last - crash_at).as_secs_f64());
        } else {
            undetected += 1;
        }
        progress(run + 1);
    }
    let (fm, fsd) = mean_sd(&first);
    let (am, asd) = mean_sd(&all);
    FailureResult {
        scenario: "failure",
        nodes: common.nodes,
        runs: common.runs,
        first_detect_periods_mean: fm,
        first_detect_periods_sd: fsd,
        first_probe_periods_mean: mean_sd(&first_probe).0,
        detect_all_s_mean: am,
        detect_all_s_sd: asd,
        detect_all_s_p99: percentile(&all, 0.99),
        undetected_runs: undetected,
        false_dead,
        wall_s: wall.elapsed().as_secs_f64(),
        first_detect_s_runs: first.iter().map(|p| p * probe).collect(),
        detect_all_s_runs: all,
    }
}

/// Result of `gossip sim stall`.
#[derive(Debug, Clone, Serialize)]
pub struct StallResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Cluster size.
    pub nodes: usize,
    /// Runs (each once with Lifeguard, once without, same seed).
    pub runs: usize,
    /// Virtual seconds of stalls per run.
    pub duration_s: f64,
    /// Starvation episodes per run.
    pub stalls_per_run: f64,
    /// Declarations of live members as dead, with Lifeguard, summed over runs.
    pub false_dead_lifeguard: usize,
    /// The same without Lifeguard.
    pub false_dead_plain: usize,
    /// Declarations of members that were never starved (healthy) as dead, with Lifeguard:
    /// the false positives the Lifeguard paper counts.
    pub false_dead_healthy_lifeguard: usize,
    /// The same without Lifeguard.
    pub false_dead_healthy_plain: usize,
    /// Suspicions of live members raised, with Lifeguard.
    pub false_suspect_lifeguard: usize,
    /// The same without Lifeguard.
    pub false_suspect_plain: usize,
    /// Seconds from a real crash (at the end of the stall period) until every survivor
    /// declared it dead, with Lifeguard (mean).
    pub detect_all_s_lifeguard: f64,
    /// The same without Lifeguard.
    pub detect_all_s_plain: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
}

struct StallRun {
    false_dead: usize,
    false_dead_healthy: usize,
    false_suspect: usize,
    detect_all_s: Option<f64>,
    stalls: usize,
}

fn stall_run(common: &Common, seed: u64, lifeguard: bool, duration: Duration) -> StallRun {
    let config = Config { lifeguard, ..common.config.clone() };
    let (mut sim, ids) = new_cluster(seed, common, &config);
    sim.prime_converged();
    sim.run_for(Duration::from_secs(5));
    sim.take_trace();
    // Starvation plan drawn from its own RNG, so both modes see the same plan. A starved
    // member spends an episode of 20-40 s processing every datagram 2-12 s late, in order (its
    // timers stay on time, so its probes' acks look missed), and now and then pauses outright
    // for 0.5-3 s; about 5 % of members are starved at any time.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57a1);
    let tick = Duration::from_millis(100);
    let mut elapsed = Duration::ZERO;
    let mut stalls = 0;
    let mut trace = Vec::new();
    let mut episodes: std::collections::BTreeMap<NodeId, (Duration, Duration)> = Default::default();
    let mut starved: HashSet<String> = HashSet::new();
    let starts_per_tick = 0.05 * common.nodes as f64 / 300.0;
    while elapsed < duration {
        let mut k = starts_per_tick.floor() as usize;
        if rng.random::<f64>() < starts_per_tick.fract() {
            k += 1;
        }
        for _ in 0..k {
            let id = ids[rng.random_range(0..ids.len())];
            let len = Duration::from_millis(rng.random_range(20_000..40_000));
            if let std::collections::btree_map::Entry::Vacant(slot) = episodes.entry(id) {
                let delay = Duration::from_millis(rng.random_range(2_000..12_000));
                sim.slow_down(id, delay, len);
                slot.insert((elapsed + len, elapsed));
                starved.insert(sim.name(id).to_owned());
                stalls += 1;
            }
        }
        episodes.retain(|_, (end, _)| *end > elapsed);
        for (&id, (_, next)) in episodes.iter_mut() {
            if elapsed >= *next && !sim.is_stalled(id) {
                let len = Duration::from_millis(rng.random_range(500..3000));
                sim.stall(id, len);
                *next = elapsed + len + Duration::from_millis(rng.random_range(2000..8000));
            }
        }
        sim.run_for(tick);
        elapsed += tick;
        trace.extend(sim.take_trace());
    }
    // Let the last stalls end, then crash one member for real.
    sim.run_for(Duration::from_secs(30));
    trace.extend(sim.take_trace());
    let no_crash: HashSet<(String, u64)> = HashSet::new();
    let false_dead = false_downs(&trace, &no_crash);
    let false_dead_healthy =
        trace.iter().filter(|e| matches!(&e.event, Event::MemberDown(m) if !starved.contains(m.name.as_str()))).count();
    let false_suspect = trace.iter().filter(|e| matches!(&e.event, Event::MemberSuspect(_))).count();
    let victim = ids[rng.random_range(0..ids.len())];
    let name = sim.name(victim).to_owned();
    let crash_at = sim.elapsed();
    sim.crash(victim);
    let ok = sim.run_until_cond(Duration::from_millis(100), Duration::from_secs(300), |s| {
        s.count_seeing_gone(&name) == s.up_ids().len()
    });
    StallRun {
        false_dead,
        false_dead_healthy,
        false_suspect,
        detect_all_s: ok.then(|| (sim.elapsed() - crash_at).as_secs_f64()),
        stalls,
    }
}

/// Members intermittently CPU-starved, Lifeguard on and off on the same seeds.
pub fn stall(common: &Common, duration: Duration, mut progress: impl FnMut(usize)) -> StallResult {
    let wall = Instant::now();
    let (mut fl, mut fp, mut sl, mut sp, mut dl, mut dp, mut stalls) = (0, 0, 0, 0, vec![], vec![], 0);
    let (mut hl, mut hp) = (0, 0);
    for run in 0..common.runs {
        let seed = common.seed + run as u64;
        let a = stall_run(common, seed, true, duration);
        let b = stall_run(common, seed, false, duration);
        fl += a.false_dead;
        hl += a.false_dead_healthy;
        hp += b.false_dead_healthy;
        fp += b.false_dead;
        sl += a.false_suspect;
        sp += b.false_suspect;
        dl.extend(a.detect_all_s);
        dp.extend(b.detect_all_s);
        stalls += a.stalls;
        progress(run + 1);
    }
    StallResult {
        scenario: "stall",
        nodes: common.nodes,
        runs: common.runs,
        duration_s: duration.as_secs_f64(),
        stalls_per_run: stalls as f64 / common.runs.max(1) as f64,
        false_dead_lifeguard: fl,
        false_dead_plain: fp,
        false_dead_healthy_lifeguard: hl,
        false_dead_healthy_plain: hp,
        false_suspect_lifeguard: sl,
        false_suspect_plain: sp,
        detect_all_s_lifeguard: mean_sd(&dl).0,
        detect_all_s_plain: mean_sd(&dp).0,
        wall_s: wall.elapsed().as_secs_f64(),
    }
}

/// Result of `gossip sim partition`.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Cluster size.
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Seconds the partition was held.
    pub hold_s: f64,
    /// Seconds from the split until every node declared every node across it dead (mean).
    pub split_detected_s: f64,
    /// Seconds from healing until the full membership was back everywhere (mean).
    pub healed_s: f64,
    /// Runs that did not heal within the limit.
    pub unhealed_runs: usize,
    /// Membership changes made during the partition (a restart on one side, a leave on the
    /// other) that some node still had not seen once healed.
    pub lost_updates: usize,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// First run: (virtual seconds since the split, mean members seen per node), for plots.
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

/// Split 50/50, hold, heal.
pub fn partition(common: &Common, hold: Duration, mut progress: impl FnMut(usize)) -> PartitionResult {
    let wall = Instant::now();
    let (mut split, mut healed, mut unhealed, mut lost) = (vec![], vec![], 0, 0);
    let mut curve = Vec::new();
    for run in 0..common.runs {
        let seed = common.seed + run as u64;
        let (mut sim, ids) = new_cluster(seed, common, &common.config);
        sim.record_trace(false);
        sim.prime_converged();
        for &id in &ids {
            sim.join(id, &[ids[0], ids[ids.len() / 2]]); // seeds on both sides
        }
        sim.run_for(Duration::from_secs(5));
        let (a, b) = ids.split_at(ids.len() / 2);
        let (a, b) = (a.to_vec(), b.to_vec());
        sim.partition(&[&a, &b]);
        let split_at = sim.elapsed();
        let a_names: Vec<String> = a.iter().map(|&i| sim.name(i).to_owned()).collect();
        let b_names: Vec<String> = b.iter().map(|&i| sim.name(i).to_owned()).collect();
        let sees_split = |s: &Sim| {
            a.iter().all(|&i| {
                b_names.iter().all(|n| s.node(i).is_none_or(|x| x.member(n).is_none_or(|m| m.state.is_gone())))
            }) && b.iter().all(|&i| {
                a_names.iter().all(|n| s.node(i).is_none_or(|x| x.member(n).is_none_or(|m| m.state.is_gone())))
            })
        };
        let mut sample = |s: &Sim| {
            if run == 0 {
                curve.push(((s.elapsed() - split_at).as_secs_f64(), mean_view(s)));
            }
        };
        let ok = sim.run_until_cond(Duration::from_millis(500), hold, |s| {
            sample(s);
            sees_split(s)
        });
        if ok {
            split.push((sim.elapsed() - split_at).as_secs_f64());
        }
        // Changes on each side while split: a restart in A, a graceful leave in B.
        let restarted = a[a.len() - 1];
        let leaver = b[b.len() - 1];
        sim.restart(restarted);
        sim.leave(leaver);
        let rest = hold.saturating_sub(sim.elapsed() - split_at);
        let hold_end = sim.now() + rest;
        sim.run_until_cond(Duration::from_millis(500), rest, |s| {
            sample(s);
            s.now() >= hold_end
        });
        sim.heal();
        let heal_at = sim.elapsed();
        let ok = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(300), |s| {
            sample(s);
            s.converged()
        });
        if ok {
            healed.push((sim.elapsed() - heal_at).as_secs_f64());
        } else {
            unhealed += 1;
        }
        let restarted_name = sim.name(restarted).to_owned();
        let leaver_name = sim.name(leaver).to_owned();
        for id in sim.up_ids() {
            let Some(n) = sim.node(id) else { continue };
            if id != restarted && n.member(&restarted_name).is_none_or(|m| m.generation != 2 || m.state.is_gone()) {
                lost += 1;
            }
            if n.member(&leaver_name).is_some_and(|m| !m.state.is_gone()) {
                lost += 1;
            }
        }
        progress(run + 1);
    }
    PartitionResult {
        scenario: "partition",
        nodes: common.nodes,
        runs: common.runs,
        hold_s: hold.as_secs_f64(),
        split_detected_s: mean_sd(&split).0,
        healed_s: mean_sd(&healed).0,
        unhealed_runs: unhealed,
        lost_updates: lost,
        wall_s: wall.elapsed().as_secs_f64(),
        curve,
    }
}

/// Result of `gossip sim churn`.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Initial cluster size.
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Churn events per second.
    pub rate_per_s: f64,
    /// Seconds of churn.
    pub duration_s: f64,
    /// Whether every run converged to the true membership after churn stopped.
    pub converged: bool,
    /// Seconds from the end of churn to convergence (mean).
    pub converge_s: f64,
    /// Declarations of running members as dead, summed over runs.
    pub false_dead: usize,
    /// Joins, leaves, crashes and restarts injected per run.
    pub events_per_run: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// First run: (virtual seconds, running members, mean members seen), for plots.
    #[serde(skip)]
    pub curve: Vec<(f64, f64, f64)>,
}

/// Joins, leaves, crashes and restarts at a rate; then quiet until convergence.
pub fn churn(common: &Common, rate_per_s: f64, duration: Duration, mut progress: impl FnMut(usize)) -> ChurnResult {
    let wall = Instant::now();
    let (mut all_ok, mut times, mut false_dead, mut events) = (true, vec![], 0, 0);
    let mut curve = Vec::new();
    for run in 0..common.runs {
        let seed = common.seed + run as u64;
        let (mut sim, mut ids) = new_cluster(seed, common, &common.config);
        sim.prime_converged();
        for &id in &ids {
            sim.join(id, &[ids[0]]);
        }
        sim.run_for(Duration::from_secs(5));
        sim.take_trace();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc4c4);
        let mut crashed_lives: HashSet<(String, u64)> = HashSet::new();
        let mut generation: HashMap<NodeId, u64> = ids.iter().map(|&i| (i, 1)).collect();
        let mut down: Vec<NodeId> = Vec::new();
        let tick = Duration::from_millis(100);
        let per_tick = rate_per_s * tick.as_secs_f64();
        let mut elapsed = Duration::ZERO;
        let mut trace = Vec::new();
        while elapsed < duration {
            if rng.random::<f64>() < per_tick {
                events += 1;
                let up: Vec<NodeId> = sim.up_ids().into_iter().filter(|&i| i != ids[0]).collect();
                match rng.random_range(0..4) {
                    0 => {
                        let id = sim.add_node(format!("n{}", sim.len()), common.config.clone());
                        sim.join(id, &[ids[0]]);
                        generation.insert(id, 1);
                        ids.push(id);
                    }
                    1 if up.len() > 2 => {
                        let id = up[rng.random_range(0..up.len())];
                        sim.leave(id);
                        down.push(id);
                    }
                    2 if up.len() > 2 => {
                        let id = up[rng.random_range(0..up.len())];
                        crashed_lives.insert((sim.name(id).to_owned(), generation[&id]));
                        sim.crash(id);
                        down.push(id);
                    }
                    _ if !down.is_empty() => {
                        let id = down.swap_remove(rng.random_range(0..down.len()));
                        if let Some(g) = generation.get_mut(&id) {
                            *g += 1;
                        }
                        sim.restart(id);
                    }
                    _ => {}
                }
            }
            sim.run_for(tick);
            elapsed += tick;
            trace.extend(sim.take_trace().into_iter().filter(|e| matches!(e.event, Event::MemberDown(_))));
            if run == 0 && (elapsed.as_millis() % 1000) < tick.as_millis() {
                curve.push((sim.elapsed().as_secs_f64(), sim.up_ids().len() as f64, mean_view(&sim)));
            }
        }
        // Left nodes keep running in the simulator until removed: stop them now.
        for id in sim.running_ids() {
            if sim.node(id).is_some_and(|n| n.has_left()) {
                sim.crash(id);
            }
        }
        let end = sim.elapsed();
        let ok = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(300), |s| {
            if run == 0 {
                curve.push((s.elapsed().as_secs_f64(), s.up_ids().len() as f64, mean_view(s)));
            }
            s.converged()
        });
        trace.extend(sim.take_trace().into_iter().filter(|e| matches!(e.event, Event::MemberDown(_))));
        all_ok &= ok;
        if ok {
            times.push((sim.elapsed() - end).as_secs_f64());
        }
        // A Down about a life that left gracefully is not a false positive of the detector
        // either, but it should have been seen as a leave: count it.
        false_dead += false_downs(&trace, &crashed_lives);
        progress(run + 1);
    }
    ChurnResult {
        scenario: "churn",
        nodes: common.nodes,
        runs: common.runs,
        rate_per_s,
        duration_s: duration.as_secs_f64(),
        converged: all_ok,
        converge_s: mean_sd(&times).0,
        false_dead,
        events_per_run: events as f64 / common.runs.max(1) as f64,
        wall_s: wall.elapsed().as_secs_f64(),
        curve,
    }
}

/// Result of `gossip sim antientropy`.
#[derive(Debug, Clone, Serialize)]
pub struct AntiEntropyResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Cluster size.
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Nodes that write keys (the others only replicate).
    pub writers: usize,
    /// Keys each writer sets at the start.
    pub keys_per_node: usize,
    /// Key updates per second across the cluster during the update phase.
    pub updates_per_s: f64,
    /// Whether every run converged (initial keys everywhere, then every update everywhere).
    pub converged: bool,
    /// Seconds from the initial writes until every node holds every key (mean).
    pub converge_s: f64,
    /// Key/value bytes (exchanges and update rumors) sent per node per second while updates
    /// flow.
    pub bytes_per_node_s: f64,
    /// Anti-entropy bytes sent per node per second once in sync (no updates).
    pub idle_bytes_per_node_s: f64,
    /// Longest time from an update to every node holding it.
    pub max_staleness_s: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// First run, from the initial writes until in sync after the updates: (virtual seconds
    /// since the initial writes, fraction of nodes holding every key at its latest version,
    /// fraction of key replicas at their latest version), for plots.
    #[serde(skip)]
    pub curve: Vec<(f64, f64, f64)>,
    /// First run: when the updates started and stopped, seconds since the initial writes.
    #[serde(skip)]
    pub updates_window_s: (f64, f64),
}

/// What a node should hold for the `antientropy` curve: every writer's keys at the latest
/// version written.
struct KeyTruth {
    owners: Vec<String>,
    keys: Vec<String>,
    /// `latest[w][k]`: latest version of writer `w`'s key `k` (0: never written).
    latest: Vec<Vec<u64>>,
    /// Least virtual time between two samples: a sample reads N x writers x keys values.
    every: Duration,
    last: Option<Duration>,
}

impl KeyTruth {
    fn new(nodes: usize, writers: usize, keys: usize) -> Self {
        let cost = (nodes * writers * keys) as f64;
        KeyTruth {
            owners: (0..writers).map(|w| format!("n{w}")).collect(),
            keys: (0..keys).map(|k| format!("key-{k}")).collect(),
            latest: vec![vec![0; keys]; writers],
            every: Duration::from_secs_f64((cost / 2e5).max(0.5)),
            last: None,
        }
    }

    /// (fraction of running nodes holding every key, fraction of key replicas up to date).
    fn holding(&self, sim: &Sim) -> (f64, f64) {
        let up = sim.up_ids();
        let (mut full, mut current, mut total) = (0usize, 0usize, 0usize);
        for n in up.iter().filter_map(|&i| sim.node(i)) {
            let mut all = true;
            for (owner, versions) in self.owners.iter().zip(&self.latest) {
                for (key, &version) in self.keys.iter().zip(versions) {
                    if version == 0 {
                        continue;
                    }
                    total += 1;
                    if n.get(owner, key).is_some_and(|(_, have)| have >= version) {
                        current += 1;
                    } else {
                        all = false;
                    }
                }
            }
            full += usize::from(all);
        }
        (full as f64 / up.len().max(1) as f64, if total == 0 { 1.0 } else { current as f64 / total as f64 })
    }

    /// Samples into `curve` unless the last sample is too recent (or `force`).
    fn sample(&mut self, sim: &Sim, since: Duration, curve: &mut Vec<(f64, f64, f64)>, force: bool) {
        let now = sim.elapsed();
        if !force && self.last.is_some_and(|l| now < l + self.every) {
            return;
        }
        self.last = Some(now);
        let (full, current) = self.holding(sim);
        curve.push(((now - since).as_secs_f64(), full, current));
    }
}

/// Key/value bytes a node has sent: its state messages (exchanges and piggybacked update
/// rumors), plus an envelope for each digest and delta (they travel in datagrams of their own;
/// the opening hash rides on a ping, rumors on packets sent anyway).
fn state_bytes(n: &gossip_core::Node<NodeId>, envelope: u64) -> u64 {
    use gossip_core::wire::MessageKind;
    let m = n.metrics();
    let kinds = [MessageKind::StateSyn, MessageKind::StateDigest, MessageKind::StateDelta, MessageKind::StateUpdate];
    let bytes: u64 = kinds.iter().map(|k| m.message_bytes_out[k.index()]).sum();
    let own = m.sent(MessageKind::StateDigest) + m.sent(MessageKind::StateDelta);
    bytes + own * envelope
}

fn total_state_bytes(sim: &Sim, envelope: u64) -> u64 {
    sim.up_ids().iter().filter_map(|&i| sim.node(i)).map(|n| state_bytes(n, envelope)).sum()
}

/// `gossip sim antientropy`: `writers` nodes of a converged cluster each set `keys_per_node`
/// keys; time until every node holds all of them. Then `updates_per_s` random updates per
/// second for `duration` (traffic and the staleness of each update), then as long idle (the
/// traffic of anti-entropy in sync).
pub fn antientropy(
    common: &Common,
    writers: usize,
    keys_per_node: usize,
    updates_per_s: f64,
    duration: Duration,
    mut progress: impl FnMut(usize),
) -> AntiEntropyResult {
    let wall = Instant::now();
    let writers = writers.min(common.nodes);
    let (mut converged_all, mut times, mut busy, mut idle, mut staleness) = (true, vec![], vec![], vec![], 0.0f64);
    let (mut curve, mut updates_window_s) = (Vec::new(), (0.0, 0.0));
    for run in 0..common.runs {
        let seed = common.seed + run as u64;
        let (mut sim, ids) = new_cluster(seed, common, &common.config);
        sim.record_trace(false);
        sim.prime_converged();
        sim.run_for(Duration::from_secs(2));
        let envelope = (common.config.cluster_label.len() + 8) as u64;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xae);
        // The first run also records how the keys spread (reading every replica: not free).
        let mut truth = (run == 0).then(|| KeyTruth::new(common.nodes, writers, keys_per_node));
        for (w, &id) in ids[..writers].iter().enumerate() {
            if let Some(n) = sim.node_mut(id) {
                for k in 0..keys_per_node {
                    let version = n.set(&format!("key-{k}"), vec![k as u8; 32]);
                    if let (Some(t), Ok(v)) = (truth.as_mut(), version) {
                        t.latest[w][k] = v;
                    }
                }
            }
        }
        let start = sim.elapsed();
        let in_sync = |s: &Sim| {
            let mut hashes = s.up_ids().into_iter().filter_map(|i| s.node(i).map(|n| n.state_digest_hash()));
            let first = hashes.next();
            hashes.all(|h| Some(h) == first)
        };
        let mut sample = |s: &Sim, force: bool| {
            if let Some(t) = truth.as_mut() {
                t.sample(s, start, &mut curve, force);
            }
        };
        // Checking every node's digest is O(N x participants): every half second is plenty.
        let ok = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(3600), |s| {
            sample(s, false);
            in_sync(s)
        });
        sample(&sim, true);
        converged_all &= ok;
        if ok {
            times.push((sim.elapsed() - start).as_secs_f64());
        }
        // Updates: random writer, random key, at a steady rate.
        let before = total_state_bytes(&sim, envelope);
        let phase_start = sim.elapsed();
        let step = Duration::from_millis(100);
        let per_step = updates_per_s * step.as_secs_f64();
        let mut carry = 0.0;
        let mut pending: Vec<(usize, String, u64, Duration)> = Vec::new();
        while sim.elapsed() - phase_start < duration {
            carry += per_step;
            while carry >= 1.0 && writers > 0 && keys_per_node > 0 {
                carry -= 1.0;
                let w = rng.random_range(0..writers);
                let key = format!("key-{}", rng.random_range(0..keys_per_node));
                if let Some(version) = sim.node_mut(ids[w]).and_then(|n| n.set(&key, vec![rng.random::<u8>(); 32]).ok())
                {
                    if let Some(t) = truth.as_mut() {
                        if let Some(k) = t.keys.iter().position(|name| *name == key) {
                            t.latest[w][k] = version;
                        }
                    }
                    pending.push((w, key, version, sim.elapsed()));
                }
            }
            sim.run_for(step);
            if let Some(t) = truth.as_mut() {
                t.sample(&sim, start, &mut curve, false);
            }
            let now = sim.elapsed();
            pending.retain(|(w, key, version, at)| {
                let owner = format!("n{w}");
                let everywhere = sim
                    .up_ids()
                    .iter()
                    .all(|&i| sim.node(i).is_some_and(|n| n.get(&owner, key).is_some_and(|(_, v)| v >= *version)));
                if everywhere {
                    staleness = staleness.max((now - *at).as_secs_f64());
                }
                !everywhere
            });
        }
        let busy_secs = (sim.elapsed() - phase_start).as_secs_f64();
        busy.push((total_state_bytes(&sim, envelope) - before) as f64 / common.nodes as f64 / busy_secs);
        if run == 0 {
            updates_window_s = ((phase_start - start).as_secs_f64(), (sim.elapsed() - start).as_secs_f64());
        }
        // Let the last updates land, then measure idle traffic.
        let ok = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(3600), |s| {
            if let Some(t) = truth.as_mut() {
                t.sample(s, start, &mut curve, false);
            }
            in_sync(s)
        });
        if let Some(t) = truth.as_mut() {
            t.sample(&sim, start, &mut curve, true);
        }
        converged_all &= ok;
        // Updates still pending landed by now at the latest.
        for (_, _, _, at) in pending.drain(..) {
            staleness = staleness.max((sim.elapsed() - at).as_secs_f64());
        }
        // Let the last rumors' retransmissions run out before measuring the idle traffic.
        sim.run_for(Duration::from_secs(10));
        let before = total_state_bytes(&sim, envelope);
        let idle_start = sim.elapsed();
        sim.run_for(duration);
        let idle_secs = (sim.elapsed() - idle_start).as_secs_f64();
        idle.push((total_state_bytes(&sim, envelope) - before) as f64 / common.nodes as f64 / idle_secs);
        progress(run + 1);
    }
    AntiEntropyResult {
        scenario: "antientropy",
        nodes: common.nodes,
        runs: common.runs,
        writers,
        keys_per_node,
        updates_per_s,
        converged: converged_all,
        converge_s: mean_sd(&times).0,
        bytes_per_node_s: mean_sd(&busy).0,
        idle_bytes_per_node_s: mean_sd(&idle).0,
        max_staleness_s: staleness,
        wall_s: wall.elapsed().as_secs_f64(),
        curve,
        updates_window_s,
    }
}

/// Result of `gossip sim crdt`.
#[derive(Debug, Clone, Serialize)]
pub struct CrdtResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Cluster size.
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Counter increments and set edits per node.
    pub ops_per_node: usize,
    /// Whether, in every run, every replica's counter equals the true total and every
    /// replica's set is the same.
    pub exact: bool,
    /// Seconds from the first update until then (mean over runs).
    pub converge_s: f64,
    /// Slowest run.
    pub converge_s_max: f64,
    /// The true total of the counter (first run).
    pub counter_total: i128,
    /// Elements left in the set (first run).
    pub set_len: usize,
    /// Mean encoded size of a counter increment's delta, bytes.
    pub counter_delta_bytes: f64,
    /// Mean encoded size of a set add's delta, bytes.
    pub set_delta_bytes: f64,
    /// CRDT messages (rumors, digests, state pieces) sent per node per second until
    /// convergence, bytes.
    pub bytes_per_node_s: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// First run: (virtual seconds since the first update, fraction of nodes whose counter
    /// already holds its final value, the same for the set), for plots.
    #[serde(skip)]
    pub curve: Vec<(f64, f64, f64)>,
}

/// For the `crdt` curve: the sample at which each replica last changed. Once every replica
/// is exact, a replica has held its final value since its last change.
#[derive(Debug)]
struct Settling<T> {
    prev: Vec<Option<T>>,
    last_change: Vec<usize>,
}

impl<T: PartialEq> Settling<T> {
    fn new(nodes: usize) -> Self {
        Settling { prev: (0..nodes).map(|_| None).collect(), last_change: vec![0; nodes] }
    }

    /// Records replica `i`'s value at sample `j`.
    fn observe(&mut self, i: usize, j: usize, value: Option<T>) {
        if self.prev[i] != value {
            self.prev[i] = value;
            self.last_change[i] = j;
        }
    }

    /// Fraction of replicas settled at sample `j`.
    fn settled(&self, j: usize) -> f64 {
        self.last_change.iter().filter(|&&c| c <= j).count() as f64 / self.last_change.len().max(1) as f64
    }
}

fn crdt_bytes(sim: &Sim) -> u64 {
    use gossip_core::wire::MessageKind;
    let kinds = [MessageKind::CrdtDelta, MessageKind::CrdtSyn, MessageKind::CrdtDigest, MessageKind::CrdtState];
    sim.up_ids()
        .iter()
        .filter_map(|&i| sim.node(i))
        .map(|n| {
            let m = n.metrics();
            kinds.iter().map(|k| m.message_bytes_out[k.index()]).sum::<u64>()
        })
        .sum()
}

/// `gossip sim crdt`: in a converged cluster every node, `ops_per_node` times over a second,
/// increments the shared counter `hits` by a random amount (one in five times: decrements
/// it), adds an element of its own to the shared set `tags`, and removes a random element it
/// sees; then time until every replica holds the exact total and the same set.
/// With `with_set` false, only the counter (the set's full states are what cost at scale).
pub fn crdt(common: &Common, ops_per_node: usize, with_set: bool, mut progress: impl FnMut(usize)) -> CrdtResult {
    use gossip_core::crdt::{AwSet, Crdt, PnCounter};
    let wall = Instant::now();
    let (mut exact, mut times) = (true, Vec::new());
    let (mut counter_total, mut set_len, mut bytes_rate) = (0i128, 0usize, Vec::new());
    let (mut counter_delta, mut set_delta) = ((0usize, 0usize), (0usize, 0usize));
    let mut curve = Vec::new();
    for run in 0..common.runs {
        let seed = common.seed + run as u64;
        let (mut sim, ids) = new_cluster(seed, common, &common.config);
        sim.record_trace(false);
        sim.prime_converged();
        sim.run_for(Duration::from_secs(1));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc7d7);
        let mut total = 0i128;
        let start = sim.elapsed();
        let before = crdt_bytes(&sim);
        let step = Duration::from_millis(1000 / ops_per_node.max(1) as u64);
        // The first run samples every replica: (sample times, counters, sets).
        let mut track = (run == 0).then(|| (Vec::new(), Settling::new(ids.len()), Settling::new(ids.len())));
        let mut sample = |s: &Sim| {
            let Some((at, counters, sets)) = track.as_mut() else { return };
            let j = at.len();
            at.push((s.elapsed() - start).as_secs_f64());
            for (i, &id) in ids.iter().enumerate() {
                let n = s.node(id);
                counters.observe(i, j, n.and_then(|n| n.crdt::<PnCounter>("hits")).map(PnCounter::value));
                if with_set {
                    sets.observe(i, j, n.and_then(|n| n.crdt::<AwSet>("tags")).cloned());
                }
            }
        };
        sample(&sim);
        for op in 0..ops_per_node {
            for (i, &id) in ids.iter().enumerate() {
                let by: u64 = rng.random_range(1..100);
                let up = rng.random_range(0..5) != 0;
                let victim: u32 = rng.random();
                let Some(n) = sim.node_mut(id) else { continue };
                let counted =
                    n.update_crdt::<PnCounter>(
                        "hits",
                        |c, me| {
                            if up {
                                c.increment(me, by)
                            } else {
                                c.decrement(me, by)
                            }
                        },
                    );
                if let Ok(delta) = counted {
                    total += if up { by as i128 } else { -(by as i128) };
                    counter_delta.0 += postcard::experimental::serialized_size(&delta.into_any()).unwrap_or(0);
                    counter_delta.1 += 1;
                }
                if !with_set {
                    continue;
                }
                let element = format!("n{i}-{op}").into_bytes();
                if let Ok(delta) = n.update_crdt::<AwSet>("tags", |s, me| s.add(me, element)) {
                    set_delta.0 += postcard::experimental::serialized_size(&delta.into_any()).unwrap_or(0);
                    set_delta.1 += 1;
                }
                let seen: Vec<Vec<u8>> =
                    n.crdt::<AwSet>("tags").map(|s| s.elements().map(<[u8]>::to_vec).collect()).unwrap_or_default();
                if !seen.is_empty() {
                    let gone = seen[victim as usize % seen.len()].clone();
                    let _ = n.update_crdt::<AwSet>("tags", |s, _| s.remove(&gone));
                }
            }
            sim.run_for(step);
            sample(&sim);
        }
        let settled = |s: &Sim| {
            let up = s.up_ids();
            let counts_ok = up
                .iter()
                .all(|&i| s.node(i).and_then(|n| n.crdt::<PnCounter>("hits")).is_some_and(|c| c.value() == total));
            let first = up.first().and_then(|&i| s.node(i)).and_then(|n| n.crdt::<AwSet>("tags"));
            let sets_ok =
                || first.is_some() && up.iter().all(|&i| s.node(i).and_then(|n| n.crdt::<AwSet>("tags")) == first);
            counts_ok && (!with_set || sets_ok())
        };
        let ok = sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(600), |s| {
            let done = settled(s);
            sample(s);
            done
        });
        if let Some((at, counters, sets)) = &track {
            let set = |j: usize| if with_set { sets.settled(j) } else { f64::NAN };
            curve = at.iter().enumerate().map(|(j, &t)| (t, counters.settled(j), set(j))).collect();
        }
        exact &= ok;
        let secs = (sim.elapsed() - start).as_secs_f64();
        if ok {
            times.push(secs);
        }
        bytes_rate.push((crdt_bytes(&sim) - before) as f64 / common.nodes as f64 / secs);
        if run == 0 {
            counter_total = total;
            set_len =
                ids.first().and_then(|&i| sim.node(i)).and_then(|n| n.crdt::<AwSet>("tags")).map_or(0, AwSet::len);
        }
        progress(run + 1);
    }
    let mean = |(sum, n): (usize, usize)| sum as f64 / n.max(1) as f64;
    CrdtResult {
        scenario: "crdt",
        nodes: common.nodes,
        runs: common.runs,
        ops_per_node,
        exact,
        converge_s: mean_sd(&times).0,
        converge_s_max: times.iter().copied().fold(f64::NAN, f64::max),
        counter_total,
        set_len,
        counter_delta_bytes: mean(counter_delta),
        set_delta_bytes: mean(set_delta),
        bytes_per_node_s: mean_sd(&bytes_rate).0,
        wall_s: wall.elapsed().as_secs_f64(),
        curve,
    }
}

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
        let mut rng = ChaCha8Rng::seed_from_u64(common.seed + run as u64);
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
