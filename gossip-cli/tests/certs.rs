//! `gossip certs` end to end: a new CA and node certificates, then more nodes issued by the
//! same CA (`--ca --ca-key`) into its directory, private keys readable by their owner only,
//! and the refusals that protect the CA's files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gossip(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gossip")).args(args).output().expect("gossip runs")
}

/// A fresh directory of its own under the temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gossip-certs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_cluster_grows_with_certificates_from_its_own_ca() {
    let dir = temp_dir("grow");
    let out = gossip(&["certs", "--out", &arg(&dir), "--node", "a,b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ca_pem = std::fs::read(dir.join("ca.pem")).expect("ca.pem");
    // More nodes, later: the same CA, into its directory (the default with --ca).
    let out =
        gossip(&["certs", "--ca", &arg(&dir.join("ca.pem")), "--ca-key", &arg(&dir.join("ca.key")), "--node", "c"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.join("ca.pem")).expect("ca.pem"), ca_pem, "the CA is not rewritten");
    for file in ["a.pem", "a.key", "b.pem", "b.key", "c.pem", "c.key"] {
        assert!(dir.join(file).exists(), "{file} written");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "a.key", "c.key"] {
            let mode = std::fs::metadata(dir.join(key)).expect("key").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
    }
    // What a node is started with loads (that the added node's certificate chains to the CA
    // over a real handshake is tests/tests/quic.rs).
    let tls = gossip_quic::ClusterTls::from_pem_files(&dir.join("ca.pem"), &dir.join("c.pem"), &dir.join("c.key"));
    assert!(tls.is_ok_and(|t| t.server_config().is_ok() && t.client_config().is_ok()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_ca_files_are_never_overwritten_by_a_node() {
    let dir = temp_dir("refuse");
    let out = gossip(&["certs", "--out", &arg(&dir), "--node", "ca"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--node ca"), "{}", stderr(&out));
    assert!(!dir.join("ca.pem").exists(), "nothing written");
    let out = gossip(&["certs", "--out", &arg(&dir), "--node", "a,a"]);
    assert!(stderr(&out).contains("named twice"), "{}", stderr(&out));
    assert!(gossip(&["certs", "--out", &arg(&dir), "--node", "a"]).status.success());
    // A node's own certificate is not a CA; a node key is not the CA's.
    let ca_pem = arg(&dir.join("ca.pem"));
    let out = gossip(&["certs", "--ca", &arg(&dir.join("a.pem")), "--ca-key", &arg(&dir.join("a.key")), "--node", "x"]);
    assert!(stderr(&out).contains("not a CA certificate"), "{}", stderr(&out));
    let out = gossip(&["certs", "--ca", &ca_pem, "--ca-key", &arg(&dir.join("a.key")), "--node", "x"]);
    assert!(stderr(&out).contains("not the private key"), "{}", stderr(&out));
    assert!(!dir.join("x.pem").exists(), "nothing written");
    // An existing node's files need --force.
    let out = gossip(&["certs", "--ca", &ca_pem, "--ca-key", &arg(&dir.join("ca.key")), "--node", "a"]);
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    // Reissuing a node without --ca would make a new CA: refused even with --force, the CA kept.
    let (ca_before, key_before) = (std::fs::read(dir.join("ca.pem")), std::fs::read(dir.join("ca.key")));
    let out = gossip(&["certs", "--out", &arg(&dir), "--node", "a", "--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("never overwritten"), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.join("ca.pem")).ok(), ca_before.ok(), "the CA certificate is kept");
    assert_eq!(std::fs::read(dir.join("ca.key")).ok(), key_before.ok(), "the CA key is kept");
    let out = gossip(&["certs", "--out", &arg(&dir), "--node", "CA"]);
    assert!(stderr(&out).contains("--node CA"), "{}", stderr(&out));
    // A loaded CA's files are protected whatever their names.
    std::fs::copy(dir.join("ca.pem"), dir.join("root.pem")).expect("copy");
    std::fs::copy(dir.join("ca.key"), dir.join("root.key")).expect("copy");
    let (root, root_key) = (arg(&dir.join("root.pem")), arg(&dir.join("root.key")));
    let out = gossip(&["certs", "--ca", &root, "--ca-key", &root_key, "--node", "root", "--force"]);
    assert!(stderr(&out).contains("is the CA's own file"), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.join("root.key")).ok(), std::fs::read(dir.join("ca.key")).ok(), "kept");
    // With its CA, --force reissues the node.
    let out = gossip(&["certs", "--ca", &ca_pem, "--ca-key", &arg(&dir.join("ca.key")), "--node", "a", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
