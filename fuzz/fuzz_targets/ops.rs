//! An arbitrary sequence of operations on three in-memory nodes (time passing, deliveries
//! with loss and duplication, junk datagrams, key/value writes, CRDT updates, aggregates,
//! broadcasts, leaves, crashes and restarts) never panics, and after every step each node's
//! view is consistent: it never lists itself, and its live count matches its live members.
//! Half of the runs sign self-state (Ed25519), with accusations signed by a node's key about
//! any member it knows, delivered to any node.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use gossip_core::crdt::{AwSet, PnCounter};
use gossip_core::wire::signing::{Keypair, Signing};
use gossip_core::wire::{codec, MemberRecord, MemberState, Message};
use gossip_core::{Config, Identity, Node, Transmit};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Tick { ms: u16 },
    Deliver { lose: u8, duplicate: bool },
    Junk { to: u8, bytes: Vec<u8> },
    Set { node: u8, key: u8, len: u8 },
    Delete { node: u8, key: u8 },
    Count { node: u8, up: bool, by: u8 },
    Tag { node: u8, add: bool, element: u8 },
    Aggregate { node: u8, value: i16 },
    Broadcast { node: u8, len: u8 },
    Leave { node: u8 },
    Crash { node: u8 },
    Restart { node: u8 },
    Accuse { by: u8, target: u8, to: u8, dead: bool, bump: u8 },
}

const N: usize = 3;

/// Node `i`'s key pair (derived once: deriving a public key costs as much as a signature).
fn keypair(i: usize) -> &'static Keypair {
    static KEYS: std::sync::OnceLock<Vec<Keypair>> = std::sync::OnceLock::new();
    &KEYS.get_or_init(|| (0..N).map(|i| Keypair::from_secret([i as u8 + 1; 32])).collect())[i]
}

fn fresh(i: usize, generation: u64, now: Instant, signed: bool) -> Option<Node<u32>> {
    let id = Identity { name: format!("n{i}"), addr: i as u32 + 1, generation };
    let signing = signed.then(|| Signing::new(keypair(i).clone()));
    let mut node = Node::new(Config { signing, ..Config::local() }, id, generation * 31 + i as u64, now).ok()?;
    if i > 0 {
        node.join(now, vec![1]);
    }
    Some(node)
}

fuzz_target!(|input: (bool, Vec<Op>)| {
    let (signed, ops) = input;
    let start = Instant::now();
    let mut now = start;
    let mut generation = [1u64; N];
    let mut nodes: Vec<Option<Node<u32>>> = (0..N).map(|i| fresh(i, 1, now, signed)).collect();
    let mut wire: Vec<Transmit<u32>> = Vec::new();
    for op in ops.into_iter().take(400) {
        let pick = |n: u8| n as usize % N;
        match op {
            Op::Tick { ms } => {
                now += Duration::from_millis(u64::from(ms) % 5_000);
                for n in nodes.iter_mut().flatten() {
                    n.poll_timer(now);
                }
            }
            Op::Deliver { lose, duplicate } => {
                for (k, t) in std::mem::take(&mut wire).into_iter().enumerate() {
                    if lose != 0 && k % (lose as usize + 1) == 0 {
                        continue;
                    }
                    let to = t.destination as usize - 1;
                    if let Some(Some(n)) = nodes.get_mut(to) {
                        let from = (to as u32 + 1) % N as u32 + 1;
                        let _ = n.handle_message(now, from, &t.contents);
                        if duplicate {
                            let _ = n.handle_message(now, from, &t.contents);
                        }
                    }
                }
            }
            Op::Junk { to, bytes } => {
                if let Some(n) = &mut nodes[pick(to)] {
                    let _ = n.handle_message(now, 99, &bytes);
                }
            }
            Op::Set { node, key, len } => {
                if let Some(n) = &mut nodes[pick(node)] {
                    let _ = n.set(&format!("k{key}"), vec![key; len as usize]);
                }
            }
            Op::Delete { node, key } => {
                if let Some(n) = &mut nodes[pick(node)] {
                    let _ = n.delete(now, &format!("k{key}"));
                }
            }
            Op::Count { node, up, by } => {
                if let Some(n) = &mut nodes[pick(node)] {
                    let by = u64::from(by);
                    let _ = n.update_crdt::<PnCounter>(
                        "c",
                        |c, me| if up { c.increment(me, by) } else { c.decrement(me, by) },
                    );
                }
            }
            Op::Tag { node, add, element } => {
                if let Some(n) = &mut nodes[pick(node)] {
                    let _ =
                        n.update_crdt::<AwSet>(
                            "s",
                            |s, me| if add { s.add(me, vec![element]) } else { s.remove(&[element]) },
                        );
                }
            }
            Op::Aggregate { node, value } => {
                if let Some(n) = &mut nodes[pick(node)] {
                    let _ = n.set_aggregate_value("a", Some(f64::from(value)));
                }
            }
            Op::Broadcast { node, len } => {
                if let Some(n) = &mut nodes[pick(node)] {
                    let _ = n.broadcast(now, vec![7; len as usize]);
                }
            }
            Op::Leave { node } => {
                if let Some(n) = &mut nodes[pick(node)] {
                    let _ = n.leave(now);
                }
            }
            Op::Accuse { by, target, to, dead, bump } => {
                let (by, to) = (pick(by), pick(to));
                let record = nodes[by].as_ref().and_then(|n| n.member(&format!("n{}", pick(target))));
                if let (Some(record), Some(Some(n))) = (record, nodes.get_mut(to)) {
                    let state = if dead { MemberState::Dead } else { MemberState::Suspect };
                    let record = MemberRecord {
                        state,
                        incarnation: record.incarnation.wrapping_add(u32::from(bump % 3)),
                        ..record
                    };
                    let accuser = format!("n{by}");
                    let signature = Some(keypair(by).accuse(&n.config().cluster_label, &record, &accuser));
                    let message = Message::Member { record, accuser: Some(accuser.as_str().into()), signature };
                    let bytes = codec::encode_datagram(&n.config().cluster_label.clone(), &accuser, &[message]);
                    let _ = n.handle_message(now, by as u32 + 1, &bytes);
                }
            }
            Op::Crash { node } => nodes[pick(node)] = None,
            Op::Restart { node } => {
                let i = pick(node);
                if nodes[i].is_none() {
                    generation[i] += 1;
                    nodes[i] = fresh(i, generation[i], now, signed);
                }
            }
        }
        for n in nodes.iter_mut().flatten() {
            while let Some(t) = n.poll_transmit() {
                if wire.len() < 10_000 {
                    wire.push(t);
                }
            }
            while n.poll_event().is_some() {}
            let members = n.members();
            assert!(members.iter().all(|m| m.name != n.name()), "a node lists itself");
            assert_eq!(members.len(), n.live_count(), "live count and live members disagree");
        }
    }
});
