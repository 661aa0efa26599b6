//! Anti-entropy of application state: every node owns a versioned key/value map that the whole
//! cluster replicates, reconciled Scuttlebutt-style (van Renesse et al. 2008; Cassandra's
//! application state, chitchat's key/values).
//!
//! - [`store`]: the replicated state, per participant (node) and generation: local writes
//!   with limits, digests, deltas ordered most-stale first that never skip a version,
//!   merging, tombstones and their safe collection (a peer that was away longer than the
//!   grace period gets a full reset instead of resurrecting deleted keys).
//!
//! - `exchange`: the exchange on the wire: a hash first, then digest pages by name range and
//!   MTU-sized deltas both ways; fresh writes also travel as piggybacked rumors.

mod exchange;
pub mod store;

pub use store::{KeyUpdate, KvChange, KvError, KvLimits, KvStore, ParticipantDelta, ParticipantDigest, SignedHead};

use compact_str::CompactString;

/// Bounds for a `BTreeMap::range` over names from `start` up to (excluding) `end`; `None`
/// when the range is empty (a peer's `end` at or before its `start`: `range` would panic).
pub(crate) fn name_range<'a>(
    start: &'a str,
    end: Option<&'a str>,
) -> Option<(std::ops::Bound<&'a str>, std::ops::Bound<&'a str>)> {
    use std::ops::Bound;
    match end {
        Some(e) if e <= start => None,
        Some(e) => Some((Bound::Included(start), Bound::Excluded(e))),
        None => Some((Bound::Included(start), Bound::Unbounded)),
    }
}

/// A page of a name-ordered digest (key/values and CRDT objects alike): `entries` up to
/// `budget` encoded bytes (at least one), with the name where the next page starts, if any.
pub(crate) fn digest_page<T: serde::Serialize>(
    entries: impl Iterator<Item = (CompactString, T)>,
    budget: usize,
) -> (Vec<T>, Option<CompactString>) {
    let mut out = Vec::new();
    let mut used = 0usize;
    for (name, entry) in entries {
        let size = crate::wire::codec::encoded_len(&entry);
        if used.saturating_add(size) > budget && !out.is_empty() {
            return (out, Some(name));
        }
        used = used.saturating_add(size);
        out.push(entry);
    }
    (out, None)
}

/// A reply page of a name-range digest (key/values and CRDT objects alike): our entries from
/// the peer's `start`, cut where our page was cut (`cut`) or where the peer's ended (`end`),
/// whichever comes first, so both sides compare the same range.
pub(crate) fn reply_page<T>(
    entries: Vec<T>,
    cut: Option<CompactString>,
    end: Option<CompactString>,
    name: impl Fn(&T) -> &str,
) -> (Vec<T>, Option<CompactString>) {
    let end = match (cut, end) {
        (Some(c), Some(e)) => Some(c.min(e)),
        (c, e) => c.or(e),
    };
    let entries = entries.into_iter().filter(|d| end.as_deref().is_none_or(|e| name(d) < e)).collect();
    (entries, end)
}
