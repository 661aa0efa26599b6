//! Signed self-state on real nodes in memory: forged claims (another member's alive record,
//! refutation, address or leave) are refused and counted; accusations need their accuser's
//! signature, only ever start a suspicion, and are limited per accuser; a trust list keeps
//! strangers out; one source flooding a node is cut at its rate limit.

mod common;

use std::time::Duration;

use common::{inject, pass, Net};
use gossip_core::wire::signing::{Keypair, Signing, Trust};
use gossip_core::wire::{MemberRecord, MemberState, Message};
use gossip_core::{Config, DropReason, Event, HandleError};

fn keypair(i: usize) -> Keypair {
    Keypair::from_secret([i as u8 + 1; 32])
}

fn signed_config(i: usize) -> Config {
    Config { signing: Some(Signing::new(keypair(i))), ..Config::local() }
}

/// `n` signed nodes, converged.
fn signed_net(n: usize) -> Net {
    let mut net = Net::new((0..n).map(signed_config).collect());
    net.run(Duration::from_secs(5), &mut pass);
    assert!(net.converged(), "signed nodes join and converge");
    let _ = net.downs();
    net
}

fn member(record: MemberRecord<u32>) -> Message<u32> {
    Message::Member { record, accuser: None, signature: None }
}

fn view_of(net: &Net, observer: usize, name: &str) -> MemberRecord<u32> {
    net.nodes[observer].member(name).expect("member known")
}

#[test]
fn signed_nodes_converge_and_a_crash_is_still_detected() {
    let mut net = signed_net(6);
    // Node 5 stops answering: every survivor declares it dead by its own suspicion timeout.
    net.run(Duration::from_secs(20), &mut |from, t| from != 5 && t.destination != 6);
    for i in 0..5 {
        assert_eq!(view_of(&net, i, "n5").state, MemberState::Dead, "n{i} sees the crash");
    }
    let m = net.nodes[0].metrics();
    assert_eq!((m.forged_records, m.accusations_unsigned), (0, 0), "honest traffic verifies");
}

#[test]
fn forged_alive_records_refutations_moves_and_leaves_are_refused() {
    let mut net = signed_net(4);
    let label = net.nodes[0].config().cluster_label.clone();
    let rogue = keypair(3);
    let honest = view_of(&net, 0, "n1");
    let before = net.nodes[0].metrics().forged_records;
    // Another member's claims signed with the rogue's own key, or with no proof at all.
    let bumped = MemberRecord { incarnation: honest.incarnation + 5, ..honest.clone() };
    let signed_by_rogue = MemberRecord { proof: Some(Box::new(rogue.prove(&label, &bumped))), ..bumped.clone() };
    let unsigned = MemberRecord { proof: None, ..bumped.clone() };
    // n1's genuine proof, replayed with another address or as a leave.
    let genuine = net.nodes[1].self_record();
    let moved = MemberRecord { addr: 77, ..genuine.clone() };
    let left = MemberRecord { state: MemberState::Left, ..genuine.clone() };
    for forged in [signed_by_rogue, unsigned, moved, left] {
        inject(&mut net, 3, 0, &[member(forged)]).expect("well-formed datagram");
    }
    assert_eq!(net.nodes[0].metrics().forged_records - before, 4, "each forgery refused and counted");
    let now = view_of(&net, 0, "n1");
    assert_eq!((now.incarnation, now.addr, now.state), (honest.incarnation, 2, MemberState::Alive));
    net.run(Duration::from_secs(3), &mut pass);
    assert_eq!(net.downs(), 0);
}

#[test]
fn forged_refutation_cannot_save_a_crashed_member() {
    let mut net = signed_net(4);
    let label = net.nodes[0].config().cluster_label.clone();
    let rogue = keypair(3);
    // n2 crashes; as soon as n0 suspects it, the rogue "refutes" for it, again and again.
    let mut refuted = 0;
    for _ in 0..200 {
        net.run(Duration::from_millis(100), &mut |from, t| from != 2 && t.destination != 3);
        let seen = view_of(&net, 0, "n2");
        if seen.state == MemberState::Suspect {
            let alive = MemberRecord { state: MemberState::Alive, incarnation: seen.incarnation + 1, ..seen };
            let forged = MemberRecord { proof: Some(Box::new(rogue.prove(&label, &alive))), ..alive };
            inject(&mut net, 3, 0, &[member(forged)]).expect("well-formed datagram");
            refuted += 1;
        }
    }
    assert!(refuted > 0, "the rogue had suspicions to refute");
    assert_eq!(view_of(&net, 0, "n2").state, MemberState::Dead, "forged refutations did not keep it alive");
}

#[test]
fn forged_accusations_change_nothing_and_a_signed_one_is_only_a_suspicion() {
    let mut net = signed_net(4);
    let label = net.nodes[0].config().cluster_label.clone();
    let rogue = keypair(3);
    let target = net.nodes[1].self_record();
    let dead = MemberRecord { state: MemberState::Dead, ..target.clone() };
    // No signature; a signature naming another accuser; the rogue's key posing as n2.
    let forged = [
        Message::Member { record: dead.clone(), accuser: Some("n3".into()), signature: None },
        Message::Member {
            record: dead.clone(),
            accuser: Some("n2".into()),
            signature: Some(rogue.accuse(&label, &dead, "n2")),
        },
    ];
    inject(&mut net, 3, 0, &forged).expect("well-formed datagram");
    assert_eq!(view_of(&net, 0, "n1").state, MemberState::Alive, "unsigned accusations are not applied");
    assert_eq!(net.nodes[0].metrics().accusations_unsigned, 2);
    // The rogue's own signed "dead": a suspicion at n0, which n1 refutes.
    let signed = Message::Member {
        record: dead.clone(),
        accuser: Some("n3".into()),
        signature: Some(rogue.accuse(&label, &dead, "n3")),
    };
    inject(&mut net, 3, 0, &[signed]).expect("well-formed datagram");
    assert_eq!(view_of(&net, 0, "n1").state, MemberState::Suspect, "one accuser's verdict only starts a suspicion");
    net.run(Duration::from_secs(10), &mut pass);
    let after = view_of(&net, 0, "n1");
    assert_eq!(after.state, MemberState::Alive, "the member refuted");
    assert!(after.incarnation > target.incarnation);
    assert_eq!(net.downs(), 0, "nobody was removed");
}

#[test]
fn accusations_are_rate_limited_per_accuser() {
    let n = 24;
    let mut net = signed_net(n);
    let label = net.nodes[0].config().cluster_label.clone();
    let rogue = keypair(n - 1);
    let accuser = format!("n{}", n - 1);
    let burst = Signing::new(keypair(0)).accusation_burst as u64;
    // The rogue suspects every other member at once.
    for i in 1..n - 1 {
        let suspect = MemberRecord { state: MemberState::Suspect, ..view_of(&net, 0, &format!("n{i}")) };
        let sig = rogue.accuse(&label, &suspect, &accuser);
        let m = Message::Member { record: suspect, accuser: Some(accuser.as_str().into()), signature: Some(sig) };
        inject(&mut net, n - 1, 0, &[m]).expect("well-formed datagram");
    }
    let suspected = (1..n - 1).filter(|i| view_of(&net, 0, &format!("n{i}")).state == MemberState::Suspect).count();
    let limited = net.nodes[0].metrics().accusations_rate_limited;
    assert_eq!(suspected as u64, burst, "a burst of accusations accepted");
    assert_eq!(limited, (n - 2) as u64 - burst, "the rest refused and counted");
    net.run(Duration::from_secs(10), &mut pass);
    assert_eq!(net.downs(), 0, "every suspect refuted");
}

#[test]
fn a_trust_list_keeps_unlisted_and_unsigned_nodes_out() {
    let listed: Vec<usize> = (0..3).collect();
    let list = Trust::Listed(listed.iter().map(|&i| (format!("n{i}").into(), keypair(i).public_key())).collect());
    let mut configs: Vec<Config> = (0..4)
        .map(|i| Config {
            signing: Some(Signing { trust: list.clone(), ..Signing::new(keypair(i)) }),
            ..Config::local()
        })
        .collect();
    configs.push(Config::local()); // n4: does not sign at all
    let mut net = Net::new(configs);
    net.run(Duration::from_secs(5), &mut pass);
    for i in 0..3 {
        let names: Vec<String> = net.nodes[i].members().iter().map(|m| m.name.to_string()).collect();
        assert_eq!(names.len(), 2, "n{i} holds exactly the other listed members: {names:?}");
        assert!(!names.iter().any(|n| n == "n3" || n == "n4"));
    }
    assert!(net.nodes[0].metrics().forged_records > 0, "the strangers' claims were refused");
    let events: Vec<Event<u32>> = std::iter::from_fn(|| net.nodes[0].poll_event()).collect();
    assert!(!events.iter().any(|e| matches!(e, Event::MemberUp(m) if m.name == "n3" || m.name == "n4")));
}

#[test]
fn flood_from_one_source_is_cut_at_its_rate_limit() {
    let mut net = Net::new(vec![Config::local(), Config::local()]);
    net.run(Duration::from_secs(2), &mut pass);
    let limit = Config::local().source_rate_limit.expect("limited by default") as usize;
    let ping = Message::Ping { seq: 1, target: "n0".into() };
    let (mut refused, mut handled) = (0, 0);
    for _ in 0..limit * 3 {
        match inject(&mut net, 1, 0, std::slice::from_ref(&ping)) {
            Err(HandleError::RateLimited) => refused += 1,
            Ok(()) => handled += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(handled <= limit && handled >= limit - 20, "about one second's worth handled: {handled}");
    assert_eq!(net.nodes[0].metrics().dropped(DropReason::RateLimited), refused as u64);
    // The next second the source is heard again, and membership never noticed.
    net.run(Duration::from_secs(1), &mut pass);
    assert!(inject(&mut net, 1, 0, &[ping]).is_ok());
    assert!(net.converged());
}

#[test]
fn forged_key_value_writes_are_refused_and_signed_ones_spread() {
    use gossip_core::antientropy::{KeyUpdate, ParticipantDelta};
    let mut net = signed_net(4);
    net.nodes[1].set("color", b"blue".to_vec()).expect("set");
    net.nodes[1].delete(net.now, "color").expect("delete");
    net.nodes[1].set("size", b"9".to_vec()).expect("set");
    net.run(Duration::from_secs(8), &mut pass);
    for i in [0, 2, 3] {
        assert_eq!(net.nodes[i].get("n1", "size").map(|(v, _)| v.to_vec()), Some(b"9".to_vec()), "n{i} has n1's write");
        assert!(net.nodes[i].get("n1", "color").is_none(), "and its deletion");
    }
    // The rogue writes in n1's name: a new version signed with its own key, and one unsigned.
    let label = net.nodes[0].config().cluster_label.clone();
    let generation = net.nodes[1].self_record().generation;
    let held = net.nodes[0].get("n1", "size").map_or(0, |(_, v)| v);
    let mut forged = KeyUpdate { key: "size".into(), value: Some(b"666".to_vec()), version: held + 1, sig: None };
    forged.sig = Some(keypair(3).sign_write(&label, "n1", generation, &forged));
    let unsigned = KeyUpdate { key: "admin".into(), value: Some(b"yes".to_vec()), version: held + 2, sig: None };
    let delta = ParticipantDelta {
        node: "n1".into(),
        generation,
        reset: false,
        after: held,
        through: held + 2,
        gc_version: 0,
        updates: vec![forged.clone(), unsigned],
        head: None,
    };
    inject(&mut net, 3, 0, &[Message::StateDelta { deltas: vec![delta], more: None }]).expect("well-formed datagram");
    inject(
        &mut net,
        3,
        2,
        &[Message::StateUpdate {
            delta: ParticipantDelta {
                node: "n1".into(),
                generation,
                reset: false,
                after: held,
                through: held + 1,
                gc_version: 0,
                updates: vec![forged],
                head: None,
            },
        }],
    )
    .expect("well-formed datagram");
    assert_eq!(net.nodes[0].metrics().forged_writes, 2);
    assert_eq!(net.nodes[2].metrics().forged_writes, 1);
    net.run(Duration::from_secs(5), &mut pass);
    // n1's own next write still gets through everywhere.
    net.nodes[1].set("size", b"10".to_vec()).expect("set");
    net.run(Duration::from_secs(8), &mut pass);
    for i in [0, 2, 3] {
        assert_eq!(net.nodes[i].get("n1", "size").map(|(v, _)| v.to_vec()), Some(b"10".to_vec()), "n{i}");
        assert!(net.nodes[i].get("n1", "admin").is_none(), "n{i} took a forged key");
    }
}

#[test]
fn forged_resets_never_change_what_a_node_shows() {
    use gossip_core::antientropy::{ParticipantDelta, SignedHead};
    let mut net = signed_net(4);
    // n1 writes three keys, overwrites one (its first version is superseded: later deltas
    // have a gap there that only n1's signed head can vouch for) and deletes another.
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("a", "4")] {
        net.nodes[1].set(k, v.as_bytes().to_vec()).expect("set");
    }
    net.nodes[1].delete(net.now, "c").expect("delete");
    net.run(Duration::from_secs(8), &mut pass);
    let shown = |net: &Net, i: usize| -> Vec<(String, Vec<u8>)> {
        net.nodes[i].keys("n1").map(|(k, v, _)| (k.to_owned(), v.to_vec())).collect()
    };
    let expected = vec![("a".to_owned(), b"4".to_vec()), ("b".to_owned(), b"2".to_vec())];
    for i in [0, 2, 3] {
        assert_eq!(shown(&net, i), expected, "n{i} holds n1's keys");
    }
    let generation = net.nodes[1].self_record().generation;
    let label = net.nodes[0].config().cluster_label.clone();
    // 1. A reset with nothing in it, claiming n1's latest version: would empty n1's keys.
    let reset = ParticipantDelta {
        node: "n1".into(),
        generation,
        reset: true,
        after: 0,
        through: 5,
        gc_version: 5,
        updates: vec![],
        head: None,
    };
    inject(&mut net, 3, 0, &[Message::StateDelta { deltas: vec![reset.clone()], more: None }]).expect("datagram");
    // 2. The same with a head the rogue signed itself, over the empty set.
    let root = {
        use sha2::{Digest, Sha256};
        let r: [u8; 32] = Sha256::new().finalize().into();
        r
    };
    let sig = keypair(3).sign_head(&label, "n1", generation, 5, &root);
    let signed_by_rogue = ParticipantDelta { head: Some(SignedHead { root, sig }), ..reset };
    inject(&mut net, 3, 2, &[Message::StateDelta { deltas: vec![signed_by_rogue], more: None }]).expect("datagram");
    assert_eq!(shown(&net, 0), expected, "a reset without n1's head shows nothing");
    assert_eq!(shown(&net, 2), expected, "nor one with a head n1 did not sign");
    assert_eq!(net.nodes[2].metrics().forged_writes, 1, "refused and counted");
    // (Left-out writes are the store's unit tests.) Time passes: nothing changes.
    net.run(Duration::from_secs(40), &mut pass);
    for i in [0, 2, 3] {
        assert_eq!(shown(&net, i), expected, "n{i} still holds n1's keys");
    }
    // n1's next write gets through everywhere.
    net.nodes[1].set("b", b"5".to_vec()).expect("set");
    net.run(Duration::from_secs(10), &mut pass);
    let expected = vec![("a".to_owned(), b"4".to_vec()), ("b".to_owned(), b"5".to_vec())];
    for i in [0, 2, 3] {
        assert_eq!(shown(&net, i), expected, "n{i} has n1's new write");
    }
}
