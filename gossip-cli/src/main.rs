//! `gossip` — the project's command line.
//!
//! `demo` (16 real UDP nodes in one process), `agent` (one node, JSON lines), `cluster` (the
//! real-network benchmark), `sim` (deterministic experiments on the simulator), `certs`
//! (TLS material for the QUIC transport) and `keygen` (keyring and Ed25519 signing keys).
#![forbid(unsafe_code)]

/// `println!` that exits quietly when stdout is closed (e.g. piped into `head`) instead of
/// panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod agent;
mod certs;
mod cluster;
mod demo;
mod keygen;
mod local;
mod plot;
mod sim;
mod sim_run;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Gossip protocols for real clusters: SWIM + Lifeguard membership on a sans-IO core.
#[derive(Debug, Parser)]
#[command(name = "gossip", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// 16 real UDP nodes on 127.0.0.1: joins, a broadcast, a crash detected, a leave.
    Demo(demo::DemoArgs),
    /// Run one node until SIGINT/SIGTERM; events as JSON lines, commands on stdin.
    Agent(agent::AgentArgs),
    /// Real-network benchmark: N nodes on loopback, join, steady state, crash detection.
    Cluster(cluster::ClusterArgs),
    /// Deterministic experiments on the simulator (real protocol core, virtual network).
    Sim(sim::SimArgs),
    /// Generate a cluster CA and node certificates for the QUIC transport.
    Certs(certs::CertsArgs),
    /// Generate a key for the keyring (datagram encryption).
    Keygen(keygen::KeygenArgs),
}

/// The arguments of subcommand `name` given on the command line (not defaults), by id.
fn given_on_command_line(matches: &ArgMatches, name: &str) -> Vec<String> {
    let (Some(m), Some(command)) = (matches.subcommand_matches(name), Cli::command().find_subcommand(name).cloned())
    else {
        return Vec::new();
    };
    // Arguments only: derive also records the struct's group.
    let is_arg = |id: &str| command.get_arguments().any(|a| a.get_id() == id);
    m.ids()
        .filter(|id| is_arg(id.as_str()) && m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_owned())
        .collect()
}

fn main() {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Sim(args) => {
            sim::check_flags(args.scenario(), &given_on_command_line(&matches, "sim")).and_then(|()| sim::run(args))
        }
        Command::Certs(args) => certs::run(args),
        Command::Keygen(args) => keygen::run(args),
    };
    if let Err(e) = result {
        eprintln!("gossip: {e}");
        std::process::exit(2);
    }
}
