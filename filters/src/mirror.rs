//! `RequestMirror` ([HF-4]): where copies of requests go and what share of requests is copied.
//! The sending itself is the proxy's (`proxy/src/mirror.rs`); nothing here does I/O.

use serde::Serialize;

/// Why a mirror could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MirrorError {
    /// Both `percent` and `fraction` are set.
    #[error("only one of percent and fraction may be set")]
    Both,
    /// `percent` outside 0–100.
    #[error("mirror percent {0} is not between 0 and 100")]
    Percent(i64),
    /// A fraction with a zero or negative denominator, or a numerator outside 0..=denominator.
    #[error("mirror fraction {0}/{1} is not between 0 and 1")]
    Fraction(i64, i64),
}

/// A compiled `RequestMirror` filter: a resolved backend and a sampling share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// Index of the mirror backend in the Snapshot's clusters.
    pub cluster: usize,
    /// The cluster name, for humans.
    pub cluster_name: String,
    /// Requests mirrored per `denominator` requests.
    pub numerator: u32,
    /// See `numerator`; never 0.
    pub denominator: u32,
}

impl Mirror {
    /// Compile the share from `percent` or `fraction` (numerator, denominator); 100% if neither.
    pub fn new(
        cluster: usize,
        cluster_name: String,
        percent: Option<i64>,
        fraction: Option<(i64, Option<i64>)>,
    ) -> Result<Self, MirrorError> {
        let (numerator, denominator) = match (percent, fraction) {
            (Some(_), Some(_)) => return Err(MirrorError::Both),
            (Some(p), None) => match u32::try_from(p) {
                Ok(p @ 0..=100) => (p, 100),
                _ => return Err(MirrorError::Percent(p)),
            },
            (None, Some((n, d))) => {
                // The Gateway API default denominator is 100.
                let d = d.unwrap_or(100);
                match (u32::try_from(n), u32::try_from(d)) {
                    (Ok(num), Ok(den)) if den > 0 && num <= den => (num, den),
                    _ => return Err(MirrorError::Fraction(n, d)),
                }
            }
            (None, None) => (1, 1),
        };
        Ok(Self {
            cluster,
            cluster_name,
            numerator,
            denominator,
        })
    }

    /// Whether the request with this draw is mirrored; `roll` is uniform in `0..denominator`.
    pub fn sampled(&self, roll: u32) -> bool {
        roll < self.numerator
    }
}

/// The Host a mirrored copy carries: `-shadow` appended to the host name, any port kept
/// (Envoy's shadow naming, which Istio users see in mirror backends' logs).
pub fn shadow_host(host: &str) -> String {
    // An IPv6 literal keeps its brackets; only a trailing `:port` after them is a port.
    let (name, port) = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') && host[..i].rfind(':').is_none() => {
            (&host[..i], &host[i..])
        }
        Some(i) if host.starts_with('[') && host[..i].ends_with(']') => (&host[..i], &host[i..]),
        _ => (host, ""),
    };
    let mut out = String::with_capacity(host.len() + 7);
    out.push_str(name);
    out.push_str("-shadow");
    out.push_str(port);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_fraction_and_default_share_hf_4() {
        // [HF-4] percent (0–100) or fraction; default 100%.
        let m = |p, f| Mirror::new(0, "c".into(), p, f);
        let all = m(None, None).unwrap();
        assert!((0..all.denominator).all(|r| all.sampled(r)));
        let half = m(Some(50), None).unwrap();
        assert_eq!((0..100).filter(|&r| half.sampled(r)).count(), 50);
        let none = m(Some(0), None).unwrap();
        assert!(!(0..100).any(|r| none.sampled(r)));
        let third = m(None, Some((1, Some(3)))).unwrap();
        assert_eq!((0..3).filter(|&r| third.sampled(r)).count(), 1);
        let default_den = m(None, Some((25, None))).unwrap();
        assert_eq!(default_den.denominator, 100);
        assert_eq!(m(Some(101), None), Err(MirrorError::Percent(101)));
        assert_eq!(m(Some(-1), None), Err(MirrorError::Percent(-1)));
        assert_eq!(
            m(None, Some((2, Some(1)))),
            Err(MirrorError::Fraction(2, 1))
        );
        assert_eq!(
            m(None, Some((0, Some(0)))),
            Err(MirrorError::Fraction(0, 0))
        );
        assert_eq!(m(Some(1), Some((1, None))), Err(MirrorError::Both));
    }

    #[test]
    fn shadow_host_keeps_the_port() {
        assert_eq!(shadow_host("a.io"), "a.io-shadow");
        assert_eq!(shadow_host("a.io:8080"), "a.io-shadow:8080");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadow_host("[::1]"), "[::1]-shadow");
    }
}
