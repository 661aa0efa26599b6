//! A rogue member on the simulator, with signed self-state on: it belongs to the cluster (its
//! own key is trusted) and for two virtual minutes gossips "dead" about live members, forged
//! refutations (alive at a higher incarnation) and forged leaves for others. Nobody live is
//! removed, nobody's record moves past what its owner said, and the forgeries are counted.

use std::time::Duration;

use gossip_core::wire::signing::{Keypair, Signing};
use gossip_core::wire::{codec, MemberRecord, MemberState, Message};
use gossip_core::{Config, Event};
use gossip_sim::{NetConfig, NodeId, Sim};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn keypair(i: usize) -> Keypair {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    Keypair::from_secret(secret)
}

/// `n` members signing self-state (LAN preset), joined through the first and converged.
fn signed_cluster(n: usize, seed: u64, net: NetConfig) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, net);
    let ids: Vec<NodeId> = (0..n)
        .map(|i| sim.add_node(format!("n{i}"), Config { signing: Some(Signing::new(keypair(i))), ..Config::lan() }))
        .collect();
    for &id in &ids[1..] {
        sim.join(id, &[ids[0]]);
    }
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged));
    (sim, ids)
}

#[test]
fn forged_rogue_member_gossiping_dead_removes_no_live_member() {
    let n = 40;
    let (mut sim, ids) = signed_cluster(n, 21, NetConfig::default());
    let _ = sim.take_trace();
    let rogue = ids[n - 1];
    let rogue_name = format!("n{}", n - 1);
    let key = keypair(n - 1);
    let label = Config::lan().cluster_label;
    let honest: Vec<NodeId> = ids[..n - 1].to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..480 {
        sim.run_for(Duration::from_millis(250));
        let pick = |rng: &mut ChaCha8Rng| honest[rng.random_range(0..honest.len())];
        let (accused, impersonated, dest) = (pick(&mut rng), pick(&mut rng), pick(&mut rng));
        let view = |sim: &Sim, id: NodeId| sim.node(rogue).and_then(|r| r.member(sim.name(id)));
        let (Some(a), Some(b)) = (view(&sim, accused), view(&sim, impersonated)) else { continue };
        let dead = MemberRecord { state: MemberState::Dead, ..a };
        let sig = key.accuse(&label, &dead, &rogue_name);
        let bumped = MemberRecord { incarnation: b.incarnation + 10, ..b.clone() };
        let left = MemberRecord { state: MemberState::Left, incarnation: b.incarnation + 1, ..b };
        let messages = [
            Message::Member { record: dead, accuser: Some(rogue_name.as_str().into()), signature: Some(sig) },
            Message::Member {
                record: MemberRecord { proof: Some(Box::new(key.prove(&label, &bumped))), ..bumped },
                accuser: None,
                signature: None,
            },
            Message::Member {
                record: MemberRecord { proof: Some(Box::new(key.prove(&label, &left))), ..left },
                accuser: None,
                signature: None,
            },
        ];
        let bytes = codec::encode_datagram(&label, &rogue_name, &messages);
        let now = sim.now();
        let _ = sim.node_mut(dest).map(|node| node.handle_message(now, rogue, &bytes));
        sim.poke(dest);
    }
    sim.run_for(Duration::from_secs(20));

    let removed: Vec<(NodeId, String)> = sim
        .take_trace()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::MemberDown(m) | Event::MemberLeft(m) => Some((e.node, m.name.to_string())),
            _ => None,
        })
        .collect();
    assert!(removed.is_empty(), "live members removed: {removed:?}");
    let mut forged = 0;
    let mut limited = 0;
    let mut suspicions = 0;
    for &observer in &honest {
        let node = sim.node(observer).expect("node");
        let m = node.metrics();
        forged += m.forged_records;
        limited += m.accusations_rate_limited;
        suspicions += m.suspicions_raised;
        for &other in honest.iter().filter(|&&o| o != observer) {
            let owner = sim.node(other).expect("node").self_record();
            let seen = node.member(&owner.name).expect("still a member");
            assert_eq!(seen.state, MemberState::Alive, "{} as seen by n{observer}", owner.name);
            assert!(seen.incarnation <= owner.incarnation, "a forged incarnation of {} was taken", owner.name);
        }
    }
    let refutations: u64 = honest.iter().filter_map(|&id| sim.node(id)).map(|n| n.metrics().refutations).sum();
    eprintln!("forged records refused {forged}, accusations rate-limited {limited}, refutations {refutations}, suspicions raised {suspicions}");
    assert!(forged >= 400, "every forged refutation and leave was refused: {forged}");
    assert!(refutations > 0, "the accused refuted the rogue's signed accusations");
}

#[test]
fn signed_cluster_detects_a_mass_failure_at_unsigned_speed() {
    // A quarter of the members crash at once: honest nodes start and confirm many accusations
    // together, which the per-accuser limit must not slow down much.
    let detect = |signed: bool| {
        let n = 40;
        let mut sim = Sim::new(33, NetConfig::default());
        let ids: Vec<NodeId> = (0..n)
            .map(|i| {
                let signing = signed.then(|| Signing::new(keypair(i)));
                sim.add_node(format!("n{i}"), Config { signing, ..Config::lan() })
            })
            .collect();
        for &id in &ids[1..] {
            sim.join(id, &[ids[0]]);
        }
        assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged));
        let start = sim.elapsed();
        for &id in &ids[30..] {
            sim.crash(id);
        }
        let done = sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(120), |s| {
            (30..n).all(|i| s.count_seeing_gone(&format!("n{i}")) == 30)
        });
        assert!(done, "signed={signed}: every survivor saw every crash");
        let downs = sim
            .take_trace()
            .into_iter()
            .filter(|e| matches!(&e.event, Event::MemberDown(m) if ids[..30].iter().any(|&i| sim.name(i) == m.name)))
            .count();
        assert_eq!(downs, 0, "signed={signed}: no live member declared dead");
        (sim.elapsed() - start).as_secs_f64()
    };
    let (plain, signed) = (detect(false), detect(true));
    eprintln!("mass failure detected by all: unsigned {plain:.2} s, signed {signed:.2} s");
    assert!(signed <= plain * 1.5 + 1.0, "signed {signed:.2} s vs unsigned {plain:.2} s");
}

#[test]
fn signed_key_values_converge_through_overwrites_deletions_and_a_reset_vouched_for_by_heads() {
    // With signing, deltas that skip versions (overwritten writes, collected tombstones) and
    // resets only show once the owner's signed head vouches for them: honest traffic must
    // still converge, including a node away past the tombstone grace, which needs resets.
    let n = 24;
    let config = |i: usize| Config {
        signing: Some(Signing::new(keypair(i))),
        tombstone_grace: Duration::from_secs(20),
        ..Config::lan()
    };
    let mut sim = Sim::new(23, NetConfig { loss: 0.05, ..NetConfig::default() });
    let ids: Vec<NodeId> = (0..n).map(|i| sim.add_node(format!("n{i}"), config(i))).collect();
    for &id in &ids[1..] {
        sim.join(id, &[ids[0]]);
    }
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged));
    let writers = &ids[..4];
    for (w, &id) in writers.iter().enumerate() {
        let node = sim.node_mut(id).expect("node");
        for k in 0..12 {
            node.set(&format!("k{k}"), vec![w as u8, k]).expect("set");
        }
    }
    sim.run_for(Duration::from_secs(10));
    // The last node goes away; meanwhile the writers overwrite and delete.
    let away = ids[n - 1];
    let rest: Vec<NodeId> = ids[..n - 1].to_vec();
    sim.partition(&[&rest, &[away]]);
    let now = sim.now();
    for &id in writers {
        let node = sim.node_mut(id).expect("node");
        for k in 0..6 {
            node.set(&format!("k{k}"), vec![9, k]).expect("overwrite");
        }
        for k in 6..9 {
            node.delete(now, &format!("k{k}")).expect("delete");
        }
    }
    // Past the grace: every node has collected the tombstones.
    sim.run_for(Duration::from_secs(60));
    sim.heal();
    let same = |s: &Sim| {
        s.up_ids().iter().all(|&i| {
            writers.iter().all(|&w| {
                let name = s.name(w);
                let owner: Vec<_> = s
                    .node(w)
                    .map(|n| n.keys(name).map(|(k, v, _)| (k.to_owned(), v.to_vec())).collect())
                    .unwrap_or_default();
                let seen: Vec<_> = s
                    .node(i)
                    .map(|n| n.keys(name).map(|(k, v, _)| (k.to_owned(), v.to_vec())).collect())
                    .unwrap_or_default();
                owner.len() == 9 && seen == owner
            })
        })
    };
    let healed = sim.elapsed();
    assert!(
        sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), same),
        "key/values did not converge"
    );
    eprintln!("converged {:?} after healing", sim.elapsed() - healed);
    for &id in &ids {
        assert_eq!(sim.node(id).map(|n| n.metrics().forged_writes), Some(0), "honest traffic is never refused");
    }
}

#[test]
fn forged_crdt_claims_from_a_rogue_member_change_no_honest_replica() {
    // Honest members count and add set elements while a rogue member, for a virtual minute,
    // sends them counts and removes in their names: re-keyed (its own key under a victim's
    // name), badly signed (a signature over something else under the victim's real key) and
    // unsigned. Every honest replica ends with exactly the honest writes (and the rogue's own
    // legitimate ones), and every forgery is refused.
    use gossip_core::crdt::signed::{ClaimAuthor, ClaimSignature, CrdtProof};
    use gossip_core::crdt::{AwSet, Crdt, GCounter, ReplicaId};
    let n = 20;
    let (mut sim, ids) = signed_cluster(n, 41, NetConfig { loss: 0.02, ..NetConfig::default() });
    let (rogue, rogue_name, rogue_key) = (ids[n - 1], format!("n{}", n - 1), keypair(n - 1));
    let label = Config::lan().cluster_label;
    let honest: Vec<NodeId> = ids[..n - 1].to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut total = 0u128;
    let mut elements = 0;
    for step in 0..240 {
        // Honest writes: a count and a set element now and then.
        let writer = honest[rng.random_range(0..honest.len())];
        let node = sim.node_mut(writer).expect("node");
        node.update_crdt::<GCounter>("hits", |c, me| c.increment(me, 1)).expect("count");
        node.update_crdt::<AwSet>("tags", |s, me| s.add(me, format!("e{step}").into_bytes())).expect("add");
        total += 1;
        elements += 1;
        if step % 40 == 0 {
            // The rogue's own writes are its right: they count.
            let own = sim.node_mut(rogue).expect("rogue");
            own.update_crdt::<GCounter>("hits", |c, me| c.increment(me, 1)).expect("count");
            total += 1;
        }
        sim.run_for(Duration::from_millis(250));

        let victim = rng.random_range(0..n - 1);
        let victim_name = format!("n{victim}");
        let replica = ReplicaId::new(&victim_name, sim.node(ids[victim]).expect("node").self_record().generation);
        let generation = sim.node(ids[victim]).expect("node").self_record().generation;
        let counts = GCounter::default().increment(replica, 1_000_000).into_any();
        // Cancel the victim's next thousand adds: a context claiming its future dots.
        let mut future = AwSet::default();
        for k in 0..1000 {
            let add = future.add(replica, vec![k as u8]);
            future.join(&add);
            let remove = future.remove(&[k as u8]);
            future.join(&remove);
        }
        let some_sig = rogue_key.accuse(&label, &sim.node(rogue).expect("rogue").self_record(), &rogue_name);
        let proof = |key: &Keypair, issued: Option<u64>| CrdtProof {
            authors: vec![ClaimAuthor { name: victim_name.as_str().into(), generation, key: key.public_key() }],
            signatures: vec![ClaimSignature { issued, sig: some_sig }],
        };
        let messages: [Message<NodeId>; 5] = [
            Message::CrdtDelta {
                object: "hits".into(),
                delta: counts.clone(),
                proof: Some(Box::new(proof(&rogue_key, None))),
            },
            Message::CrdtDelta {
                object: "hits".into(),
                delta: counts.clone(),
                proof: Some(Box::new(proof(&keypair(victim), None))),
            },
            Message::CrdtDelta { object: "hits".into(), delta: counts, proof: None },
            Message::CrdtDelta {
                object: "tags".into(),
                delta: future.clone().into_any(),
                proof: Some(Box::new(proof(&keypair(victim), Some(1000)))),
            },
            Message::CrdtDelta {
                object: "tags".into(),
                delta: future.into_any(),
                proof: Some(Box::new(proof(&rogue_key, Some(1000)))),
            },
        ];
        let dest = honest[rng.random_range(0..honest.len())];
        let bytes = codec::encode_datagram(&label, &rogue_name, &messages);
        let now = sim.now();
        let _ = sim.node_mut(dest).map(|node| node.handle_message(now, rogue, &bytes));
        sim.poke(dest);
    }
    let settled = |s: &Sim| {
        honest.iter().all(|&i| {
            let node = s.node(i).expect("node");
            node.crdt::<GCounter>("hits").map_or(0, GCounter::value) == total
                && node.crdt::<AwSet>("tags").map_or(0, AwSet::len) == elements
        })
    };
    assert!(
        sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(60), settled),
        "honest replicas hold exactly the honest writes and the rogue's own"
    );
    let forged: u64 = honest.iter().filter_map(|&i| sim.node(i)).map(|n| n.metrics().forged_crdt_states).sum();
    let unprovable: u64 = honest.iter().filter_map(|&i| sim.node(i)).map(|n| n.metrics().crdt_unprovable).sum();
    eprintln!("forged CRDT states refused {forged}, unprovable parts {unprovable}");
    assert_eq!(forged, 240 * 5, "every forgery refused");
    assert_eq!(unprovable, 0, "honest nodes prove everything they hold");
}
