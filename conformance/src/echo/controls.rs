//! Request controls the echo backend understands: response headers to set, a delay, a status,
//! read from headers or query parameters (Go durations, like the upstream server).

use super::*;

/// Behaviour requested by the client through headers or query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Controls {
    /// How long to wait before answering.
    pub(super) delay: Duration,
    /// Status code to answer with.
    pub(super) status: StatusCode,
}

impl Controls {
    /// Reads the delay and status controls; the header wins over the query parameter.
    pub(super) fn from_request(parts: &Parts) -> Result<Self, String> {
        let query = parts.uri.query().unwrap_or("");

        let delay = match control_value(&parts.headers, DELAY_HEADER, query, DELAY_QUERY) {
            Some(raw) => parse_go_duration(raw.trim())
                .map_err(|err| format!("time: invalid duration {raw:?}: {err}"))?,
            None => Duration::ZERO,
        };

        let status = match control_value(&parts.headers, STATUS_HEADER, query, STATUS_QUERY) {
            Some(raw) => {
                parse_status(raw.trim()).ok_or_else(|| format!("invalid status code {raw:?}"))?
            }
            None => StatusCode::OK,
        };

        Ok(Self { delay, status })
    }
}

/// First value of `header`, else of query parameter `param`; empty values count as absent.
pub(super) fn control_value(
    headers: &HeaderMap,
    header: &str,
    query: &str,
    param: &str,
) -> Option<String> {
    headers
        .get(header)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .or_else(|| query_param(query, param))
        .filter(|value| !value.trim().is_empty())
}

/// Parses a final (non-1xx) status code.
pub(super) fn parse_status(raw: &str) -> Option<StatusCode> {
    let code: u16 = raw.parse().ok()?;
    StatusCode::from_u16(code)
        .ok()
        .filter(|status| !status.is_informational())
}

/// Response headers requested through `X-Echo-Set-Header`, repeated names joined with `,`.
///
/// Malformed names or values are skipped, as are framing headers that would corrupt the response.
pub(super) fn echo_set_headers(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut wanted: Vec<(HeaderName, String)> = Vec::new();
    for list in headers.get_all(SET_HEADER) {
        let list = String::from_utf8_lossy(list.as_bytes());
        for pair in list.split(',') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once(':').unwrap_or((pair, ""));
            let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes()) else {
                continue;
            };
            if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
                continue;
            }
            let value = value.trim();
            match wanted.iter_mut().find(|(existing, _)| *existing == name) {
                Some((_, joined)) => {
                    joined.push(',');
                    joined.push_str(value);
                }
                None => wanted.push((name, value.to_owned())),
            }
        }
    }
    wanted
        .into_iter()
        .filter_map(|(name, value)| Some((name, HeaderValue::from_str(&value).ok()?)))
        .collect()
}

/// First value of query parameter `key`, percent-decoded (`+` as space) like Go's `url.ParseQuery`.
pub(super) fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(name, _)| percent_decode(name) == key)
        .map(|(_, value)| percent_decode(value))
}

/// Decodes `%XX` escapes and `+`; malformed escapes are kept literally.
pub(super) fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a Go `time.ParseDuration` string (`300ms`, `1.5h`, `2h45m`); negative values become zero.
pub(super) fn parse_go_duration(input: &str) -> Result<Duration, String> {
    /// Largest Go duration (`math.MaxInt64` nanoseconds).
    const MAX_NANOS: u128 = i64::MAX as u128;

    let (negative, mut rest) = match (input.strip_prefix('-'), input.strip_prefix('+')) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => (false, input),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("empty duration".to_owned());
    }

    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let (frac_digits, after_number) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err("expected a number".to_owned());
        }

        let unit_len = after_number
            .find(|ch: char| ch == '.' || ch.is_ascii_digit())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit".to_owned()),
            other => return Err(format!("unknown unit {other:?}")),
        };

        let mut whole: u128 = 0;
        for digit in int_digits.bytes() {
            whole = whole * 10 + u128::from(digit - b'0');
            if whole > MAX_NANOS {
                return Err("overflow".to_owned());
            }
        }
        let mut part = whole * unit_nanos;

        // Fractional digits beyond nanosecond precision of the largest unit cannot matter.
        let mut scale: u128 = 1;
        let mut frac: u128 = 0;
        for digit in frac_digits.bytes().take(20) {
            frac = frac * 10 + u128::from(digit - b'0');
            scale *= 10;
        }
        part += frac * unit_nanos / scale;

        total += part;
        if total > MAX_NANOS {
            return Err("overflow".to_owned());
        }
        rest = after_unit;
    }

    if negative {
        return Ok(Duration::ZERO);
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| "overflow".to_owned())?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| "overflow".to_owned())?;
    Ok(Duration::new(secs, nanos))
}
