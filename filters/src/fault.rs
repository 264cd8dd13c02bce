//! [VS-7] Fault injection: a fixed delay and/or a local abort, each for its own share of
//! requests, decided independently.

use serde::Serialize;
use std::time::Duration;

/// Shares are in parts per million, so `percentage.value` keeps its fraction (0.1% = 1,000).
pub const PER_MILLION: u32 = 1_000_000;

/// A compiled `fault`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fault {
    /// Wait this long before routing, for `share` of requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Faulted<Duration>>,
    /// Answer with this status, for `share` of requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<Faulted<u16>>,
}

/// One fault and the share of requests it hits.
#[derive(Debug, Clone, Serialize)]
pub struct Faulted<T> {
    /// The delay or the status.
    pub what: T,
    /// Requests hit per million.
    pub share: u32,
}

impl<T> Faulted<T> {
    /// Whether a uniform `roll` in `0..PER_MILLION` is hit.
    pub fn hits(&self, roll: u32) -> bool {
        roll < self.share
    }
}

/// Parts per million from a `percentage.value` (0..=100); out of range is an error.
pub fn share(percent: f64) -> Result<u32, String> {
    if !(0.0..=100.0).contains(&percent) || percent.is_nan() {
        return Err(format!("percentage {percent} is not between 0 and 100"));
    }
    Ok((percent * 10_000.0).round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_keep_fractions_of_a_percent() {
        assert_eq!(share(100.0), Ok(PER_MILLION));
        assert_eq!(share(0.1), Ok(1_000));
        assert_eq!(share(0.0), Ok(0));
        assert!(share(100.5).is_err());
        let f = Faulted {
            what: 503u16,
            share: share(50.0).unwrap(),
        };
        assert!(f.hits(0) && f.hits(499_999) && !f.hits(500_000));
    }
}
