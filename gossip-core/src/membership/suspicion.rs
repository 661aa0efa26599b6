//! Lifeguard's dynamic suspicion timeout.
//!
//! A suspicion starts at the maximum timeout and falls toward the minimum as independent
//! members confirm it: after `n` of the `k` expected confirmations the timeout is
//! `max - (max - min) * ln(n + 1) / ln(k + 1)`, never below `min`.

use std::time::{Duration, Instant};

use compact_str::CompactString;

/// Who accuses a suspect, and the timeout that follows (no instants: pure logic).
#[derive(Debug, Clone)]
pub(crate) struct Accusations {
    pub min: Duration,
    pub max: Duration,
    /// Expected confirmations (Lifeguard's k).
    pub k: u32,
    /// Who suspects it (the first accuser first); confirmations are counted once each.
    pub accusers: Vec<CompactString>,
    /// Accuser named when this node gossips the suspicion: the latest confirmation it
    /// learned of, so others count independent accusers too.
    pub announce: CompactString,
}

impl Accusations {
    pub fn new(min: Duration, max: Duration, k: u32, accuser: CompactString) -> Self {
        Accusations { min, max, k, accusers: vec![accuser.clone()], announce: accuser }
    }

    /// Suspicion timeout given the confirmations counted so far.
    pub fn timeout(&self) -> Duration {
        timeout(self.min, self.max, self.accusers.len() as u32 - 1, self.k)
    }

    /// Counts an accuser; returns true if it is new (an independent confirmation), in which
    /// case the timeout may have shrunk.
    pub fn confirm(&mut self, accuser: &str) -> bool {
        if self.accusers.len() as u32 > self.k || self.accusers.iter().any(|a| a == accuser) {
            return false;
        }
        self.accusers.push(accuser.into());
        self.announce = accuser.into();
        true
    }
}

/// One member under suspicion since `started`.
#[derive(Debug, Clone)]
pub(crate) struct Suspicion {
    pub started: Instant,
    pub accusations: Accusations,
    /// Lifeguard local-health multiplier applied to the timeout: the highest seen while the
    /// suspicion ran (a node that fell behind gives the suspect longer, never shorter).
    pub health_scale: u32,
}

impl Suspicion {
    /// When the member is declared dead, unless refuted.
    pub fn deadline(&self) -> Instant {
        self.started + self.accusations.timeout().saturating_mul(self.health_scale.max(1))
    }
}

/// Timeout after `n` confirmations out of `k` expected.
pub(crate) fn timeout(min: Duration, max: Duration, n: u32, k: u32) -> Duration {
    if k == 0 || max <= min {
        return min;
    }
    let frac = ((f64::from(n) + 1.0).ln() / (f64::from(k) + 1.0).ln()).min(1.0);
    let t = max.as_secs_f64() - (max - min).as_secs_f64() * frac;
    Duration::from_secs_f64(t.max(min.as_secs_f64()))
}

/// Minimum suspicion timeout for a cluster of `n` members:
/// `mult * max(1, log10(n)) * interval`.
pub(crate) fn min_timeout(mult: u32, n: usize, interval: Duration) -> Duration {
    let scale = (n.max(1) as f64).log10().max(1.0);
    interval.mul_f64(f64::from(mult) * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_falls_from_max_to_min() {
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        assert_eq!(timeout(min, max, 0, 2), max);
        let one = timeout(min, max, 1, 2);
        // 24 - 20 * ln2/ln3 = 11.381...
        assert!((one.as_secs_f64() - (24.0 - 20.0 * 2f64.ln() / 3f64.ln())).abs() < 1e-9);
        assert_eq!(timeout(min, max, 2, 2), min);
        assert_eq!(timeout(min, max, 5, 2), min);
    }

    #[test]
    fn min_timeout_matches_memberlist() {
        let s = Duration::from_secs(1);
        assert_eq!(min_timeout(4, 5, s), Duration::from_secs(4));
        assert_eq!(min_timeout(4, 100, s), Duration::from_secs(8));
    }

    #[test]
    fn confirmations_are_counted_once() {
        let mut s = Accusations::new(Duration::from_secs(4), Duration::from_secs(24), 2, "a".into());
        assert_eq!(s.timeout(), Duration::from_secs(24));
        assert!(!s.confirm("a"));
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"));
        assert!(s.confirm("c"));
        assert_eq!(s.timeout(), Duration::from_secs(4));
        assert!(!s.confirm("d"));
    }

    #[test]
    fn local_health_stretches_the_deadline() {
        let now = Instant::now();
        let accusations = Accusations::new(Duration::from_secs(2), Duration::from_secs(12), 2, "a".into());
        let mut s = Suspicion { started: now, accusations, health_scale: 1 };
        assert_eq!(s.deadline(), now + Duration::from_secs(12));
        s.health_scale = 3;
        assert_eq!(s.deadline(), now + Duration::from_secs(36));
    }

    #[test]
    fn without_expected_confirmations_the_timeout_is_the_minimum() {
        let s = Accusations::new(Duration::from_secs(2), Duration::from_secs(12), 0, "a".into());
        assert_eq!(s.timeout(), Duration::from_secs(2));
    }
}
