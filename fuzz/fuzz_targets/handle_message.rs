//! A node fed arbitrary datagrams never panics, and keeps working afterwards. The first byte
//! picks the configuration:
//! - bit 0: signed self-state (Ed25519), so forged and malformed proofs of member records,
//!   key/value writes and CRDT claims are checked too;
//! - bit 1: a keyring. Each datagram's first byte then says whether the rest goes as it is
//!   (and is refused unopened, or taken as plaintext) or sealed with the cluster's key under a
//!   nonce the input picks, so the fuzzer reaches the decoder through the sealed path and its
//!   replay windows (a repeated nonce is a replay);
//! - bit 2: with a keyring, accept plaintext too (the `Seal` step of turning sealing on).
#![no_main]

use std::time::{Duration, Instant};

use gossip_core::wire::security::{seal_datagram, Key, Keyring, SealMode};
use gossip_core::wire::signing::{Keypair, Signing};
use gossip_core::{Config, Identity, Node};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [9; 32];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let now = Instant::now();
    let signing = (mode & 1 == 1).then(|| Signing::new(Keypair::from_secret([7; 32])));
    let sealed = mode & 2 == 2;
    let keyring = sealed.then(|| Keyring::new(vec![Key::from_bytes(KEY)])).and_then(Result::ok);
    let seal_mode = if mode & 4 == 4 { SealMode::Seal } else { SealMode::Require };
    let config = Config { signing, keyring, seal_mode, ..Config::lan() };
    let label = config.cluster_label.clone();
    let Ok(mut node) = Node::new(config, Identity { name: "fuzz".into(), addr: 1u32, generation: 1 }, 0, now) else {
        return;
    };
    for (i, chunk) in data.split(|&b| b == 0xAA).enumerate() {
        let t = now + Duration::from_millis(i as u64 * 100);
        let from = (i % 7) as u32;
        let datagram = match chunk.split_first() {
            // A nonce from the input: prefix from the top bits, counter from the next byte, so
            // counters run ahead, fall behind the window and repeat.
            Some((&how, rest)) if sealed && how & 1 == 1 => {
                let (counter, plain) = rest.split_first().map_or((0, &[][..]), |(&c, plain)| (c, plain));
                let counter = u64::from(counter) << (how >> 5);
                seal_datagram(&Key::from_bytes(KEY), [0, 0, 0, (how >> 1) & 3], counter, plain, &label)
            }
            _ => chunk.to_vec(),
        };
        let _ = node.handle_message(t, from, &datagram);
        node.poll_timer(t);
        while node.poll_transmit().is_some() {}
        while node.poll_event().is_some() {}
    }
});
