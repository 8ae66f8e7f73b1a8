use serde_json::{json, Value};

use crate::helpers::{lille_to_marseille, segments, spawn_app};

fn minutes(value: &Value) -> f64 {
    value.as_f64().expect("a number of minutes")
}

#[tokio::test]
async fn lille_to_marseille_takes_breaks_and_a_daily_rest() {
    let app = spawn_app().await;
    let (status, eta) = app
        .post_json(
            "/v1/eta",
            &lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated"),
        )
        .await;
    assert_eq!(status, 200, "{eta}");
    let breaks = segments(&eta, "break");
    assert!(
        breaks
            .iter()
            .any(|b| minutes(&b["duration_minutes"]) >= 45.0),
        "{eta:#}"
    );
    assert!(!segments(&eta, "rest").is_empty(), "{eta:#}");
    let driving = minutes(&eta["breakdown"]["driving_minutes"]);
    let duration = minutes(&eta["duration_minutes"]);
    assert!(
        duration > driving + 9.0 * 60.0,
        "duration {duration}, driving {driving}"
    );
    assert!((900.0..1100.0).contains(&minutes(&eta["distance_km"])));
    assert_eq!(eta["model"]["name"], "rules");
    // Answers come in the offset of the question.
    assert!(eta["eta"].as_str().unwrap().ends_with("+01:00"));
    assert!(
        eta["eta_p10"].as_str() < eta["eta"].as_str()
            && eta["eta"].as_str() < eta["eta_p90"].as_str()
    );
}

#[tokio::test]
async fn a_saturday_evening_departure_waits_out_the_weekend_ban_but_a_van_does_not() {
    let app = spawn_app().await;
    let (status, truck) = app
        .post_json(
            "/v1/eta",
            &lille_to_marseille("2026-12-05T20:00:00+01:00", "articulated"),
        )
        .await;
    assert_eq!(status, 200);
    let waits = segments(&truck, "ban_wait");
    assert_eq!(waits.len(), 1, "{truck:#}");
    assert_eq!(waits[0]["start"], "2026-12-05T22:00:00+01:00");
    assert_eq!(waits[0]["end"], "2026-12-06T22:00:00+01:00");
    assert_eq!(
        minutes(&truck["breakdown"]["restriction_wait_minutes"]),
        24.0 * 60.0
    );

    let (status, van) = app
        .post_json(
            "/v1/eta",
            &lille_to_marseille("2026-12-05T20:00:00+01:00", "van"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(segments(&van, "ban_wait").is_empty(), "{van:#}");
    assert!(segments(&van, "break").is_empty(), "{van:#}");
    assert_eq!(minutes(&van["breakdown"]["break_minutes"]), 0.0);
}

#[tokio::test]
async fn christmas_eve_departure_waits_until_christmas_evening() {
    let app = spawn_app().await;
    let (status, eta) = app
        .post_json(
            "/v1/eta",
            &lille_to_marseille("2026-12-24T20:00:00+01:00", "rigid"),
        )
        .await;
    assert_eq!(status, 200);
    let waits = segments(&eta, "ban_wait");
    assert_eq!(waits.len(), 1, "{eta:#}");
    assert_eq!(waits[0]["end"], "2026-12-25T22:00:00+01:00");
}

#[tokio::test]
async fn stops_get_an_eta_and_a_late_risk_against_their_window() {
    let app = spawn_app().await;
    let mut request = lille_to_marseille("2026-12-01T06:00:00Z", "articulated");
    request["stops"] = json!([
        {"id": "paris-rungis", "lat": 48.75, "lon": 2.35, "dwell_minutes": 60,
         "window": {"start": "2026-12-01T08:00:00Z", "end": "2026-12-01T20:00:00Z"}},
        {"id": "lyon", "lat": 45.76, "lon": 4.84, "dwell_minutes": 30,
         "window": {"start": "2026-12-01T08:00:00Z", "end": "2026-12-01T12:00:00Z"}},
    ]);
    request["driver"] = json!({"driven_today_minutes": 60, "driven_since_break_minutes": 60});
    let (status, eta) = app.post_json("/v1/eta", &request).await;
    assert_eq!(status, 200, "{eta}");
    let stops = eta["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 2);
    assert_eq!(stops[0]["id"], "paris-rungis");
    assert_eq!(stops[0]["late_risk"]["severity"], "on_time");
    assert_eq!(stops[1]["late_risk"]["severity"], "late");
    assert!(stops[0]["eta"].as_str() < stops[1]["eta"].as_str());
    assert!(stops[1]["eta"].as_str() < eta["eta"].as_str());
    assert!(eta["eta"].as_str().unwrap().ends_with('Z'));
    assert_eq!(minutes(&eta["breakdown"]["dwell_minutes"]), 90.0);
}

#[tokio::test]
async fn a_batch_answers_in_order_and_one_bad_request_fails_alone() {
    let app = spawn_app().await;
    let good = lille_to_marseille("2026-12-01T06:00:00+01:00", "van");
    let mut bad = good.clone();
    bad["origin"]["lat"] = json!(123.0);
    let batch = json!({"requests": [good, bad, {"nonsense": true}, good]});
    let (status, answer) = app.post_json("/v1/eta/batch", &batch).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results[0]["eta"].is_string());
    assert_eq!(results[1]["error"]["code"], "out_of_range");
    assert_eq!(results[1]["error"]["field"], "origin.lat");
    assert_eq!(results[2]["error"]["code"], "unknown_field");
    assert_eq!(results[3]["eta"], results[0]["eta"]);
}

#[tokio::test]
async fn a_full_batch_of_ten_thousand_is_answered() {
    let app = spawn_app().await;
    let request = json!({
        "origin": {"lat": 48.85, "lon": 2.35},
        "destination": {"lat": 49.49, "lon": 0.11},
        "departure_time": "2026-12-01T06:00:00+01:00",
        "vehicle_class": "rigid",
    });
    let batch = json!({"requests": vec![request; 10_000]});
    let (status, answer) = app.post_json("/v1/eta/batch", &batch).await;
    assert_eq!(status, 200);
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 10_000);
    assert!(results.iter().all(|item| item["eta"].is_string()));
}

/// A multi-stop trip's stops are each the answer to the trip to them: Lyon on the way to
/// Marseille is what Lille to Lyon answers alone, with the bundled model and with the rules;
/// the batch says the same.
#[tokio::test]
async fn an_intermediate_stop_is_the_trip_to_it_asked_directly() {
    for model in [crate::helpers::BUNDLED_MODEL, "target/tmp/no-model-here"] {
        let app =
            crate::helpers::spawn_app_with(|settings| settings.model.dir = model.into()).await;
        let mut through_lyon = lille_to_marseille("2026-12-01T17:00:00+01:00", "articulated");
        through_lyon["stops"] =
            json!([{"id": "lyon", "lat": 45.76, "lon": 4.84, "dwell_minutes": 30}]);
        let mut to_lyon = lille_to_marseille("2026-12-01T17:00:00+01:00", "articulated");
        to_lyon["destination"] = json!({"lat": 45.76, "lon": 4.84});
        let (status, whole) = app.post_json("/v1/eta", &through_lyon).await;
        assert_eq!(status, 200, "{whole}");
        let (_, direct) = app.post_json("/v1/eta", &to_lyon).await;
        for (stop, alone) in [
            ("eta", "eta"),
            ("eta_p10", "eta_p10"),
            ("eta_p90", "eta_p90"),
        ] {
            assert_eq!(
                whole["stops"][0][stop], direct[alone],
                "{model}: {whole} {direct}"
            );
        }
        assert!(whole["eta"].as_str() > whole["stops"][0]["eta"].as_str());
        let (status, batch) = app
            .post_json(
                "/v1/eta/batch",
                &json!({"requests": [through_lyon, to_lyon]}),
            )
            .await;
        assert_eq!(status, 200, "{batch}");
        assert_eq!(
            batch["results"][0]["stops"][0]["eta"], direct["eta"],
            "{batch}"
        );
    }
}
