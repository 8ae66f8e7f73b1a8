//! The rules a European trip meets, through the API: light vans under 561/2006 abroad, other
//! countries' bans, borders, and the reasons in words.

use serde_json::{json, Value};

use crate::helpers::{segments, spawn_app, spawn_app_with, BUNDLED_MODEL};

const PARIS: (f64, f64) = (48.8566, 2.3522);
const LYON: (f64, f64) = (45.7640, 4.8357);
const MILAN: (f64, f64) = (45.4642, 9.1900);
const MUNICH: (f64, f64) = (48.1372, 11.5756);
const BESANCON: (f64, f64) = (47.2378, 6.0241);
const MULHOUSE: (f64, f64) = (47.7508, 7.3359);
const LUCERNE: (f64, f64) = (47.0502, 8.3093);

/// Model columns (and their families) that must never reach the words.
const COLUMN_NAMES: [&str; 12] = [
    "rules_",
    "partner_",
    "_minutes",
    "load_tonnes",
    "crow_km",
    "snowfall",
    "temperature_2m",
    "congestion",
    "vehicle_code",
    "local_hour",
    "is_holiday",
    "elapsed",
];

fn trip(from: (f64, f64), to: (f64, f64), departure: &str, vehicle_class: &str) -> Value {
    json!({
        "origin": {"lat": from.0, "lon": from.1},
        "destination": {"lat": to.0, "lon": to.1},
        "departure_time": departure,
        "vehicle_class": vehicle_class,
    })
}

fn van(from: (f64, f64), to: (f64, f64), departure: &str, tonnes: f64) -> Value {
    let mut request = trip(from, to, departure, "van");
    request["gross_weight_tonnes"] = json!(tonnes);
    request
}

fn reasons<'a>(answer: &'a Value, kind: &str) -> Vec<&'a Value> {
    answer["explanation"]
        .as_array()
        .expect("an explanation")
        .iter()
        .filter(|reason| reason["kind"] == kind)
        .collect()
}

/// Every reason names a known kind and reads in both languages, with no model column in it.
fn assert_readable(answer: &Value) {
    let kinds = [
        "ban", "rest", "breaks", "border", "dwell", "traffic", "weather", "carrier",
    ];
    for reason in answer["explanation"].as_array().expect("an explanation") {
        assert!(
            kinds.contains(&reason["kind"].as_str().unwrap()),
            "{reason}"
        );
        assert!(reason["minutes"].is_i64(), "{reason}");
        for language in ["en", "fr"] {
            let text = reason[language].as_str().expect("words in both languages");
            assert!(!text.is_empty(), "{reason}");
            for column in COLUMN_NAMES {
                assert!(!text.contains(column), "{column} in {reason}");
            }
        }
    }
}

/// Regulation (EU) 2020/1054: from 1 July 2026 a van over 2.5 t on an international trip
/// takes its breaks; the same van at home does not.
#[tokio::test]
async fn a_light_van_abroad_follows_561_and_at_home_does_not() {
    let app = spawn_app().await;
    let (status, abroad) = app
        .post_json(
            "/v1/eta",
            &van(PARIS, MILAN, "2026-09-15T06:00:00+02:00", 3.2),
        )
        .await;
    assert_eq!(status, 200, "{abroad}");
    assert_eq!(abroad["driving_rules"], "561/2006", "{abroad}");
    assert_eq!(abroad["operation"], "international");
    let breaks = segments(&abroad, "break");
    assert!(!breaks.is_empty(), "{abroad:#}");
    assert_eq!(breaks[0]["duration_minutes"], 45.0);
    assert!(breaks[0]["country"].is_string(), "{abroad:#}");
    assert!(!reasons(&abroad, "breaks").is_empty(), "{abroad:#}");
    // Vans are outside every ban.
    assert!(segments(&abroad, "ban_wait").is_empty());
    assert_readable(&abroad);

    let (status, home) = app
        .post_json(
            "/v1/eta",
            &van(PARIS, LYON, "2026-09-15T06:00:00+02:00", 3.2),
        )
        .await;
    assert_eq!(status, 200, "{home}");
    assert_eq!(home["driving_rules"], "none", "{home}");
    assert_eq!(home["operation"], "domestic");
    assert!(segments(&home, "break").is_empty(), "{home:#}");

    // Declared domestic (a French carrier's leg it loads and unloads at home), the same
    // international road is not under the rules; cabotage is.
    let mut declared = van(PARIS, MILAN, "2026-09-15T06:00:00+02:00", 3.2);
    declared["operation"] = json!("domestic");
    let (_, domestic) = app.post_json("/v1/eta", &declared).await;
    assert_eq!(domestic["driving_rules"], "none", "{domestic}");
    declared["operation"] = json!("cabotage");
    let (_, cabotage) = app.post_json("/v1/eta", &declared).await;
    assert_eq!(cabotage["driving_rules"], "561/2006", "{cabotage}");
}

/// StVO §30(3): leaving Lyon on Saturday at 16:00, the truck reaches Germany on Saturday
/// evening and waits out the Sunday ban there, in a segment naming Germany and the rule.
#[tokio::test]
async fn lyon_to_munich_on_saturday_waits_out_germanys_sunday_ban() {
    let app = spawn_app().await;
    let mut request = trip(LYON, MUNICH, "2026-10-10T16:00:00+02:00", "articulated");
    request["stops"] = json!([
        {"lat": BESANCON.0, "lon": BESANCON.1},
        {"lat": MULHOUSE.0, "lon": MULHOUSE.1},
    ]);
    let (status, answer) = app.post_json("/v1/eta", &request).await;
    assert_eq!(status, 200, "{answer}");
    let waits = segments(&answer, "ban_wait");
    let german = waits
        .iter()
        .find(|wait| wait["country"] == "DE")
        .unwrap_or_else(|| panic!("a wait naming Germany: {answer:#}"));
    assert_eq!(german["rule"], "de-sunday");
    assert_eq!(german["start"], "2026-10-11T00:00:00+02:00");
    assert_eq!(german["end"], "2026-10-11T22:00:00+02:00");
    assert!(
        answer["breakdown"]["border_minutes"].is_number(),
        "{answer}"
    );
    let bans = reasons(&answer, "ban");
    assert!(
        bans.iter().any(|ban| {
            ban["en"]
                .as_str()
                .unwrap()
                .starts_with("Sunday ban in Germany")
                && ban["fr"]
                    .as_str()
                    .unwrap()
                    .starts_with("Interdiction du dimanche en Allemagne")
                && ban["minutes"] == 22 * 60
        }),
        "{answer:#}"
    );
    assert_readable(&answer);
}

/// A customs border costs the configured wait, in the timeline, the breakdown and the words.
#[tokio::test]
async fn the_swiss_border_costs_the_configured_customs_wait() {
    let app = spawn_app_with(|settings| settings.rules.border_wait_customs_minutes = 50.0).await;
    let request = trip(
        MULHOUSE,
        LUCERNE,
        "2026-12-01T08:00:00+01:00",
        "articulated",
    );
    let (status, answer) = app.post_json("/v1/eta", &request).await;
    assert_eq!(status, 200, "{answer}");
    let borders = segments(&answer, "border");
    assert_eq!(borders.len(), 1, "{answer:#}");
    assert_eq!(borders[0]["country"], "CH");
    assert_eq!(answer["breakdown"]["border_minutes"], 50.0, "{answer}");
    let words = reasons(&answer, "border");
    assert_eq!(words.len(), 1, "{answer:#}");
    assert_eq!(
        words[0]["en"],
        "Border with customs into Switzerland: 50 min"
    );
    assert_eq!(
        words[0]["fr"],
        "Frontière avec douane, entrée en Suisse : 50 min"
    );
}

#[tokio::test]
async fn a_gross_weight_out_of_range_is_refused_naming_the_field() {
    let app = spawn_app().await;
    for tonnes in [json!(0.1), json!(75), json!(-3.5)] {
        let mut request = van(PARIS, LYON, "2026-09-15T06:00:00+02:00", 3.2);
        request["gross_weight_tonnes"] = tonnes.clone();
        let (status, error) = app.post_json("/v1/eta", &request).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (400, Some("gross_weight_tonnes")),
            "{tonnes}: {error}"
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("gross_weight_tonnes"),
            "{error}"
        );
        let (status, batch) = app
            .post_json("/v1/eta/batch", &json!({"requests": [request]}))
            .await;
        assert_eq!(status, 200, "{batch}");
        assert_eq!(
            batch["results"][0]["error"]["field"], "gross_weight_tonnes",
            "{batch}"
        );
    }
    let mut request = van(PARIS, LYON, "2026-09-15T06:00:00+02:00", 3.2);
    request["operation"] = json!("export");
    let (status, error) = app.post_json("/v1/eta", &request).await;
    assert_eq!(status, 400, "{error}");
}

/// With the learned model and its factors, the words still name no column.
#[tokio::test]
async fn the_explanation_reads_in_both_languages_without_a_column_name() {
    let app = spawn_app_with(|settings| settings.model.dir = BUNDLED_MODEL.into()).await;
    let mut request = trip(PARIS, MILAN, "2026-12-05T18:00:00+01:00", "articulated");
    request["factors"] = json!(true);
    request["stops"] = json!([{"lat": LYON.0, "lon": LYON.1, "dwell_minutes": 45}]);
    let (status, answer) = app.post_json("/v1/eta", &request).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        !answer["factors"].as_array().unwrap().is_empty(),
        "{answer}"
    );
    assert!(
        !answer["explanation"].as_array().unwrap().is_empty(),
        "{answer}"
    );
    assert!(!reasons(&answer, "dwell").is_empty(), "{answer:#}");
    assert!(!reasons(&answer, "ban").is_empty(), "{answer:#}");
    assert_readable(&answer);
}

/// A shipment keeps its weight and operation, and its live estimate follows them and says why.
#[tokio::test]
async fn a_shipment_carries_its_weight_and_its_live_estimate_explains_itself() {
    let app = spawn_app().await;
    let shipment = json!({
        "reference": "VAN-PAR-MIL",
        "vehicle_id": "FR-VAN-1",
        "vehicle_class": "van",
        "gross_weight_tonnes": 3.2,
        "operation": "international",
        "origin": {"lat": PARIS.0, "lon": PARIS.1},
        "stops": [{"id": "milan", "lat": MILAN.0, "lon": MILAN.1}],
        "planned_departure": "2026-12-01T06:00:00+01:00",
    });
    let (status, created) = app.post_json("/v1/shipments", &shipment).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["gross_weight_tonnes"], 3.2);
    assert_eq!(created["operation"], "international");
    let id = created["id"].as_str().unwrap();
    let response = app.get(&format!("/v1/shipments/{id}/eta")).await;
    assert_eq!(response.status(), 200);
    let live: Value = response.json().await.unwrap();
    assert_eq!(live["driving_rules"], "561/2006", "{live:#}");
    assert!(
        live["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|segment| segment["kind"] == "break"),
        "{live:#}"
    );
    assert!(!reasons(&live, "breaks").is_empty(), "{live:#}");
    assert_readable(&live);

    let mut heavy = shipment;
    heavy["reference"] = json!("VAN-BAD");
    heavy["gross_weight_tonnes"] = json!(600);
    let (status, error) = app.post_json("/v1/shipments", &heavy).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("gross_weight_tonnes")),
        "{error}"
    );
}

/// An operator's bans file lays its rules over the shipped ones: here a Sunday ban in Germany
/// that ends at 20:00 instead of 22:00 replaces the shipped rule of the same id.
#[tokio::test]
async fn an_operators_bans_file_replaces_a_shipped_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.toml");
    std::fs::write(
        &path,
        r#"[[countries]]
country = "DE"
time_zone = "Europe/Berlin"
[[countries.rules]]
id = "de-sunday"
title = "Sunday ban, as the operator's derogation has it"
source = "The operator's own permit"
over_tonnes = 7.5
when = { kind = "weekly", from_day = "sun", from = "00:00", to_day = "sun", to = "20:00" }
"#,
    )
    .unwrap();
    let app = spawn_app_with(move |settings| settings.rules.bans_file = Some(path)).await;
    let mut request = trip(LYON, MUNICH, "2026-10-10T16:00:00+02:00", "articulated");
    request["stops"] = json!([
        {"lat": BESANCON.0, "lon": BESANCON.1},
        {"lat": MULHOUSE.0, "lon": MULHOUSE.1},
    ]);
    let (status, answer) = app.post_json("/v1/eta", &request).await;
    assert_eq!(status, 200, "{answer}");
    let waits = segments(&answer, "ban_wait");
    let german = waits
        .iter()
        .find(|wait| wait["rule"] == "de-sunday")
        .unwrap_or_else(|| panic!("the operator's rule: {answer:#}"));
    assert_eq!(german["end"], "2026-10-11T20:00:00+02:00");
}

/// A bans file that does not read stops the start, naming the file and the line.
#[tokio::test]
async fn a_bans_file_that_does_not_read_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bans.toml");
    std::fs::write(
        &path,
        "[[countries]]\ncountry = \"DE\"\ntime_zone = \"Europe/Berlin\"\n[[countries.rules]]\nid = \"de-x\"\ntitle = heavy\n",
    )
    .unwrap();
    let mut settings = etape::config::Settings::default();
    settings.server.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    settings.storage.data_dir = dir.path().join("data");
    settings.rules.bans_file = Some(path);
    let error = match etape::app::startup::Application::build(&settings) {
        Ok(_) => panic!("the start should fail"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("rules.bans_file") && error.contains("bans.toml"),
        "{error}"
    );
    assert!(error.contains("line 6"), "{error}");
}
