//! CRDT states from the network: decoding never panics, and well-formed states obey the laws
//! (join commutative, idempotent, says whether it changed; split and buckets join back).
#![no_main]

use gossip_core::crdt::AnyCrdt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((a, rest)) = postcard::take_from_bytes::<AnyCrdt>(data) else { return };
    let Ok(b) = postcard::from_bytes::<AnyCrdt>(rest) else { return };
    if !a.is_well_formed() || !b.is_well_formed() || a.kind() != b.kind() {
        return;
    }
    let mut ab = a.clone();
    let changed = ab.join(&b) == Some(true);
    assert_eq!(changed, ab != a, "join reports change");
    let mut ba = b.clone();
    ba.join(&a);
    assert_eq!(ab, ba, "commutative");
    let mut again = ab.clone();
    assert_eq!(again.join(&ab), Some(false), "idempotent");
    for pieces in [ab.split(64), ab.buckets(7)] {
        let mut back = AnyCrdt::empty(ab.kind());
        for p in &pieces {
            back.join(p);
        }
        assert_eq!(back, ab, "pieces join back");
    }
});
