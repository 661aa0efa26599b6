//! Probe timeouts adapted from measured round-trip times.
//!
//! memberlist, foca and chitchat wait a fixed time for a direct ack. A LAN answers in well
//! under a millisecond, so a fixed 500 ms mostly delays the indirect probe and, with it, the
//! detection of a crash. Here the direct ping waits what TCP waits for a segment
//! (Jacobson/Karels, RFC 6298): the smoothed round-trip time plus four deviations, kept
//! between a floor (scheduling hiccups are not failures) and the configured `probe_timeout`.

use std::time::Duration;

/// Smoothed round-trip time and its mean deviation, from the acks of direct pings.
#[derive(Debug, Clone, Default)]
pub(crate) struct RttEstimator {
    /// `(srtt, rttvar)` in seconds; `None` until the first sample.
    state: Option<(f64, f64)>,
    samples: u64,
    /// Doublings after direct pings that went unanswered (Karn: a timed-out ping gives no
    /// sample, so the timeout backs off until a fresh sample says the path is fast again).
    backoff: u32,
}

impl RttEstimator {
    /// Adds one measured round trip.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_secs_f64();
        self.state = Some(match self.state {
            None => (r, r / 2.0),
            Some((srtt, var)) => {
                let var = 0.75 * var + 0.25 * (srtt - r).abs();
                (0.875 * srtt + 0.125 * r, var)
            }
        });
        self.samples += 1;
        self.backoff = 0;
    }

    /// A direct ping went unanswered: wait twice as long next time, until a sample arrives.
    pub fn timed_out(&mut self) {
        self.backoff = (self.backoff + 1).min(8);
    }

    /// Smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.state.map(|(s, _)| Duration::from_secs_f64(s))
    }

    /// How long a direct ping waits: `srtt + 4 * rttvar` within `[floor, ceiling]`; the
    /// ceiling until a few samples are in.
    pub fn timeout(&self, floor: Duration, ceiling: Duration) -> Duration {
        const WARM_UP: u64 = 4;
        match self.state {
            Some((srtt, var)) if self.samples >= WARM_UP => {
                let t = (srtt + 4.0 * var) * f64::from(1u32 << self.backoff);
                Duration::from_secs_f64(t.min(ceiling.as_secs_f64())).clamp(floor.min(ceiling), ceiling)
            }
            _ => ceiling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: Duration = Duration::from_millis(100);
    const CEILING: Duration = Duration::from_millis(500);

    #[test]
    fn waits_the_ceiling_until_warmed_up() {
        let mut e = RttEstimator::default();
        assert_eq!(e.timeout(FLOOR, CEILING), CEILING);
        for _ in 0..3 {
            e.sample(Duration::from_millis(1));
        }
        assert_eq!(e.timeout(FLOOR, CEILING), CEILING);
        e.sample(Duration::from_millis(1));
        assert_eq!(e.timeout(FLOOR, CEILING), FLOOR, "a fast network waits only the floor");
    }

    #[test]
    fn follows_a_slow_path_up_to_the_ceiling() {
        let mut e = RttEstimator::default();
        for _ in 0..20 {
            e.sample(Duration::from_millis(150));
        }
        let t = e.timeout(FLOOR, CEILING);
        assert!(t >= Duration::from_millis(150) && t < Duration::from_millis(200), "{t:?}");
        for _ in 0..20 {
            e.sample(Duration::from_secs(2));
        }
        assert_eq!(e.timeout(FLOOR, CEILING), CEILING);
        assert!(e.srtt().is_some_and(|s| s > Duration::from_secs(1)));
    }

    #[test]
    fn unanswered_pings_back_off_until_a_sample_arrives() {
        let mut e = RttEstimator::default();
        for _ in 0..8 {
            e.sample(Duration::from_millis(100));
        }
        let base = e.timeout(Duration::ZERO, CEILING);
        e.timed_out();
        let doubled = e.timeout(Duration::ZERO, CEILING).as_secs_f64();
        assert!((doubled - 2.0 * base.as_secs_f64()).abs() < 1e-6, "{doubled} vs {base:?}");
        for _ in 0..20 {
            e.timed_out();
        }
        assert_eq!(e.timeout(Duration::ZERO, CEILING), CEILING);
        e.sample(Duration::from_millis(100));
        assert!(e.timeout(Duration::ZERO, CEILING) < Duration::from_millis(200));
    }

    #[test]
    fn jitter_widens_the_timeout() {
        let mut steady = RttEstimator::default();
        let mut jittery = RttEstimator::default();
        for i in 0..40 {
            steady.sample(Duration::from_millis(120));
            jittery.sample(Duration::from_millis(if i % 2 == 0 { 60 } else { 180 }));
        }
        assert!(jittery.timeout(FLOOR, CEILING) > steady.timeout(FLOOR, CEILING));
    }
}
