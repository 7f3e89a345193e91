//! Retry policy: exponential backoff with jitter, capped in delay and in attempts.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How often and how patiently a step's transient failures are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts, including the first (≥ 1).
    pub attempts: u32,
    /// Delay before the second attempt; doubles each time.
    #[serde(with = "millis")]
    pub backoff: Duration,
    /// No delay exceeds this.
    #[serde(with = "millis")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based), before jitter:
    /// `min(max_delay, backoff · 2^(attempt-1))`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.backoff.saturating_mul(factor).min(self.max_delay)
    }

    /// The delay with "equal jitter": uniformly in `[base/2, base]`, so concurrent
    /// retries spread out but never wait less than half the base delay.
    /// `unit` is a random number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt);
        let half = base / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    pub fn jittered_delay(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_then_cap() {
        let p = RetryPolicy {
            attempts: 10,
            backoff: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
        };
        let bases: Vec<u64> = (1..=6).map(|a| p.base_delay(a).as_secs()).collect();
        assert_eq!(bases, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(p.base_delay(1000), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_half_and_full_base() {
        let p = RetryPolicy {
            attempts: 5,
            backoff: Duration::from_secs(4),
            max_delay: Duration::from_secs(60),
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(4));
        for _ in 0..100 {
            let d = p.jittered_delay(2);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
    }
}
