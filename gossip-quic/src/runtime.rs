//! The runtime the shared driver runs on: tokio's timers and tasks, and a quinn endpoint in
//! place of the UDP socket.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gossip_driver::{AsyncTimer, AsyncUdpSocket, BoxFuture, Runtime};
use gossip_tokio::TokioRuntime;

use crate::socket::{ConnectionLimits, QuicSocket, QuicStats};
use crate::tls::ClusterTls;

/// Tokio plus a quinn endpoint with the cluster's TLS.
#[derive(Debug, Clone)]
pub struct QuicRuntime {
    tokio: TokioRuntime,
    tls: ClusterTls,
    limits: ConnectionLimits,
    idle_timeout: Duration,
    unresponsive_after: Duration,
    max_message: usize,
    stats: Arc<QuicStats>,
}

impl QuicRuntime {
    /// Over the current tokio runtime, with `tls`.
    pub fn new(tls: ClusterTls) -> Self {
        QuicRuntime {
            tokio: TokioRuntime::default(),
            tls,
            limits: ConnectionLimits::default(),
            idle_timeout: Duration::from_secs(180),
            unresponsive_after: Duration::from_secs(5),
            max_message: crate::QUIC_BULK_MTU,
            stats: Arc::new(QuicStats::default()),
        }
    }

    /// Limits of the connection cache.
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How long an unused connection stays open (180 s by default). Randomized round-robin
    /// probing reaches every member once per N probe intervals, so below that a cluster of N
    /// keeps reopening connections (a TLS handshake each, several kilobytes).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a peer may stay silent (not even acknowledging) while this node sends to it
    /// before its connection is taken for dead and a fresh one dialled (5 s by default): a
    /// crashed peer restarted on its address is reached again after this, not after the idle
    /// timeout. Costs nothing on idle connections: only sending starts the clock.
    pub fn with_unresponsive_after(mut self, silence: Duration) -> Self {
        self.unresponsive_after = silence;
        self
    }

    /// Largest stream a peer may send (what the node accepts: `Config::max_inbound_size`).
    pub(crate) fn with_max_message(mut self, max: usize) -> Self {
        self.max_message = max.min(crate::QUIC_BULK_MTU);
        self
    }

    /// The transport's counters. Clones of this runtime share them (and its TLS identity:
    /// build one node per runtime).
    pub fn stats(&self) -> Arc<QuicStats> {
        self.stats.clone()
    }

    fn transport(&self) -> io::Result<quinn::TransportConfig> {
        let mut t = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout).map_err(io::Error::other)?;
        t.max_idle_timeout(Some(idle));
        // Reliable transfers use unidirectional streams, a bounded number at once per peer;
        // nothing uses bidirectional ones.
        t.max_concurrent_bidi_streams(0u32.into());
        t.max_concurrent_uni_streams(16u32.into());
        t.datagram_receive_buffer_size(Some(1 << 20));
        // The core's datagrams are capped below the 1,200 bytes every path carries: probing
        // for a larger MTU would only cost padded probe packets on every connection.
        t.mtu_discovery_config(None);
        Ok(t)
    }
}

impl QuicRuntime {
    /// Endpoint settings that outlive the process. The stateless-reset key and the key that
    /// marks this endpoint's connection ids are derived from the node's private key, so a
    /// node restarted on the same address recognises the connection ids of its earlier life
    /// and answers a peer still sending on such a connection with a reset the peer accepts:
    /// the peer drops that connection and dials a fresh one at once, instead of sending into
    /// the void until the idle timeout. (With per-process keys, as quinn's defaults are, the
    /// packets are dropped unanswered.)
    ///
    /// This assumes one key per node, as `gossip certs` issues them: endpoints sharing a key
    /// could be made to reset each other's connections. The connection-id key only lets the
    /// endpoint drop junk cheaply (quinn hashes it with a fast, non-cryptographic hash);
    /// someone who learns it can draw at most one reset per 20 ms, each smaller than the
    /// packet that drew it.
    fn endpoint_config(&self) -> quinn::EndpointConfig {
        let reset = self.tls.derived_secret("stateless reset");
        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset.as_ref());
        let cid = self.tls.derived_secret("connection id");
        let mut cid_key = [0u8; 8];
        cid_key.copy_from_slice(&cid.as_ref()[..8]);
        let cid_key = u64::from_le_bytes(cid_key);
        let mut config = quinn::EndpointConfig::new(Arc::new(reset_key));
        config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
        config
    }
}

impl Runtime for QuicRuntime {
    fn has_reliable_path(&self) -> bool {
        true
    }

    fn new_timer(&self, at: Instant) -> Box<dyn AsyncTimer> {
        self.tokio.new_timer(at)
    }

    fn spawn(&self, future: BoxFuture) {
        self.tokio.spawn(future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        if self.limits.max_connections == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ConnectionLimits::max_connections must be at least 1",
            ));
        }
        if self.unresponsive_after < Duration::from_millis(100) {
            // Shorter than an acknowledgement can take: live connections would be replaced.
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "with_unresponsive_after must be at least 100 ms"));
        }
        let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let _guard = handle.enter();
        let transport = Arc::new(self.transport()?);
        let server_tls = self.tls.server_config().map_err(io::Error::other)?;
        let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).map_err(io::Error::other)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());
        let mut endpoint =
            quinn::Endpoint::new(self.endpoint_config(), Some(server), socket, Arc::new(quinn::TokioRuntime))?;
        let client_tls = self.tls.client_config().map_err(io::Error::other)?;
        let client_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).map_err(io::Error::other)?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport);
        endpoint.set_default_client_config(client);
        Ok(Box::new(QuicSocket::start(
            endpoint,
            self.stats.clone(),
            self.limits,
            self.max_message,
            self.unresponsive_after,
        )))
    }
}
