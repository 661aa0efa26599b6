//! `gossip` — the project's command line.
//!
//! Today it runs the simulator experiments (`gossip sim ...`). The real-network commands of
//! DESIGN.md §5 (`demo`, `agent`, `cluster`) arrive with the runtime adapters.
#![forbid(unsafe_code)]

mod sim;

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
    /// Deterministic experiments on the simulator (real protocol core, virtual network).
    Sim(sim::SimArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim::run(args),
    };
    if let Err(e) = result {
        eprintln!("gossip: {e}");
        std::process::exit(2);
    }
}
