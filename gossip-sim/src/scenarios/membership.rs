//! Membership scenarios: join, failure, stall, partition, churn.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use gossip_core::{Config, Event};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{mean_sd, new_cluster, peak_rss_mib, percentile, Common};
use crate::{NodeId, Sim, TraceEntry};

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
        let seed = common.seed.wrapping_add(run as u64);
        let (mut sim, ids) = new_cluster(seed, common, &common.config);
        sim.record_trace(false);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        // Joins spread over the first second, as processes of a deployment start.
        let mut order: Vec<NodeId> = ids[1..].to_vec();
        order.shuffle(&mut rng);
        let step = Duration::from_secs(1) / (order.len().max(1) as u32);
        let start = sim.now();
        for (i, id) in order.into_iter().enumerate() {
            sim.join_at(id, &[ids[0]], start + step * (i as u32 + 1));
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
        let seed = common.seed.wrapping_add(run as u64);
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
        let seed = common.seed.wrapping_add(run as u64);
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
        let seed = common.seed.wrapping_add(run as u64);
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
        let seed = common.seed.wrapping_add(run as u64);
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
            // Whole changes per tick, plus one more with the fraction's probability: any rate,
            // not at most one change per tick.
            let mut changes = per_tick.floor() as usize;
            if rng.random::<f64>() < per_tick.fract() {
                changes += 1;
            }
            for _ in 0..changes {
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
