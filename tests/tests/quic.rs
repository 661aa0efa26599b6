//! Real QUIC nodes on 127.0.0.1 (gossip-quic): mutual TLS against a cluster CA, convergence,
//! crash detection, restarts, a refused stranger, a node added by the reloaded CA, and the same
//! membership outcome as UDP.
//! Every wait is bounded.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gossip_core::MemberState;
use gossip_quic::{ClusterCa, ClusterTls, QuicRuntime, QuicStats};
use gossip_tests::{converged, fast_config, is_down, tokio_runtime, view_summary, wait_until, Adapter, TestNode};

fn quic_node(tls: ClusterTls, name: &str, seeds: &[SocketAddr]) -> TestNode {
    quic_node_at(tls, name, seeds, ([127, 0, 0, 1], 0).into())
}

fn quic_node_at(tls: ClusterTls, name: &str, seeds: &[SocketAddr], bind: SocketAddr) -> TestNode {
    let (handle, events) = gossip_quic::builder(fast_config(), tls)
        .bind(bind)
        .name(name)
        .seeds(seeds.iter().copied())
        .spawn()
        .expect("QUIC node starts");
    TestNode::new(handle, events)
}

fn quic_cluster(ca: &ClusterCa, n: usize, prefix: &str) -> Vec<TestNode> {
    let first = quic_node(ca.node_tls(&format!("{prefix}0")).expect("cert"), &format!("{prefix}0"), &[]);
    let seed = first.addr();
    let mut nodes = vec![first];
    for i in 1..n {
        let name = format!("{prefix}{i}");
        nodes.push(quic_node(ca.node_tls(&name).expect("cert"), &name, &[seed]));
    }
    nodes
}

#[test]
fn twenty_quic_nodes_converge_and_detect_a_crash() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let ca = ClusterCa::generate("test cluster").expect("CA");
    let mut nodes = quic_cluster(&ca, 20, "q");
    let t = wait_until(&mut nodes, Duration::from_secs(30), |ns| converged(ns));
    assert!(t.is_some(), "20 QUIC nodes did not converge: {}", view_summary(&nodes));
    let victim = nodes.remove(7);
    victim.handle.abort();
    let t = wait_until(&mut nodes, Duration::from_secs(30), |ns| {
        ns.iter().all(|n| n.count_events(|e| is_down(e, "q7")) >= 1)
    });
    assert!(t.is_some(), "the crash of q7 was not detected by every QUIC node");
    assert!(nodes
        .iter()
        .all(|n| n.count_events(|e| matches!(e, gossip_core::Event::MemberDown(m) if m.name != "q7")) == 0));
}

#[test]
fn a_node_whose_certificate_the_cluster_ca_did_not_sign_cannot_join() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let ca = ClusterCa::generate("cluster").expect("CA");
    let mut nodes = quic_cluster(&ca, 3, "t");
    assert!(wait_until(&mut nodes, Duration::from_secs(20), |ns| converged(ns)).is_some());
    let stranger_ca = ClusterCa::generate("elsewhere").expect("CA");
    let seed = nodes[0].addr();
    let mut stranger = vec![quic_node(stranger_ca.node_tls("intruder").expect("cert"), "intruder", &[seed])];
    // Give it time to try (joins are retried with backoff).
    let joined = wait_until(&mut stranger, Duration::from_secs(4), |s| !s[0].handle.members().is_empty());
    assert!(joined.is_none(), "the stranger sees members");
    for n in &nodes {
        assert!(n.handle.member("intruder").is_none(), "{} lets the stranger in", n.name());
        assert_eq!(n.handle.members().len(), 2);
    }
}

/// Adding a node to a running cluster: the CA is loaded again from the PEM `gossip certs`
/// wrote, and the certificate it issues is trusted by nodes that only know the original.
#[test]
fn a_node_issued_by_the_reloaded_cluster_ca_joins_the_running_cluster() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let ca = ClusterCa::generate("cluster").expect("CA");
    let mut nodes = quic_cluster(&ca, 3, "a");
    assert!(wait_until(&mut nodes, Duration::from_secs(20), |ns| converged(ns)).is_some());
    let reloaded = ClusterCa::from_pem(&ca.cert_pem(), &ca.key_pem()).expect("the CA loads from its PEM");
    assert_eq!(reloaded.cert_der(), ca.cert_der(), "nodes keep trusting the certificate as written");
    let seed = nodes[0].addr();
    nodes.push(quic_node(reloaded.node_tls("a3").expect("cert"), "a3", &[seed]));
    let t = wait_until(&mut nodes, Duration::from_secs(20), |ns| converged(ns));
    assert!(t.is_some(), "the added node did not converge: {}", view_summary(&nodes));
    assert!(nodes.iter().all(|n| n.handle.members().len() == 3));
}

#[test]
fn a_restarted_quic_node_reconnects_under_its_new_generation() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let ca = ClusterCa::generate("cluster").expect("CA");
    let mut nodes = quic_cluster(&ca, 5, "r");
    assert!(wait_until(&mut nodes, Duration::from_secs(20), |ns| converged(ns)).is_some());
    let old = nodes.remove(3);
    let (addr, generation) = (old.addr(), old.handle.generation());
    old.handle.abort();
    std::thread::sleep(Duration::from_millis(300));
    let seed = nodes[0].addr();
    // The old endpoint lets go of the port once its connections have closed.
    let mut restarted = None;
    for _ in 0..40 {
        let built = gossip_quic::builder(fast_config(), ca.node_tls("r3").expect("cert"))
            .bind(addr)
            .name("r3")
            .seeds([seed])
            .spawn();
        if let Ok((handle, events)) = built {
            restarted = Some(TestNode::new(handle, events));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes.push(restarted.expect("the port is free again within 4 s"));
    let t = wait_until(&mut nodes, Duration::from_secs(30), |ns| {
        converged(ns)
            && ns.iter().all(|n| {
                n.handle.member("r3").is_some_and(|m| m.generation > generation && m.state == MemberState::Alive)
                    || n.name() == "r3"
            })
    });
    assert!(t.is_some(), "the restarted node was not seen under its new generation: {}", view_summary(&nodes));
}

/// Two nodes, `s` and `c`; `c` crashes (its runtime dies: no connection close goes out) and
/// comes back on its address knowing nobody, with its key or with a certificate and key issued
/// anew; `s` joins it again. Returns whether the restarted `c` saw `s` alive within 15 s, and
/// `s`'s transport counters.
fn crash_restart_and_rejoin(same_key: bool) -> (bool, Arc<QuicStats>, String) {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let ca = ClusterCa::generate("cluster").expect("CA");
    // As a restarted process reloads them from its files.
    let c_tls = ca.node_tls("c").expect("cert");
    let doomed_rt = tokio_runtime();
    let doomed = {
        let _inner = doomed_rt.enter();
        quic_node(c_tls.clone(), "c", &[])
    };
    let addr = doomed.addr();
    let s_runtime = QuicRuntime::new(ca.node_tls("s").expect("cert"));
    let s_stats = s_runtime.stats();
    let (handle, events) =
        gossip_quic::builder_on(fast_config(), s_runtime).name("s").seeds([addr]).spawn().expect("s starts");
    let mut nodes = vec![TestNode::new(handle, events), doomed];
    assert!(wait_until(&mut nodes, Duration::from_secs(20), |ns| converged(ns)).is_some());
    // The crash: every task of the node is dropped unpolled and its socket closed, before its
    // handle goes (dropping the last handle would leave gracefully).
    doomed_rt.shutdown_background();
    nodes.pop();
    let tls = if same_key { c_tls } else { ca.node_tls("c").expect("cert") };
    let mut restarted = None;
    for _ in 0..40 {
        if let Ok(built) = gossip_quic::builder(fast_config(), tls.clone()).bind(addr).name("c").spawn() {
            restarted = Some(TestNode::new(built.0, built.1));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes.push(restarted.expect("the port is free again within 4 s"));
    nodes[0].handle.join([addr]).expect("join");
    let reached = wait_until(&mut nodes, Duration::from_secs(15), |ns| {
        ns[1].handle.member("s").is_some_and(|m| m.state == MemberState::Alive)
    });
    (reached.is_some(), s_stats, view_summary(&nodes))
}

/// Restarted with its key, the node answers the peer's first packets on the connection of its
/// earlier life with a stateless reset the peer accepts (the reset and connection-id keys come
/// from the private key, so they outlive the process): the peer dials anew at once, instead of
/// sending into the void until the idle timeout (180 s).
#[test]
fn a_crashed_quic_node_restarted_with_its_key_is_reached_again_at_once() {
    let (reached, stats, views) = crash_restart_and_rejoin(true);
    assert!(reached, "the survivor never reached the restarted node: {views}");
    assert_eq!(stats.connections_unresponsive.load(Ordering::Relaxed), 0, "the reset did it, not the silence");
}

/// Restarted with a certificate issued anew, its resets cannot be believed: the peer gives the
/// old connection up once it stays silent for `with_unresponsive_after` (5 s) while the peer
/// sends, and dials anew.
#[test]
fn a_crashed_quic_node_restarted_with_a_new_key_is_reached_again() {
    let (reached, stats, views) = crash_restart_and_rejoin(false);
    assert!(reached, "the survivor never reached the restarted node: {views}");
    assert!(stats.connections_unresponsive.load(Ordering::Relaxed) >= 1, "the silence did it");
}

/// The same scenario (five nodes, one crashes) on UDP and on QUIC ends in the same views.
#[test]
fn quic_and_udp_reach_the_same_membership_outcome() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let outcome = |mut nodes: Vec<TestNode>| {
        assert!(wait_until(&mut nodes, Duration::from_secs(20), |ns| converged(ns)).is_some());
        nodes.remove(2).handle.abort();
        let done = wait_until(&mut nodes, Duration::from_secs(30), |ns| {
            ns.iter()
                .all(|n| n.handle.all_members().iter().any(|m| m.name.ends_with('2') && m.state == MemberState::Dead))
        });
        assert!(done.is_some(), "crash not detected");
        let mut views: Vec<Vec<(String, MemberState)>> = nodes
            .iter()
            .map(|n| {
                let mut v: Vec<(String, MemberState)> =
                    n.handle.all_members().into_iter().map(|m| (m.name.chars().skip(1).collect(), m.state)).collect();
                v.sort();
                v
            })
            .collect();
        views.sort();
        views
    };
    let ca = ClusterCa::generate("cluster").expect("CA");
    let quic = outcome(quic_cluster(&ca, 5, "q"));
    let first = TestNode::start(Adapter::Tokio, fast_config(), "u0", &[]);
    let seed = first.addr();
    let mut udp = vec![first];
    for i in 1..5 {
        udp.push(TestNode::start(Adapter::Tokio, fast_config(), &format!("u{i}"), &[seed]));
    }
    let udp = outcome(udp);
    assert_eq!(quic, udp);
}

#[test]
fn a_one_megabyte_value_replicates_over_streams() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let ca = ClusterCa::generate("cluster").expect("CA");
    let config = gossip_core::Config {
        kv_limits: gossip_core::antientropy::KvLimits { max_value_len: 1 << 20, ..Default::default() },
        ..fast_config()
    };
    let start = |name: &str, seeds: &[SocketAddr]| {
        let (handle, events) = gossip_quic::builder(config.clone(), ca.node_tls(name).expect("cert"))
            .bind(([127, 0, 0, 1], 0))
            .name(name)
            .seeds(seeds.iter().copied())
            .spawn()
            .expect("QUIC node starts");
        TestNode::new(handle, events)
    };
    let first = start("b0", &[]);
    let seed = first.addr();
    let mut nodes = vec![first];
    for i in 1..4 {
        nodes.push(start(&format!("b{i}"), &[seed]));
    }
    assert!(wait_until(&mut nodes, Duration::from_secs(20), |ns| converged(ns)).is_some());
    let value: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    nodes[1].handle.set("big", value.clone()).expect("a 1 MB value is accepted over QUIC");
    let t = wait_until(&mut nodes, Duration::from_secs(20), |ns| {
        ns.iter().all(|n| n.handle.get("b1", "big").is_some_and(|(v, _)| v == value))
    });
    let Some(t) = t else { panic!("the 1 MB value did not reach every node") };
    eprintln!("a 1 MB value reached 4 QUIC nodes in {t:?}");
}

/// A member of the cluster (valid certificate) floods a node with thousands of junk streams
/// and datagrams: every one is dropped and counted, and membership stays intact.
#[test]
fn flood_of_junk_streams_and_datagrams_from_a_member_is_survived() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let ca = ClusterCa::generate("cluster").expect("CA");
    let mut nodes = quic_cluster(&ca, 3, "f");
    assert!(wait_until(&mut nodes, Duration::from_secs(20), |ns| converged(ns)).is_some());
    let target = nodes[0].addr();
    let tls = ca.node_tls("flooder").expect("cert");
    let client_tls = tls.client_config().expect("client TLS");
    let flood = async move {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).expect("QUIC TLS");
        let mut endpoint = quinn::Endpoint::client(([127, 0, 0, 1], 0).into()).expect("endpoint");
        endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
        let conn =
            endpoint.connect(target, gossip_quic::tls::CLUSTER_SERVER_NAME).expect("connect").await.expect("handshake");
        for i in 0..2_000u32 {
            let junk = i.to_le_bytes().repeat(50);
            let Ok(mut stream) = conn.open_uni().await else { break };
            let _ = stream.write_all(&junk).await;
            let _ = stream.finish();
            let _ = conn.send_datagram(junk.into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        conn.close(0u32.into(), b"done");
    };
    std::thread::scope(|s| {
        s.spawn(|| tokio_runtime().block_on(flood));
    });
    std::thread::sleep(Duration::from_secs(1));
    let m = nodes[0].handle.metrics();
    assert!(m.dropped_total() >= 2_000, "junk was not dropped and counted: {}", m.dropped_total());
    assert!(nodes[0].handle.is_running());
    let intact = wait_until(&mut nodes, Duration::from_secs(10), |ns| converged(ns));
    assert!(intact.is_some(), "membership disturbed by the flood: {}", view_summary(&nodes));
    assert!(nodes.iter().all(|n| n.handle.member("flooder").is_none()), "junk made a member");
}
