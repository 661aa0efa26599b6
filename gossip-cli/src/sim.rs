//! `gossip sim SCENARIO`: argument parsing and output for the simulator experiments; the
//! experiments themselves live in `gossip_sim::scenarios`.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, ValueEnum};
use gossip_core::Config;
use gossip_sim::rumor::{self, RumorOptions};
use gossip_sim::scenarios::{self, Common};
use gossip_sim::script::{MAX_RUNS, MAX_TIME_S};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::plot::{self, Chart, Line};

/// Which experiment to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Demers et al.'s rumor-mongering models in synchronous rounds (a model, not the core):
    /// residue, traffic, delays
    Rumor,
    /// N nodes join through one seed: time to converge.
    Join,
    /// A member of a converged cluster crashes: time to first suspicion and to removal by all.
    Failure,
    /// Split 50/50, hold, heal: time to see the split and to heal, updates lost.
    Partition,
    /// Members intermittently CPU-starved, Lifeguard on and off on the same seeds.
    Stall,
    /// Joins, leaves, crashes and restarts at a rate, then convergence.
    Churn,
    /// A scripted scenario from a TOML file (gossip sim run FILE.toml): faults on a timeline, checks
    Run,
    /// Writers set keys; time until every node holds them, then traffic while keys change and once in sync
    Antientropy,
    /// Every node updates a shared counter and set: time until every replica is exact
    Crdt,
    /// Push-sum average in synchronous rounds: rounds to 1e-6, mass conservation, bias under loss
    Pushsum,
}

/// rumor: who contacts whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RumorMode {
    /// Infective nodes send the rumor to random partners.
    Push,
    /// Every node asks random partners; infective ones answer with the rumor.
    Pull,
    /// Both: the rumor crosses a contact whichever end is infective.
    PushPull,
}

impl From<RumorMode> for rumor::Mode {
    fn from(m: RumorMode) -> Self {
        match m {
            RumorMode::Push => rumor::Mode::Push,
            RumorMode::Pull => rumor::Mode::Pull,
            RumorMode::PushPull => rumor::Mode::PushPull,
        }
    }
}

/// rumor: when an infective node loses interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RumorVariant {
    /// After K messages to nodes that already knew.
    FeedbackCounter,
    /// After K messages sent.
    BlindCounter,
    /// With probability 1/K at each message to a node that already knew.
    FeedbackCoin,
    /// With probability 1/K at each message sent.
    BlindCoin,
    /// Never.
    Forever,
}

impl From<RumorVariant> for rumor::Variant {
    fn from(v: RumorVariant) -> Self {
        match v {
            RumorVariant::FeedbackCounter => rumor::Variant::FeedbackCounter,
            RumorVariant::BlindCounter => rumor::Variant::BlindCounter,
            RumorVariant::FeedbackCoin => rumor::Variant::FeedbackCoin,
            RumorVariant::BlindCoin => rumor::Variant::BlindCoin,
            RumorVariant::Forever => rumor::Variant::Forever,
        }
    }
}

/// Protocol preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// memberlist's LAN settings.
    Lan,
    /// memberlist's WAN settings.
    Wan,
    /// memberlist's Local (single host) settings.
    Local,
}

/// Arguments of `gossip sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// The experiment.
    #[arg(value_enum)]
    scenario: Scenario,
    /// run: the scenario file (see examples/*.toml). It sets nodes, preset and network
    /// itself: with `run`, only --seed, --runs (which replace the file's), --json and --plot
    /// apply.
    #[arg(value_name = "FILE.toml", required_if_eq("scenario", "run"))]
    file: Option<std::path::PathBuf>,
    /// Cluster size.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Independent runs (seeds SEED, SEED+1, ...) [default: 1; for `run`, the file's].
    #[arg(long)]
    runs: Option<usize>,
    /// Seed of the first run [default: 1; for `run`, the file's].
    #[arg(long)]
    seed: Option<u64>,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Protocol preset.
    #[arg(long, value_enum, default_value_t = Preset::Lan)]
    preset: Preset,
    /// Override the preset's suspicion multiplier.
    #[arg(long)]
    suspicion_mult: Option<u32>,
    /// Also write an SVG chart of the experiment to this file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<std::path::PathBuf>,
    /// Print one JSON object (one line) for the run-set instead of a table.
    #[arg(long)]
    json: bool,
    /// join: virtual seconds allowed to converge.
    #[arg(long, default_value_t = 300)]
    limit_s: u64,
    /// partition: seconds the partition is held.
    #[arg(long, default_value_t = 90)]
    hold_s: u64,
    /// stall, churn: seconds of stalls or churn; antientropy: seconds of updates, then as
    /// long in sync.
    #[arg(long, default_value_t = 120)]
    duration_s: u64,
    /// churn: membership changes per second.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// antientropy: keys each writer sets.
    #[arg(long, default_value_t = 10)]
    keys_per_node: usize,
    /// antientropy: key updates per second across the cluster (after the initial writes);
    /// crdt: counter increments per second across the cluster in the --steady-s phase.
    #[arg(long, default_value_t = 10.0)]
    updates_per_s: f64,
    /// antientropy: nodes that write keys (default: all).
    #[arg(long)]
    writers: Option<usize>,
    /// antientropy, crdt: seconds between anti-entropy exchanges (default: the preset's).
    #[arg(long)]
    sync_s: Option<f64>,
    /// crdt: bytes of recent changes each node keeps per object for delta intervals
    /// (default: the preset's; 0: none, every repair sends whole states or buckets).
    #[arg(long)]
    delta_log_bytes: Option<usize>,
    /// crdt: after converging, this many seconds of counter increments at --updates-per-s
    /// across the cluster; reports the CRDT bytes per node per second meanwhile.
    #[arg(long)]
    steady_s: Option<f64>,
    /// crdt: only the counter, no set edits.
    #[arg(long)]
    counter_only: bool,
    /// crdt: nodes sign self-state and every CRDT claim (Ed25519, keys derived from node
    /// numbers: for measurement only); the cluster forms by a real join first.
    #[arg(long)]
    signed: bool,
    /// crdt: form the cluster by a real join through one seed before the updates (leaner in
    /// memory at 10,000 nodes than starting from an already-converged membership).
    #[arg(long)]
    join_first: bool,
    /// pushsum: rounds to run.
    #[arg(long, default_value_t = 80)]
    rounds: usize,
    /// crdt: counter increments and set edits per node (over one second).
    #[arg(long, default_value_t = 5)]
    ops_per_node: usize,
    /// rumor: who contacts whom.
    #[arg(long, value_enum, default_value_t = RumorMode::Push)]
    mode: RumorMode,
    /// rumor: when an infective node loses interest.
    #[arg(long, value_enum, default_value_t = RumorVariant::FeedbackCounter)]
    variant: RumorVariant,
    /// rumor: counter limit, or 1/p for the coin variants.
    #[arg(long, default_value_t = 2)]
    k: u32,
    /// rumor, feedback-counter: a message that finds a susceptible node resets the sender's
    /// counter (interest lost after K unnecessary messages in a row).
    #[arg(long)]
    counter_reset: bool,
    /// rumor: distinct random partners each contacting node calls per round.
    #[arg(long, default_value_t = 1)]
    fanout: u32,
    /// rumor: a run stops after this many rounds even if nodes are still infective.
    #[arg(long, default_value_t = 10_000)]
    max_rounds: u32,
    /// rumor: run several set-ups on the same seeds and draw them on one chart, e.g.
    /// `push,pull,push-pull` or `feedback-counter:1,feedback-counter:2` or
    /// `push:forever,push-pull:blind-coin:3`. Each entry is MODE, VARIANT and K joined by `:` in
    /// any order; what an entry leaves out comes from --mode, --variant and --k.
    #[arg(long, value_name = "SETUP,...")]
    compare: Option<String>,
}

/// Flags every node-simulator scenario takes.
const NODE_SIM_FLAGS: &[&str] = &["nodes", "runs", "seed", "loss", "preset", "suspicion_mult", "plot", "json"];

/// Flags of one scenario only, beyond [`NODE_SIM_FLAGS`] (for `rumor` and `run`, all of them).
fn scenario_flags(scenario: Scenario) -> &'static [&'static str] {
    match scenario {
        Scenario::Join => &["limit_s"],
        Scenario::Failure => &[],
        Scenario::Partition => &["hold_s"],
        Scenario::Stall => &["duration_s"],
        Scenario::Churn => &["duration_s", "rate"],
        Scenario::Antientropy => &["duration_s", "keys_per_node", "updates_per_s", "writers", "sync_s"],
        Scenario::Crdt => &[
            "sync_s",
            "delta_log_bytes",
            "steady_s",
            "updates_per_s",
            "counter_only",
            "signed",
            "join_first",
            "ops_per_node",
        ],
        Scenario::Pushsum => &["rounds"],
        Scenario::Rumor => &[
            "nodes",
            "runs",
            "seed",
            "loss",
            "plot",
            "json",
            "mode",
            "variant",
            "k",
            "counter_reset",
            "fanout",
            "max_rounds",
            "compare",
        ],
        Scenario::Run => &["file", "seed", "runs", "json", "plot"],
    }
}

/// Refuses flags given on the command line (`given`, by argument id) that `scenario` would
/// silently ignore, e.g. `gossip sim join --fanout 0`.
pub fn check_flags(scenario: Scenario, given: &[String]) -> Result<(), String> {
    let own = scenario_flags(scenario);
    let common = if matches!(scenario, Scenario::Rumor | Scenario::Run) { &[][..] } else { NODE_SIM_FLAGS };
    for id in given {
        if id == "scenario" || own.contains(&id.as_str()) || common.contains(&id.as_str()) {
            continue;
        }
        let flag = if id == "file" { "FILE.toml".to_owned() } else { format!("--{}", id.replace('_', "-")) };
        let name = scenario.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
        return Err(format!("{flag} does not apply to `gossip sim {name}` (see gossip sim --help)"));
    }
    Ok(())
}

impl SimArgs {
    /// The experiment asked for.
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// `--runs`, 1 if not given.
    fn runs(&self) -> usize {
        self.runs.unwrap_or(1)
    }

    /// `--seed`, 1 if not given.
    fn seed(&self) -> u64 {
        self.seed.unwrap_or(1)
    }
}

/// Runs the experiment and prints its result.
pub fn run(args: SimArgs) -> Result<(), String> {
    if let Some(path) = &args.plot {
        plot::check_target(path)?;
    }
    if args.scenario == Scenario::Run {
        return crate::sim_run::run(args.file.as_deref(), args.seed, args.runs, args.json, args.plot.as_deref());
    }
    if args.file.is_some() {
        return Err("a scenario file goes with `gossip sim run FILE.toml` only".into());
    }
    if args.nodes < 2 {
        return Err("--nodes must be at least 2".into());
    }
    if !(1..=MAX_RUNS).contains(&args.runs()) {
        return Err(format!("--runs must be between 1 and {MAX_RUNS}"));
    }
    for (flag, seconds) in [("--limit-s", args.limit_s), ("--hold-s", args.hold_s), ("--duration-s", args.duration_s)] {
        if !(1..=MAX_TIME_S as u64).contains(&seconds) {
            return Err(format!("{flag} must be between 1 and {} seconds", MAX_TIME_S as u64));
        }
    }
    if !(1..=1_000_000).contains(&args.keys_per_node) {
        return Err("--keys-per-node must be between 1 and 1000000".into());
    }
    if args.writers.is_some_and(|w| !(1..=args.nodes).contains(&w)) {
        return Err("--writers must be between 1 and --nodes".into());
    }
    if !(1..=1000).contains(&args.ops_per_node) {
        return Err("--ops-per-node must be between 1 and 1000".into());
    }
    if !(0.0..1.0).contains(&args.loss) {
        return Err("--loss must be in [0, 1)".into());
    }
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 1000.0) {
        return Err("--rate must be positive and at most 1000 changes per second".into());
    }
    // About a quarter of the changes add a node: keep the cluster a simulator can hold.
    if args.scenario == Scenario::Churn && args.rate * args.duration_s as f64 > 100_000.0 {
        return Err("--rate times --duration-s must be at most 100000 changes".into());
    }
    if !(args.updates_per_s.is_finite() && args.updates_per_s >= 0.0) {
        return Err("--updates-per-s must be zero or more".into());
    }
    if args.steady_s.is_some_and(|s| !(s.is_finite() && s > 0.0 && s <= 3600.0)) {
        return Err("--steady-s must be between 0 and 3600 seconds".into());
    }
    if args.sync_s.is_some_and(|s| !(s.is_finite() && s > 0.0 && s <= 3600.0)) {
        return Err("--sync-s must be between 0 and 3600 seconds".into());
    }
    let config = match args.preset {
        Preset::Lan => Config::lan(),
        Preset::Wan => Config::wan(),
        Preset::Local => Config::local(),
    };
    let config = match args.suspicion_mult {
        Some(m) => Config { suspicion_mult: m, ..config },
        None => config,
    };
    let config = match args.sync_s {
        Some(secs) => Config { state_sync_interval: Some(Duration::from_secs_f64(secs)), ..config },
        None => config,
    };
    let config = match args.delta_log_bytes {
        Some(bytes) => Config { crdt_delta_log_bytes: bytes, ..config },
        None => config,
    };
    config.validate().map_err(|e| e.to_string())?;
    if args.scenario == Scenario::Rumor {
        return run_rumor(&args);
    }
    let common = Common { nodes: args.nodes, runs: args.runs(), seed: args.seed(), loss: args.loss, config };
    let bar = progress(args.runs(), args.json);
    let tick = |done: usize| bar.set_position(done as u64);
    let (out, chart) = match args.scenario {
        Scenario::Run => return Err("`run` takes a scenario file".into()),
        Scenario::Rumor => return Err("rumor runs without the node simulator".into()), // handled above
        Scenario::Pushsum => {
            let r = scenarios::pushsum(&common, args.rounds, tick);
            let chart = Chart::Bars {
                title: format!("pushsum: {} nodes, loss {}", r.nodes, r.loss),
                y_label: "rounds".into(),
                bars: vec![
                    ("to 1e-6 (measured)".into(), r.rounds_to_1e_6),
                    ("log2 N + log2 1e6".into(), r.kempe_log_n_plus_log_inv_eps),
                ],
            };
            (render(&r, args.json), chart)
        }
        Scenario::Crdt => {
            let options = scenarios::CrdtOptions {
                ops_per_node: args.ops_per_node,
                with_set: !args.counter_only,
                join_first: args.join_first,
                steady: args.steady_s.map(|secs| (secs, args.updates_per_s)),
                signed: args.signed,
            };
            let r = scenarios::crdt(&common, options, tick);
            let mut lines = vec![Line { name: "counter".into(), points: r.curve.iter().map(|c| (c.0, c.1)).collect() }];
            if !args.counter_only {
                lines.push(Line { name: "set".into(), points: r.curve.iter().map(|c| (c.0, c.2)).collect() });
            }
            let chart = Chart::Lines {
                title: format!(
                    "crdt: {} nodes x {} updates within 1 s, loss {} (first run)",
                    r.nodes, r.ops_per_node, common.loss
                ),
                x_label: "seconds since the first update".into(),
                y_label: "fraction of replicas holding their final value".into(),
                lines,
            };
            (render(&r, args.json), chart)
        }
        Scenario::Antientropy => {
            let writers = args.writers.unwrap_or(args.nodes);
            let r = scenarios::antientropy(
                &common,
                writers,
                args.keys_per_node,
                args.updates_per_s,
                Duration::from_secs(args.duration_s),
                tick,
            );
            let chart = Chart::Lines {
                title: format!(
                    "antientropy: {} nodes, {} writers x {} keys; {} updates/s from {:.0} to {:.0} s (first run)",
                    r.nodes, r.writers, r.keys_per_node, r.updates_per_s, r.updates_window_s.0, r.updates_window_s.1
                ),
                x_label: "seconds since the initial writes".into(),
                y_label: "fraction up to date".into(),
                lines: vec![
                    Line {
                        name: "nodes holding every key's latest version".into(),
                        points: r.curve.iter().map(|c| (c.0, c.1)).collect(),
                    },
                    Line {
                        name: "key replicas at the latest version".into(),
                        points: r.curve.iter().map(|c| (c.0, c.2)).collect(),
                    },
                ],
            };
            (render(&r, args.json), chart)
        }
        Scenario::Join => {
            let r = scenarios::join(&common, Duration::from_secs(args.limit_s), tick);
            let chart = Chart::Lines {
                title: format!("join: {} nodes through one seed (first run)", r.nodes),
                x_label: "virtual seconds".into(),
                y_label: "fraction of nodes that see every member".into(),
                lines: vec![Line { name: "complete views".into(), points: r.curve.clone() }],
            };
            (render(&r, args.json), chart)
        }
        Scenario::Failure => {
            let r = scenarios::failure(&common, tick);
            let chart = Chart::Lines {
                title: format!("failure: {} nodes, {} crashes", r.nodes, r.runs),
                x_label: "seconds after the crash".into(),
                y_label: "fraction of runs".into(),
                lines: vec![
                    Line { name: "first suspicion raised".into(), points: cdf(&r.first_detect_s_runs) },
                    Line { name: "every survivor declared it dead".into(), points: cdf(&r.detect_all_s_runs) },
                ],
            };
            (render(&r, args.json), chart)
        }
        Scenario::Partition => {
            let r = scenarios::partition(&common, Duration::from_secs(args.hold_s), tick);
            let chart = Chart::Lines {
                title: format!("partition: {} nodes split 50/50 for {} s, then healed (first run)", r.nodes, r.hold_s),
                x_label: "seconds since the split".into(),
                y_label: "members seen per node (mean)".into(),
                lines: vec![Line { name: "view size".into(), points: r.curve.clone() }],
            };
            (render(&r, args.json), chart)
        }
        Scenario::Stall => {
            let r = scenarios::stall(&common, Duration::from_secs(args.duration_s), tick);
            let chart = Chart::Bars {
                title: format!("stall: {} nodes, {} runs: healthy members declared dead", r.nodes, r.runs),
                y_label: "declarations".into(),
                bars: vec![
                    ("Lifeguard".into(), r.false_dead_healthy_lifeguard as f64),
                    ("plain SWIM".into(), r.false_dead_healthy_plain as f64),
                ],
            };
            (render(&r, args.json), chart)
        }
        Scenario::Churn => {
            let r = scenarios::churn(&common, args.rate, Duration::from_secs(args.duration_s), tick);
            let chart = Chart::Lines {
                title: format!(
                    "churn: {} nodes, {} changes/s for {} s (first run)",
                    r.nodes, r.rate_per_s, r.duration_s
                ),
                x_label: "virtual seconds".into(),
                y_label: "members".into(),
                lines: vec![
                    Line { name: "running".into(), points: r.curve.iter().map(|c| (c.0, c.1)).collect() },
                    Line { name: "seen per node (mean)".into(), points: r.curve.iter().map(|c| (c.0, c.2)).collect() },
                ],
            };
            (render(&r, args.json), chart)
        }
    };
    bar.finish_and_clear();
    // The result first: a chart that cannot be written must not take it with it.
    out!("{}", out?);
    if let Some(path) = &args.plot {
        plot::write(path, &chart).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// `gossip sim rumor`, alone or `--compare`d: one result (one JSON line) per set-up, and one
/// chart of the informed fraction per round with a line per set-up.
fn run_rumor(args: &SimArgs) -> Result<(), String> {
    let base = RumorOptions {
        nodes: args.nodes,
        runs: args.runs(),
        seed: args.seed(),
        mode: args.mode.into(),
        variant: args.variant.into(),
        k: args.k,
        fanout: args.fanout,
        counter_reset: args.counter_reset,
        loss: args.loss,
        max_rounds: args.max_rounds,
    };
    let setups = match &args.compare {
        Some(spec) => parse_compare(spec, &base)?,
        None => vec![base],
    };
    for s in &setups {
        s.validate().map_err(|e| e.to_string())?;
    }
    let bar = progress(args.runs() * setups.len(), args.json);
    let mut lines = Vec::new();
    let mut outs = Vec::new();
    for (i, opts) in setups.iter().enumerate() {
        let done = i * args.runs();
        let r = rumor::rumor(opts, |d| bar.set_position((done + d) as u64)).map_err(|e| e.to_string())?;
        let k = r.k.map(|k| format!(" k={k}")).unwrap_or_default();
        lines.push(Line { name: format!("{} {}{k}", r.mode, r.variant), points: r.curve.clone() });
        outs.push(render(&r, args.json)?);
    }
    bar.finish_and_clear();
    // The results first: a chart that cannot be written must not take them with it.
    let sep = if args.json { "\n" } else { "\n\n" };
    out!("{}", outs.join(sep));
    if let Some(path) = &args.plot {
        let first = &setups[0];
        // Name what the set-ups share; the legend tells them apart.
        let mut shared = Vec::new();
        if setups.iter().all(|o| o.mode == first.mode) {
            shared.push(first.mode.name().to_owned());
        }
        if setups.iter().all(|o| o.variant == first.variant) {
            shared.push(first.variant.name().to_owned());
        }
        let with_k: Vec<u32> = setups.iter().filter(|o| o.variant != rumor::Variant::Forever).map(|o| o.k).collect();
        if with_k.first().is_some_and(|k| with_k.iter().all(|x| x == k)) {
            shared.push(format!("k={}", with_k[0]));
        }
        let what = if shared.is_empty() { format!("{} set-ups", setups.len()) } else { shared.join(" ") };
        let fanout = if first.fanout == 1 { String::new() } else { format!(", fanout {}", first.fanout) };
        let chart = Chart::Lines {
            title: format!("rumor: {what}, {} nodes{fanout}, mean of {} runs", first.nodes, first.runs),
            x_label: "round".into(),
            y_label: "fraction of nodes informed".into(),
            lines,
        };
        plot::write(path, &chart).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Parses `--compare`: comma-separated set-ups, each MODE, VARIANT and K joined by `:` in any
/// order, missing parts taken from `base`.
fn parse_compare(spec: &str, base: &RumorOptions) -> Result<Vec<RumorOptions>, String> {
    let mut setups = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut opts = base.clone();
        for part in entry.split(':').map(str::trim) {
            if let Ok(mode) = RumorMode::from_str(part, true) {
                opts.mode = mode.into();
            } else if let Ok(variant) = RumorVariant::from_str(part, true) {
                opts.variant = variant.into();
            } else if let Ok(k) = part.strip_prefix("k=").unwrap_or(part).parse::<u32>() {
                opts.k = k;
            } else {
                return Err(format!(
                    "--compare: {part:?} in {entry:?} is neither a mode (push, pull, push-pull), a variant \
                     (feedback-counter, blind-counter, feedback-coin, blind-coin, forever) nor a number K"
                ));
            }
        }
        setups.push(opts);
    }
    if setups.is_empty() {
        return Err("--compare needs at least one set-up, e.g. push,push-pull".into());
    }
    Ok(setups)
}

/// Empirical CDF of `xs`: (value, fraction of samples at most that value).
fn cdf(xs: &[f64]) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len().max(1) as f64;
    v.iter().enumerate().map(|(i, &x)| (x, (i + 1) as f64 / n)).collect()
}

/// A progress bar on a terminal; hidden otherwise (and with --json).
pub(crate) fn progress(runs: usize, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(runs as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} run {pos}/{len} [{elapsed_precise}] {wide_bar}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// One JSON line, or an aligned `field  value` table for people.
fn render<T: Serialize>(result: &T, json: bool) -> Result<String, String> {
    let value = serde_json::to_value(result).map_err(|e| e.to_string())?;
    if json {
        return serde_json::to_string(&value).map_err(|e| e.to_string());
    }
    let Some(fields) = value.as_object() else { return Ok(value.to_string()) };
    let width = fields.keys().map(String::len).max().unwrap_or(0);
    let lines: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            let v = match v.as_f64() {
                Some(f) if !v.is_u64() && !v.is_i64() => format!("{f:.3}"),
                _ => v.to_string(),
            };
            format!("{k:<width$}  {v}")
        })
        .collect();
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_entries_take_mode_variant_and_k_in_any_order() {
        let base = RumorOptions { k: 4, ..RumorOptions::default() };
        let s = parse_compare("push, pull:forever, 3:blind-coin:push-pull, k=7", &base).expect("valid");
        let got: Vec<_> = s.iter().map(|o| (o.mode, o.variant, o.k)).collect();
        assert_eq!(
            got,
            [
                (rumor::Mode::Push, rumor::Variant::FeedbackCounter, 4),
                (rumor::Mode::Pull, rumor::Variant::Forever, 4),
                (rumor::Mode::PushPull, rumor::Variant::BlindCoin, 3),
                (rumor::Mode::Push, rumor::Variant::FeedbackCounter, 7),
            ]
        );
    }

    #[test]
    fn compare_rejects_what_it_cannot_read() {
        let base = RumorOptions::default();
        assert!(parse_compare("push,shout", &base).expect_err("bad").contains("\"shout\""));
        assert!(parse_compare(" , ", &base).is_err());
        assert!(parse_compare("k=-1", &base).is_err());
    }
}
