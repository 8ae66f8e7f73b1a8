//! Any bytes as a feed's answer: Open-Meteo's hourly forecast, TomTom's flow segment,
//! Valhalla's and OSRM's routes. A value or a "malformed" error, never a panic, and routes
//! with one leg per pair of points and no negative distance.
#![no_main]

use etape::feeds::routing::{parse_osrm, parse_valhalla};
use etape::feeds::traffic::parse_flow;
use etape::feeds::weather::{hourly_frame, Cell};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    let points = 2 + usize::from(selector / 4 % 4);
    match selector % 4 {
        0 => {
            let _ = hourly_frame(
                body,
                Cell {
                    lat_tenths: 456,
                    lon_tenths: 48,
                },
            );
        }
        1 => {
            if let Ok(flow) = parse_flow(body) {
                assert!((0.0..=1.0).contains(&flow.congestion()), "{flow:?}");
            }
        }
        2 => check_legs(parse_valhalla(body, points), points),
        _ => check_legs(parse_osrm(body, points), points),
    }
});

fn check_legs<E>(legs: Result<Vec<etape::domain::eta::RoadLeg>, E>, points: usize) {
    if let Ok(legs) = legs {
        assert_eq!(legs.len(), points - 1);
        for leg in legs {
            assert!(leg.km >= 0.0 && leg.free_flow_minutes >= 0.0, "{leg:?}");
        }
    }
}
