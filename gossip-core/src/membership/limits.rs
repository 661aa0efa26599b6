//! Rate limits against hostile or broken peers: datagrams per source address, accusations per
//! accuser. Both keep bounded state, so a flood from many (spoofed) sources cannot grow memory.

use std::hash::Hash;
use std::time::{Duration, Instant};

use hashbrown::HashMap;

/// Sources tracked in one window; past this, further sources pass untracked (a flood from
/// that many addresses is not something a per-source limit can stop anyway).
const MAX_SOURCES: usize = 16_384;

/// Accusers whose token buckets are kept.
const MAX_ACCUSERS: usize = 16_384;

/// Datagrams per source in fixed one-second windows.
#[derive(Debug)]
pub(crate) struct SourceLimiter<A> {
    limit: u32,
    window_start: Option<Instant>,
    counts: HashMap<A, u32, ahash::RandomState>,
}

impl<A: Eq + Hash + Clone> SourceLimiter<A> {
    pub fn new(limit: u32, hash_keys: [u64; 4]) -> Self {
        let hasher = ahash::RandomState::with_seeds(hash_keys[0], hash_keys[1], hash_keys[2], hash_keys[3]);
        SourceLimiter { limit, window_start: None, counts: HashMap::with_hasher(hasher) }
    }

    /// Counts one datagram from `source`; false if it is over the limit.
    pub fn admit(&mut self, now: Instant, source: &A) -> bool {
        let fresh = self.window_start.is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.counts.clear();
        }
        if let Some(n) = self.counts.get_mut(source) {
            *n = n.saturating_add(1);
            return *n <= self.limit;
        }
        if self.counts.len() < MAX_SOURCES {
            self.counts.insert(source.clone(), 1);
        }
        self.limit >= 1
    }
}

/// A token bucket per key: `burst` at once, `rate` per second earned back.
#[derive(Debug)]
pub(crate) struct TokenBuckets<K> {
    burst: f64,
    rate: f64,
    buckets: HashMap<K, (f64, Instant), ahash::RandomState>,
}

impl<K: Eq + Hash + Clone> TokenBuckets<K> {
    pub fn new(burst: u32, rate: f64, hash_keys: [u64; 4]) -> Self {
        let hasher = ahash::RandomState::with_seeds(hash_keys[3], hash_keys[2], hash_keys[1], hash_keys[0]);
        TokenBuckets { burst: f64::from(burst), rate, buckets: HashMap::with_hasher(hasher) }
    }

    /// Takes one token for `key`; false if its bucket is empty.
    pub fn take(&mut self, now: Instant, key: &K) -> bool {
        if self.buckets.len() >= MAX_ACCUSERS && !self.buckets.contains_key(key) {
            // Keep the ones still draining; full buckets carry no information.
            let burst = self.burst;
            let rate = self.rate;
            self.buckets
                .retain(|_, (tokens, at)| *tokens + rate * now.saturating_duration_since(*at).as_secs_f64() < burst);
        }
        let (tokens, at) = self.buckets.entry(key.clone()).or_insert((self.burst, now));
        *tokens = (*tokens + self.rate * now.saturating_duration_since(*at).as_secs_f64()).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_limited_per_second() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(3, [1, 2, 3, 4]);
        assert!((0..3).all(|_| l.admit(t0, &1u32)));
        assert!(!l.admit(t0, &1), "fourth datagram in the second");
        assert!(l.admit(t0, &2), "other sources are not affected");
        assert!(l.admit(t0 + Duration::from_secs(1), &1), "a new window");
    }

    #[test]
    fn buckets_refill_at_their_rate() {
        let t0 = Instant::now();
        let mut b = TokenBuckets::new(2, 1.0, [1, 2, 3, 4]);
        assert!(b.take(t0, &"a") && b.take(t0, &"a"));
        assert!(!b.take(t0, &"a"));
        assert!(b.take(t0, &"b"));
        assert!(!b.take(t0 + Duration::from_millis(500), &"a"));
        assert!(b.take(t0 + Duration::from_millis(1100), &"a"));
    }
}
