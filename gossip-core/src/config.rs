//! Protocol configuration, presets and validation.
//!
//! Every field says what it controls and, where one exists, its HashiCorp memberlist
//! counterpart, so that operators who know memberlist can map their settings over.
//! A [`Config`] is checked by [`Config::validate`] (called by `Node::new`): an impossible
//! configuration is an error at construction, never a hang later.

use std::time::Duration;

use thiserror::Error;

/// Why a [`Config`] was rejected.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count that must be positive is zero.
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    /// A duration that must be positive is zero.
    #[error("`{0}` must be longer than zero")]
    ZeroDuration(&'static str),
    /// The probe timeout must leave room for indirect probes within the probe interval.
    #[error("probe_timeout ({timeout:?}) must be shorter than probe_interval ({interval:?})")]
    ProbeTimeoutTooLong {
        /// The configured probe timeout.
        timeout: Duration,
        /// The configured probe interval.
        interval: Duration,
    },
    /// The phi conviction threshold is not a positive number.
    #[error("phi_accrual.conviction_threshold must be a positive number")]
    BadPhiThreshold,
    /// `min_probe_timeout` is longer than `probe_timeout`.
    #[error("min_probe_timeout ({min:?}) must not be longer than probe_timeout ({max:?})")]
    MinProbeTimeoutTooLong {
        /// The configured minimum.
        min: Duration,
        /// The configured `probe_timeout`.
        max: Duration,
    },
    /// The MTU cannot hold the largest fixed-size message plus the envelope.
    #[error("mtu {mtu} is below the minimum of {min} bytes needed for the envelope and one message")]
    MtuTooSmall {
        /// The configured MTU.
        mtu: usize,
        /// The smallest MTU this configuration can work with.
        min: usize,
    },
    /// The cluster label or node name is unusable.
    #[error("`{field}` is invalid: {reason}")]
    BadName {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A probability is outside `[0, 1]`.
    #[error("`{0}` must be a probability between 0 and 1")]
    BadProbability(&'static str),
    /// A value is larger than this implementation supports.
    #[error("`{field}` is too large (at most {max})")]
    TooLarge {
        /// Which field.
        field: &'static str,
        /// The largest accepted value.
        max: u64,
    },
    /// A rate is not a positive number.
    #[error("`{0}` must be a positive number")]
    BadRate(&'static str),
    /// A share is outside `(0, 1)`.
    #[error("`broadcast_share` must be between 0 and 1 exclusive, got {0}")]
    BadShare(f64),
}

/// Longest cluster label, node name or zone label accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Configuration of one gossip node.
///
/// Start from a preset ([`Config::lan`], [`Config::wan`], [`Config::local`]) and adjust fields;
/// `Node::new` validates the result.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Cluster label carried by every datagram; datagrams with another label are dropped and
    /// counted. Keeps two clusters sharing a network from merging. (memberlist: `Label`)
    pub cluster_label: String,
    /// Time between two failure-detector probes. (memberlist: `ProbeInterval`)
    pub probe_interval: Duration,
    /// Longest a direct ping waits for its ack before indirect probes are sent, and how long
    /// the helpers then get; must be shorter than `probe_interval`. (memberlist:
    /// `ProbeTimeout`, which memberlist always waits in full)
    pub probe_timeout: Duration,
    /// Shortest a direct ping waits. Between this and `probe_timeout`, the wait follows the
    /// measured round trips of direct pings (smoothed RTT plus four deviations, as TCP's
    /// retransmission timer), so on a fast network a crashed member is suspected sooner.
    /// Equal to `probe_timeout`: a fixed wait, as memberlist.
    pub min_probe_timeout: Duration,
    /// Number of helpers asked to probe a member that missed a direct ack.
    /// (memberlist: `IndirectChecks`)
    pub indirect_checks: usize,
    /// Suspicion timeout multiplier: the minimum suspicion timeout is
    /// `suspicion_mult * max(1, log10(N)) * probe_interval`. (memberlist: `SuspicionMult`)
    pub suspicion_mult: u32,
    /// The maximum suspicion timeout is this multiple of the minimum; Lifeguard lowers the
    /// timeout from max toward min as independent suspicions confirm it.
    /// (memberlist: `SuspicionMaxTimeoutMult`)
    pub suspicion_max_timeout_mult: u32,
    /// Lifeguard: independent confirmations after which a suspicion's timeout has fallen from
    /// the maximum to the minimum (memberlist derives it as `suspicion_mult - 2`; here it is
    /// its own setting so a short minimum can keep a cautious start). 0: always the minimum.
    pub suspicion_confirmations: u32,
    /// Each rumor is retransmitted at most `retransmit_mult * ceil(log10(N + 1))` times.
    /// (memberlist: `RetransmitMult`)
    pub retransmit_mult: u32,
    /// User broadcasts are retransmitted at most `broadcast_retransmit_mult * ceil(log10(N + 1))`
    /// times: more than membership rumors (which push-pull repairs) because nothing else
    /// repairs a missed broadcast. (memberlist uses `RetransmitMult` for both.)
    pub broadcast_retransmit_mult: u32,
    /// Time between two gossip rounds. (memberlist: `GossipInterval`)
    pub gossip_interval: Duration,
    /// Members a gossip round sends to. (memberlist: `GossipNodes`)
    pub gossip_fanout: usize,
    /// Time between two full membership exchanges with a random member; `None` disables them.
    /// A hash of the membership goes first, so members already in sync exchange a few bytes
    /// only. (memberlist: `PushPullInterval`)
    pub push_pull_interval: Option<Duration>,
    /// Lifeguard local health: probe interval and timeout are multiplied by `score + 1`, with the
    /// score in `[0, awareness_max_multiplier - 1]`. Set to 1 to disable Lifeguard's local
    /// health. (memberlist: `AwarenessMaxMultiplier`)
    pub awareness_max_multiplier: u32,
    /// Whether Lifeguard is on: local health scaling, nacks, dynamic suspicion timeouts and
    /// the buddy system. Turning it off gives plain SWIM (used by the `stall` experiment).
    pub lifeguard: bool,
    /// Largest datagram the node sends, in bytes: envelope, message and piggybacked rumors are
    /// packed up to it. (memberlist: `UDPBufferSize`)
    pub mtu: usize,
    /// Largest datagram the node accepts; anything longer is dropped as oversized.
    pub max_inbound_size: usize,
    /// Guaranteed share of each packet's piggyback space kept for user broadcasts when any
    /// are pending, so membership news never starves them.
    pub broadcast_share: f64,
    /// Most rumors kept queued; past it the most-retransmitted routine rumors are dropped.
    pub max_queued_rumors: usize,
    /// Most members a node keeps track of (live, dead and left); records of further new
    /// members are dropped and counted, so a flood of invented names cannot exhaust memory.
    pub max_members: usize,
    /// Fraction added at random to every periodic timer (0.1 = up to +10 %), so that nodes
    /// started together do not tick in lockstep.
    pub timer_jitter: f64,
    /// First delay between join attempts while no seed has answered; doubled per attempt.
    pub join_retry_initial: Duration,
    /// Longest delay between join attempts.
    pub join_retry_max: Duration,
    /// While the node knows no live member, it contacts its seeds again this often.
    pub rejoin_interval: Duration,
    /// How often a full membership exchange is attempted with a member believed dead, so that
    /// the two sides of a healed partition find each other again (Serf: `ReconnectInterval`).
    /// `None` disables it.
    pub reconnect_interval: Option<Duration>,
    /// Dead and left members are forgotten this long after they were declared so; a record
    /// of their last incarnation is kept as long again so stale gossip cannot resurrect them.
    /// (memberlist: `GossipToTheDeadTime` is the closest; Serf: `ReconnectTimeout`)
    pub dead_reclaim_time: Duration,
    /// This node's zone (rack, datacenter); `None` means no zone.
    pub zone: Option<String>,
    /// Probability that a probe or gossip target is picked from another zone when members of
    /// the own zone exist. 1.0 ignores zones.
    pub cross_zone_probability: f64,
    /// Time between two anti-entropy exchanges of the replicated key/value state with a
    /// random member (a hash goes first: members in sync exchange one number); `None`
    /// disables them. (chitchat: `gossip_interval`; Cassandra gossips every second)
    pub state_sync_interval: Option<Duration>,
    /// Most datagrams of deltas one side sends in one exchange (each within the MTU): a node
    /// far behind catches up this many datagrams per exchange instead of one, without IP
    /// fragmentation. (chitchat sends one datagram of up to 65 KB; memberlist's push-pull
    /// ships the whole state over TCP)
    pub state_sync_datagrams: usize,
    /// Largest anti-entropy transfer (digest pages, deltas, CRDT state pieces) when the
    /// transport carries them on reliable streams: such transmits are marked
    /// [`crate::Transmit::reliable`] and sent alone, and key/values may be that large (within
    /// `kv_limits`). `None` (the presets): everything fits one `mtu` datagram. `gossip-quic`
    /// sets it; a datagram-only transport must leave it `None`.
    pub bulk_mtu: Option<usize>,
    /// Fresh key/value writes and CRDT deltas are also spread as rumors, each retransmitted
    /// at most `state_retransmit_mult * ceil(log10(N + 1))` times; anti-entropy repairs what
    /// they miss. 0: no rumors, anti-entropy alone (least traffic, staleness of a few
    /// intervals).
    pub state_retransmit_mult: u32,
    /// Most replicated CRDT objects a node holds (its own and its peers'); updates and
    /// states of further objects are refused and counted.
    pub max_crdt_objects: usize,
    /// Most bytes of CRDT delta rumors a node keeps queued; past it the most-retransmitted
    /// are dropped (anti-entropy repairs what they carried). Bounds memory under a storm of
    /// updates: without it, thousands of concurrent writers filled every node's queue.
    pub max_crdt_rumor_bytes: usize,
    /// Bytes of recent changes kept per CRDT object for delta intervals (anti-entropy sends
    /// a peer the changes since it last acknowledged, instead of comparing buckets and
    /// sending whole ones); oldest dropped first, and collected once every peer remembered
    /// holds them. 0: no log, every repair compares buckets.
    pub crdt_delta_log_bytes: usize,
    /// Time between two push-sum rounds (each sends half of every aggregate's mass to one
    /// random member, one datagram); `None` disables aggregation. Kempe et al.'s rounds.
    pub aggregate_interval: Option<Duration>,
    /// Rounds after which a push-sum epoch restarts (lost shares drain its mass; results also
    /// follow values that drift). Estimates come from an epoch once it has run half of this.
    pub aggregate_epoch_rounds: u32,
    /// Most aggregates a node takes part in; shares of further ones are refused and counted.
    pub max_aggregates: usize,
    /// Limits on each member's keys and values.
    pub kv_limits: crate::antientropy::KvLimits,
    /// How long a deleted key's tombstone is kept: a member away longer than this gets the
    /// owner's full state instead of a delta. (Cassandra: `gc_grace_seconds`)
    pub tombstone_grace: Duration,
    /// Keys sealing every datagram (ChaCha20-Poly1305; see [`crate::wire::security`]);
    /// `None`: plaintext. With keys, the core packs datagrams `SEAL_OVERHEAD` (29) bytes
    /// shorter so that sealed ones still fit `mtu`. (memberlist: `Keyring`)
    pub keyring: Option<crate::wire::security::Keyring>,
    /// With a keyring: whether this node only opens sealed datagrams, also seals, or also
    /// requires them. Turn encryption on across a running cluster one mode at a time on every
    /// node: `Open`, then `Seal`, then `Require`. (memberlist: `GossipVerifyIncoming`,
    /// `GossipVerifyOutgoing`)
    pub seal_mode: crate::wire::security::SealMode,
    /// Signed self-state (Ed25519; see [`crate::wire::signing`]): what a member says about
    /// itself (its record, key/values and CRDT claims) is signed, accusations name and are
    /// signed by their accuser and are limited per accuser. Every member of the cluster must
    /// sign once one does. `None`: unsigned.
    pub signing: Option<crate::wire::signing::Signing>,
    /// Most datagrams accepted from one source address per second; more are dropped before
    /// they are opened or decoded, and counted. `None`: no limit. Honest peers send a few per
    /// probe interval, plus bursts of `state_sync_datagrams` during anti-entropy.
    pub source_rate_limit: Option<u32>,
    /// Phi accrual failure detection over the arrival times of every datagram members send
    /// (see [`PhiAccrual`]); `None` (the presets) keeps no per-member arrival state.
    pub phi_accrual: Option<PhiAccrual>,
}

/// Settings of the phi accrual failure detector (Hayashibara et al. 2004), which rates each
/// member's silence by how unlikely it is given the intervals at which its datagrams arrived:
/// [`crate::Node::phi`]. It costs about 32 bytes per member and no traffic.
///
/// Without heartbeats, what a member sends us is irregular: in a quiet cluster mostly its
/// probes of us and its acks to ours, about twice per cycle of N probe periods. Phi then
/// rates long silences well but the conviction mode is trigger-happy: at 20 members and
/// threshold 8 the simulator counts about 0.13 convictions of live members per node per
/// second, each refuted by SWIM (no live member was declared dead). Raise the threshold or
/// `acceptable_pause` to trade detection speed for fewer of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiAccrual {
    /// Inter-arrival times are averaged (exponentially weighted) over about this many
    /// intervals. (Akka: `max-sample-size`)
    pub window: u32,
    /// Floor of the standard deviation of inter-arrival times, so a very regular member is not
    /// convicted for a little jitter. (Akka: `min-std-deviation`)
    pub min_std_dev: Duration,
    /// Silence tolerated on top of the mean interval before phi starts to rise (a collector
    /// pause, a slow link). (Akka: `acceptable-heartbeat-pause`)
    pub acceptable_pause: Duration,
    /// Conviction mode: a live member whose phi exceeds this is suspected, as if a probe had
    /// failed (checked every gossip round); SWIM's refutation and suspicion timeout still
    /// apply. `None`: phi is only reported. (Cassandra: `phi_convict_threshold`, 8)
    pub conviction_threshold: Option<f64>,
}

impl Default for PhiAccrual {
    /// Window 100, standard deviation at least 500 ms, no extra pause, no conviction.
    fn default() -> Self {
        PhiAccrual {
            window: 100,
            min_std_dev: Duration::from_millis(500),
            acceptable_pause: Duration::ZERO,
            conviction_threshold: None,
        }
    }
}

impl Config {
    /// Preset for a local network: memberlist's `DefaultLANConfig`, except a suspicion
    /// multiplier of 1 where memberlist has 4.
    ///
    /// memberlist's minimum suspicion timeout has to cover a refutation spreading back by
    /// rumor. Here a live suspect hears of the suspicion at once (every ping to a suspect
    /// carries it, and every member checks on a suspect early), answers accuser and sender
    /// directly in the same datagram as its ack, and members that know of a refutation correct
    /// whoever still gossips the stale accusation. So the minimum can be one probe interval
    /// per decade of members (2.1 s at 128 members), reached only with independent
    /// confirmations from healthy members; a lone accusation still waits the 6× maximum, and
    /// a member missing acks itself (Lifeguard's local health) waits longer still. With that,
    /// a crash at 128 members is removed everywhere in about 4.5 s; 20 % loss for ten minutes
    /// on 100 members declares no live member dead (see BENCHMARKS.md).
    pub fn lan() -> Self {
        Config {
            cluster_label: "gossip".to_owned(),
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            min_probe_timeout: Duration::from_millis(100),
            indirect_checks: 3,
            suspicion_mult: 1,
            suspicion_max_timeout_mult: 6,
            suspicion_confirmations: 2,
            retransmit_mult: 4,
            broadcast_retransmit_mult: 12,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            push_pull_interval: Some(Duration::from_secs(30)),
            awareness_max_multiplier: 8,
            lifeguard: true,
            mtu: 1400,
            max_inbound_size: 65_507,
            broadcast_share: 0.25,
            max_queued_rumors: 1024,
            max_members: 100_000,
            timer_jitter: 0.1,
            join_retry_initial: Duration::from_millis(500),
            join_retry_max: Duration::from_secs(30),
            rejoin_interval: Duration::from_secs(10),
            reconnect_interval: Some(Duration::from_secs(10)),
            dead_reclaim_time: Duration::from_secs(300),
            zone: None,
            cross_zone_probability: 0.1,
            state_sync_interval: Some(Duration::from_secs(2)),
            state_sync_datagrams: 16,
            bulk_mtu: None,
            state_retransmit_mult: 2,
            max_crdt_objects: 1024,
            max_crdt_rumor_bytes: 64 * 1024,
            crdt_delta_log_bytes: 16 * 1024,
            aggregate_interval: Some(Duration::from_millis(200)),
            aggregate_epoch_rounds: 100,
            max_aggregates: 64,
            kv_limits: crate::antientropy::KvLimits::default(),
            tombstone_grace: Duration::from_secs(3600),
            phi_accrual: None,
            keyring: None,
            seal_mode: crate::wire::security::SealMode::Require,
            signing: None,
            source_rate_limit: Some(1_000),
        }
    }

    /// Preset for links across datacenters: memberlist's `DefaultWANConfig`.
    pub fn wan() -> Self {
        Config {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            min_probe_timeout: Duration::from_millis(500),
            suspicion_mult: 6,
            suspicion_confirmations: 4,
            gossip_interval: Duration::from_millis(500),
            gossip_fanout: 4,
            push_pull_interval: Some(Duration::from_secs(60)),
            join_retry_initial: Duration::from_secs(1),
            reconnect_interval: Some(Duration::from_secs(30)),
            dead_reclaim_time: Duration::from_secs(900),
            ..Config::lan()
        }
    }

    /// Preset for a single host (loopback): memberlist's `DefaultLocalConfig`, with the
    /// suspicion multiplier of [`Config::lan`] (1, memberlist: 3) for the same reasons.
    pub fn local() -> Self {
        Config {
            probe_timeout: Duration::from_millis(200),
            min_probe_timeout: Duration::from_millis(50),
            indirect_checks: 1,
            suspicion_confirmations: 1,
            retransmit_mult: 2,
            broadcast_retransmit_mult: 8,
            gossip_interval: Duration::from_millis(100),
            push_pull_interval: Some(Duration::from_secs(15)),
            join_retry_initial: Duration::from_millis(200),
            rejoin_interval: Duration::from_secs(5),
            reconnect_interval: Some(Duration::from_secs(5)),
            dead_reclaim_time: Duration::from_secs(60),
            ..Config::lan()
        }
    }

    /// Checks that the configuration can work; `Node::new` calls this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_name("cluster_label", &self.cluster_label, true)?;
        if let Some(zone) = &self.zone {
            check_name("zone", zone, false)?;
        }
        let positive = [
            ("indirect_checks", self.indirect_checks as u64),
            ("gossip_fanout", self.gossip_fanout as u64),
            ("suspicion_mult", u64::from(self.suspicion_mult)),
            ("suspicion_max_timeout_mult", u64::from(self.suspicion_max_timeout_mult)),
            ("retransmit_mult", u64::from(self.retransmit_mult)),
            ("broadcast_retransmit_mult", u64::from(self.broadcast_retransmit_mult)),
            ("awareness_max_multiplier", u64::from(self.awareness_max_multiplier)),
            ("max_queued_rumors", self.max_queued_rumors as u64),
            ("state_sync_datagrams", self.state_sync_datagrams as u64),
            ("max_crdt_objects", self.max_crdt_objects as u64),
            ("max_crdt_rumor_bytes", self.max_crdt_rumor_bytes as u64),
            ("max_aggregates", self.max_aggregates as u64),
            ("aggregate_epoch_rounds", u64::from(self.aggregate_epoch_rounds)),
            ("max_members", self.max_members as u64),
            ("kv_limits.max_keys", self.kv_limits.max_keys as u64),
            ("kv_limits.max_key_len", self.kv_limits.max_key_len as u64),
            ("kv_limits.max_value_len", self.kv_limits.max_value_len as u64),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::Zero(field));
            }
        }
        let durations = [
            ("probe_interval", Some(self.probe_interval)),
            ("probe_timeout", Some(self.probe_timeout)),
            ("min_probe_timeout", Some(self.min_probe_timeout)),
            ("gossip_interval", Some(self.gossip_interval)),
            ("push_pull_interval", self.push_pull_interval),
            ("join_retry_initial", Some(self.join_retry_initial)),
            ("join_retry_max", Some(self.join_retry_max)),
            ("rejoin_interval", Some(self.rejoin_interval)),
            ("reconnect_interval", self.reconnect_interval),
            ("dead_reclaim_time", Some(self.dead_reclaim_time)),
            ("state_sync_interval", self.state_sync_interval),
            ("aggregate_interval", self.aggregate_interval),
            ("tombstone_grace", Some(self.tombstone_grace)),
        ];
        for (field, value) in durations {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration(field));
            }
        }
        let counts = [
            ("indirect_checks", self.indirect_checks as u64, 64),
            ("gossip_fanout", self.gossip_fanout as u64, 64),
            ("suspicion_mult", u64::from(self.suspicion_mult), 1_000),
            ("suspicion_max_timeout_mult", u64::from(self.suspicion_max_timeout_mult), 1_000),
            ("suspicion_confirmations", u64::from(self.suspicion_confirmations), 1_000),
            ("retransmit_mult", u64::from(self.retransmit_mult), 1_000),
            ("broadcast_retransmit_mult", u64::from(self.broadcast_retransmit_mult), 1_000),
            ("state_retransmit_mult", u64::from(self.state_retransmit_mult), 1_000),
            ("awareness_max_multiplier", u64::from(self.awareness_max_multiplier), 1_000),
            ("max_queued_rumors", self.max_queued_rumors as u64, 1 << 20),
            ("state_sync_datagrams", self.state_sync_datagrams as u64, 1_024),
            ("max_members", self.max_members as u64, 1 << 24),
            ("mtu", self.mtu as u64, 65_507),
            // Datagrams stop at 65,507 bytes; reliable bulk transfers may go further.
            ("max_inbound_size", self.max_inbound_size as u64, if self.bulk_mtu.is_some() { 1 << 26 } else { 65_507 }),
            ("bulk_mtu", self.bulk_mtu.unwrap_or(0) as u64, 1 << 26),
        ];
        for (field, value, max) in counts {
            if value > max {
                return Err(ConfigError::TooLarge { field, max });
            }
        }
        const DAY: Duration = Duration::from_secs(86_400);
        for (field, value) in durations {
            if value.is_some_and(|d| d > DAY) {
                return Err(ConfigError::TooLarge { field, max: DAY.as_secs() });
            }
        }
        if self.probe_timeout >= self.probe_interval {
            return Err(ConfigError::ProbeTimeoutTooLong {
                timeout: self.probe_timeout,
                interval: self.probe_interval,
            });
        }
        if let Some(phi) = &self.phi_accrual {
            if phi.window == 0 {
                return Err(ConfigError::Zero("phi_accrual.window"));
            }
            if phi.min_std_dev.is_zero() {
                return Err(ConfigError::ZeroDuration("phi_accrual.min_std_dev"));
            }
            if phi.conviction_threshold.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
                return Err(ConfigError::BadPhiThreshold);
            }
        }
        if self.min_probe_timeout > self.probe_timeout {
            return Err(ConfigError::MinProbeTimeoutTooLong { min: self.min_probe_timeout, max: self.probe_timeout });
        }
        for (field, p) in [("timer_jitter", self.timer_jitter), ("cross_zone_probability", self.cross_zone_probability)]
        {
            if !(0.0..=1.0).contains(&p) {
                return Err(ConfigError::BadProbability(field));
            }
        }
        if !(self.broadcast_share > 0.0 && self.broadcast_share < 1.0) {
            return Err(ConfigError::BadShare(self.broadcast_share));
        }
        if let Some(signing) = &self.signing {
            if signing.accusation_burst == 0 {
                return Err(ConfigError::Zero("signing.accusation_burst"));
            }
            if !(signing.accusations_per_s.is_finite() && signing.accusations_per_s > 0.0) {
                return Err(ConfigError::BadRate("signing.accusations_per_s"));
            }
        }
        if self.source_rate_limit == Some(0) {
            return Err(ConfigError::Zero("source_rate_limit"));
        }
        let seal = if self.keyring.is_some() { crate::wire::security::SEAL_OVERHEAD } else { 0 };
        let min = self.min_mtu() + seal;
        if self.mtu < min {
            return Err(ConfigError::MtuTooSmall { mtu: self.mtu, min });
        }
        if self.max_inbound_size < self.mtu {
            return Err(ConfigError::MtuTooSmall { mtu: self.max_inbound_size, min: self.mtu });
        }
        if let Some(bulk) = self.bulk_mtu {
            if bulk < self.mtu {
                return Err(ConfigError::MtuTooSmall { mtu: bulk, min: self.mtu });
            }
            if self.max_inbound_size < bulk {
                return Err(ConfigError::MtuTooSmall { mtu: self.max_inbound_size, min: bulk });
            }
        }
        Ok(())
    }

    /// Smallest MTU that holds an envelope (with the longest allowed sender name) plus a ping
    /// and the largest membership record (longest name, zone and accuser, room for a socket
    /// address): the biggest pair of messages ever placed in one datagram together.
    pub fn min_mtu(&self) -> usize {
        let name = 2 + MAX_NAME_LEN;
        let envelope = 1 + (2 + self.cluster_label.len()) + name;
        let ping = 1 + 5 + name;
        let record = 1 + name + 32 + 10 + 5 + 1 + (1 + name) + (1 + name) + 1 + 1;
        // With signing: the member's proof (key, signature) and the accuser's signature.
        let signatures = if self.signing.is_some() { 32 + 65 + 65 } else { 0 };
        envelope + ping + record + signatures
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::lan()
    }
}

/// Checks a label or name: non-empty (unless allowed), at most [`MAX_NAME_LEN`] bytes, no
/// control characters.
pub(crate) fn check_name(field: &'static str, name: &str, allow_empty: bool) -> Result<(), ConfigError> {
    if name.is_empty() && !allow_empty {
        return Err(ConfigError::BadName { field, reason: "must not be empty" });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ConfigError::BadName { field, reason: "longer than 128 bytes" });
    }
    if name.chars().any(char::is_control) {
        return Err(ConfigError::BadName { field, reason: "contains control characters" });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for c in [Config::lan(), Config::wan(), Config::local()] {
            c.validate().expect("preset must validate");
        }
    }

    #[test]
    fn impossible_configs_are_rejected() {
        let c = Config { gossip_fanout: 0, ..Config::lan() };
        assert_eq!(c.validate(), Err(ConfigError::Zero("gossip_fanout")));
        let c = Config { probe_timeout: Duration::from_secs(1), ..Config::lan() };
        assert!(matches!(c.validate(), Err(ConfigError::ProbeTimeoutTooLong { .. })));
        let c = Config { mtu: 100, ..Config::lan() };
        assert!(matches!(c.validate(), Err(ConfigError::MtuTooSmall { .. })));
        let c = Config { cross_zone_probability: 1.5, ..Config::lan() };
        assert_eq!(c.validate(), Err(ConfigError::BadProbability("cross_zone_probability")));
        let c = Config { zone: Some(String::new()), ..Config::lan() };
        assert!(matches!(c.validate(), Err(ConfigError::BadName { field: "zone", .. })));
        let c = Config { gossip_interval: Duration::ZERO, ..Config::lan() };
        assert_eq!(c.validate(), Err(ConfigError::ZeroDuration("gossip_interval")));
        let c = Config { gossip_fanout: usize::MAX, ..Config::lan() };
        assert!(matches!(c.validate(), Err(ConfigError::TooLarge { field: "gossip_fanout", .. })));
        let c = Config { dead_reclaim_time: Duration::MAX, ..Config::lan() };
        assert!(matches!(c.validate(), Err(ConfigError::TooLarge { field: "dead_reclaim_time", .. })));
    }
}
