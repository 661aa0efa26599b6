//! `gossip cluster`: the real-network benchmark of DESIGN.md §5. N nodes on loopback in one
//! process join node 0, run in steady state, then node N-1 stops without a leave.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clap::Args;
use gossip_core::{Config, Event};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::local::{self, RuntimeKind};

/// Arguments of `gossip cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 128)]
    nodes: usize,
    /// Transport: UDP, or QUIC datagrams with mutual TLS (a cluster CA is generated for the
    /// run; tokio only).
    #[arg(long, value_enum, default_value_t = local::Transport::Udp)]
    transport: local::Transport,
    /// Async runtime driving the nodes.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Tokio)]
    runtime: RuntimeKind,
    /// Probe interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    probe_ms: u64,
    /// Gossip interval in milliseconds.
    #[arg(long, default_value_t = 200)]
    gossip_ms: u64,
    /// Seconds of steady state to measure traffic and CPU over.
    #[arg(long, default_value_t = 10)]
    steady_s: u64,
    /// SWIM suspicion multiplier: the minimum suspicion timeout is this × log10(N) × the probe
    /// interval (default: the LAN preset's, 1; memberlist LAN: 4).
    #[arg(long)]
    suspicion_mult: Option<u32>,
    /// Seconds allowed for joining and for crash detection, each.
    #[arg(long, default_value_t = 120)]
    limit_s: u64,
    /// Every node signs its self-state (Ed25519, a fresh key pair each, trust on first use).
    #[arg(long)]
    signing: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// What `gossip cluster` prints.
#[derive(Debug, Serialize)]
struct Report {
    nodes: usize,
    transport: String,
    runtime: &'static str,
    probe_ms: u64,
    gossip_ms: u64,
    suspicion_mult: u32,
    signing: bool,
    /// Core MTU in force (QUIC caps it at what a datagram frame holds).
    mtu: usize,
    join_converged: bool,
    /// `None` (null) if the join did not converge within the limit.
    join_s: Option<f64>,
    settle_s: f64,
    steady_s: u64,
    steady_bytes_per_node_s: f64,
    steady_packets_per_node_s: f64,
    steady_cpu_per_node: f64,
    /// UDP bytes per node per second on the wire with QUIC's own overhead (headers,
    /// encryption, acknowledgements); `null` over plain UDP, where it equals
    /// `steady_bytes_per_node_s`.
    steady_wire_bytes_per_node_s: Option<f64>,
    /// UDP datagrams per node per second on the wire over QUIC (acknowledgements included).
    steady_wire_packets_per_node_s: Option<f64>,
    /// QUIC handshakes completed per node during the steady state.
    steady_quic_handshakes_per_node: Option<f64>,
    /// QUIC connections open per node at the end of the steady state.
    quic_connections_per_node: Option<f64>,
    memory_per_node_bytes: f64,
    crash_detected: bool,
    /// `None` (null) if not every survivor removed the crashed node within the limit.
    detect_all_s: Option<f64>,
    false_removals: usize,
}

pub fn run(args: ClusterArgs) -> Result<(), String> {
    if args.transport == local::Transport::Quic && args.runtime != RuntimeKind::Tokio {
        return Err("--transport quic runs on tokio only (quinn's runtime)".into());
    }
    if args.nodes < 2 {
        return Err("--nodes must be at least 2".into());
    }
    if args.probe_ms == 0 || args.gossip_ms == 0 {
        return Err("--probe-ms and --gossip-ms must be positive".into());
    }
    // Real seconds: a day is already far beyond any benchmark, and larger values overflow.
    for (flag, seconds) in [("--limit-s", args.limit_s), ("--steady-s", args.steady_s)] {
        if seconds > 86_400 {
            return Err(format!("{flag} must be at most 86400 seconds"));
        }
    }
    let probe = Duration::from_millis(args.probe_ms);
    let probe_timeout = Config::lan().probe_timeout.min(probe / 2);
    let config = Config {
        probe_interval: probe,
        probe_timeout,
        min_probe_timeout: Config::lan().min_probe_timeout.min(probe_timeout),
        gossip_interval: Duration::from_millis(args.gossip_ms),
        suspicion_mult: args.suspicion_mult.unwrap_or(Config::lan().suspicion_mult),
        ..Config::lan()
    };
    config.validate().map_err(|e| e.to_string())?;
    let rt = local::runtime()?;
    let report = rt.block_on(measure(&args, config))?;
    if args.json {
        out!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    } else {
        out!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    }
    Ok(())
}

/// `config`, with a fresh signing key pair when `signing`.
fn node_config(config: &Config, signing: bool) -> Result<Config, String> {
    if !signing {
        return Ok(config.clone());
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    let keypair = gossip_core::wire::signing::Keypair::from_secret(secret);
    Ok(Config { signing: Some(gossip_core::wire::signing::Signing::new(keypair)), ..config.clone() })
}

async fn measure(args: &ClusterArgs, config: Config) -> Result<Report, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ca = match args.transport {
        local::Transport::Quic => Some(gossip_quic::ClusterCa::generate("gossip cluster").map_err(|e| e.to_string())?),
        local::Transport::Udp => None,
    };
    let rss_before = local::resident_bytes().unwrap_or(0);
    let (seed, seed_stats) = local::start_node_on(
        args.runtime,
        ca.as_ref(),
        node_config(&config, args.signing)?,
        "n0".into(),
        vec![],
        0,
        tx.clone(),
    )
    .map_err(|e| e.to_string())?;
    let mut handles = vec![seed.clone()];
    let mut quic_stats: Vec<_> = seed_stats.into_iter().collect();
    for i in 1..args.nodes {
        let (h, stats) = local::start_node_on(
            args.runtime,
            ca.as_ref(),
            node_config(&config, args.signing)?,
            format!("n{i}"),
            vec![seed.local_addr()],
            i,
            tx.clone(),
        )
        .map_err(|e| e.to_string())?;
        handles.push(h);
        quic_stats.extend(stats);
    }
    let wire = |stats: &[std::sync::Arc<gossip_quic::QuicStats>]| {
        stats.iter().map(|s| s.udp_sent()).fold((0u64, 0u64), |a, x| (a.0 + x.0, a.1 + x.1))
    };
    let last_started = Instant::now();
    let limit = Duration::from_secs(args.limit_s);
    let joined = local::wait_until(limit, Duration::from_millis(20), || local::all_see_each_other(&handles)).await;
    let join_s = last_started.elapsed().as_secs_f64();
    let rss_after = local::resident_bytes().unwrap_or(0);

    // Steady state begins once the join's rumors are spent (every rumor queue empty).
    let settle_at = Instant::now();
    local::wait_until(limit, Duration::from_millis(50), || handles.iter().all(|h| h.metrics().queued_rumors == 0))
        .await;
    let settle_s = settle_at.elapsed().as_secs_f64();

    // Steady state.
    let sum = |hs: &[gossip_tokio::Handle]| {
        hs.iter().fold((0u64, 0u64), |(b, p), h| {
            let m = h.metrics();
            (b + m.bytes_out, p + m.packets_out)
        })
    };
    let (b0, p0) = sum(&handles);
    let w0 = wire(&quic_stats);
    let opened = |stats: &[std::sync::Arc<gossip_quic::QuicStats>]| {
        stats.iter().map(|s| s.connections_opened.load(std::sync::atomic::Ordering::Relaxed)).sum::<u64>()
    };
    let o0 = opened(&quic_stats);
    let cpu0 = local::process_cpu_time();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.steady_s)).await;
    let secs = t0.elapsed().as_secs_f64();
    let (b1, p1) = sum(&handles);
    let w1 = wire(&quic_stats);
    let o1 = opened(&quic_stats);
    let connections: usize =
        quic_stats.iter().map(|s| s.connections_open.load(std::sync::atomic::Ordering::Relaxed)).sum();
    let cpu1 = local::process_cpu_time();
    let n = args.nodes as f64;
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b - a).as_secs_f64() / n / secs,
        _ => f64::NAN,
    };

    // Crash the last node without a leave.
    let victim = handles.pop().ok_or("no nodes")?;
    let victim_name = victim.name().to_owned();
    victim.abort();
    let crash_at = Instant::now();
    let survivors = handles.clone();
    let detected = local::wait_until(limit, Duration::from_millis(20), || {
        survivors.iter().all(|h| h.member(&victim_name).is_none_or(|m| m.state.is_gone()))
    })
    .await;
    let detect_all_s = crash_at.elapsed().as_secs_f64();

    // Every MemberDown about someone other than the victim is a false removal.
    let mut false_removals = 0;
    let mut seen = HashSet::new();
    while let Ok((node, _, item)) = rx.try_recv() {
        if let Ok(Event::MemberDown(m)) = &item {
            if m.name != victim_name.as_str() && seen.insert((node, m.name.to_string(), m.incarnation)) {
                false_removals += 1;
            }
        }
    }
    for h in &handles {
        h.abort();
    }
    Ok(Report {
        nodes: args.nodes,
        transport: args.transport.name().into(),
        runtime: args.runtime.name(),
        probe_ms: args.probe_ms,
        gossip_ms: args.gossip_ms,
        suspicion_mult: config.suspicion_mult,
        signing: args.signing,
        mtu: if ca.is_some() { gossip_quic::fit_config(config.clone()).mtu } else { config.mtu },
        join_converged: joined,
        join_s: joined.then_some(join_s),
        settle_s,
        steady_s: args.steady_s,
        steady_bytes_per_node_s: (b1 - b0) as f64 / n / secs,
        steady_packets_per_node_s: (p1 - p0) as f64 / n / secs,
        steady_cpu_per_node: cpu,
        steady_wire_bytes_per_node_s: ca.is_some().then(|| (w1.0.saturating_sub(w0.0)) as f64 / n / secs),
        steady_wire_packets_per_node_s: ca.is_some().then(|| (w1.1.saturating_sub(w0.1)) as f64 / n / secs),
        steady_quic_handshakes_per_node: ca.is_some().then(|| (o1 - o0) as f64 / n),
        quic_connections_per_node: ca.is_some().then(|| connections as f64 / n),
        memory_per_node_bytes: rss_after.saturating_sub(rss_before) as f64 / n,
        crash_detected: detected,
        detect_all_s: detected.then_some(detect_all_s),
        false_removals,
    })
}
