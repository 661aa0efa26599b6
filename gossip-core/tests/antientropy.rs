//! Property tests of the anti-entropy store: whatever the interleaving of writes, deletes,
//! tombstone collection and partial exchanges, stores that finally exchange everything agree
//! with each owner's own state, and nothing deleted comes back.

use std::time::{Duration, Instant};

use gossip_core::antientropy::{KvLimits, KvStore};
use proptest::prelude::*;

const GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Op {
    Set {
        node: usize,
        key: u8,
        len: usize,
    },
    Delete {
        node: usize,
        key: u8,
    },
    /// One direction of an exchange, `from` answering `to`'s digest with up to `pages`
    /// messages of `budget` bytes; the messages whose bit is set in `lost` are lost, and the
    /// others may arrive in reverse order.
    Push {
        from: usize,
        to: usize,
        budget: usize,
        pages: usize,
        lost: u8,
        reversed: bool,
        salt: u64,
    },
    /// Time passes and everyone collects expired tombstones.
    Wait {
        secs: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..8u8, 0..60usize).prop_map(|(node, key, len)| Op::Set { node, key, len }),
        2 => (0..3usize, 0..8u8).prop_map(|(node, key)| Op::Delete { node, key }),
        4 => (0..3usize, 0..3usize, 40..400usize, 1..5usize, any::<u8>(), any::<bool>(), any::<u64>())
            .prop_map(|(from, to, budget, pages, lost, reversed, salt)| Op::Push {
                from,
                to,
                budget,
                pages,
                lost: lost & 0b1010, // some of the time
                reversed,
                salt
            }),
        1 => (1..15u64).prop_map(|secs| Op::Wait { secs }),
    ]
}

fn visible(store: &KvStore, node: &str) -> Vec<(String, Vec<u8>)> {
    store.entries(node).map(|(k, v, _)| (k.to_owned(), v.to_vec())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn stores_converge_to_each_owners_state_without_resurrection(ops in proptest::collection::vec(op(), 1..120)) {
        let names = ["a", "b", "c"];
        let mut now = Instant::now();
        let mut stores: Vec<KvStore> =
            names.iter().map(|n| KvStore::new(n, 1, KvLimits::default(), GRACE)).collect();
        for op in ops {
            match op {
                Op::Set { node, key, len } => {
                    stores[node].set(&format!("k{key}"), vec![key; len]).expect("within limits");
                }
                Op::Delete { node, key } => {
                    stores[node].delete(now, &format!("k{key}")).expect("valid key");
                }
                Op::Push { from, to, budget, pages, lost, reversed, salt } => {
                    if from != to {
                        let (mut messages, _) =
                            stores[from].delta_pages(&stores[to].digest(), "", None, budget, pages, salt);
                        prop_assert!(messages.len() <= pages);
                        for d in messages.iter().flatten() {
                            // Never skipped: consecutive, increasing versions after `after`.
                            let versions: Vec<u64> = d.updates.iter().map(|u| u.version).collect();
                            prop_assert!(versions.windows(2).all(|w| w[0] < w[1]));
                            prop_assert!(versions.first().is_none_or(|&v| v > d.after));
                        }
                        if reversed {
                            messages.reverse();
                        }
                        for (i, deltas) in messages.into_iter().enumerate() {
                            if lost & (1 << i) == 0 {
                                stores[to].apply(now, deltas);
                            }
                        }
                    }
                }
                Op::Wait { secs } => {
                    now += Duration::from_secs(secs);
                    for s in &mut stores {
                        s.collect_tombstones(now);
                    }
                }
            }
            // Whatever anyone holds of a participant is never ahead of the participant itself.
            for (i, owner) in names.iter().enumerate() {
                let own = stores[i].digest().into_iter().find(|d| d.node == *owner).map(|d| d.max_version);
                for s in &stores {
                    let held = s.digest().into_iter().find(|d| d.node == *owner).map(|d| d.max_version);
                    prop_assert!(held <= own);
                }
            }
        }
        // Then everyone exchanges with everyone until nothing moves.
        for _ in 0..200 {
            let mut moved = false;
            for from in 0..3 {
                for to in 0..3 {
                    if from != to {
                        let deltas = stores[from].deltas_for(&stores[to].digest(), 200);
                        moved |= !deltas.is_empty();
                        stores[to].apply(now, deltas);
                    }
                }
            }
            if !moved {
                break;
            }
        }
        for (i, owner) in names.iter().enumerate() {
            let truth = visible(&stores[i], owner);
            for s in &stores {
                prop_assert_eq!(&visible(s, owner), &truth, "a replica of {}'s keys differs", owner);
            }
        }
        let digest = stores[0].digest();
        for s in &stores[1..] {
            let d = s.digest();
            prop_assert_eq!(
                d.iter().map(|p| (p.node.clone(), p.max_version)).collect::<Vec<_>>(),
                digest.iter().map(|p| (p.node.clone(), p.max_version)).collect::<Vec<_>>()
            );
        }
    }
}
