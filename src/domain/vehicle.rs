//! Vehicle classes and the regulatory thresholds that follow from them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Paris;

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

    /// Regulation (EC) 561/2006 applies to goods vehicles above 3.5 t, which rigid and
    /// articulated vehicles are; for a van it depends on its weight, the trip and the date
    /// (see [`under_driving_time_rules`]), and this answers for the class alone.
    pub fn follows_driving_time_rules(self) -> bool {
        !matches!(self, Self::Van)
    }

    /// The French weekend and holiday bans apply to goods vehicles above 7.5 t. The engine
    /// asks each country's rules with the vehicle's gross weight instead.
    pub fn subject_to_traffic_bans(self) -> bool {
        !matches!(self, Self::Van)
    }

    /// The gross vehicle weight assumed when the caller gives none: a van at its 3.5 t
    /// ceiling, a typical rigid distribution lorry, a 40 t articulated vehicle. Each is on the
    /// same side of every ban's threshold as the class's rule of thumb above.
    pub fn default_gross_tonnes(self) -> f64 {
        match self {
            Self::Van => VAN_MAX_TONNES,
            Self::Rigid => 19.0,
            Self::Articulated => 40.0,
        }
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

/// The ceiling of a light commercial vehicle, and the threshold above which Regulation (EC)
/// 561/2006 applies to every goods vehicle (art. 2(1)(a)).
pub const VAN_MAX_TONNES: f64 = 3.5;
/// Regulation (EU) 2020/1054 (art. 1(2), inserting point (aa) into art. 2(1) of 561/2006):
/// from 1 July 2026, goods vehicles over 2.5 t and up to 3.5 t in international transport or
/// cabotage follow the driving and rest rules too.
pub const LIGHT_VAN_MIN_TONNES: f64 = 2.5;

/// The day Regulation (EU) 2020/1054 brings light vans under 561/2006, as a date.
pub fn light_van_rules_from() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 7, 1).expect("a valid date")
}

/// A gross vehicle weight (the technically permissible maximum laden mass), in tonnes.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct GrossWeight(f64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a gross vehicle weight must be a number of tonnes above 0 and at most 60")]
pub struct InvalidGrossWeight;

impl GrossWeight {
    pub fn new(tonnes: f64) -> Result<Self, InvalidGrossWeight> {
        if !(tonnes > 0.0 && tonnes <= 60.0) {
            return Err(InvalidGrossWeight);
        }
        Ok(Self(tonnes))
    }

    pub fn tonnes(self) -> f64 {
        self.0
    }
}

/// What kind of carriage a trip is, as the driving rules for light vans distinguish it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Loading and unloading in the carrier's own country.
    Domestic,
    /// Across a border.
    International,
    /// Loading and unloading inside a country other than the carrier's own.
    Cabotage,
}

impl Operation {
    pub const ALL: [Operation; 3] = [Self::Domestic, Self::International, Self::Cabotage];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domestic => "domestic",
            Self::International => "international",
            Self::Cabotage => "cabotage",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation `{0}`, expected one of: domestic, international, cabotage")]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|operation| operation.as_str() == text)
            .ok_or_else(|| UnknownOperation(text.to_owned()))
    }
}

/// What a trip's caller may say beyond the vehicle's class; both parts optional.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Carriage {
    /// Without it, [`VehicleClass::default_gross_tonnes`].
    pub gross_weight: Option<GrossWeight>,
    /// Without it, inferred from the route's countries (see `rules::plan_trip`).
    pub operation: Option<Operation>,
}

impl Carriage {
    pub fn gross_tonnes(&self, class: VehicleClass) -> f64 {
        self.gross_weight
            .map_or(class.default_gross_tonnes(), GrossWeight::tonnes)
    }
}

/// Whether Regulation (EC) 561/2006 governs a trip leaving at `departure`: every vehicle
/// over 3.5 t (a rigid or articulated one whatever weight it declares, since the class says
/// it is over 3.5 t), and a van over 2.5 t on an international or cabotage trip that leaves on
/// or after 1 July 2026, Paris time. A van without a declared weight is taken to be outside the
/// rules, as before the regulation changed: the caller should send the weight.
pub fn under_driving_time_rules(
    class: VehicleClass,
    gross_weight: Option<GrossWeight>,
    operation: Operation,
    departure: DateTime<Utc>,
) -> bool {
    if class.follows_driving_time_rules() {
        return true;
    }
    let Some(tonnes) = gross_weight.map(GrossWeight::tonnes) else {
        return false;
    };
    if tonnes > VAN_MAX_TONNES {
        return true;
    }
    let from = Paris
        .from_local_datetime(
            &light_van_rules_from()
                .and_hms_opt(0, 0, 0)
                .expect("midnight"),
        )
        .earliest()
        .map(|local| local.with_timezone(&Utc));
    let in_force = from.is_some_and(|from| departure >= from);
    tonnes > LIGHT_VAN_MIN_TONNES && in_force && operation != Operation::Domestic
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::at;

    /// Regulation (EU) 2020/1054, art. 1(2) and art. 5: vans over 2.5 t, international or
    /// cabotage, from 1 July 2026.
    #[test]
    fn light_vans_come_under_561_abroad_from_july_2026() {
        let van = VehicleClass::Van;
        let weight = |tonnes| Some(GrossWeight::new(tonnes).unwrap());
        let after = at("2026-07-01T00:00:00+02:00");
        let before = at("2026-06-30T23:59:00+02:00");
        use Operation::*;
        assert!(under_driving_time_rules(
            van,
            weight(3.2),
            International,
            after
        ));
        assert!(under_driving_time_rules(van, weight(3.5), Cabotage, after));
        assert!(!under_driving_time_rules(
            van,
            weight(3.2),
            International,
            before
        ));
        assert!(!under_driving_time_rules(van, weight(3.2), Domestic, after));
        assert!(!under_driving_time_rules(
            van,
            weight(2.5),
            International,
            after
        ));
        assert!(!under_driving_time_rules(van, None, International, after));
        assert!(under_driving_time_rules(van, weight(4.2), Domestic, before));
        assert!(under_driving_time_rules(
            VehicleClass::Rigid,
            None,
            Domestic,
            before
        ));
    }

    #[test]
    fn gross_weights_are_checked() {
        assert!(GrossWeight::new(3.2).is_ok());
        assert_eq!(GrossWeight::new(0.0), Err(InvalidGrossWeight));
        assert_eq!(GrossWeight::new(f64::NAN), Err(InvalidGrossWeight));
        assert_eq!(GrossWeight::new(61.0), Err(InvalidGrossWeight));
        for operation in Operation::ALL {
            assert_eq!(operation.as_str().parse::<Operation>(), Ok(operation));
        }
    }

    #[test]
    fn parses_its_own_names_and_nothing_else() {
        for class in VehicleClass::ALL {
            assert_eq!(class.as_str().parse::<VehicleClass>(), Ok(class));
        }
        assert!("truck".parse::<VehicleClass>().is_err());
        assert!("Van".parse::<VehicleClass>().is_err());
    }
}
