//! Adapters that let filters edit Pingora's request and response headers.

use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use waygate_filters::HeaderEdit;

/// Filter access to a Pingora request header.
pub struct RequestHeaders<'a>(pub &'a mut RequestHeader);

/// Filter access to a Pingora response header.
pub struct ResponseHeaders<'a>(pub &'a mut ResponseHeader);

impl HeaderEdit for RequestHeaders<'_> {
    fn values(&self, name: &HeaderName) -> Vec<HeaderValue> {
        self.0.headers.get_all(name).iter().cloned().collect()
    }
    fn set(&mut self, name: &HeaderName, value: HeaderValue) {
        // Only fails on an invalid value, which a compiled filter never holds.
        let _ = self.0.insert_header(name.clone(), value);
    }
    fn remove(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}

impl HeaderEdit for ResponseHeaders<'_> {
    fn values(&self, name: &HeaderName) -> Vec<HeaderValue> {
        self.0.headers.get_all(name).iter().cloned().collect()
    }
    fn set(&mut self, name: &HeaderName, value: HeaderValue) {
        let _ = self.0.insert_header(name.clone(), value);
    }
    fn remove(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}
