//! `gossip keygen`: a fresh 256-bit key for the keyring, or an Ed25519 signing key pair, from
//! the operating system's CSPRNG.

use clap::Args;

/// Arguments of `gossip keygen`.
#[derive(Debug, Args)]
#[command(after_help = "Prints one key (64 hex digits) and its id as JSON, or with --hex the key alone. \
    Put it in a keyring file (one key per line, the first seals) for `gossip agent --keyring FILE`, or install it on running agents with \
    `key install HEX`.\n\nWith --signing: prints an Ed25519 secret key (for `gossip agent --signing-key \
    FILE`) and its public key (for other nodes' `--trust FILE` lists: one `NAME PUBLIC_KEY` per line).")]
pub struct KeygenArgs {
    /// A signing key pair for signed self-state instead of a keyring key.
    #[arg(long)]
    signing: bool,
    /// Print only the key's 64 hex digits (with --signing: the secret key's), ready for a file
    /// (`gossip keygen --hex >> ring`); its id (the public key) goes to stderr.
    #[arg(long)]
    hex: bool,
}

pub fn run(args: KeygenArgs) -> Result<(), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    if args.signing {
        let pair = gossip_core::wire::signing::Keypair::from_secret(bytes);
        if args.hex {
            eprintln!("public key: {}", pair.public_key().to_hex());
            out!("{}", pair.secret_hex());
        } else {
            out!("{}", serde_json::json!({"secret": pair.secret_hex(), "public": pair.public_key().to_hex()}));
        }
        return Ok(());
    }
    let key = gossip_core::wire::security::Key::from_bytes(bytes);
    if args.hex {
        eprintln!("key id: {}", key.id());
        out!("{}", key.to_hex());
    } else {
        out!("{}", serde_json::json!({"key": key.to_hex(), "id": key.id()}));
    }
    Ok(())
}
