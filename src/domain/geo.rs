//! Points on the earth, great-circle distances, and which territory a point lies in.

/// Mean earth radius of the IUGG, in kilometres.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A WGS84 position. Construction checks the ranges, so a `GeoPoint` is always a real place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CoordinateError {
    #[error("latitude must be a number between -90 and 90")]
    Latitude,
    #[error("longitude must be a number between -180 and 180")]
    Longitude,
}

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> Result<Self, CoordinateError> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(CoordinateError::Latitude);
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(CoordinateError::Longitude);
        }
        Ok(Self { lat, lon })
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    /// Great-circle distance by the haversine formula.
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let half_dlat = (lat2 - lat1) / 2.0;
        let half_dlon = (other.lon - self.lon).to_radians() / 2.0;
        let a = half_dlat.sin().powi(2) + lat1.cos() * lat2.cos() * half_dlon.sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }

    /// Initial bearing towards `other`, in degrees clockwise from north, in `[0, 360)`.
    pub fn bearing_deg(self, other: GeoPoint) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlon = (other.lon - self.lon).to_radians();
        let y = dlon.sin() * lat2.cos();
        let x = lat1.cos() * lat2.sin() - lat1.sin() * lat2.cos() * dlon.cos();
        y.atan2(x).to_degrees().rem_euclid(360.0)
    }

    /// The point a `fraction` of the way along the great circle to `other`.
    pub fn towards(self, other: GeoPoint, fraction: f64) -> GeoPoint {
        let angular = self.distance_km(other) / EARTH_RADIUS_KM;
        if angular < 1e-12 {
            return self;
        }
        let (lat1, lon1) = (self.lat.to_radians(), self.lon.to_radians());
        let (lat2, lon2) = (other.lat.to_radians(), other.lon.to_radians());
        let a = ((1.0 - fraction) * angular).sin() / angular.sin();
        let b = (fraction * angular).sin() / angular.sin();
        let x = a * lat1.cos() * lon1.cos() + b * lat2.cos() * lon2.cos();
        let y = a * lat1.cos() * lon1.sin() + b * lat2.cos() * lon2.sin();
        let z = a * lat1.sin() + b * lat2.sin();
        GeoPoint {
            lat: z.atan2((x * x + y * y).sqrt()).to_degrees(),
            lon: y.atan2(x).to_degrees(),
        }
    }
}

/// Where a stretch of road lies, as far as traffic rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Territory {
    /// Metropolitan France, where the French heavy-goods-vehicle bans apply.
    France,
    Elsewhere,
}

impl Territory {
    pub fn of(point: GeoPoint) -> Territory {
        let inside = |outline: &[(f64, f64)]| contains(outline, point);
        if inside(&MAINLAND_FRANCE) || inside(&CORSICA) {
            Territory::France
        } else {
            Territory::Elsewhere
        }
    }
}

/// A coarse outline of mainland France as (longitude, latitude) vertices, drawn along the land
/// borders and a little outside the coast. It is accurate to about 10 to 20 km at the borders,
/// which is what deciding whether a ban applies to a truck near a border can bear. The last
/// vertices jump from the Cotentin to the Belgian border across the Channel: no truck
/// drives there, so the short cut costs nothing.
const MAINLAND_FRANCE: [(f64, f64); 56] = [
    (2.60, 51.15),
    (2.95, 50.75),
    (3.29, 50.53),
    (3.70, 50.32),
    (4.18, 50.05),
    (4.23, 49.96),
    (4.80, 50.15),
    (4.87, 49.79),
    (5.47, 49.50),
    (5.82, 49.55),
    (6.36, 49.46),
    (6.73, 49.17),
    (7.45, 49.17),
    (8.19, 48.97),
    (7.80, 48.51),
    (7.58, 48.12),
    (7.55, 47.60),
    (7.00, 47.45),
    (6.94, 47.29),
    (6.45, 46.98),
    (6.10, 46.60),
    (6.13, 46.39),
    (5.96, 46.20),
    (5.97, 46.14),
    (6.12, 46.14),
    (6.31, 46.25),
    (6.24, 46.31),
    (6.80, 46.40),
    (6.79, 46.11),
    (7.04, 45.92),
    (6.80, 45.72),
    (7.13, 45.25),
    (6.63, 45.11),
    (6.75, 44.91),
    (6.98, 44.65),
    (6.87, 44.42),
    (7.66, 44.15),
    (7.53, 43.78),
    (7.00, 43.45),
    (6.20, 43.00),
    (5.00, 43.25),
    (4.10, 43.40),
    (3.15, 42.90),
    (3.17, 42.43),
    (2.50, 42.33),
    (1.72, 42.50),
    (0.66, 42.69),
    (-0.31, 42.84),
    (-1.45, 43.27),
    (-1.79, 43.38),
    (-1.35, 44.60),
    (-1.30, 45.80),
    (-2.40, 47.10),
    (-4.90, 48.40),
    (-1.50, 49.75),
    (1.50, 51.10),
];

const CORSICA: [(f64, f64); 7] = [
    (8.50, 42.40),
    (8.70, 41.60),
    (9.05, 41.30),
    (9.30, 41.35),
    (9.60, 42.10),
    (9.50, 43.05),
    (9.30, 43.05),
];

/// Even-odd ray casting; plane geometry is exact enough at the scale of these outlines.
fn contains(outline: &[(f64, f64)], point: GeoPoint) -> bool {
    let (x, y) = (point.lon, point.lat);
    let mut inside = false;
    let mut previous = outline[outline.len() - 1];
    for &current in outline {
        let ((x1, y1), (x2, y2)) = (previous, current);
        if (y1 > y) != (y2 > y) && x < (x2 - x1) * (y - y1) / (y2 - y1) + x1 {
            inside = !inside;
        }
        previous = current;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    #[test]
    fn rejects_out_of_range_coordinates() {
        assert_eq!(GeoPoint::new(90.1, 0.0), Err(CoordinateError::Latitude));
        assert_eq!(GeoPoint::new(0.0, -180.5), Err(CoordinateError::Longitude));
        assert_eq!(GeoPoint::new(f64::NAN, 0.0), Err(CoordinateError::Latitude));
    }

    #[test]
    fn lille_to_marseille_is_about_835_km_as_the_crow_flies() {
        let km = point(50.63, 3.06).distance_km(point(43.30, 5.37));
        assert!((km - 835.0).abs() < 5.0, "{km}");
    }

    #[test]
    fn bearing_points_south_from_lille_to_marseille() {
        let bearing = point(50.63, 3.06).bearing_deg(point(43.30, 5.37));
        assert!((165.0..175.0).contains(&bearing), "{bearing}");
    }

    #[test]
    fn halfway_point_is_equidistant() {
        let (lille, marseille) = (point(50.63, 3.06), point(43.30, 5.37));
        let middle = lille.towards(marseille, 0.5);
        let gap = lille.distance_km(middle) - marseille.distance_km(middle);
        assert!(gap.abs() < 1e-6, "{gap}");
    }

    #[test]
    fn freight_places_fall_in_the_right_territory() {
        let french = [
            ("Lille", 50.63, 3.06),
            ("Dunkerque", 51.03, 2.37),
            ("Le Havre", 49.49, 0.11),
            ("Brest", 48.39, -4.49),
            ("Strasbourg", 48.57, 7.75),
            ("Mulhouse", 47.75, 7.34),
            ("Annecy", 45.90, 6.13),
            ("Nice", 43.70, 7.27),
            ("Perpignan", 42.70, 2.90),
            ("Bayonne", 43.49, -1.47),
            ("Bordeaux", 44.84, -0.58),
            ("Ajaccio", 41.93, 8.74),
            ("Rungis", 48.75, 2.35),
            ("Marseille-Fos", 43.44, 4.94),
            ("Calais", 50.965, 1.865),
        ];
        for (name, lat, lon) in french {
            assert_eq!(Territory::of(point(lat, lon)), Territory::France, "{name}");
        }
        let foreign = [
            ("Brussels", 50.85, 4.35),
            ("Luxembourg", 49.61, 6.13),
            ("Karlsruhe", 49.01, 8.40),
            ("Basel", 47.56, 7.59),
            ("Geneva", 46.20, 6.15),
            ("Turin", 45.07, 7.69),
            ("Barcelona", 41.39, 2.17),
            ("San Sebastian", 43.32, -1.98),
            ("London", 51.51, -0.13),
            ("Dover", 51.13, 1.31),
        ];
        for (name, lat, lon) in foreign {
            assert_eq!(
                Territory::of(point(lat, lon)),
                Territory::Elsewhere,
                "{name}"
            );
        }
    }
}
