//! `gossip sim rumor`: the pure rumor-mongering models of Demers et al., "Epidemic algorithms
//! for replicated database maintenance" (PODC 1987), in synchronous rounds.
//!
//! This is a model, not the protocol: it does not run [`gossip_core::Node`]. A node is one byte
//! of state (plus a `u16` counter for the counter variants), so a million nodes take a few MiB
//! and a run over them takes about a second.
//!
//! # The model
//!
//! With respect to the one rumor, a node is *susceptible* (does not know it), *infective* (knows
//! it and spreads it) or *removed* (knows it and has lost interest). At round 0 one node (node
//! 0; all nodes are alike) is infective and every other one susceptible. In every round
//! `1, 2, …` each node that takes part contacts [`RumorOptions::fanout`] distinct partners
//! chosen uniformly at random among the other nodes:
//!
//! - [`Mode::Push`]: only infective nodes contact partners; each contact is one message carrying
//!   the rumor; a susceptible partner becomes infected.
//! - [`Mode::Pull`]: every node asks its partners for news (the request is sent whatever the
//!   asker knows, as in anti-entropy); a partner that is infective answers with the rumor and a
//!   susceptible asker becomes infected.
//! - [`Mode::PushPull`]: every node contacts its partners; an infective caller pushes the rumor,
//!   and an infective callee answers with it, so one contact can carry the rumor both ways.
//!
//! Rounds are synchronous: every decision in a round reads the state the nodes had when the
//! round began. A node infected in round `r` starts spreading in round `r + 1`; "the partner
//! already knew" means it knew before round `r` began; a node that loses interest during round
//! `r` still answers and pushes for the rest of round `r` and is removed when the round ends.
//! So the result does not depend on the order in which the loop visits nodes (only on the
//! random draws).
//!
//! When an infective node loses interest ([`Variant`]):
//!
//! - *feedback* variants count only messages whose recipient already knew the rumor (the
//!   recipient says so in its answer): [`Variant::FeedbackCounter`] after `k` such messages,
//!   [`Variant::FeedbackCoin`] with probability `1/k` at each;
//! - *blind* variants count every message the node sends with the rumor, whatever the
//!   recipient knew: [`Variant::BlindCounter`] after `k` sends, [`Variant::BlindCoin`] with
//!   probability `1/k` at each send;
//! - [`Variant::Forever`] never loses interest.
//!
//! Optionally ([`RumorOptions::counter_reset`]) a feedback counter starts again from 0 whenever
//! a message finds a susceptible recipient: interest is lost after `k` unnecessary messages in
//! a row. (Within one round a node's messages then take effect in the loop's order; in push
//! with fanout 1 a node sends one message per round, so the order does not matter there.)
//!
//! In push-pull both directions count for the node that sent the rumor: a caller's push and a
//! callee's answer are each one message of their sender.
//!
//! A run ends after the first round that leaves no infective node; with [`Variant::Forever`]
//! (where no node is ever removed) after the first round that leaves every node informed. Either
//! way it also ends after [`RumorOptions::max_rounds`] rounds.
//!
//! # What is measured
//!
//! - *residue*: the fraction of nodes still susceptible when the run ends (Demers' `s`);
//! - *traffic*: messages that carry the rumor, per node (Demers' `m`): pushes, and answers to
//!   requests made by infective nodes. Pull requests are not counted there: every node sends
//!   them every round whatever rumors exist, so they are not this rumor's cost; the requests
//!   made by nodes that did not yet know the rumor are reported apart (`requests_mean`). A lost
//!   message still counts (it was sent);
//! - *t_ave* and *t_last*: the mean and the largest round in which nodes received the rumor,
//!   over the nodes that received it (the first node excluded) — Demers' delay measures;
//! - *rounds until all are informed*: the round in which the last susceptible node was
//!   infected, for the runs where that happened (then it equals t_last).
//!
//! With `loss > 0` each message (push, request or answer) is lost independently with that
//! probability: a lost push informs nobody and brings no feedback, a lost request gets no
//! answer, a lost answer informs nobody and brings no feedback. Blind variants still count the
//! lost send. The models in the paper have no loss.
//!
//! Runs use seeds `seed`, `seed + 1`, …; each run draws from its own [`ChaCha8Rng`], so the same
//! options give the same result, bit for bit.

use std::fmt;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::scenarios::{mean_sd, peak_rss_mib};

/// Who contacts whom in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Infective nodes send the rumor to random partners.
    Push,
    /// Every node asks random partners; infective partners answer with the rumor.
    Pull,
    /// Every node contacts random partners; the rumor goes whichever way an infective end sends it.
    PushPull,
}

impl Mode {
    /// The name used on the command line and in JSON (`push`, `pull`, `push-pull`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Push => "push",
            Mode::Pull => "pull",
            Mode::PushPull => "push-pull",
        }
    }
}

/// When an infective node loses interest in the rumor (becomes removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// After `k` messages whose recipient already knew the rumor.
    FeedbackCounter,
    /// After `k` messages sent, whatever the recipients knew.
    BlindCounter,
    /// With probability `1/k` at each message whose recipient already knew the rumor.
    FeedbackCoin,
    /// With probability `1/k` at each message sent.
    BlindCoin,
    /// Never: infective nodes spread for as long as the run lasts.
    Forever,
}

impl Variant {
    /// The name used on the command line and in JSON (`feedback-counter`, …).
    pub fn name(self) -> &'static str {
        match self {
            Variant::FeedbackCounter => "feedback-counter",
            Variant::BlindCounter => "blind-counter",
            Variant::FeedbackCoin => "feedback-coin",
            Variant::BlindCoin => "blind-coin",
            Variant::Forever => "forever",
        }
    }
}

/// Largest `--fanout` accepted.
pub const MAX_FANOUT: u32 = 64;

/// Options of one run-set.
#[derive(Debug, Clone, PartialEq)]
pub struct RumorOptions {
    /// Nodes (at least 2, at most `u32::MAX`).
    pub nodes: usize,
    /// Independent runs (seeds `seed`, `seed + 1`, …).
    pub runs: usize,
    /// Seed of the first run.
    pub seed: u64,
    /// Who contacts whom.
    pub mode: Mode,
    /// When nodes lose interest.
    pub variant: Variant,
    /// Counter limit, or `1/p` for the coin variants (1 to 65,535; ignored by `forever`).
    pub k: u32,
    /// Distinct partners each contacting node calls per round (1 to [`MAX_FANOUT`], and fewer
    /// than `nodes`).
    pub fanout: u32,
    /// [`Variant::FeedbackCounter`] only: a message that finds its recipient susceptible sets
    /// the sender's counter back to 0, so a node loses interest after `k` unnecessary messages
    /// *in a row*. Off by default (after `k` in all). With it on, push reproduces the residue
    /// and traffic of Demers' Table 1 (see docs/EXPERIMENTS.md).
    pub counter_reset: bool,
    /// Probability that a message is lost, in [0, 1).
    pub loss: f64,
    /// A run stops after this many rounds even if nodes are still infective.
    pub max_rounds: u32,
}

impl Default for RumorOptions {
    fn default() -> Self {
        RumorOptions {
            nodes: 1000,
            runs: 1,
            seed: 1,
            mode: Mode::Push,
            variant: Variant::FeedbackCounter,
            k: 2,
            fanout: 1,
            counter_reset: false,
            loss: 0.0,
            max_rounds: 10_000,
        }
    }
}

/// Options that describe no experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct RumorError(String);

impl fmt::Display for RumorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RumorError {}

impl RumorOptions {
    /// Checks the options; the message names the command-line flag at fault.
    pub fn validate(&self) -> Result<(), RumorError> {
        let err = |s: String| Err(RumorError(s));
        if self.nodes < 2 || self.nodes > u32::MAX as usize {
            return err(format!("--nodes must be between 2 and {} (got {})", u32::MAX, self.nodes));
        }
        if self.runs == 0 {
            return err("--runs must be at least 1".into());
        }
        let most = (MAX_FANOUT as usize).min(self.nodes - 1);
        if self.fanout == 0 || self.fanout as usize > most {
            return err(format!(
                "--fanout must be between 1 and {most} (at most {MAX_FANOUT}, and below --nodes); got {}",
                self.fanout
            ));
        }
        if self.variant != Variant::Forever && !(1..=u32::from(u16::MAX)).contains(&self.k) {
            return err(format!("--k must be between 1 and {} (got {})", u16::MAX, self.k));
        }
        if self.counter_reset && self.variant != Variant::FeedbackCounter {
            return err(format!("--counter-reset applies to feedback-counter only (got {})", self.variant.name()));
        }
        if !(0.0..1.0).contains(&self.loss) {
            return err(format!("--loss must be in [0, 1) (got {})", self.loss));
        }
        if self.max_rounds == 0 {
            return err("--max-rounds must be at least 1".into());
        }
        Ok(())
    }
}

/// What one run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RumorRun {
    /// Nodes never informed.
    pub susceptible: usize,
    /// Messages carrying the rumor, over all nodes.
    pub messages: u64,
    /// Pull requests sent by nodes that did not yet know the rumor.
    pub requests: u64,
    /// Mean round in which nodes received the rumor (the first node excluded; NaN if none did).
    pub t_ave: f64,
    /// Last round in which a node received the rumor (0 if none did).
    pub t_last: u32,
    /// Round in which the last node was informed, if every node was.
    pub rounds_all: Option<u32>,
    /// Rounds run.
    pub rounds: u32,
    /// Whether the run stopped at `max_rounds` with nodes still infective (or, for `forever`,
    /// still susceptible).
    pub capped: bool,
    /// Informed nodes after round 0, 1, 2, … (index = round).
    pub informed: Vec<u64>,
}

// Node states. `NEW` = infected during the current round; `LEAVING` = infective that loses
// interest when the current round ends. Both are resolved by the sweep at the round's end, so
// within a round `knew` and `infective` below describe the state at the round's start.
const SUSCEPTIBLE: u8 = 0;
const NEW: u8 = 1;
const INFECTIVE: u8 = 2;
const LEAVING: u8 = 3;
const REMOVED: u8 = 4;

#[inline]
fn knew(s: u8) -> bool {
    s >= INFECTIVE
}

#[inline]
fn infective(s: u8) -> bool {
    s == INFECTIVE || s == LEAVING
}

struct World {
    state: Vec<u8>,
    counter: Vec<u16>,
    variant: Variant,
    k: u32,
    counter_reset: bool,
    loss: f64,
    rng: ChaCha8Rng,
    new: u64,
    round_sum: u64,
    messages: u64,
    requests: u64,
}

impl World {
    #[inline]
    fn lost(&mut self) -> bool {
        self.loss > 0.0 && self.rng.random_bool(self.loss)
    }

    /// Node `to` receives the rumor.
    #[inline]
    fn deliver(&mut self, to: usize) {
        if self.state[to] == SUSCEPTIBLE {
            self.state[to] = NEW;
            self.new += 1;
        }
    }

    /// Node `from` sent one message with the rumor; `feedback` is `Some(recipient knew)` when an
    /// answer came back, `None` when the message was lost.
    #[inline]
    fn sent(&mut self, from: usize, feedback: Option<bool>) {
        self.messages += 1;
        let leave = match self.variant {
            Variant::Forever => false,
            Variant::FeedbackCounter => match feedback {
                Some(true) => self.bump(from),
                Some(false) if self.counter_reset => {
                    self.counter[from] = 0;
                    false
                }
                _ => false,
            },
            Variant::BlindCounter => self.bump(from),
            Variant::FeedbackCoin => feedback == Some(true) && self.coin(),
            Variant::BlindCoin => self.coin(),
        };
        if leave && self.state[from] == INFECTIVE {
            self.state[from] = LEAVING;
        }
    }

    /// Counts one more message against `from`'s limit; true once it is reached.
    #[inline]
    fn bump(&mut self, from: usize) -> bool {
        let c = &mut self.counter[from];
        *c = c.saturating_add(1);
        u32::from(*c) >= self.k
    }

    /// Heads with probability `1/k`.
    #[inline]
    fn coin(&mut self) -> bool {
        self.k == 1 || self.rng.random_range(0..self.k) == 0
    }
}

/// One run with its own seed. The options must be valid ([`RumorOptions::validate`]).
pub fn run_once(opts: &RumorOptions, seed: u64) -> RumorRun {
    let n = opts.nodes;
    let counters = matches!(opts.variant, Variant::FeedbackCounter | Variant::BlindCounter);
    let mut w = World {
        state: vec![SUSCEPTIBLE; n],
        counter: if counters { vec![0; n] } else { Vec::new() },
        variant: opts.variant,
        k: opts.k.max(1),
        counter_reset: opts.counter_reset,
        loss: opts.loss,
        rng: ChaCha8Rng::seed_from_u64(seed),
        new: 0,
        round_sum: 0,
        messages: 0,
        requests: 0,
    };
    w.state[0] = INFECTIVE;
    let others = (n - 1) as u32;
    let fanout = opts.fanout as usize;
    let (push, pull) = match opts.mode {
        Mode::Push => (true, false),
        Mode::Pull => (false, true),
        Mode::PushPull => (true, true),
    };
    let mut partners: Vec<usize> = Vec::with_capacity(fanout);
    let mut informed: Vec<u64> = vec![1];
    let (mut total, mut live) = (1u64, 1u64);
    let (mut t_last, mut rounds_all, mut round, mut capped) = (0u32, None, 0u32, false);
    loop {
        if (opts.variant == Variant::Forever && total == n as u64) || live == 0 {
            break;
        }
        if round == opts.max_rounds {
            capped = true;
            break;
        }
        round += 1;
        w.new = 0;
        for u in 0..n {
            let su = w.state[u];
            let u_inf = infective(su);
            if !(pull || u_inf) {
                continue;
            }
            partners.clear();
            while partners.len() < fanout {
                let mut v = w.rng.random_range(0..others) as usize;
                if v >= u {
                    v += 1;
                }
                if fanout == 1 || !partners.contains(&v) {
                    partners.push(v);
                }
            }
            for &v in &partners {
                let sv = w.state[v];
                if push && u_inf {
                    // u pushes; v answers whether it already knew.
                    if w.lost() {
                        w.sent(u, None);
                    } else {
                        w.deliver(v);
                        w.sent(u, Some(knew(sv)));
                    }
                }
                if pull {
                    if !knew(su) {
                        w.requests += 1;
                    }
                    let request_arrived = !w.lost();
                    if infective(sv) && request_arrived {
                        // v answers u's request with the rumor; u says whether it knew.
                        if w.lost() {
                            w.sent(v, None);
                        } else {
                            w.deliver(u);
                            w.sent(v, Some(knew(su)));
                        }
                    }
                }
            }
        }
        live = 0;
        for s in w.state.iter_mut() {
            match *s {
                NEW | INFECTIVE => {
                    *s = INFECTIVE;
                    live += 1;
                }
                LEAVING => *s = REMOVED,
                _ => {}
            }
        }
        if w.new > 0 {
            total += w.new;
            w.round_sum += w.new * u64::from(round);
            t_last = round;
            if total == n as u64 {
                rounds_all = Some(round);
            }
        }
        informed.push(total);
    }
    RumorRun {
        susceptible: n - total as usize,
        messages: w.messages,
        requests: w.requests,
        t_ave: if total > 1 { w.round_sum as f64 / (total - 1) as f64 } else { f64::NAN },
        t_last,
        rounds_all,
        rounds: round,
        capped,
        informed,
    }
}

/// Result of `gossip sim rumor`: means and standard deviations over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct RumorResult {
    /// Scenario name.
    pub scenario: &'static str,
    /// Nodes.
    pub nodes: usize,
    /// Runs.
    pub runs: usize,
    /// Seed of the first run.
    pub seed: u64,
    /// `push`, `pull` or `push-pull`.
    pub mode: &'static str,
    /// `feedback-counter`, `blind-counter`, `feedback-coin`, `blind-coin` or `forever`.
    pub variant: &'static str,
    /// Counter limit or `1/p` (null for `forever`).
    pub k: Option<u32>,
    /// Whether a feedback counter restarts at each message that found a susceptible node.
    pub counter_reset: bool,
    /// Partners per contacting node per round.
    pub fanout: u32,
    /// Message loss probability.
    pub loss: f64,
    /// Fraction of nodes never informed, mean over runs.
    pub residue_mean: f64,
    /// Its sample standard deviation.
    pub residue_sd: f64,
    /// Messages carrying the rumor per node, mean over runs (see the module docs for what
    /// counts).
    pub traffic_mean: f64,
    /// Its sample standard deviation.
    pub traffic_sd: f64,
    /// Pull requests per node sent by nodes that did not yet know the rumor (0 in push).
    pub requests_mean: f64,
    /// Mean round in which a node received the rumor, mean over runs.
    pub t_ave_mean: f64,
    /// Last round in which a node received the rumor, mean over runs.
    pub t_last_mean: f64,
    /// Runs in which every node was informed.
    pub runs_all_informed: usize,
    /// Rounds until every node was informed, mean over the runs where that happened (null if
    /// it never did).
    pub rounds_all_mean: f64,
    /// Its sample standard deviation (0 with one such run).
    pub rounds_all_sd: f64,
    /// Smallest of those.
    pub rounds_all_min: f64,
    /// Largest of those.
    pub rounds_all_max: f64,
    /// Theory for rounds until all are informed, for `forever` with fanout 1 (null otherwise):
    /// push `log2 N + ln N` (Pittel 1987), pull `log2 N + log2 ln N` (the two phases: doubling,
    /// then squaring of the uninformed fraction), push-pull `log3 N` (Karp et al. 2000, the
    /// leading term; they add O(log log N)).
    pub rounds_all_theory: f64,
    /// Rounds until the run ended (no infective node left, or everyone informed for `forever`),
    /// mean over runs.
    pub rounds_mean: f64,
    /// Runs stopped by the round cap.
    pub runs_capped: usize,
    /// Residue the deterministic model (the ODE) predicts for push with fanout 1 and no loss
    /// (null otherwise): feedback variants `s = e^(-(k+1)(1-s))`, blind variants
    /// `s = e^(-k(1-s))` (Demers' equations for the *coin* variants; for the counter variants
    /// the coin's figure is a reference, counters do better), `forever` 0.
    pub residue_ode: f64,
    /// Traffic the ODE predicts under the same conditions: `m = -ln s` (every push model).
    pub traffic_ode: f64,
    /// Wall-clock seconds for all runs.
    pub wall_s: f64,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// Fraction of nodes informed after round 0, 1, 2, …, mean over runs (a run that ended
    /// early keeps its last value), for plots.
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

/// Runs `opts.runs` runs on seeds `seed`, `seed + 1`, … and aggregates them; `progress` is
/// called with the number of runs done after each.
pub fn rumor(opts: &RumorOptions, mut progress: impl FnMut(usize)) -> Result<RumorResult, RumorError> {
    opts.validate()?;
    let wall = Instant::now();
    let n = opts.nodes as f64;
    let (mut residue, mut traffic, mut requests, mut t_ave, mut t_last) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut rounds_all, mut rounds, mut capped) = (vec![], vec![], 0);
    let mut curves: Vec<Vec<u64>> = Vec::with_capacity(opts.runs);
    for run in 0..opts.runs {
        let r = run_once(opts, opts.seed.wrapping_add(run as u64));
        residue.push(r.susceptible as f64 / n);
        traffic.push(r.messages as f64 / n);
        requests.push(r.requests as f64 / n);
        if r.t_ave.is_finite() {
            t_ave.push(r.t_ave);
        }
        t_last.push(f64::from(r.t_last));
        if let Some(a) = r.rounds_all {
            rounds_all.push(f64::from(a));
        }
        rounds.push(f64::from(r.rounds));
        capped += usize::from(r.capped);
        curves.push(r.informed);
        progress(run + 1);
    }
    let (residue_mean, residue_sd) = mean_sd(&residue);
    let (traffic_mean, traffic_sd) = mean_sd(&traffic);
    let (rounds_all_mean, rounds_all_sd) = mean_sd(&rounds_all);
    let push_ode = opts.mode == Mode::Push && opts.fanout == 1 && opts.loss == 0.0;
    let residue_ode = if push_ode { ode_residue(opts.variant, opts.k) } else { f64::NAN };
    Ok(RumorResult {
        scenario: "rumor",
        nodes: opts.nodes,
        runs: opts.runs,
        seed: opts.seed,
        mode: opts.mode.name(),
        variant: opts.variant.name(),
        k: (opts.variant != Variant::Forever).then_some(opts.k),
        counter_reset: opts.counter_reset,
        fanout: opts.fanout,
        loss: opts.loss,
        residue_mean,
        residue_sd,
        traffic_mean,
        traffic_sd,
        requests_mean: mean_sd(&requests).0,
        t_ave_mean: mean_sd(&t_ave).0,
        t_last_mean: mean_sd(&t_last).0,
        runs_all_informed: rounds_all.len(),
        rounds_all_mean,
        rounds_all_sd,
        rounds_all_min: rounds_all.iter().copied().fold(f64::NAN, f64::min),
        rounds_all_max: rounds_all.iter().copied().fold(f64::NAN, f64::max),
        rounds_all_theory: if opts.variant == Variant::Forever && opts.fanout == 1 {
            theory_rounds_all(opts.mode, opts.nodes)
        } else {
            f64::NAN
        },
        rounds_mean: mean_sd(&rounds).0,
        runs_capped: capped,
        residue_ode,
        traffic_ode: if residue_ode > 0.0 { (1.0 / residue_ode).ln() } else { f64::NAN },
        wall_s: wall.elapsed().as_secs_f64(),
        peak_rss_mib: peak_rss_mib(),
        curve: mean_curve(&curves, n),
    })
}

/// Mean fraction informed after each round over runs; a run that ended early keeps its last
/// value.
fn mean_curve(curves: &[Vec<u64>], n: f64) -> Vec<(f64, f64)> {
    let len = curves.iter().map(Vec::len).max().unwrap_or(0);
    let runs = curves.len().max(1) as f64;
    (0..len)
        .map(|i| {
            let sum: u64 = curves.iter().map(|c| c.get(i).or(c.last()).copied().unwrap_or(0)).sum();
            (i as f64, sum as f64 / (runs * n))
        })
        .collect()
}

/// Rounds until all of `nodes` are informed, in theory, with fanout 1 and nodes that never
/// lose interest: push `log2 N + ln N` (Pittel 1987), pull `log2 N + log2 ln N` (a heuristic:
/// the informed set doubles, then the uninformed fraction squares each round), push-pull
/// `log3 N` (Karp, Schindelhauer, Shenker and Vöcking 2000, leading term only).
pub fn theory_rounds_all(mode: Mode, nodes: usize) -> f64 {
    let n = nodes as f64;
    match mode {
        Mode::Push => n.log2() + n.ln(),
        Mode::Pull => n.log2() + n.ln().log2(),
        Mode::PushPull => n.ln() / 3f64.ln(),
    }
}

/// Residue of Demers' deterministic push model (fanout 1): the root in (0, 1) of
/// `s = e^(-(k+1)(1-s))` for the feedback coin, of `s = e^(-k(1-s))` for the blind coin (for
/// `k ≤ 1` the blind coin's only root is 1: the rumor does not take off), 0 for `forever`.
/// The counter variants get their coin's figure, as a reference.
pub fn ode_residue(variant: Variant, k: u32) -> f64 {
    let a = match variant {
        Variant::Forever => return 0.0,
        Variant::FeedbackCoin | Variant::FeedbackCounter => f64::from(k) + 1.0,
        Variant::BlindCoin | Variant::BlindCounter => f64::from(k),
    };
    if a <= 1.0 {
        return 1.0;
    }
    // f(s) = s - e^(-a(1-s)) is concave with roots s* and 1: negative on [0, s*), positive
    // between the roots. Bisect on (0, s_max), s_max = 1 - ln(a)/a being where f is largest.
    let f = |s: f64| s - (-a * (1.0 - s)).exp();
    let (mut lo, mut hi) = (0.0f64, 1.0 - a.ln() / a);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}
