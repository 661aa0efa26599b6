//! Envelope and codec: how messages become datagrams and back.
//!
//! A datagram is `[version: u8][header][message]*`, each part postcard-encoded. The version
//! byte comes first and alone so that an unknown version is recognised before anything else is
//! parsed. The header carries the cluster label and the sender's name. Messages follow back to
//! back until the datagram ends, so no count prefix can be forged.

use compact_str::CompactString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::message::Message;

/// Wire protocol version written by this build.
pub const PROTOCOL_VERSION: u8 = 5;

/// Why a datagram was dropped on arrival. Every drop is also counted in the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The datagram is empty.
    #[error("empty datagram")]
    Empty,
    /// Longer than the configured `max_inbound_size`.
    #[error("datagram of {len} bytes exceeds the limit of {max}")]
    Oversized {
        /// Length received.
        len: usize,
        /// Limit configured.
        max: usize,
    },
    /// Written by a protocol version this build does not speak.
    #[error("unknown protocol version {0}")]
    UnknownVersion(u8),
    /// From another cluster (label mismatch).
    #[error("datagram for cluster {0:?}, not ours")]
    ForeignCluster(CompactString),
    /// Ends in the middle of a field.
    #[error("truncated datagram")]
    Truncated,
    /// Not a valid encoding.
    #[error("malformed datagram: {0}")]
    Malformed(&'static str),
}

/// The part of a datagram before its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Cluster label of the sender.
    pub cluster: CompactString,
    /// Name of the sending member.
    pub sender: CompactString,
}

/// A decoded datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<A> {
    /// Header.
    pub header: Header,
    /// Messages, in order.
    pub messages: Vec<Message<A>>,
}

fn map_err(e: postcard::Error) -> DecodeError {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated,
        postcard::Error::DeserializeBadVarint => DecodeError::Malformed("bad varint"),
        postcard::Error::DeserializeBadBool => DecodeError::Malformed("bad bool"),
        postcard::Error::DeserializeBadChar => DecodeError::Malformed("bad char"),
        postcard::Error::DeserializeBadUtf8 => DecodeError::Malformed("bad utf-8"),
        postcard::Error::DeserializeBadOption => DecodeError::Malformed("bad option tag"),
        postcard::Error::DeserializeBadEnum => DecodeError::Malformed("unknown message tag"),
        _ => DecodeError::Malformed("invalid encoding"),
    }
}

/// Writes the version byte and header into `out` (cleared first).
pub fn encode_header(out: &mut Vec<u8>, cluster: &str, sender: &str) {
    out.clear();
    out.push(PROTOCOL_VERSION);
    #[derive(Serialize)]
    struct HeaderRef<'a> {
        cluster: &'a str,
        sender: &'a str,
    }
    // Serializing plain strings into a Vec cannot fail.
    let _ = postcard::to_extend(&HeaderRef { cluster, sender }, std::mem::take(out)).map(|v| *out = v);
}

/// Appends one message to `out`; returns its encoded length.
pub fn encode_message<A: Serialize>(out: &mut Vec<u8>, message: &Message<A>) -> usize {
    let before = out.len();
    match postcard::to_extend(message, std::mem::take(out)) {
        Ok(v) => *out = v,
        Err(e) => {
            // Only a serializer bug in A could get here; keep the buffer intact.
            tracing::error!(error = %e, "message encoding failed");
        }
    }
    out.len() - before
}

/// A whole datagram: header, then `messages` back to back. (The node packs its own datagrams
/// to the MTU; this is for tools, tests and simulators that craft one.)
pub fn encode_datagram<A: Serialize>(cluster: &str, sender: &str, messages: &[Message<A>]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(&mut out, cluster, sender);
    for m in messages {
        encode_message(&mut out, m);
    }
    out
}

/// Encoded length of a message, or of any part of one (`usize::MAX` if it cannot be
/// encoded, so that it never fits a budget).
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).unwrap_or(usize::MAX)
}

/// Decodes and checks the version byte and header; returns the header and the rest.
pub fn decode_header<'a>(bytes: &'a [u8], cluster: &str, max_len: usize) -> Result<(Header, &'a [u8]), DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::Oversized { len: bytes.len(), max: max_len });
    }
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let (header, rest) = postcard::take_from_bytes::<Header>(rest).map_err(map_err)?;
    if header.cluster != cluster {
        return Err(DecodeError::ForeignCluster(header.cluster));
    }
    Ok((header, rest))
}

/// Decodes the next message of a datagram body.
pub fn decode_message<A: DeserializeOwned>(bytes: &[u8]) -> Result<(Message<A>, &[u8]), DecodeError> {
    postcard::take_from_bytes::<Message<A>>(bytes).map_err(map_err)
}

/// Decodes a whole datagram: header and every message. All-or-nothing.
pub fn decode<A: DeserializeOwned>(bytes: &[u8], cluster: &str, max_len: usize) -> Result<Envelope<A>, DecodeError> {
    let (header, mut rest) = decode_header(bytes, cluster, max_len)?;
    let mut messages = Vec::new();
    while !rest.is_empty() {
        let (m, r) = decode_message(rest)?;
        messages.push(m);
        rest = r;
    }
    Ok(Envelope { header, messages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{MemberRecord, MemberState};

    fn datagram(messages: &[Message<u32>]) -> Vec<u8> {
        encode_datagram("c", "node-a", messages)
    }

    fn sample() -> Vec<Message<u32>> {
        vec![
            Message::Ping { seq: 7, target: "b".into() },
            Message::Member {
                record: MemberRecord {
                    name: "x".into(),
                    addr: 9,
                    generation: 3,
                    incarnation: 2,
                    state: MemberState::Suspect,
                    zone: Some("eu".into()),
                    proof: None,
                },
                accuser: Some("node-a".into()),
                signature: None,
            },
            Message::Broadcast { origin: "a".into(), id: 1, payload: vec![1, 2, 3] },
            Message::SyncPage { end: Some(crate::wire::ViewEnd { digest: 7, mark: 3, reply: true }), members: vec![] },
        ]
    }

    #[test]
    fn round_trip() {
        let bytes = datagram(&sample());
        let env = decode::<u32>(&bytes, "c", 1400).expect("decodes");
        assert_eq!(env.header.sender, "node-a");
        assert_eq!(env.messages, sample());
        assert_eq!(encoded_len(&sample()[0]), 4);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let bytes = datagram(&sample());
        assert_eq!(decode::<u32>(&[], "c", 1400), Err(DecodeError::Empty));
        assert_eq!(decode::<u32>(&bytes, "c", 10), Err(DecodeError::Oversized { len: bytes.len(), max: 10 }));
        let mut wrong = bytes.clone();
        wrong[0] = 99;
        assert_eq!(decode::<u32>(&wrong, "c", 1400), Err(DecodeError::UnknownVersion(99)));
        assert_eq!(decode::<u32>(&bytes, "other", 1400), Err(DecodeError::ForeignCluster("c".into())));
        for cut in 1..bytes.len() {
            // Cutting inside the last message or header must fail, never panic; a cut on a
            // message boundary is a valid shorter datagram.
            let _ = decode::<u32>(&bytes[..cut], "c", 1400);
        }
        assert_eq!(decode::<u32>(&bytes[..bytes.len() - 1], "c", 1400), Err(DecodeError::Truncated));
        let mut garbage = datagram(&[]);
        garbage.push(100);
        assert!(matches!(decode::<u32>(&garbage, "c", 1400), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn forged_length_prefix_does_not_allocate() {
        // A SyncPage claiming 2^32 records in a few bytes fails as truncated.
        let mut bytes = datagram(&[]);
        bytes.extend_from_slice(&[7, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(decode::<u32>(&bytes, "c", 1400), Err(DecodeError::Truncated));
    }
}
