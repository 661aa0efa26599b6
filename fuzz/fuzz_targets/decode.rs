//! The wire decoder must return a typed error, never panic, on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gossip_core::wire::codec::decode::<u32>(data, "gossip", 65_507);
    let _ = gossip_core::wire::codec::decode::<std::net::SocketAddr>(data, "gossip", 65_507);
});
