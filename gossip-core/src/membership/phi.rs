//! Phi accrual failure detection (Hayashibara, Défago, Yared, Katayama 2004).
//!
//! Instead of a yes/no verdict, each member gets a suspicion level `phi`: how unlikely the
//! current silence is given the intervals at which the member's datagrams have been arriving.
//! `phi = 1` means about a 10 % chance that a live member stays silent this long, `phi = 3`
//! 0.1 %, and so on. The arrivals are whatever the member sends us anyway (pings, acks, gossip,
//! views): no heartbeat traffic, and no heartbeat counter that would keep view digests from
//! ever matching. Inter-arrival times are summarised by an exponentially weighted mean and
//! variance (a few bytes per member rather than a window of samples), and the tail
//! probability uses a logistic approximation of the normal distribution, as Akka's detector
//! does.

use std::time::{Duration, Instant};

use crate::config::PhiAccrual;
use crate::membership::table::Slot;

/// Arrival statistics of one member.
#[derive(Debug, Clone, Copy)]
struct Arrivals {
    last: Instant,
    /// Weighted mean and variance of inter-arrival times, in seconds; `None` before the second
    /// arrival.
    stats: Option<(f64, f64)>,
}

/// Per-member arrival statistics, indexed by member slot.
#[derive(Debug, Default)]
pub(crate) struct PhiDetector {
    members: Vec<Option<Arrivals>>,
}

impl PhiDetector {
    /// Records a datagram from the member in `slot` at `now`.
    pub fn arrival(&mut self, config: &PhiAccrual, slot: Slot, now: Instant) {
        let i = slot as usize;
        if self.members.len() <= i {
            self.members.resize(i + 1, None);
        }
        let entry = &mut self.members[i];
        let Some(a) = entry else {
            *entry = Some(Arrivals { last: now, stats: None });
            return;
        };
        let x = now.saturating_duration_since(a.last).as_secs_f64();
        a.last = now;
        let alpha = 2.0 / (f64::from(config.window.max(1)) + 1.0);
        a.stats = Some(match a.stats {
            None => (x, 0.0),
            Some((mean, var)) => {
                let d = x - mean;
                (mean + alpha * d, (1.0 - alpha) * (var + alpha * d * d))
            }
        });
    }

    /// Forgets a member (its slot may be reused by another).
    pub fn forget(&mut self, slot: Slot) {
        if let Some(entry) = self.members.get_mut(slot as usize) {
            *entry = None;
        }
    }

    /// Suspicion level of the member in `slot` at `now`; `None` until two datagrams arrived.
    pub fn phi(&self, config: &PhiAccrual, slot: Slot, now: Instant) -> Option<f64> {
        let a = self.members.get(slot as usize)?.as_ref()?;
        let (mean, var) = a.stats?;
        let elapsed = now.saturating_duration_since(a.last);
        Some(phi(elapsed, mean + config.acceptable_pause.as_secs_f64(), var.sqrt(), config.min_std_dev))
    }
}

/// `-log10` of the probability that a normally distributed interval with this mean and
/// standard deviation exceeds `elapsed`.
pub(crate) fn phi(elapsed: Duration, mean: f64, std_dev: f64, min_std_dev: Duration) -> f64 {
    let sd = std_dev.max(min_std_dev.as_secs_f64()).max(1e-6);
    let y = (elapsed.as_secs_f64() - mean) / sd;
    // Logistic approximation of the normal CDF: P(X > t) ≈ e / (1 + e).
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let tail = if e.is_finite() { e / (1.0 + e) } else { 1.0 };
    if tail <= 0.0 {
        return f64::MAX;
    }
    -tail.log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PhiAccrual {
        PhiAccrual {
            window: 100,
            min_std_dev: Duration::from_millis(100),
            acceptable_pause: Duration::ZERO,
            conviction_threshold: None,
        }
    }

    #[test]
    fn phi_matches_the_formula_computed_by_hand() {
        // y = (t - mean) / sd; e = exp(-y (1.5976 + 0.070566 y^2)); phi = -log10(e / (1 + e)),
        // evaluated independently (Python, f64).
        let floor = Duration::from_millis(1);
        let cases = [
            (2.0, 1.0, 0.5, 1.642_827_885_487_112_3),
            (1.0, 1.0, 0.5, std::f64::consts::LOG10_2), // on the mean: P = 1/2
            (0.5, 1.0, 0.25, 0.009_998_761_629_963_108),
            (5.0, 1.0, 0.5, 21.241_600_212_221_336),
        ];
        for (t, mean, sd, want) in cases {
            let got = phi(Duration::from_secs_f64(t), mean, sd, floor);
            assert!((got - want).abs() < 1e-9, "phi({t}, {mean}, {sd}) = {got}, want {want}");
        }
        // The standard deviation floor applies.
        let floored = phi(Duration::from_secs(2), 1.0, 0.0, Duration::from_millis(500));
        assert!((floored - 1.642_827_885_487_112_3).abs() < 1e-9);
    }

    #[test]
    fn phi_is_low_on_time_and_rises_with_silence() {
        let c = config();
        let mut d = PhiDetector::default();
        let t0 = Instant::now();
        assert_eq!(d.phi(&c, 3, t0), None, "nothing known yet");
        for i in 0..20 {
            d.arrival(&c, 3, t0 + Duration::from_secs(i));
        }
        let last = t0 + Duration::from_secs(19);
        let on_time = d.phi(&c, 3, last + Duration::from_millis(900)).expect("phi");
        let late = d.phi(&c, 3, last + Duration::from_millis(1500)).expect("phi");
        let silent = d.phi(&c, 3, last + Duration::from_secs(3)).expect("phi");
        assert!(on_time < 1.0, "{on_time}");
        assert!(late > on_time && silent > late, "{on_time} {late} {silent}");
        assert!(silent > 8.0, "3 s of silence after 1 s heartbeats: {silent}");
    }

    #[test]
    fn irregular_arrivals_make_silence_less_alarming() {
        let c = config();
        let (mut regular, mut irregular) = (PhiDetector::default(), PhiDetector::default());
        let t0 = Instant::now();
        let (mut a, mut b) = (t0, t0);
        for i in 0..40 {
            a += Duration::from_millis(1000);
            b += Duration::from_millis(if i % 2 == 0 { 300 } else { 1700 });
            regular.arrival(&c, 0, a);
            irregular.arrival(&c, 0, b);
        }
        let wait = Duration::from_millis(2500);
        let (r, i) = (regular.phi(&c, 0, a + wait).expect("phi"), irregular.phi(&c, 0, b + wait).expect("phi"));
        assert!(i < r, "irregular {i} vs regular {r}");
    }

    #[test]
    fn a_forgotten_slot_starts_over() {
        let c = config();
        let mut d = PhiDetector::default();
        let t0 = Instant::now();
        d.arrival(&c, 7, t0);
        d.arrival(&c, 7, t0 + Duration::from_secs(1));
        assert!(d.phi(&c, 7, t0 + Duration::from_secs(2)).is_some());
        d.forget(7);
        assert_eq!(d.phi(&c, 7, t0 + Duration::from_secs(2)), None);
    }

    #[test]
    fn acceptable_pause_delays_the_rise() {
        let mut c = config();
        let mut d = PhiDetector::default();
        let t0 = Instant::now();
        for i in 0..10 {
            d.arrival(&c, 1, t0 + Duration::from_secs(i));
        }
        let at = t0 + Duration::from_secs(12);
        let strict = d.phi(&c, 1, at).expect("phi");
        c.acceptable_pause = Duration::from_secs(3);
        let tolerant = d.phi(&c, 1, at).expect("phi");
        assert!(tolerant < 1.0 && strict > 8.0, "{tolerant} {strict}");
    }
}
