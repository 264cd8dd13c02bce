//! Hostname rules: wildcard matching, listener/route intersection ([GW-2], [HR-4]) and ordering.

/// Normalise a request Host: drop the port and any trailing dot, lowercase.
pub fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let no_port = strip_port(host);
    let trimmed = no_port.strip_suffix('.').unwrap_or(no_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}

/// The host without `:port` (IPv6 literals in brackets keep their brackets).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Whether `pattern` (exact or `*.suffix`) matches the concrete `host` ([GW-2]).
pub fn matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        // `*.a.com` matches `x.a.com` and `x.y.a.com` but not `a.com`.
        Some(suffix) => host.len() > suffix.len() && ends_with_ignore_case(host, suffix),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len() && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The effective hostname of a route hostname on a listener, or `None` if they do not intersect ([HR-4]).
pub fn intersect(listener: Option<&str>, route: &str) -> Option<String> {
    let Some(listener) = listener else {
        return Some(route.to_ascii_lowercase());
    };
    let (l_wild, r_wild) = (listener.starts_with("*."), route.starts_with("*."));
    let pick = match (l_wild, r_wild) {
        (false, false) => listener.eq_ignore_ascii_case(route).then_some(route),
        (true, false) => matches(listener, route).then_some(route),
        (false, true) => matches(route, listener).then_some(listener),
        (true, true) => {
            if ends_with_ignore_case(route, &listener[1..]) {
                Some(route)
            } else if ends_with_ignore_case(listener, &route[1..]) {
                Some(listener)
            } else {
                None
            }
        }
    };
    pick.map(str::to_ascii_lowercase)
}

/// Sort key: exact hostnames first, then wildcards with more labels, then no hostname ([GW-3]).
pub fn specificity(hostname: Option<&str>) -> (u8, std::cmp::Reverse<usize>) {
    match hostname {
        None | Some("") => (2, std::cmp::Reverse(0)),
        Some(h) if h.starts_with('*') => (1, std::cmp::Reverse(h.len())),
        Some(h) => (0, std::cmp::Reverse(h.len())),
    }
}

/// Validate a hostname as the Gateway API allows it (RFC 1123, optional leading `*.`).
pub fn validate(h: &str) -> Result<(), String> {
    let body = h.strip_prefix("*.").unwrap_or(h);
    if body.is_empty() || h.len() > 253 {
        return Err(format!("invalid hostname {h:?}"));
    }
    if body.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("hostname {h:?} must not be an IP address"));
    }
    for label in body.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("invalid hostname {h:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matching_gw_2() {
        // [GW-2]
        assert!(matches("*.a.com", "x.a.com"));
        assert!(matches("*.a.com", "x.y.a.com"));
        assert!(!matches("*.a.com", "a.com"));
        assert!(matches("A.com", "a.COM"));
        assert!(!matches("a.com", "b.a.com"));
    }

    #[test]
    fn intersection_table_hr_4() {
        // [HR-4] (listener, route) -> effective hostname
        let rows = [
            (Some("*.w.io"), "foo.w.io", Some("foo.w.io")),
            (Some("a.b.com"), "*.b.com", Some("a.b.com")),
            (Some("*.e.com"), "*.f.e.com", Some("*.f.e.com")),
            (Some("*.f.e.com"), "*.e.com", Some("*.f.e.com")),
            (Some("*.w.io"), "w.io", None),
            (None, "any.io", Some("any.io")),
            (Some("a.io"), "b.io", None),
        ];
        for (l, r, want) in rows {
            assert_eq!(intersect(l, r).as_deref(), want, "{l:?} {r}");
        }
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("a.io."), "a.io");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn validation() {
        assert!(validate("*.example.com").is_ok());
        assert!(validate("foo.example.com").is_ok());
        assert!(validate("*").is_err());
        assert!(validate("a.*.com").is_err());
        assert!(validate("1.2.3.4").is_err());
        assert!(validate("-a.com").is_err());
    }
}
