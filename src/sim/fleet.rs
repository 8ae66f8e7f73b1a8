//! Carriers: very different sizes, each with habits of its own.

use rand::distr::weighted::WeightedIndex;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;

use super::world::PLACES;
use crate::domain::vehicle::VehicleClass;

#[derive(Debug, Clone)]
pub struct Carrier {
    pub name: String,
    pub n_trips: usize,
    /// Index of the place the carrier works from.
    pub home: usize,
    /// Places the carrier serves often.
    pub favourites: Vec<usize>,
    /// Share of trips on the carrier's own lanes (from home or between favourites).
    pub loyalty: f64,
    /// Multiplies the share of the speed limit realised: cautious fleets and hurried ones.
    pub speed_factor: f64,
    /// Multiplies dwell at stops: well-run docks and slow ones.
    pub dwell_factor: f64,
    /// Spread of unexplained lateness, in minutes.
    pub punctuality_minutes: f64,
    /// Most minutes a driver adds to a break, and to a daily rest.
    pub break_extension_max: f64,
    pub rest_extension_max: f64,
    /// Whether planning uses 10-hour days and reduced rests.
    pub uses_extensions: bool,
    /// Probabilities of van, rigid, articulated.
    pub vehicle_mix: [f64; 3],
    /// Minutes between GPS pings, 1 to 5.
    pub ping_interval_minutes: f64,
}

impl Carrier {
    pub fn vehicle(&self, rng: &mut ChaCha8Rng) -> VehicleClass {
        let index = WeightedIndex::new(self.vehicle_mix)
            .expect("valid mix")
            .sample(rng);
        VehicleClass::ALL[index]
    }
}

/// Splits `total_trips` among `n_carriers` by a power law: a few carriers with tens of
/// thousands of trips, many with a few hundred. Each carrier keeps at least 50 trips.
pub fn carriers(n_carriers: usize, total_trips: usize, rng: &mut ChaCha8Rng) -> Vec<Carrier> {
    let weights: Vec<f64> = (0..n_carriers)
        .map(|rank| 1.0 / (rank as f64 + 1.0).powf(1.5))
        .collect();
    let weight_sum: f64 = weights.iter().sum();
    let popularity =
        WeightedIndex::new(PLACES.iter().map(|place| place.popularity)).expect("positive");
    weights
        .iter()
        .enumerate()
        .map(|(rank, weight)| {
            let home = popularity.sample(rng);
            let mut favourites = Vec::new();
            while favourites.len() < 6 {
                let place = popularity.sample(rng);
                if place != home && !favourites.contains(&place) {
                    favourites.push(place);
                }
            }
            let mix = match rng.random_range(0..3) {
                0 => [0.6, 0.3, 0.1],
                1 => [0.1, 0.3, 0.6],
                _ => [0.05, 0.15, 0.8],
            };
            Carrier {
                name: format!("carrier-{:02}", rank + 1),
                n_trips: ((total_trips as f64 * weight / weight_sum).round() as usize).max(50),
                home,
                favourites,
                loyalty: rng.random_range(0.5..0.85),
                speed_factor: rng.random_range(0.92..1.06),
                dwell_factor: rng.random_range(0.7..1.5),
                punctuality_minutes: rng.random_range(5.0..35.0),
                break_extension_max: rng.random_range(0.0..25.0),
                rest_extension_max: rng.random_range(0.0..120.0),
                uses_extensions: rng.random_bool(0.6),
                vehicle_mix: mix,
                ping_interval_minutes: rng.random_range(1.0..5.0),
            }
        })
        .collect()
}
