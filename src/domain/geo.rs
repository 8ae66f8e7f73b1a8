//! Points on the earth, great-circle distances, and which country a point lies in.

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

mod outlines;

/// The country a stretch of road lies in, as far as traffic rules care: France, the countries
/// a French carrier drives through, and `Elsewhere` for the rest of the world (and the sea).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Territory {
    /// Metropolitan France with Corsica, where the French heavy-goods-vehicle bans apply.
    France,
    Germany,
    Italy,
    Switzerland,
    Austria,
    Spain,
    Belgium,
    Luxembourg,
    Netherlands,
    Portugal,
    UnitedKingdom,
    Andorra,
    Monaco,
    Liechtenstein,
    SanMarino,
    Denmark,
    Poland,
    Czechia,
    Slovenia,
    Ireland,
    Elsewhere,
}

/// How a border between two territories is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrossingKind {
    /// A customs border: goods are declared (Switzerland, the United Kingdom, Andorra,
    /// Liechtenstein, and any border of the EU customs union).
    Customs,
    /// Inside the EU customs union (Monaco and San Marino belong to it through France and
    /// Italy): no stop for goods, at most a Schengen police check.
    NoCustoms,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown country code `{0}`, expected an ISO 3166 alpha-2 code such as FR or DE")]
pub struct UnknownCountry(pub String);

impl Territory {
    pub const ALL: [Territory; 21] = [
        Self::France,
        Self::Germany,
        Self::Italy,
        Self::Switzerland,
        Self::Austria,
        Self::Spain,
        Self::Belgium,
        Self::Luxembourg,
        Self::Netherlands,
        Self::Portugal,
        Self::UnitedKingdom,
        Self::Andorra,
        Self::Monaco,
        Self::Liechtenstein,
        Self::SanMarino,
        Self::Denmark,
        Self::Poland,
        Self::Czechia,
        Self::Slovenia,
        Self::Ireland,
        Self::Elsewhere,
    ];

    /// The country whose outline holds `point`; a point the simplified coast cuts off (a port
    /// on the shore) goes to the outline within [`COAST_SLACK_DEG`] of it; otherwise
    /// `Elsewhere`.
    pub fn of(point: GeoPoint) -> Territory {
        let (x, y) = (point.lon, point.lat);
        let in_box = |outline: &Outline, slack: f64| {
            let (lon_min, lat_min, lon_max, lat_max) = outline.bbox;
            lon_min - slack <= x
                && x <= lon_max + slack
                && lat_min - slack <= y
                && y <= lat_max + slack
        };
        let holder = outlines::OUTLINES.iter().find(|outline| {
            in_box(outline, 0.0) && outline.rings.iter().any(|ring| contains(ring, point))
        });
        if let Some(outline) = holder {
            return outline.territory;
        }
        outlines::OUTLINES
            .iter()
            .filter(|outline| in_box(outline, COAST_SLACK_DEG))
            .map(|outline| {
                let distance = outline
                    .rings
                    .iter()
                    .map(|ring| distance_to_ring_deg(ring, point))
                    .fold(f64::INFINITY, f64::min);
                (distance, outline.territory)
            })
            .filter(|(distance, _)| *distance <= COAST_SLACK_DEG)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(Territory::Elsewhere, |(_, territory)| territory)
    }

    /// The ISO 3166 alpha-2 code; `Elsewhere` is `ZZ`, the code ISO leaves for unknown places.
    pub fn code(self) -> &'static str {
        match self {
            Self::France => "FR",
            Self::Germany => "DE",
            Self::Italy => "IT",
            Self::Switzerland => "CH",
            Self::Austria => "AT",
            Self::Spain => "ES",
            Self::Belgium => "BE",
            Self::Luxembourg => "LU",
            Self::Netherlands => "NL",
            Self::Portugal => "PT",
            Self::UnitedKingdom => "GB",
            Self::Andorra => "AD",
            Self::Monaco => "MC",
            Self::Liechtenstein => "LI",
            Self::SanMarino => "SM",
            Self::Denmark => "DK",
            Self::Poland => "PL",
            Self::Czechia => "CZ",
            Self::Slovenia => "SI",
            Self::Ireland => "IE",
            Self::Elsewhere => "ZZ",
        }
    }

    /// Whether the territory lies outside the EU customs union (Monaco and San Marino are
    /// inside it through their customs unions with France and Italy). `Elsewhere` is unknown
    /// and counts as inside: it is mostly the sea between outlines and the EU further east.
    pub fn outside_eu_customs_union(self) -> bool {
        matches!(
            self,
            Self::Switzerland | Self::Liechtenstein | Self::UnitedKingdom | Self::Andorra
        )
    }

    /// How a truck crosses from `self` into `next`; `None` when it stays in one territory.
    /// Switzerland and Liechtenstein share a customs territory, so that border has none.
    pub fn crossing_to(self, next: Territory) -> Option<CrossingKind> {
        if self == next {
            return None;
        }
        let swiss = [Self::Switzerland, Self::Liechtenstein];
        let both_swiss = swiss.contains(&self) && swiss.contains(&next);
        let customs = self.outside_eu_customs_union() || next.outside_eu_customs_union();
        if customs && !both_swiss {
            Some(CrossingKind::Customs)
        } else {
            Some(CrossingKind::NoCustoms)
        }
    }
}

impl std::str::FromStr for Territory {
    type Err = UnknownCountry;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|territory| territory.code().eq_ignore_ascii_case(code))
            .ok_or_else(|| UnknownCountry(code.to_owned()))
    }
}

impl std::fmt::Display for Territory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A part of a country that a ban rule names, by the id the ban data uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// The Alpine part of Auvergne-Rhône-Alpes whose roads the French winter Saturdays ban
    /// (Savoie, Haute-Savoie and eastern Isère: the roads to the ski resorts and to Italy),
    /// drawn coarsely by hand to about 10 km; id `fr-alps`.
    FrenchAlps,
}

impl Region {
    pub const ALL: [Region; 1] = [Self::FrenchAlps];

    /// The region `point` lies in, if any. A region belongs to one country; the caller pairs
    /// it with [`Territory::of`], so an outline may spill over the border.
    pub fn of(point: GeoPoint) -> Option<Region> {
        let (lon_min, lat_min, lon_max, lat_max) = FRENCH_ALPS_BBOX;
        let in_box =
            (lon_min..=lon_max).contains(&point.lon) && (lat_min..=lat_max).contains(&point.lat);
        (in_box && contains(&FRENCH_ALPS, point)).then_some(Region::FrenchAlps)
    }

    pub fn id(self) -> &'static str {
        match self {
            Self::FrenchAlps => "fr-alps",
        }
    }

    /// The country the region lies in.
    pub fn territory(self) -> Territory {
        match self {
            Self::FrenchAlps => Territory::France,
        }
    }
}

impl std::str::FromStr for Region {
    type Err = String;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|region| region.id() == id)
            .ok_or_else(|| format!("unknown region `{id}`, expected one of: fr-alps"))
    }
}

/// Savoie, Haute-Savoie and eastern Isère as (longitude, latitude) vertices.
const FRENCH_ALPS: [(f64, f64); 9] = [
    (5.62, 45.05),
    (5.62, 45.80),
    (5.80, 46.10),
    (6.10, 46.45),
    (6.85, 46.45),
    (7.10, 45.90),
    (7.20, 45.25),
    (6.95, 45.05),
    (6.35, 44.90),
];
const FRENCH_ALPS_BBOX: (f64, f64, f64, f64) = (5.62, 44.90, 7.20, 46.45);

/// How far (in degrees of latitude, longitude scaled by the cosine of the latitude) a point
/// outside every outline may lie from one and still count as in it: about 11 km, what the
/// simplification of a coast can cut off.
pub const COAST_SLACK_DEG: f64 = 0.1;

/// One country's outline: its rings as (longitude, latitude) vertices and their bounding box
/// (lon min, lat min, lon max, lat max), checked first to keep the lookup fast.
struct Outline {
    territory: Territory,
    bbox: (f64, f64, f64, f64),
    rings: &'static [&'static [(f64, f64)]],
}

/// Distance from `point` to the nearest edge of `ring`, in degrees, with longitudes scaled by
/// the cosine of the point's latitude.
fn distance_to_ring_deg(ring: &[(f64, f64)], point: GeoPoint) -> f64 {
    let scale = point.lat.to_radians().cos();
    let project = |(lon, lat): (f64, f64)| (lon * scale, lat);
    let (px, py) = project((point.lon, point.lat));
    let mut best = f64::INFINITY;
    let mut previous = project(ring[ring.len() - 1]);
    for &vertex in ring {
        let current = project(vertex);
        let (dx, dy) = (current.0 - previous.0, current.1 - previous.1);
        let length_sq = dx * dx + dy * dy;
        let t = if length_sq == 0.0 {
            0.0
        } else {
            (((px - previous.0) * dx + (py - previous.1) * dy) / length_sq).clamp(0.0, 1.0)
        };
        let (nx, ny) = (previous.0 + t * dx, previous.1 + t * dy);
        best = best.min(((px - nx).powi(2) + (py - ny).powi(2)).sqrt());
        previous = current;
    }
    best
}

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
            ("Brussels", 50.85, 4.35, Territory::Belgium),
            ("Luxembourg", 49.61, 6.13, Territory::Luxembourg),
            ("Karlsruhe", 49.01, 8.40, Territory::Germany),
            ("Basel", 47.56, 7.59, Territory::Switzerland),
            ("Geneva", 46.20, 6.15, Territory::Switzerland),
            ("Turin", 45.07, 7.69, Territory::Italy),
            ("Barcelona", 41.39, 2.17, Territory::Spain),
            ("San Sebastian", 43.32, -1.98, Territory::Spain),
            ("London", 51.51, -0.13, Territory::UnitedKingdom),
            ("Dover", 51.13, 1.31, Territory::UnitedKingdom),
            ("Munich", 48.14, 11.58, Territory::Germany),
            ("Milan", 45.46, 9.19, Territory::Italy),
            ("Innsbruck", 47.27, 11.39, Territory::Austria),
            ("Kufstein", 47.58, 12.17, Territory::Austria),
            ("Lugano", 46.00, 8.95, Territory::Switzerland),
            ("Lisbon", 38.72, -9.14, Territory::Portugal),
            ("Rotterdam", 51.92, 4.48, Territory::Netherlands),
            ("Antwerp", 51.22, 4.40, Territory::Belgium),
            ("Andorra la Vella", 42.51, 1.52, Territory::Andorra),
            ("Monaco", 43.74, 7.42, Territory::Monaco),
            ("Vaduz", 47.14, 9.52, Territory::Liechtenstein),
            ("Irun", 43.34, -1.79, Territory::Spain),
            ("Ventimiglia", 43.79, 7.61, Territory::Italy),
            ("Kehl", 48.57, 7.82, Territory::Germany),
            ("Madrid", 40.42, -3.70, Territory::Spain),
            ("Budapest", 47.50, 19.04, Territory::Elsewhere),
            ("the Bay of Biscay", 45.50, -4.00, Territory::Elsewhere),
            ("New York", 40.71, -74.01, Territory::Elsewhere),
        ];
        for (name, lat, lon, country) in foreign {
            assert_eq!(Territory::of(point(lat, lon)), country, "{name}");
        }
    }

    #[test]
    fn the_french_alps_hold_the_ski_roads_and_not_lyon() {
        for (name, lat, lon) in [
            ("Chambéry", 45.57, 5.92),
            ("Albertville", 45.68, 6.39),
            ("Modane", 45.20, 6.67),
            ("Annecy", 45.90, 6.13),
        ] {
            assert_eq!(
                Region::of(point(lat, lon)),
                Some(Region::FrenchAlps),
                "{name}"
            );
        }
        for (name, lat, lon) in [
            ("Lyon", 45.76, 4.84),
            ("Valence", 44.93, 4.89),
            ("Turin", 45.07, 7.69),
        ] {
            assert_eq!(Region::of(point(lat, lon)), None, "{name}");
        }
        assert_eq!("fr-alps".parse::<Region>(), Ok(Region::FrenchAlps));
    }

    #[test]
    fn codes_round_trip_and_borders_have_their_kind() {
        for territory in Territory::ALL {
            assert_eq!(territory.code().parse::<Territory>(), Ok(territory));
        }
        assert!("XX".parse::<Territory>().is_err());
        use CrossingKind::*;
        use Territory::*;
        let crossings = [
            (France, France, None),
            (France, Germany, Some(NoCustoms)),
            (France, Switzerland, Some(Customs)),
            (Italy, Switzerland, Some(Customs)),
            (Elsewhere, UnitedKingdom, Some(Customs)),
            (France, Andorra, Some(Customs)),
            (Switzerland, Liechtenstein, Some(NoCustoms)),
            (France, Monaco, Some(NoCustoms)),
        ];
        for (from, into, kind) in crossings {
            assert_eq!(from.crossing_to(into), kind, "{from:?} into {into:?}");
        }
    }
}
