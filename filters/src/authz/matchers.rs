//! The value matchers of AuthorizationPolicy ([AP-6], [AP-8]): strings (exact, prefix, suffix,
//! presence), CIDR blocks, and paths with `{*}`/`{**}` templates.

use serde::Serialize;
use std::net::IpAddr;

/// [AP-6] One string value: `abc` exact, `abc*` prefix, `*abc` suffix, `*` any non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "camelCase")]
pub enum StrMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Ends with.
    Suffix(String),
    /// Non-empty.
    Present,
}

impl StrMatch {
    /// Parse a policy value.
    pub fn parse(v: &str) -> StrMatch {
        if v == "*" {
            StrMatch::Present
        } else if let Some(p) = v.strip_suffix('*') {
            StrMatch::Prefix(p.to_string())
        } else if let Some(s) = v.strip_prefix('*') {
            StrMatch::Suffix(s.to_string())
        } else {
            StrMatch::Exact(v.to_string())
        }
    }

    /// Parse a value compared case-insensitively (hosts): stored lowercased.
    pub fn parse_lowercase(v: &str) -> StrMatch {
        StrMatch::parse(&v.to_ascii_lowercase())
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            StrMatch::Exact(v) => s == v,
            StrMatch::Prefix(p) => s.starts_with(p.as_str()),
            StrMatch::Suffix(x) => s.ends_with(x.as_str()),
            StrMatch::Present => !s.is_empty(),
        }
    }
}

/// An IP address or CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Cidr {
    /// Parse `1.2.3.4`, `1.2.3.0/24`, `2001:db8::/32`.
    pub fn parse(v: &str) -> Result<Cidr, String> {
        let (ip, len) = match v.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (v, None),
        };
        let addr: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{v:?} is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{v:?} has an invalid prefix length"))?,
        };
        Ok(Cidr { addr, len })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u32) {
            match a {
                IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        // An IPv4-mapped IPv6 client is compared as IPv4.
        let ip = match ip {
            IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let ((net, width), (addr, w2)) = (bits(self.addr), bits(ip));
        if width != w2 {
            return false;
        }
        let shift = width - u32::from(self.len);
        if shift >= 128 {
            return true;
        }
        (net >> shift) == (addr >> shift)
    }
}

/// [AP-8] A path value: a string match, or a template with `{*}` (one segment) and `{**}` (zero
/// or more segments, last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "camelCase")]
pub enum PathMatch {
    /// Exact, prefix, suffix or presence.
    Str(StrMatch),
    /// Segment template.
    Template(Vec<Segment>),
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Segment {
    /// Literal text.
    Literal(String),
    /// `{*}`: exactly one segment.
    One,
    /// `{**}`: any number of segments (only last).
    Rest,
}

impl PathMatch {
    /// Parse a `paths` value.
    pub fn parse(v: &str) -> Result<PathMatch, String> {
        if !v.contains('{') {
            return Ok(PathMatch::Str(StrMatch::parse(v)));
        }
        let Some(rest) = v.strip_prefix('/') else {
            return Err(format!("path template {v:?} must start with '/'"));
        };
        let segments: Vec<Segment> = rest
            .split('/')
            .map(|s| match s {
                "{*}" => Ok(Segment::One),
                "{**}" => Ok(Segment::Rest),
                s if s.contains('{') || s.contains('}') || s.contains('*') => Err(format!(
                    "path template {v:?}: segment {s:?} mixes text and an operator"
                )),
                s => Ok(Segment::Literal(s.to_string())),
            })
            .collect::<Result<_, _>>()?;
        if segments.iter().rev().skip(1).any(|s| *s == Segment::Rest) {
            return Err(format!(
                "path template {v:?}: {{**}} must be the last operator"
            ));
        }
        Ok(PathMatch::Template(segments))
    }

    /// Whether the (normalised, query-less) path matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Str(s) => s.matches(path),
            PathMatch::Template(t) => {
                let Some(rest) = path.strip_prefix('/') else {
                    return false;
                };
                let parts: Vec<&str> = rest.split('/').collect();
                template_matches(t, &parts)
            }
        }
    }
}

fn template_matches(t: &[Segment], parts: &[&str]) -> bool {
    match (t.first(), parts.first()) {
        (None, None) => true,
        (Some(Segment::Rest), _) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(Segment::One), Some(p)) => !p.is_empty() && template_matches(&t[1..], &parts[1..]),
        (Some(Segment::Literal(l)), Some(p)) => l == p && template_matches(&t[1..], &parts[1..]),
    }
}

/// Normalise a request path for matching ([AP-8]): no query, `.` and `..` segments resolved,
/// repeated slashes merged.
pub fn normalize_path(raw: &str) -> String {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = path.len() > 1 && path.ends_with('/') && !out.is_empty();
    let mut s = format!("/{}", out.join("/"));
    if trailing {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks_contain_their_addresses() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("192.0.2.7")
                .unwrap()
                .contains("::ffff:192.0.2.7".parse().unwrap())
        );
        assert!(
            !Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("ten").is_err());
    }

    #[test]
    fn paths_normalise_before_matching() {
        assert_eq!(normalize_path("/a/./b/../c?x=1"), "/a/c");
        assert_eq!(normalize_path("//admin//x/"), "/admin/x/");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/../.."), "/");
    }

    #[test]
    fn templates_match_segments() {
        let t = PathMatch::parse("/store/{*}/items/{**}").unwrap();
        assert!(t.matches("/store/7/items"));
        assert!(t.matches("/store/7/items/a/b"));
        assert!(!t.matches("/store/items/a"));
        assert!(PathMatch::parse("/a/{**}/b").is_err());
        assert!(PathMatch::parse("/a{*}").is_err());
    }
}
