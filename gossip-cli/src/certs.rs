//! `gossip certs`: a cluster CA and node certificates for the QUIC transport (rcgen).

use std::path::PathBuf;

use clap::Args;
use gossip_quic::tls::{write_pem, write_private_pem};
use gossip_quic::ClusterCa;

/// Arguments of `gossip certs`.
#[derive(Debug, Args)]
#[command(after_help = "Writes DIR/ca.pem (every node trusts it), DIR/ca.key (keep it off the nodes) and \
    DIR/NAME.pem + DIR/NAME.key for each node. Run a node with:\n  \
    gossip agent --transport quic --ca DIR/ca.pem --cert DIR/NAME.pem --key DIR/NAME.key ...\n\
    To add nodes to a running cluster, issue their certificates with its CA (nothing else changes):\n  \
    gossip certs --ca DIR/ca.pem --ca-key DIR/ca.key --node NEW   (writes DIR/NEW.pem, DIR/NEW.key)")]
pub struct CertsArgs {
    /// Directory to write into (created if missing) [default: `certs`, or with --ca the CA's
    /// directory].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Node names to issue certificates for; repeatable, or comma-separated.
    #[arg(long = "node", value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Overwrite existing node files. A cluster CA's files are never overwritten: to start a
    /// new cluster, remove them or pick another --out.
    #[arg(long)]
    force: bool,
    /// Name of a new CA.
    #[arg(long, default_value = "gossip cluster CA", conflicts_with = "ca")]
    ca_name: String,
    /// Issue with this existing CA certificate (a cluster's ca.pem) instead of a new CA.
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    ca: Option<PathBuf>,
    /// The existing CA's private key (a cluster's ca.key).
    #[arg(long, value_name = "FILE", requires = "ca")]
    ca_key: Option<PathBuf>,
}

pub fn run(args: CertsArgs) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for name in &args.nodes {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(format!("--node {name:?}: names are 1 to 128 of A-Z a-z 0-9 - _ ."));
        }
        // Case-insensitively: on macOS and Windows `CA.pem` is `ca.pem`.
        if name.eq_ignore_ascii_case("ca") {
            return Err(format!("--node {name}: the name is the CA's own files (ca.pem, ca.key)"));
        }
        if !seen.insert(name) {
            return Err(format!("--node {name:?} is named twice"));
        }
    }
    let out = match (&args.out, &args.ca) {
        (Some(out), _) => out.clone(),
        (None, Some(ca)) => ca.parent().map_or_else(|| PathBuf::from("."), PathBuf::from),
        (None, None) => PathBuf::from("certs"),
    };
    let out = if out.as_os_str().is_empty() { PathBuf::from(".") } else { out };
    // An existing CA is loaded first: a wrong file must not leave a half-written directory.
    let existing = match (&args.ca, &args.ca_key) {
        (Some(cert), Some(key)) => Some(ClusterCa::from_pem_files(cert, key).map_err(|e| e.to_string())?),
        _ => None,
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut files = match existing {
        Some(_) => Vec::new(),
        None => vec![out.join("ca.pem"), out.join("ca.key")],
    };
    for name in &args.nodes {
        files.push(out.join(format!("{name}.pem")));
        files.push(out.join(format!("{name}.key")));
    }
    if existing.is_none() {
        // A new CA over an existing one would cut every node it issued out of the cluster.
        if let Some(ca_file) = files[..2].iter().find(|f| f.exists()) {
            return Err(format!(
                "{} exists: this directory holds a cluster CA, which is never overwritten. To issue \
                 nodes with it: gossip certs --ca {} --ca-key {} --node NAME. For a new cluster, pick \
                 another --out or remove the CA files.",
                ca_file.display(),
                files[0].display(),
                files[1].display()
            ));
        }
    }
    // Nor is a loaded CA's, whatever its files are named (`--ca D/root.pem --node root`).
    let same_file = |a: &std::path::Path, b: &std::path::Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    for ca_file in [&args.ca, &args.ca_key].into_iter().flatten() {
        if let Some(clash) = files.iter().find(|f| same_file(f, ca_file)) {
            return Err(format!("{} is the CA's own file; pick another node name or --out", clash.display()));
        }
    }
    if !args.force {
        if let Some(taken) = files.iter().find(|f| f.exists()) {
            return Err(format!("{} exists (use --force to overwrite)", taken.display()));
        }
    }
    let ca = match existing {
        Some(ca) => ca,
        None => {
            let ca = ClusterCa::generate(&args.ca_name).map_err(|e| e.to_string())?;
            write_pem(&files[0], &ca.cert_pem()).map_err(|e| e.to_string())?;
            write_private_pem(&files[1], &ca.key_pem()).map_err(|e| e.to_string())?;
            ca
        }
    };
    for name in &args.nodes {
        let issued = ca.issue(name).map_err(|e| e.to_string())?;
        write_pem(&out.join(format!("{name}.pem")), &issued.cert_pem).map_err(|e| e.to_string())?;
        write_private_pem(&out.join(format!("{name}.key")), &issued.key_pem).map_err(|e| e.to_string())?;
    }
    out!("{}", serde_json::json!({"event": "certs_written", "dir": out.display().to_string(), "nodes": args.nodes}));
    Ok(())
}
