//! # gossip-driver — the runtime-agnostic async driver of the gossip core
//!
//! Everything the runtime adapters share: the loop that drives a
//! [`gossip_core::Node`] over a datagram socket, the cloneable [`Handle`], the [`EventStream`],
//! the [`Builder`], typed errors and a [`FaultySocket`] for loss injection in tests. An
//! adapter only implements the small [`Runtime`] trait (a datagram socket, optionally with a
//! reliable path for large transfers, a timer, `spawn`), the way quinn's runtime modules do;
//! use the adapters, not this crate, in applications:
//!
//! - `gossip-tokio` — tokio, over UDP;
//! - `gossip-smol` — async-io over UDP, for smol (and async-std, which is deprecated in favour
//!   of smol);
//! - `gossip-quic` — quinn (on tokio): QUIC datagrams, and streams for anti-entropy transfers.
//!
//! ## How the driver runs
//!
//! One task per node. Each time it wakes it reads the clock once, handles every datagram
//! that is ready (at most a budget, then it yields to other tasks), fires the core's due
//! timers, sends what the core queued and hands events to the streams; then it sleeps until
//! the core's next deadline, the next datagram or the next command. It never blocks and
//! never spins ([`IoMetrics::wakeups`] counts its wake-ups). Socket errors — ICMP port
//! unreachable reported as "connection refused", "message too long" — are logged with
//! `tracing`, counted in [`IoMetrics`] and survived: the datagram is lost, as UDP allows.
//!
//! ## Lifecycle
//!
//! [`Handle::leave`] announces the leave, keeps gossiping for the linger (three gossip
//! intervals by default) and stops; [`Handle::shutdown`] does the same and waits.
//! Dropping every handle leaves too. [`Handle::abort`] stops without a word, as a crash
//! would. Event streams end when the node stops.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod driver;
mod error;
mod events;
mod fault;
mod handle;
mod runtime;

pub use builder::{unix_millis, Builder, DEFAULT_EVENT_CAPACITY, MAX_LEAVE_LINGER};
pub use driver::{Driver, IoMetrics};
pub use error::{BuildError, DriverError, Lagged};
pub use events::{Event, EventItem, EventStream};
pub use fault::{Faults, FaultySocket};
pub use handle::{Handle, Member, Stopped};
pub use runtime::{AsyncTimer, AsyncUdpSocket, BoxFuture, Runtime};

pub use gossip_core;
pub use gossip_core::{CommandError, Config, MemberState, Metrics};
