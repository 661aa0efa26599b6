//! Building a node: socket, identity, seeds, and the driver that runs it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gossip_core::{Config, Identity, Node};

use crate::driver::{Driver, IoMetrics, Phase, Shared, State};
use crate::error::BuildError;
use crate::events::{EventStream, Subscriber};
use crate::handle::Handle;
use crate::runtime::{AsyncUdpSocket, Runtime};

/// Default capacity of each event stream's queue.
pub const DEFAULT_EVENT_CAPACITY: usize = 4096;

/// Longest leave linger a builder accepts: a linger is a few gossip intervals, and a longer
/// one would keep a departed node's driver alive for no purpose.
pub const MAX_LEAVE_LINGER: Duration = Duration::from_secs(3600);

type SocketWrapper = Box<dyn FnOnce(Box<dyn AsyncUdpSocket>) -> Box<dyn AsyncUdpSocket> + Send>;

/// Builds a node on runtime `R`: a [`Config`], a bind address, a name and seeds in; a
/// [`Handle`] and an [`EventStream`] out.
///
/// The adapters name it for their runtime (`gossip_tokio::Builder`, `gossip_smol::Builder`).
/// Defaults: bind `127.0.0.1:0` (an ephemeral port), name `node-<addr>`, generation = the
/// current UNIX time in milliseconds, RNG seed from the operating system, no seeds (a
/// cluster of one, until someone joins it or [`Handle::join`] is called).
#[must_use = "a builder does nothing until `spawn` or `build`"]
pub struct Builder<R> {
    runtime: R,
    config: Config,
    bind: SocketAddr,
    socket: Option<std::net::UdpSocket>,
    advertise: Option<SocketAddr>,
    name: Option<String>,
    seeds: Vec<SocketAddr>,
    generation: Option<u64>,
    rng_seed: Option<u64>,
    event_capacity: usize,
    leave_linger: Option<Duration>,
    wrap: Option<SocketWrapper>,
}

impl<R: fmt::Debug> fmt::Debug for Builder<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("runtime", &self.runtime)
            .field("bind", &self.bind)
            .field("advertise", &self.advertise)
            .field("name", &self.name)
            .field("seeds", &self.seeds)
            .field("generation", &self.generation)
            .field("event_capacity", &self.event_capacity)
            .field("leave_linger", &self.leave_linger)
            .field("wrapped_socket", &self.wrap.is_some())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default> Builder<R> {
    /// A builder with `config` on the default instance of the runtime.
    pub fn new(config: Config) -> Self {
        Self::with_runtime(config, R::default())
    }
}

impl<R: Runtime> Builder<R> {
    /// A builder with `config` on a given runtime instance.
    pub fn with_runtime(config: Config, runtime: R) -> Self {
        Builder {
            runtime,
            config,
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            socket: None,
            advertise: None,
            name: None,
            seeds: Vec::new(),
            generation: None,
            rng_seed: None,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            leave_linger: None,
            wrap: None,
        }
    }

    /// Address to bind the UDP socket to (port 0 picks a free port).
    pub fn bind(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.bind = addr.into();
        self
    }

    /// Uses an already bound socket instead of binding one.
    pub fn socket(mut self, socket: std::net::UdpSocket) -> Self {
        self.socket = Some(socket);
        self
    }

    /// Address other members reach this node at, if not the bound one (required when bound
    /// to `0.0.0.0` or `::`, or behind NAT).
    pub fn advertise(mut self, addr: impl Into<SocketAddr>) -> Self {
        self.advertise = Some(addr.into());
        self
    }

    /// Unique member name, stable across restarts (1 to 128 bytes, no control characters).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Members to join through once started (replaces earlier seeds).
    pub fn seeds(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.seeds = seeds.into_iter().collect();
        self
    }

    /// Generation of this life of the node; must grow across restarts. Default: the current
    /// UNIX time in milliseconds.
    pub fn generation(mut self, generation: u64) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Seed of the node's RNG (for reproducible runs). Default: from the operating system.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// Capacity of each event stream's queue; a consumer further behind gets
    /// [`Lagged`](crate::Lagged). Default [`DEFAULT_EVENT_CAPACITY`].
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// How long a leaving node keeps gossiping its leave before stopping. Default: three
    /// gossip intervals, at most [`MAX_LEAVE_LINGER`]. Longer than that is refused when the
    /// node is built ([`BuildError::LeaveLinger`]).
    pub fn leave_linger(mut self, linger: Duration) -> Self {
        self.leave_linger = Some(linger);
        self
    }

    /// Wraps the socket before the driver uses it, for instance in a
    /// [`FaultySocket`](crate::FaultySocket) to inject packet loss.
    pub fn wrap_socket(
        mut self,
        wrap: impl FnOnce(Box<dyn AsyncUdpSocket>) -> Box<dyn AsyncUdpSocket> + Send + 'static,
    ) -> Self {
        self.wrap = Some(Box::new(wrap));
        self
    }

    /// Binds the socket and creates the node, returning the driver future for you to run
    /// (`spawn` it on any executor, or await it). Seeds given to the builder are joined as
    /// soon as the driver runs.
    pub fn build(self) -> Result<(Handle, EventStream, Driver), BuildError> {
        self.build_parts().map(|(h, e, d, _)| (h, e, d))
    }

    /// Binds the socket, creates the node and runs its driver on the runtime.
    pub fn spawn(self) -> Result<(Handle, EventStream), BuildError> {
        let (handle, events, driver, runtime) = self.build_parts()?;
        runtime.spawn(Box::pin(driver));
        Ok((handle, events))
    }

    fn build_parts(self) -> Result<(Handle, EventStream, Driver, R), BuildError> {
        if self.config.bulk_mtu.is_some() && !self.runtime.has_reliable_path() {
            return Err(BuildError::BulkWithoutReliablePath);
        }
        let socket = match self.socket {
            Some(s) => s,
            None => {
                std::net::UdpSocket::bind(self.bind).map_err(|source| BuildError::Bind { addr: self.bind, source })?
            }
        };
        socket.set_nonblocking(true).map_err(BuildError::Socket)?;
        let local_addr = socket.local_addr().map_err(BuildError::Socket)?;
        let advertised = self.advertise.unwrap_or(local_addr);
        if advertised.ip().is_unspecified() {
            return Err(BuildError::UnspecifiedAddress(advertised));
        }
        let generation = self.generation.unwrap_or_else(unix_millis);
        let rng_seed = match self.rng_seed {
            Some(s) => s,
            None => getrandom::u64().map_err(|e| BuildError::Random(e.to_string()))?,
        };
        let name = self.name.unwrap_or_else(|| format!("node-{advertised}"));

        let mut socket = self.runtime.wrap_udp_socket(socket).map_err(BuildError::Socket)?;
        if let Some(wrap) = self.wrap {
            socket = wrap(socket);
        }
        let now = Instant::now();
        let identity = Identity { name: name.clone(), addr: advertised, generation };
        // A linger set too long is refused; the default (three gossip intervals) is capped,
        // since the core accepts intervals up to a day.
        let linger = match self.leave_linger {
            Some(linger) if linger > MAX_LEAVE_LINGER => return Err(BuildError::LeaveLinger(linger)),
            Some(linger) => linger,
            None => self.config.gossip_interval.saturating_mul(3).min(MAX_LEAVE_LINGER),
        };
        let mut node = Node::new(self.config, identity, rng_seed, now)?;
        if !self.seeds.is_empty() {
            node.join(now, self.seeds);
        }
        let first = Subscriber::new(self.event_capacity);
        let state = State {
            node,
            phase: Phase::Running,
            abort: false,
            linger,
            driver_waker: None,
            stop_wakers: BTreeMap::new(),
            next_stop_slot: 0,
            subscribers: vec![first.clone()],
            event_capacity: self.event_capacity,
            io: IoMetrics::default(),
        };
        let shared = Shared::new(state, local_addr, name, generation);
        let timer = self.runtime.new_timer(now);
        let driver = Driver::new(shared.clone(), socket, timer);
        tracing::debug!(name = %shared.name, %local_addr, generation, "node built");
        Ok((Handle::new(shared), EventStream::new(first), driver, self.runtime))
    }
}

/// The current UNIX time in milliseconds: the default generation, larger at every restart
/// as long as the wall clock is not set back.
pub fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
