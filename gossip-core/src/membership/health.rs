//! Lifeguard local health ("awareness"): a node that misses acks, hears no nacks or has to
//! refute suspicions of itself is probably the slow one, so it probes less eagerly.

use std::time::Duration;

/// Local health score in `[0, max - 1]`; 0 is healthy.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    score: u32,
    max: u32,
}

impl Health {
    pub fn new(max_multiplier: u32) -> Self {
        Health { score: 0, max: max_multiplier.max(1) }
    }

    /// Applies a delta, clamped to the range.
    pub fn apply(&mut self, delta: i64) {
        let next = (i64::from(self.score) + delta).clamp(0, i64::from(self.max) - 1);
        self.score = next as u32;
    }

    pub fn score(&self) -> u32 {
        self.score
    }

    /// `d` scaled by `score + 1`.
    pub fn scale(&self, d: Duration) -> Duration {
        d.saturating_mul(self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_clamped_and_scales() {
        let mut h = Health::new(8);
        h.apply(-1);
        assert_eq!(h.score(), 0);
        h.apply(3);
        assert_eq!(h.scale(Duration::from_secs(1)), Duration::from_secs(4));
        h.apply(100);
        assert_eq!(h.score(), 7);
    }
}
