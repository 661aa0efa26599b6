//! Deterministic multi-node membership tests on the simulator.

use std::time::Duration;

use gossip_core::{Config, Event, MemberState};
use gossip_sim::{NetConfig, NodeId, Sim, TraceEntry};

fn cluster(seed: u64, n: usize, config: Config, net: NetConfig) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(seed, net);
    let ids: Vec<NodeId> = (0..n).map(|i| sim.add_node(format!("n{i}"), config.clone())).collect();
    for &id in &ids[1..] {
        sim.join(id, &[ids[0]]);
    }
    (sim, ids)
}

fn dead_declarations(trace: &[TraceEntry]) -> Vec<(NodeId, String)> {
    trace
        .iter()
        .filter_map(|e| match &e.event {
            Event::MemberDown(m) => Some((e.node, m.name.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn hundred_nodes_join_through_one_seed() {
    let (mut sim, _) = cluster(1, 100, Config::lan(), NetConfig::default());
    let ok = sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged);
    assert!(ok, "100 nodes did not converge in 60 virtual seconds");
    eprintln!("converged after {:?}", sim.elapsed());
}

#[test]
fn joins_planned_ahead_happen_at_their_time() {
    let mut sim = Sim::new(15, NetConfig::default());
    let ids: Vec<NodeId> = (0..50).map(|i| sim.add_node(format!("n{i}"), Config::lan())).collect();
    let start = sim.now();
    for (i, &id) in ids[1..].iter().enumerate() {
        sim.join_at(id, &[ids[0]], start + Duration::from_millis(40 * i as u64 + 40));
    }
    let last = ids[49];
    sim.run_for(Duration::from_millis(1950));
    assert!(!sim.node(last).is_some_and(|n| n.is_joining()), "not before its time (1.96 s)");
    assert_eq!(sim.node(last).map(|n| n.live_count()), Some(0));
    sim.run_for(Duration::from_millis(20));
    assert!(sim.node(last).is_some_and(|n| n.is_joining() || n.live_count() > 0), "joining at its time");
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
}

#[test]
fn thousand_nodes_join_through_one_seed() {
    let mut sim = Sim::new(2, NetConfig::default());
    sim.record_trace(false);
    let ids: Vec<NodeId> = (0..1000).map(|i| sim.add_node(format!("n{i}"), Config::lan())).collect();
    for &id in &ids[1..] {
        sim.join(id, &[ids[0]]);
    }
    let ok = sim.run_until_cond(Duration::from_secs(1), Duration::from_secs(180), Sim::converged);
    assert!(ok, "1000 nodes did not converge in 180 virtual seconds");
    eprintln!("converged after {:?}", sim.elapsed());
}

#[test]
fn crashed_member_is_declared_dead_by_all_and_no_live_member_is() {
    let (mut sim, ids) = cluster(3, 30, Config::lan(), NetConfig::default());
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
    sim.take_trace();
    let victim = ids[17];
    sim.crash(victim);
    let ok = sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(120), |s| {
        s.count_seeing_gone("n17") == s.up_ids().len()
    });
    assert!(ok, "not every survivor declared the crashed member dead");
    let deaths = dead_declarations(&sim.take_trace());
    assert!(deaths.iter().all(|(_, name)| name == "n17"), "live member declared dead: {deaths:?}");
    assert!(sim.converged());
}

#[test]
fn same_seed_gives_the_same_event_trace() {
    let run = |seed| {
        let net = NetConfig { loss: 0.05, duplicate: 0.02, reorder: 0.05, ..NetConfig::default() };
        let (mut sim, ids) = cluster(seed, 20, Config::lan(), net);
        sim.run_for(Duration::from_secs(10));
        sim.crash(ids[5]);
        sim.run_for(Duration::from_secs(40));
        (sim.take_trace(), sim.stats().clone())
    };
    let (a, sa) = run(7);
    let (b, sb) = run(7);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let (c, _) = run(8);
    assert_ne!(a, c, "a different seed should give a different trace");
}

#[test]
fn the_trace_does_not_depend_on_how_many_threads_run_it() {
    // 300 nodes joining at once keep many nodes busy in each window: the parallel path.
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        pool.install(|| {
            let net = NetConfig { loss: 0.05, duplicate: 0.02, reorder: 0.05, ..NetConfig::default() };
            let (mut sim, ids) = cluster(9, 300, Config::lan(), net);
            sim.run_for(Duration::from_secs(5));
            sim.crash(ids[7]);
            sim.run_for(Duration::from_secs(15));
            assert!(sim.parallel_windows() > 0, "some windows ran in parallel");
            (sim.take_trace(), sim.stats().clone())
        })
    };
    let (one, one_stats) = run(1);
    let (three, three_stats) = run(3);
    assert!(one.len() > 10_000, "{} events", one.len());
    assert_eq!(one_stats, three_stats);
    assert!(one == three, "the same events in the same order");
}

#[test]
fn falsely_suspected_member_refutes_and_stays() {
    let (mut sim, ids) = cluster(4, 20, Config::lan(), NetConfig::default());
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
    sim.take_trace();
    // Cut n7 off just long enough to be suspected, well short of the suspicion timeout.
    let target = ids[7];
    let others: Vec<NodeId> = ids.iter().copied().filter(|&i| i != target).collect();
    sim.partition(&[&[target], &others]);
    let suspected = sim.run_until_cond(Duration::from_millis(100), Duration::from_secs(60), |s| {
        others.iter().any(|&o| s.sees(o, "n7", MemberState::Suspect))
    });
    assert!(suspected, "n7 was never suspected");
    sim.heal();
    sim.run_for(Duration::from_secs(30));
    let trace = sim.take_trace();
    assert!(
        dead_declarations(&trace).is_empty(),
        "a refuted member was declared dead: {:?}",
        dead_declarations(&trace)
    );
    assert!(sim.node(target).is_some_and(|n| n.self_record().incarnation > 0), "n7 did not refute");
    assert!(sim.node(target).is_some_and(|n| n.metrics().refutations > 0));
    assert!(sim.converged());
}

#[test]
fn twenty_percent_loss_for_ten_minutes_declares_no_live_member_dead() {
    let net = NetConfig { loss: 0.2, ..NetConfig::default() };
    let (mut sim, _) = cluster(5, 100, Config::lan(), net);
    sim.prime_converged();
    let mut downs = 0;
    for _ in 0..60 {
        sim.run_for(Duration::from_secs(10));
        downs += dead_declarations(&sim.take_trace()).len();
    }
    assert_eq!(downs, 0, "live members declared dead under 20% loss");
    // Everyone still sees everyone as a member (some may be under a passing suspicion).
    for id in sim.up_ids() {
        assert_eq!(sim.node(id).map(|n| n.live_count()), Some(99));
    }
    // Once the loss stops, views settle on the latest incarnations.
    sim.net_mut().loss = 0.0;
    assert!(sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), Sim::converged));
}

#[test]
fn fifty_fifty_partition_declares_the_other_side_dead_and_heals() {
    let (mut sim, ids) = cluster(6, 40, Config::lan(), NetConfig::default());
    sim.record_trace(false);
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
    let (a, b) = ids.split_at(20);
    sim.partition(&[a, b]);
    let split = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), |s| {
        a.iter().all(|&i| s.node(i).is_some_and(|n| n.live_count() == 19))
            && b.iter().all(|&i| s.node(i).is_some_and(|n| n.live_count() == 19))
    });
    assert!(split, "each side should declare the other dead");
    for &i in a {
        for &j in b {
            assert!(sim.node(i).and_then(|n| n.member(sim.name(j))).is_some_and(|m| m.state == MemberState::Dead));
        }
    }
    sim.heal();
    let healed = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(180), Sim::converged);
    assert!(healed, "full membership did not return after healing");
}

#[test]
fn restarted_node_rejoins_under_new_generation_and_old_self_never_reappears() {
    let (mut sim, ids) = cluster(7, 20, Config::lan(), NetConfig::default());
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
    let node = ids[9];
    sim.crash(node);
    sim.run_for(Duration::from_millis(300));
    sim.restart(node);
    sim.take_trace();
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged));
    sim.run_for(Duration::from_secs(60));
    for id in sim.up_ids() {
        if id == node {
            continue;
        }
        let m = sim.node(id).and_then(|n| n.member("n9")).expect("n9 known");
        assert_eq!(m.generation, 2);
        assert_eq!(m.state, MemberState::Alive);
    }
    // No event ever reports generation 1 as alive again after the restart.
    for e in sim.take_trace() {
        if let Event::MemberUp(m) | Event::MemberUpdated(m) = &e.event {
            if m.name == "n9" {
                assert_eq!(m.generation, 2, "old life reappeared: {e:?}");
            }
        }
    }
}

#[test]
fn restarted_node_at_a_new_address_supersedes_its_old_self() {
    let (mut sim, ids) = cluster(8, 10, Config::lan(), NetConfig::default());
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
    sim.crash(ids[3]);
    // Same name, a new process at another address, next generation.
    let moved = sim.add_node_life("n3", 2, Config::lan());
    sim.join(moved, &[ids[0]]);
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged));
    for id in sim.up_ids() {
        if id != moved {
            let m = sim.node(id).and_then(|n| n.member("n3")).expect("n3 known");
            assert_eq!((m.addr, m.generation, m.state), (moved, 2, MemberState::Alive));
        }
    }
}

#[test]
fn zones_keep_most_traffic_local_without_partitioning_knowledge() {
    let run = |cross: f64| {
        let mut sim = Sim::new(9, NetConfig::default());
        let ids: Vec<NodeId> = (0..40)
            .map(|i| {
                let zone = if i % 2 == 0 { "eu" } else { "us" };
                let config = Config { zone: Some(zone.into()), cross_zone_probability: cross, ..Config::lan() };
                sim.add_node(format!("n{i}"), config)
            })
            .collect();
        for &id in &ids[1..] {
            sim.join(id, &[ids[0]]);
        }
        assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged));
        let before = sim.stats().clone();
        sim.run_for(Duration::from_secs(60));
        let s = sim.stats().clone();
        // A crash in the other zone is still detected by everyone.
        sim.crash(ids[1]);
        let detected = sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(120), |s| {
            s.count_seeing_gone("n1") == s.up_ids().len()
        });
        assert!(detected);
        (s.cross_zone - before.cross_zone) as f64 / (s.sent - before.sent) as f64
    };
    let preferring = run(0.1);
    let ignoring = run(1.0);
    assert!(ignoring > 0.4, "without zone preference about half the traffic crosses: {ignoring}");
    assert!(preferring < 0.25, "with zone preference most traffic stays local: {preferring}");
}

#[test]
fn dead_members_are_forgotten_after_reclaim_time_and_stale_gossip_does_not_resurrect_them() {
    use gossip_core::wire::{codec, Message};
    let config = Config { dead_reclaim_time: Duration::from_secs(20), ..Config::lan() };
    let (mut sim, ids) = cluster(10, 10, config, NetConfig::default());
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
    // Remember what n4 looked like while alive: that is the stale gossip to replay later.
    let stale = sim.node(ids[0]).and_then(|n| n.member("n4")).expect("n4 known");
    sim.crash(ids[4]);
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), |s| {
        s.count_seeing_gone("n4") == s.up_ids().len()
    }));
    assert!(sim.node(ids[1]).and_then(|n| n.member("n4")).is_some(), "dead member still listed before reclaim");
    sim.run_for(Duration::from_secs(30));
    for id in sim.up_ids() {
        assert!(sim.node(id).and_then(|n| n.member("n4")).is_none(), "dead member not forgotten");
    }
    // Replay the old alive record from a live member: it must not come back.
    let bytes =
        codec::encode_datagram("gossip", "n2", &[Message::Member { record: stale, accuser: None, signature: None }]);
    let now = sim.now();
    let _ = sim.node_mut(ids[1]).map(|n| n.handle_message(now, ids[2], &bytes));
    sim.poke(ids[1]);
    sim.run_for(Duration::from_secs(5));
    assert!(sim.node(ids[1]).and_then(|n| n.member("n4")).is_none(), "stale gossip resurrected a forgotten member");
    assert!(sim.converged());
}

#[test]
fn a_user_broadcast_reaches_every_node_exactly_once_despite_loss() {
    for seed in 0..5 {
        let net = NetConfig { loss: 0.1, duplicate: 0.05, ..NetConfig::default() };
        let (mut sim, ids) = cluster(20 + seed, 100, Config::lan(), net);
        sim.prime_converged();
        sim.run_for(Duration::from_secs(2));
        sim.take_trace();
        let id = sim.broadcast(ids[3], b"hello".to_vec()).expect("accepted");
        sim.run_for(Duration::from_secs(20));
        let mut got = vec![0; ids.len()];
        for e in sim.take_trace() {
            if let Event::Broadcast { origin, id: i, .. } = &e.event {
                if origin == "n3" && *i == id {
                    got[e.node as usize] += 1;
                }
            }
        }
        for (node, &n) in got.iter().enumerate() {
            assert_eq!(n, usize::from(node != 3), "seed {seed}: node {node} received the broadcast {n} times");
        }
    }
}

#[test]
fn a_node_keeps_retrying_a_seed_that_is_down_and_joins_when_it_comes_up() {
    let mut sim = Sim::new(11, NetConfig::default());
    let seed = sim.add_node("seed", Config::lan());
    let joiner = sim.add_node("joiner", Config::lan());
    sim.crash(seed);
    sim.join(joiner, &[seed]);
    sim.run_for(Duration::from_secs(20));
    let attempts = sim.node(joiner).map(|n| n.metrics().join_attempts).unwrap_or(0);
    assert!(attempts >= 3, "join retried with backoff: {attempts} attempts");
    assert!(attempts <= 8, "backoff keeps retries sparse: {attempts} attempts in 20 s");
    assert!(sim.node(joiner).is_some_and(|n| n.is_joining()));
    sim.restart(seed);
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged));
}

#[test]
fn a_node_that_finds_itself_alone_rejoins_through_its_seeds() {
    let (mut sim, ids) = cluster(12, 10, Config::lan(), NetConfig::default());
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
    let lonely = ids[6];
    let others: Vec<NodeId> = ids.iter().copied().filter(|&i| i != lonely).collect();
    sim.partition(&[&[lonely], &others]);
    // Lifeguard: its probes all fail, so it probes and concludes ever more slowly (local health
    // stretches probe periods and suspicion timeouts up to 8x); this takes about two minutes.
    let cut_at = sim.elapsed();
    assert!(sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(300), |s| {
        s.node(lonely).is_some_and(|n| n.live_count() == 0)
    }));
    eprintln!("alone after {:?}", sim.elapsed() - cut_at);
    // Alone, it goes back to its seed (here still unreachable) every rejoin interval.
    let before = sim.node(lonely).map(|n| n.metrics().join_attempts).unwrap_or(0);
    sim.run_for(Duration::from_secs(25));
    let after = sim.node(lonely).map(|n| n.metrics().join_attempts).unwrap_or(0);
    assert!(after > before, "a lonely node contacts its seeds again");
    sim.heal();
    assert!(sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), Sim::converged));
}

#[test]
fn a_seed_that_no_join_reached_is_found_by_the_nodes_that_list_it() {
    // Found by the property test (under 28% loss): every joiner got its answer from another
    // seed, n0's join requests were all lost, and n0 (which has no seeds of its own) stayed
    // alone for good. Here n0 is cut off while the others join through n0, n1 and n2. Nodes
    // now contact listed seeds that are not live members.
    let mut sim = Sim::new(14, NetConfig::default());
    let ids: Vec<NodeId> = (0..4).map(|i| sim.add_node(format!("n{i}"), Config::lan())).collect();
    sim.partition(&[&ids[..1], &ids[1..]]);
    for &id in &ids[1..] {
        sim.join(id, &ids[..3]);
    }
    sim.run_for(Duration::from_secs(30));
    assert!(ids[1..].iter().all(|&i| sim.node(i).is_some_and(|n| n.live_count() == 2)), "the others joined");
    assert_eq!(sim.node(ids[0]).map(|n| n.live_count()), Some(0), "n0 heard of nobody");
    sim.heal();
    assert!(sim.run_until_cond(Duration::from_secs(1), Duration::from_secs(60), Sim::converged));
}

#[test]
fn two_sides_that_forgot_each_other_meet_again_through_a_seed() {
    // A partition longer than the reclaim time: each side declares the other dead, then
    // forgets it, keeping a tombstone that refuses the old incarnation. After healing, the
    // nodes that list the seed contact it; each side tells the other it was declared dead,
    // and the refutations (higher incarnations) get through the tombstones, well before the
    // tombstones expire.
    let reclaim = Duration::from_secs(40);
    let config = Config { dead_reclaim_time: reclaim, ..Config::lan() };
    let (mut sim, ids) = cluster(13, 12, config, NetConfig::default());
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(30), Sim::converged));
    let (a, b) = ids.split_at(4);
    sim.partition(&[a, b]);
    let forgotten = sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(120), |s| {
        a.iter().all(|&i| s.node(i).is_some_and(|n| n.all_members().len() == 3))
            && b.iter().all(|&i| s.node(i).is_some_and(|n| n.all_members().len() == 7))
    });
    assert!(forgotten, "each side forgets the other");
    sim.heal();
    let healed_at = sim.elapsed();
    assert!(sim.run_until_cond(Duration::from_millis(500), reclaim, Sim::converged), "not healed within {reclaim:?}");
    eprintln!("healed {:?} after the partition ended", sim.elapsed() - healed_at);
}

#[test]
fn a_member_joining_through_a_node_that_is_itself_joining_is_seen_by_all() {
    // c joins through b while b is still joining through a: a must still learn of c, even
    // though b's first exchange with a happens after c arrived.
    let config = Config {
        probe_interval: Duration::from_millis(400),
        probe_timeout: Duration::from_millis(200),
        gossip_interval: Duration::from_millis(100),
        ..Config::local()
    };
    for seed in 0..20 {
        let mut sim = Sim::new(seed, NetConfig::default());
        let a = sim.add_node("a", config.clone());
        let b = sim.add_node("b", config.clone());
        let c = sim.add_node("c", config.clone());
        sim.join(b, &[a]);
        sim.join(c, &[b]);
        let ok = sim.run_until_cond(Duration::from_millis(50), Duration::from_secs(10), Sim::converged);
        assert!(ok, "seed {seed}: a sees c: {}", sim.node(a).is_some_and(|n| n.member("c").is_some()));
    }
}

#[test]
fn phi_conviction_alongside_swim_removes_a_crash_and_no_live_member() {
    use gossip_core::PhiAccrual;
    let config = Config {
        phi_accrual: Some(PhiAccrual { conviction_threshold: Some(8.0), ..PhiAccrual::default() }),
        ..Config::lan()
    };
    let (mut sim, ids) = cluster(21, 20, config, NetConfig { loss: 0.05, ..NetConfig::default() });
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged));
    sim.run_for(Duration::from_secs(300));
    let deaths = dead_declarations(&sim.take_trace());
    assert!(deaths.is_empty(), "no live member declared dead: {deaths:?}");
    let convictions: u64 = sim.up_ids().iter().filter_map(|&i| sim.node(i)).map(|n| n.metrics().phi_convictions).sum();
    eprintln!("phi convictions of live members in 300 s (all refuted): {convictions}");
    // Every member has been heard from often enough to be rated.
    let rated = (1..20).filter(|i| sim.node(ids[0]).and_then(|n| n.phi(&format!("n{i}"), sim.now())).is_some()).count();
    assert_eq!(rated, 19);
    sim.crash(ids[7]);
    let ok = sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), |s| {
        s.count_seeing_gone("n7") == s.up_ids().len()
    });
    assert!(ok, "every survivor declared n7 dead");
    let deaths = dead_declarations(&sim.take_trace());
    assert!(deaths.iter().all(|(_, name)| name == "n7"), "live member declared dead: {deaths:?}");
}

#[test]
fn key_value_state_reaches_every_node_under_loss_and_a_restart_replaces_its_keys() {
    let (mut sim, ids) = cluster(31, 50, Config::lan(), NetConfig { loss: 0.1, ..NetConfig::default() });
    assert!(sim.run_until_cond(Duration::from_millis(250), Duration::from_secs(60), Sim::converged));
    for (w, &id) in ids.iter().enumerate().take(5) {
        let node = sim.node_mut(id).expect("node");
        for k in 0..20 {
            node.set(&format!("w{w}-k{k}"), vec![k as u8; 64]).expect("set");
        }
    }
    let all_have = |s: &Sim, keys: usize| {
        s.up_ids().iter().all(|&i| {
            s.node(i).is_some_and(|n| (0..5).map(|w| n.keys(&format!("n{w}")).count()).sum::<usize>() == keys)
        })
    };
    let start = sim.elapsed();
    assert!(sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(300), |s| all_have(s, 100)));
    eprintln!("100 keys of 5 writers on 50 nodes under 10% loss in {:?}", sim.elapsed() - start);
    let hash = sim.node(ids[0]).map(|n| n.state_digest_hash());
    assert!(sim.up_ids().iter().all(|&i| sim.node(i).map(|n| n.state_digest_hash()) == hash));
    // n3 restarts (new generation) and writes one key: its 20 old keys go everywhere.
    sim.restart(ids[3]);
    sim.node_mut(ids[3]).expect("restarted").set("fresh", vec![1]).expect("set");
    assert!(sim.run_until_cond(Duration::from_millis(500), Duration::from_secs(300), |s| {
        s.up_ids().iter().all(|&i| {
            s.node(i).is_some_and(|n| n.keys("n3").map(|(k, _, _)| k.to_owned()).collect::<Vec<_>>() == ["fresh"])
        })
    }));
}
