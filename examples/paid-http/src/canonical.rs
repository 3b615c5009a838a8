//! The canonical form of an HTTP request, which a stream proof signs.
//!
//! `digest = SHA-256(prefix || body)` ([`RequestDigest`]), where `prefix` is
//! `domain_prefix("/paystreams/v1/PaidHttpRequest/")` (the domain string, zero-padded to 32
//! bytes, as every LEZ domain prefix) and `body` is, each field as a 4-byte big-endian length
//! followed by its bytes:
//!
//! 1. the method, upper case ASCII (`GET`);
//! 2. the path and query exactly as sent (`/v1/quotes?n=3`), no scheme or host;
//! 3. the request id (the `x-paystreams-request-id` header);
//!
//! then the 32-byte SHA-256 of the request body (of the empty string when there is none).
//! Headers other than the request id are not covered.

use paystreams_lez_core::{domain_prefix, sha256};
use paystreams_wire::RequestDigest;

/// Domain prefix of the paid-HTTP request digest.
pub const PAID_HTTP_PREFIX: [u8; 32] = domain_prefix("/paystreams/v1/PaidHttpRequest/");

/// Longest method, path and query, or request id accepted.
pub const FIELD_MAX_LEN: usize = 2_048;

/// The fields a stream proof covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalHttpRequest {
    pub method: String,
    pub path_and_query: String,
    pub request_id: String,
    pub body_sha256: [u8; 32],
}

impl CanonicalHttpRequest {
    #[must_use]
    pub fn new(method: &str, path_and_query: &str, request_id: &str, body: &[u8]) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            path_and_query: path_and_query.to_owned(),
            request_id: request_id.to_owned(),
            body_sha256: sha256(&[body]),
        }
    }
}

fn field(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes.get(..usize::try_from(len).unwrap_or(0)).unwrap_or_default());
}

impl RequestDigest for CanonicalHttpRequest {
    fn domain_prefix(&self) -> [u8; 32] {
        PAID_HTTP_PREFIX
    }

    fn canonical_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        field(&mut out, &self.method);
        field(&mut out, &self.path_and_query);
        field(&mut out, &self.request_id);
        out.extend_from_slice(&self.body_sha256);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector in `docs/gate.md`.
    #[test]
    fn vector() {
        let request = CanonicalHttpRequest::new("get", "/v1/quotes?n=3", "req-1", b"");
        let mut expected = Vec::new();
        expected.extend_from_slice(b"\0\0\0\x03GET\0\0\0\x0e/v1/quotes?n=3\0\0\0\x05req-1");
        // SHA-256 of the empty body.
        expected.extend_from_slice(
            &hex::decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap_or_default(),
        );
        assert_eq!(request.canonical_body(), expected);
        assert_eq!(&request.domain_prefix(), b"/paystreams/v1/PaidHttpRequest/\0");
        assert_eq!(hex::encode(request.digest()), VECTOR_DIGEST);
    }

    /// Computed independently (Python's hashlib) from the encoding above.
    const VECTOR_DIGEST: &str = "f5648302a5aaa6a2788b304bdfe974c69da23a705a2b82e68a6ee185dd10c8d3";
}
