//! The member table: every known member but the node itself, compact enough that the
//! simulator holds 10,000 nodes that each know 10,000 members.
//!
//! Members live in slots of a `Vec`; a slot index stays valid until the member is forgotten
//! (reclaimed), so other structures (probe order, rumor queue, suspicions) refer to members by
//! slot. A hash table maps names to slots without storing the names twice. Live members (alive
//! or suspect) are also kept in two dense lists, own zone and other zones, for uniform random
//! picks in O(1).

use compact_str::CompactString;
use hashbrown::HashTable;
use serde::{de::DeserializeOwned, Serialize};

use crate::wire::{MemberRecord, MemberState};

/// What the core needs of an address type: a `SocketAddr` in the adapters, a small integer in
/// the simulator. Blanket-implemented.
pub trait Address:
    Clone + Eq + Ord + std::hash::Hash + std::fmt::Debug + Serialize + DeserializeOwned + 'static
{
}

impl<T> Address for T where
    T: Clone + Eq + Ord + std::hash::Hash + std::fmt::Debug + Serialize + DeserializeOwned + 'static
{
}

/// Slot index in the table.
pub(crate) type Slot = u32;

/// Most distinct zone names a node records (zones are racks or datacenters: a few dozen).
const MAX_ZONES: usize = 256;

/// Position marker for members not in a live list.
const NOT_LIVE: u32 = u32::MAX;

/// One known member.
#[derive(Debug, Clone)]
pub(crate) struct Member<A> {
    pub name: CompactString,
    pub addr: A,
    pub generation: u64,
    pub incarnation: u32,
    pub state: MemberState,
    /// Index into the table's zone names (0 = no zone).
    pub zone: u16,
    /// Position in its live list, or [`NOT_LIVE`].
    live_pos: u32,
}

/// Every member known to a node, except the node itself.
#[derive(Debug)]
pub(crate) struct MemberTable<A> {
    slots: Vec<Option<Member<A>>>,
    free: Vec<Slot>,
    index: HashTable<Slot>,
    hasher: ahash::RandomState,
    zones: Vec<CompactString>,
    own_zone: u16,
    /// Live members in the own zone / in other zones.
    live_local: Vec<Slot>,
    live_remote: Vec<Slot>,
    /// XOR of [`record_hash`] over live members.
    digest: u64,
    /// Per slot: value of `changes` when the member last changed, for delta exchanges.
    stamps: Vec<u32>,
    /// Count of changes to the table (inserts and updates).
    changes: u32,
}

/// Pushes onto a vector growing it by a quarter instead of doubling: member tables are the
/// bulk of a node's memory, and the simulator holds thousands of them.
pub(crate) fn push_compact<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.capacity() / 4).max(8));
    }
    v.push(item);
}

/// Hash of one live record for the membership digest ([`crate::Node::membership_digest`] is
/// the XOR of these over a view); agrees across nodes and builds.
pub fn record_hash(name: &str, generation: u64, incarnation: u32) -> u64 {
    let mut buf = [0u8; 12];
    buf[..8].copy_from_slice(&generation.to_le_bytes());
    buf[8..].copy_from_slice(&incarnation.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(name.as_bytes(), xxhash_rust::xxh3::xxh3_64(&buf))
}

impl<A: Address> MemberTable<A> {
    /// An empty table for a node in zone `own_zone`; `hash_keys` seed the name index so that
    /// names from the network cannot be chosen to collide.
    pub fn new(own_zone: Option<&str>, hash_keys: [u64; 4]) -> Self {
        let mut table = MemberTable {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: ahash::RandomState::with_seeds(hash_keys[0], hash_keys[1], hash_keys[2], hash_keys[3]),
            zones: vec![CompactString::default()],
            own_zone: 0,
            live_local: Vec::new(),
            live_remote: Vec::new(),
            digest: 0,
            stamps: Vec::new(),
            changes: 0,
        };
        table.own_zone = table.intern_zone(own_zone);
        table
    }

    fn intern_zone(&mut self, zone: Option<&str>) -> u16 {
        let Some(zone) = zone else { return 0 };
        if let Some(i) = self.zones.iter().position(|z| z == zone) {
            return i as u16;
        }
        if self.zones.len() >= MAX_ZONES {
            return 0; // absurd number of zones: treat the rest as "no zone"
        }
        self.zones.push(zone.into());
        (self.zones.len() - 1) as u16
    }

    /// Zone name of a zone index.
    pub fn zone_name(&self, zone: u16) -> Option<&CompactString> {
        if zone == 0 {
            None
        } else {
            self.zones.get(zone as usize)
        }
    }

    /// Looks up a member's slot by name.
    pub fn find(&self, name: &str) -> Option<Slot> {
        let hash = self.hasher.hash_one(name);
        self.index.find(hash, |&s| self.slots[s as usize].as_ref().is_some_and(|m| m.name == name)).copied()
    }

    pub fn get(&self, slot: Slot) -> Option<&Member<A>> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Number of members held, live or not.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Number of live (alive or suspect) members.
    pub fn live_count(&self) -> usize {
        self.live_local.len() + self.live_remote.len()
    }

    /// Live members of the own zone, then of other zones.
    pub fn live(&self) -> (&[Slot], &[Slot]) {
        (&self.live_local, &self.live_remote)
    }

    /// Whether `slot` holds a member of the own zone.
    pub fn is_local(&self, slot: Slot) -> bool {
        self.get(slot).is_some_and(|m| m.zone == self.own_zone)
    }

    /// Order-independent hash of every live member.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Iterates over all members, live and gone, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &Member<A>)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, m)| m.as_ref().map(|m| (i as Slot, m)))
    }

    /// Public view of a member.
    pub fn record(&self, slot: Slot) -> Option<MemberRecord<A>> {
        let m = self.get(slot)?;
        Some(MemberRecord {
            name: m.name.clone(),
            addr: m.addr.clone(),
            generation: m.generation,
            incarnation: m.incarnation,
            state: m.state,
            zone: self.zone_name(m.zone).cloned(),
            proof: None,
        })
    }

    /// Adds a member not in the table yet; returns its slot.
    pub fn insert(&mut self, record: &MemberRecord<A>) -> Slot {
        let zone = self.intern_zone(record.zone.as_deref());
        let member = Member {
            name: record.name.clone(),
            addr: record.addr.clone(),
            generation: record.generation,
            incarnation: record.incarnation,
            state: record.state,
            zone,
            live_pos: NOT_LIVE,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(member);
                s
            }
            None => {
                push_compact(&mut self.slots, Some(member));
                push_compact(&mut self.stamps, 0);
                (self.slots.len() - 1) as Slot
            }
        };
        self.stamp(slot);
        let hash = self.hasher.hash_one(record.name.as_str());
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(slots[s as usize].as_ref().map(|m| m.name.as_str()).unwrap_or(""))
        });
        self.relink(slot);
        slot
    }

    /// Overwrites a member's record (same name).
    pub fn update(&mut self, slot: Slot, record: &MemberRecord<A>) {
        let zone = self.intern_zone(record.zone.as_deref());
        let was_live = self.get(slot).is_some_and(|m| !m.state.is_gone());
        if was_live {
            self.unlink(slot);
        }
        if let Some(m) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
            m.addr = record.addr.clone();
            m.generation = record.generation;
            m.incarnation = record.incarnation;
            m.state = record.state;
            m.zone = zone;
        }
        self.stamp(slot);
        self.relink(slot);
    }

    fn stamp(&mut self, slot: Slot) {
        self.changes = self.changes.wrapping_add(1);
        if let Some(s) = self.stamps.get_mut(slot as usize) {
            *s = self.changes;
        }
    }

    /// Count of changes so far: a watermark for [`MemberTable::changed_since`].
    pub fn changes(&self) -> u32 {
        self.changes
    }

    /// Members changed after watermark `since` and up to `until` (a watermark from the future,
    /// e.g. one handed out before this node restarted, counts as 0).
    pub fn changed_between(&self, since: u32, until: u32) -> impl Iterator<Item = Slot> + '_ {
        let since = if since > self.changes { 0 } else { since };
        self.iter().filter_map(move |(slot, _)| {
            self.stamps.get(slot as usize).is_some_and(|&s| s > since && s <= until).then_some(slot)
        })
    }

    /// Forgets a member entirely; its slot may be reused.
    pub fn remove(&mut self, slot: Slot) -> Option<Member<A>> {
        let live = self.get(slot).is_some_and(|m| !m.state.is_gone());
        if live {
            self.unlink(slot);
        }
        let member = self.slots.get_mut(slot as usize)?.take()?;
        let hash = self.hasher.hash_one(member.name.as_str());
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.free.push(slot);
        Some(member)
    }

    /// Adds a live member to its live list and the digest.
    fn relink(&mut self, slot: Slot) {
        let own_zone = self.own_zone;
        let Some(m) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else { return };
        if m.state.is_gone() {
            return;
        }
        self.digest ^= record_hash(&m.name, m.generation, m.incarnation);
        let list = if m.zone == own_zone { &mut self.live_local } else { &mut self.live_remote };
        m.live_pos = list.len() as u32;
        push_compact(list, slot);
    }

    /// Removes a live member from its live list and the digest.
    fn unlink(&mut self, slot: Slot) {
        let own_zone = self.own_zone;
        let Some(m) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else { return };
        if m.live_pos == NOT_LIVE {
            return;
        }
        self.digest ^= record_hash(&m.name, m.generation, m.incarnation);
        let pos = m.live_pos as usize;
        m.live_pos = NOT_LIVE;
        let list = if m.zone == own_zone { &mut self.live_local } else { &mut self.live_remote };
        list.swap_remove(pos);
        if let Some(&moved) = list.get(pos) {
            if let Some(mm) = self.slots.get_mut(moved as usize).and_then(Option::as_mut) {
                mm.live_pos = pos as u32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, state: MemberState, zone: Option<&str>) -> MemberRecord<u32> {
        MemberRecord {
            name: name.into(),
            addr: 1,
            generation: 1,
            incarnation: 0,
            state,
            zone: zone.map(Into::into),
            proof: None,
        }
    }

    #[test]
    fn insert_find_update_remove_keep_lists_consistent() {
        let mut t = MemberTable::<u32>::new(Some("a"), [1, 2, 3, 4]);
        let x = t.insert(&rec("x", MemberState::Alive, Some("a")));
        let y = t.insert(&rec("y", MemberState::Alive, Some("b")));
        let z = t.insert(&rec("z", MemberState::Alive, Some("a")));
        assert_eq!(t.find("y"), Some(y));
        assert_eq!(t.live().0.len(), 2);
        assert_eq!(t.live().1, &[y]);
        let d3 = t.digest();
        t.update(x, &rec("x", MemberState::Dead, Some("a")));
        assert_eq!(t.live().0, &[z]);
        assert_ne!(t.digest(), d3);
        t.update(x, &rec("x", MemberState::Alive, Some("a")));
        assert_eq!(t.digest(), d3, "digest is order independent");
        assert!(t.remove(z).is_some());
        assert_eq!(t.find("z"), None);
        assert_eq!(t.live().0, &[x]);
        let w = t.insert(&rec("w", MemberState::Alive, None));
        assert_eq!(w, z, "slot reused");
        assert_eq!(t.find("w"), Some(w));
        assert_eq!(t.live_count(), 3);
    }
}
