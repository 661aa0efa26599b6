//! Real UDP nodes on 127.0.0.1 under tokio and smol: convergence, failure detection, leave,
//! restart, broadcast, loss and the driver's own behaviour. Every wait is bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gossip_core::{Event, MemberState};
use gossip_driver::{Faults, FaultySocket};
use gossip_tests::{
    converged, fast_config, is_down, is_left, tokio_runtime, view_summary, wait_until, Adapter, TestNode,
};

/// Starts `n` nodes named `{prefix}{i}`, all joining node 0, alternating adapters as told.
fn start_cluster(n: usize, prefix: &str, adapter_of: impl Fn(usize) -> Adapter) -> Vec<TestNode> {
    let mut nodes = vec![TestNode::start(adapter_of(0), fast_config(), &format!("{prefix}0"), &[])];
    let seed = nodes[0].addr();
    for i in 1..n {
        nodes.push(TestNode::start(adapter_of(i), fast_config(), &format!("{prefix}{i}"), &[seed]));
    }
    nodes
}

fn assert_converges(nodes: &mut [TestNode], timeout: Duration) -> Duration {
    match wait_until(nodes, timeout, |ns| converged(ns)) {
        Some(t) => t,
        None => panic!("cluster of {} did not converge in {timeout:?}: {}", nodes.len(), view_summary(nodes)),
    }
}

#[test]
fn fifty_nodes_converge() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let mut nodes = start_cluster(50, "c", |_| Adapter::Tokio);
    let t = assert_converges(&mut nodes, Duration::from_secs(30));
    eprintln!("50 nodes converged in {t:?}");
    for n in &nodes {
        assert_eq!(n.handle.members().len(), 49, "{} sees {}", n.name(), n.handle.members().len());
        assert_eq!(n.lagged, 0);
    }
    let digest = nodes[0].handle.membership_digest();
    assert!(wait_until(&mut nodes, Duration::from_secs(10), |ns| ns
        .iter()
        .all(|n| n.handle.membership_digest() == digest))
    .is_some());
}

#[test]
fn crashed_node_is_detected_by_all() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let mut nodes = start_cluster(8, "x", |_| Adapter::Tokio);
    assert_converges(&mut nodes, Duration::from_secs(15));
    let victim = nodes.pop().expect("8 nodes");
    victim.handle.abort();
    let crash = Instant::now();
    let t = wait_until(&mut nodes, Duration::from_secs(20), |ns| {
        ns.iter().all(|n| !n.sees_live("x7") && n.log.iter().any(|e| is_down(e, "x7")))
    });
    let Some(t) = t else { panic!("crash not detected by all in 20 s: {}", view_summary(&nodes)) };
    eprintln!("crash detected by all 7 survivors in {:?}", crash.elapsed().min(t));
    for n in &nodes {
        for other in &nodes {
            assert_eq!(
                n.count_events(|e| is_down(e, other.name())),
                0,
                "{} falsely removed {}",
                n.name(),
                other.name()
            );
        }
        assert_eq!(n.handle.member("x7").map(|m| m.state), Some(MemberState::Dead));
    }
}

#[test]
fn tokio_and_smol_nodes_form_one_cluster() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let adapter = |i: usize| if i % 2 == 1 { Adapter::Smol } else { Adapter::Tokio };
    let mut nodes = start_cluster(12, "m", adapter);
    let t = assert_converges(&mut nodes, Duration::from_secs(20));
    eprintln!("6 tokio + 6 smol nodes converged in {t:?}");
    // A smol node as the seed too.
    let late = TestNode::start(Adapter::Tokio, fast_config(), "late", &[nodes[1].addr()]);
    nodes.push(late);
    assert_converges(&mut nodes, Duration::from_secs(20));
}

#[test]
fn broadcast_reaches_every_node_exactly_once() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let adapter = |i: usize| if matches!(i % 3, 1 | 2) { Adapter::Tokio } else { Adapter::Smol };
    let mut nodes = start_cluster(16, "b", adapter);
    assert_converges(&mut nodes, Duration::from_secs(20));
    let payload = b"hello, everyone".to_vec();
    let id = nodes[5].handle.broadcast(payload.clone()).expect("broadcast accepted");
    let got = |n: &TestNode| {
        n.count_events(|e| matches!(e, Event::Broadcast { origin, id: i, payload: p } if origin == "b5" && *i == id && *p == payload))
    };
    let t = wait_until(&mut nodes, Duration::from_secs(10), |ns| {
        ns.iter().filter(|n| n.name() != "b5").all(|n| got(n) >= 1)
    });
    let Some(t) = t else { panic!("broadcast did not reach everyone") };
    eprintln!("broadcast reached 15 nodes in {t:?}");
    // Let retransmissions run out, then check nobody got it twice.
    std::thread::sleep(Duration::from_secs(2));
    for n in nodes.iter_mut() {
        n.pump();
        let expected = usize::from(n.name() != "b5");
        assert_eq!(got(n), expected, "{} received the broadcast {} times", n.name(), got(n));
    }
    let too_big = vec![0u8; nodes[0].handle.max_broadcast_payload() + 1];
    assert!(nodes[0].handle.broadcast(too_big).is_err());
}

#[test]
fn graceful_leave_is_a_leave_not_a_failure() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let mut nodes = start_cluster(6, "l", |i| if i == 5 { Adapter::Smol } else { Adapter::Tokio });
    assert_converges(&mut nodes, Duration::from_secs(15));
    let leaver = nodes.pop().expect("6 nodes");
    let started = Instant::now();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), leaver.handle.shutdown()).await.expect("shutdown completes")
    });
    assert!(!leaver.handle.is_running());
    assert!(leaver.handle.broadcast(b"late".to_vec()).is_err());
    eprintln!("leave + linger took {:?}", started.elapsed());
    let t =
        wait_until(&mut nodes, Duration::from_secs(10), |ns| ns.iter().all(|n| n.log.iter().any(|e| is_left(e, "l5"))));
    assert!(t.is_some(), "not every node saw l5 leave");
    // Long enough for a failure detector to have declared it dead had it not left.
    std::thread::sleep(Duration::from_secs(3));
    for n in nodes.iter_mut() {
        n.pump();
        assert_eq!(n.count_events(|e| is_down(e, "l5")), 0, "{} saw l5 as failed", n.name());
        assert_eq!(n.handle.member("l5").map(|m| m.state), Some(MemberState::Left));
        assert_eq!(n.handle.members().len(), 4);
    }
}

#[test]
fn restarted_node_rejoins_with_a_new_generation() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let mut nodes = start_cluster(6, "r", |_| Adapter::Tokio);
    assert_converges(&mut nodes, Duration::from_secs(15));
    let old = nodes.pop().expect("6 nodes");
    let old_generation = old.handle.generation();
    let old_addr = old.addr();
    old.handle.abort();
    drop(old);
    // Restart under the same name, a later generation and a new port, on the other adapter.
    let (handle, events) = gossip_smol::Builder::new(fast_config())
        .name("r5")
        .generation(old_generation + 1)
        .seeds([nodes[0].addr()])
        .spawn()
        .expect("restart");
    assert_ne!(handle.local_addr(), old_addr);
    nodes.push(TestNode::new(handle, events));
    let t = wait_until(&mut nodes, Duration::from_secs(15), |ns| {
        converged(ns)
            && ns[..5].iter().all(|n| {
                n.handle.member("r5").is_some_and(|m| m.generation == old_generation + 1 && m.addr == ns[5].addr())
            })
    });
    let Some(t) = t else { panic!("restarted node not seen everywhere: {}", view_summary(&nodes)) };
    eprintln!("restarted node seen with its new generation by all in {t:?}");
}

#[test]
fn node_losing_30_percent_of_packets_stays_a_member() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    // Loss in both directions (about half of all round trips fail). `Config::local()` assumes
    // a lossless loopback (one indirect check, suspicion multiplier 3) and occasionally
    // declares such a node dead; a lossy network takes memberlist's LAN robustness (three
    // indirect checks), with a suspicion multiplier of 6 rather than 4: this test's timeouts
    // are tens of milliseconds, and on a starved machine (it failed once beside a 12 GB
    // simulation on both cores) a refutation can miss a deadline that short.
    let config = gossip_core::Config { indirect_checks: 3, suspicion_mult: 6, ..fast_config() };
    let mut nodes = vec![TestNode::start(Adapter::Tokio, config.clone(), "p0", &[])];
    let seed = nodes[0].addr();
    for i in 1..7 {
        nodes.push(TestNode::start(Adapter::Tokio, config.clone(), &format!("p{i}"), &[seed]));
    }
    let faults = Faults::new(0.3, 0.3, 7);
    let f = faults.clone();
    let (handle, events) = gossip_tokio::Builder::new(config)
        .name("lossy")
        .seeds([nodes[0].addr()])
        .wrap_socket(move |inner| Box::new(FaultySocket::new(inner, f)))
        .spawn()
        .expect("lossy node starts");
    nodes.push(TestNode::new(handle, events));
    assert_converges(&mut nodes, Duration::from_secs(20));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
        for n in nodes.iter_mut() {
            n.pump();
            assert_eq!(n.count_events(|e| is_down(e, "lossy")), 0, "{} declared the lossy node dead", n.name());
        }
    }
    for n in &nodes[..7] {
        assert!(n.sees_live("lossy"), "{} lost the lossy node", n.name());
    }
    assert!(faults.dropped_sends() > 20 && faults.dropped_recvs() > 20, "the fault injection did not run");
    eprintln!(
        "lossy node: {} sends and {} receives dropped; still a member after 20 s",
        faults.dropped_sends(),
        faults.dropped_recvs()
    );
}

#[test]
fn idle_node_does_not_busy_loop() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let node = TestNode::start(Adapter::Tokio, fast_config(), "idle", &[]);
    let smol_node = TestNode::start(Adapter::Smol, fast_config(), "idle-smol", &[]);
    std::thread::sleep(Duration::from_secs(2));
    for n in [&node, &smol_node] {
        let wakeups = n.handle.io_metrics().wakeups;
        // Gossip ticks every 100 ms plus a few other timers: a few dozen wake-ups.
        assert!((5..150).contains(&wakeups), "{} woke {wakeups} times in 2 s", n.name());
    }
}

#[test]
fn bad_datagrams_and_send_errors_are_survived() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let a = TestNode::start(Adapter::Tokio, fast_config(), "a", &[]);
    // An IPv6 seed from an IPv4 socket: every send to it fails, and is logged and counted.
    let v6: SocketAddr = "[::1]:9".parse().expect("addr");
    let b = TestNode::start(Adapter::Smol, fast_config(), "b", &[v6, a.addr()]);
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    junk.send_to(b"not gossip", a.addr()).expect("send");
    junk.send_to(&vec![0xAB; 65_507], a.addr()).ok();
    junk.send_to(&[], b.addr()).expect("send");
    let mut nodes = vec![a, b];
    assert_converges(&mut nodes, Duration::from_secs(10));
    let a_io = nodes[0].handle.io_metrics();
    assert!(a_io.datagrams_rejected >= 1, "{a_io:?}");
    assert!(nodes[0].handle.metrics().dropped_total() >= 1);
    // The IPv6 seed is retried with backoff until the join succeeds through `a`.
    let b_io = nodes[1].handle.io_metrics();
    assert!(b_io.send_errors >= 1, "{b_io:?}");
}

/// Commands after a leave are refused as "left" while the node lingers, and as "stopped" once
/// it has stopped; an absurd linger, or bulk transfers on a datagram-only transport, are
/// refused when the node is built.
#[test]
fn commands_after_a_leave_are_refused_and_bad_driver_settings_are_refused_at_build() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let too_long = gossip_tokio::Builder::new(fast_config()).leave_linger(Duration::MAX).spawn();
    assert!(matches!(too_long, Err(gossip_tokio::BuildError::LeaveLinger(_))), "{too_long:?}");
    let bulk_on_udp =
        gossip_tokio::Builder::new(gossip_core::Config { bulk_mtu: Some(1 << 20), ..fast_config() }).spawn();
    assert!(matches!(bulk_on_udp, Err(gossip_tokio::BuildError::BulkWithoutReliablePath)), "{bulk_on_udp:?}");
    let mut nodes = start_cluster(2, "c", |_| Adapter::Tokio);
    assert_converges(&mut nodes, Duration::from_secs(10));
    let (handle, _events) = gossip_tokio::Builder::new(fast_config())
        .name("lingering")
        .seeds([nodes[0].addr()])
        .leave_linger(Duration::from_secs(30))
        .spawn()
        .expect("node starts");
    // Both ways: a node that knows no live member leaves without lingering.
    let first = nodes[0].name().to_owned();
    let joined = wait_until(&mut nodes, Duration::from_secs(10), |ns| {
        ns[0].sees_live("lingering") && handle.member(&first).is_some_and(|m| m.state == MemberState::Alive)
    });
    assert!(joined.is_some());
    handle.leave().expect("leaves");
    assert!(handle.is_running(), "lingers for 30 s");
    let left = Err(gossip_tokio::DriverError::Command(gossip_core::CommandError::Left));
    assert_eq!(handle.broadcast(b"late".to_vec()).map(|_| ()), left);
    assert_eq!(handle.leave(), left);
    handle.abort();
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), handle.stopped()).await.expect("stops") });
    assert_eq!(handle.broadcast(b"later".to_vec()).map(|_| ()), Err(gossip_tokio::DriverError::Stopped));
}

#[test]
fn dropping_every_handle_leaves_gracefully() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let mut nodes = start_cluster(3, "d", |_| Adapter::Tokio);
    assert_converges(&mut nodes, Duration::from_secs(10));
    let gone = nodes.pop().expect("3 nodes");
    let clone = gone.handle.clone();
    let stopped = gone.handle.stopped();
    drop(gone);
    assert!(clone.is_running());
    drop(clone);
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), stopped).await.expect("driver stops") });
    let t =
        wait_until(&mut nodes, Duration::from_secs(10), |ns| ns.iter().all(|n| n.log.iter().any(|e| is_left(e, "d2"))));
    assert!(t.is_some(), "dropping the handles did not leave");
}

#[test]
fn slow_event_consumer_is_told_it_lagged() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let (handle, events) =
        gossip_tokio::Builder::new(fast_config()).name("slow0").event_capacity(2).spawn().expect("node starts");
    let seed = handle.local_addr();
    let mut nodes = vec![TestNode::new(handle, events)];
    for i in 1..5 {
        nodes.push(TestNode::start(Adapter::Tokio, fast_config(), &format!("slow{i}"), &[seed]));
    }
    // Converge without reading node 0's stream: its four MemberUp events overflow a queue of 2.
    let t = Instant::now();
    while !converged(&nodes) {
        assert!(t.elapsed() < Duration::from_secs(10), "no convergence: {}", view_summary(&nodes));
        std::thread::sleep(Duration::from_millis(25));
    }
    std::thread::sleep(Duration::from_millis(200));
    let slow = &mut nodes[0];
    slow.pump();
    assert!(slow.lagged >= 2, "lag not reported: lagged {}", slow.lagged);
    assert!(slow.log.len() <= 2, "{:?}", slow.log);
    // A fresh subscription starts clean.
    let mut fresh = slow.handle.subscribe();
    assert!(fresh.try_recv().is_none());
}

#[test]
fn keys_set_on_one_node_reach_every_node_and_a_deletion_follows() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let adapter = |i: usize| if i & 1 == 0 { Adapter::Tokio } else { Adapter::Smol };
    let mut nodes = start_cluster(12, "kv", adapter);
    assert_converges(&mut nodes, Duration::from_secs(20));
    for i in 0..10 {
        nodes[3].handle.set(&format!("key{i}"), format!("value {i}").into_bytes()).expect("set");
    }
    let t = wait_until(&mut nodes, Duration::from_secs(30), |ns| ns.iter().all(|n| n.handle.keys("kv3").len() == 10));
    let Some(t) = t else { panic!("keys did not reach everyone") };
    eprintln!("10 keys reached 12 nodes in {t:?}");
    assert_eq!(nodes[7].handle.get("kv3", "key4"), Some((b"value 4".to_vec(), 5)));
    assert!(
        nodes[7].count_events(|e| matches!(e, Event::KeyChanged { node, key, .. } if node == "kv3" && key == "key4"))
            >= 1
    );
    assert_eq!(nodes[3].handle.delete("key4").expect("delete"), Some(11));
    let gone =
        wait_until(&mut nodes, Duration::from_secs(30), |ns| ns.iter().all(|n| n.handle.get("kv3", "key4").is_none()));
    assert!(gone.is_some(), "the deletion reached everyone");
}

#[test]
fn counters_sets_and_aggregates_agree_across_tokio_and_smol_nodes() {
    use gossip_core::crdt::{AwSet, PnCounter};
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let adapter = |i: usize| if i & 1 == 0 { Adapter::Tokio } else { Adapter::Smol };
    let mut nodes = start_cluster(8, "crdt", adapter);
    assert_converges(&mut nodes, Duration::from_secs(20));
    for (i, n) in nodes.iter().enumerate() {
        n.handle.update_crdt::<PnCounter>("hits", |c, me| c.increment(me, i as u64 + 1)).expect("increment");
        n.handle.update_crdt::<AwSet>("tags", |s, me| s.add(me, format!("t{i}").into_bytes())).expect("add");
        n.handle.set_aggregate_value("load", Some(i as f64 * 10.0)).expect("value");
    }
    nodes[0].handle.update_crdt::<AwSet>("tags", |s, _| s.remove(b"t0")).expect("remove");
    let counted = wait_until(&mut nodes, Duration::from_secs(30), |ns| {
        ns.iter().all(|n| {
            n.handle.crdt::<PnCounter>("hits").is_some_and(|c| c.value() == 36)
                && n.handle.crdt::<AwSet>("tags").is_some_and(|s| s.len() == 7 && !s.contains(b"t0"))
        })
    });
    assert!(counted.is_some(), "the counter and the set did not reach every node");
    // Average of 0, 10, ..., 70.
    let averaged = wait_until(&mut nodes, Duration::from_secs(30), |ns| {
        ns.iter().all(|n| {
            n.handle.aggregate("load").is_some_and(|e| (e.average - 35.0).abs() < 0.01 && (e.count - 8.0).abs() < 0.01)
        })
    });
    assert!(averaged.is_some(), "the aggregate did not settle everywhere");
    assert!(nodes[5].count_events(|e| matches!(e, Event::CrdtChanged { object } if object == "hits")) >= 1);
}

#[test]
fn key_rotation_across_twenty_real_nodes_with_no_member_flapping() {
    use gossip_core::wire::security::{Key, Keyring};
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let (old, new) = (Key::from_bytes([7; 32]), Key::from_bytes([8; 32]));
    let config = gossip_core::Config { keyring: Some(Keyring::new(vec![old.clone()]).expect("ring")), ..fast_config() };
    let adapter = |i: usize| if i & 1 == 0 { Adapter::Tokio } else { Adapter::Smol };
    let first = TestNode::start(adapter(0), config.clone(), "k0", &[]);
    let seed = first.addr();
    let mut nodes = vec![first];
    for i in 1..20 {
        nodes.push(TestNode::start(adapter(i), config.clone(), &format!("k{i}"), &[seed]));
    }
    assert_converges(&mut nodes, Duration::from_secs(30));
    for n in &nodes {
        n.handle.install_key(new.clone()).expect("install");
    }
    wait_until(&mut nodes, Duration::from_millis(500), |_| false);
    for n in &nodes {
        n.handle.use_key(&new.id()).expect("use");
    }
    wait_until(&mut nodes, Duration::from_millis(500), |_| false);
    for n in &nodes {
        n.handle.remove_key(&old.id()).expect("remove");
    }
    // Traffic flows on the new key alone for a while.
    wait_until(&mut nodes, Duration::from_secs(3), |_| false);
    assert!(converged(&nodes), "{}", view_summary(&nodes));
    for n in &nodes {
        let downs = n.count_events(|e| matches!(e, Event::MemberDown(_) | Event::MemberSuspect(_)));
        assert_eq!(downs, 0, "{} saw a member suspected or down during the rotation", n.name());
        assert_eq!(n.handle.metrics().dropped(gossip_core::DropReason::Unopenable), 0);
    }
}

#[test]
fn signed_self_state_works_across_tokio_and_smol_nodes() {
    use gossip_core::wire::signing::{Keypair, Signing};
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let config = |i: usize| gossip_core::Config {
        signing: Some(Signing::new(Keypair::from_secret([i as u8 + 1; 32]))),
        ..fast_config()
    };
    let adapter = |i: usize| if i & 1 == 0 { Adapter::Tokio } else { Adapter::Smol };
    let first = TestNode::start(adapter(0), config(0), "s0", &[]);
    let seed = first.addr();
    let mut nodes = vec![first];
    for i in 1..8 {
        nodes.push(TestNode::start(adapter(i), config(i), &format!("s{i}"), &[seed]));
    }
    assert_converges(&mut nodes, Duration::from_secs(30));
    for n in &nodes {
        let m = n.handle.metrics();
        assert_eq!((m.forged_records, m.accusations_unsigned), (0, 0), "{}: honest claims verify", n.name());
        assert!(n.handle.members().iter().all(|m| m.proof.is_some()), "{}: every record proven", n.name());
    }
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1));
    kb.and_then(|k| k.parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// 1,000,000 junk datagrams of every length up to 256 bytes at one node: no panic, memory
/// bounded, every one it read dropped and counted, and membership intact afterwards.
#[test]
fn flood_of_a_million_junk_datagrams_is_survived_with_bounded_memory() {
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let mut nodes = start_cluster(4, "j", |_| Adapter::Tokio);
    assert_converges(&mut nodes, Duration::from_secs(20));
    let target = nodes[0].addr();
    let before = resident_bytes();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut junk = [0u8; 256];
    for i in 0..1_000_000u32 {
        let len = 1 + (i as usize * 7919) % 256;
        for (j, b) in junk[..len].iter_mut().enumerate() {
            *b = (i as usize * 31 + j * 17) as u8;
        }
        let _ = socket.send_to(&junk[..len], target);
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "memory grew by {grown} bytes under the flood");
    assert!(nodes[0].handle.is_running());
    let m = nodes[0].handle.metrics();
    assert!(m.dropped_total() > 10_000, "junk read and dropped: {}", m.dropped_total());
    let intact = wait_until(&mut nodes, Duration::from_secs(30), |ns| converged(ns));
    assert!(intact.is_some(), "membership not intact after the flood: {}", view_summary(&nodes));
    eprintln!("flood: {} junk datagrams read and dropped, memory +{} KiB", m.dropped_total(), grown / 1024);
}
