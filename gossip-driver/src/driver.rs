//! The driver loop: one future per node that owns the socket and the timer and feeds the core.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use gossip_core::{Node, Transmit};

use crate::events::Subscriber;
use crate::runtime::{AsyncTimer, AsyncUdpSocket};

/// Datagrams handled per wake-up before the driver yields to other tasks.
const RECV_BUDGET: usize = 256;
/// Consecutive receive errors after which receiving pauses briefly (a socket that fails on
/// every call must not turn the driver into a busy loop).
const RECV_ERROR_LIMIT: u32 = 64;
/// How long receiving pauses after `RECV_ERROR_LIMIT` consecutive errors.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Counters of the driver's own I/O, beside the core's [`gossip_core::Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IoMetrics {
    /// Datagrams received from the socket and handed to the core.
    pub datagrams_received: u64,
    /// Datagrams the core refused (undecodable, foreign cluster, ...); counted by reason in
    /// the core's metrics.
    pub datagrams_rejected: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Sends that failed (unreachable peer, message too large, ...) and were dropped.
    pub send_errors: u64,
    /// Receives that failed (an ICMP error reported on the socket, ...).
    pub recv_errors: u64,
    /// Times the driver woke up. Idle nodes wake only for their timers: a busy-looping
    /// driver would show here.
    pub wakeups: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Left the cluster; keeps gossiping the news until the deadline, then stops.
    Leaving {
        until: Instant,
    },
    Stopped,
}

/// Everything the handles and the driver share, behind one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub node: Node<SocketAddr>,
    pub phase: Phase,
    pub abort: bool,
    pub linger: Duration,
    pub driver_waker: Option<Waker>,
    /// The wakers of pending [`Stopped`](crate::Stopped) futures, by slot: a future that is
    /// dropped takes its waker out, so polling and dropping many leaves nothing behind.
    pub stop_wakers: BTreeMap<u64, Waker>,
    /// The slot the next pending `Stopped` future takes.
    pub next_stop_slot: u64,
    pub subscribers: Vec<Arc<Subscriber>>,
    pub event_capacity: usize,
    pub io: IoMetrics,
}

impl State {
    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = &self.driver_waker {
            w.wake_by_ref();
        }
    }

    /// Leaves the cluster (if not left yet) and schedules the stop after the linger.
    pub(crate) fn begin_leave(&mut self, now: Instant) -> Result<(), gossip_core::CommandError> {
        let result = self.node.leave(now);
        if self.phase == Phase::Running {
            // Alone: nothing to tell anyone beyond what is already queued.
            let linger = if self.node.live_count() == 0 { Duration::ZERO } else { self.linger };
            self.phase = Phase::Leaving { until: now + linger };
        }
        self.wake_driver();
        result
    }

    pub(crate) fn finish(&mut self) {
        if self.phase == Phase::Stopped {
            return;
        }
        self.phase = Phase::Stopped;
        for s in self.subscribers.drain(..) {
            s.close();
        }
        for w in std::mem::take(&mut self.stop_wakers).into_values() {
            w.wake();
        }
        self.driver_waker = None;
        tracing::debug!(name = %self.node.name(), "driver stopped");
    }
}

/// State shared by the driver and every handle, plus the node's fixed facts.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    pub local_addr: SocketAddr,
    pub name: String,
    pub generation: u64,
}

impl Shared {
    pub(crate) fn new(state: State, local_addr: SocketAddr, name: String, generation: u64) -> Arc<Self> {
        Arc::new(Shared { state: Mutex::new(state), local_addr, name, generation })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The future that runs one node: receives datagrams, fires the core's timers, sends what
/// the core wants sent and fans events out to the streams.
///
/// `Builder::spawn` runs it on the runtime; `Builder::build` hands it to you to spawn on an
/// executor of your choice. It completes when the node stops (a leave has lingered for its
/// time, a shutdown, or an abort). Dropping it stops the node at once, without a leave.
///
/// Each wake-up reads the clock once, handles every datagram that is ready (up to a budget,
/// then it yields), fires due timers, flushes the core's transmits, and sleeps until the
/// core's next deadline, the next datagram or the next command, whichever comes first.
#[derive(Debug)]
#[must_use = "the driver does nothing unless spawned or awaited"]
pub struct Driver {
    shared: Arc<Shared>,
    socket: Box<dyn AsyncUdpSocket>,
    timer: Box<dyn AsyncTimer>,
    timer_at: Option<Instant>,
    buf: Vec<u8>,
    unsent: Option<Transmit<SocketAddr>>,
    recv_errors_in_row: u32,
    recv_paused_until: Option<Instant>,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>, socket: Box<dyn AsyncUdpSocket>, timer: Box<dyn AsyncTimer>) -> Self {
        let size = shared.lock().node.config().max_inbound_size.saturating_add(1);
        Driver {
            shared,
            socket,
            timer,
            timer_at: None,
            buf: vec![0; size],
            unsent: None,
            recv_errors_in_row: 0,
            recv_paused_until: None,
        }
    }

    /// Receives and handles ready datagrams. Returns true if the budget ran out.
    fn receive(&mut self, st: &mut State, now: Instant, cx: &mut Context<'_>) -> bool {
        if let Some(until) = self.recv_paused_until {
            if now < until {
                return false;
            }
            self.recv_paused_until = None;
        }
        for _ in 0..RECV_BUDGET {
            match self.socket.poll_recv_from(cx, &mut self.buf) {
                Poll::Ready(Ok((len, from))) => {
                    self.recv_errors_in_row = 0;
                    st.io.datagrams_received += 1;
                    let bytes = self.buf.get(..len).unwrap_or(&self.buf);
                    if let Err(e) = st.node.handle_message(now, from, bytes) {
                        st.io.datagrams_rejected += 1;
                        tracing::debug!(name = %st.node.name(), %from, error = %e, "datagram rejected");
                    }
                }
                Poll::Ready(Err(e)) => {
                    st.io.recv_errors += 1;
                    self.recv_errors_in_row += 1;
                    log_io_error(st.node.name(), "receive", None, &e);
                    if self.recv_errors_in_row >= RECV_ERROR_LIMIT {
                        tracing::warn!(name = %st.node.name(), error = %e, "socket keeps failing; pausing receives");
                        self.recv_errors_in_row = 0;
                        self.recv_paused_until = Some(now + RECV_ERROR_PAUSE);
                        return false;
                    }
                }
                Poll::Pending => return false,
            }
        }
        true
    }

    /// Sends everything the core has queued, until the socket pushes back.
    fn flush(&mut self, st: &mut State, cx: &mut Context<'_>) {
        loop {
            let Some(t) = self.unsent.take().or_else(|| st.node.poll_transmit()) else { return };
            let sent = if t.reliable {
                self.socket.poll_send_reliable(cx, &t.contents, t.destination)
            } else {
                self.socket.poll_send_to(cx, &t.contents, t.destination)
            };
            match sent {
                Poll::Ready(Ok(_)) => st.io.datagrams_sent += 1,
                Poll::Ready(Err(e)) => {
                    st.io.send_errors += 1;
                    log_io_error(st.node.name(), "send", Some(t.destination), &e);
                }
                Poll::Pending => {
                    self.unsent = Some(t);
                    return;
                }
            }
        }
    }

    fn dispatch_events(st: &mut State) {
        while let Some(event) = st.node.poll_event() {
            st.subscribers.retain(|s| !s.is_dropped());
            for s in &st.subscribers {
                s.push(event.clone());
            }
        }
    }
}

fn log_io_error(name: &str, op: &str, peer: Option<SocketAddr>, e: &io::Error) {
    use io::ErrorKind::*;
    match e.kind() {
        // ICMP port/host unreachable reported on the socket: the peer is gone or not there
        // yet. The failure detector deals with it; nothing to do here.
        ConnectionRefused | ConnectionReset | HostUnreachable | NetworkUnreachable | Interrupted => {
            tracing::debug!(name, op, ?peer, error = %e, "peer unreachable; datagram dropped");
        }
        // A full send queue under load: dropped like any lost datagram, and counted.
        WouldBlock => tracing::debug!(name, op, ?peer, error = %e, "send queue full; datagram dropped"),
        _ => tracing::warn!(name, op, ?peer, error = %e, "socket error; datagram dropped"),
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut st = shared.lock();
        if st.abort || st.phase == Phase::Stopped {
            st.finish();
            return Poll::Ready(());
        }
        // The one clock reading of this wake-up, taken under the lock so that every `now`
        // the core sees (here or from a handle) is monotonic.
        let now = Instant::now();
        st.io.wakeups += 1;
        match &st.driver_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.driver_waker = Some(cx.waker().clone()),
        }

        let mut again = this.receive(&mut st, now, cx);
        st.node.poll_timer(now);
        this.flush(&mut st, cx);
        Self::dispatch_events(&mut st);

        if let Phase::Leaving { until } = st.phase {
            if now >= until {
                // A socket still pushing back after the linger must not keep us alive.
                this.unsent = None;
                st.finish();
                return Poll::Ready(());
            }
        }

        let mut next = st.node.next_deadline();
        if let Phase::Leaving { until } = st.phase {
            next = Some(next.map_or(until, |n| n.min(until)));
        }
        if let Some(p) = this.recv_paused_until {
            next = Some(next.map_or(p, |n| n.min(p)));
        }
        if let Some(mut at) = next {
            if at <= now && !again {
                // The core fired everything due by `now`; a deadline still in the past would
                // spin. Never busy-loop: retry a millisecond later.
                tracing::debug!(name = %st.node.name(), "core deadline not in the future; deferring 1 ms");
                at = now + Duration::from_millis(1);
            }
            if this.timer_at != Some(at) {
                this.timer.reset(at);
                this.timer_at = Some(at);
            }
            if this.timer.poll(cx).is_ready() {
                again = true;
            }
        }
        drop(st);
        if again {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shared.lock().finish();
    }
}
