//! The one source of "now": every layer that needs the time takes a [`Clock`], so that tests
//! can fix it and nothing ages behind their back.

use chrono::{DateTime, Utc};

/// Where "now" comes from: the system, or a fixed instant so that tests do not age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Fixed(instant) => instant,
        }
    }
}

/// An instant written in RFC 3339 with its offset, as tests fix clocks and state the times
/// they expect.
#[cfg(test)]
pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}
