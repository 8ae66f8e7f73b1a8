//! The places freight moves between: real ports, platforms and cities of France and its
//! neighbours, with true coordinates (WGS84, to about a kilometre) and an uneven popularity.

use crate::domain::geo::GeoPoint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceKind {
    /// Sea or river port: long and variable dwell, queues at terminals.
    Port,
    /// Logistics platform or wholesale market: scheduled docks.
    Platform,
    /// City distribution: shorter stops.
    City,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Country {
    France,
    Belgium,
    Netherlands,
    Luxembourg,
    Germany,
    Switzerland,
    Italy,
    Spain,
}

#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub name: &'static str,
    pub lat: f64,
    pub lon: f64,
    pub kind: PlaceKind,
    pub country: Country,
    /// Metropolitan area whose congestion the place suffers, by index into [`METROS`].
    pub metro: usize,
    /// Relative share of trips starting or ending here.
    pub popularity: f64,
}

impl Place {
    pub fn point(&self) -> GeoPoint {
        GeoPoint::new(self.lat, self.lon).expect("places have valid coordinates")
    }
}

/// A metropolitan area: its centre, and how congested it gets at its worst (0 to 1).
#[derive(Debug, Clone, Copy)]
pub struct Metro {
    pub name: &'static str,
    pub lat: f64,
    pub lon: f64,
    pub peak_congestion: f64,
}

pub const METROS: [Metro; 33] = [
    Metro {
        name: "Paris",
        lat: 48.86,
        lon: 2.35,
        peak_congestion: 0.55,
    },
    Metro {
        name: "Lyon",
        lat: 45.76,
        lon: 4.84,
        peak_congestion: 0.45,
    },
    Metro {
        name: "Marseille",
        lat: 43.30,
        lon: 5.37,
        peak_congestion: 0.45,
    },
    Metro {
        name: "Lille",
        lat: 50.63,
        lon: 3.06,
        peak_congestion: 0.40,
    },
    Metro {
        name: "Le Havre-Rouen",
        lat: 49.46,
        lon: 0.60,
        peak_congestion: 0.25,
    },
    Metro {
        name: "Dunkerque-Calais",
        lat: 51.00,
        lon: 2.10,
        peak_congestion: 0.20,
    },
    Metro {
        name: "Nantes",
        lat: 47.22,
        lon: -1.55,
        peak_congestion: 0.35,
    },
    Metro {
        name: "Bordeaux",
        lat: 44.84,
        lon: -0.58,
        peak_congestion: 0.40,
    },
    Metro {
        name: "Toulouse",
        lat: 43.60,
        lon: 1.44,
        peak_congestion: 0.40,
    },
    Metro {
        name: "Strasbourg",
        lat: 48.57,
        lon: 7.75,
        peak_congestion: 0.30,
    },
    Metro {
        name: "Nice",
        lat: 43.70,
        lon: 7.27,
        peak_congestion: 0.40,
    },
    Metro {
        name: "Montpellier",
        lat: 43.61,
        lon: 3.88,
        peak_congestion: 0.30,
    },
    Metro {
        name: "Rennes",
        lat: 48.11,
        lon: -1.68,
        peak_congestion: 0.25,
    },
    Metro {
        name: "Grenoble",
        lat: 45.19,
        lon: 5.72,
        peak_congestion: 0.30,
    },
    Metro {
        name: "Orleans-Tours",
        lat: 47.70,
        lon: 1.30,
        peak_congestion: 0.20,
    },
    Metro {
        name: "Perpignan",
        lat: 42.70,
        lon: 2.90,
        peak_congestion: 0.20,
    },
    Metro {
        name: "Metz-Nancy",
        lat: 48.90,
        lon: 6.18,
        peak_congestion: 0.25,
    },
    Metro {
        name: "Dijon",
        lat: 47.32,
        lon: 5.04,
        peak_congestion: 0.15,
    },
    Metro {
        name: "Clermont-Ferrand",
        lat: 45.78,
        lon: 3.08,
        peak_congestion: 0.15,
    },
    Metro {
        name: "Antwerp-Brussels",
        lat: 51.05,
        lon: 4.38,
        peak_congestion: 0.55,
    },
    Metro {
        name: "Rotterdam",
        lat: 51.92,
        lon: 4.48,
        peak_congestion: 0.45,
    },
    Metro {
        name: "Rhine-Ruhr",
        lat: 50.94,
        lon: 6.96,
        peak_congestion: 0.50,
    },
    Metro {
        name: "Rhine-Main",
        lat: 50.11,
        lon: 8.68,
        peak_congestion: 0.45,
    },
    Metro {
        name: "Basel-Geneva",
        lat: 47.00,
        lon: 6.90,
        peak_congestion: 0.30,
    },
    Metro {
        name: "Milan-Turin",
        lat: 45.30,
        lon: 8.40,
        peak_congestion: 0.50,
    },
    Metro {
        name: "Barcelona",
        lat: 41.39,
        lon: 2.17,
        peak_congestion: 0.45,
    },
    Metro {
        name: "Luxembourg-Saar",
        lat: 49.40,
        lon: 6.50,
        peak_congestion: 0.20,
    },
    Metro {
        name: "Reims",
        lat: 49.26,
        lon: 4.03,
        peak_congestion: 0.15,
    },
    Metro {
        name: "Limoges",
        lat: 45.83,
        lon: 1.26,
        peak_congestion: 0.10,
    },
    Metro {
        name: "Brest",
        lat: 48.39,
        lon: -4.49,
        peak_congestion: 0.10,
    },
    Metro {
        name: "Bayonne",
        lat: 43.49,
        lon: -1.47,
        peak_congestion: 0.15,
    },
    Metro {
        name: "La Rochelle",
        lat: 46.16,
        lon: -1.15,
        peak_congestion: 0.10,
    },
    Metro {
        name: "Zaragoza",
        lat: 41.65,
        lon: -0.89,
        peak_congestion: 0.20,
    },
];

const fn place(
    name: &'static str,
    lat: f64,
    lon: f64,
    kind: PlaceKind,
    country: Country,
    metro: usize,
    popularity: f64,
) -> Place {
    Place {
        name,
        lat,
        lon,
        kind,
        country,
        metro,
        popularity,
    }
}

use Country::*;
use PlaceKind::*;

/// One place a line, in the order of [`Place`]'s fields, with the columns aligned so that
/// they read down; rustfmt would break the longer lines and the columns with them.
#[rustfmt::skip]
pub const PLACES: [Place; 56] = [
    // Ports.
    place("Le Havre Port 2000",           49.465,  0.165, Port,     France,       4,  9.0),
    place("Marseille-Fos",                43.430,  4.890, Port,     France,       2,  8.0),
    place("Dunkerque Port",               51.030,  2.280, Port,     France,       5,  5.0),
    place("Rouen Port",                   49.440,  1.050, Port,     France,       4,  3.0),
    place("Nantes Saint-Nazaire Montoir", 47.310, -2.130, Port,     France,       6,  3.0),
    place("Bordeaux Bassens",             44.900, -0.540, Port,     France,       7,  2.0),
    place("La Rochelle La Pallice",       46.160, -1.220, Port,     France,      31,  1.5),
    place("Sete Port",                    43.400,  3.700, Port,     France,      11,  1.0),
    place("Calais Port",                  50.965,  1.865, Port,     France,       5,  4.0),
    place("Antwerp Port",                 51.265,  4.400, Port,     Belgium,     19,  4.0),
    place("Rotterdam Maasvlakte",         51.950,  4.040, Port,     Netherlands, 20,  3.0),
    place("Genoa Port",                   44.410,  8.900, Port,     Italy,       24,  1.5),
    place("Barcelona Port",               41.345,  2.160, Port,     Spain,       25,  2.0),
    // Platforms and wholesale markets.
    place("Rungis MIN",                   48.755,  2.352, Platform, France,       0, 10.0),
    place("Garonor Aulnay",               48.940,  2.500, Platform, France,       0,  7.0),
    place("Paris Nord Gennevilliers",     48.935,  2.290, Platform, France,       0,  5.0),
    place("Lyon Saint-Exupery",           45.725,  5.080, Platform, France,       1,  6.0),
    place("Lyon Port Edouard Herriot",    45.720,  4.835, Platform, France,       1,  3.0),
    place("Delta 3 Dourges",              50.430,  2.990, Platform, France,       3,  5.0),
    place("Lille Lesquin",                50.590,  3.110, Platform, France,       3,  4.0),
    place("Orleans Saran",                47.950,  1.870, Platform, France,      14,  4.0),
    place("Avignon Courtine",             43.920,  4.820, Platform, France,       2,  3.0),
    place("Toulouse Eurocentre",          43.780,  1.380, Platform, France,       8,  3.0),
    place("Perpignan Saint-Charles",      42.710,  2.870, Platform, France,      15,  4.0),
    place("Strasbourg Port du Rhin",      48.570,  7.800, Platform, France,       9,  2.5),
    place("Metz Borny",                   49.110,  6.230, Platform, France,      16,  2.0),
    place("Chalon-sur-Saone",             46.780,  4.850, Platform, France,      17,  2.0),
    place("Mulhouse Ile Napoleon",        47.780,  7.390, Platform, France,      23,  1.5),
    place("Zaragoza PLAZA",               41.630, -0.990, Platform, Spain,       32,  1.5),
    place("Bettembourg",                  49.520,  6.100, Platform, Luxembourg,  26,  1.5),
    // Cities.
    place("Paris",                        48.860,  2.350, City,     France,       0,  6.0),
    place("Lyon",                         45.760,  4.840, City,     France,       1,  3.0),
    place("Marseille",                    43.300,  5.370, City,     France,       2,  2.5),
    place("Lille",                        50.630,  3.060, City,     France,       3,  2.0),
    place("Nantes",                       47.220, -1.550, City,     France,       6,  2.0),
    place("Bordeaux",                     44.840, -0.580, City,     France,       7,  2.0),
    place("Toulouse",                     43.600,  1.440, City,     France,       8,  2.0),
    place("Nice",                         43.700,  7.270, City,     France,      10,  1.5),
    place("Montpellier",                  43.610,  3.880, City,     France,      11,  1.5),
    place("Rennes",                       48.110, -1.680, City,     France,      12,  1.5),
    place("Grenoble",                     45.190,  5.720, City,     France,      13,  1.2),
    place("Tours",                        47.390,  0.690, City,     France,      14,  1.0),
    place("Dijon",                        47.320,  5.040, City,     France,      17,  1.0),
    place("Clermont-Ferrand",             45.780,  3.080, City,     France,      18,  1.0),
    place("Reims",                        49.260,  4.030, City,     France,      27,  0.8),
    place("Brest",                        48.390, -4.490, City,     France,      29,  0.6),
    place("Caen",                         49.180, -0.370, City,     France,       4,  0.8),
    place("Limoges",                      45.830,  1.260, City,     France,      28,  0.6),
    place("Bayonne",                      43.490, -1.470, City,     France,      30,  0.7),
    place("Brussels",                     50.850,  4.350, City,     Belgium,     19,  1.5),
    place("Cologne",                      50.940,  6.960, City,     Germany,     21,  1.5),
    place("Frankfurt",                    50.110,  8.680, City,     Germany,     22,  1.2),
    place("Basel",                        47.560,  7.590, City,     Switzerland, 23,  1.0),
    place("Geneva",                       46.200,  6.150, City,     Switzerland, 23,  0.8),
    place("Milan",                        45.460,  9.190, City,     Italy,       24,  1.5),
    place("Turin",                        45.070,  7.690, City,     Italy,       24,  1.0),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::geo::Territory;

    #[test]
    fn at_least_forty_places_each_in_its_country() {
        assert!(PLACES.len() >= 40);
        for place in &PLACES {
            let in_france = Territory::of(place.point()) == Territory::France;
            assert_eq!(
                in_france,
                place.country == Country::France,
                "{}",
                place.name
            );
            assert!(place.metro < METROS.len());
            let metro = METROS[place.metro];
            let km = place
                .point()
                .distance_km(GeoPoint::new(metro.lat, metro.lon).unwrap());
            assert!(
                km < 150.0,
                "{} is {km:.0} km from {}",
                place.name,
                metro.name
            );
        }
    }
}
