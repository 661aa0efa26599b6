//! Helpers for the cross-crate integration tests in `tests/tests/`: real UDP nodes on
//! 127.0.0.1 under tokio and smol, event logs, and bounded waits that fail instead of hang.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gossip_core::{Config, Event, MemberState};
use gossip_driver::{EventStream, Handle, Lagged};

/// `Config::local()` with probing sped up for tests on loopback.
pub fn fast_config() -> Config {
    Config {
        probe_interval: Duration::from_millis(400),
        probe_timeout: Duration::from_millis(200),
        gossip_interval: Duration::from_millis(100),
        push_pull_interval: Some(Duration::from_secs(5)),
        state_sync_interval: Some(Duration::from_millis(500)),
        join_retry_initial: Duration::from_millis(100),
        ..Config::local()
    }
}

/// A multi-threaded tokio runtime for one test.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// Which adapter a test node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// gossip-tokio, on the runtime entered by the caller.
    Tokio,
    /// gossip-smol, on smol's global executor.
    Smol,
}

/// A node under test: its handle, its event stream and everything the stream said so far.
#[derive(Debug)]
pub struct TestNode {
    /// The node's handle.
    pub handle: Handle,
    /// Its event stream.
    pub events: EventStream,
    /// Events read so far, in order.
    pub log: Vec<Event<SocketAddr>>,
    /// Events lost to lag so far (should stay 0).
    pub lagged: u64,
}

impl TestNode {
    /// Starts a node named `name` on `adapter` joining `seeds`. A tokio node must be started
    /// inside a tokio runtime context.
    pub fn start(adapter: Adapter, config: Config, name: &str, seeds: &[SocketAddr]) -> TestNode {
        let (handle, events) = match adapter {
            Adapter::Tokio => gossip_tokio::Builder::new(config).name(name).seeds(seeds.iter().copied()).spawn(),
            Adapter::Smol => gossip_smol::Builder::new(config).name(name).seeds(seeds.iter().copied()).spawn(),
        }
        .expect("node starts");
        TestNode::new(handle, events)
    }

    /// Wraps a handle and its stream.
    pub fn new(handle: Handle, events: EventStream) -> TestNode {
        TestNode { handle, events, log: Vec::new(), lagged: 0 }
    }

    /// Moves every queued event into the log.
    pub fn pump(&mut self) {
        while let Some(item) = self.events.try_recv() {
            match item {
                Ok(e) => self.log.push(e),
                Err(Lagged(n)) => self.lagged += n,
            }
        }
    }

    /// Name of the node.
    pub fn name(&self) -> &str {
        self.handle.name()
    }

    /// Address of the node.
    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Whether this node believes `name` is alive (or suspect).
    pub fn sees_live(&self, name: &str) -> bool {
        self.handle.member(name).is_some_and(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
    }

    /// Events of the log about member `name` matching `pred`.
    pub fn count_events(&self, pred: impl Fn(&Event<SocketAddr>) -> bool) -> usize {
        self.log.iter().filter(|e| pred(e)).count()
    }
}

/// Whether `e` is a `MemberDown` about `name`.
pub fn is_down(e: &Event<SocketAddr>, name: &str) -> bool {
    matches!(e, Event::MemberDown(m) if m.name == name)
}

/// Whether `e` is a `MemberLeft` about `name`.
pub fn is_left(e: &Event<SocketAddr>, name: &str) -> bool {
    matches!(e, Event::MemberLeft(m) if m.name == name)
}

/// Polls `cond` every 25 ms (pumping every node's events first) until it holds or `timeout`
/// passes; returns the time it took, or `None` on timeout.
pub fn wait_until(
    nodes: &mut [TestNode],
    timeout: Duration,
    mut cond: impl FnMut(&mut [TestNode]) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        for n in nodes.iter_mut() {
            n.pump();
        }
        if cond(nodes) {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Whether every node sees exactly the others as live members.
pub fn converged(nodes: &[TestNode]) -> bool {
    let n = nodes.len();
    nodes.iter().all(|node| {
        let members = node.handle.members();
        members.len() == n - 1 && nodes.iter().all(|o| o.name() == node.name() || node.sees_live(o.name()))
    })
}

/// A summary of how far from converged the cluster is, for failure messages.
pub fn view_summary(nodes: &[TestNode]) -> String {
    let counts: Vec<usize> = nodes.iter().map(|n| n.handle.members().len()).collect();
    format!("live member counts per node: {counts:?}")
}
