//! A node fed arbitrary datagrams never panics, and keeps working afterwards. The first byte
//! picks the configuration: odd signs self-state (Ed25519), so forged and malformed proofs of
//! member records, key/value writes and CRDT claims are checked too.
#![no_main]

use std::time::{Duration, Instant};

use gossip_core::wire::signing::{Keypair, Signing};
use gossip_core::{Config, Identity, Node};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let now = Instant::now();
    let signing = (mode % 2 == 1).then(|| Signing::new(Keypair::from_secret([7; 32])));
    let config = Config { signing, ..Config::lan() };
    let Ok(mut node) = Node::new(config, Identity { name: "fuzz".into(), addr: 1u32, generation: 1 }, 0, now) else {
        return;
    };
    for (i, chunk) in data.split(|&b| b == 0xAA).enumerate() {
        let t = now + Duration::from_millis(i as u64 * 100);
        let _ = node.handle_message(t, (i % 7) as u32, chunk);
        node.poll_timer(t);
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
    }
});
