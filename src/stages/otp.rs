//! One-time codes: RFC 4648 base32 (for `otpauth://` URLs), RFC 4226 HOTP and RFC 6238
//! TOTP with HMAC-SHA1, and the check of a typed code against a TOTP key (±1 time
//! step, constant-time comparison).

use hmac::{Hmac, Mac};

/// Time steps either side of the current one that are accepted (clock drift).
pub(crate) const TOLERANCE: u64 = 1;

/// RFC 4648 base32 without padding (the `secret` of an `otpauth://` URL).
pub(crate) fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(ALPHABET, buffer >> bits));
        }
    }
    if bits > 0 {
        out.push(symbol(ALPHABET, buffer << (5 - bits)));
    }
    out
}

/// The character for the low five bits of `v`.
fn symbol(alphabet: &[u8; 32], v: u32) -> char {
    alphabet
        .get((v & 31) as usize)
        .map_or('A', |b| char::from(*b))
}

/// The HOTP value of `counter` (RFC 4226), as `digits` decimal digits.
pub(crate) fn hotp(key: &[u8], counter: u64, digits: u8) -> String {
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let hash: [u8; 20] = mac.finalize().into_bytes().into();
    let offset = usize::from(hash.last().copied().unwrap_or(0) & 0x0f);
    let Some(&[a, b, c, d]) = hash
        .get(offset..offset + 4)
        .and_then(|w| <&[u8; 4]>::try_from(w).ok())
    else {
        return String::new();
    };
    let bin = u32::from_be_bytes([a & 0x7f, b, c, d]);
    let digits = u32::from(digits.clamp(1, 9));
    format!(
        "{:0width$}",
        bin % 10u32.pow(digits),
        width = digits as usize
    )
}

/// The time step of `now` (seconds since the epoch).
pub(crate) fn step(now: u64, period: u32) -> u64 {
    now / u64::from(period.max(1))
}

/// The time step whose code `code` is, within [`TOLERANCE`] steps of `now`'s (the
/// earliest one if several match). `None`: not a valid code now. Every candidate is
/// compared in constant time.
pub(crate) fn matching_step(
    key: &[u8],
    digits: u8,
    period: u32,
    now: u64,
    code: &str,
) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != usize::from(digits) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step(now, period);
    let mut found = None;
    for s in current.saturating_sub(TOLERANCE)..=current.saturating_add(TOLERANCE) {
        let expected = hotp(key, s, digits);
        if crate::secret::constant_time_eq(&expected, &code) && found.is_none() {
            found = Some(s);
        }
    }
    found
}

/// Percent-encodes everything but RFC 3986 unreserved characters (an `otpauth://`
/// label or query value).
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected);
        }
    }

    #[test]
    fn hotp_rfc4226_vectors() {
        let key = b"12345678901234567890";
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(hotp(key, i as u64, 6), *e);
        }
    }

    #[test]
    fn totp_rfc6238_sha1_vectors() {
        let key = b"12345678901234567890";
        for (t, code) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(hotp(key, step(t, 30), 8), code);
            assert_eq!(matching_step(key, 8, 30, t, code), Some(step(t, 30)));
        }
    }

    #[test]
    fn tolerance_is_one_step() {
        let key = b"12345678901234567890";
        let now = 1_000_000_020;
        let s = step(now, 30);
        assert_eq!(
            matching_step(key, 6, 30, now, &hotp(key, s - 1, 6)),
            Some(s - 1)
        );
        assert_eq!(
            matching_step(key, 6, 30, now, &hotp(key, s + 1, 6)),
            Some(s + 1)
        );
        assert_eq!(matching_step(key, 6, 30, now, &hotp(key, s - 2, 6)), None);
        assert_eq!(matching_step(key, 6, 30, now, &hotp(key, s + 2, 6)), None);
        assert_eq!(matching_step(key, 6, 30, now, "12345"), None);
        assert_eq!(matching_step(key, 6, 30, now, "abcdef"), None);
        assert_eq!(matching_step(key, 6, 30, now, "１２３４５６"), None);
    }

    #[test]
    fn url_encoding() {
        assert_eq!(url_encode("a b:c/é"), "a%20b%3Ac%2F%C3%A9");
    }
}
