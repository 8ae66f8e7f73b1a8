//! Vehicle classes and the regulatory thresholds that follow from them.

use std::fmt;
use std::str::FromStr;

/// The three classes a carrier declares. The mass thresholds are what the rules key on.
///
/// `rigid` means a rigid lorry above 7.5 t gross vehicle weight: the rare 3.5 t to 7.5 t truck
/// is subject to the driving-time rules but not to the French traffic bans, and carriers of that
/// size declare it as `rigid` at the cost of a pessimistic estimate on weekends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VehicleClass {
    /// A light commercial vehicle of 3.5 t or less.
    Van,
    /// A rigid lorry above 7.5 t.
    Rigid,
    /// A tractor with a semi-trailer, up to 44 t in France.
    Articulated,
}

impl VehicleClass {
    pub const ALL: [VehicleClass; 3] = [Self::Van, Self::Rigid, Self::Articulated];

    /// Regulation (EC) 561/2006 applies to goods vehicles above 3.5 t.
    pub fn follows_driving_time_rules(self) -> bool {
        !matches!(self, Self::Van)
    }

    /// The French weekend and holiday bans apply to goods vehicles above 7.5 t.
    pub fn subject_to_traffic_bans(self) -> bool {
        !matches!(self, Self::Van)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Van => "van",
            Self::Rigid => "rigid",
            Self::Articulated => "articulated",
        }
    }
}

impl fmt::Display for VehicleClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown vehicle class `{0}`, expected one of: van, rigid, articulated")]
pub struct UnknownVehicleClass(pub String);

impl FromStr for VehicleClass {
    type Err = UnknownVehicleClass;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|class| class.as_str() == text)
            .ok_or_else(|| UnknownVehicleClass(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_own_names_and_nothing_else() {
        for class in VehicleClass::ALL {
            assert_eq!(class.as_str().parse::<VehicleClass>(), Ok(class));
        }
        assert!("truck".parse::<VehicleClass>().is_err());
        assert!("Van".parse::<VehicleClass>().is_err());
    }
}
