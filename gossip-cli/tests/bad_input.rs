//! The `gossip` command line on bad input: a clear message and exit 2 before any work is done,
//! never a panic or a silently ignored value; and the outputs meant for files are file-ready.

use std::process::{Command, Output};

fn gossip(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gossip")).args(args).output().expect("gossip runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2 with `needle` in the message, and no panic.
fn refused(args: &[&str], needle: &str) {
    let out = gossip(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn out_of_range_sim_values_are_refused() {
    refused(&["sim", "join", "--limit-s", "18446744073709551615"], "--limit-s must be between 1 and 86400");
    refused(&["sim", "partition", "--hold-s", "0"], "--hold-s must be between 1 and 86400");
    refused(&["sim", "antientropy", "--duration-s", "0"], "--duration-s must be between 1 and 86400");
    refused(&["sim", "rumor", "--runs", "18446744073709551615"], "--runs must be between 1 and 1000");
    refused(&["sim", "antientropy", "--writers", "0"], "--writers must be between 1 and --nodes");
    refused(&["sim", "antientropy", "--nodes", "10", "--writers", "11"], "--writers must be between 1 and --nodes");
    refused(&["sim", "antientropy", "--keys-per-node", "0"], "--keys-per-node must be between 1 and 1000000");
    refused(&["sim", "crdt", "--ops-per-node", "0"], "--ops-per-node must be between 1 and 1000");
    refused(&["sim", "churn", "--rate", "1e9"], "--rate must be positive and at most 1000");
    refused(&["sim", "churn", "--rate", "1000", "--duration-s", "86400"], "at most 100000 changes");
}

/// A flag the scenario would ignore is refused, not silently dropped.
#[test]
fn sim_flags_of_another_scenario_are_refused() {
    refused(&["sim", "join", "--fanout", "0"], "--fanout does not apply to `gossip sim join`");
    refused(&["sim", "rumor", "--preset", "wan"], "--preset does not apply to `gossip sim rumor`");
    refused(&["sim", "failure", "--rate", "5"], "--rate does not apply to `gossip sim failure`");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/late-join.toml");
    refused(&["sim", "run", script, "--nodes", "5"], "--nodes does not apply to `gossip sim run`");
    refused(&["sim", "join", script], "FILE.toml does not apply to `gossip sim join`");
}

/// A chart that could not be written is found before the experiment runs, not after.
#[test]
fn a_plot_into_a_missing_directory_is_refused_before_the_run() {
    let missing = std::env::temp_dir().join(format!("gossip-no-such-dir-{}", std::process::id())).join("x.svg");
    let started = std::time::Instant::now();
    refused(&["sim", "join", "--nodes", "2000", "--plot", &missing.display().to_string()], "no directory");
    // A 2,000-node join would take far longer than the check.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn out_of_range_cluster_values_are_refused() {
    refused(&["cluster", "--nodes", "3", "--limit-s", "18446744073709551615"], "--limit-s must be at most 86400");
}

#[test]
fn agent_flags_that_would_be_ignored_are_refused() {
    let out = gossip(&["agent", "--bind", "127.0.0.1:0", "--seal-mode", "open"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--keyring"), "{}", stderr(&out));
    refused(&["agent", "--bind", "127.0.0.1:0", "--set", "novalue"], "--set novalue: expected KEY=VALUE");
}

/// `--hex` prints the key alone, ready to append to a keyring or signing-key file.
#[test]
fn keygen_hex_is_file_ready() {
    for args in [&["keygen", "--hex"][..], &["keygen", "--signing", "--hex"][..]] {
        let out = gossip(args);
        assert!(out.status.success(), "{}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let key = stdout.trim_end();
        assert_eq!(key.len(), 64, "{stdout:?}");
        assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{stdout:?}");
        assert_eq!(stdout.lines().count(), 1);
        assert!(!stderr(&out).is_empty(), "the id or public key goes to stderr");
    }
}

/// `sim churn --rate` is the rate simulated, above one change per 100 ms tick too.
#[test]
fn churn_runs_the_rate_it_reports() {
    let out = gossip(&["sim", "churn", "--nodes", "12", "--rate", "40", "--duration-s", "5", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["rate_per_s"], 40.0);
    let events = v["events_per_run"].as_f64().expect("events_per_run");
    assert!((150.0..=250.0).contains(&events), "40/s for 5 s gave {events} changes");
}
