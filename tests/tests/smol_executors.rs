//! gossip-smol nodes driven from smol's and async-std's executors, waiting with async-io
//! timers and reading the event streams as `futures::Stream`s.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use gossip_core::Event;
use gossip_smol::{Builder, EventStream, Handle, SmolRuntime};
use gossip_tests::fast_config;

/// Waits on `events` for `MemberUp` of each of `names`, bounded by `timeout`.
async fn await_members_up(events: &mut EventStream, names: &[&str], timeout: Duration) -> bool {
    let mut missing: Vec<&str> = names.to_vec();
    let deadline = FutureExt::fuse(async_io::Timer::after(timeout));
    futures::pin_mut!(deadline);
    while !missing.is_empty() {
        futures::select! {
            item = events.next().fuse() => match item {
                Some(Ok(Event::MemberUp(m))) => missing.retain(|n| *n != m.name),
                Some(_) => {}
                None => return false,
            },
            _ = deadline => return false,
        }
    }
    true
}

async fn three_node_cluster(runtime: SmolRuntime) {
    let build = |name: &str, seeds: Vec<std::net::SocketAddr>| {
        Builder::with_runtime(fast_config(), runtime.clone()).name(name).seeds(seeds).spawn().expect("node starts")
    };
    let (a, _a_events): (Handle, EventStream) = build("a", vec![]);
    let (b, _b_events) = build("b", vec![a.local_addr()]);
    let (c, mut c_events) = build("c", vec![b.local_addr()]);
    assert!(await_members_up(&mut c_events, &["a", "b"], Duration::from_secs(10)).await, "c did not see a and b");
    // c sees a and b; wait until a and b see c too.
    let mut waited = Duration::ZERO;
    while !(a.member("c").is_some() && b.member("c").is_some()) {
        assert!(waited < Duration::from_secs(10), "a and b did not see c");
        async_io::Timer::after(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    c.broadcast(b"ping".to_vec()).expect("broadcast");
    let mut a_events = a.subscribe();
    c.shutdown().await;
    assert!(!c.is_running());
    // The stream of a stopped node ends.
    let rest: Vec<_> = c_events.collect().await;
    assert!(rest.iter().all(Result::is_ok));
    let left = async {
        while let Some(item) = a_events.next().await {
            if let Ok(Event::MemberLeft(m)) = item {
                return m.name == "c";
            }
        }
        false
    };
    let timeout = FutureExt::map(async_io::Timer::after(Duration::from_secs(10)), |_| false);
    assert!(futures::future::select(Box::pin(left), Box::pin(timeout)).await.factor_first().0, "a did not see c leave");
    b.shutdown().await;
    a.shutdown().await;
}

#[test]
fn smol_nodes_under_smol_block_on() {
    smol::block_on(three_node_cluster(SmolRuntime::default()));
}

#[test]
fn smol_nodes_under_async_std_block_on() {
    async_std::task::block_on(three_node_cluster(SmolRuntime::default()));
}

#[test]
fn smol_nodes_spawned_on_async_std_executor() {
    let runtime = SmolRuntime::with_spawner(|driver| {
        async_std::task::spawn(driver);
    });
    async_std::task::block_on(three_node_cluster(runtime));
}

#[test]
fn driver_future_from_build_runs_on_any_executor() {
    async_std::task::block_on(async {
        let (a, _, a_driver) = Builder::new(fast_config()).name("a").build().expect("build");
        let (b, mut b_events, b_driver) =
            Builder::new(fast_config()).name("b").seeds([a.local_addr()]).build().expect("build");
        let a_task = async_std::task::spawn(a_driver);
        let b_task = async_std::task::spawn(b_driver);
        assert!(await_members_up(&mut b_events, &["a"], Duration::from_secs(10)).await);
        a.abort();
        a_task.await;
        b.shutdown().await;
        b_task.await;
    });
}
