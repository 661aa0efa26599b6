//! Sealed datagrams on real nodes in memory: tampered, foreign-key, replayed and plaintext
//! datagrams are refused and counted; a key rotation and the rolling switch to encryption
//! keep every member in.

use std::time::Duration;

use gossip_core::wire::security::{Key, Keyring, SealMode};
mod common;

use common::{pass, Net};
use gossip_core::{Config, DropReason, Identity, Node};

fn key(b: u8) -> Key {
    Key::from_bytes([b; 32])
}

fn sealed_config(keys: Vec<Key>, mode: SealMode) -> Config {
    Config { keyring: Some(Keyring::new(keys).expect("keys")), seal_mode: mode, ..Config::local() }
}

#[test]
fn sealed_nodes_join_and_send_nothing_in_the_clear() {
    let mut net = Net::new((0..4).map(|_| sealed_config(vec![key(1)], SealMode::Require)).collect());
    let mut plain = 0;
    net.run(Duration::from_secs(5), &mut |_, t| {
        plain += usize::from(t.contents.first() != Some(&gossip_core::wire::security::SEALED));
        true
    });
    assert!(net.converged());
    assert_eq!(plain, 0, "every datagram sealed");
    assert!(net
        .nodes
        .iter()
        .all(|n| n.config().mtu <= Config::local().mtu - gossip_core::wire::security::SEAL_OVERHEAD));
}

#[test]
fn tampered_foreign_key_replayed_and_plaintext_datagrams_are_refused_and_counted() {
    let mut net = Net::new((0..2).map(|_| sealed_config(vec![key(1)], SealMode::Require)).collect());
    let mut captured: Vec<Vec<u8>> = Vec::new();
    net.run(Duration::from_secs(3), &mut |_, t| {
        if t.destination == 2 {
            captured.push(t.contents.clone());
        }
        true
    });
    assert!(net.converged());
    let now = net.now;
    let target = &mut net.nodes[1];
    let before = target.metrics();
    // Replayed: a datagram already delivered, from its sender's address and from another.
    let replay = captured.last().cloned().expect("traffic to n1");
    let _ = target.handle_message(now, 1, &replay);
    assert_eq!(target.handle_message(now, 77, &replay).ok(), None, "a replay from elsewhere is refused too");
    // Tampered: one bit flipped in the ciphertext.
    let mut tampered = replay.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x40;
    assert!(target.handle_message(now, 1, &tampered).is_err());
    // Sealed with a key the ring does not hold.
    let mut stranger = Node::new(
        sealed_config(vec![key(9)], SealMode::Require),
        Identity { name: "x".into(), addr: 99u32, generation: 1 },
        5,
        now,
    )
    .expect("node");
    stranger.join(now, vec![2]);
    stranger.poll_timer(now);
    let foreign: Vec<Vec<u8>> = std::iter::from_fn(|| stranger.poll_transmit()).map(|t| t.contents).collect();
    assert!(!foreign.is_empty());
    for d in &foreign {
        assert!(target.handle_message(now, 99, d).is_err());
    }
    // Plaintext where sealing is required.
    let plain = gossip_core::wire::codec::encode_datagram::<u32>("gossip", "x", &[]);
    assert!(target.handle_message(now, 99, &plain).is_err());
    let after = target.metrics();
    let delta = |r: DropReason| after.dropped(r) - before.dropped(r);
    assert!(delta(DropReason::Replayed) >= 2, "replays refused");
    assert_eq!(delta(DropReason::Unopenable), 1 + foreign.len() as u64, "tampered and foreign refused");
    assert_eq!(delta(DropReason::Unsealed), 1, "plaintext refused");
    assert!(target.member("x").is_none());
}

#[test]
fn key_rotation_keeps_every_member_in() {
    let mut net = Net::new((0..6).map(|_| sealed_config(vec![key(1)], SealMode::Require)).collect());
    net.run(Duration::from_secs(5), &mut pass);
    assert!(net.converged());
    let _ = net.downs();
    let (old, new) = (key(1), key(2));
    // 1. Install the new key everywhere (it opens), one node at a time, traffic flowing.
    for i in 0..6 {
        net.nodes[i].install_key(new.clone()).expect("install");
        net.run(Duration::from_millis(300), &mut pass);
    }
    // 2. Make it primary everywhere (nodes now seal with it; the others still open it).
    for i in 0..6 {
        net.nodes[i].use_key(&new.id()).expect("use");
        net.run(Duration::from_millis(300), &mut pass);
    }
    // 3. Retire the old key.
    for i in 0..6 {
        net.nodes[i].remove_key(&old.id()).expect("remove");
        net.run(Duration::from_millis(300), &mut pass);
    }
    net.run(Duration::from_secs(5), &mut pass);
    assert!(net.converged());
    assert_eq!(net.downs(), 0, "nobody flapped");
    assert!(net.nodes.iter().all(|n| n.keyring().is_some_and(|(ids, _)| ids == vec![new.id()])));
    assert!(net.nodes.iter().all(|n| n.metrics().dropped(DropReason::Unopenable) == 0));
}

#[test]
fn encryption_turns_on_across_a_running_cluster_in_rolling_steps() {
    let mut net = Net::new((0..6).map(|_| Config::local()).collect());
    net.run(Duration::from_secs(5), &mut pass);
    assert!(net.converged());
    let k = key(3);
    for step in [None, Some(SealMode::Seal), Some(SealMode::Require)] {
        for i in 0..6 {
            match step {
                None => net.nodes[i].install_key(k.clone()).expect("install: opens, still plain"),
                Some(mode) => net.nodes[i].set_seal_mode(mode).expect("mode"),
            }
            net.run(Duration::from_millis(400), &mut pass);
            assert_eq!(net.downs(), 0, "a member flapped at step {step:?}, node {i}");
        }
    }
    let mut plain = 0;
    net.run(Duration::from_secs(3), &mut |_, t| {
        plain += usize::from(t.contents.first() != Some(&gossip_core::wire::security::SEALED));
        true
    });
    assert!(net.converged());
    assert_eq!(plain, 0);
}
