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

    /// The transport's counters.
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

impl Runtime for QuicRuntime {
    fn new_timer(&self, at: Instant) -> Box<dyn AsyncTimer> {
        self.tokio.new_timer(at)
    }

    fn spawn(&self, future: BoxFuture) {
        self.tokio.spawn(future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let _guard = handle.enter();
        let transport = Arc::new(self.transport()?);
        let server_tls = self.tls.server_config().map_err(io::Error::other)?;
        let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).map_err(io::Error::other)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());
        let mut endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        let client_tls = self.tls.client_config().map_err(io::Error::other)?;
        let client_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).map_err(io::Error::other)?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport);
        endpoint.set_default_client_config(client);
        Ok(Box::new(QuicSocket::start(endpoint, self.stats.clone(), self.limits, self.max_message)))
    }
}
