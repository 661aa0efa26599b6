//! The connection cache on its own: real quinn endpoints on 127.0.0.1, no gossip node.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::Duration;

use gossip_quic::{AsyncUdpSocket, ClusterCa, ConnectionLimits, QuicRuntime, Runtime};

fn endpoint(ca: &ClusterCa, name: &str, limits: ConnectionLimits) -> (Box<dyn AsyncUdpSocket>, QuicRuntime) {
    let runtime = QuicRuntime::new(ca.node_tls(name).expect("cert")).with_limits(limits);
    let socket = UdpSocket::bind(("127.0.0.1", 0)).expect("bind");
    (runtime.wrap_udp_socket(socket).expect("endpoint"), runtime)
}

async fn send(socket: &dyn AsyncUdpSocket, bytes: &[u8], to: SocketAddr) {
    std::future::poll_fn(|cx| socket.poll_send_to(cx, bytes, to)).await.expect("queued");
}

/// The next datagram `socket` receives, if one comes within two seconds.
async fn receive(socket: &dyn AsyncUdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 2048];
    let got = std::future::poll_fn(|cx| socket.poll_recv_from(cx, &mut buf));
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), got).await.ok()?.ok()?;
    Some((buf[..n].to_vec(), from))
}

/// A node whose cache holds one connection still reaches every peer it sends to, in turn: a
/// connection it dials when the cache is full closes the oldest one instead of being refused
/// (which stranded everything queued for that peer, for good).
#[test]
fn a_full_cache_makes_room_for_a_connection_this_node_dials() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let ca = ClusterCa::generate("cluster").expect("CA");
        let (a, a_runtime) = endpoint(&ca, "a", ConnectionLimits { max_connections: 1 });
        let (b, _) = endpoint(&ca, "b", ConnectionLimits::default());
        let (c, _) = endpoint(&ca, "c", ConnectionLimits::default());
        let a_addr = a.local_addr().expect("addr");
        for (round, (peer, peer_name)) in [(&b, "b"), (&c, "c"), (&b, "b")].into_iter().enumerate() {
            let to = peer.local_addr().expect("addr");
            let message = format!("round {round}");
            // The first datagram may wait for the handshake; send a few until one arrives.
            let mut arrived = None;
            for _ in 0..5 {
                send(a.as_ref(), message.as_bytes(), to).await;
                if let Some(got) = receive(peer.as_ref()).await {
                    arrived = Some(got);
                    break;
                }
            }
            let (bytes, from) = arrived.unwrap_or_else(|| panic!("round {round}: nothing reached {peer_name}"));
            assert_eq!(bytes, message.as_bytes());
            assert_eq!(from, a_addr);
        }
        let stats = a_runtime.stats();
        assert_eq!(stats.connections_refused.load(Ordering::Relaxed), 0);
        assert!(stats.connections_evicted.load(Ordering::Relaxed) >= 2, "each new peer evicted the other");
        assert_eq!(stats.connections_open.load(Ordering::Relaxed), 1, "one connection at a time");
    });
}

/// A silence limit shorter than an acknowledgement takes would replace live connections.
#[test]
fn a_silence_limit_under_100_ms_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _guard = rt.enter();
    let ca = ClusterCa::generate("cluster").expect("CA");
    let runtime = QuicRuntime::new(ca.node_tls("a").expect("cert")).with_unresponsive_after(Duration::from_millis(10));
    let socket = UdpSocket::bind(("127.0.0.1", 0)).expect("bind");
    match runtime.wrap_udp_socket(socket) {
        Ok(_) => panic!("a 10 ms silence limit was accepted"),
        Err(err) => assert!(err.to_string().contains("with_unresponsive_after"), "{err}"),
    }
}

/// `max_connections: 0` is a configuration error, not a node that can reach nobody.
#[test]
fn a_cache_of_no_connections_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _guard = rt.enter();
    let ca = ClusterCa::generate("cluster").expect("CA");
    let runtime =
        QuicRuntime::new(ca.node_tls("a").expect("cert")).with_limits(ConnectionLimits { max_connections: 0 });
    let socket = UdpSocket::bind(("127.0.0.1", 0)).expect("bind");
    match runtime.wrap_udp_socket(socket) {
        Ok(_) => panic!("a cache of no connections was accepted"),
        Err(err) => assert!(err.to_string().contains("max_connections"), "{err}"),
    }
}
