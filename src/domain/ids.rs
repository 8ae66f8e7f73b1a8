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

/// Why an identifier a caller chose is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("must have 1 to {max} characters")]
    Length { max: usize },
    #[error("must not contain the control character U+{0:04X}")]
    Control(u32),
    #[error("must not contain the bidirectional control U+{0:04X}")]
    Bidi(u32),
}

/// Checks an identifier a caller chose (a vehicle, a reference, a trip): 1 to `max_chars`
/// characters, none a control character or a bidirectional control. Identifiers reach logs,
/// CSV exports, the dashboard and webhook bodies, where a NUL cuts the text short (and
/// PostgreSQL refuses it), a line break forges a record and U+202E shows another name than
/// the one stored.
pub fn check_identifier(text: &str, max_chars: usize) -> Result<(), IdentifierError> {
    let mut n_chars = 0;
    for character in text.chars() {
        n_chars += 1;
        // Stopping here keeps a megabyte of text as cheap to refuse as the limit is long.
        if n_chars > max_chars {
            return Err(IdentifierError::Length { max: max_chars });
        }
        if character.is_control() {
            return Err(IdentifierError::Control(u32::from(character)));
        }
        if is_bidi_control(character) {
            return Err(IdentifierError::Bidi(u32::from(character)));
        }
    }
    if n_chars == 0 {
        return Err(IdentifierError::Length { max: max_chars });
    }
    Ok(())
}

/// Unicode's Bidi_Control characters: marks, embeddings, overrides and isolates.
fn is_bidi_control(character: char) -> bool {
    matches!(
        character,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_refuse_control_and_bidi_characters_and_bound_their_length() {
        for good in ["AB-123-CD", "Müller-1", "FR/123", "車両 7", "a"] {
            assert_eq!(check_identifier(good, 16), Ok(()), "{good:?}");
        }
        let cases = [
            ("", IdentifierError::Length { max: 16 }),
            ("AB\u{0}1", IdentifierError::Control(0)),
            ("AB\r\nX-1", IdentifierError::Control(0x0D)),
            ("AB\n", IdentifierError::Control(0x0A)),
            ("\tAB", IdentifierError::Control(0x09)),
            ("AB\u{7F}", IdentifierError::Control(0x7F)),
            ("AB\u{85}", IdentifierError::Control(0x85)),
            ("AB\u{202E}DC", IdentifierError::Bidi(0x202E)),
            ("\u{202A}AB", IdentifierError::Bidi(0x202A)),
            ("AB\u{2066}", IdentifierError::Bidi(0x2066)),
            ("AB\u{2069}", IdentifierError::Bidi(0x2069)),
            ("AB\u{200E}", IdentifierError::Bidi(0x200E)),
            ("AB\u{200F}", IdentifierError::Bidi(0x200F)),
            ("AB\u{061C}", IdentifierError::Bidi(0x061C)),
        ];
        for (text, error) in cases {
            assert_eq!(check_identifier(text, 16), Err(error), "{text:?}");
        }
        // Characters, not bytes: sixteen two-byte letters fit, seventeen do not.
        assert_eq!(check_identifier(&"é".repeat(16), 16), Ok(()));
        assert_eq!(
            check_identifier(&"é".repeat(17), 16),
            Err(IdentifierError::Length { max: 16 })
        );
        assert_eq!(
            check_identifier(&"x".repeat(1 << 20), 128),
            Err(IdentifierError::Length { max: 128 })
        );
    }
}
