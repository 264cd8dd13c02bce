//! Rule retries ([HT-2]): which answers are retried, how many times, and how long to wait.

use crate::timeout::{TimeoutError, parse_duration, ser_duration};
use serde::Serialize;
use std::time::Duration;

/// Envoy's default retry backoff base interval, used when `backoff` is unset.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(25);

/// The number of retries when `attempts` is unset (the mesh default of [VS-9]).
pub const DEFAULT_ATTEMPTS: u32 = 2;

/// Why a retry block could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetryError {
    /// A status code outside 400–599.
    #[error("retry code {0} is not a 4xx or 5xx status")]
    Code(i64),
    /// A negative number of attempts.
    #[error("retry attempts {0} is negative")]
    Attempts(i64),
    /// A bad backoff duration.
    #[error("retry backoff: {0}")]
    Backoff(#[from] TimeoutError),
}

/// A compiled `retry` block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Response statuses that are retried (connection errors always are).
    pub codes: Vec<u16>,
    /// The most retries after the first attempt.
    pub attempts: u32,
    /// The least wait before a retry.
    #[serde(serialize_with = "ser_duration")]
    pub backoff: Duration,
}

impl RetryPolicy {
    /// Compile from the values as written.
    pub fn new(
        codes: &[i64],
        attempts: Option<i64>,
        backoff: Option<&str>,
    ) -> Result<Self, RetryError> {
        let codes = codes
            .iter()
            .map(|&c| match u16::try_from(c) {
                Ok(code @ 400..=599) => Ok(code),
                _ => Err(RetryError::Code(c)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let attempts = match attempts {
            None => DEFAULT_ATTEMPTS,
            Some(n) => u32::try_from(n).map_err(|_| RetryError::Attempts(n))?,
        };
        let backoff = match backoff {
            None => DEFAULT_BACKOFF,
            Some(b) => parse_duration(b)?,
        };
        Ok(Self {
            codes,
            attempts,
            backoff,
        })
    }

    /// Whether an upstream answer with this status is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        self.codes.contains(&status)
    }

    /// The wait before retry number `retry` (1 for the first retry): the backoff doubled per
    /// retry, capped at ten times the backoff (as Envoy does), plus up to half again of jitter.
    /// `jitter` is a uniform draw in `0..=1000`. Never less than `backoff`.
    pub fn wait(&self, retry: u32, jitter: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(16);
        let interval = self
            .backoff
            .saturating_mul(1u32 << shift)
            .min(self.backoff.saturating_mul(10));
        interval + interval.mul_f64(f64::from(jitter.min(1000)) / 2000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_codes_attempts_and_backoff_ht_2() {
        // [HT-2] codes are statuses; attempts counts retries; backoff is a duration.
        let p = RetryPolicy::new(&[500, 502, 503, 504], Some(3), Some("100ms")).unwrap();
        assert!(p.retries_status(503));
        assert!(!p.retries_status(404));
        assert_eq!(p.attempts, 3);
        assert_eq!(p.backoff, Duration::from_millis(100));
        assert_eq!(
            RetryPolicy::new(&[200], None, None),
            Err(RetryError::Code(200))
        );
        assert_eq!(
            RetryPolicy::new(&[], Some(-1), None),
            Err(RetryError::Attempts(-1))
        );
        assert!(matches!(
            RetryPolicy::new(&[], None, Some("1x")),
            Err(RetryError::Backoff(_))
        ));
        let d = RetryPolicy::new(&[], None, None).unwrap();
        assert_eq!((d.attempts, d.backoff), (DEFAULT_ATTEMPTS, DEFAULT_BACKOFF));
    }

    #[test]
    fn backoff_is_a_minimum_that_grows_and_is_capped_ht_2() {
        // [HT-2] backoff is the minimum wait; it may grow and have jitter.
        let p = RetryPolicy::new(&[], None, Some("100ms")).unwrap();
        let ms = Duration::from_millis;
        assert_eq!(p.wait(1, 0), ms(100));
        assert_eq!(p.wait(2, 0), ms(200));
        assert_eq!(p.wait(3, 0), ms(400));
        assert_eq!(p.wait(10, 0), ms(1000), "capped at ten times the backoff");
        assert_eq!(p.wait(1, 1000), ms(150));
        for retry in 1..20 {
            for jitter in [0, 1, 500, 999, 1000, 5000] {
                let w = p.wait(retry, jitter);
                assert!(w >= ms(100) && w <= ms(1500), "{retry} {jitter} {w:?}");
            }
        }
    }
}
