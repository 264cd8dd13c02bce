//! [DR-4] Outlier detection for one endpoint: consecutive 5xx / gateway errors eject it for
//! `baseEjectionTime × ejections`; a pure state machine over atomics, driven by the caller's
//! clock (milliseconds since the registry's epoch), so tests step time by hand.
//!
//! Choices, after Envoy (Istio's data plane):
//! - An ejection happens as soon as the threshold is reached (Envoy does not wait for the
//!   interval sweep for consecutive errors); it ends exactly when its time is up rather than at
//!   the next sweep. `interval` is the decay step of the ejection count: each whole interval an
//!   endpoint spends back in service takes one ejection off its multiplier.
//! - Connection failures, resets and timeouts count as 5xx and as gateway errors (Istio leaves
//!   `splitExternalLocalOriginErrors` off).
//! - An ejection is allowed while the ejected share of the cluster is below
//!   `maxEjectionPercent`, so with the default 10% one endpoint of a small cluster can still be
//!   ejected (Envoy's long-standing behaviour; newer Envoy makes that opt-in with
//!   `always_eject_one_host`, which Istio does not set — here it stays on, or outlier detection
//!   would do nothing for clusters under ten endpoints).
//! - An ejection lasts at most 300s or `baseEjectionTime`, whichever is longer (Envoy's
//!   `max_ejection_time` default).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;
use waygate_config::traffic_policy::OutlierDetection;

/// Envoy's default `max_ejection_time`.
const MAX_EJECTION: Duration = Duration::from_secs(300);

/// How one attempt at an endpoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered with this status.
    Status(u16),
    /// No answer: the connection failed, broke or timed out.
    LocalFailure,
}

impl Outcome {
    fn is_5xx(self) -> bool {
        match self {
            Outcome::Status(s) => (500..600).contains(&s),
            Outcome::LocalFailure => true,
        }
    }

    fn is_gateway_error(self) -> bool {
        match self {
            Outcome::Status(s) => matches!(s, 502..=504),
            Outcome::LocalFailure => true,
        }
    }
}

/// One endpoint's outlier bookkeeping.
#[derive(Debug, Default)]
pub struct OutlierState {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// When the current ejection ends (ms since the epoch); 0: never ejected.
    ejected_until: AtomicU64,
    /// The ejection multiplier.
    ejections: AtomicU32,
}

impl OutlierState {
    /// Whether the endpoint is out of the load-balancing pool at `now_ms`.
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until.load(Ordering::Acquire)
    }

    /// How many times the endpoint has been ejected (after decay at the last ejection).
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Count one outcome; eject the endpoint when a threshold is reached and `may_eject`
    /// (the cluster's ejection budget) allows. Returns whether this call ejected it.
    pub fn record(
        &self,
        outcome: Outcome,
        policy: &OutlierDetection,
        now_ms: u64,
        may_eject: impl FnOnce() -> bool,
    ) -> bool {
        if !outcome.is_5xx() {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            return false;
        }
        let gateway = if outcome.is_gateway_error() {
            self.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let fives = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
        let hit = |threshold: u32, count: u32| threshold > 0 && count >= threshold;
        if !(hit(policy.consecutive_5xx, fives) || hit(policy.consecutive_gateway_errors, gateway))
        {
            return false;
        }
        if self.is_ejected(now_ms) || !may_eject() {
            return false;
        }
        self.eject(policy, now_ms);
        true
    }

    fn eject(&self, policy: &OutlierDetection, now_ms: u64) {
        let previous_end = self.ejected_until.load(Ordering::Acquire);
        let interval = (policy.interval.as_millis() as u64).max(1);
        // One ejection forgiven per whole interval spent back in service.
        let quiet = now_ms.saturating_sub(previous_end) / interval;
        let decayed = u64::from(self.ejections.load(Ordering::Relaxed)).saturating_sub(quiet);
        let count = (decayed + 1).min(u64::from(u32::MAX)) as u32;
        self.ejections.store(count, Ordering::Relaxed);
        let base = policy.base_ejection_time;
        let length = base
            .saturating_mul(count)
            .min(MAX_EJECTION.max(base))
            .as_millis() as u64;
        self.ejected_until
            .store(now_ms.saturating_add(length).max(1), Ordering::Release);
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
    }
}

/// Whether one more of `total` endpoints may be ejected while `ejected` are: while the ejected
/// share is below `max_percent` (see the module doc).
pub fn ejection_allowed(ejected: usize, total: usize, max_percent: u32) -> bool {
    (ejected as u64) * 100 < (total as u64) * u64::from(max_percent)
}

/// Whether ejections are ignored for a cluster (Envoy's panic threshold, Istio's
/// `minHealthPercent`): fewer than `min_percent` of its endpoints are in service.
pub fn panicking(ejected: usize, total: usize, min_percent: u32) -> bool {
    min_percent > 0
        && ((total - ejected.min(total)) as u64) * 100 < (total as u64) * u64::from(min_percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(fives: u32, gateway: u32) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: fives,
            consecutive_gateway_errors: gateway,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            ..OutlierDetection::default()
        }
    }

    #[test]
    fn consecutive_5xx_eject_and_a_success_resets_the_count_dr_4() {
        let s = OutlierState::default();
        let p = policy(3, 0);
        assert!(!s.record(Outcome::Status(500), &p, 0, || true));
        assert!(!s.record(Outcome::LocalFailure, &p, 0, || true));
        // A success in between starts the count again.
        assert!(!s.record(Outcome::Status(200), &p, 0, || true));
        assert!(!s.record(Outcome::Status(500), &p, 0, || true));
        assert!(!s.record(Outcome::Status(503), &p, 0, || true));
        assert!(!s.is_ejected(0));
        assert!(s.record(Outcome::Status(500), &p, 1_000, || true));
        assert!(s.is_ejected(1_000));
        // base × 1 = 30s.
        assert!(s.is_ejected(30_999));
        assert!(!s.is_ejected(31_000));
    }

    #[test]
    fn gateway_errors_count_only_502_to_504_and_local_failures() {
        let s = OutlierState::default();
        let p = policy(0, 2);
        assert!(!s.record(Outcome::Status(502), &p, 0, || true));
        // A 500 is a 5xx but not a gateway error: it breaks the run.
        assert!(!s.record(Outcome::Status(500), &p, 0, || true));
        assert!(!s.record(Outcome::Status(504), &p, 0, || true));
        assert!(s.record(Outcome::LocalFailure, &p, 0, || true));
        // consecutive5xxErrors 0 turns that detector off.
        let s = OutlierState::default();
        for _ in 0..20 {
            assert!(!s.record(Outcome::Status(500), &policy(0, 0), 0, || true));
        }
    }

    #[test]
    fn each_ejection_lasts_longer_and_the_count_decays_when_quiet() {
        let s = OutlierState::default();
        let p = policy(1, 0);
        assert!(s.record(Outcome::Status(500), &p, 0, || true));
        assert_eq!(s.ejections(), 1);
        // Back at 30s, failing again at once: the second ejection lasts 60s.
        assert!(s.record(Outcome::Status(500), &p, 30_000, || true));
        assert_eq!(s.ejections(), 2);
        assert!(s.is_ejected(89_999));
        assert!(!s.is_ejected(90_000));
        // Two quiet intervals (20s) after it ended take two ejections off: back to base × 1.
        assert!(s.record(Outcome::Status(500), &p, 110_000, || true));
        assert_eq!(s.ejections(), 1);
        assert!(!s.is_ejected(140_000));
        // While ejected, more errors do not extend the ejection.
        let s = OutlierState::default();
        assert!(s.record(Outcome::Status(500), &p, 0, || true));
        assert!(!s.record(Outcome::Status(500), &p, 1, || true));
        assert_eq!(s.ejections(), 1);
    }

    #[test]
    fn ejection_time_is_capped_at_300s() {
        let s = OutlierState::default();
        let p = policy(1, 0);
        let mut now = 0;
        for _ in 0..20 {
            assert!(s.record(Outcome::Status(500), &p, now, || true));
            now = s.ejected_until.load(Ordering::Relaxed);
        }
        assert!(s.is_ejected(now - 1));
        let last = s.ejected_until.load(Ordering::Relaxed);
        assert!(s.record(Outcome::Status(500), &p, last, || true));
        assert_eq!(s.ejected_until.load(Ordering::Relaxed) - last, 300_000);
    }

    #[test]
    fn the_cluster_budget_can_refuse_an_ejection() {
        let s = OutlierState::default();
        assert!(!s.record(Outcome::Status(500), &policy(1, 0), 0, || false));
        assert!(!s.is_ejected(0));
    }

    #[test]
    fn max_ejection_percent_lets_one_go_and_min_health_percent_panics() {
        // 10% of 2: the first may go, the second may not.
        assert!(ejection_allowed(0, 2, 10));
        assert!(!ejection_allowed(1, 2, 10));
        assert!(ejection_allowed(1, 20, 10));
        assert!(!ejection_allowed(2, 20, 10));
        assert!(ejection_allowed(1, 2, 100));
        assert!(!ejection_allowed(0, 2, 0));
        // minHealthPercent 0 never panics; 50 panics when under half are left.
        assert!(!panicking(2, 2, 0));
        assert!(!panicking(1, 2, 50));
        assert!(panicking(2, 3, 50));
    }
}
