//! Hostile input that must neither grow a node's memory for good nor make it a weapon:
//! key/value state in strangers' names, leaves of strangers that would use up the keys bound
//! on first use, and anti-entropy requests with forged source addresses (reflection).

mod common;

use std::time::Duration;

use common::{inject, inject_as, pass, Net};
use gossip_core::antientropy::{KeyUpdate, ParticipantDelta, ParticipantDigest};
use gossip_core::wire::signing::{Keypair, Signing};
use gossip_core::wire::{codec, MemberRecord, MemberState, Message};
use gossip_core::Config;

fn stranger_delta(i: usize) -> ParticipantDelta {
    ParticipantDelta {
        node: format!("stranger{i}").into(),
        generation: 1,
        reset: false,
        after: 0,
        through: 1,
        gc_version: 0,
        updates: vec![KeyUpdate { key: "k".into(), value: Some(vec![7; 512]), version: 1, sig: None }],
        head: None,
    }
}

#[test]
fn flood_of_key_values_in_strangers_names_is_not_kept() {
    // No limit per source: what is kept is at stake here, not how fast it may come.
    let config = Config { source_rate_limit: None, ..Config::local() };
    let mut net = Net::new(vec![config.clone(), config]);
    net.nodes[1].set("mine", b"1".to_vec()).expect("set");
    net.run(Duration::from_secs(3), &mut pass);
    assert!(net.converged());
    assert!(net.nodes[0].get("n1", "mine").is_some(), "a member's state is taken");
    let before = net.nodes[0].state_digest_hash();
    // A member sends, from its own address, state for a thousand names nobody knows (about
    // half a megabyte), both as transfers and as rumors.
    for i in 0..1000 {
        let message = if i % 2 == 0 {
            Message::StateDelta { deltas: vec![stranger_delta(i)], more: None }
        } else {
            Message::StateUpdate { delta: stranger_delta(i) }
        };
        inject(&mut net, 1, 0, &[message]).expect("well-formed datagram");
    }
    assert!((0..1000).all(|i| net.nodes[0].keys(&format!("stranger{i}")).next().is_none()), "nothing kept");
    assert_eq!(net.nodes[0].state_digest_hash(), before, "the store is as it was");
    // And the member's own state still moves.
    net.nodes[1].set("mine", b"2".to_vec()).expect("set");
    net.run(Duration::from_secs(3), &mut pass);
    assert_eq!(net.nodes[0].get("n1", "mine").map(|(v, _)| v.to_vec()), Some(b"2".to_vec()));
}

#[test]
fn forged_leaves_of_strangers_bind_no_keys_and_lock_out_no_newcomer() {
    // A small table, so the keys bound on first use are few: 2 × 8 + 1024.
    let config = |i: usize| Config {
        max_members: 8,
        source_rate_limit: None,
        signing: Some(Signing::new(Keypair::from_secret([i as u8 + 1; 32]))),
        ..Config::local()
    };
    let mut net = Net::new((0..2).map(config).collect());
    net.run(Duration::from_secs(3), &mut pass);
    assert!(net.converged());
    let label = net.nodes[0].config().cluster_label.clone();
    let signed = |name: String, key: &Keypair, state: MemberState| {
        let record = MemberRecord {
            name: name.into(),
            addr: 500,
            generation: 1,
            incarnation: 0,
            state,
            zone: None,
            proof: None,
        };
        MemberRecord { proof: Some(Box::new(key.prove(&label, &record))), ..record }
    };
    // 1,100 names, each leaving under a key of its own, correctly signed: news of strangers
    // that the node has no reason to keep.
    for i in 0..1100u32 {
        let mut secret = [0xA0; 32];
        secret[..4].copy_from_slice(&i.to_le_bytes());
        let ghost = signed(format!("ghost{i}"), &Keypair::from_secret(secret), MemberState::Left);
        inject(&mut net, 1, 0, &[Message::Member { record: ghost, accuser: None, signature: None }]).expect("sent");
    }
    assert!(net.nodes[0].member("ghost0").is_none());
    // A real newcomer, relayed by a member, is still admitted under its own key.
    let newcomer = signed("newcomer".into(), &Keypair::from_secret([0x55; 32]), MemberState::Alive);
    inject(&mut net, 1, 0, &[Message::Member { record: newcomer, accuser: None, signature: None }]).expect("sent");
    assert_eq!(net.nodes[0].member("newcomer").map(|m| m.state), Some(MemberState::Alive));
    assert_eq!(net.nodes[0].metrics().forged_records, 0, "every record was genuinely signed");
}

#[test]
fn a_member_forgotten_long_enough_may_come_back_under_a_new_key() {
    let config = |i: usize| Config {
        dead_reclaim_time: Duration::from_secs(2),
        signing: Some(Signing::new(Keypair::from_secret([i as u8 + 1; 32]))),
        ..Config::local()
    };
    let mut net = Net::new((0..3).map(config).collect());
    net.run(Duration::from_secs(3), &mut pass);
    assert!(net.converged());
    let label = net.nodes[0].config().cluster_label.clone();
    let record = net.nodes[2].self_record();
    let rekeyed = |incarnation: u32| {
        let r = MemberRecord { incarnation, proof: None, ..record.clone() };
        MemberRecord { proof: Some(Box::new(Keypair::from_secret([0x66; 32]).prove(&label, &r))), ..r }
    };
    // n2 leaves and is reclaimed; while its last record is remembered, its old key guards its
    // name.
    let now = net.now;
    net.nodes[2].leave(now).expect("leaves");
    net.run(Duration::from_millis(500), &mut pass);
    net.run(Duration::from_millis(2500), &mut |from, t| from != 2 && t.destination != 3);
    assert!(net.nodes[0].member("n2").is_none(), "reclaimed");
    let before = net.nodes[0].metrics().forged_records;
    inject(&mut net, 1, 0, &[Message::Member { record: rekeyed(9), accuser: None, signature: None }]).expect("sent");
    assert_eq!(net.nodes[0].metrics().forged_records, before + 1, "the old key still guards the name");
    // Once that record has expired too, the name is free: the new key is bound to it.
    net.run(Duration::from_secs(3), &mut |from, t| from != 2 && t.destination != 3);
    inject(&mut net, 1, 0, &[Message::Member { record: rekeyed(10), accuser: None, signature: None }]).expect("sent");
    assert_eq!(net.nodes[0].member("n2").map(|m| (m.state, m.incarnation)), Some((MemberState::Alive, 10)));
}

/// Whether node 0 queued anything for `addr`.
fn answers_to(net: &mut Net, addr: u32) -> usize {
    std::iter::from_fn(|| net.nodes[0].poll_transmit()).filter(|t| t.destination == addr).count()
}

#[test]
fn forged_anti_entropy_requests_are_not_reflected_and_a_member_is_held_to_a_rate() {
    let mut net = Net::new(vec![Config::local(), Config::local()]);
    for i in 0..200 {
        net.nodes[0].set(&format!("key{i}"), vec![1; 200]).expect("set");
    }
    net.run(Duration::from_secs(3), &mut pass);
    assert!(net.converged());
    let _ = answers_to(&mut net, 0);
    let empty_digest =
        Message::StateDigest { start: "".into(), end: None, entries: Vec::<ParticipantDigest>::new(), reply: true };
    let requests = [
        Message::StateSyn { hash: 1 },
        empty_digest.clone(),
        Message::CrdtSyn { hash: 1 },
        Message::CrdtDigest { start: "".into(), end: None, entries: Vec::new(), reply: true },
    ];
    // Asked in a stranger's name, or in a member's name from another address (a victim's):
    // no answer at all.
    for request in &requests {
        inject_as(&mut net, "victim", 99, 0, std::slice::from_ref(request)).expect("sent");
        inject_as(&mut net, "n1", 99, 0, std::slice::from_ref(request)).expect("sent");
    }
    assert_eq!(answers_to(&mut net, 99), 0, "nothing reflected");
    assert_eq!(net.nodes[0].metrics().answers_refused, 8);
    // The member itself, from its own address, is answered: the first 32 requests at once.
    for _ in 0..100 {
        inject(&mut net, 1, 0, std::slice::from_ref(&empty_digest)).expect("sent");
    }
    let m = net.nodes[0].metrics();
    assert_eq!((m.answers_refused, m.answers_throttled), (8, 68));
    let answered = answers_to(&mut net, 2);
    assert!(answered >= 32, "each answered request sends state: {answered}");
    // Plain requests that cost no more to answer than to send are not limited this way.
    let ping = codec::encode_datagram(
        &net.nodes[0].config().cluster_label.clone(),
        "victim",
        &[Message::<u32>::Ping { seq: 1, target: "n0".into() }],
    );
    let now = net.now;
    net.nodes[0].handle_message(now, 99, &ping).expect("sent");
    assert_eq!(answers_to(&mut net, 99), 1, "a ping is acked wherever it came from");
}
