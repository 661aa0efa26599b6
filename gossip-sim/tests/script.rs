//! Scripted scenarios (`gossip sim run FILE.toml`): the shipped examples parse and pass, runs
//! are deterministic, checks fail when they should, and bad files are refused with a reason.

use std::path::PathBuf;

use gossip_sim::script::{Script, ScriptError, ScriptResult};

fn examples() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable example");
            (p, text)
        })
        .collect();
    files.sort();
    files
}

fn run(text: &str) -> ScriptResult {
    Script::from_toml(text).unwrap_or_else(|e| panic!("script refused: {e}")).run(|_| {})
}

#[test]
fn every_example_parses() {
    let files = examples();
    assert!(files.len() >= 3, "expected the example scenarios, found {}", files.len());
    for (path, text) in &files {
        let script = Script::from_toml(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(script.check_count() > 0, "{}: an example should check something", path.display());
        assert!(script.description().is_some(), "{}: an example should describe itself", path.display());
    }
}

#[test]
fn every_small_example_passes() {
    for (path, text) in examples() {
        let script = Script::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if script.nodes() > 50 {
            continue;
        }
        let r = script.run(|_| {});
        let failed: Vec<String> = r
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} at {} s: {}", c.check, c.at_s, c.detail))
            .collect();
        assert!(r.passed, "{}: {failed:?}", path.display());
        assert!(!r.curve.is_empty());
    }
}

const CRASH: &str = r#"
nodes = 12
seed = 4
[[event]]
at = 2
do = "crash"
node = 3
[[check]]
at = 2
expect = "dead_declared"
node = 3
within = 30
[[check]]
at = 2
expect = "converged"
within = 30
[[check]]
at = 32
expect = "no_false_dead"
"#;

#[test]
fn same_seed_same_result() {
    let a = run(CRASH);
    let b = run(CRASH);
    assert_eq!(a, b);
    assert!(a.passed, "{:?}", a.checks);
    // The crashed member's removal is timed, and that time is after the crash.
    let held = a.checks[0].held_at_s.expect("held");
    assert!(held > 2.0 && held < 32.0, "{held}");
}

#[test]
fn runs_use_successive_seeds() {
    let r = run(&CRASH.replace("seed = 4", "seed = 4\nruns = 3"));
    assert_eq!(r.runs, 3);
    assert!(r.checks.iter().all(|c| c.runs_passed == 3), "{:?}", r.checks);
    let first = run(CRASH);
    // The first of the three runs is the single run with the same seed.
    assert_eq!(r.curve, first.curve);
}

#[test]
fn failing_checks_fail_with_details() {
    // Nobody has detected a crash the instant it happens, and a partition's far side is
    // declared dead although alive.
    let r = run(r#"
nodes = 10
[[event]]
at = 1
do = "crash"
node = 4
[[event]]
at = 2
do = "partition"
groups = ["0-4", "5-9"]
[[check]]
at = 1.5
expect = "dead_declared"
node = 4
[[check]]
at = 1.5
expect = "converged"
[[check]]
at = 40
expect = "no_false_dead"
[[check]]
at = 40
expect = "members_seen"
min = 9
"#);
    assert!(!r.passed);
    assert_eq!(r.checks_failed, 4, "{:?}", r.checks);
    assert!(r.checks[0].detail.contains("n4 still live"), "{}", r.checks[0].detail);
    assert!(
        r.checks[1].detail.contains("missing n4") || r.checks[1].detail.contains("extra n4"),
        "{}",
        r.checks[1].detail
    );
    assert!(r.checks[2].detail.contains("declarations"), "{}", r.checks[2].detail);
    assert!(r.checks[3].detail.contains("out of range"), "{}", r.checks[3].detail);
    assert!(r.false_dead > 0);
    assert!(r.checks.iter().all(|c| c.held_at_s.is_none()));
}

#[test]
fn late_nodes_join_on_their_side_of_a_partition() {
    // n9 starts during the split: it lands in its group and sees only that side.
    let r = run(r#"
nodes = 10
seeds = [0, 5]
late = 9
[[event]]
at = 1
do = "partition"
groups = ["0-4", "5-9"]
[[event]]
at = 2
do = "join"
node = 9
[[check]]
at = 30
expect = "members_seen"
min = 5
max = 5
by = "5-9"
[[check]]
at = 30
expect = "dead_declared"
nodes = "0-4"
by = 9
[[event]]
at = 30
do = "heal"
[[check]]
at = 30
expect = "converged"
within = 60
"#);
    assert!(r.passed, "{:?}", r.checks);
}

/// A late node listed first among the seeds is not started early: the first seed there from
/// the start is, and the late one comes at its own `join` event.
#[test]
fn a_late_first_seed_starts_at_its_join_event() {
    let r = run(r#"
nodes = 4
start = "join"
seeds = [3, 0]
late = 3
[[check]]
at = 10
expect = "members_seen"
min = 3
max = 3
by = "0-2"
[[event]]
at = 15
do = "join"
node = 3
[[check]]
at = 15
expect = "converged"
within = 30
"#);
    assert!(r.passed, "{:?}", r.checks);
}

#[test]
fn restart_leave_stall_slow_and_network_events_run() {
    let r = run(r#"
nodes = 16
preset = "local"
start = "join"
[[event]]
at = 3
do = "network"
loss = 0.05
latency_ms = [1, 10]
[[event]]
at = 4
do = "stall"
node = 2
for_s = 0.5
[[event]]
at = 5
do = "slow"
node = 3
delay_ms = 200
for_s = 3
[[event]]
at = 6
do = "leave"
node = 15
[[event]]
at = 8
do = "crash"
node = 14
[[event]]
at = 9
do = "restart"
nodes = [14, 15]
[[check]]
at = 9
expect = "alive"
nodes = "14-15"
within = 30
[[check]]
at = 9
expect = "converged"
within = 30
"#);
    assert!(r.passed, "{:?}", r.checks);
}

fn refused(text: &str) -> ScriptError {
    match Script::from_toml(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let cases: &[(&str, &str)] = &[
        ("nodes = 10\ncolour = \"red\"", "unknown field `colour`"),
        ("nodes = 10\n[config]\nprobe_ms = 5", "unknown field `probe_ms`"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"crash\"\nnode = 2\nfor_s = 3", "unknown field `for_s`"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"explode\"", "unknown variant `explode`"),
        ("nodes = 10\n[[event]]\nat = 1\nnode = 2", "missing field `do`"),
        ("nodes = 10\n[[check]]\nat = 1\nexpect = \"happy\"", "unknown variant `happy`"),
        ("nodes = \"ten\"", "invalid type"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"crash\"\nnode = 10", "node 10 is out of range"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"crash\"\nnode = -1", "node -1 is out of range"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"crash\"\nnode = \"2-x\"", "not a node index"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"crash\"\nnode = \"5-2\"", "is empty"),
        ("nodes = 10\n[[event]]\nat = 5\ndo = \"heal\"\n[[event]]\nat = 3\ndo = \"heal\"", "time order"),
        ("nodes = 10\n[[check]]\nat = 5\nexpect = \"converged\"\n[[check]]\nat = 3\nexpect = \"converged\"", "time order"),
        ("nodes = 10\n[[check]]\nat = -2\nexpect = \"converged\"", "zero or more"),
        ("nodes = 10\n[[check]]\nat = 1e9\nexpect = \"converged\"", "at most"),
        ("nodes = 10\n[[check]]\nat = nan\nexpect = \"converged\"", "number of seconds"),
        ("nodes = 1\nduration_s = 5", "nodes = 1"),
        ("nodes = 10\nruns = 0\nduration_s = 5", "runs = 0"),
        ("nodes = 10", "nothing to run"),
        ("nodes = 10\nduration_s = 5\n[[check]]\nat = 9\nexpect = \"converged\"", "ends before"),
        ("nodes = 10\nduration_s = 5\n[network]\nloss = 1.5", "probability"),
        ("nodes = 10\nduration_s = 5\n[network]\nlatency_ms = [5, 1]", "latency_ms"),
        ("nodes = 10\nduration_s = 5\n[config]\nprobe_timeout_ms = 5000", "probe_timeout"),
        ("nodes = 10\nduration_s = 5\n[config]\ngossip_fanout = 0", "gossip_fanout"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"partition\"\ngroups = [\"0-5\", \"5-9\"]", "node 5 is in group 1 and in group 2"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"partition\"\ngroups = []", "groups is empty"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"crash\"\nnode = 2\n[[event]]\nat = 2\ndo = \"stall\"\nnode = 2\nfor_s = 1", "node 2 is crashed"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"crash\"\nnode = 2\n[[event]]\nat = 2\ndo = \"crash\"\nnode = 2", "node 2 is crashed"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"join\"\nnode = 2", "has already started"),
        ("nodes = 10\nlate = 9\n[[event]]\nat = 1\ndo = \"crash\"\nnode = 9", "has not started yet"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"leave\"\nnode = 2\n[[event]]\nat = 2\ndo = \"leave\"\nnode = 2", "has already left"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"stall\"\nnode = 2\nfor_s = 0", "for_s must be more than zero"),
        ("nodes = 10\n[[event]]\nat = 1\ndo = \"slow\"\nnode = 2\nfor_s = 1\ndelay_ms = -100", "delay_ms = -100: must be a number of milliseconds"),
        ("nodes = 10\nlate = \"0-9\"\nduration_s = 5", "late"),
        ("nodes = 10\nseeds = 3\nlate = 3\nduration_s = 5", "every seed is `late`"),
        ("nodes = 10\n[[check]]\nat = 1\nexpect = \"members_seen\"", "needs min, max or both"),
        ("nodes = 10\n[[check]]\nat = 1\nexpect = \"members_seen\"\nmin = 5\nmax = 3", "larger than max"),
        ("nodes = 10\n[[check]]\nat = 1\nexpect = \"members_seen\"\nmin = 11", "between 0 and 10"),
        ("nodes = 10\n[[check]]\nat = 1\nexpect = \"no_false_dead\"\nsince = 2", "since must not be later"),
        ("nodes = 10\n[[check]]\nat = 1\nexpect = \"no_false_dead\"\nwithin = 2", "unknown field `within`"),
        ("nodes = 10\n[[check]]\nat = 1\nexpect = \"alive\"\nnode = 3\nby = 12", "node 12 is out of range"),
        ("nodes = [", "TOML parse error"),
    ];
    for (text, expected) in cases {
        let e = refused(text).to_string();
        assert!(e.contains(expected), "for\n{text}\nexpected an error mentioning {expected:?}, got:\n{e}");
    }
}
