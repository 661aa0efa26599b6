//! CRDT merge throughput: joining one fresh delta (what a rumor carries) into a replica that
//! already holds 1,000 replicas' counts or 1,000 elements, and joining two whole states.
//! The encoded size of each delta is printed once.
//!
//! Run with `cargo bench -p gossip-core --bench crdt`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gossip_core::crdt::{AwSet, Crdt, GCounter, LwwRegister, MvRegister, PnCounter, ReplicaId};

const SIZE: u64 = 1_000;

fn size_of<T: Crdt>(x: &T) -> usize {
    postcard::to_allocvec(x).map_or(0, |b| b.len())
}

/// A state built by `SIZE` replicas' updates, and one more replica's fresh delta.
fn fixture<T: Crdt>(update: impl Fn(&T, ReplicaId, u64) -> T) -> (T, T) {
    let mut state = T::default();
    for r in 0..SIZE {
        let d = update(&state, ReplicaId(r), r);
        state.join(&d);
    }
    let delta = update(&state, ReplicaId(SIZE + 1), SIZE + 1);
    (state, delta)
}

fn bench_type<T: Crdt>(c: &mut Criterion, name: &str, update: impl Fn(&T, ReplicaId, u64) -> T) {
    let (state, delta) = fixture(update);
    eprintln!("{name}: delta {} bytes, state of {SIZE} {} bytes", size_of(&delta), size_of(&state));
    let mut group = c.benchmark_group("crdt_merge");
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{name}/delta_into_{SIZE}"), |b| {
        b.iter_batched_ref(|| state.clone(), |s| black_box(s.join(black_box(&delta))), criterion::BatchSize::SmallInput)
    });
    group.bench_function(format!("{name}/state_into_state_{SIZE}"), |b| {
        b.iter_batched_ref(
            || (T::default(), state.clone()),
            |(s, full)| black_box(s.join(black_box(full))),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_type::<GCounter>(c, "gcounter", |s, r, _| s.increment(r, 1));
    bench_type::<PnCounter>(c, "pncounter", |s, r, i| if i % 2 == 0 { s.increment(r, 3) } else { s.decrement(r, 1) });
    bench_type::<LwwRegister>(c, "lww_register", |s, r, i| s.set(r, i.to_le_bytes().to_vec()));
    bench_type::<MvRegister>(c, "mv_register", |s, r, i| s.set(r, i.to_le_bytes().to_vec()));
    bench_type::<AwSet>(c, "aw_set", |s, r, i| {
        if i % 4 == 3 {
            s.remove(&(i - 1).to_le_bytes())
        } else {
            s.add(r, i.to_le_bytes().to_vec())
        }
    });
}

criterion_group!(crdt, benches);
criterion_main!(crdt);
