//! Hot-path benchmarks of the core: one probe exchange (ping in, ack out, ack in) with
//! piggybacked membership updates, and the wire decoder.
//!
//! Run with `cargo bench -p gossip-core --bench core`. Throughput is reported in messages
//! (every message inside the datagrams handled, piggybacked ones included).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use gossip_core::wire::{codec, MemberRecord, MemberState, Message};
use gossip_core::{Config, Identity, Node};

const A_ADDR: u32 = 1;
const B_ADDR: u32 = 2;
/// Third-party members each node knows besides the other one.
const OTHERS: u32 = 49;
/// Fresh member updates piggybacked on each ping (half of the known members, rotating).
const FRESH_PER_PING: u32 = 25;

fn member_name(i: u32) -> String {
    format!("member-{i:03}")
}

fn record(i: u32, incarnation: u32) -> MemberRecord<u32> {
    MemberRecord {
        name: member_name(i).into(),
        addr: 100 + i,
        generation: 1_700_000_000,
        incarnation,
        state: MemberState::Alive,
        zone: None,
        proof: None,
    }
}

fn datagram(cluster: &str, sender: &str, messages: &[Message<u32>]) -> Vec<u8> {
    codec::encode_datagram(cluster, sender, messages)
}

fn new_node(name: &str, addr: u32, seed: u64, now: Instant) -> Node<u32> {
    let identity = Identity { name: name.into(), addr, generation: 1_700_000_000 };
    // The clock stands still here, so a per-second source limit would never refill: off.
    let config = Config { source_rate_limit: None, ..Config::lan() };
    Node::new(config, identity, seed, now).expect("valid config")
}

/// Two nodes that each know the other and `OTHERS` third-party members.
struct Pair {
    a: Node<u32>,
    b: Node<u32>,
    now: Instant,
    /// Incarnation of the next fresh updates.
    incarnation: u32,
    /// Which half of the members the next ping refreshes.
    round: u32,
    seq: u32,
}

impl Pair {
    fn new() -> Pair {
        let now = Instant::now();
        let mut a = new_node("node-a", A_ADDR, 1, now);
        let mut b = new_node("node-b", B_ADDR, 2, now);
        let label = Config::lan().cluster_label;
        // Introduce every member by gossip from a third party, so both views hold 50 members.
        let mut intro: Vec<Message<u32>> =
            (0..OTHERS).map(|i| Message::Member { record: record(i, 1), accuser: None, signature: None }).collect();
        let a_rec = a.self_record();
        let b_rec = b.self_record();
        intro.push(Message::Member { record: b_rec, accuser: None, signature: None });
        a.handle_message(now, 100, &datagram(&label, &member_name(0), &intro)).expect("intro to a");
        intro.pop();
        intro.push(Message::Member { record: a_rec, accuser: None, signature: None });
        b.handle_message(now, 100, &datagram(&label, &member_name(0), &intro)).expect("intro to b");
        for n in [&mut a, &mut b] {
            assert_eq!(n.live_count(), OTHERS as usize + 1);
            while n.poll_event().is_some() {}
            while n.poll_transmit().is_some() {}
        }
        Pair { a, b, now, incarnation: 2, round: 0, seq: 0 }
    }

    /// The next ping from `a` to `b`, as `a` would send it: the probe plus piggybacked
    /// updates (fresh incarnations of half of the members, so they are news to `b`).
    fn next_ping(&mut self, label: &str) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut messages = vec![Message::Ping { seq: self.seq, target: "node-b".into() }];
        let half = self.round % 2;
        for i in (0..OTHERS).filter(|i| i % 2 == half).take(FRESH_PER_PING as usize) {
            messages.push(Message::Member { record: record(i, self.incarnation), accuser: None, signature: None });
        }
        if half == 1 {
            self.incarnation += 1;
        }
        self.round += 1;
        datagram(label, "node-a", &messages)
    }

    /// One probe exchange: `b` handles the ping, answers with an ack (plus piggybacked
    /// rumors), and `a` handles the ack. Returns the ack datagram.
    fn exchange(&mut self, ping: &[u8]) -> Option<Vec<u8>> {
        self.b.handle_message(self.now, A_ADDR, ping).expect("ping accepted");
        let mut ack = None;
        while let Some(t) = self.b.poll_transmit() {
            self.a.handle_message(self.now, B_ADDR, &t.contents).expect("ack accepted");
            ack = Some(t.contents);
        }
        ack
    }
}

fn report(what: &str, bytes: &[u8], messages: usize) {
    eprintln!(
        "{what}: {} bytes, {messages} messages, {:.1} bytes/message",
        bytes.len(),
        bytes.len() as f64 / messages as f64
    );
}

fn count_messages(bytes: &[u8], label: &str) -> usize {
    codec::decode::<u32>(bytes, label, usize::MAX).expect("own datagram decodes").messages.len()
}

fn bench_ping_ack(group: &mut BenchmarkGroup<'_, WallTime>) -> (Vec<u8>, Vec<u8>) {
    let label = Config::lan().cluster_label;
    let mut pair = Pair::new();
    // Warm up into the steady state: every member's rumor queued at `b`.
    let mut ack = Vec::new();
    for _ in 0..32 {
        let ping = pair.next_ping(&label);
        ack = pair.exchange(&ping).expect("ping is acked");
    }
    let ping = pair.next_ping(&label);
    let ping_msgs = count_messages(&ping, &label);
    ack = pair.exchange(&ping).unwrap_or(ack);
    let ack_msgs = count_messages(&ack, &label);
    // Steady state check: the next few acks carry the same number of messages.
    for _ in 0..8 {
        let ping = pair.next_ping(&label);
        let next = pair.exchange(&ping).expect("ping is acked");
        assert_eq!(count_messages(&next, &label), ack_msgs, "ack size is steady");
    }
    report("ping datagram", &ping, ping_msgs);
    report("ack datagram", &ack, ack_msgs);
    let per_exchange = ping_msgs + ack_msgs;
    eprintln!(
        "ping_ack: {per_exchange} messages handled per exchange ({:.1} bytes/message overall)",
        (ping.len() + ack.len()) as f64 / per_exchange as f64
    );

    group.throughput(Throughput::Elements(per_exchange as u64));
    group.bench_function("ping_ack", |bencher| {
        bencher.iter_custom(|iters| {
            // Datagrams are generated outside the timed loop.
            let pings: Vec<Vec<u8>> = (0..iters).map(|_| pair.next_ping(&label)).collect();
            let start = Instant::now();
            for ping in &pings {
                let b = &mut pair.b;
                let a = &mut pair.a;
                let _ = b.handle_message(pair.now, A_ADDR, ping);
                while let Some(t) = b.poll_transmit() {
                    let _ = a.handle_message(pair.now, B_ADDR, black_box(&t.contents));
                }
            }
            start.elapsed()
        });
    });
    (ping, ack)
}

/// Signed self-state: what a member pays to sign a claim, and what a receiver pays to take a
/// fresh signed record (decode, verify the proof, apply), one record per datagram.
fn bench_signing(group: &mut BenchmarkGroup<'_, WallTime>) {
    use gossip_core::wire::signing::{Keypair, Signing};
    let label = Config::lan().cluster_label;
    let now = Instant::now();
    let config =
        Config { signing: Some(Signing::new(Keypair::from_secret([1; 32]))), source_rate_limit: None, ..Config::lan() };
    let identity = Identity { name: "node-b".into(), addr: B_ADDR, generation: 1_700_000_000 };
    let mut b = Node::new(config, identity, 5, now).expect("valid config");
    let member_key = Keypair::from_secret([2; 32]);
    let mut incarnation = 0;
    let signed = |incarnation: u32| {
        let r = record(0, incarnation);
        let proof = Some(Box::new(member_key.prove(&label, &r)));
        datagram(
            &label,
            &member_name(0),
            &[Message::Member { record: MemberRecord { proof, ..r }, accuser: None, signature: None }],
        )
    };
    report("signed member record", &signed(1), 1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_claim", |bencher| {
        let r = record(0, 1);
        bencher.iter(|| black_box(member_key.prove(&label, black_box(&r))));
    });
    // A key/value write with signing: the write's signature, then the head's (the hash of
    // the node's live keys, here 100 of them, and its signature).
    let mut writer = Node::new(
        Config { signing: Some(Signing::new(Keypair::from_secret([3; 32]))), ..Config::lan() },
        Identity { name: "node-w".into(), addr: B_ADDR + 1, generation: 1 },
        6,
        now,
    )
    .expect("valid config");
    for k in 0..100 {
        writer.set(&format!("key-{k}"), vec![k as u8; 32]).expect("set");
    }
    let mut k = 0usize;
    group.bench_function("signed_set", |bencher| {
        bencher.iter(|| {
            k = (k + 1) % 100;
            black_box(writer.set(&format!("key-{k}"), vec![1; 32]).expect("set"))
        });
    });
    group.bench_function("signed_record", |bencher| {
        bencher.iter_batched(
            || {
                incarnation += 1;
                signed(incarnation)
            },
            |d| {
                let _ = b.handle_message(now, 100, &d);
                while b.poll_transmit().is_some() {}
                while b.poll_event().is_some() {}
            },
            criterion::BatchSize::SmallInput,
        );
    });
}

fn benches(c: &mut Criterion) {
    let label = Config::lan().cluster_label;
    let mut group = c.benchmark_group("core");
    group.measurement_time(Duration::from_secs(5));
    let (ping, ack) = bench_ping_ack(&mut group);
    bench_signing(&mut group);

    // Decode the same ping and ack the exchange handled.
    let (ping, ack) = (ping.as_slice(), ack.as_slice());
    let msgs = count_messages(ping, &label) + count_messages(ack, &label);
    group.throughput(Throughput::Elements(msgs as u64));
    group.bench_function("decode", |bencher| {
        bencher.iter(|| {
            let p = codec::decode::<u32>(black_box(ping), &label, 65_507);
            let a = codec::decode::<u32>(black_box(ack), &label, 65_507);
            black_box((p, a))
        });
    });
    group.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
