//! Properties of the S3 key decoder: it undoes S3's encoding, and agrees with a plain
//! reference decoder on any text.

use bucket_trigger::event::decode_key;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::{cases, re};

/// Object keys: any Unicode, and strings of the characters encoding treats specially (space,
/// `+`, `%`, hex digits, multi-byte characters), which arbitrary strings rarely combine.
pub(super) fn key() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        re("[ +%/a-fA-F0-9.~*()'!&=?#\\\\\\x00\\x7féß日😀\u{a0}]{0,24}"),
        vec(
            select(vec![
                "%", "%2", "%2B", "%2b", "%25", "%20", "+", " ", "%C3", "%A9", "%E6", "%zz", "%FF",
                "é", "/", "a",
            ]),
            0..10
        )
        .prop_map(|parts| parts.concat()),
    ]
    .boxed()
}

/// `key` as S3 writes it into a notification: its UTF-8 bytes, a space as `+`, unreserved ASCII
/// as is, every other byte as `%XX`. `style` varies, byte by byte, what a decoder must accept
/// too: a safe byte escaped anyway (and a space as `%20`), lower-case hex digits.
pub(super) fn encode_key(key: &str, style: &[u8]) -> String {
    let mut out = String::with_capacity(key.len() * 3);
    for (i, byte) in key.bytes().enumerate() {
        let choice = if style.is_empty() {
            0
        } else {
            style[i % style.len()]
        };
        let escape_anyway = choice & 1 == 1;
        let safe = byte.is_ascii_alphanumeric() || b"-_.~/*'()!".contains(&byte);
        if byte == b' ' && !escape_anyway {
            out.push('+');
        } else if safe && !escape_anyway {
            out.push(char::from(byte));
        } else if choice & 2 == 2 {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What decoding means, written out plainly: `+` is a space, `%` and two hex digits is that
/// byte, anything else (a `%` without two hex digits after it included) stands for itself, and
/// the bytes must be UTF-8.
fn reference_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if bytes
                .get(i + 1..i + 3)
                .is_some_and(|pair| pair.iter().all(u8::is_ascii_hexdigit)) =>
            {
                let hex = |b: u8| char::from(b).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

proptest! {
    #![proptest_config(cases(512))]

    /// Decoding undoes S3's encoding, whatever the key and however the encoder spelled it.
    #[test]
    fn decode_key_undoes_the_encoding(key in key(), style in vec(any::<u8>(), 0..16)) {
        prop_assert_eq!(decode_key(&encode_key(&key, &style)), Ok(key));
    }

    /// On any text the decoder agrees with the plain reference: the same key, or an error
    /// (saying why) exactly when the decoded bytes are not UTF-8.
    #[test]
    fn decode_key_agrees_with_the_reference(raw in key()) {
        let got = decode_key(&raw);
        prop_assert_eq!(got.clone().ok(), reference_decode(&raw));
        if let Err(message) = got {
            prop_assert!(message.contains("UTF-8"), "{}", message);
        }
    }
}

/// Pinned, not found: a `%` without two hex digits after it stands for itself, as in every
/// lenient URL decoder (S3 writes a `%` in a key as `%25`, so a bare one never comes from S3);
/// decoded bytes that are not UTF-8 are an error, never replaced.
#[test]
fn malformed_percent_sequences_stand_for_themselves() {
    assert_eq!(decode_key("100%").as_deref(), Ok("100%"));
    assert_eq!(decode_key("%zz%4").as_deref(), Ok("%zz%4"));
    assert_eq!(decode_key("a%2+").as_deref(), Ok("a%2 "));
    assert!(decode_key("%FF").is_err());
    assert!(
        decode_key("caf%C3").is_err(),
        "half of a two-byte character"
    );
}
