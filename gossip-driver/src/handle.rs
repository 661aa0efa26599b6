//! The cloneable handle applications hold to command and inspect a running node.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use gossip_core::{MemberRecord, Metrics};

use crate::driver::{IoMetrics, Phase, Shared};
use crate::error::DriverError;
use crate::events::{EventStream, Subscriber};

/// A member as seen over UDP.
pub type Member = MemberRecord<SocketAddr>;

/// Dropping the last handle leaves the cluster gracefully.
#[derive(Debug)]
struct Guard {
    shared: Arc<Shared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        if st.phase == Phase::Running {
            tracing::debug!(name = %self.shared.name, "last handle dropped; leaving");
            let _ = st.begin_leave(Instant::now());
        }
    }
}

/// A cloneable handle to a running node.
///
/// Commands take effect at once (the driver is woken to send what they queue); views are
/// snapshots of the node's current state. When every clone is dropped the node leaves the
/// cluster gracefully and stops.
///
/// More operations (CRDTs, aggregates) join these as the core grows.
#[derive(Clone)]
pub struct Handle {
    guard: Arc<Guard>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("name", &self.guard.shared.name)
            .field("local_addr", &self.guard.shared.local_addr)
            .field("generation", &self.guard.shared.generation)
            .finish()
    }
}

impl Handle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Handle { guard: Arc::new(Guard { shared }) }
    }

    fn shared(&self) -> &Shared {
        &self.guard.shared
    }

    /// Runs a command on the running node with the current time, then wakes the driver.
    fn command<T>(
        &self,
        f: impl FnOnce(&mut gossip_core::Node<SocketAddr>, Instant) -> Result<T, DriverError>,
    ) -> Result<T, DriverError> {
        let mut st = self.shared().lock();
        match st.phase {
            Phase::Running => {}
            // Still gossiping its leave, but no longer a member: refused as the core would.
            Phase::Leaving { .. } => return Err(gossip_core::CommandError::Left.into()),
            Phase::Stopped => return Err(DriverError::Stopped),
        }
        let now = Instant::now();
        let r = f(&mut st.node, now);
        st.wake_driver();
        r
    }

    // ----- commands ---------------------------------------------------------------------

    /// Joins a cluster through `seeds` (retried with backoff until one answers; an
    /// [`Event::Joined`](gossip_core::Event::Joined) follows). Seeds can also be given to the
    /// builder.
    pub fn join(&self, seeds: impl IntoIterator<Item = SocketAddr>) -> Result<(), DriverError> {
        let seeds: Vec<SocketAddr> = seeds.into_iter().collect();
        self.command(|node, now| {
            if node.has_left() {
                return Err(gossip_core::CommandError::Left.into());
            }
            node.join(now, seeds);
            Ok(())
        })
    }

    /// Leaves the cluster gracefully: announces the leave, keeps gossiping for the linger
    /// (three gossip intervals by default) so the news spreads, then stops. Returns at once;
    /// await [`stopped`](Handle::stopped) to know when the node is gone, or use
    /// [`shutdown`](Handle::shutdown) to do both. Once left, commands (a second `leave`
    /// too) return [`DriverError::Command`]`(`[`CommandError::Left`](gossip_core::CommandError::Left)`)`
    /// while the node lingers, and [`DriverError::Stopped`] after.
    pub fn leave(&self) -> Result<(), DriverError> {
        let mut st = self.shared().lock();
        if st.phase == Phase::Stopped {
            return Err(DriverError::Stopped);
        }
        st.begin_leave(Instant::now()).map_err(DriverError::from)
    }

    /// Leaves gracefully (unless already leaving) and waits until the driver has stopped.
    pub async fn shutdown(&self) {
        let _ = self.leave();
        self.stopped().await;
    }

    /// Stops the node at once, without telling anyone: the rest of the cluster sees a crash
    /// and its failure detector removes the node. For tests and failure drills.
    pub fn abort(&self) {
        let mut st = self.shared().lock();
        st.abort = true;
        st.wake_driver();
    }

    /// Sends `payload` to every member; each receives it once as an
    /// [`Event::Broadcast`](gossip_core::Event::Broadcast). Returns the broadcast id. The
    /// payload must fit in one packet ([`max_broadcast_payload`](Handle::max_broadcast_payload)).
    pub fn broadcast(&self, payload: impl Into<Vec<u8>>) -> Result<u64, DriverError> {
        let payload = payload.into();
        self.command(|node, now| node.broadcast(now, payload).map_err(DriverError::from))
    }

    /// Sets one of this node's keys, replicated to every member by anti-entropy (members see
    /// [`Event::KeyChanged`](gossip_core::Event::KeyChanged)); returns the version written.
    pub fn set(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<u64, DriverError> {
        let value = value.into();
        self.command(|node, _| node.set(key, value).map_err(DriverError::from))
    }

    /// Deletes one of this node's keys; returns the deletion's version, or `None` if the key
    /// was not set.
    pub fn delete(&self, key: &str) -> Result<Option<u64>, DriverError> {
        self.command(|node, now| node.delete(now, key).map_err(DriverError::from))
    }

    /// Member `node`'s value of `key` as this node knows it, with its version.
    pub fn get(&self, node: &str, key: &str) -> Option<(Vec<u8>, u64)> {
        self.shared().lock().node.get(node, key).map(|(v, version)| (v.to_vec(), version))
    }

    /// Member `node`'s keys as this node knows them: (key, value, version), in key order.
    pub fn keys(&self, node: &str) -> Vec<(String, Vec<u8>, u64)> {
        self.shared().lock().node.keys(node).map(|(k, v, version)| (k.to_owned(), v.to_vec(), version)).collect()
    }

    /// Updates the replicated CRDT object `name` (created empty if new): `mutate` gets the
    /// current state and this node's replica id and returns a delta, which is joined here and
    /// spread to every member (members see
    /// [`Event::CrdtChanged`](gossip_core::Event::CrdtChanged)). Returns the delta.
    ///
    /// ```no_run
    /// # fn f(handle: gossip_driver::Handle) -> Result<(), gossip_driver::DriverError> {
    /// use gossip_core::crdt::PnCounter;
    /// handle.update_crdt::<PnCounter>("requests", |c, me| c.increment(me, 1))?;
    /// let total = handle.crdt::<PnCounter>("requests").map(|c| c.value());
    /// # Ok(()) }
    /// ```
    pub fn update_crdt<T: gossip_core::crdt::Crdt>(
        &self,
        name: &str,
        mutate: impl FnOnce(&T, gossip_core::crdt::ReplicaId) -> T,
    ) -> Result<T, DriverError> {
        self.command(|node, _| node.update_crdt(name, mutate).map_err(DriverError::from))
    }

    /// A copy of the CRDT object `name` as this node holds it, if it is a `T`.
    pub fn crdt<T: gossip_core::crdt::Crdt>(&self, name: &str) -> Option<T> {
        self.shared().lock().node.crdt::<T>(name).cloned()
    }

    /// The CRDT objects this node holds: (name, type).
    pub fn crdt_objects(&self) -> Vec<(String, gossip_core::crdt::CrdtKind)> {
        self.shared().lock().node.crdt_objects().map(|(n, k)| (n.to_owned(), k)).collect()
    }

    /// Sets this node's value in the push-sum aggregate `name` (`None`: stop contributing).
    pub fn set_aggregate_value(&self, name: &str, value: Option<f64>) -> Result<(), DriverError> {
        self.command(|node, _| node.set_aggregate_value(name, value).map_err(DriverError::from))
    }

    /// This node's estimate of aggregate `name`: sum, count and average over the members
    /// that contribute.
    pub fn aggregate(&self, name: &str) -> Option<gossip_core::aggregate::AggregateEstimate> {
        self.shared().lock().node.aggregate(name)
    }

    /// Installs a key in the node's keyring (it opens sealed datagrams; a node without a
    /// keyring starts one in `SealMode::Open`). See `gossip_core::wire::security` for the
    /// rotation steps.
    pub fn install_key(&self, key: gossip_core::wire::security::Key) -> Result<(), DriverError> {
        self.command(|node, _| node.install_key(key).map_err(DriverError::from))
    }

    /// Makes installed key `id` the one that seals.
    pub fn use_key(&self, id: &str) -> Result<(), DriverError> {
        self.command(|node, _| node.use_key(id).map_err(DriverError::from))
    }

    /// Removes key `id` (not the primary one).
    pub fn remove_key(&self, id: &str) -> Result<(), DriverError> {
        self.command(|node, _| node.remove_key(id).map_err(DriverError::from))
    }

    /// Sets whether the node only opens, also seals, or requires sealed datagrams.
    pub fn set_seal_mode(&self, mode: gossip_core::wire::security::SealMode) -> Result<(), DriverError> {
        self.command(|node, _| node.set_seal_mode(mode).map_err(DriverError::from))
    }

    /// The installed key ids (primary first) and the seal mode; `None` without a keyring.
    pub fn keyring(&self) -> Option<(Vec<String>, gossip_core::wire::security::SealMode)> {
        self.shared().lock().node.keyring()
    }

    /// A new stream of this node's events from now on, with its own queue.
    pub fn subscribe(&self) -> EventStream {
        let mut st = self.shared().lock();
        let sub = Subscriber::new(st.event_capacity);
        if st.phase == Phase::Stopped {
            sub.close();
        } else {
            // Streams dropped since the last event would otherwise wait for one to be pruned.
            st.subscribers.retain(|s| !s.is_dropped());
            st.subscribers.push(sub.clone());
        }
        EventStream::new(sub)
    }

    /// Completes when the node's driver has stopped.
    pub fn stopped(&self) -> Stopped {
        Stopped { shared: self.guard.shared.clone(), slot: None }
    }

    // ----- views ------------------------------------------------------------------------

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// The generation of this life of the node.
    pub fn generation(&self) -> u64 {
        self.shared().generation
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared().local_addr
    }

    /// Live members (alive or suspect), excluding this node.
    pub fn members(&self) -> Vec<Member> {
        self.shared().lock().node.members()
    }

    /// Every member known, including dead and left ones not yet forgotten.
    pub fn all_members(&self) -> Vec<Member> {
        self.shared().lock().node.all_members()
    }

    /// What this node believes of one member.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.shared().lock().node.member(name)
    }

    /// This node's own record as it announces it.
    pub fn self_record(&self) -> Member {
        self.shared().lock().node.self_record()
    }

    /// Order-independent hash of the live membership as this node sees it (itself included):
    /// equal on two nodes that agree.
    pub fn membership_digest(&self) -> u64 {
        self.shared().lock().node.membership_digest()
    }

    /// A snapshot of the protocol counters.
    pub fn metrics(&self) -> Metrics {
        self.shared().lock().node.metrics()
    }

    /// A snapshot of the driver's socket counters.
    pub fn io_metrics(&self) -> IoMetrics {
        self.shared().lock().io.clone()
    }

    /// Largest payload [`broadcast`](Handle::broadcast) accepts.
    pub fn max_broadcast_payload(&self) -> usize {
        self.shared().lock().node.max_broadcast_payload()
    }

    /// Whether the node has left the cluster (it may still be lingering).
    pub fn has_left(&self) -> bool {
        self.shared().lock().node.has_left()
    }

    /// Whether the driver is still running (possibly lingering after a leave).
    pub fn is_running(&self) -> bool {
        self.shared().lock().phase != Phase::Stopped
    }
}

/// Future returned by [`Handle::stopped`]: completes when the node's driver has stopped.
///
/// While pending it keeps one waker in the node's shared state; dropping it takes that waker
/// out again, so futures made and dropped in a loop (a `select!` with a timeout, say) leave
/// nothing behind.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Stopped {
    shared: Arc<Shared>,
    /// This future's place among the stop wakers, once it has been polled while pending.
    slot: Option<u64>,
}

impl Future for Stopped {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut st = this.shared.lock();
        if st.phase == Phase::Stopped {
            this.slot = None;
            return Poll::Ready(());
        }
        let slot = *this.slot.get_or_insert_with(|| {
            let slot = st.next_stop_slot;
            st.next_stop_slot += 1;
            slot
        });
        match st.stop_wakers.get(&slot) {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => {
                st.stop_wakers.insert(slot, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.shared.lock().stop_wakers.remove(&slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use gossip_core::{Config, Identity, Node};

    use super::*;
    use crate::driver::{IoMetrics, Phase, Shared, State};

    /// A waker of its own (so `will_wake` tells it from any other) that counts its wakes.
    #[derive(Default)]
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn handle() -> Handle {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 7946));
        let now = Instant::now();
        let identity = Identity { name: "a".into(), addr, generation: 1 };
        let node = Node::new(Config::local(), identity, 1, now).expect("a valid configuration");
        let state = State {
            node,
            phase: Phase::Running,
            abort: false,
            linger: Duration::ZERO,
            driver_waker: None,
            stop_wakers: Default::default(),
            next_stop_slot: 0,
            subscribers: Vec::new(),
            event_capacity: 8,
            io: IoMetrics::default(),
        };
        Handle::new(Shared::new(state, addr, "a".into(), 1))
    }

    fn poll(stopped: &mut Stopped, waker: &Arc<CountingWaker>) -> Poll<()> {
        let waker = Waker::from(waker.clone());
        Pin::new(stopped).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn dropped_stopped_futures_leave_no_waker_behind() {
        let handle = handle();
        for _ in 0..1_000 {
            let mut stopped = handle.stopped();
            assert_eq!(poll(&mut stopped, &Arc::default()), Poll::Pending);
        }
        assert!(handle.shared().lock().stop_wakers.is_empty());
    }

    #[test]
    fn a_pending_stopped_future_keeps_one_waker_and_is_woken_at_the_stop() {
        let handle = handle();
        let (first, second) = (Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default()));
        let mut stopped = handle.stopped();
        let mut dropped = handle.stopped();
        for waker in [&first, &first, &second] {
            assert_eq!(poll(&mut stopped, waker), Poll::Pending);
        }
        assert_eq!(poll(&mut dropped, &first), Poll::Pending);
        drop(dropped);
        assert_eq!(handle.shared().lock().stop_wakers.len(), 1, "one waker, the newest");
        handle.shared().lock().finish();
        assert_eq!(second.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(first.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(poll(&mut stopped, &second), Poll::Ready(()));
        assert!(handle.shared().lock().stop_wakers.is_empty());
    }
}
