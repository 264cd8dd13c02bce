//! Rule timeouts ([HT-1]): `request` (the whole exchange) and `backendRequest` (one upstream
//! attempt), and the Gateway API duration strings they are written in.

use serde::{Serialize, Serializer};
use std::time::Duration;

/// Why a duration or a timeout pair could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeoutError {
    /// Not a Gateway API duration (`1h`, `30m`, `10s`, `500ms`, up to four parts).
    #[error(
        "invalid duration {0:?}: want up to four <number><h|m|s|ms> parts, e.g. 1m30s or 500ms"
    )]
    Duration(String),
    /// `backendRequest` is longer than `request`.
    #[error("backendRequest {backend:?} is longer than request {request:?}")]
    BackendLongerThanRequest {
        /// The `request` value as written.
        request: String,
        /// The `backendRequest` value as written.
        backend: String,
    },
}

/// Parse a Gateway API duration: `^([0-9]{1,5}(h|m|s|ms)){1,4}$` (`0s` is zero).
pub fn parse_duration(text: &str) -> Result<Duration, TimeoutError> {
    let bad = || TimeoutError::Duration(text.to_string());
    let mut rest = text.as_bytes();
    let mut total = Duration::ZERO;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let number: u64 = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        rest = &rest[digits..];
        let (unit, len) = match rest {
            [b'm', b's', ..] => (Duration::from_millis(1), 2),
            [b'h', ..] => (Duration::from_secs(3600), 1),
            [b'm', ..] => (Duration::from_secs(60), 1),
            [b's', ..] => (Duration::from_secs(1), 1),
            _ => return Err(bad()),
        };
        rest = &rest[len..];
        // At most 99999h per part: never overflows.
        total += unit * number as u32;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(bad());
    }
    Ok(total)
}

/// A compiled `timeouts` block. `None` means no limit (unset, or `0s`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Limit on the whole exchange, across retries.
    #[serde(serialize_with = "ser_opt", skip_serializing_if = "Option::is_none")]
    pub request: Option<Duration>,
    /// Limit on each upstream attempt.
    #[serde(serialize_with = "ser_opt", skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<Duration>,
}

impl Timeouts {
    /// Compile from the strings as written; `0s` disables a limit ([HT-1]), and `backendRequest`
    /// must not exceed `request` when both are limits.
    pub fn new(request: Option<&str>, backend_request: Option<&str>) -> Result<Self, TimeoutError> {
        let limit = |s: Option<&str>| -> Result<Option<Duration>, TimeoutError> {
            match s {
                None => Ok(None),
                Some(s) => Ok(Some(parse_duration(s)?).filter(|d| !d.is_zero())),
            }
        };
        let out = Self {
            request: limit(request)?,
            backend_request: limit(backend_request)?,
        };
        if let (Some(r), Some(b)) = (out.request, out.backend_request)
            && b > r
        {
            return Err(TimeoutError::BackendLongerThanRequest {
                request: request.unwrap_or_default().to_string(),
                backend: backend_request.unwrap_or_default().to_string(),
            });
        }
        Ok(out)
    }

    /// True when neither limit is set.
    pub fn is_empty(&self) -> bool {
        self.request.is_none() && self.backend_request.is_none()
    }
}

/// A duration as milliseconds text for `/config_dump` (`1500ms`).
pub(crate) fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}ms", d.as_millis()))
}

fn ser_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_api_durations_ht_1() {
        // [HT-1] durations look like 500ms, 10s, 1h; up to four parts.
        let ms = |n| Duration::from_millis(n);
        for (text, want) in [
            ("500ms", ms(500)),
            ("10s", ms(10_000)),
            ("1h", ms(3_600_000)),
            ("1m30s", ms(90_000)),
            ("1h1m1s1ms", ms(3_661_001)),
            ("0s", ms(0)),
            ("99999ms", ms(99_999)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "10",
            "1.5s",
            "-1s",
            "1d",
            "s",
            "100000ms",
            "1h1m1s1ms1s",
            "1 s",
            "1S",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn zero_disables_and_backend_must_fit_in_request_ht_1() {
        // [HT-1] `0s` disables; backendRequest ≤ request.
        let t = Timeouts::new(Some("0s"), Some("2s")).unwrap();
        assert_eq!(t.request, None);
        assert_eq!(t.backend_request, Some(Duration::from_secs(2)));
        let t = Timeouts::new(Some("1s"), Some("1s")).unwrap();
        assert_eq!(t.backend_request, Some(Duration::from_secs(1)));
        assert!(matches!(
            Timeouts::new(Some("1s"), Some("2s")),
            Err(TimeoutError::BackendLongerThanRequest { .. })
        ));
        assert!(Timeouts::new(None, None).unwrap().is_empty());
    }
}
