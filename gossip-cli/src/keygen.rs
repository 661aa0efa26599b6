//! `gossip keygen`: a fresh 256-bit key for the keyring, from the operating system's CSPRNG.

use clap::Args;

/// Arguments of `gossip keygen`.
#[derive(Debug, Args)]
#[command(after_help = "Prints one key (64 hex digits) and its id. Put it in a keyring file (one key per \
    line, the first seals) for `gossip agent --keyring FILE`, or install it on running agents with \
    `key install HEX`.")]
pub struct KeygenArgs {}

pub fn run(_args: KeygenArgs) -> Result<(), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    let key = gossip_core::wire::security::Key::from_bytes(bytes);
    out!("{}", serde_json::json!({"key": key.to_hex(), "id": key.id()}));
    Ok(())
}
