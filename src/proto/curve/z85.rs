//! Z85 (ZeroMQ RFC 32): 4 bytes as 5 printable characters, the text form of CURVE keys.
//!
//! An encoding, not cryptography: every 4 bytes, read as a big-endian `u32`, become 5
//! base-85 digits, most significant first, from the alphabet below. A 32-byte key is 40
//! characters.

/// The 85 digits, in order of value (RFC 32).
const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Characters of the Z85 text of a 32-byte key.
pub(crate) const KEY_TEXT_LEN: usize = 40;

/// Why a text is not the Z85 form of a 32-byte key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Z85Error {
    /// A key is 40 characters.
    #[error("a Z85 key is 40 characters, this text has {0}")]
    Length(usize),
    /// A character outside the Z85 alphabet.
    #[error("{ch:?} at position {pos} is not a Z85 character")]
    Character {
        /// Index of the character (in characters).
        pos: usize,
        /// The character.
        ch: char,
    },
    /// Five characters whose value does not fit 4 bytes (above `%nSc0`).
    #[error("the 5 characters at position {pos} encode a value above 2^32 - 1")]
    Overflow {
        /// Index of the first of the five characters.
        pos: usize,
    },
}

/// Z85 text of a 32-byte key (40 characters).
pub(crate) fn encode_key(key: &[u8; 32]) -> String {
    let mut text = String::with_capacity(KEY_TEXT_LEN);
    for chunk in key.chunks_exact(4) {
        let mut value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut digits = [0u8; 5];
        for digit in digits.iter_mut().rev() {
            *digit = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        text.extend(digits.iter().map(|&d| char::from(d)));
    }
    text
}

/// The 32-byte key a 40-character Z85 text encodes.
///
/// # Errors
/// [`Z85Error`] naming the wrong length, the first character outside the alphabet, or the
/// first group of five whose value does not fit 4 bytes.
pub(crate) fn decode_key(text: &str) -> Result<[u8; 32], Z85Error> {
    let chars = text.chars().count();
    if chars != KEY_TEXT_LEN || text.len() != KEY_TEXT_LEN {
        return Err(Z85Error::Length(chars));
    }
    let mut key = [0u8; 32];
    for (group, (chunk, out)) in text
        .as_bytes()
        .chunks_exact(5)
        .zip(key.chunks_exact_mut(4))
        .enumerate()
    {
        let mut value: u64 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let digit = digit_value(c).ok_or(Z85Error::Character {
                pos: group * 5 + i,
                ch: char::from(c),
            })?;
            value = value * 85 + u64::from(digit);
        }
        let value = u32::try_from(value).map_err(|_| Z85Error::Overflow { pos: group * 5 })?;
        out.copy_from_slice(&value.to_be_bytes());
    }
    Ok(key)
}

/// Value of one Z85 digit.
fn digit_value(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 32's example as a group: 8 bytes, "HelloWorld".
    fn encode_bytes(data: &[u8]) -> String {
        let mut padded = [0u8; 32];
        padded[..data.len()].copy_from_slice(data);
        encode_key(&padded)[..data.len() / 4 * 5].to_string()
    }

    #[test]
    fn rfc_32_example_encodes_as_hello_world() {
        let data = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(encode_bytes(&data), "HelloWorld");
    }

    #[test]
    fn libzmq_test_key_decodes_to_the_bytes_pyzmq_gives() {
        // libzmq's test server public key; bytes from pyzmq's z85.decode.
        let key = decode_key("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7").unwrap();
        assert_eq!(
            key,
            [
                84, 252, 186, 36, 233, 50, 73, 150, 147, 22, 251, 97, 124, 135, 43, 176, 193, 209,
                255, 20, 128, 4, 39, 197, 148, 203, 250, 207, 27, 194, 214, 82
            ]
        );
        assert_eq!(encode_key(&key), "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
    }

    #[test]
    fn wrong_lengths_characters_and_overflows_are_named() {
        assert_eq!(decode_key("abc"), Err(Z85Error::Length(3)));
        let mut text = "0".repeat(40);
        text.replace_range(7..8, "~");
        assert_eq!(
            decode_key(&text),
            Err(Z85Error::Character { pos: 7, ch: '~' })
        );
        // "#####" is 85^5 - 1, above u32::MAX; "%nSc0" is exactly u32::MAX.
        let text = format!("{}{}", "0".repeat(10), "#####").repeat(1) + &"0".repeat(25);
        assert_eq!(decode_key(&text), Err(Z85Error::Overflow { pos: 10 }));
        let max = "%nSc0".repeat(8);
        assert_eq!(decode_key(&max), Ok([0xFF; 32]));
        // 40 bytes but fewer characters: refused on length, never sliced mid-character.
        let text = format!("é{}", "0".repeat(38));
        assert_eq!(decode_key(&text), Err(Z85Error::Length(39)));
    }

    proptest! {
        #[test]
        fn any_key_round_trips(key in any::<[u8; 32]>()) {
            let text = encode_key(&key);
            prop_assert_eq!(text.len(), KEY_TEXT_LEN);
            prop_assert_eq!(decode_key(&text), Ok(key));
        }

        #[test]
        fn any_text_decodes_or_errs_without_panicking(text in ".{0,48}") {
            let _ = decode_key(&text);
        }
    }
}
