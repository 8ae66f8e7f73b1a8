//! Identifiers, and the deterministic mix that keys reproducible random draws.

use super::clock::Clock;

/// Identifiers that sort by creation time: a prefix, the millisecond clock and randomness.
pub fn new_id(prefix: &str) -> String {
    let millis = Clock::System.now().timestamp_millis();
    let random: u32 = rand::random();
    format!("{prefix}_{millis:012x}{random:08x}")
}

/// SplitMix64's finaliser: a fast, well-mixed hash of a 64-bit value.
pub fn splitmix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}
