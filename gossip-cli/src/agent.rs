//! `gossip agent`: one node until SIGINT/SIGTERM (then a graceful leave). Events go to stdout
//! as JSON lines; commands come on stdin, one per line.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use gossip_core::{Config, Event, MemberRecord};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::local::{self, RuntimeKind};

/// Arguments of `gossip agent`.
#[derive(Debug, Args)]
#[command(after_help = "Commands on stdin, one per line:\n  \
    members          print the live members as one JSON line\n  \
    broadcast TEXT   send TEXT to every member (delivered once each)\n  \
    leave            leave the cluster gracefully and exit\n  \
    set KEY VALUE    set one of this node's keys (replicated to every member)\n  \
    del KEY          delete one of this node's keys\n  \
    get NODE KEY     print NODE's value of KEY as this node knows it\n  \
    keys NODE        print NODE's keys as this node knows them\n  \
    incr NAME [N]    add N (default 1) to the replicated counter NAME\n  \
    decr NAME [N]    subtract N (default 1) from the counter NAME\n  \
    counter NAME     print the counter's value as this node knows it\n  \
    sadd NAME ITEM   add ITEM to the replicated add-wins set NAME\n  \
    srem NAME ITEM   remove ITEM from the set NAME\n  \
    smembers NAME    print the set's items as this node knows them\n  \
    agg NAME VALUE   contribute VALUE (a number, or - to stop) to the aggregate NAME\n  \
    estimate NAME    print this node's estimate of NAME: sum, count, average\n  \
    key install HEX  add a key to the keyring (it opens; a node without one starts in open mode)\n  \
    key use ID       make an installed key the one that seals\n  \
    key remove ID    remove a key (not the primary)\n  \
    key list         print the key ids (primary first) and the seal mode\n  \
    seal MODE        open (read sealed, send plain) | seal (send sealed, read both) | require\n\n\
Keyring file: one 64-hex-digit key per line (`gossip keygen`), the first seals; # comments.\n\
Rotating: `key install NEW` on every node, then `key use NEW_ID` on every node, then\n\
`key remove OLD_ID`. A node that was away during a rotation drops what it cannot open\n\
(counted as `unopenable`, with a warning): install the current key on it.")]
pub struct AgentArgs {
    /// Address to bind, e.g. 127.0.0.1:7946 (or 0.0.0.0:7946 with --advertise).
    #[arg(long)]
    bind: SocketAddr,
    /// Address others reach this node at, when it differs from --bind (required with an
    /// unspecified bind address such as 0.0.0.0).
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// Seed to join through; repeatable.
    #[arg(long = "join")]
    join: Vec<SocketAddr>,
    /// Transport: UDP, or QUIC datagrams with mutual TLS (needs --ca, --cert and --key; tokio).
    #[arg(long, value_enum, default_value_t = local::Transport::Udp)]
    transport: local::Transport,
    /// QUIC: the cluster CA certificate (PEM), as `gossip certs` writes it.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// QUIC: this node's certificate (PEM).
    #[arg(long)]
    cert: Option<std::path::PathBuf>,
    /// QUIC: this node's private key (PEM).
    #[arg(long)]
    key: Option<std::path::PathBuf>,
    /// Async runtime driving the node.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Tokio)]
    runtime: RuntimeKind,
    /// Member name (default: the bind address).
    #[arg(long)]
    name: Option<String>,
    /// Keyring file: every datagram sealed with ChaCha20-Poly1305 (see `gossip keygen`).
    #[arg(long)]
    keyring: Option<std::path::PathBuf>,
    /// With --keyring: open (read sealed, send plain), seal (send sealed, read both) or
    /// require (the default).
    #[arg(long, value_enum, default_value_t = SealArg::Require, requires = "keyring")]
    seal_mode: SealArg,
    /// Sign this node's self-state with the Ed25519 secret key in FILE (64 hex digits, from
    /// `gossip keygen --signing`); every member of the cluster must sign.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<std::path::PathBuf>,
    /// With --signing-key: accept only the members listed in FILE (one `NAME PUBLIC_KEY` per
    /// line) instead of trusting each name's first key.
    #[arg(long, value_name = "FILE", requires = "signing_key")]
    trust: Option<std::path::PathBuf>,
    /// Key/value pair KEY=VALUE this node sets at start; repeatable.
    #[arg(long = "set")]
    set: Vec<String>,
}

pub fn run(args: AgentArgs) -> Result<(), String> {
    if let Some(pair) = args.set.iter().find(|pair| !pair.contains('=')) {
        return Err(format!("--set {pair}: expected KEY=VALUE"));
    }
    if args.transport == local::Transport::Quic {
        if args.runtime != RuntimeKind::Tokio {
            return Err("--transport quic runs on tokio only (quinn's runtime)".into());
        }
        if args.ca.is_none() || args.cert.is_none() || args.key.is_none() {
            return Err("--transport quic needs --ca, --cert and --key (see `gossip certs`)".into());
        }
    } else if args.ca.is_some() || args.cert.is_some() || args.key.is_some() {
        return Err("--ca, --cert and --key are for --transport quic".into());
    }

    for pair in &args.set {
        if !pair.contains('=') {
            return Err(format!("--set {pair}: expected KEY=VALUE"));
        }
    }
    let rt = local::runtime()?;
    rt.block_on(agent(args))
}

fn record_json(m: &MemberRecord<SocketAddr>) -> Value {
    json!({
        "name": m.name.as_str(),
        "addr": m.addr.to_string(),
        "generation": m.generation,
        "incarnation": m.incarnation,
        "state": format!("{:?}", m.state).to_lowercase(),
        "zone": m.zone.as_deref(),
    })
}

fn event_json(event: &Event<SocketAddr>) -> Value {
    let with = |kind: &str, m: &MemberRecord<SocketAddr>| {
        let mut v = record_json(m);
        v["event"] = json!(kind);
        v
    };
    match event {
        Event::MemberUp(m) => with("member_up", m),
        Event::MemberSuspect(m) => with("member_suspect", m),
        Event::MemberDown(m) => with("member_down", m),
        Event::MemberLeft(m) => with("member_left", m),
        Event::MemberUpdated(m) => with("member_updated", m),
        Event::Joined => json!({"event": "joined"}),
        Event::Broadcast { origin, id, payload } => json!({
            "event": "broadcast",
            "origin": origin.as_str(),
            "id": id,
            "text": String::from_utf8_lossy(payload),
        }),
        Event::KeyChanged { node, key, version } => {
            json!({"event": "key_changed", "node": node.as_str(), "key": key.as_str(), "version": version})
        }
        Event::KeyDeleted { node, key, version } => {
            json!({"event": "key_deleted", "node": node.as_str(), "key": key.as_str(), "version": version})
        }
        Event::CrdtChanged { object } => json!({"event": "crdt_changed", "object": object.as_str()}),
        other => json!({"event": "other", "debug": format!("{other:?}")}),
    }
}

/// Seal modes on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SealArg {
    /// Open sealed datagrams, send plaintext.
    Open,
    /// Send sealed, accept both.
    Seal,
    /// Send sealed, drop plaintext.
    Require,
}

impl SealArg {
    fn mode(self) -> gossip_core::wire::security::SealMode {
        use gossip_core::wire::security::SealMode;
        match self {
            SealArg::Open => SealMode::Open,
            SealArg::Seal => SealMode::Seal,
            SealArg::Require => SealMode::Require,
        }
    }
}

async fn agent(args: AgentArgs) -> Result<(), String> {
    let keyring = match &args.keyring {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--keyring {}: {e}", path.display()))?;
            Some(
                gossip_core::wire::security::Keyring::parse(&text)
                    .map_err(|e| format!("--keyring {}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let signing = signing_settings(&args)?;
    let config = Config { keyring, seal_mode: args.seal_mode.mode(), signing, ..Config::lan() };
    let name = args.name.clone().unwrap_or_else(|| args.bind.to_string());
    let quic_tls = match (&args.ca, &args.cert, &args.key) {
        (Some(ca), Some(cert), Some(key)) => {
            Some(gossip_quic::ClusterTls::from_pem_files(ca, cert, key).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let (handle, mut events) = match (quic_tls, args.runtime) {
        (Some(tls), _) => {
            let b = gossip_quic::builder(config, tls).bind(args.bind).name(name).seeds(args.join.clone());
            match args.advertise {
                Some(a) => b.advertise(a).spawn(),
                None => b.spawn(),
            }
        }
        (None, RuntimeKind::Tokio) => {
            let b = gossip_tokio::Builder::new(config).bind(args.bind).name(name).seeds(args.join.clone());
            match args.advertise {
                Some(a) => b.advertise(a).spawn(),
                None => b.spawn(),
            }
        }
        (None, RuntimeKind::Smol) => {
            let b = gossip_smol::Builder::new(config).bind(args.bind).name(name).seeds(args.join.clone());
            match args.advertise {
                Some(a) => b.advertise(a).spawn(),
                None => b.spawn(),
            }
        }
    }
    .map_err(|e| e.to_string())?;
    out!(
        "{}",
        json!({"event": "started", "name": handle.name(), "addr": handle.local_addr().to_string(), "generation": handle.generation()})
    );
    for pair in &args.set {
        if let Some((key, value)) = pair.split_once('=') {
            handle.set(key, value.as_bytes().to_vec()).map_err(|e| format!("--set {pair}: {e}"))?;
        }
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    // Installed once, like SIGTERM: a Ctrl-C that lands while an event is being handled is
    // kept for the next turn of the loop, not lost.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot listen for SIGINT: {e}"))?;
    loop {
        tokio::select! {
            item = events.next() => match item {
                Some(Ok(event)) => out!("{}", event_json(&event)),
                Some(Err(lagged)) => out!("{}", json!({"event": "lagged", "missed": lagged.0})),
                None => break,
            },
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if command(&handle, line.trim()) {
                        break;
                    }
                }
                Ok(None) | Err(_) => stdin_open = false,
            },
            _ = interrupt.recv() => break,
            _ = term.recv() => break,
        }
    }
    if handle.is_running() && !handle.has_left() {
        let _ = tokio::time::timeout(Duration::from_secs(5), handle.shutdown()).await;
    }
    out!("{}", json!({"event": "stopped"}));
    Ok(())
}

/// Runs one stdin command; returns true to exit.
fn command(handle: &gossip_tokio::Handle, line: &str) -> bool {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "" => {}
        "members" => {
            let members: Vec<Value> = handle.members().iter().map(record_json).collect();
            out!("{}", json!({"event": "members", "members": members}));
        }
        "broadcast" => match handle.broadcast(rest.as_bytes().to_vec()) {
            Ok(id) => out!("{}", json!({"event": "broadcast_sent", "id": id})),
            Err(e) => out!("{}", json!({"event": "error", "command": "broadcast", "error": e.to_string()})),
        },
        "leave" => return true,
        "set" => {
            let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
            match handle.set(key, value.as_bytes().to_vec()) {
                Ok(version) => out!("{}", json!({"event": "set", "key": key, "version": version})),
                Err(e) => out!("{}", json!({"event": "error", "command": "set", "error": e.to_string()})),
            }
        }
        "del" => match handle.delete(rest) {
            Ok(version) => out!("{}", json!({"event": "deleted", "key": rest, "version": version})),
            Err(e) => out!("{}", json!({"event": "error", "command": "del", "error": e.to_string()})),
        },
        "get" => {
            let (node, key) = rest.split_once(' ').unwrap_or((rest, ""));
            let found = handle.get(node, key);
            out!(
                "{}",
                json!({
                    "event": "value",
                    "node": node,
                    "key": key,
                    "value": found.as_ref().map(|(v, _)| String::from_utf8_lossy(v).into_owned()),
                    "version": found.map(|(_, version)| version),
                })
            );
        }
        "keys" => {
            let keys: Vec<Value> = handle
                .keys(rest)
                .into_iter()
                .map(|(k, v, version)| json!({"key": k, "value": String::from_utf8_lossy(&v), "version": version}))
                .collect();
            out!("{}", json!({"event": "keys", "node": rest, "keys": keys}));
        }
        "key" | "seal" => {
            if let Err(e) = keyring_command(handle, cmd, rest) {
                out!("{}", json!({"event": "error", "command": cmd, "error": e}));
            }
        }
        "incr" | "decr" | "counter" | "sadd" | "srem" | "smembers" | "agg" | "estimate" => {
            if let Err(e) = replicated(handle, cmd, rest) {
                out!("{}", json!({"event": "error", "command": cmd, "error": e}));
            }
        }
        other => out!("{}", json!({"event": "error", "command": other, "error": "unknown command"})),
    }
    false
}

/// `key install|use|remove|list` and `seal MODE`.
/// Reads --signing-key and --trust.
fn signing_settings(args: &AgentArgs) -> Result<Option<gossip_core::wire::signing::Signing>, String> {
    use gossip_core::wire::signing::{Keypair, Signing, Trust};
    let Some(path) = &args.signing_key else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("--signing-key {}: {e}", path.display()))?;
    let keypair = Keypair::from_hex(&text).map_err(|e| format!("--signing-key {}: {e}", path.display()))?;
    let trust = match &args.trust {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--trust {}: {e}", path.display()))?;
            Trust::parse_list(&text).map_err(|e| format!("--trust {}: {e}", path.display()))?
        }
        None => Trust::FirstUse,
    };
    Ok(Some(Signing { trust, ..Signing::new(keypair) }))
}

fn keyring_command(handle: &gossip_tokio::Handle, cmd: &str, rest: &str) -> Result<(), String> {
    use gossip_core::wire::security::{Key, SealMode};
    let (sub, arg) = rest.split_once(' ').map_or((rest, ""), |(s, a)| (s, a.trim()));
    match (cmd, sub) {
        ("seal", mode) => {
            let mode = match mode {
                "open" => SealMode::Open,
                "seal" => SealMode::Seal,
                "require" => SealMode::Require,
                other => return Err(format!("{other:?}: expected open, seal or require")),
            };
            handle.set_seal_mode(mode).map_err(|e| e.to_string())?;
        }
        ("key", "install") => {
            let key = Key::from_hex(arg).map_err(|e| e.to_string())?;
            handle.install_key(key).map_err(|e| e.to_string())?;
        }
        ("key", "use") => handle.use_key(arg).map_err(|e| e.to_string())?,
        ("key", "remove") => handle.remove_key(arg).map_err(|e| e.to_string())?,
        ("key", "list") => {}
        (_, other) => return Err(format!("{other:?}: expected install HEX, use ID, remove ID or list")),
    }
    let (ids, mode) =
        handle.keyring().map_or((Vec::new(), None), |(ids, m)| (ids, Some(format!("{m:?}").to_lowercase())));
    out!("{}", json!({"event": "keyring", "keys": ids, "seal_mode": mode}));
    Ok(())
}

/// The CRDT and aggregate commands.
fn replicated(handle: &gossip_tokio::Handle, cmd: &str, rest: &str) -> Result<(), String> {
    use gossip_core::crdt::{AwSet, PnCounter};
    let (name, arg) = rest.split_once(' ').map_or((rest, ""), |(n, a)| (n, a.trim()));
    if name.is_empty() {
        return Err(format!("usage: {cmd} NAME ..."));
    }
    let count = || -> Result<u64, String> {
        if arg.is_empty() {
            Ok(1)
        } else {
            arg.parse().map_err(|_| format!("{arg:?} is not a non-negative integer"))
        }
    };
    let counter = |h: &gossip_tokio::Handle| h.crdt::<PnCounter>(name).map(|c| c.value().to_string());
    match cmd {
        "incr" | "decr" => {
            let by = count()?;
            let up = cmd == "incr";
            handle
                .update_crdt::<PnCounter>(name, |c, me| if up { c.increment(me, by) } else { c.decrement(me, by) })
                .map_err(|e| e.to_string())?;
            out!("{}", json!({"event": "counter", "name": name, "value": counter(handle)}));
        }
        "counter" => out!("{}", json!({"event": "counter", "name": name, "value": counter(handle)})),
        "sadd" | "srem" => {
            if arg.is_empty() {
                return Err(format!("usage: {cmd} NAME ITEM"));
            }
            let item = arg.as_bytes().to_vec();
            if cmd == "sadd" {
                handle.update_crdt::<AwSet>(name, |s, me| s.add(me, item)).map_err(|e| e.to_string())?;
            } else {
                handle.update_crdt::<AwSet>(name, |s, _| s.remove(&item)).map_err(|e| e.to_string())?;
            }
            out!("{}", json!({"event": "set_updated", "name": name}));
        }
        "smembers" => {
            let items: Vec<String> = handle
                .crdt::<AwSet>(name)
                .map(|s| s.elements().map(|e| String::from_utf8_lossy(e).into_owned()).collect())
                .unwrap_or_default();
            out!("{}", json!({"event": "set", "name": name, "items": items}));
        }
        "agg" => {
            let value = match arg {
                "-" => None,
                v => Some(v.parse::<f64>().map_err(|_| format!("{v:?} is not a number"))?),
            };
            handle.set_aggregate_value(name, value).map_err(|e| e.to_string())?;
            out!("{}", json!({"event": "aggregate_set", "name": name, "value": value}));
        }
        _ => {
            let e = handle.aggregate(name);
            out!(
                "{}",
                json!({
                    "event": "estimate",
                    "name": name,
                    "sum": e.map(|e| e.sum),
                    "count": e.map(|e| e.count),
                    "average": e.map(|e| e.average),
                    "epoch": e.map(|e| e.epoch),
                })
            );
        }
    }
    Ok(())
}
