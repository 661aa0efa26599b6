//! The event stream: one bounded queue per subscriber, lag reported instead of hidden.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use crate::error::Lagged;

/// An event of a node driven over UDP.
pub type Event = gossip_core::Event<SocketAddr>;

/// What an [`EventStream`] yields: an event, or how many events were lost because the
/// consumer fell behind.
pub type EventItem = Result<Event, Lagged>;

#[derive(Debug)]
struct Queue {
    events: VecDeque<Event>,
    capacity: usize,
    lagged: u64,
    /// The driver stopped: no more events will come.
    closed: bool,
    /// The stream was dropped: the driver may forget this subscriber.
    dropped: bool,
    waker: Option<Waker>,
}

/// The driver's side of one subscription.
#[derive(Debug)]
pub(crate) struct Subscriber {
    queue: Mutex<Queue>,
}

impl Subscriber {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Subscriber {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                capacity: capacity.max(1),
                lagged: 0,
                closed: false,
                dropped: false,
                waker: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `event`; when the queue is full the oldest event is dropped and counted.
    pub(crate) fn push(&self, event: Event) {
        let mut q = self.lock();
        if q.dropped || q.closed {
            return;
        }
        if q.events.len() >= q.capacity {
            q.events.pop_front();
            q.lagged += 1;
        }
        q.events.push_back(event);
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    /// Ends the stream once its queue is drained.
    pub(crate) fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    /// Whether the stream was dropped.
    pub(crate) fn is_dropped(&self) -> bool {
        self.lock().dropped
    }
}

/// A node's events, as a [`futures_core::Stream`] of
/// `Result<`[`Event`]`, `[`Lagged`]`>`.
///
/// Each stream has its own bounded queue (see `Builder::event_capacity`). A consumer that
/// falls behind loses the oldest events, and the next item it reads is `Err(Lagged(n))` with
/// the number lost, followed by the newer events: nothing is dropped silently. The stream
/// ends when the node stops. Get more streams with [`Handle::subscribe`](crate::Handle::subscribe);
/// dropping a stream never stops the node.
#[derive(Debug)]
pub struct EventStream {
    sub: Arc<Subscriber>,
}

impl EventStream {
    pub(crate) fn new(sub: Arc<Subscriber>) -> Self {
        EventStream { sub }
    }

    /// The next queued item without waiting: `None` if nothing is queued right now.
    pub fn try_recv(&mut self) -> Option<EventItem> {
        let mut q = self.sub.lock();
        take(&mut q)
    }

    /// Whether the node has stopped and every queued event has been read.
    pub fn is_terminated(&self) -> bool {
        let q = self.sub.lock();
        q.closed && q.events.is_empty() && q.lagged == 0
    }
}

fn take(q: &mut Queue) -> Option<EventItem> {
    if q.lagged > 0 {
        let n = std::mem::take(&mut q.lagged);
        return Some(Err(Lagged(n)));
    }
    q.events.pop_front().map(Ok)
}

impl Stream for EventStream {
    type Item = EventItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<EventItem>> {
        let mut q = self.sub.lock();
        if let Some(item) = take(&mut q) {
            return Poll::Ready(Some(item));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let mut q = self.sub.lock();
        q.dropped = true;
        q.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn slow_consumer_sees_lag_then_newest_events() {
        let sub = Subscriber::new(3);
        let mut stream = EventStream::new(sub.clone());
        for _ in 0..5 {
            sub.push(Event::Joined);
        }
        assert_eq!(stream.try_recv(), Some(Err(Lagged(2))));
        for _ in 0..3 {
            assert_eq!(stream.try_recv(), Some(Ok(Event::Joined)));
        }
        assert_eq!(stream.try_recv(), None);
        assert!(!stream.is_terminated());
        sub.close();
        assert!(stream.is_terminated());
        assert_eq!(futures::executor::block_on(stream.next()), None);
    }

    #[test]
    fn stream_wakes_on_push_and_ends_on_close() {
        let sub = Subscriber::new(8);
        let mut stream = EventStream::new(sub.clone());
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            sub.push(Event::Joined);
            sub.close();
        });
        let items: Vec<_> = futures::executor::block_on(async { stream.by_ref().collect::<Vec<_>>().await });
        assert_eq!(items, vec![Ok(Event::Joined)]);
        t.join().ok();
    }

    #[test]
    fn dropped_stream_is_forgotten() {
        let sub = Subscriber::new(8);
        drop(EventStream::new(sub.clone()));
        assert!(sub.is_dropped());
        sub.push(Event::Joined);
        assert!(sub.lock().events.is_empty());
    }
}
