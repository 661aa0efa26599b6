//! Property tests of the CRDT laws for every built-in: join is commutative, associative and
//! idempotent (and says whether it changed anything, and which parts did); joining the deltas gives the same state as joining the full states; a state
//! split into pieces joins back to itself; every reachable state is well formed and survives
//! the wire.

use gossip_core::crdt::{AwSet, Crdt, GCounter, LwwRegister, MvRegister, PnCounter, ReplicaId};
use proptest::prelude::*;

/// A random mutation per type, from two small numbers.
trait Mutate: Crdt {
    fn mutate(&self, replica: ReplicaId, op: u8, arg: u8) -> Self;
}

impl Mutate for GCounter {
    fn mutate(&self, replica: ReplicaId, _: u8, arg: u8) -> Self {
        self.increment(replica, u64::from(arg))
    }
}

impl Mutate for PnCounter {
    fn mutate(&self, replica: ReplicaId, op: u8, arg: u8) -> Self {
        if op % 2 == 0 {
            self.increment(replica, u64::from(arg))
        } else {
            self.decrement(replica, u64::from(arg))
        }
    }
}

impl Mutate for LwwRegister {
    fn mutate(&self, replica: ReplicaId, _: u8, arg: u8) -> Self {
        self.set(replica, vec![arg])
    }
}

impl Mutate for MvRegister {
    fn mutate(&self, replica: ReplicaId, _: u8, arg: u8) -> Self {
        self.set(replica, vec![arg])
    }
}

impl Mutate for AwSet {
    fn mutate(&self, replica: ReplicaId, op: u8, arg: u8) -> Self {
        if op % 3 == 0 {
            self.remove(&[arg % 5])
        } else {
            self.add(replica, vec![arg % 5])
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Replica `at` mutates its state.
    Mutate { at: usize, op: u8, arg: u8 },
    /// Replica `to` joins the state of `from`.
    Sync { from: usize, to: usize },
    /// Replica `to` joins only a piece of `from`'s split state.
    SyncPiece { from: usize, to: usize, budget: usize, piece: usize },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        3 => (0..3usize, any::<u8>(), any::<u8>()).prop_map(|(at, op, arg)| Step::Mutate { at, op, arg }),
        1 => (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Sync { from, to }),
        1 => (0..3usize, 0..3usize, 8..64usize, 0..8usize)
            .prop_map(|(from, to, budget, piece)| Step::SyncPiece { from, to, budget, piece }),
    ];
    proptest::collection::vec(step, 0..60)
}

/// Runs the steps on three replicas; returns their states and every delta produced.
fn run<T: Mutate>(steps: &[Step]) -> ([T; 3], Vec<T>) {
    let mut states: [T; 3] = Default::default();
    let mut deltas = Vec::new();
    for step in steps {
        match *step {
            Step::Mutate { at, op, arg } => {
                let delta = states[at].mutate(ReplicaId(at as u64 + 1), op, arg);
                states[at].join(&delta);
                deltas.push(delta);
            }
            Step::Sync { from, to } => {
                let s = states[from].clone();
                states[to].join(&s);
            }
            Step::SyncPiece { from, to, budget, piece } => {
                let pieces = states[from].split(budget);
                if let Some(p) = pieces.get(piece % pieces.len().max(1)) {
                    states[to].join(p);
                }
            }
        }
    }
    (states, deltas)
}

fn joined<T: Crdt>(a: &T, b: &T) -> T {
    let mut x = a.clone();
    x.join(b);
    x
}

fn check_laws<T: Mutate>(steps: &[Step], budget: usize) -> Result<(), TestCaseError> {
    let ([a, b, c], deltas) = run::<T>(steps);
    prop_assert_eq!(joined(&a, &b), joined(&b, &a), "commutative");
    prop_assert_eq!(joined(&joined(&a, &b), &c), joined(&a, &joined(&b, &c)), "associative");
    prop_assert_eq!(joined(&a, &a), a.clone(), "idempotent");
    for (x, y) in [(&a, &b), (&b, &c)] {
        let (xb, yb, xh, yh) = (x.buckets(7), y.buckets(7), x.bucket_hashes(7), y.bucket_hashes(7));
        for i in 0..7 {
            if xb[i] == yb[i] {
                prop_assert_eq!(xh[i], yh[i], "equal buckets, equal hashes");
            }
        }
    }
    for (x, y) in [(&a, &b), (&b, &c), (&a, &a)] {
        let mut z = x.clone();
        let changed = z.join(y);
        prop_assert_eq!(changed, &z != x, "join says whether it changed the state");
        // join_news: the same state as join, and news that carry exactly the change.
        let mut w = x.clone();
        let news = w.join_news(y);
        prop_assert_eq!(&w, &z, "join_news joins like join");
        prop_assert_eq!(news.is_some(), changed, "join_news has news iff the state changed");
        if let Some(news) = news {
            prop_assert_eq!(joined(x, &news), z.clone(), "the news bring x to the join");
            prop_assert_eq!(joined(y, &news), y.clone(), "the news are part of y");
        }
    }
    // Every state is the join of the deltas it has seen: all deltas joined equal all states
    // joined.
    let mut from_deltas = T::default();
    for d in &deltas {
        from_deltas.join(d);
    }
    prop_assert_eq!(&from_deltas, &joined(&joined(&a, &b), &c), "deltas vs full states");
    for s in [&a, &b, &c] {
        prop_assert!(s.is_well_formed());
        let mut back = T::default();
        for piece in s.split(budget) {
            prop_assert!(piece.is_well_formed());
            back.join(&piece);
        }
        prop_assert_eq!(&back, s, "split pieces join back");
        let buckets = s.buckets(7);
        prop_assert_eq!(buckets.len(), 7);
        let mut back = T::default();
        for bucket in &buckets {
            prop_assert!(bucket.is_well_formed());
            back.join(bucket);
        }
        prop_assert_eq!(&back, s, "buckets join back");
        prop_assert_eq!(
            s.some_buckets(7, &[5, 1, 9, 3]),
            vec![buckets[5].clone(), buckets[1].clone(), buckets[3].clone()]
        );
        let hashes = s.bucket_hashes(7);
        prop_assert_eq!(hashes.len(), 7);
        for (i, bucket) in buckets.iter().enumerate() {
            // A bucket hashes alike alone and within the state, so equal buckets of two
            // replicas hash alike.
            prop_assert_eq!(bucket.bucket_hashes(7)[i], hashes[i], "bucket hash");
        }
        let bytes = postcard::to_allocvec(s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let decoded: T = postcard::from_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded, s);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn gcounter_is_a_semilattice(steps in steps(), budget in 8..200usize) {
        check_laws::<GCounter>(&steps, budget)?;
    }

    #[test]
    fn pncounter_is_a_semilattice(steps in steps(), budget in 8..200usize) {
        check_laws::<PnCounter>(&steps, budget)?;
    }

    #[test]
    fn lww_register_is_a_semilattice(steps in steps(), budget in 8..200usize) {
        check_laws::<LwwRegister>(&steps, budget)?;
    }

    #[test]
    fn mv_register_is_a_semilattice(steps in steps(), budget in 8..200usize) {
        check_laws::<MvRegister>(&steps, budget)?;
    }

    #[test]
    fn aw_set_is_a_semilattice(steps in steps(), budget in 8..200usize) {
        check_laws::<AwSet>(&steps, budget)?;
    }

    /// The counters count exactly: after everyone joins everyone, the value is the sum of
    /// what was added (and subtracted).
    #[test]
    fn pncounter_counts_exactly(ops in proptest::collection::vec((0..3usize, any::<bool>(), 0..1000u64), 0..50)) {
        let mut states: [PnCounter; 3] = Default::default();
        let mut expected = 0i128;
        for (at, up, by) in ops {
            let r = ReplicaId(at as u64);
            let delta = if up { states[at].increment(r, by) } else { states[at].decrement(r, by) };
            expected += if up { by as i128 } else { -(by as i128) };
            states[at].join(&delta);
        }
        let all = joined(&joined(&states[0], &states[1]), &states[2]);
        prop_assert_eq!(all.value(), expected);
    }
}

#[test]
fn a_remove_does_not_take_an_add_it_did_not_see() {
    let (x_id, y_id) = (ReplicaId(1), ReplicaId(2));
    let (mut x, mut y) = (AwSet::default(), AwSet::default());
    x.join(&x.add(x_id, b"e".to_vec()));
    y.join(&x);
    // Concurrently: x removes e, y adds e again.
    let remove = x.remove(b"e");
    let add = y.add(y_id, b"e".to_vec());
    x.join(&remove);
    y.join(&add);
    assert!(!x.contains(b"e"));
    x.join(&y);
    y.join(&remove);
    assert!(x.contains(b"e") && y.contains(b"e"), "add wins");
    assert_eq!(x, y);
    // A remove that saw both adds takes the element away everywhere.
    let remove_all = x.remove(b"e");
    x.join(&remove_all);
    y.join(&remove_all);
    assert!(!x.contains(b"e") && !y.contains(b"e"));
}

#[test]
fn concurrent_register_writes_resolve_the_same_everywhere() {
    let (mut x, mut y) = (LwwRegister::default(), LwwRegister::default());
    x.join(&x.set(ReplicaId(1), b"x".to_vec()));
    y.join(&y.set(ReplicaId(2), b"y".to_vec()));
    let (xs, ys) = (x.clone(), y.clone());
    x.join(&ys);
    y.join(&xs);
    assert_eq!(x, y);
    assert_eq!(x.value(), Some(&b"y"[..]), "same counter: the higher replica id wins");
    // A write that saw the other wins whatever the ids.
    x.join(&x.set(ReplicaId(1), b"later".to_vec()));
    y.join(&x);
    assert_eq!(y.value(), Some(&b"later"[..]));
}
