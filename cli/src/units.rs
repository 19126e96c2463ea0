//! Parsers for the values the command line takes: durations (`250ms`), sizes (`4KiB`),
//! endpoints, and byte strings that may be written in hex (`0x00a1`).

use std::time::Duration;

const DURATION_EXPECTED: &str =
    "expected a number with a unit (ns, us, ms, s, m, h), such as 250ms, 1s, 1.5s or 2m";

/// `100ms`, `1s`, `1.5s`, `2m`, `250us`: a number and a unit, nothing else.
pub fn duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| DURATION_EXPECTED.to_owned())?;
    let seconds_per_unit = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(DURATION_EXPECTED.to_owned()),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| DURATION_EXPECTED.to_owned())
}

const SIZE_EXPECTED: &str =
    "expected a byte count such as 16, 256B, 4KiB (or 4K, 4096), 64KiB, 1MiB (KB and MB are powers of 1000)";

/// `16`, `256B`, `4KiB` / `4K` (4096), `4KB` / `4kB` (4000), `1MiB` / `1M`, `1MB`.
pub fn size(input: &str) -> Result<usize, String> {
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number.parse().map_err(|_| SIZE_EXPECTED.to_owned())?;
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "KB" | "kB" => 1_000,
        "M" | "MiB" => 1 << 20,
        "MB" => 1_000_000,
        "G" | "GiB" => 1 << 30,
        "GB" => 1_000_000_000,
        _ => return Err(SIZE_EXPECTED.to_owned()),
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| SIZE_EXPECTED.to_owned())
}

/// An endpoint the library accepts, kept as written (it is handed to `bind`/`connect`).
pub fn endpoint(input: &str) -> Result<String, String> {
    input
        .parse::<zocket::Endpoint>()
        .map(|_| input.to_owned())
        .map_err(|e| e.to_string())
}

/// A non-empty separator for `--frames`.
pub fn separator(input: &str) -> Result<String, String> {
    if input.is_empty() {
        Err("expected a non-empty separator, such as '|' or ','".to_owned())
    } else {
        Ok(input.to_owned())
    }
}

/// A routing id: `0x` and an even number of hex digits for binary ids, else the text itself.
pub fn peer_id(input: &[u8]) -> Vec<u8> {
    input
        .strip_prefix(b"0x")
        .and_then(hex_decode)
        .filter(|bytes| !bytes.is_empty())
        .unwrap_or_else(|| input.to_vec())
}

/// A non-empty routing id for `--identity` (text, or `0x` and hex digits).
pub fn identity(input: &str) -> Result<crate::args::RoutingId, String> {
    if input.is_empty() {
        return Err("expected a non-empty routing id, as text or as 0x and hex digits".to_owned());
    }
    Ok(crate::args::RoutingId(peer_id(input.as_bytes())))
}

fn hex_decode(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("250us"), Ok(Duration::from_micros(250)));
        for bad in ["", "100", "ms", "1x", "-1s", "1e3s", "s1"] {
            assert!(duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(size("16"), Ok(16));
        assert_eq!(size("256B"), Ok(256));
        assert_eq!(size("4KiB"), Ok(4096));
        assert_eq!(size("4K"), Ok(4096));
        assert_eq!(size("4KB"), Ok(4000));
        assert_eq!(size("64KiB"), Ok(65536));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        for bad in ["", "K", "4 parsecs", "-1", "1.5K", "99999999999999999999G"] {
            assert!(size(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn peer_ids_are_text_or_hex() {
        assert_eq!(peer_id(b"worker1"), b"worker1");
        assert_eq!(peer_id(b"0x00a1FF"), [0x00, 0xa1, 0xff]);
        assert_eq!(peer_id(b"0xabc"), b"0xabc"); // odd length: taken as text
        assert_eq!(peer_id(b"0xzz"), b"0xzz");
        assert_eq!(peer_id(b"0x"), b"0x");
        assert!(identity("").is_err());
    }
}
