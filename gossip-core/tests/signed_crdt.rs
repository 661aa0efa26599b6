//! Signed CRDT claims on real nodes in memory: with signed self-state, every count, write and
//! dot travels with its author's signature, and a causal context with its authors' signed
//! marks of the dots they issued. Honest replicas converge (by rumor and by anti-entropy
//! alone); tampered, re-signed, unsigned and future-dot states are refused whole and counted.

mod common;

use std::time::Duration;

use common::{pass, Net};
use gossip_core::crdt::signed::{ClaimSignature, CrdtProof};
use gossip_core::crdt::{AnyCrdt, AwSet, Crdt, CrdtError, GCounter, LwwRegister, MvRegister, PnCounter, ReplicaId};
use gossip_core::wire::signing::{Keypair, Signing};
use gossip_core::wire::{codec, Message};
use gossip_core::{CommandError, Config, Transmit};

fn keypair(i: usize) -> Keypair {
    Keypair::from_secret([i as u8 + 1; 32])
}

fn signed_net(n: usize, config: impl Fn(usize) -> Config) -> Net {
    let mut net = Net::new((0..n).map(|i| Config { signing: Some(Signing::new(keypair(i))), ..config(i) }).collect());
    net.run(Duration::from_secs(5), &mut pass);
    assert!(net.converged(), "signed nodes join and converge");
    net
}

/// Every node writes to five objects, one of each type.
fn write_everything(net: &mut Net) {
    for (i, node) in net.nodes.iter_mut().enumerate() {
        node.update_crdt::<GCounter>("hits", |c, me| c.increment(me, i as u64 + 1)).expect("count");
        node.update_crdt::<PnCounter>("stock", |c, me| c.decrement(me, 2)).expect("count down");
        node.update_crdt::<AwSet>("tags", |s, me| s.add(me, format!("t{i}").into_bytes())).expect("add");
        node.update_crdt::<LwwRegister>("leader", |r, me| r.set(me, format!("n{i}").into_bytes())).expect("set");
        node.update_crdt::<MvRegister>("conf", |r, me| r.set(me, vec![i as u8])).expect("set");
    }
    // A remove of another's element: anyone may remove what it has seen.
}

fn assert_all_equal(net: &Net) {
    let n = net.nodes.len();
    for (i, node) in net.nodes.iter().enumerate() {
        let hits = node.crdt::<GCounter>("hits").map_or(0, GCounter::value);
        assert_eq!(hits, (1..=n as u128).sum(), "n{i}'s counter");
        assert_eq!(node.crdt::<PnCounter>("stock").map_or(0, PnCounter::value), -2 * n as i128, "n{i}'s stock");
        assert_eq!(node.crdt::<AwSet>("tags").map_or(0, AwSet::len), n, "n{i}'s set");
        assert_eq!(node.crdt::<LwwRegister>("leader"), net.nodes[0].crdt::<LwwRegister>("leader"), "n{i}'s register");
        assert_eq!(node.crdt::<MvRegister>("conf"), net.nodes[0].crdt::<MvRegister>("conf"), "n{i}'s mv register");
        let m = node.metrics();
        assert_eq!((m.forged_crdt_states, m.crdt_unprovable), (0, 0), "n{i}: honest claims verify and prove");
    }
}

#[test]
fn signed_crdts_converge_by_rumor() {
    let mut net = signed_net(5, |_| Config::local());
    write_everything(&mut net);
    net.run(Duration::from_secs(10), &mut pass);
    assert_all_equal(&net);
}

#[test]
fn signed_crdts_converge_by_anti_entropy_alone() {
    // No rumors: every claim reaches the others in anti-entropy's intervals and pieces, each
    // part with its proofs, cut to fit a datagram.
    let mut net = signed_net(5, |_| Config { state_retransmit_mult: 0, ..Config::local() });
    write_everything(&mut net);
    for (i, node) in net.nodes.iter_mut().enumerate() {
        for k in 0..40 {
            node.update_crdt::<AwSet>("many", |s, me| s.add(me, format!("element-{i}-{k}").into_bytes())).expect("add");
        }
    }
    net.run(Duration::from_secs(60), &mut pass);
    assert_all_equal(&net);
    for (i, node) in net.nodes.iter().enumerate() {
        assert_eq!(node.crdt::<AwSet>("many").map_or(0, AwSet::len), 200, "n{i}'s large set");
    }
}

#[test]
fn an_update_writing_as_another_replica_is_refused_with_signing() {
    let mut net = signed_net(2, |_| Config::local());
    let other = ReplicaId::new("n1", 1);
    let err = net.nodes[0].update_crdt::<GCounter>("c", |c, _| c.increment(other, 5)).expect_err("refused");
    assert!(matches!(err, CommandError::Crdt(CrdtError::NotOwnWrite { replica }) if replica == other), "{err:?}");
    assert!(net.nodes[0].crdt::<GCounter>("c").is_none(), "nothing changed");
}

/// The first `CrdtDelta` of `object` that node `from` sends, with its proof.
fn capture_delta(net: &mut Net, from: usize, object: &str) -> (AnyCrdt, CrdtProof) {
    let label = net.nodes[0].config().cluster_label.clone();
    let mut found = None;
    let mut tap = |sender: usize, t: &mut Transmit<u32>| {
        if sender == from && found.is_none() {
            let envelope = codec::decode::<u32>(&t.contents, &label, usize::MAX).expect("decodes");
            found = envelope.messages.into_iter().find_map(|m| match m {
                Message::CrdtDelta { object: o, delta, proof } if o == object => Some((delta, *proof.expect("proof"))),
                _ => None,
            });
        }
        true
    };
    net.run(Duration::from_secs(2), &mut tap);
    found.expect("the delta was sent")
}

fn inject(net: &mut Net, from: usize, to: usize, object: &str, delta: AnyCrdt, proof: Option<CrdtProof>) {
    let message = Message::<u32>::CrdtDelta { object: object.into(), delta, proof: proof.map(Box::new) };
    common::inject(net, from, to, &[message]).expect("well-formed datagram");
}

#[test]
fn forged_crdt_counts_in_another_members_name_are_refused() {
    let mut net = signed_net(4, |_| Config::local());
    net.nodes[1].update_crdt::<GCounter>("c", |c, me| c.increment(me, 3)).expect("count");
    let (delta, proof) = capture_delta(&mut net, 1, "c");
    net.run(Duration::from_secs(5), &mut pass);
    let n1 = ReplicaId::new("n1", 1);
    let big = GCounter::default().increment(n1, 1000).into_any();
    let forged_before = net.nodes[0].metrics().forged_crdt_states;

    // Tampered: n1's real proof on a count it never signed.
    inject(&mut net, 3, 0, "c", big.clone(), Some(proof.clone()));
    // Re-signed: the rogue names its own key as n1's (n1's key is pinned).
    let mut rekeyed = proof.clone();
    rekeyed.authors[0].key = keypair(3).public_key();
    inject(&mut net, 3, 0, "c", big.clone(), Some(rekeyed));
    // Unsigned.
    inject(&mut net, 3, 0, "c", big.clone(), None);
    // Authored by the rogue: the claim is n1's replica, so the rogue's authorship is no help.
    let mut mine = proof.clone();
    mine.authors[0].name = "n3".into();
    mine.authors[0].key = keypair(3).public_key();
    inject(&mut net, 3, 0, "c", big, Some(mine));
    // Replayed, with a signature moved onto another object.
    inject(&mut net, 3, 0, "other", delta.clone(), Some(proof.clone()));

    assert_eq!(net.nodes[0].metrics().forged_crdt_states - forged_before, 5, "each forgery refused and counted");
    assert_eq!(net.nodes[0].crdt::<GCounter>("c").map(GCounter::value), Some(3), "n1's count stays its own");
    assert!(net.nodes[0].crdt::<GCounter>("other").is_none(), "no object made from a moved signature");

    // The genuine delta, replayed, changes nothing and is not a forgery.
    inject(&mut net, 3, 0, "c", delta, Some(proof));
    assert_eq!(net.nodes[0].metrics().forged_crdt_states - forged_before, 5);
    net.nodes[1].update_crdt::<GCounter>("c", |c, me| c.increment(me, 1)).expect("count");
    net.run(Duration::from_secs(5), &mut pass);
    for i in 0..4 {
        assert_eq!(net.nodes[i].crdt::<GCounter>("c").map(GCounter::value), Some(4), "n{i}");
    }
}

#[test]
fn forged_causal_context_cannot_cancel_another_members_future_adds() {
    let mut net = signed_net(4, |_| Config::local());
    net.nodes[1].update_crdt::<AwSet>("s", |s, me| s.add(me, b"a".to_vec())).expect("add");
    let (_, proof) = capture_delta(&mut net, 1, "s");
    net.run(Duration::from_secs(5), &mut pass);
    // A context claiming n1's dots up to 1000, as a rogue's "remove" of adds n1 has not made.
    let n1 = ReplicaId::new("n1", 1);
    let mut future = AwSet::default();
    for k in 0..1000 {
        let add = future.add(n1, format!("x{k}").into_bytes());
        future.join(&add);
        let remove = future.remove(format!("x{k}").as_bytes());
        future.join(&remove);
    }
    let mark = *proof.signatures.last().expect("the issued mark");
    assert_eq!(mark.issued, Some(1), "n1 signed its first dot as issued");
    let forged =
        |issued| CrdtProof { authors: proof.authors.clone(), signatures: vec![ClaimSignature { issued, ..mark }] };
    let before = net.nodes[0].metrics().forged_crdt_states;
    inject(&mut net, 3, 0, "s", future.clone().into_any(), Some(forged(Some(1)))); // a real mark, too low
    inject(&mut net, 3, 0, "s", future.into_any(), Some(forged(Some(1000)))); // a mark n1 never signed
    assert_eq!(net.nodes[0].metrics().forged_crdt_states - before, 2);

    // n1's next adds still arrive everywhere.
    for k in 0..5 {
        net.nodes[1].update_crdt::<AwSet>("s", |s, me| s.add(me, format!("b{k}").into_bytes())).expect("add");
    }
    net.run(Duration::from_secs(5), &mut pass);
    for i in 0..4 {
        assert_eq!(net.nodes[i].crdt::<AwSet>("s").map_or(0, AwSet::len), 6, "n{i} holds n1's adds");
    }
    // A genuine remove by another member (of what it has seen) is its right, and spreads.
    net.nodes[2].update_crdt::<AwSet>("s", |s, _| s.remove(b"a")).expect("remove");
    net.run(Duration::from_secs(5), &mut pass);
    for i in 0..4 {
        assert!(!net.nodes[i].crdt::<AwSet>("s").is_some_and(|s| s.contains(b"a")), "n{i} saw the remove");
    }
}

#[test]
fn an_update_too_large_to_send_with_its_signature_is_refused() {
    let mut net = signed_net(2, |_| Config::local());
    let mtu = net.nodes[0].config().mtu;
    let big = vec![7u8; mtu - 200];
    let err = net.nodes[0].update_crdt::<LwwRegister>("r", |r, me| r.set(me, big.clone())).expect_err("too large");
    assert!(matches!(err, CommandError::Crdt(CrdtError::DeltaTooLarge { .. })), "{err:?}");
    assert!(net.nodes[0].crdt::<LwwRegister>("r").is_none(), "nothing changed");
    let mut plain = Net::new(vec![Config::local(), Config::local()]);
    plain.nodes[0].update_crdt::<LwwRegister>("r", |r, me| r.set(me, big.clone())).expect("fits unsigned");
    // A value that fits with its proof is taken, and arrives.
    let fits = vec![7u8; mtu - 400];
    net.nodes[0].update_crdt::<LwwRegister>("r", |r, me| r.set(me, fits.clone())).expect("fits signed");
    net.run(Duration::from_secs(5), &mut pass);
    assert_eq!(net.nodes[1].crdt::<LwwRegister>("r").and_then(LwwRegister::value), Some(&fits[..]));
}

#[test]
fn a_restarted_signed_node_writes_as_a_new_life_and_gets_its_old_counts_back() {
    let mut net = signed_net(3, |_| Config::local());
    net.nodes[2].update_crdt::<GCounter>("c", |c, me| c.increment(me, 5)).expect("count");
    net.run(Duration::from_secs(5), &mut pass);
    // n2 restarts: a new life (a new replica), the same key; it relearns its old life's
    // count, which it cannot sign, from the others' proofs.
    let config = Config { signing: Some(Signing::new(keypair(2))), ..Config::local() };
    let now = net.now;
    let identity = gossip_core::Identity { name: "n2".into(), addr: 3, generation: 2 };
    net.nodes[2] = gossip_core::Node::new(config, identity, 99, now).expect("node");
    net.nodes[2].join(now, vec![1]);
    net.run(Duration::from_secs(10), &mut pass);
    net.nodes[2].update_crdt::<GCounter>("c", |c, me| c.increment(me, 1)).expect("count");
    net.run(Duration::from_secs(10), &mut pass);
    for (i, node) in net.nodes.iter().enumerate() {
        assert_eq!(node.crdt::<GCounter>("c").map(GCounter::value), Some(6), "n{i}: both lives count");
        let m = node.metrics();
        assert_eq!((m.forged_crdt_states, m.crdt_unprovable), (0, 0), "n{i}");
    }
}

#[test]
fn an_element_added_by_many_members_at_once_reaches_everyone_by_anti_entropy() {
    // Ten concurrent adds of one element: ten dots, whose proofs do not fit one datagram, so
    // anti-entropy sends the element in one piece per dot.
    let mut net = signed_net(10, |_| Config { state_retransmit_mult: 0, ..Config::local() });
    for node in net.nodes.iter_mut() {
        node.update_crdt::<AwSet>("s", |s, me| s.add(me, b"same".to_vec())).expect("add");
    }
    net.run(Duration::from_secs(60), &mut pass);
    let first = net.nodes[0].crdt::<AwSet>("s").cloned().expect("set");
    assert!(first.contains(b"same"));
    for (i, node) in net.nodes.iter().enumerate() {
        assert_eq!(node.crdt::<AwSet>("s"), Some(&first), "n{i} holds every add");
        let m = node.metrics();
        assert_eq!((m.forged_crdt_states, m.crdt_unprovable), (0, 0), "n{i}");
    }
}
