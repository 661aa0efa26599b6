//! The script file as written: what TOML deserializes into, before any check.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Node indices as written: `3`, `"3-7"`, or a list of those (inclusive ranges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct NodeSet(pub(super) Vec<(i64, i64)>);

impl<'de> Deserialize<'de> for NodeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeSetVisitor)
    }
}

struct NodeSetVisitor;

impl<'de> Visitor<'de> for NodeSetVisitor {
    type Value = NodeSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node index (3), a range of indices (\"3-7\"), or a list of those")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeSet, E> {
        Ok(NodeSet(vec![(v, v)]))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeSet, E> {
        let v = i64::try_from(v).map_err(|_| E::custom(format!("node index {v} is too large")))?;
        Ok(NodeSet(vec![(v, v)]))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeSet, E> {
        let bad = || E::custom(format!("`{v}` is not a node index or a range like \"3-7\""));
        let parse = |s: &str| s.trim().parse::<i64>().map_err(|_| bad());
        match v.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b {
                    return Err(E::custom(format!("range \"{v}\" is empty: write the lower index first")));
                }
                Ok(NodeSet(vec![(a, b)]))
            }
            None => {
                let a = parse(v)?;
                Ok(NodeSet(vec![(a, a)]))
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeSet, A::Error> {
        let mut all = Vec::new();
        while let Some(NodeSet(part)) = seq.next_element::<NodeSet>()? {
            all.extend(part);
        }
        Ok(NodeSet(all))
    }
}

/// Protocol preset a script starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum PresetName {
    #[default]
    Lan,
    Wan,
    Local,
}

/// How the cluster starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum StartMode {
    /// Every (not late) node starts with the full membership, as a long-running cluster.
    #[default]
    Converged,
    /// Nodes join through the seeds, spread over the first second.
    Join,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSpec {
    pub(super) description: Option<String>,
    pub(super) nodes: i64,
    #[serde(default = "one")]
    pub(super) seed: u64,
    #[serde(default = "one_i64")]
    pub(super) runs: i64,
    #[serde(default)]
    pub(super) preset: PresetName,
    #[serde(default)]
    pub(super) start: StartMode,
    pub(super) seeds: Option<NodeSet>,
    pub(super) late: Option<NodeSet>,
    pub(super) duration_s: Option<f64>,
    #[serde(default)]
    pub(super) config: ConfigSpec,
    #[serde(default)]
    pub(super) network: NetSpec,
    #[serde(default, rename = "event")]
    pub(super) events: Vec<EventSpec>,
    #[serde(default, rename = "check")]
    pub(super) checks: Vec<CheckSpec>,
}

fn one() -> u64 {
    1
}

fn one_i64() -> i64 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigSpec {
    pub(super) probe_interval_ms: Option<u64>,
    pub(super) probe_timeout_ms: Option<u64>,
    pub(super) indirect_checks: Option<usize>,
    pub(super) suspicion_mult: Option<u32>,
    pub(super) suspicion_max_timeout_mult: Option<u32>,
    pub(super) gossip_interval_ms: Option<u64>,
    pub(super) gossip_fanout: Option<usize>,
    pub(super) retransmit_mult: Option<u32>,
    pub(super) push_pull_interval_s: Option<f64>,
    pub(super) awareness_max_multiplier: Option<u32>,
    pub(super) lifeguard: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NetSpec {
    pub(super) loss: Option<f64>,
    pub(super) duplicate: Option<f64>,
    pub(super) reorder: Option<f64>,
    pub(super) latency_ms: Option<[f64; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NetEventSpec {
    pub(super) at: f64,
    pub(super) loss: Option<f64>,
    pub(super) duplicate: Option<f64>,
    pub(super) reorder: Option<f64>,
    pub(super) latency_ms: Option<[f64; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AtSpec {
    pub(super) at: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PartitionSpec {
    pub(super) at: f64,
    pub(super) groups: Vec<NodeSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NodesSpec {
    pub(super) at: f64,
    #[serde(alias = "node")]
    pub(super) nodes: NodeSet,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StallSpec {
    pub(super) at: f64,
    #[serde(alias = "node")]
    pub(super) nodes: NodeSet,
    pub(super) for_s: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SlowSpec {
    pub(super) at: f64,
    #[serde(alias = "node")]
    pub(super) nodes: NodeSet,
    pub(super) delay_ms: f64,
    pub(super) for_s: f64,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub(super) enum EventSpec {
    Network(NetEventSpec),
    Partition(PartitionSpec),
    Heal(AtSpec),
    Crash(NodesSpec),
    Restart(NodesSpec),
    Leave(NodesSpec),
    Join(NodesSpec),
    Stall(StallSpec),
    Slow(SlowSpec),
}

impl EventSpec {
    pub(super) fn at(&self) -> f64 {
        match self {
            EventSpec::Network(e) => e.at,
            EventSpec::Partition(e) => e.at,
            EventSpec::Heal(e) => e.at,
            EventSpec::Crash(e) | EventSpec::Restart(e) | EventSpec::Leave(e) | EventSpec::Join(e) => e.at,
            EventSpec::Stall(e) => e.at,
            EventSpec::Slow(e) => e.at,
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self {
            EventSpec::Network(_) => "network",
            EventSpec::Partition(_) => "partition",
            EventSpec::Heal(_) => "heal",
            EventSpec::Crash(_) => "crash",
            EventSpec::Restart(_) => "restart",
            EventSpec::Leave(_) => "leave",
            EventSpec::Join(_) => "join",
            EventSpec::Stall(_) => "stall",
            EventSpec::Slow(_) => "slow",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowSpec {
    pub(super) at: f64,
    pub(super) within: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NodesCheckSpec {
    pub(super) at: f64,
    pub(super) within: Option<f64>,
    #[serde(alias = "node")]
    pub(super) nodes: NodeSet,
    pub(super) by: Option<NodeSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SinceSpec {
    pub(super) at: f64,
    pub(super) since: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeenSpec {
    pub(super) at: f64,
    pub(super) within: Option<f64>,
    pub(super) min: Option<i64>,
    pub(super) max: Option<i64>,
    pub(super) by: Option<NodeSet>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "expect", rename_all = "snake_case")]
pub(super) enum CheckSpec {
    Converged(WindowSpec),
    DeadDeclared(NodesCheckSpec),
    Alive(NodesCheckSpec),
    NoFalseDead(SinceSpec),
    MembersSeen(SeenSpec),
}

impl CheckSpec {
    pub(super) fn at(&self) -> f64 {
        match self {
            CheckSpec::Converged(c) => c.at,
            CheckSpec::DeadDeclared(c) | CheckSpec::Alive(c) => c.at,
            CheckSpec::NoFalseDead(c) => c.at,
            CheckSpec::MembersSeen(c) => c.at,
        }
    }

    pub(super) fn within(&self) -> Option<f64> {
        match self {
            CheckSpec::Converged(c) => c.within,
            CheckSpec::DeadDeclared(c) | CheckSpec::Alive(c) => c.within,
            CheckSpec::NoFalseDead(_) => None,
            CheckSpec::MembersSeen(c) => c.within,
        }
    }
}
