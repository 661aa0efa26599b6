//! Node-level tests: a few `Node<u32>`s driven in memory by a tiny delivery loop.
//!
//! Addresses are `1..=n` (node `i` lives at address `i + 1`); virtual time starts at one
//! `Instant::now()` and only moves forward by explicit durations.

use std::time::{Duration, Instant};

use gossip_core::error::{ConfigError, DecodeError};
use gossip_core::wire::{codec, MemberRecord, MemberState, Message, MessageKind, ViewEnd};
use gossip_core::{CommandError, Config, DropReason, Event, HandleError, Identity, NewNodeError, Node, Transmit};

// ----- helpers -----------------------------------------------------------------------------

const GEN: u64 = 1;

fn identity(name: &str, addr: u32) -> Identity<u32> {
    Identity { name: name.into(), addr, generation: GEN }
}

fn new_node(config: Config, name: &str, addr: u32, now: Instant) -> Node<u32> {
    Node::new(config, identity(name, addr), u64::from(addr) * 7919, now).expect("valid node")
}

fn datagram(cluster: &str, sender: &str, messages: &[Message<u32>]) -> Vec<u8> {
    codec::encode_datagram(cluster, sender, messages)
}

fn record(name: &str, addr: u32, generation: u64, incarnation: u32) -> MemberRecord<u32> {
    MemberRecord {
        name: name.into(),
        addr,
        generation,
        incarnation,
        state: MemberState::Alive,
        zone: None,
        proof: None,
    }
}

fn member(record: MemberRecord<u32>) -> Message<u32> {
    Message::Member { record, accuser: None, signature: None }
}

fn decode(t: &Transmit<u32>, config: &Config) -> Vec<Message<u32>> {
    codec::decode::<u32>(&t.contents, &config.cluster_label, usize::MAX)
        .expect("the node's own datagram decodes")
        .messages
}

fn drain_transmits(node: &mut Node<u32>) -> Vec<Transmit<u32>> {
    std::iter::from_fn(|| node.poll_transmit()).collect()
}

fn drain_events(node: &mut Node<u32>) -> Vec<Event<u32>> {
    std::iter::from_fn(|| node.poll_event()).collect()
}

/// A few nodes wired together in memory.
struct Cluster {
    nodes: Vec<Node<u32>>,
    now: Instant,
    /// Every datagram any node produced, with the index of its sender.
    sent: Vec<(usize, Transmit<u32>)>,
    /// When each datagram of `sent` was sent.
    sent_at: Vec<Instant>,
    /// Events drained from each node so far.
    events: Vec<Vec<Event<u32>>>,
    /// Deliver every datagram twice.
    duplicate: bool,
    /// Crashed nodes: no timers, and datagrams to them are lost.
    crashed: Vec<bool>,
}

impl Cluster {
    fn new(names: &[&str], config: &Config) -> Cluster {
        let now = Instant::now();
        let nodes: Vec<Node<u32>> =
            names.iter().enumerate().map(|(i, name)| new_node(config.clone(), name, i as u32 + 1, now)).collect();
        let events = vec![Vec::new(); nodes.len()];
        let crashed = vec![false; nodes.len()];
        Cluster { nodes, now, sent: Vec::new(), sent_at: Vec::new(), events, duplicate: false, crashed }
    }

    /// A cluster whose members have all joined through node 0 and know each other.
    fn joined(names: &[&str], config: &Config) -> Cluster {
        let mut c = Cluster::new(names, config);
        let now = c.now;
        for n in c.nodes.iter_mut().skip(1) {
            n.join(now, vec![1]);
        }
        let want = names.len() - 1;
        for _ in 0..100 {
            c.step(Duration::from_millis(100));
            if c.nodes.iter().all(|n| n.live_count() == want) {
                return c;
            }
        }
        panic!("cluster did not converge");
    }

    /// Delivers datagrams until nobody has anything more to send.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut batch = Vec::new();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                while let Some(t) = n.poll_transmit() {
                    batch.push((i, t));
                }
            }
            if batch.is_empty() {
                self.collect_events();
                return;
            }
            for (from, t) in batch {
                let copies = if self.duplicate { 2 } else { 1 };
                if let Some(dest) = (t.destination as usize).checked_sub(1) {
                    if let Some(node) = self.nodes.get_mut(dest).filter(|_| !self.crashed[dest]) {
                        for _ in 0..copies {
                            // Errors are counted drops; the tests check the counters.
                            let _ = node.handle_message(self.now, from as u32 + 1, &t.contents);
                        }
                    }
                }
                self.sent.push((from, t));
                self.sent_at.push(self.now);
            }
        }
        panic!("delivery did not quiesce");
    }

    fn collect_events(&mut self) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            self.events[i].extend(drain_events(n));
        }
    }

    /// Advances virtual time, fires timers and delivers everything.
    fn step(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        for (n, crashed) in self.nodes.iter_mut().zip(&self.crashed) {
            if !crashed {
                n.poll_timer(now);
            }
        }
        self.pump();
    }

    fn run(&mut self, total: Duration, step: Duration) {
        let mut t = Duration::ZERO;
        while t < total {
            self.step(step);
            t += step;
        }
    }
}

// ----- (a) bad input ------------------------------------------------------------------------

/// Feeds `bytes` to a fresh node and checks the typed error, the drop counter, and that
/// nothing else changed.
fn expect_drop(bytes: &[u8], want: HandleError, reason: DropReason) {
    let config = Config { max_inbound_size: 2000, ..Config::lan() };
    let now = Instant::now();
    let mut node = new_node(config, "a", 1, now);
    let before = node.metrics();
    let got = node.handle_message(now, 2, bytes);
    assert_eq!(got, Err(want), "error for {reason:?}");
    let after = node.metrics();
    assert_eq!(after.dropped(reason), 1, "counted as {reason:?}");
    assert_eq!(after.dropped_total(), 1, "counted once, only as {reason:?}");
    assert_eq!(after.packets_in, before.packets_in + 1);
    assert_eq!(after.messages_in, before.messages_in, "no message of a dropped datagram applied");
    assert!(node.members().is_empty());
    assert!(node.poll_transmit().is_none());
    assert!(node.poll_event().is_none());
}

#[test]
fn empty_datagram_is_dropped() {
    expect_drop(&[], HandleError::Decode(DecodeError::Empty), DropReason::Empty);
}

#[test]
fn oversized_datagram_is_dropped() {
    // `expect_drop` configures max_inbound_size = 2000.
    let mut bytes = datagram("gossip", "b", &[Message::Ping { seq: 1, target: "a".into() }]);
    bytes.resize(2001, 0);
    let want = HandleError::Decode(DecodeError::Oversized { len: 2001, max: 2000 });
    expect_drop(&bytes, want, DropReason::Oversized);
}

#[test]
fn unknown_version_is_dropped() {
    let mut bytes = datagram("gossip", "b", &[Message::Ping { seq: 1, target: "a".into() }]);
    assert_eq!(bytes[0], codec::PROTOCOL_VERSION);
    for version in [0u8, codec::PROTOCOL_VERSION + 1, 255] {
        bytes[0] = version;
        let want = HandleError::Decode(DecodeError::UnknownVersion(version));
        expect_drop(&bytes, want, DropReason::UnknownVersion);
    }
}

#[test]
fn foreign_cluster_is_dropped() {
    let bytes = datagram("other", "b", &[Message::Ping { seq: 1, target: "a".into() }]);
    let want = HandleError::Decode(DecodeError::ForeignCluster("other".into()));
    expect_drop(&bytes, want, DropReason::ForeignCluster);
    // The empty label is a label too.
    let bytes = datagram("", "b", &[Message::Ping { seq: 1, target: "a".into() }]);
    let want = HandleError::Decode(DecodeError::ForeignCluster("".into()));
    expect_drop(&bytes, want, DropReason::ForeignCluster);
}

#[test]
fn truncated_datagram_is_dropped() {
    let want = HandleError::Decode(DecodeError::Truncated);
    // Version byte only: the header is missing.
    expect_drop(&[codec::PROTOCOL_VERSION], want.clone(), DropReason::Truncated);
    // Cut inside the last message (the ping's target name).
    let bytes =
        datagram("gossip", "b", &[member(record("c", 3, GEN, 0)), Message::Ping { seq: 1, target: "a".into() }]);
    expect_drop(&bytes[..bytes.len() - 1], want.clone(), DropReason::Truncated);
    // Cut inside the header (the sender name).
    let header = datagram("gossip", "bbbb", &[]);
    expect_drop(&header[..header.len() - 2], want, DropReason::Truncated);
}

#[test]
fn unknown_message_tag_is_dropped() {
    for tag in [MessageKind::ALL.len() as u8, 100, 127] {
        let mut bytes = datagram("gossip", "b", &[Message::Ping { seq: 1, target: "a".into() }]);
        bytes.push(tag);
        let got = {
            let now = Instant::now();
            let mut node = new_node(Config::lan(), "a", 1, now);
            let got = node.handle_message(now, 2, &bytes);
            assert_eq!(node.metrics().dropped(DropReason::Malformed), 1, "tag {tag}");
            assert_eq!(node.metrics().dropped_total(), 1);
            assert!(node.poll_transmit().is_none(), "the valid ping before it is not acked");
            got
        };
        assert!(matches!(got, Err(HandleError::Decode(DecodeError::Malformed(_)))), "tag {tag}: {got:?}");
    }
}

#[test]
fn invalid_member_names_are_dropped() {
    let long = "x".repeat(129);
    let max = "x".repeat(128);
    let bad_names = ["", long.as_str(), "bad\nname", "nul\0"];
    for bad in bad_names {
        let cases: Vec<Vec<u8>> = vec![
            // The sender itself.
            datagram("gossip", bad, &[Message::Ping { seq: 1, target: "a".into() }]),
            // A member record, a ping target, a ping-req target, an accuser, a zone, a
            // sync page record, a broadcast origin.
            datagram("gossip", "b", &[member(record(bad, 3, GEN, 0))]),
            datagram("gossip", "b", &[Message::Ping { seq: 1, target: bad.into() }]),
            datagram("gossip", "b", &[Message::PingReq { seq: 1, target: bad.into(), target_addr: 3 }]),
            datagram(
                "gossip",
                "b",
                &[Message::Member { record: record("c", 3, GEN, 0), accuser: Some(bad.into()), signature: None }],
            ),
            datagram("gossip", "b", &[member(MemberRecord { zone: Some(bad.into()), ..record("c", 3, GEN, 0) })]),
            datagram(
                "gossip",
                "b",
                &[Message::SyncPage { end: None, members: vec![record("c", 3, GEN, 0), record(bad, 4, GEN, 0)] }],
            ),
            datagram("gossip", "b", &[Message::Join { record: record(bad, 3, GEN, 0) }]),
            datagram("gossip", "b", &[Message::Broadcast { origin: bad.into(), id: 1, payload: vec![1] }]),
        ];
        for bytes in cases {
            expect_drop(&bytes, HandleError::InvalidName, DropReason::InvalidName);
        }
    }
    // A valid datagram carrying a bad record further on is dropped whole.
    let bytes = datagram("gossip", "b", &[member(record("c", 3, GEN, 0)), member(record(&long, 4, GEN, 0))]);
    expect_drop(&bytes, HandleError::InvalidName, DropReason::InvalidName);
    // 128 bytes is still fine.
    let now = Instant::now();
    let mut node = new_node(Config::lan(), "a", 1, now);
    let bytes = datagram("gossip", &max, &[member(record(&max, 3, GEN, 0))]);
    assert_eq!(node.handle_message(now, 3, &bytes), Ok(()));
    assert_eq!(node.live_count(), 1);
}

#[test]
fn datagram_from_own_name_is_dropped() {
    let bytes = datagram("gossip", "a", &[member(record("c", 3, GEN, 0))]);
    expect_drop(&bytes, HandleError::FromSelf, DropReason::FromSelf);
}

#[test]
fn drops_accumulate_per_reason() {
    let now = Instant::now();
    let mut node = new_node(Config::lan(), "a", 1, now);
    let ping = datagram("gossip", "b", &[Message::Ping { seq: 1, target: "a".into() }]);
    let foreign = datagram("x", "b", &[]);
    let from_self = datagram("gossip", "a", &[]);
    for _ in 0..3 {
        let _ = node.handle_message(now, 2, &[]);
        let _ = node.handle_message(now, 2, &foreign);
        let _ = node.handle_message(now, 2, &from_self);
    }
    let _ = node.handle_message(now, 2, &ping[..ping.len() - 1]);
    let m = node.metrics();
    assert_eq!(m.dropped(DropReason::Empty), 3);
    assert_eq!(m.dropped(DropReason::ForeignCluster), 3);
    assert_eq!(m.dropped(DropReason::FromSelf), 3);
    assert_eq!(m.dropped(DropReason::Truncated), 1);
    assert_eq!(m.dropped_total(), 10);
    assert_eq!(m.packets_in, 10);
    // The node still works.
    assert_eq!(node.handle_message(now, 2, &ping), Ok(()));
    assert_eq!(drain_transmits(&mut node).len(), 1);
}

/// Small deterministic generator for the no-panic sweeps (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn digest_ranges_that_end_before_they_start_are_survived() {
    // Found by the handle_message fuzz target: a range from the network is not trusted.
    let config = Config::lan();
    let now = Instant::now();
    let mut a = new_node(config.clone(), "a", 1, now);
    a.set("k", vec![1]).expect("set");
    let messages = [
        Message::StateDigest { start: "m".into(), end: Some("b".into()), entries: vec![], reply: true },
        Message::StateDigest { start: "m".into(), end: Some("m".into()), entries: vec![], reply: true },
        Message::CrdtDigest { start: "m".into(), end: Some("b".into()), entries: vec![], reply: true },
    ];
    assert_eq!(a.handle_message(now, 2, &datagram(&config.cluster_label, "b", &messages)), Ok(()));
    drain_transmits(&mut a);
}

#[test]
fn arbitrary_bytes_never_panic() {
    let now = Instant::now();
    let mut node = new_node(Config::lan(), "a", 1, now);
    let rich = datagram(
        "gossip",
        "b",
        &[
            Message::Ping { seq: 7, target: "a".into() },
            Message::Ack { seq: 3 },
            Message::Nack { seq: 4 },
            Message::PingReq { seq: 5, target: "c".into(), target_addr: 3 },
            Message::Join { record: record("d", 4, GEN, 0) },
            Message::Member {
                record: MemberRecord { state: MemberState::Suspect, zone: Some("eu".into()), ..record("e", 5, GEN, 2) },
                accuser: Some("b".into()),
                signature: None,
            },
            Message::SyncDigest { digest: 99, count: 3, since: 0 },
            Message::SyncPage {
                end: Some(ViewEnd { digest: 0, mark: 0, reply: true }),
                members: vec![record("f", 6, GEN, 1)],
            },
            Message::Broadcast { origin: "b".into(), id: 9, payload: vec![1, 2, 3] },
        ],
    );
    assert_eq!(node.handle_message(now, 2, &rich), Ok(()));
    let mut handled = 1u64;
    // Every prefix, every single-byte flip.
    for cut in 0..rich.len() {
        let _ = node.handle_message(now, 2, &rich[..cut]);
        handled += 1;
    }
    for i in 0..rich.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bytes = rich.clone();
            bytes[i] ^= flip;
            let _ = node.handle_message(now, 2, &bytes);
            handled += 1;
        }
    }
    // Random bytes behind a valid header, and random bytes alone.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let header = datagram("gossip", "b", &[]);
    for _ in 0..3000 {
        let len = (rng.next() % 64) as usize;
        let mut bytes = if rng.next() % 2 == 0 { header.clone() } else { Vec::new() };
        bytes.extend((0..len).map(|_| rng.next() as u8));
        let _ = node.handle_message(now, 2, &bytes);
        handled += 1;
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
    }
    let m = node.metrics();
    assert_eq!(m.packets_in, handled);
    assert!(m.dropped_total() > 0);
}

// ----- (b) ping for another member ------------------------------------------------------------

#[test]
fn ping_for_another_member_is_not_acked() {
    let now = Instant::now();
    let mut node = new_node(Config::lan(), "a", 1, now);
    let wrong = datagram("gossip", "b", &[Message::Ping { seq: 1, target: "c".into() }]);
    let _ = node.handle_message(now, 2, &wrong);
    assert!(node.poll_transmit().is_none(), "no ack for a ping meant for someone else");
    assert_eq!(node.metrics().dropped(DropReason::WrongTarget), 1);
    assert_eq!(node.metrics().sent(MessageKind::Ack), 0);
    // The right target is acked, to the sender's address, with the ping's sequence number.
    let right = datagram("gossip", "b", &[Message::Ping { seq: 2, target: "a".into() }]);
    assert_eq!(node.handle_message(now, 2, &right), Ok(()));
    let out = drain_transmits(&mut node);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].destination, 2);
    assert_eq!(decode(&out[0], node.config())[0], Message::Ack { seq: 2 });
    assert_eq!(node.metrics().dropped(DropReason::WrongTarget), 1);
}

// ----- (c) Node::new validation ----------------------------------------------------------------

#[test]
fn new_rejects_invalid_configs() {
    let now = Instant::now();
    let reject = |config: Config| Node::new(config, identity("a", 1), 1, now).err();
    assert_eq!(
        reject(Config { gossip_fanout: 0, ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::Zero("gossip_fanout")))
    );
    assert_eq!(
        reject(Config { indirect_checks: 0, ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::Zero("indirect_checks")))
    );
    for timeout in [Duration::from_secs(1), Duration::from_secs(2)] {
        assert_eq!(
            reject(Config { probe_timeout: timeout, ..Config::lan() }),
            Some(NewNodeError::Config(ConfigError::ProbeTimeoutTooLong { timeout, interval: Duration::from_secs(1) }))
        );
    }
    let (min, max) = (Duration::from_millis(600), Config::lan().probe_timeout);
    assert_eq!(
        reject(Config { min_probe_timeout: min, ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::MinProbeTimeoutTooLong { min, max }))
    );
    assert_eq!(
        reject(Config { min_probe_timeout: Duration::ZERO, ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::ZeroDuration("min_probe_timeout")))
    );
    let min = Config::lan().min_mtu();
    assert_eq!(
        reject(Config { mtu: min - 1, ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::MtuTooSmall { mtu: min - 1, min }))
    );
    assert!(matches!(
        reject(Config { mtu: 100, ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::MtuTooSmall { .. }))
    ));
    assert!(matches!(
        reject(Config { max_inbound_size: 1000, ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::MtuTooSmall { .. }))
    ));
    assert_eq!(
        reject(Config { gossip_interval: Duration::ZERO, ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::ZeroDuration("gossip_interval")))
    );
    assert_eq!(
        reject(Config { broadcast_share: 0.0, ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::BadShare(0.0)))
    );
    assert!(matches!(
        reject(Config { cluster_label: "l".repeat(129), ..Config::lan() }),
        Some(NewNodeError::Config(ConfigError::BadName { field: "cluster_label", .. }))
    ));
    // The smallest valid MTU is accepted.
    assert!(Node::new(Config { mtu: min, ..Config::lan() }, identity("a", 1), 1, now).is_ok());
}

#[test]
fn new_rejects_invalid_names() {
    let now = Instant::now();
    let long = "n".repeat(129);
    for bad in ["", long.as_str(), "tab\there", "del\u{7f}"] {
        let got = Node::new(Config::lan(), identity(bad, 1), 1, now).err();
        assert!(
            matches!(got, Some(NewNodeError::Config(ConfigError::BadName { field: "name", .. }))),
            "{bad:?}: {got:?}"
        );
    }
    let ok = "n".repeat(128);
    assert!(Node::new(Config::lan(), identity(&ok, 1), 1, now).is_ok());
    assert!(Node::new(Config::lan(), identity("ünïcødé", 1), 1, now).is_ok());
}

// ----- (d) every datagram fits the MTU ---------------------------------------------------------

/// Introduces `count` fake members (long names, zones) to every node of the cluster, by a
/// datagram from a fake sender, so that every node has many rumors queued.
fn flood_fake_members(c: &mut Cluster, count: u32, first_addr: u32, suspect_every: u32) {
    let label = c.nodes[0].config().cluster_label.clone();
    let now = c.now;
    for node in &mut c.nodes {
        for chunk in (0..count).collect::<Vec<_>>().chunks(8) {
            let messages: Vec<Message<u32>> = chunk
                .iter()
                .map(|&i| {
                    let name = format!("fake-member-{i:03}-{}", "z".repeat(80));
                    let suspect = suspect_every > 0 && i % suspect_every == 0;
                    Message::Member {
                        record: MemberRecord {
                            state: if suspect { MemberState::Suspect } else { MemberState::Alive },
                            zone: Some(format!("zone-{}", i % 3).into()),
                            ..record(&name, first_addr + i, GEN, i % 5)
                        },
                        accuser: suspect.then(|| format!("accuser-{}", "q".repeat(100)).into()),
                        signature: None,
                    }
                })
                .collect();
            let bytes = datagram(&label, "fake-sender", &messages);
            node.handle_message(now, 999, &bytes).expect("fake members accepted");
        }
    }
}

fn assert_all_within_mtu(c: &Cluster) {
    assert!(!c.sent.is_empty());
    for (from, t) in &c.sent {
        let mtu = c.nodes[*from].config().mtu;
        assert!(
            t.contents.len() <= mtu,
            "node {from} sent {} bytes > mtu {mtu}: {:?}",
            t.contents.len(),
            codec::decode::<u32>(&t.contents, &c.nodes[*from].config().cluster_label, usize::MAX).map(|e| e
                .messages
                .iter()
                .map(Message::kind)
                .collect::<Vec<_>>())
        );
    }
}

fn busy_scenario(config: Config, names: &[&str]) -> Cluster {
    let mut c = Cluster::joined(names, &config);
    flood_fake_members(&mut c, 40, 100, 4);
    let now = c.now;
    for (i, node) in c.nodes.iter_mut().enumerate() {
        let max = node.max_broadcast_payload();
        for len in [0, 1, 100, max / 2, max - 1, max].into_iter().filter(|&l| l <= max) {
            node.broadcast(now, vec![i as u8; len]).expect("broadcast fits");
        }
    }
    // Probes of the fake members fail: indirect probes, suspicions, deaths, push-pull.
    c.run(Duration::from_secs(45), Duration::from_millis(50));
    c
}

#[test]
fn every_transmit_fits_the_mtu_in_a_busy_cluster() {
    let c = busy_scenario(Config::lan(), &["a", "b", "c", "d", "e"]);
    assert_all_within_mtu(&c);
    let m = c.nodes[0].metrics();
    assert!(m.sent(MessageKind::PingReq) > 0, "indirect probes exercised");
    let pages: u64 = c.nodes.iter().map(|n| n.metrics().sent(MessageKind::SyncPage)).sum();
    assert!(pages > 0, "full-view exchanges exercised");
    assert!(m.sent(MessageKind::Broadcast) > 0, "broadcasts exercised");
    assert!(m.sent(MessageKind::Member) > 100, "rumors exercised");
}

#[test]
fn every_transmit_fits_the_mtu_with_long_names_and_a_small_mtu() {
    let long: Vec<String> = (0..4).map(|i| format!("{i}{}", "n".repeat(127))).collect();
    let names: Vec<&str> = long.iter().map(String::as_str).collect();
    let config = Config { mtu: 900, ..Config::lan() };
    let c = busy_scenario(config, &names);
    assert_all_within_mtu(&c);
}

#[test]
fn every_transmit_fits_the_smallest_valid_mtu() {
    let long: Vec<String> = (0..4).map(|i| format!("{i}{}", "n".repeat(127))).collect();
    let names: Vec<&str> = long.iter().map(String::as_str).collect();
    let config = Config { mtu: Config::lan().min_mtu(), ..Config::lan() };
    let c = busy_scenario(config, &names);
    assert_all_within_mtu(&c);
}

#[test]
fn every_transmit_fits_the_smallest_valid_mtu_with_signed_records() {
    use gossip_core::wire::signing::{Keypair, Signing};
    let long: Vec<String> = (0..4).map(|i| format!("{i}{}", "n".repeat(127))).collect();
    let names: Vec<&str> = long.iter().map(String::as_str).collect();
    let signing = Some(Signing::new(Keypair::from_secret([5; 32])));
    let config = Config { signing, ..Config::lan() };
    let config = Config { mtu: config.min_mtu(), ..config };
    let mut c = Cluster::joined(&names, &config);
    c.crashed[3] = true; // suspicions and deaths: records with an accuser's signature
    c.run(Duration::from_secs(45), Duration::from_millis(50));
    assert_all_within_mtu(&c);
    assert!(c.nodes[0].member(names[3]).is_some_and(|m| m.state == MemberState::Dead));
    assert!(c.nodes[0].member(names[1]).is_some_and(|m| m.proof.is_some()), "records carry proofs");
}

// ----- (e) broadcasts ------------------------------------------------------------------------

#[test]
fn oversized_broadcast_is_rejected() {
    let now = Instant::now();
    let mut node = new_node(Config::lan(), "a", 1, now);
    let max = node.max_broadcast_payload();
    assert!(max > 1000 && max < 1400, "max {max}");
    assert_eq!(node.broadcast(now, vec![0; max + 1]), Err(CommandError::PayloadTooLarge { len: max + 1, max }));
    assert_eq!(node.broadcast(now, vec![0; 65_536]), Err(CommandError::PayloadTooLarge { len: 65_536, max }));
    let first = node.broadcast(now, vec![0; max]).expect("fits");
    assert_eq!(node.broadcast(now, Vec::new()), Ok(first + 1));
}

/// Broadcast ids are keyed by the origin's name alone, so each life of a node numbers its
/// broadcasts from a point of its own: the first broadcast after a quick restart is not taken
/// for the previous life's first, which peers still hold as seen.
#[test]
fn a_restarted_node_broadcasts_under_ids_its_earlier_life_did_not_use() {
    let now = Instant::now();
    let mut before =
        Node::new(Config::lan(), Identity { name: "a".into(), addr: 1, generation: 1 }, 7, now).expect("valid node");
    let mut after =
        Node::new(Config::lan(), Identity { name: "a".into(), addr: 1, generation: 2 }, 7, now).expect("valid node");
    let first_before = before.broadcast(now, b"one".to_vec()).expect("fits");
    let first_after = after.broadcast(now, b"two".to_vec()).expect("fits");
    assert_ne!(first_before, first_after);
    let mut peer = new_node(Config::lan(), "b", 2, now);
    for (id, payload) in [(first_before, b"one"), (first_after, b"two")] {
        let message = Message::Broadcast { origin: "a".into(), id, payload: payload.to_vec() };
        peer.handle_message(now, 1, &datagram(&Config::lan().cluster_label, "a", &[message])).expect("taken");
    }
    let got: Vec<Vec<u8>> = broadcast_events(&drain_events(&mut peer)).into_iter().map(|(_, _, p)| p).collect();
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()], "both lives' broadcasts delivered");
}

/// A push-sum share with a forged epoch far ahead neither creates an aggregate stuck there nor
/// moves an existing one: both are refused and counted.
#[test]
fn a_push_sum_share_of_a_forged_epoch_is_refused() {
    use gossip_core::aggregate::{AggregateShare, Mass};
    let now = Instant::now();
    let mut node = new_node(Config::lan(), "b", 2, now);
    let share = |epoch| AggregateShare { name: "load".into(), epoch, mass: Mass { sum: 1.0, count: 0.5, weight: 0.5 } };
    let send = |node: &mut Node<u32>, epoch| {
        let message = Message::PushSum { shares: vec![share(epoch)] };
        let _ = node.handle_message(now, 1, &datagram(&Config::lan().cluster_label, "a", &[message]));
    };
    send(&mut node, u64::MAX);
    assert_eq!(node.metrics().aggregate_refused, 1);
    send(&mut node, 3);
    assert_eq!(node.metrics().aggregate_refused, 1, "a real epoch creates it");
    send(&mut node, u64::MAX);
    assert_eq!(node.metrics().aggregate_refused, 2);
    assert_eq!(node.aggregate("load").map(|e| e.epoch), Some(3));
}

fn broadcast_events(events: &[Event<u32>]) -> Vec<(String, u64, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Broadcast { origin, id, payload } => Some((origin.to_string(), *id, payload.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn broadcast_is_delivered_exactly_once_despite_duplicates() {
    let mut c = Cluster::joined(&["a", "b", "c", "d", "e"], &Config::lan());
    c.duplicate = true;
    c.collect_events();
    for e in &mut c.events {
        e.clear();
    }
    let now = c.now;
    let id = c.nodes[0].broadcast(now, b"hello".to_vec()).expect("fits");
    let max = c.nodes[1].max_broadcast_payload();
    let big = vec![7u8; max];
    let big_id = c.nodes[1].broadcast(now, big.clone()).expect("fits");
    c.run(Duration::from_secs(5), Duration::from_millis(100));
    // Replay every datagram ever sent, to everyone, once more.
    let sent = std::mem::take(&mut c.sent);
    for (from, t) in &sent {
        for node in &mut c.nodes {
            let _ = node.handle_message(c.now, *from as u32 + 1, &t.contents);
        }
    }
    c.pump();
    for (i, events) in c.events.iter().enumerate() {
        let got = broadcast_events(events);
        let mut want = Vec::new();
        if i != 0 {
            want.push(("a".to_owned(), id, b"hello".to_vec()));
        }
        if i != 1 {
            want.push(("b".to_owned(), big_id, big.clone()));
        }
        let mut got_sorted = got.clone();
        got_sorted.sort();
        want.sort();
        assert_eq!(got_sorted, want, "node {i} broadcasts");
    }
}

#[test]
fn max_size_broadcast_is_relayed_by_a_node_with_a_longer_name() {
    let config = Config::lan();
    let now = Instant::now();
    let relay_name = "relay-with-a-much-longer-name";
    let mut relay = new_node(config.clone(), relay_name, 2, now);
    // The relay knows one other member to gossip to.
    let intro = datagram(&config.cluster_label, "c", &[member(record("c", 3, GEN, 0))]);
    relay.handle_message(now, 3, &intro).expect("intro");
    // A max-size broadcast from origin "a", as "a" sends it.
    let origin = new_node(config.clone(), "a", 1, now);
    let payload = vec![5u8; origin.max_broadcast_payload()];
    let bytes = datagram(
        &config.cluster_label,
        "a",
        &[Message::Broadcast { origin: "a".into(), id: 1, payload: payload.clone() }],
    );
    assert!(bytes.len() <= config.mtu);
    relay.handle_message(now, 1, &bytes).expect("broadcast accepted");
    assert_eq!(broadcast_events(&drain_events(&mut relay)).len(), 1);
    let mut forwarded = 0;
    let mut t = now;
    for _ in 0..50 {
        t += Duration::from_millis(100);
        relay.poll_timer(t);
        for out in drain_transmits(&mut relay) {
            assert!(out.contents.len() <= config.mtu);
            forwarded += decode(&out, &config).iter().filter(|m| matches!(m, Message::Broadcast { .. })).count();
        }
    }
    assert!(forwarded > 0, "the relay never forwarded the broadcast");
}

// ----- (f) broadcasts are not starved by membership rumors ------------------------------------

/// A node with hundreds of membership rumors queued, and a peer `b` it knows.
fn node_with_many_rumors(now: Instant) -> Node<u32> {
    let config = Config::lan();
    let mut node = new_node(config.clone(), "a", 1, now);
    let intro = datagram(&config.cluster_label, "b", &[member(record("b", 2, GEN, 0))]);
    node.handle_message(now, 2, &intro).expect("b");
    for chunk in 0..40u32 {
        let messages: Vec<Message<u32>> = (0..10)
            .map(|j| {
                let i = chunk * 10 + j;
                member(record(&format!("member-{i:04}-padding-padding"), 100 + i, GEN, 0))
            })
            .collect();
        let bytes = datagram(&config.cluster_label, "b", &messages);
        node.handle_message(now, 2, &bytes).expect("members");
    }
    assert_eq!(node.live_count(), 401);
    drain_events(&mut node);
    assert!(drain_transmits(&mut node).is_empty());
    node
}

fn ack_to_ping(node: &mut Node<u32>, now: Instant, seq: u32) -> Vec<Message<u32>> {
    let ping = datagram("gossip", "b", &[Message::Ping { seq, target: "a".into() }]);
    node.handle_message(now, 2, &ping).expect("ping");
    let out = drain_transmits(node);
    assert_eq!(out.len(), 1);
    assert!(out[0].contents.len() <= node.config().mtu);
    let messages = decode(&out[0], node.config());
    assert_eq!(messages[0], Message::Ack { seq });
    messages
}

#[test]
fn broadcast_goes_out_in_the_next_packet_despite_many_rumors() {
    let now = Instant::now();
    let mut node = node_with_many_rumors(now);
    // Without broadcasts, rumors fill the packet.
    let before = ack_to_ping(&mut node, now, 1);
    assert!(before.iter().filter(|m| matches!(m, Message::Member { .. })).count() > 30);
    for (seq, len) in [(2, 16usize), (3, 200)] {
        let id = node.broadcast(now, vec![9; len]).expect("fits");
        let messages = ack_to_ping(&mut node, now, seq);
        assert!(
            messages.iter().any(|m| matches!(m, Message::Broadcast { id: i, .. } if *i == id)),
            "broadcast of {len} bytes missing from the next packet"
        );
        assert!(
            messages.iter().filter(|m| matches!(m, Message::Member { .. })).count() > 10,
            "rumors still share the packet"
        );
    }
}

#[test]
fn large_broadcast_is_not_starved_by_many_rumors() {
    let now = Instant::now();
    let mut node = node_with_many_rumors(now);
    let len = node.max_broadcast_payload() / 2;
    let id = node.broadcast(now, vec![9; len]).expect("fits");
    let mut packets = 0;
    for seq in 1..1000 {
        packets += 1;
        let messages = ack_to_ping(&mut node, now, seq);
        if messages.iter().any(|m| matches!(m, Message::Broadcast { id: i, .. } if *i == id)) {
            break;
        }
    }
    assert_eq!(packets, 1, "broadcast of {len} bytes went out only in packet {packets}");
}

// ----- (g) refutation -------------------------------------------------------------------------

fn self_rumors(messages: &[Message<u32>], name: &str) -> Vec<MemberRecord<u32>> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Member { record, .. } if record.name == name => Some(record.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn suspicion_of_self_is_refuted() {
    let config = Config::lan();
    let now = Instant::now();
    let mut a = new_node(config.clone(), "a", 1, now);
    let intro = datagram(&config.cluster_label, "b", &[member(record("b", 2, GEN, 0))]);
    a.handle_message(now, 2, &intro).expect("b");
    drain_events(&mut a);
    let mut accused = a.self_record();
    assert_eq!((accused.generation, accused.incarnation), (GEN, 0));
    accused.state = MemberState::Suspect;
    let bytes = datagram(
        &config.cluster_label,
        "b",
        &[Message::Member { record: accused.clone(), accuser: Some("x".into()), signature: None }],
    );
    assert_eq!(a.handle_message(now, 2, &bytes), Ok(()));
    let me = a.self_record();
    assert_eq!(me.incarnation, 1);
    assert_eq!(me.state, MemberState::Alive);
    assert_eq!(a.metrics().refutations, 1);
    assert_eq!(a.metrics().health_score, 1, "Lifeguard: refuting costs local health");
    // The refutation goes straight back to whoever sent the accusation...
    let direct = drain_transmits(&mut a);
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0].destination, 2);
    let answer = self_rumors(&decode(&direct[0], a.config()), "a");
    assert_eq!((answer[0].state, answer[0].incarnation), (MemberState::Alive, 1));
    // ...and the very next packet carries it as a rumor too.
    let messages = ack_to_ping(&mut a, now, 5);
    let refutation = self_rumors(&messages, "a");
    assert_eq!(refutation.len(), 1, "{messages:?}");
    assert_eq!(refutation[0].state, MemberState::Alive);
    assert_eq!(refutation[0].incarnation, 1);
    assert_eq!(refutation[0].generation, GEN);
    // The same (now stale) accusation again changes nothing, but the sender is told the
    // current record.
    assert_eq!(a.handle_message(now, 2, &bytes), Ok(()));
    assert_eq!(a.self_record().incarnation, 1);
    assert_eq!(a.metrics().refutations, 1);
    let told = drain_transmits(&mut a);
    assert_eq!(self_rumors(&decode(&told[0], a.config()), "a")[0].incarnation, 1);
    // An accusation of death at the current incarnation is refuted too.
    let dead = MemberRecord { state: MemberState::Dead, incarnation: 1, ..accused.clone() };
    let bytes = datagram(&config.cluster_label, "b", &[member(dead)]);
    assert_eq!(a.handle_message(now, 2, &bytes), Ok(()));
    assert_eq!(a.self_record().incarnation, 2);
    assert_eq!(a.metrics().refutations, 2);
    // Accusations of an older generation are ignored.
    let old = MemberRecord { generation: GEN - 1, incarnation: 9, ..accused };
    let bytes = datagram(&config.cluster_label, "b", &[member(old)]);
    assert_eq!(a.handle_message(now, 2, &bytes), Ok(()));
    assert_eq!(a.self_record().incarnation, 2);
    assert_eq!(a.metrics().refutations, 2);
    assert!(drain_events(&mut a).is_empty(), "nothing about others changed");
}

#[test]
fn a_ping_carrying_a_suspicion_gets_its_ack_and_the_refutation_in_one_datagram() {
    let config = Config::lan();
    let now = Instant::now();
    let mut a = new_node(config.clone(), "a", 1, now);
    let intro = datagram(&config.cluster_label, "b", &[member(record("b", 2, GEN, 0))]);
    a.handle_message(now, 2, &intro).expect("b");
    let accused = MemberRecord { state: MemberState::Suspect, ..a.self_record() };
    // The buddy system: b's ping to the suspect carries the suspicion.
    let ping = datagram(
        &config.cluster_label,
        "b",
        &[
            Message::Ping { seq: 9, target: "a".into() },
            Message::Member { record: accused, accuser: Some("b".into()), signature: None },
        ],
    );
    a.handle_message(now, 2, &ping).expect("ping");
    let out = drain_transmits(&mut a);
    assert_eq!(out.len(), 1, "ack and refutation travel together, so neither arrives without the other");
    assert_eq!(out[0].destination, 2);
    let messages = decode(&out[0], a.config());
    assert!(messages.contains(&Message::Ack { seq: 9 }));
    let refutation = self_rumors(&messages, "a");
    assert!(refutation.iter().any(|r| r.state == MemberState::Alive && r.incarnation == 1), "{messages:?}");
}

#[test]
fn a_stale_accusation_is_corrected_by_a_member_that_knows_of_the_refutation() {
    let config = Config::lan();
    let now = Instant::now();
    let mut a = new_node(config.clone(), "a", 1, now);
    let intro = datagram(&config.cluster_label, "b", &[member(record("b", 2, GEN, 0)), member(record("c", 3, GEN, 2))]);
    a.handle_message(now, 2, &intro).expect("b and c");
    drain_transmits(&mut a);
    // b still gossips a suspicion of c that c refuted (incarnation 2 beats 1).
    let stale = MemberRecord { state: MemberState::Suspect, ..record("c", 3, GEN, 1) };
    let bytes = datagram(
        &config.cluster_label,
        "b",
        &[Message::Member { record: stale, accuser: Some("b".into()), signature: None }],
    );
    a.handle_message(now, 2, &bytes).expect("stale accusation");
    assert_eq!(a.member("c").map(|r| (r.state, r.incarnation)), Some((MemberState::Alive, 2)));
    assert_eq!(a.metrics().corrections_sent, 1);
    let out = drain_transmits(&mut a);
    let to_b: Vec<Message<u32>> = out.iter().filter(|t| t.destination == 2).flat_map(|t| decode(t, &config)).collect();
    assert!(
        to_b.iter().any(|m| matches!(m, Message::Member { record, .. }
            if record.name == "c" && record.incarnation == 2 && record.state == MemberState::Alive)),
        "b is told c's current record: {to_b:?}"
    );
    // A current accusation is news, not stale: no correction.
    let current = MemberRecord { state: MemberState::Suspect, ..record("c", 3, GEN, 2) };
    let bytes = datagram(
        &config.cluster_label,
        "b",
        &[Message::Member { record: current, accuser: Some("b".into()), signature: None }],
    );
    a.handle_message(now, 2, &bytes).expect("accusation");
    assert_eq!(a.member("c").map(|r| r.state), Some(MemberState::Suspect));
    assert_eq!(a.metrics().corrections_sent, 1);
}

#[test]
fn refutation_spreads_through_a_cluster() {
    let mut c = Cluster::joined(&["a", "b", "c"], &Config::lan());
    let label = c.nodes[0].config().cluster_label.clone();
    // b starts suspecting a (a rumor from c says so).
    let suspect = MemberRecord { state: MemberState::Suspect, ..c.nodes[0].self_record() };
    let bytes =
        datagram(&label, "c", &[Message::Member { record: suspect, accuser: Some("c".into()), signature: None }]);
    let now = c.now;
    c.nodes[1].handle_message(now, 3, &bytes).expect("suspicion");
    assert_eq!(c.nodes[1].member("a").map(|r| r.state), Some(MemberState::Suspect));
    c.run(Duration::from_secs(3), Duration::from_millis(100));
    assert!(c.nodes[0].self_record().incarnation >= 1);
    assert!(c.nodes[0].metrics().refutations >= 1);
    for node in &c.nodes[1..] {
        let a = node.member("a").expect("known");
        assert_eq!(a.state, MemberState::Alive, "{} sees a alive", node.name());
        assert!(a.incarnation >= 1);
    }
    assert!(c.events[1].iter().any(|e| matches!(e, Event::MemberUpdated(r) if r.name == "a")));
    assert!(!c.events.iter().flatten().any(|e| matches!(e, Event::MemberDown(_))));
}

#[test]
fn the_direct_ping_timeout_follows_round_trips_and_a_crash_is_suspected_early_in_the_period() {
    let config = Config::lan();
    let mut c = Cluster::joined(&["a", "b", "c"], &config);
    // Acks come back within one 10 ms step: the direct wait falls to its floor.
    c.run(Duration::from_secs(10), Duration::from_millis(10));
    let m = c.nodes[0].metrics();
    assert!(m.rtt_us <= 10_000, "smoothed RTT {} us", m.rtt_us);
    assert_eq!(m.direct_probe_timeout_us, config.min_probe_timeout.as_micros() as u64);
    c.crashed[2] = true;
    let sent_before = c.sent.len();
    let mut suspected_at = None;
    for _ in 0..500 {
        c.step(Duration::from_millis(10));
        if c.events[..2].iter().flatten().any(|e| matches!(e, Event::MemberSuspect(r) if r.name == "c")) {
            suspected_at = Some(c.now);
            break;
        }
    }
    let suspected_at = suspected_at.expect("c is suspected");
    // The accuser is whoever raised the suspicion from its own failed probe.
    let accuser = (0..2).find(|&i| c.nodes[i].metrics().suspicions_raised > 0).expect("an accuser");
    // Its last direct ping to c went out at most min_probe_timeout + probe_timeout (the
    // helpers' time) before the suspicion: not a whole probe period.
    let last_ping = c.sent[sent_before..]
        .iter()
        .zip(&c.sent_at[sent_before..])
        .rev()
        .find(|((from, t), _)| {
            *from == accuser
                && t.destination == 3
                && decode(t, &config).iter().any(|m| matches!(m, Message::Ping { .. }))
        })
        .map(|(_, at)| *at)
        .expect("the accuser pinged c");
    let took = suspected_at - last_ping;
    let budget = config.min_probe_timeout + config.probe_timeout + Duration::from_millis(20);
    assert!(took <= budget, "suspected {took:?} after the ping");
    assert!(budget < config.probe_interval, "sooner than a fixed wait to the period's end");
    assert!(c.nodes[accuser].metrics().indirect_probes > 0, "helpers were asked before suspecting");
}

// ----- (h) leave ------------------------------------------------------------------------------

#[test]
fn leave_is_seen_as_left_not_down() {
    let mut c = Cluster::joined(&["a", "b", "c", "d"], &Config::lan());
    c.collect_events();
    for e in &mut c.events {
        e.clear();
    }
    let now = c.now;
    c.nodes[0].leave(now).expect("leave");
    assert!(c.nodes[0].has_left());
    assert_eq!(c.nodes[0].leave(now), Err(CommandError::Left));
    assert_eq!(c.nodes[0].broadcast(now, vec![1]), Err(CommandError::Left));
    c.run(Duration::from_secs(30), Duration::from_millis(100));
    for (i, node) in c.nodes.iter().enumerate().skip(1) {
        let left: Vec<_> = c.events[i].iter().filter(|e| matches!(e, Event::MemberLeft(r) if r.name == "a")).collect();
        assert_eq!(left.len(), 1, "{} got one MemberLeft: {:?}", node.name(), c.events[i]);
        assert!(
            !c.events[i].iter().any(|e| matches!(e, Event::MemberDown(r) if r.name == "a")),
            "{} never declares a down: {:?}",
            node.name(),
            c.events[i]
        );
        assert_eq!(node.member("a").map(|r| r.state), Some(MemberState::Left));
        assert!(!node.members().iter().any(|r| r.name == "a"));
        assert_eq!(node.live_count(), 2);
    }
    // The others keep probing each other happily.
    for node in &c.nodes[1..] {
        assert_eq!(node.metrics().suspicions_raised, 0, "{}", node.name());
    }
}

// ----- (i) generations --------------------------------------------------------------------------

#[test]
fn higher_generation_replaces_and_stale_generation_is_ignored() {
    let config = Config::lan();
    let now = Instant::now();
    let mut a = new_node(config.clone(), "a", 1, now);
    let label = config.cluster_label.clone();
    let send = |a: &mut Node<u32>, rec: MemberRecord<u32>| {
        let bytes = datagram(&label, "b", &[member(rec)]);
        assert_eq!(a.handle_message(now, 2, &bytes), Ok(()));
    };
    send(&mut a, record("m", 10, 1, 3));
    assert!(matches!(drain_events(&mut a).as_slice(), [Event::MemberUp(r)] if r.addr == 10));
    // The member restarted at a new address with a new generation, incarnation back to 0.
    send(&mut a, record("m", 11, 2, 0));
    let events = drain_events(&mut a);
    assert_eq!(events, vec![Event::MemberUpdated(record("m", 11, 2, 0))]);
    assert_eq!(a.member("m"), Some(record("m", 11, 2, 0)));
    // Stale news about the old life changes nothing, whatever its incarnation or state.
    send(&mut a, record("m", 10, 1, 9));
    send(&mut a, MemberRecord { state: MemberState::Suspect, ..record("m", 10, 1, 9) });
    send(&mut a, MemberRecord { state: MemberState::Dead, ..record("m", 10, 1, 9) });
    let sync = datagram(&label, "b", &[Message::SyncPage { end: None, members: vec![record("m", 10, 1, 20)] }]);
    assert_eq!(a.handle_message(now, 2, &sync), Ok(()));
    assert!(drain_events(&mut a).is_empty());
    assert_eq!(a.member("m"), Some(record("m", 11, 2, 0)));
    assert_eq!(a.live_count(), 1);
}

#[test]
fn restarted_node_is_accepted_by_the_cluster() {
    let config = Config::lan();
    let mut c = Cluster::joined(&["a", "b", "c"], &config);
    c.collect_events();
    for e in &mut c.events {
        e.clear();
    }
    // "c" restarts with a new generation (same address) and joins again through "a".
    let now = c.now;
    let restarted = Identity { name: "c".to_owned(), addr: 3, generation: GEN + 1 };
    c.nodes[2] = Node::new(config, restarted, 12345, now).expect("valid");
    c.nodes[2].join(now, vec![1]);
    c.run(Duration::from_secs(5), Duration::from_millis(100));
    for i in 0..2 {
        let m = c.nodes[i].member("c").expect("known");
        assert_eq!((m.generation, m.state), (GEN + 1, MemberState::Alive));
        assert!(
            c.events[i].iter().any(|e| matches!(e, Event::MemberUpdated(r) if r.name == "c")),
            "node {i}: {:?}",
            c.events[i]
        );
        assert!(!c.events[i].iter().any(|e| matches!(e, Event::MemberDown(_))));
    }
    assert_eq!(c.nodes[2].live_count(), 2);
}

// ----- abuse resistance ------------------------------------------------------------------------

#[test]
fn an_accusation_from_the_future_is_ignored() {
    let config = Config::lan();
    let now = Instant::now();
    let mut a = new_node(config.clone(), "a", 1, now);
    let forged = MemberRecord { state: MemberState::Suspect, incarnation: u32::MAX, ..a.self_record() };
    let bytes = datagram(&config.cluster_label, "b", &[member(forged)]);
    assert_eq!(a.handle_message(now, 2, &bytes), Ok(()));
    assert_eq!(a.self_record().incarnation, 0, "only this node raises its own incarnation");
    assert_eq!(a.metrics().refutations, 0);
}

#[test]
fn invented_members_cannot_grow_the_table_past_its_limit() {
    let config = Config { max_members: 5, ..Config::lan() };
    let now = Instant::now();
    let mut a = new_node(config.clone(), "a", 1, now);
    let records: Vec<Message<u32>> = (0..10).map(|i| member(record(&format!("m{i}"), 10 + i, GEN, 0))).collect();
    let bytes = datagram(&config.cluster_label, "b", &records);
    assert_eq!(a.handle_message(now, 2, &bytes), Ok(()));
    assert_eq!(a.live_count(), 5);
    assert_eq!(a.metrics().members_refused, 5);
}

#[test]
fn a_datagram_full_of_view_requests_gets_one_view() {
    let config = Config::lan();
    let now = Instant::now();
    let mut a = new_node(config.clone(), "a", 1, now);
    let intro = datagram(&config.cluster_label, "b", &[member(record("b", 2, GEN, 0))]);
    a.handle_message(now, 2, &intro).expect("b");
    drain_transmits(&mut a);
    let requests: Vec<Message<u32>> = (0..20).map(|_| Message::SyncDigest { digest: 1, count: 1, since: 0 }).collect();
    let bytes = datagram(&config.cluster_label, "b", &requests);
    assert_eq!(a.handle_message(now, 2, &bytes), Ok(()));
    let pages: usize = drain_transmits(&mut a)
        .iter()
        .map(|t| decode(t, &config).iter().filter(|m| matches!(m, Message::SyncPage { .. })).count())
        .sum();
    assert_eq!(pages, 1, "one small view, not twenty");
    assert_eq!(a.metrics().views_throttled, 19);
}

#[test]
fn a_new_member_does_not_send_the_seed_its_own_view_back() {
    let config = Config::lan();
    let now = Instant::now();
    // The seed knows 20 members.
    let mut seed = new_node(config.clone(), "seed", 1, now);
    let members: Vec<Message<u32>> = (0..20).map(|i| member(record(&format!("m{i}"), 100 + i, GEN, 0))).collect();
    seed.handle_message(now, 99, &datagram(&config.cluster_label, "m0", &members)).expect("members");
    // One of them died: a view carries that as a suspicion (second-hand death), so b's view
    // will not hash like the seed's even right after the join.
    let dead = MemberRecord { state: MemberState::Dead, ..record("m19", 119, GEN, 0) };
    seed.handle_message(now, 99, &datagram(&config.cluster_label, "m0", &[member(dead)])).expect("death");
    drain_transmits(&mut seed);
    // b joins through it and merges the seed's full view.
    let mut b = new_node(config.clone(), "b", 2, now);
    b.join(now, vec![1]);
    b.poll_timer(now);
    for t in drain_transmits(&mut b) {
        seed.handle_message(now, 2, &t.contents).expect("join");
    }
    // Only the view's pages reach b (the rumors piggybacked on them are lost).
    for t in drain_transmits(&mut seed).into_iter().filter(|t| t.destination == 2) {
        let pages: Vec<Message<u32>> =
            decode(&t, &config).into_iter().filter(|m| matches!(m, Message::SyncPage { .. })).collect();
        b.handle_message(now, 1, &datagram(&config.cluster_label, "seed", &pages)).expect("view");
    }
    assert_eq!(b.live_count(), 21);
    assert_ne!(b.membership_digest(), seed.membership_digest());
    drain_transmits(&mut b);
    // Later the seed's view differs (it learned something) and it asks for b's view back:
    // b owes it only what the seed cannot have, here b's own record, not the 21 it got
    // from the seed.
    let later = now + Duration::from_millis(300);
    let end = ViewEnd { digest: 12345, mark: 99, reply: true };
    let page = datagram(&config.cluster_label, "seed", &[Message::SyncPage { end: Some(end), members: vec![] }]);
    b.handle_message(later, 1, &page).expect("page");
    let records: usize = drain_transmits(&mut b)
        .iter()
        .filter(|t| t.destination == 1)
        .flat_map(|t| decode(t, &config))
        .map(|m| match m {
            Message::SyncPage { members, .. } => members.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(records, 1, "only b's own record goes back");
}

#[test]
fn phi_rises_with_a_members_silence_and_conviction_suspects_it() {
    let config = Config {
        // Probes so rare that only phi can notice b's silence within the test.
        probe_interval: Duration::from_secs(30),
        phi_accrual: Some(gossip_core::PhiAccrual {
            min_std_dev: Duration::from_millis(50),
            conviction_threshold: Some(8.0),
            ..Default::default()
        }),
        ..Config::lan()
    };
    let start = Instant::now();
    let mut a = new_node(config.clone(), "a", 1, start);
    assert_eq!(a.phi("b", start), None, "unknown member");
    let mut now = start;
    // b talks to a every 100 ms for 3 s.
    for seq in 0..30 {
        let ping = datagram(
            &config.cluster_label,
            "b",
            &[member(record("b", 2, GEN, 0)), Message::Ping { seq, target: "a".into() }],
        );
        a.handle_message(now, 2, &ping).expect("ping");
        a.poll_timer(now);
        drain_transmits(&mut a);
        now += Duration::from_millis(100);
    }
    let last = now - Duration::from_millis(100);
    let on_time = a.phi("b", last + Duration::from_millis(100)).expect("rated");
    assert!(on_time < 1.0, "phi on time: {on_time}");
    drain_events(&mut a);
    // Then silence.
    let mut suspected_after = None;
    while now < last + Duration::from_secs(3) {
        a.poll_timer(now);
        drain_transmits(&mut a);
        if drain_events(&mut a).iter().any(|e| matches!(e, Event::MemberSuspect(r) if r.name == "b")) {
            suspected_after = Some(now - last);
            break;
        }
        now += Duration::from_millis(50);
    }
    let after = suspected_after.expect("conviction suspects b");
    assert!(after < Duration::from_secs(1), "suspected {after:?} into the silence");
    assert!(a.phi("b", now).is_some_and(|p| p > 8.0));
    assert_eq!(a.metrics().phi_convictions, 1);
    assert_eq!(a.metrics().probe_failures, 0, "no probe was involved");
}

// ----- anti-entropy of key/value state ---------------------------------------------------------

#[test]
fn keys_replicate_by_anti_entropy_and_deletions_follow() {
    let config = Config { state_sync_interval: Some(Duration::from_millis(500)), ..Config::lan() };
    let mut c = Cluster::joined(&["a", "b", "c"], &config);
    for i in 0..30 {
        c.nodes[0].set(&format!("key-{i:02}"), vec![i as u8; 100]).expect("within limits");
    }
    assert_eq!(c.nodes[1].get("a", "key-00"), None);
    c.run(Duration::from_secs(20), Duration::from_millis(50));
    for node in &c.nodes[1..] {
        assert_eq!(node.keys("a").count(), 30, "{} holds all of a's keys", node.name());
        assert_eq!(node.get("a", "key-07"), Some((&[7u8; 100][..], 8)));
        assert_eq!(node.state_digest_hash(), c.nodes[0].state_digest_hash());
    }
    let changed = c.events[2].iter().filter(|e| matches!(e, Event::KeyChanged { node, .. } if node == "a")).count();
    assert_eq!(changed, 30, "one KeyChanged per key");
    // 30 values of 100 bytes do not fit one 1400-byte datagram: the deltas were split.
    let deltas: u64 = c.nodes.iter().map(|n| n.metrics().sent(MessageKind::StateDelta)).sum();
    assert!(deltas >= 3, "{deltas} delta messages");
    // A deletion follows the same way.
    let now = c.now;
    assert_eq!(c.nodes[0].delete(now, "key-07").expect("valid"), Some(31));
    c.run(Duration::from_secs(10), Duration::from_millis(50));
    assert_eq!(c.nodes[2].get("a", "key-07"), None);
    assert!(c.events[2].iter().any(|e| matches!(e, Event::KeyDeleted { key, version: 31, .. } if key == "key-07")));
    // In sync, an exchange is one hash: no more deltas go out.
    let before: u64 = c.nodes.iter().map(|n| n.metrics().sent(MessageKind::StateDelta)).sum();
    c.run(Duration::from_secs(10), Duration::from_millis(50));
    let after: u64 = c.nodes.iter().map(|n| n.metrics().sent(MessageKind::StateDelta)).sum();
    assert_eq!(before, after);
    assert!(c.nodes.iter().map(|n| n.metrics().sent(MessageKind::StateSyn)).sum::<u64>() > 20);
}

#[test]
fn key_value_writes_break_limits_with_clear_errors() {
    let mut a = new_node(Config::lan(), "a", 1, Instant::now());
    let max = Config::lan().kv_limits.max_value_len;
    assert_eq!(
        a.set("big", vec![0; max + 1]),
        Err(CommandError::Kv(gossip_core::antientropy::KvError::ValueTooLarge { len: max + 1, max }))
    );
    assert_eq!(a.set("", vec![]), Err(CommandError::Kv(gossip_core::antientropy::KvError::EmptyKey)));
    assert_eq!(a.set("ok", vec![1]), Ok(1));
    assert_eq!(a.get("a", "ok"), Some((&[1u8][..], 1)));
    // A small MTU allows less than kv_limits: the error says how much.
    let small = Config { mtu: 800, ..Config::lan() };
    let mut b = new_node(small, "b", 2, Instant::now());
    match b.set("k", vec![0; 1000]) {
        Err(CommandError::Kv(gossip_core::antientropy::KvError::ValueTooLarge { len: 1000, max })) => {
            assert!(max < 800, "{max}");
            assert!(b.set("k", vec![0; max]).is_ok(), "the largest value that fits is accepted");
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
}

#[test]
fn crdt_rumors_are_bounded_in_bytes_and_anti_entropy_still_delivers() {
    use gossip_core::crdt::GCounter;
    let config = Config { max_crdt_rumor_bytes: 1024, ..Config::lan() };
    let mut c = Cluster::joined(&["a", "b"], &config);
    for i in 0..200 {
        c.nodes[0].update_crdt::<GCounter>(&format!("c{i:03}"), |g, me| g.increment(me, 1)).expect("update");
    }
    let evicted = c.nodes[0].metrics().rumors_evicted;
    assert!(evicted >= 100, "most of 200 rumors (about 20 bytes each) dropped past 1 KiB: {evicted}");
    c.run(Duration::from_secs(30), Duration::from_millis(50));
    let held =
        (0..200).filter(|i| c.nodes[1].crdt::<GCounter>(&format!("c{i:03}")).is_some_and(|g| g.value() == 1)).count();
    assert_eq!(held, 200, "anti-entropy brought every object");
}

#[test]
fn crdt_repair_sends_a_delta_interval_once_the_peer_is_known_to_hold_our_changes() {
    use gossip_core::crdt::GCounter;
    let config = Config { state_retransmit_mult: 0, ..Config::lan() }; // repair by anti-entropy only
    let mut c = Cluster::joined(&["a", "b"], &config);
    let value = |c: &Cluster, i: usize| c.nodes[i].crdt::<GCounter>("c").map_or(0, GCounter::value);
    c.nodes[0].update_crdt::<GCounter>("c", |g, me| g.increment(me, 1)).expect("update");
    // The first repair is the whole state: a knows nothing of what b holds. Then their
    // hashes compare equal, which tells each the other holds its changes.
    c.run(Duration::from_secs(30), Duration::from_millis(50));
    assert_eq!(value(&c, 1), 1);
    let (pieces, intervals) = (c.nodes[0].metrics().crdt_pieces_sent, c.nodes[0].metrics().crdt_intervals_sent);
    assert!(pieces > 0);
    for _ in 0..5 {
        c.nodes[0].update_crdt::<GCounter>("c", |g, me| g.increment(me, 1)).expect("update");
        c.run(Duration::from_secs(10), Duration::from_millis(50));
    }
    assert_eq!(value(&c, 1), 6);
    let m = c.nodes[0].metrics();
    assert!(m.crdt_intervals_sent > intervals, "later repairs are intervals");
    assert_eq!(m.crdt_pieces_sent, pieces, "and no whole state from a again");
    assert!(m.messages_in[MessageKind::CrdtAck.index()] > 0, "b acknowledged them");
}

#[test]
fn a_peer_the_delta_log_no_longer_reaches_back_to_gets_the_state_instead() {
    use gossip_core::crdt::GCounter;
    // A log of 64 bytes holds two or three changes of this counter.
    let config = Config { state_retransmit_mult: 0, crdt_delta_log_bytes: 64, ..Config::lan() };
    let mut c = Cluster::joined(&["a", "b"], &config);
    let value = |c: &Cluster, i: usize| c.nodes[i].crdt::<GCounter>("c").map_or(0, GCounter::value);
    c.nodes[0].update_crdt::<GCounter>("c", |g, me| g.increment(me, 1)).expect("update");
    c.run(Duration::from_secs(30), Duration::from_millis(50));
    let pieces = c.nodes[0].metrics().crdt_pieces_sent;
    // Many changes between two exchanges, each from another replica (a grows the counter as
    // a peer's deltas would), overflow the log.
    for r in 0..40 {
        let delta = GCounter::default().increment(gossip_core::crdt::ReplicaId(1000 + r), 1);
        c.nodes[0].update_crdt::<GCounter>("c", |_, _| delta).expect("update");
    }
    c.run(Duration::from_secs(30), Duration::from_millis(50));
    assert_eq!(value(&c, 1), 41, "b holds every change");
    assert!(c.nodes[0].metrics().crdt_pieces_sent > pieces, "through the whole state: the log had dropped them");
}
