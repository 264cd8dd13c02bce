//! `x-forwarded-for` / `x-forwarded-proto` ([EC-2]), built without `format!`: this runs on every
//! proxied request.

use http::HeaderValue;
use std::net::IpAddr;

/// The header names, parsed once.
pub static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// `x-forwarded-for` after appending the peer: `prev, ip` or just `ip`.
pub fn append_xff(prev: Option<&HeaderValue>, peer: IpAddr) -> Option<HeaderValue> {
    let prev = prev.map(HeaderValue::as_bytes).filter(|p| !p.is_empty());
    let mut out = Vec::with_capacity(prev.map_or(0, |p| p.len() + 2) + 39);
    if let Some(p) = prev {
        out.extend_from_slice(p);
        out.extend_from_slice(b", ");
    }
    match peer {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u8(&mut out, octet);
            }
        }
        IpAddr::V6(v6) => out.extend_from_slice(v6.to_string().as_bytes()),
    }
    HeaderValue::from_bytes(&out).ok()
}

fn push_u8(out: &mut Vec<u8>, n: u8) {
    if n >= 100 {
        out.push(b'0' + n / 100);
    }
    if n >= 10 {
        out.push(b'0' + (n / 10) % 10);
    }
    out.push(b'0' + n % 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_the_peer_ec_2() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(append_xff(None, ip("127.0.0.1")).unwrap(), "127.0.0.1");
        assert_eq!(
            append_xff(None, ip("10.200.3.255")).unwrap(),
            "10.200.3.255"
        );
        assert_eq!(append_xff(None, ip("0.0.0.0")).unwrap(), "0.0.0.0");
        let prev = HeaderValue::from_static("1.2.3.4");
        assert_eq!(
            append_xff(Some(&prev), ip("192.168.100.9")).unwrap(),
            "1.2.3.4, 192.168.100.9"
        );
        assert_eq!(append_xff(None, ip("::1")).unwrap(), "::1");
    }
}
