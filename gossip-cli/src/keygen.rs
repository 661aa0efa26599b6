//! `gossip keygen`: a fresh 256-bit key for the keyring, or an Ed25519 signing key pair, from
//! the operating system's CSPRNG.

use clap::Args;

/// Arguments of `gossip keygen`.
#[derive(Debug, Args)]
#[command(after_help = "Prints one key (64 hex digits) and its id. Put it in a keyring file (one key per \
    line, the first seals) for `gossip agent --keyring FILE`, or install it on running agents with \
    `key install HEX`.\n\nWith --signing: prints an Ed25519 secret key (for `gossip agent --signing-key \
    FILE`) and its public key (for other nodes' `--trust FILE` lists: one `NAME PUBLIC_KEY` per line).")]
pub struct KeygenArgs {
    /// A signing key pair for signed self-state instead of a keyring key.
    #[arg(long)]
    signing: bool,
}

pub fn run(args: KeygenArgs) -> Result<(), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    if args.signing {
        let pair = gossip_core::wire::signing::Keypair::from_secret(bytes);
        out!("{}", serde_json::json!({"secret": pair.secret_hex(), "public": pair.public_key().to_hex()}));
        return Ok(());
    }
    let key = gossip_core::wire::security::Key::from_bytes(bytes);
    out!("{}", serde_json::json!({"key": key.to_hex(), "id": key.id()}));
    Ok(())
}
