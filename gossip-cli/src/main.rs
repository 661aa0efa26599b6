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

use clap::{Parser, Subcommand};

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

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Keygen(args) => keygen::run(args),
    };
    if let Err(e) = result {
        eprintln!("gossip: {e}");
        std::process::exit(2);
    }
}
