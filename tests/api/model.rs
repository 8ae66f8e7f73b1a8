//! ETAs from the learned model: its version and factors, the batch path, the fallback to the
//! rules, and a model directory refused for its features.

use std::path::Path;

use etape::ml::features::FEATURES;
use serde_json::{json, Value};

use crate::helpers::{
    artifact_path, lille_to_marseille, spawn_app, spawn_app_with, RunningBinary, BUNDLED_MODEL,
};

fn bundled_version() -> String {
    etape::training::registry::read_card(Path::new(BUNDLED_MODEL))
        .expect("the bundled model is readable")
        .version
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn the_bundled_model_answers_with_its_version_and_factors() {
    let app = spawn_app_with(|settings| settings.model.dir = BUNDLED_MODEL.into()).await;
    let mut request = lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated");
    let (status, plain) = app.post_json("/v1/eta", &request).await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["factors"], json!([]), "factors only when asked");
    request["factors"] = json!(true);
    let (status, eta) = app.post_json("/v1/eta", &request).await;
    assert_eq!(status, 200, "{eta}");
    assert_eq!(eta["eta"], plain["eta"]);
    assert_eq!(eta["model"]["name"], "lightgbm", "{eta:#}");
    assert_eq!(eta["model"]["version"], bundled_version().as_str());
    assert_eq!(eta["model"]["fallback"], false);
    let factors = eta["factors"].as_array().unwrap();
    assert_eq!(factors.len(), 5, "{eta:#}");
    let strengths: Vec<f64> = factors
        .iter()
        .map(|factor| factor["minutes"].as_f64().unwrap().abs())
        .collect();
    assert!(
        strengths.windows(2).all(|pair| pair[0] >= pair[1]),
        "{strengths:?}"
    );
    for factor in factors {
        assert!(
            FEATURES.contains(&factor["feature"].as_str().unwrap()),
            "{factor}"
        );
    }
    // The rules engine still lays out the trip the model's answer is about.
    assert!(!eta["timeline"].as_array().unwrap().is_empty());
    let (p10, p50, p90) = (
        eta["eta_p10"].as_str().unwrap(),
        eta["eta"].as_str().unwrap(),
        eta["eta_p90"].as_str().unwrap(),
    );
    assert!(p10 <= p50 && p50 <= p90, "{p10} {p50} {p90}");
    let minutes = eta["duration_minutes"].as_f64().unwrap();
    assert!((17.0 * 60.0..30.0 * 60.0).contains(&minutes), "{minutes}");
    let (_, ready) = {
        let response = app.get("/readyz").await;
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(ready["model"]["name"], "lightgbm");
}

#[tokio::test]
async fn a_batch_answers_as_single_requests_do() {
    let app = spawn_app_with(|settings| settings.model.dir = BUNDLED_MODEL.into()).await;
    let requests = vec![
        lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated"),
        lille_to_marseille("2026-12-05T20:00:00+01:00", "van"),
        json!({
            "origin": {"lat": 48.75, "lon": 2.35},
            "destination": {"lat": 45.72, "lon": 5.08},
            "departure_time": "2026-12-02T13:05:00+01:00",
            "vehicle_class": "rigid",
            "stops": [{"id": "dijon", "lat": 47.32, "lon": 5.04, "dwell_minutes": 40}]
        }),
    ];
    let (status, batch) = app
        .post_json(
            "/v1/eta/batch",
            &json!({ "requests": requests, "factors": true }),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    for (request, item) in requests.iter().zip(batch["results"].as_array().unwrap()) {
        let mut request = request.clone();
        request["factors"] = json!(true);
        let (status, single) = app.post_json("/v1/eta", &request).await;
        assert_eq!(status, 200, "{single}");
        for key in ["eta", "eta_p10", "eta_p90", "stops", "model"] {
            assert_eq!(item[key], single[key], "{key}");
        }
        let names = |value: &Value| -> Vec<Value> {
            value["factors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|factor| factor["feature"].clone())
                .collect()
        };
        assert_eq!(names(item), names(&single));
    }
    // A plan's batch leaves the factors out unless asked.
    let (_, plain) = app
        .post_json("/v1/eta/batch", &json!({ "requests": requests }))
        .await;
    for (item, explained) in plain["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(batch["results"].as_array().unwrap())
    {
        assert_eq!(item["factors"], json!([]));
        assert_eq!(item["eta"], explained["eta"]);
    }
    // One item cannot ask for factors alone: the batch decides for all.
    let mut asking = requests[0].clone();
    asking["factors"] = json!(true);
    let (status, mixed) = app
        .post_json(
            "/v1/eta/batch",
            &json!({ "requests": [asking, requests[1]] }),
        )
        .await;
    assert_eq!(status, 200, "{mixed}");
    assert_eq!(mixed["results"][0]["error"]["field"], "factors", "{mixed}");
    assert_eq!(mixed["results"][1]["eta"], plain["results"][1]["eta"]);
}

#[tokio::test]
async fn without_a_model_the_rules_answer_flagged() {
    let missing = artifact_path("model-removed");
    let _ = std::fs::remove_dir_all(&missing);
    let app = spawn_app_with(|settings| settings.model.dir = missing.clone()).await;
    let (status, eta) = app
        .post_json(
            "/v1/eta",
            &lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated"),
        )
        .await;
    assert_eq!(status, 200, "{eta}");
    assert_eq!(eta["model"]["name"], "rules");
    assert_eq!(eta["model"]["fallback"], true);
    assert_eq!(eta["factors"], json!([]));
}

#[tokio::test]
async fn a_model_with_other_features_is_refused_saying_what_differs() {
    let dir = artifact_path("model-mismatched");
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(Path::new(BUNDLED_MODEL), &dir);
    let card_path = dir.join("model.json");
    let mut card: Value =
        serde_json::from_str(&std::fs::read_to_string(&card_path).unwrap()).unwrap();
    let features = card["features"].as_array_mut().unwrap();
    features.retain(|name| name != "snowfall");
    features.push(json!("road_km_osrm"));
    std::fs::write(&card_path, card.to_string()).unwrap();

    let error = etape::training::registry::load(&dir)
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("features differ"), "{error}");
    assert!(error.contains("missing snowfall"), "{error}");
    assert!(error.contains("unknown road_km_osrm"), "{error}");

    // The service starts anyway and says the rules answer.
    let app = spawn_app_with(|settings| settings.model.dir = dir.clone()).await;
    let (_, eta) = app
        .post_json(
            "/v1/eta",
            &lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated"),
        )
        .await;
    assert_eq!(eta["model"]["fallback"], true);
}

/// The real binary, reloading its model directory on SIGHUP while requests keep coming: from
/// the rules to the model when the directory appears, back to the rules when it goes, and not
/// one request refused in between.
#[tokio::test]
async fn sighup_reloads_the_model_without_dropping_a_request() {
    use std::process::Command;

    let dir = artifact_path("model-reloaded");
    let _ = std::fs::remove_dir_all(&dir);
    let data = tempfile::tempdir().unwrap();
    // The rate limit off: the traffic runs flat out while the reloads take their time, and a
    // 429 would say nothing of the reload.
    let mut server = RunningBinary::start(
        data.path(),
        &["--model".as_ref(), dir.as_os_str(), "--no-demo".as_ref()],
        &[("ETAPE__API__RATE_LIMIT_PER_SECOND", "0")],
    );
    let base = server.base.clone();
    let client = server.client.clone();
    let model_name = || async {
        let ready: Value = server.get_json("/readyz").await;
        ready["model"]["name"].as_str().unwrap().to_owned()
    };
    let hangup = |pid: u32| {
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let wait_for = |expected: &'static str| async move {
        for _ in 0..100 {
            if model_name().await == expected {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the model never became {expected}");
    };
    assert_eq!(model_name().await, "rules");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (client, url, stop) = (client.clone(), format!("{base}/v1/eta"), stop.clone());
        let body = lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated").to_string();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let answer = match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let eta: Value = response.json().await.unwrap_or_default();
                        (
                            status,
                            eta["model"]["name"].as_str().unwrap_or("").to_owned(),
                        )
                    }
                    Err(_) => (0, String::new()),
                };
                answers.push(answer);
            }
            answers
        })
    };
    copy_dir(Path::new(BUNDLED_MODEL), &dir);
    hangup(server.child.id());
    wait_for("lightgbm").await;
    std::fs::remove_dir_all(&dir).unwrap();
    hangup(server.child.id());
    wait_for("rules").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = traffic.await.unwrap();
    server.child.kill().unwrap();
    let _ = server.child.wait();
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    // The requests spanned both switches.
    let models: Vec<&str> = answers.iter().map(|(_, model)| model.as_str()).collect();
    assert!(models.contains(&"lightgbm"), "{models:?}");
    assert_eq!(models.last(), Some(&"rules"), "{models:?}");
}

/// A model written under `<data_dir>/models` is listed and, once activated by an operator,
/// serves the next request; a model that does not fit the build is refused and the current one
/// stays.
#[tokio::test]
async fn an_operator_lists_the_models_and_switches_the_served_one() {
    let app = spawn_app().await;
    let operator = app.keys["operator"].clone();
    let operator_call = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, format!("{}{path}", app.address))
            .bearer_auth(&operator)
    };
    let models = || async {
        let response = operator_call(reqwest::Method::GET, "/v1/models")
            .send()
            .await;
        response.unwrap().json::<Value>().await.unwrap()
    };
    let listed: Value = models().await;
    assert_eq!(
        listed,
        serde_json::json!([]),
        "no model yet: the rules answer"
    );
    copy_dir(
        Path::new(BUNDLED_MODEL),
        &app.data_dir().join("models/bundled"),
    );
    let listed: Value = models().await;
    let version = listed[0]["version"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["active"], false);
    assert_eq!(listed[0]["partners"], 8);
    assert_eq!(listed[0]["trips_per_partner"].as_array().unwrap().len(), 8);

    let carrier = app
        .post(&format!("/v1/models/{version}/activate"), "")
        .await;
    assert_eq!(carrier.status(), 403);
    let activated = operator_call(
        reqwest::Method::POST,
        &format!("/v1/models/{version}/activate"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(activated.status(), 200);
    let activated: Value = activated.json().await.unwrap();
    assert_eq!(activated["previous"], Value::Null);
    let (_, eta) = app
        .post_json(
            "/v1/eta",
            &lille_to_marseille("2026-12-01T06:00:00+01:00", "articulated"),
        )
        .await;
    assert_eq!(eta["model"]["version"].as_str(), Some(version.as_str()));
    let listed: Value = models().await;
    assert_eq!(listed[0]["active"], true);

    // A model trained for other features cannot serve here: it is not listed, and asking for
    // it changes nothing.
    let foreign = app.data_dir().join("models/foreign");
    copy_dir(Path::new(BUNDLED_MODEL), &foreign);
    let card_path = foreign.join("model.json");
    let mut card: Value = serde_json::from_slice(&std::fs::read(&card_path).unwrap()).unwrap();
    card["version"] = "20990101T000000Z-foreign0".into();
    card["features"][0] = "road_km_osrm".into();
    std::fs::write(&card_path, card.to_string()).unwrap();
    let refused = operator_call(
        reqwest::Method::POST,
        "/v1/models/20990101T000000Z-foreign0/activate",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), 404);
    let missing = operator_call(reqwest::Method::POST, "/v1/models/nothing/activate")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["model"]["version"].as_str(), Some(version.as_str()));
}
