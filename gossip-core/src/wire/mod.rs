//! Wire format: messages, the envelope around them, and the bounded codec.
//!
//! Encoding is postcard (serde). Every decoding failure is a typed [`DecodeError`], never a
//! panic, and no length field makes the decoder allocate more than the datagram holds.

pub(crate) mod bounded;
pub mod codec;
mod message;
pub mod security;
pub mod signing;

pub use codec::{DecodeError, Envelope, Header, PROTOCOL_VERSION};
pub use message::{MemberRecord, MemberState, Message, MessageKind, StateContinuation, ViewEnd};
