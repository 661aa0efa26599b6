//! Application-state scenarios: key/value anti-entropy and CRDT convergence.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{mean_sd, new_cluster, Common};
use crate::{NodeId, Sim};

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
        let seed = common.seed.wrapping_add(run as u64);
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
    /// Whether nodes signed self-state and CRDT claims.
    pub signed: bool,
    /// Over all runs and nodes: CRDT states refused as forged, and parts a node could not
    /// prove (both 0 in an honest signed cluster; always 0 unsigned).
    pub forged_or_unprovable: u64,
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
    /// With a steady phase ([`CrdtOptions::steady`]): CRDT bytes sent per node per second
    /// while updates trickle in (mean over runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steady_bytes_per_node_s: Option<f64>,
    /// With a steady phase: whether every replica was exact again within 120 s after it, in
    /// every run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steady_exact: Option<bool>,
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
    let kinds = [
        MessageKind::CrdtDelta,
        MessageKind::CrdtSyn,
        MessageKind::CrdtDigest,
        MessageKind::CrdtState,
        MessageKind::CrdtBuckets,
        MessageKind::CrdtInterval,
        MessageKind::CrdtAck,
    ];
    sim.up_ids()
        .iter()
        .filter_map(|&i| sim.node(i))
        .map(|n| {
            let m = n.metrics();
            kinds.iter().map(|k| m.message_bytes_out[k.index()]).sum::<u64>()
        })
        .sum()
}

/// What `gossip sim crdt` runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CrdtOptions {
    /// Counter updates (and set edits) per node, over one second.
    pub ops_per_node: usize,
    /// Whether the set is edited too.
    pub with_set: bool,
    /// Whether the cluster forms by a real join first.
    pub join_first: bool,
    /// After convergence, (seconds, counter increments per second across the cluster) of a
    /// steady phase: what repair costs while updates trickle in.
    pub steady: Option<(f64, f64)>,
    /// Whether nodes sign self-state and CRDT claims (Ed25519); the cluster then forms by a
    /// real join (the membership handed over at once carries no proofs).
    pub signed: bool,
}

/// `gossip sim crdt`: in a converged cluster every node, `ops_per_node` times over a second,
/// increments the shared counter `hits` by a random amount (one in five times: decrements
/// it), adds an element of its own to the shared set `tags`, and removes a random element it
/// sees; then time until every replica holds the exact total and the same set.
/// With `with_set` false, only the counter (the set's full states are what cost at scale).
///
/// With `join_first`, the cluster forms by joining through node 0 (a real join, leaner in
/// memory at large N than handing every node the whole membership at once) before the
/// updates start.
pub fn crdt(common: &Common, options: CrdtOptions, mut progress: impl FnMut(usize)) -> CrdtResult {
    use gossip_core::crdt::{AwSet, Crdt, PnCounter};
    let CrdtOptions { ops_per_node, with_set, join_first, steady, signed } = options;
    let join_first = join_first || signed;
    let (mut steady_rate, mut steady_exact) = (Vec::new(), true);
    let wall = Instant::now();
    let (mut exact, mut times) = (true, Vec::new());
    let mut forged_or_unprovable = 0u64;
    let (mut counter_total, mut set_len, mut bytes_rate) = (0i128, 0usize, Vec::new());
    let (mut counter_delta, mut set_delta) = ((0usize, 0usize), (0usize, 0usize));
    let mut curve = Vec::new();
    for run in 0..common.runs {
        let seed = common.seed.wrapping_add(run as u64);
        let (mut sim, ids) = if signed {
            super::new_signed_cluster(seed, common, &common.config)
        } else {
            new_cluster(seed, common, &common.config)
        };
        sim.record_trace(false);
        if join_first {
            for &id in &ids[1..] {
                sim.join(id, &ids[..1]);
            }
            sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), Sim::converged);
        } else {
            sim.prime_converged();
        }
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
        forged_or_unprovable += ids
            .iter()
            .filter_map(|&id| sim.node(id))
            .map(|n| n.metrics().forged_crdt_states + n.metrics().crdt_unprovable)
            .sum::<u64>();
        let secs = (sim.elapsed() - start).as_secs_f64();
        if ok {
            times.push(secs);
        }
        bytes_rate.push((crdt_bytes(&sim) - before) as f64 / common.nodes as f64 / secs);
        if let Some((secs, rate)) = steady {
            let (bytes, exact) = steady_counter_updates(&mut sim, &ids, &mut rng, &mut total, secs, rate);
            steady_rate.push(bytes);
            steady_exact &= exact;
        }
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
        signed,
        forged_or_unprovable,
        exact,
        converge_s: mean_sd(&times).0,
        converge_s_max: times.iter().copied().fold(f64::NAN, f64::max),
        counter_total,
        set_len,
        counter_delta_bytes: mean(counter_delta),
        set_delta_bytes: mean(set_delta),
        bytes_per_node_s: mean_sd(&bytes_rate).0,
        steady_bytes_per_node_s: steady.map(|_| mean_sd(&steady_rate).0),
        steady_exact: steady.map(|_| steady_exact),
        wall_s: wall.elapsed().as_secs_f64(),
        curve,
    }
}

/// The steady phase of `gossip sim crdt`: for `secs`, random live nodes increment the counter
/// `hits` by 1, `rate` times a second across the cluster (evenly spread). Returns the CRDT
/// bytes sent per node per second meanwhile, and whether every replica then holds the exact
/// total within 120 s.
fn steady_counter_updates(
    sim: &mut Sim,
    ids: &[NodeId],
    rng: &mut ChaCha8Rng,
    total: &mut i128,
    secs: f64,
    rate: f64,
) -> (f64, bool) {
    use gossip_core::crdt::PnCounter;
    let tick = Duration::from_millis(100);
    let before = crdt_bytes(sim);
    let (mut owed, mut elapsed) = (0.0, 0.0);
    while elapsed < secs {
        owed += rate * tick.as_secs_f64();
        while owed >= 1.0 {
            owed -= 1.0;
            let id = ids[rng.random_range(0..ids.len())];
            if let Some(n) = sim.node_mut(id) {
                if n.update_crdt::<PnCounter>("hits", |c, me| c.increment(me, 1)).is_ok() {
                    *total += 1;
                }
            }
        }
        sim.run_for(tick);
        elapsed += tick.as_secs_f64();
    }
    let bytes = (crdt_bytes(sim) - before) as f64 / ids.len() as f64 / secs.max(f64::MIN_POSITIVE);
    let want = *total;
    let exact = sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(120), |s| {
        s.up_ids()
            .iter()
            .all(|&i| s.node(i).and_then(|n| n.crdt::<PnCounter>("hits")).is_some_and(|c| c.value() == want))
    });
    (bytes, exact)
}
