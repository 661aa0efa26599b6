//! Local clusters of real UDP nodes in one process, on tokio or smol: what `gossip demo` and
//! `gossip cluster` share.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use futures::StreamExt;
use gossip_core::{Config, Event};
use gossip_tokio::{BuildError, EventItem, EventStream, Handle};
use tokio::sync::mpsc;

/// How the nodes talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// Plain UDP datagrams.
    Udp,
    /// QUIC datagrams with mutual TLS (gossip-quic).
    Quic,
}

impl Transport {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Quic => "quic",
        }
    }
}

/// Which async runtime drives a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// tokio (gossip-tokio).
    Tokio,
    /// smol / async-io (gossip-smol).
    Smol,
}

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Tokio => "tokio",
            RuntimeKind::Smol => "smol",
        }
    }
}

/// The tokio runtime the commands orchestrate from (two workers, I/O and time enabled).
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))
}

/// An event from node `node`, stamped when the forwarder saw it.
pub type Stamped = (usize, Instant, EventItem);

/// Starts one node on 127.0.0.1 (ephemeral port) and forwards its events to `tx`. With a
/// cluster CA, the node speaks QUIC with a certificate from it (on tokio).
pub fn start_node(
    kind: RuntimeKind,
    config: Config,
    name: String,
    seeds: Vec<SocketAddr>,
    index: usize,
    tx: mpsc::UnboundedSender<Stamped>,
) -> Result<Handle, BuildError> {
    start_node_on(kind, None, config, name, seeds, index, tx).map(|(h, _)| h)
}

/// [`start_node`], over QUIC when `quic` holds the cluster CA.
pub fn start_node_on(
    kind: RuntimeKind,
    quic: Option<&gossip_quic::ClusterCa>,
    config: Config,
    name: String,
    seeds: Vec<SocketAddr>,
    index: usize,
    tx: mpsc::UnboundedSender<Stamped>,
) -> Result<(Handle, Option<std::sync::Arc<gossip_quic::QuicStats>>), BuildError> {
    if let Some(ca) = quic {
        let tls = ca.node_tls(&name).map_err(|e| BuildError::Socket(std::io::Error::other(e)))?;
        let runtime = gossip_quic::QuicRuntime::new(tls);
        let stats = runtime.stats();
        let (handle, events) = gossip_quic::builder_on(config, runtime)
            .bind(([127, 0, 0, 1], 0))
            .name(name)
            .seeds(seeds)
            .event_capacity(4096)
            .spawn()?;
        tokio::spawn(forward(index, events, tx));
        return Ok((handle, Some(stats)));
    }
    let (handle, events) = match kind {
        RuntimeKind::Tokio => gossip_tokio::Builder::new(config)
            .bind(([127, 0, 0, 1], 0))
            .name(name)
            .seeds(seeds)
            .event_capacity(4096)
            .spawn()?,
        RuntimeKind::Smol => gossip_smol::Builder::new(config)
            .bind(([127, 0, 0, 1], 0))
            .name(name)
            .seeds(seeds)
            .event_capacity(4096)
            .spawn()?,
    };
    tokio::spawn(forward(index, events, tx));
    Ok((handle, None))
}

async fn forward(index: usize, mut events: EventStream, tx: mpsc::UnboundedSender<Stamped>) {
    while let Some(item) = events.next().await {
        if tx.send((index, Instant::now(), item)).is_err() {
            break;
        }
    }
}

/// Waits until `done` holds (checked every `step`) or `limit` passes; returns whether it held.
pub async fn wait_until(limit: Duration, step: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(step).await;
    }
}

/// Whether every running node in `handles` sees all the others as live members.
pub fn all_see_each_other(handles: &[Handle]) -> bool {
    let n = handles.len();
    handles.iter().all(|h| h.members().len() + 1 == n)
}

/// Whether `name` appears in a `MemberDown` event.
pub fn is_down_of(item: &EventItem, name: &str) -> bool {
    matches!(item, Ok(Event::MemberDown(m)) if m.name == name)
}

/// CPU time this process has used, from the scheduler's per-thread accounting (Linux).
pub fn process_cpu_time() -> Option<Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut ns: u128 = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u128>().ok()?;
    }
    Some(Duration::from_nanos(ns.min(u128::from(u64::MAX)) as u64))
}

/// Resident memory of this process in bytes (Linux).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(kb * 1024)
}
