//! `gossip sim run FILE.toml` end to end: exit 0 with every check passed, 1 with a check
//! failed, 2 for a bad file; `--json` prints one line; `--plot` writes an SVG.

use std::path::PathBuf;
use std::process::{Command, Output};

fn gossip(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gossip")).args(args).output().expect("gossip runs")
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name).display().to_string()
}

/// A file of its own under the temporary directory.
fn temp(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("gossip-sim-run-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("temp file written");
    path
}

#[test]
fn example_passes_as_one_json_line() {
    let out = gossip(&["sim", "run", &example("late-join.toml"), "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(v["scenario"], "run");
    assert_eq!(v["passed"], true);
    assert_eq!(v["nodes"], 24);
    assert!(v["checks"].as_array().is_some_and(|c| c.len() == 3 && c.iter().all(|c| c["passed"] == true)));
}

#[test]
fn failed_check_exits_1_with_a_table_and_a_plot() {
    let file = temp(
        "fail.toml",
        "nodes = 8\n[[event]]\nat = 1\ndo = \"crash\"\nnode = 2\n[[check]]\nat = 1.2\nexpect = \"dead_declared\"\nnode = 2\n\
         [[check]]\nat = 20\nexpect = \"converged\"\n",
    );
    let svg = temp("fail.svg", "");
    let out = gossip(&["sim", "run", &file.display().to_string(), "--plot", &svg.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("FAIL") && stdout.contains("pass"), "{stdout}");
    assert!(stdout.contains("1 of 2 checks FAILED"), "{stdout}");
    let chart = std::fs::read_to_string(&svg).expect("plot written");
    assert!(chart.starts_with("<svg") && chart.contains("seen per node"), "{}", &chart[..chart.len().min(200)]);
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(svg);
}

#[test]
fn bad_file_exits_2_with_the_reason() {
    let file = temp("bad.toml", "nodes = 8\n[[event]]\nat = 1\ndo = \"crash\"\nnode = 8\n");
    let out = gossip(&["sim", "run", &file.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("node 8 is out of range"), "{stderr}");
    let _ = std::fs::remove_file(file);
    let out = gossip(&["sim", "run", "/nonexistent/scenario.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn seed_and_runs_on_the_command_line_replace_the_files() {
    let file = example("late-join.toml");
    let out = gossip(&["sim", "run", &file, "--json", "--seed", "7", "--runs", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!((v["seed"].as_u64(), v["runs"].as_u64()), (Some(7), Some(2)));
    let out = gossip(&["sim", "run", &file, "--runs", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs = 0"), "{}", String::from_utf8_lossy(&out.stderr));
}
