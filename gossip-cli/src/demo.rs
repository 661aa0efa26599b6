//! `gossip demo`: 16 real UDP nodes on 127.0.0.1 in one process. Shows them join, a
//! broadcast spreading, a key spreading, a crashed node detected, a graceful leave, and the membership table;
//! then exits by itself.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use gossip_core::{Config, Event, MemberState};
use tokio::sync::mpsc;

use crate::local::{self, RuntimeKind, Stamped};

/// Arguments of `gossip demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 16)]
    nodes: usize,
    /// Async runtime driving the nodes.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Tokio)]
    runtime: RuntimeKind,
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    fn cyan(&self, t: &str) -> String {
        self.paint("36", t)
    }
}

pub fn run(args: DemoArgs) -> Result<(), String> {
    if !(3..=64).contains(&args.nodes) {
        return Err("--nodes must be between 3 and 64".into());
    }
    let rt = local::runtime()?;
    rt.block_on(demo(args))
}

/// The whole demo's time budget: DESIGN promises it exits by itself in under 60 s.
const DEMO_BUDGET: Duration = Duration::from_secs(55);

struct Clock {
    start: Instant,
}

impl Clock {
    fn stamp(&self, s: &Style, at: Instant) -> String {
        s.dim(&format!("[{:>6.2}s]", at.saturating_duration_since(self.start).as_secs_f64()))
    }

    /// `stage`, or what is left of the demo's budget if that is less.
    fn allow(&self, stage: Duration) -> Duration {
        stage.min((self.start + DEMO_BUDGET).saturating_duration_since(Instant::now()))
    }
}

async fn demo(args: DemoArgs) -> Result<(), String> {
    let s = Style { on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() };
    let n = args.nodes;
    // The loopback preset: memberlist's Local, with this library's shorter suspicion.
    let config = Config::local();
    out!(
        "{} {} nodes on 127.0.0.1, UDP, {} runtime, SWIM + Lifeguard (probe every {} ms, gossip every {} ms)\n",
        s.bold("gossip demo:"),
        n,
        args.runtime.name(),
        config.probe_interval.as_millis(),
        config.gossip_interval.as_millis()
    );
    let clock = Clock { start: Instant::now() };
    // Stages that did not complete: the demo still runs to the end, then exits non-zero.
    let mut failed: Vec<&'static str> = Vec::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<Stamped>();
    let names: Vec<String> = (0..n).map(|i| format!("node-{i:02}")).collect();
    let seed = local::start_node(args.runtime, config.clone(), names[0].clone(), vec![], 0, tx.clone())
        .map_err(|e| e.to_string())?;
    out!("{} {} started on {} (the seed)", clock.stamp(&s, Instant::now()), s.cyan(&names[0]), seed.local_addr());
    let mut handles = vec![seed.clone()];
    for (i, name) in names.iter().enumerate().skip(1) {
        let h = local::start_node(args.runtime, config.clone(), name.clone(), vec![seed.local_addr()], i, tx.clone())
            .map_err(|e| e.to_string())?;
        handles.push(h);
    }
    out!(
        "{} {} more nodes started, each joining through {}",
        clock.stamp(&s, Instant::now()),
        n - 1,
        s.cyan(&names[0])
    );

    // 1. Joins.
    let mut known: Vec<HashSet<String>> = vec![HashSet::new(); n];
    let joined_at = wait_for(&mut rx, clock.allow(Duration::from_secs(20)), |node, item| {
        if let Ok(Event::MemberUp(m)) = item {
            known[node].insert(m.name.to_string());
        }
        known.iter().all(|k| k.len() + 1 >= n)
    })
    .await;
    match joined_at {
        Some(at) => out!(
            "{} {} every node sees all {} members {}",
            clock.stamp(&s, at),
            s.green("converged:"),
            n,
            s.dim(&format!("({} ms after the last start)", at.duration_since(clock.start).as_millis()))
        ),
        None => {
            stage_failed(&mut failed, "join", &clock, &s, "membership did not converge in 20 s");
        }
    }

    // 2. A broadcast.
    let origin = 5 % n;
    let text = format!("hello from {}", names[origin]);
    let sent_at = Instant::now();
    handles[origin].broadcast(text.clone().into_bytes()).map_err(|e| e.to_string())?;
    out!("{} {} broadcasts {:?}", clock.stamp(&s, sent_at), s.cyan(&names[origin]), text);
    let mut got: HashMap<usize, usize> = HashMap::new();
    let mut slowest = Duration::ZERO;
    let reached = wait_for(&mut rx, clock.allow(Duration::from_secs(10)), |node, item| {
        if let Ok(Event::Broadcast { .. }) = item {
            *got.entry(node).or_default() += 1;
        }
        got.len() + 1 >= n
    })
    .await;
    // Give duplicates a chance to show up before claiming there are none.
    let _ = wait_for(&mut rx, Duration::from_millis(300), |node, item| {
        if let Ok(Event::Broadcast { .. }) = item {
            *got.entry(node).or_default() += 1;
        }
        false
    })
    .await;
    let twice = got.values().filter(|&&c| c > 1).count();
    if let Some(at) = reached {
        slowest = at.duration_since(sent_at);
    }
    if reached.is_none() || twice > 0 {
        failed.push("broadcast");
    }
    let how = if twice == 0 { "once".to_owned() } else { format!("({twice} nodes more than once!)") };
    out!(
        "{} broadcast delivered {} to {}/{} other nodes {}",
        clock.stamp(&s, Instant::now()),
        how,
        got.len(),
        n - 1,
        s.dim(&format!("(last after {} ms)", slowest.as_millis()))
    );

    // 2b. A key spreading (anti-entropy of the replicated key/value state).
    let writer = 3 % n;
    let set_at = Instant::now();
    let version = handles[writer].set("color", "blue").map_err(|e| e.to_string())?;
    out!("{} {} sets {}", clock.stamp(&s, set_at), s.cyan(&names[writer]), s.bold("color = \"blue\""));
    let writer_name = names[writer].clone();
    let mut holders: HashMap<usize, Instant> = HashMap::new();
    let spread = wait_for(&mut rx, clock.allow(Duration::from_secs(20)), |node, item| {
        if let Ok(Event::KeyChanged { node: owner, key, version: v }) = item {
            if owner == writer_name.as_str() && key == "color" && *v == version {
                holders.insert(node, Instant::now());
            }
        }
        holders.len() + 1 >= n
    })
    .await;
    match spread {
        Some(at) => out!(
            "{} key known to all {} other nodes {}",
            clock.stamp(&s, at),
            n - 1,
            s.dim(&format!(
                "({} ms: a piggybacked rumor, anti-entropy repairs what it misses)",
                at.duration_since(set_at).as_millis()
            ))
        ),
        None => {
            let why = format!("key reached {}/{} other nodes in 20 s", holders.len(), n - 1);
            stage_failed(&mut failed, "key spread", &clock, &s, &why);
        }
    }

    // 3. A crash.
    let victim = n - 1;
    let crash_at = Instant::now();
    handles[victim].abort();
    out!("{} {} {}", clock.stamp(&s, crash_at), s.cyan(&names[victim]), s.red("crashed (stopped without leaving)"));
    let victim_name = names[victim].clone();
    let mut first_suspect: Option<(usize, Instant)> = None;
    let mut down: HashMap<usize, Instant> = HashMap::new();
    let detected = wait_for(&mut rx, clock.allow(Duration::from_secs(40)), |node, item| {
        match item {
            Ok(Event::MemberSuspect(m)) if m.name == victim_name.as_str() && first_suspect.is_none() => {
                first_suspect = Some((node, Instant::now()));
            }
            _ if local::is_down_of(item, &victim_name) => {
                down.entry(node).or_insert_with(Instant::now);
            }
            _ => {}
        }
        down.len() + 1 >= n
    })
    .await;
    if let Some((node, at)) = first_suspect {
        out!(
            "{} {} suspects {} {}",
            clock.stamp(&s, at),
            s.cyan(&names[node]),
            s.cyan(&victim_name),
            s.dim(&format!("({} ms after the crash)", at.duration_since(crash_at).as_millis()))
        );
    }
    match detected {
        Some(at) => out!(
            "{} {} declared dead by all {} survivors {}",
            clock.stamp(&s, at),
            s.cyan(&victim_name),
            n - 1,
            s.dim(&format!("({:.1} s after the crash)", at.duration_since(crash_at).as_secs_f64()))
        ),
        None => {
            let why = format!("only {} of {} survivors declared it dead in 40 s", down.len(), n - 1);
            stage_failed(&mut failed, "crash detection", &clock, &s, &why);
        }
    }

    // 4. A graceful leave.
    let leaver = n - 2;
    let leave_at = Instant::now();
    handles[leaver].leave().map_err(|e| e.to_string())?;
    out!("{} {} leaves gracefully", clock.stamp(&s, leave_at), s.cyan(&names[leaver]));
    let leaver_name = names[leaver].clone();
    let mut left: HashSet<usize> = HashSet::new();
    let seen = wait_for(&mut rx, clock.allow(Duration::from_secs(10)), |node, item| {
        if matches!(item, Ok(Event::MemberLeft(m)) if m.name == leaver_name.as_str()) {
            left.insert(node);
        }
        left.len() + 2 >= n
    })
    .await;
    match seen {
        Some(at) => out!(
            "{} seen as {} by all {} others {}",
            clock.stamp(&s, at),
            s.yellow("left"),
            n - 2,
            s.dim(&format!("({} ms)", at.duration_since(leave_at).as_millis()))
        ),
        None => {
            let why = format!("only {} of {} others saw the leave in 10 s", left.len(), n - 2);
            stage_failed(&mut failed, "leave", &clock, &s, &why);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 5. The table.
    print_table(&s, &handles[0]);
    for h in &handles {
        h.abort();
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("the demo's {} did not complete in time", failed.join(", ")))
    }
}

/// Notes a stage that did not complete in time, in red.
fn stage_failed(failed: &mut Vec<&'static str>, stage: &'static str, clock: &Clock, s: &Style, why: &str) {
    failed.push(stage);
    out!("{} {}", clock.stamp(s, Instant::now()), s.red(why));
}

/// Reads events until `done` holds or `limit` passes; returns when it held.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Stamped>,
    limit: Duration,
    mut done: impl FnMut(usize, &gossip_tokio::EventItem) -> bool,
) -> Option<Instant> {
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some((node, at, item))) => {
                if done(node, &item) {
                    return Some(at);
                }
            }
            Ok(None) | Err(_) => return None,
        }
    }
}

fn print_table(s: &Style, view: &gossip_tokio::Handle) {
    out!("\n{}", s.bold(&format!("Membership as {} sees it", view.name())));
    let mut rows = view.all_members();
    rows.push(view.self_record());
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    out!(
        "  {}",
        s.bold(&format!("{:<9} {:<21} {:<8} {:>11} {:>10}", "NAME", "ADDRESS", "STATE", "INCARNATION", "GENERATION"))
    );
    for m in rows {
        let state = match m.state {
            MemberState::Alive => s.green(&format!("{:<8}", "alive")),
            MemberState::Suspect => s.yellow(&format!("{:<8}", "suspect")),
            MemberState::Dead => s.red(&format!("{:<8}", "dead")),
            MemberState::Left => s.yellow(&format!("{:<8}", "left")),
        };
        out!(
            "  {:<9} {:<21} {} {:>11} {:>10}",
            m.name.as_str(),
            m.addr.to_string(),
            state,
            m.incarnation,
            m.generation
        );
    }
    let metrics = view.metrics();
    out!(
        "\n  {} {} packets in, {} out ({} / {} bytes); {} probes, {} indirect; health score {}",
        s.dim(&format!("{}:", view.name())),
        metrics.packets_in,
        metrics.packets_out,
        metrics.bytes_in,
        metrics.bytes_out,
        metrics.probes,
        metrics.indirect_probes,
        metrics.health_score
    );
}
