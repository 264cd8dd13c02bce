//! `directResponse` ([VS-6]): answer with a fixed status and body instead of forwarding.

use bytes::Bytes;
use serde::{Serialize, Serializer};

/// A compiled `directResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectResponse {
    /// The status of the reply.
    pub status: u16,
    /// The body (may be empty); shown as text in dumps, invalid UTF-8 replaced.
    #[serde(serialize_with = "ser_body")]
    pub body: Bytes,
}

fn ser_body<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_the_body_as_text() {
        let d = DirectResponse {
            status: 503,
            body: Bytes::from_static(b"down \xff"),
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["status"], 503);
        assert_eq!(v["body"], "down \u{fffd}");
    }
}
