//! A token presented over HTTP, to the scheduler's dashboard and a worker's
//! `/metrics`: `Authorization: Bearer TOKEN` (Prometheus, curl) or HTTP
//! Basic with the token as the password (a browser's prompt).

use crate::auth::Secret;

/// Whether one `Authorization` header value presents `token`.
pub fn authorizes(token: &Secret, value: &str) -> bool {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return token.matches(rest.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic")
        && let Some(decoded) = base64_decode(rest)
        && let Some(i) = decoded.iter().position(|&b| b == b':')
    {
        return token.matches(&decoded[i + 1..]);
    }
    false
}

/// Standard base64 (with or without padding); `None` if malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for group in s.chunks(4) {
        let mut n = 0u32;
        for (k, &c) in group.iter().enumerate() {
            n |= value(c)? << (18 - 6 * k);
        }
        let bytes = n.to_be_bytes();
        match group.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(base64_decode("bWU6czNjcmV0Lys9").unwrap(), b"me:s3cret/+=");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI").unwrap(), b"ab");
        assert!(base64_decode("Y").is_none() && base64_decode("a$cd").is_none());
    }

    #[test]
    fn bearer_and_basic_present_the_token() {
        let t = Secret::from_bytes(b"s3cret/+=".to_vec());
        assert!(authorizes(&t, "Bearer s3cret/+="));
        assert!(authorizes(&t, "bearer  s3cret/+= "));
        // "me:s3cret/+=" in base64.
        assert!(authorizes(&t, "Basic bWU6czNjcmV0Lys9"));
        assert!(!authorizes(&t, "Bearer s3cret"));
        assert!(!authorizes(&t, "Basic bWU6czNjcmV0"));
        assert!(!authorizes(&t, "s3cret/+="));
        assert!(!authorizes(&t, "Token s3cret/+="));
    }
}
