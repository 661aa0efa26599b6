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

use std::time::Duration;

use gossip_core::Config;
use serde::Serialize;

use crate::NetConfig;

mod compile;
mod run;
mod spec;

use self::run::Outcome;
pub use self::run::Sample;
use self::spec::StartMode;

/// Largest cluster a script may ask for.
pub const MAX_NODES: usize = 10_000;
/// Most runs a script may ask for.
pub const MAX_RUNS: usize = 1_000;
/// Latest virtual time a script may name, in seconds (one day).
pub const MAX_TIME_S: f64 = 86_400.0;

/// How often checks with a window are evaluated and the curve is sampled, at most.
const STEP: Duration = Duration::from_millis(100);

/// Why a script was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// Not valid TOML, or not the expected shape (unknown field, wrong type, …).
    #[error("{}", .0.trim_end())]
    Parse(String),
    /// Well-formed, but impossible (a node out of range, times out of order, …).
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ScriptError {
    ScriptError::Invalid(message.into())
}

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

impl Script {
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
}

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
