//! Partners' uploads and consent, through the real server.

use std::io::Write;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, RunningBinary, TestApp};

const TRIPS: &str = include_str!("../../data/example/trips.csv");

async fn upload(app: &TestApp, query: &str, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/v1/history{query}", app.address))
        .bearer_auth(&app.keys["partner"])
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn as_partner(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::Response {
    app.client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(&app.keys["partner"])
        .send()
        .await
        .unwrap()
}

fn with_bad_latitude_on_row(row: usize) -> String {
    TRIPS
        .lines()
        .enumerate()
        .map(|(index, line)| {
            if index == row {
                let mut cells: Vec<&str> = line.split(',').collect();
                cells[2] = "95.0";
                cells.join(",")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[tokio::test]
async fn an_upload_is_kept_once_given_back_as_it_came_and_erased() {
    let app = spawn_app().await;
    let rows = TRIPS.lines().count() - 1;
    let (status, first) = upload(&app, "", TRIPS.as_bytes().to_vec()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["upload"]["rows"], rows);
    assert_eq!(first["upload"]["format"], "csv");
    let (status, again) = upload(&app, "", TRIPS.as_bytes().to_vec()).await;
    assert_eq!((status, again["created"].as_bool()), (200, Some(false)));
    assert_eq!(again["upload"]["id"], first["upload"]["id"]);
    let id = first["upload"]["id"].as_str().unwrap().to_owned();

    // Gzip is another file, read the same way, given back as gzip.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(TRIPS.as_bytes()).unwrap();
    let gzipped = encoder.finish().unwrap();
    let (status, zipped) = upload(&app, "", gzipped.clone()).await;
    assert_eq!(
        (status, zipped["upload"]["format"].as_str()),
        (201, Some("csv_gz"))
    );

    let listed: Value = as_partner(&app, reqwest::Method::GET, "/v1/history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let exported = as_partner(
        &app,
        reqwest::Method::GET,
        &format!("/v1/history/{id}/export"),
    )
    .await;
    assert_eq!(exported.headers()["content-type"], "text/csv");
    assert_eq!(exported.bytes().await.unwrap(), TRIPS.as_bytes());
    let zipped_id = zipped["upload"]["id"].as_str().unwrap();
    let exported = as_partner(
        &app,
        reqwest::Method::GET,
        &format!("/v1/history/{zipped_id}/export"),
    )
    .await;
    assert_eq!(exported.bytes().await.unwrap(), gzipped.as_slice());

    let erased = as_partner(&app, reqwest::Method::DELETE, &format!("/v1/history/{id}")).await;
    assert_eq!(erased.status(), 200);
    let erased: Value = erased.json().await.unwrap();
    assert_eq!(erased, json!({"id": id, "trained_models": []}));
    let gone = as_partner(
        &app,
        reqwest::Method::GET,
        &format!("/v1/history/{id}/export"),
    )
    .await;
    assert_eq!(gone.status(), 404);
    let listed: Value = as_partner(&app, reqwest::Method::GET, "/v1/history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // Erased means gone from the disk too.
    let root = app.data_dir().join("uploads/demo");
    assert!(!root.join(&id).exists());
    assert!(root.join(zipped_id).exists());

    // Other roles do not touch histories.
    let carrier = app
        .client
        .get(format!("{}/v1/history", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(carrier.status(), 403);
}

#[tokio::test]
async fn one_bad_row_refuses_the_file_unless_asked_to_skip_it() {
    let app = spawn_app().await;
    let bad = with_bad_latitude_on_row(2);
    let (status, refused) = upload(&app, "", bad.clone().into_bytes()).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "invalid_history");
    assert_eq!(refused["problems"][0]["row"], 2);
    assert_eq!(refused["problems"][0]["column"], "origin_lat");
    let listed: Value = as_partner(&app, reqwest::Method::GET, "/v1/history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0, "nothing kept");
    assert_eq!(
        std::fs::read_dir(app.data_dir().join("uploads/demo"))
            .unwrap()
            .count(),
        0
    );

    let (status, kept) = upload(&app, "?on_error=skip", bad.into_bytes()).await;
    assert_eq!(status, 201, "{kept}");
    let rows = TRIPS.lines().count() - 1;
    assert_eq!(kept["upload"]["rows"], rows - 1);
    assert_eq!(kept["upload"]["skipped_rows"], 1);
    assert_eq!(kept["problems"][0]["row"], 2);
    let id = kept["upload"]["id"].as_str().unwrap();
    let exported = as_partner(
        &app,
        reqwest::Method::GET,
        &format!("/v1/history/{id}/export"),
    )
    .await;
    let text = exported.text().await.unwrap();
    assert_eq!(text.lines().count(), rows, "header and the good rows");
    assert!(!text.contains("95.0"));

    let (status, error) = upload(&app, "?on_error=maybe", TRIPS.as_bytes().to_vec()).await;
    assert_eq!((status, error["field"].as_str()), (400, Some("on_error")));
    let (status, error) = upload(&app, "", vec![0xff, 0xfe, 0x00, 0x80]).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("bad_payload")));
}

/// A few kilobytes of gzip that would become megabytes, and one record far longer than a trip:
/// both refused as soon as reading reaches the bound, with 413 and nothing kept.
#[tokio::test]
async fn a_gzip_bomb_and_an_endless_record_are_refused_at_their_bounds() {
    // Above the reader's own bound on a record, 1 MiB, so that a record can pass it.
    const BOUND: usize = 2 * 1024 * 1024;
    let app = spawn_app_with(|settings| {
        settings.api.max_upload_bytes = BOUND;
        settings.api.max_upload_decompressed_bytes = BOUND as u64;
    })
    .await;
    let mut lines = TRIPS.lines();
    let (header, row) = (lines.next().unwrap(), lines.next().unwrap());
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    writeln!(encoder, "{header}").unwrap();
    let mut decompressed = header.len() + 1;
    while decompressed <= 16 * BOUND {
        writeln!(encoder, "{row}").unwrap();
        decompressed += row.len() + 1;
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < BOUND / 4, "{} bytes of gzip", bomb.len());

    // How fast and in how little memory: benches/gzip-bomb.sh.
    let (status, refused) = upload(&app, "", bomb).await;
    assert_eq!(status, 413, "{refused}");
    assert_eq!(refused["code"], "payload_too_large");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("decompresses to more than {BOUND} bytes")),
        "{message}"
    );

    let endless = format!("{header}\nLIL-1,{}\n", "x".repeat(BOUND * 3 / 4));
    let (status, refused) = upload(&app, "", endless.into_bytes()).await;
    assert_eq!(status, 413, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("a CSV record is longer than 1048576 bytes"),
        "{refused}"
    );

    let listed: Value = as_partner(&app, reqwest::Method::GET, "/v1/history")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0, "nothing kept");
    let staged = std::fs::read_dir(app.data_dir().join("uploads/demo"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(staged, 0, "nothing left on the disk");
    // The bounds refuse what passes them, not what comes near.
    let (status, kept) = upload(&app, "", TRIPS.as_bytes().to_vec()).await;
    assert_eq!(status, 201, "{kept}");
}

#[tokio::test]
async fn consent_is_off_until_the_partner_gives_it() {
    let app = spawn_app().await;
    let me: Value = as_partner(&app, reqwest::Method::GET, "/v1/partners/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["pool"], false);
    for pool in [true, false, true] {
        let response = app
            .client
            .put(format!("{}/v1/partners/me/consent", app.address))
            .bearer_auth(&app.keys["partner"])
            .body(json!({"pool": pool}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let me: Value = response.json().await.unwrap();
        assert_eq!(me["pool"], pool);
    }
}

/// A kill -9 halfway through an upload's body leaves nothing visible after a restart, and
/// no file behind.
#[tokio::test]
async fn kill_9_mid_upload_leaves_no_partial_upload() {
    let data = tempfile::tempdir().unwrap();
    let server = RunningBinary::start(data.path(), &["--no-demo".as_ref()], &[]);
    let partner = crate::helpers::demo_keys(data.path())["partner"].clone();
    let body: String = std::iter::once(TRIPS.lines().next().unwrap().to_owned() + "\n")
        .chain((0..20_000).map(|n| {
            format!("T{n:06},rigid,48.85,2.35,45.76,4.84,2025-03-04T05:40:00+01:00,2025-03-04T13:40:00+01:00,470,0,0,5\n")
        }))
        .collect();
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "POST /v1/history HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {partner}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .unwrap();
    stream.flush().unwrap();
    // Let the first half reach the disk, then kill without warning.
    let staging = data.path().join("uploads/demo");
    for _ in 0..100 {
        let received: u64 = std::fs::read_dir(&staging)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|entry| std::fs::metadata(entry.path().join("received")).ok())
                    .map(|metadata| metadata.len())
                    .sum()
            })
            .unwrap_or(0);
        if received > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut server = server;
    server.child.kill().unwrap();
    let _ = server.child.wait();
    drop(stream);

    let restarted = RunningBinary::start(data.path(), &["--no-demo".as_ref()], &[]);
    let listed: Value = crate::helpers::json_of(
        restarted
            .client
            .get(format!("{}/v1/history", restarted.base))
            .bearer_auth(&partner),
    )
    .await;
    assert_eq!(listed, json!([]));
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "the staging directory is swept"
    );
}

async fn operator_json(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(&app.keys["operator"]);
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Trains and waits; the job as it ended.
async fn retrain(app: &TestApp) -> Value {
    retrain_with(app, "").await
}

async fn retrain_with(app: &TestApp, query: &str) -> Value {
    let (status, job) = operator_json(
        app,
        reqwest::Method::POST,
        &format!("/v1/models/train{query}"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let path = format!("/v1/models/jobs/{}", job["id"].as_str().unwrap());
    for _ in 0..1200 {
        let (_, job) = operator_json(app, reqwest::Method::GET, &path, None).await;
        if job["status"] != "running" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the training did not finish in two minutes");
}

/// A new organisation and one key of its with these roles.
async fn organisation_with_key(app: &TestApp, id: &str, roles: &[&str]) -> String {
    let (status, _) = operator_json(
        app,
        reqwest::Method::POST,
        "/v1/organisations",
        Some(json!({"id": id, "name": id})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, issued) = operator_json(
        app,
        reqwest::Method::POST,
        &format!("/v1/organisations/{id}/keys"),
        Some(json!({"name": "key", "roles": roles})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    issued["key"].as_str().unwrap().to_owned()
}

/// Uploads a sample carrier's trips as the key's organisation and sets its consent.
async fn upload_sample(app: &TestApp, key: &str, carrier: &str, pool: bool) -> String {
    let body = std::fs::read(format!(
        "{}/data/sample/{carrier}/trips.parquet",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let response = app
        .client
        .post(format!("{}/v1/history", app.address))
        .bearer_auth(key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let uploaded: Value = response.json().await.unwrap();
    assert_eq!(uploaded["upload"]["format"], "parquet");
    set_consent(app, key, pool).await;
    uploaded["upload"]["id"].as_str().unwrap().to_owned()
}

/// Gives or withdraws the key's organisation's consent to pool.
async fn set_consent(app: &TestApp, key: &str, pool: bool) {
    let consent = app
        .client
        .put(format!("{}/v1/partners/me/consent", app.address))
        .bearer_auth(key)
        .body(json!({"pool": pool}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 200);
}

async fn report_of(app: &TestApp, key: &str) -> Value {
    app.client
        .get(format!("{}/v1/partners/me/report", app.address))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The version that answers an ETA for the key's organisation.
async fn serving_version(app: &TestApp, key: &str) -> Value {
    let eta: Value = crate::helpers::json_of(
        app.client
            .post(format!("{}/v1/eta", app.address))
            .bearer_auth(key)
            .body(
                crate::helpers::lille_to_marseille("2026-12-01T08:00:00+01:00", "articulated")
                    .to_string(),
            ),
    )
    .await;
    eta["model"]["version"].clone()
}

fn card(app: &TestApp, job: &Value) -> Value {
    let path = app
        .data_dir()
        .join("models")
        .join(job["id"].as_str().unwrap())
        .join("model.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn partners_of(card: &Value) -> Vec<String> {
    let mut partners: Vec<String> = card["training"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|source| source["partner"].as_str().unwrap().to_owned())
        .collect();
    partners.dedup();
    partners
}

#[tokio::test]
async fn pooled_retraining_takes_consenting_partners_only_and_forgets_erased_uploads() {
    let app = spawn_app().await;
    let other = organisation_with_key(&app, "other", &["partner", "carrier"]).await;
    let ours = app.keys["partner"].clone();
    let upload_ids = [
        upload_sample(&app, &ours, "carrier-07", true).await,
        upload_sample(&app, &other, "carrier-08", true).await,
    ];
    // A third never pools: its rows train a model of its own, never the pool.
    let solo = organisation_with_key(&app, "solo", &["partner", "carrier"]).await;
    upload_sample(&app, &solo, "carrier-05", false).await;

    let first = retrain(&app).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(
        (first["partners"].as_u64(), first["uploads"].as_u64()),
        (Some(2), Some(2))
    );
    let first_card = card(&app, &first);
    assert_eq!(partners_of(&first_card), ["demo", "other"]);
    // Each partner sees its own figures against its own-only model and the rules, by vehicle
    // class and horizon, and only counts about the pool.
    let report = report_of(&app, &ours).await;
    assert_eq!(report["model_version"], first["version"], "{report}");
    assert_eq!(report["pool"]["partners"], 2);
    for estimator in ["pooled", "own", "rules"] {
        let figures = &report["own_trips"]["compared"][estimator];
        assert!(figures["mae"].as_f64().unwrap() > 0.0, "{report}");
        assert!(figures["within_30"].as_f64().is_some(), "{report}");
    }
    assert!(report["own_trips"]["compared"]["own"]["coverage"]
        .as_f64()
        .is_some());
    assert!(
        report["own_trips"]["by_vehicle_class"]
            .as_object()
            .unwrap()
            .len()
            >= 2
    );
    assert!(report["own_trips"]["by_horizon"]["at departure"]["pooled"]["mae"].is_number());
    assert!(
        !report.to_string().contains("other"),
        "nothing about the other partner but counts"
    );
    // Better than the rules that served before on the trips it held out: it serves now.
    let holdout = &first["holdout"];
    assert_eq!(holdout["served"], "rules", "{first}");
    assert!(
        holdout["new_mae"].as_f64() < holdout["served_mae"].as_f64(),
        "{first}"
    );
    assert_eq!(first["activated"], true, "{first}");
    let (_, models) = operator_json(&app, reqwest::Method::GET, "/v1/models", None).await;
    assert_eq!(models[0]["partners"], 2);
    assert_eq!(models[0]["active"], true);
    // Its figures: the holdout it was judged on, and the time split of its evaluation.
    assert_eq!(
        models[0]["figures"]["holdout"]["new_mae"],
        holdout["new_mae"]
    );
    assert!(
        models[0]["figures"]["time_split"]["coverage"].is_number(),
        "{models}"
    );
    assert_eq!(
        serving_version(&app, &app.keys["carrier"]).await,
        first["version"]
    );

    // A model of one boosting round is worse on its holdout: listed, not served.
    let weak = retrain_with(&app, "?rounds=1").await;
    assert_eq!(weak["status"], "succeeded", "{weak}");
    assert_eq!(weak["activated"], false, "{weak}");
    assert_eq!(weak["holdout"]["served"], first["version"]);
    assert!(weak["holdout"]["new_mae"].as_f64() > weak["holdout"]["served_mae"].as_f64());
    assert!(
        weak["holdout"]["refused"][0]
            .as_str()
            .is_some_and(|reason| reason.contains("pool's held-out MAE would rise")),
        "{weak}"
    );
    assert_eq!(
        serving_version(&app, &app.keys["carrier"]).await,
        first["version"]
    );
    let (status, _) = operator_json(
        &app,
        reqwest::Method::POST,
        "/v1/models/train?rounds=0",
        None,
    )
    .await;
    assert_eq!(status, 400);

    // The other partner withdraws: the next model has none of its rows.
    set_consent(&app, &other, false).await;
    let second = retrain(&app).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let second_card = card(&app, &second);
    assert_eq!(partners_of(&second_card), ["demo"]);
    // The partner that no longer pools gets a model of its own rows; it serves its trips if
    // it beats, on its holdout, the pooled model that serves them now.
    let own_model = second["own_models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|model| model["holdout"]["served"] == first["version"])
        .expect("judged against the pooled model serving it")
        .clone();
    let (_, models) = operator_json(&app, reqwest::Method::GET, "/v1/models", None).await;
    let own = models
        .as_array()
        .unwrap()
        .iter()
        .find(|model| model["version"] == own_model["version"])
        .expect("a model of its own is listed")
        .clone();
    assert_eq!(
        (own["owner"].as_str(), own["partners"].as_u64()),
        (Some("other"), Some(1))
    );
    // It serves when the judge found nothing against it, which needs it no worse than what
    // served.
    let better =
        own_model["holdout"]["new_mae"].as_f64() <= own_model["holdout"]["served_mae"].as_f64();
    let cleared = own_model["holdout"]["refused"]
        .as_array()
        .unwrap()
        .is_empty();
    assert_eq!(own_model["activated"], cleared, "{own_model}");
    assert!(better || !cleared, "{own_model}");
    // Otherwise the pooled model serves it: this job's when it won, the first one's if not.
    let expected = match (cleared, second["activated"] == true) {
        (true, _) => &own_model["version"],
        (false, true) => &second["version"],
        (false, false) => &first["version"],
    };
    assert_eq!(&serving_version(&app, &other).await, expected);
    let (status, _) = operator_json(
        &app,
        reqwest::Method::POST,
        &format!("/v1/models/{}/activate", own["version"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        status, 409,
        "a model of one partner's own does not serve the others"
    );
    assert_ne!(
        first_card["training"]["fingerprint"],
        second_card["training"]["fingerprint"]
    );
    assert!(second_card["training"]["rows"].as_u64() < first_card["training"]["rows"].as_u64());

    // Erasing ours names both models that learnt from it; the next training has nothing left.
    let erased: Value = crate::helpers::json_of(
        app.client
            .delete(format!("{}/v1/history/{}", app.address, upload_ids[0]))
            .bearer_auth(&ours),
    )
    .await;
    let mut trained: Vec<&str> = erased["trained_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|version| version.as_str().unwrap())
        .collect();
    trained.sort_unstable();
    let mut expected = [
        first["version"].as_str().unwrap(),
        weak["version"].as_str().unwrap(),
        second["version"].as_str().unwrap(),
    ];
    expected.sort_unstable();
    assert_eq!(trained, expected);
    let third = retrain(&app).await;
    assert_eq!(third["status"], "succeeded", "{third}");
    assert_eq!(
        third["own_models"].as_array().unwrap().len(),
        2,
        "other and solo"
    );
    assert_eq!(third["version"], Value::Null, "no pool left to train");
    assert!(
        third["notes"][0]
            .as_str()
            .unwrap()
            .contains("no consenting partner"),
        "{third}"
    );
}

/// The value of pooling for the partners with the fewest trips: a large carrier and two small
/// ones pool; each small one's report shows the pooled model closer to the truth on its own
/// later trips than a model of its rows alone.
#[tokio::test]
async fn the_smallest_partners_gain_from_the_pool() {
    let app = spawn_app().await;
    upload_sample(&app, &app.keys["partner"], "carrier-02", true).await;
    let mut small = Vec::new();
    for (organisation, carrier) in [("small-a", "carrier-06"), ("small-b", "carrier-08")] {
        let key = organisation_with_key(&app, organisation, &["partner"]).await;
        upload_sample(&app, &key, carrier, true).await;
        small.push(key);
    }
    let job = retrain(&app).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    for key in &small {
        let report = report_of(&app, key).await;
        let own = &report["own_trips"];
        let (pooled, alone) = (
            own["compared"]["pooled"]["mae"].as_f64().unwrap(),
            own["compared"]["own"]["mae"].as_f64().unwrap(),
        );
        assert!(
            pooled < alone,
            "pooled {pooled:.1} against own-only {alone:.1}: {report}"
        );
        assert!(own["gain_percent"].as_f64().unwrap() > 0.0, "{report}");
        assert!(
            own["own_training_trips"].as_u64().unwrap() < 1_000,
            "{report}"
        );
        assert_eq!(report["pool"]["partners"], 3);
    }
}

/// Uploads carrier-08's trips through a running binary with a partner key, and pools them.
async fn pool_a_sample(base: &str, key: &str) {
    let partner = crate::helpers::client_with_key(key);
    let trips = std::fs::read(format!(
        "{}/data/sample/carrier-08/trips.parquet",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let uploaded = partner
        .post(format!("{base}/v1/history"))
        .body(trips)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let consent = partner
        .put(format!("{base}/v1/partners/me/consent"))
        .body(json!({"pool": true}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 200);
}

/// With a schedule, uploads and consents that changed are trained on without anyone asking;
/// the model that won its holdout still serves after a restart.
#[tokio::test]
async fn a_scheduled_training_serves_its_model_and_a_restart_keeps_it() {
    let data = tempfile::tempdir().unwrap();
    let no_model = [("ETAPE__MODEL__DIR", "target/tmp/no-model-here")];
    let scheduled = [no_model[0], ("ETAPE__MODEL__RETRAIN_EVERY_SECS", "1")];
    let server = RunningBinary::start(data.path(), &["--no-demo".as_ref()], &scheduled);
    let keys = crate::helpers::demo_keys(data.path());
    pool_a_sample(&server.base, &keys["partner"]).await;

    let operator = crate::helpers::client_with_key(&keys["operator"]);
    let mut served = None;
    for _ in 0..1200 {
        let models =
            crate::helpers::json_of(operator.get(format!("{}/v1/models", server.base))).await;
        served = models
            .as_array()
            .unwrap()
            .iter()
            .find(|model| model["active"] == true)
            .map(|model| model["version"].clone());
        if served.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let served = served.expect("the scheduled training served a model within two minutes");
    let carrier = keys["carrier"].clone();
    let eta_version = |base: String| {
        let carrier = carrier.clone();
        async move {
            let eta = crate::helpers::json_of(
                crate::helpers::client_with_key(&carrier)
                    .post(format!("{base}/v1/eta"))
                    .body(
                        crate::helpers::lille_to_marseille("2026-12-01T08:00:00+01:00", "rigid")
                            .to_string(),
                    ),
            )
            .await;
            eta["model"]["version"].clone()
        }
    };
    assert_eq!(eta_version(server.base.clone()).await, served);
    drop(server);

    let restarted = RunningBinary::start(data.path(), &["--no-demo".as_ref()], &no_model);
    assert_eq!(eta_version(restarted.base.clone()).await, served);
    drop(restarted);

    // The command line trains the same way and judges against what serves: one boosting
    // round does not beat it.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_etape"))
        .args(["retrain", "--rounds", "1", "--data-dir"])
        .arg(data.path())
        .env(no_model[0].0, no_model[0].1)
        .envs(crate::helpers::store_url(data.path()).map(|url| ("ETAPE__STORAGE__URL", url)))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let job: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["holdout"]["served"], served);
    assert_eq!(job["activated"], false, "{job}");
}

/// The poisoning of a pool: a new organisation uploads 10,000 copies of one Lille to Marseille
/// trip, consents, and a training follows. The screen leaves the upload out and the job says
/// why; the pool trains on the honest partner alone.
#[tokio::test]
async fn ten_thousand_copies_of_one_trip_never_reach_the_pooled_model_and_the_job_says_why() {
    let app = spawn_app().await;
    upload_sample(&app, &app.keys["partner"].clone(), "carrier-08", true).await;
    let poisoner = organisation_with_key(&app, "poisoner", &["partner", "carrier"]).await;
    let mut csv = String::from(
        "trip_id,vehicle_class,origin_lat,origin_lon,destination_lat,destination_lon,\
         departure_time,arrival_time\n",
    );
    for trip in 0..10_000 {
        csv.push_str(&format!(
            "P-{trip},articulated,50.6292,3.0573,43.2965,5.3698,\
             2026-10-01T08:00:00+02:00,2026-10-01T15:42:00+02:00\n"
        ));
    }
    let uploaded = app
        .client
        .post(format!("{}/v1/history", app.address))
        .bearer_auth(&poisoner)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    set_consent(&app, &poisoner, true).await;

    let job = retrain(&app).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let screened = job["screened_out"].as_array().unwrap();
    assert_eq!(screened.len(), 1, "{job}");
    assert_eq!(screened[0]["organisation"], "poisoner");
    let problems = screened[0]["problems"].to_string();
    assert!(
        problems.contains("9999 of 10000 trips repeat another"),
        "{problems}"
    );
    assert!(problems.contains("take exactly 462 minutes"), "{problems}");
    assert_eq!(partners_of(&card(&app, &job)), ["demo"]);
    // Judged partner by partner, and against plain LightGBM, on the honest partner's latest
    // trips.
    let holdout = &job["holdout"];
    assert_eq!(holdout["partners"].as_array().unwrap().len(), 1, "{job}");
    assert_eq!(holdout["partners"][0]["partner"], "demo");
    assert!(holdout["baseline_mae"].as_f64().unwrap() > 0.0, "{job}");
    assert_eq!(
        job["activated"],
        holdout["refused"].as_array().unwrap().is_empty(),
        "{job}"
    );
}

/// The data directory holds the database (webhook secrets among its records), partners' trips
/// and the keys' pepper: after an upload and a batch of pings, every file in it is the
/// service's user's alone (0600), and every directory (0700), whatever the umask it was
/// started with.
#[cfg(unix)]
#[tokio::test]
async fn every_file_and_directory_the_service_writes_is_its_users_alone() {
    let data = tempfile::tempdir().unwrap();
    let server = RunningBinary::start(data.path(), &["--no-demo".as_ref()], &[]);
    let partner = crate::helpers::demo_keys(data.path())["partner"].clone();
    let uploaded = server
        .client
        .post(format!("{}/v1/history", server.base))
        .bearer_auth(&partner)
        .header("content-type", "text/csv")
        .body(TRIPS)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let ping = json!({"vehicle_id": "FR-1", "lat": 48.85, "lon": 2.35, "speed_kmh": 50.0,
        "timestamp": (chrono::Utc::now() - chrono::TimeDelta::minutes(1)).to_rfc3339()});
    let pinged = server
        .client
        .post(format!("{}/v1/positions", server.base))
        .header("content-type", "application/x-ndjson")
        .body(format!("{ping}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(pinged.status(), 200);
    assert!(data.path().join("uploads/demo").is_dir());
    if crate::helpers::store_url(data.path()).is_none() {
        assert!(data.path().join("etape.sqlite").exists());
        assert!(data.path().join("etape.sqlite-wal").exists());
    }
    let loose = crate::helpers::not_private(data.path());
    assert!(loose.is_empty(), "readable by others: {loose:?}");
}

async fn start_training(operator: &reqwest::Client, base: &str, query: &str) -> String {
    let response = operator
        .post(format!("{base}/v1/models/train{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

async fn job_of(operator: &reqwest::Client, base: &str, id: &str) -> (u16, Value) {
    let response = operator
        .get(format!("{base}/v1/models/jobs/{id}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Training jobs outlive the process that ran them: a finished one reads back as it ended
/// after a restart, and one cut short by SIGKILL while its boosters learnt answers `failed`,
/// with nothing of its model left in the data directory (not even the staging directory a
/// kill while it was written would have left).
#[tokio::test]
async fn a_training_killed_midway_is_failed_after_a_restart_and_a_finished_one_still_answers() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--no-demo".as_ref()];
    let env = [("ETAPE__MODEL__DIR", "target/tmp/no-model-here")];
    let server = RunningBinary::start(data.path(), &args, &env);
    let keys = crate::helpers::demo_keys(data.path());
    let partner = crate::helpers::client_with_key(&keys["partner"]);
    let operator = crate::helpers::client_with_key(&keys["operator"]);
    let trips = std::fs::read(format!(
        "{}/data/sample/carrier-08/trips.parquet",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let uploaded = partner
        .post(format!("{}/v1/history", server.base))
        .body(trips)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);
    let consent = partner
        .put(format!("{}/v1/partners/me/consent", server.base))
        .body(json!({"pool": true}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 200);

    let finished_id = start_training(&operator, &server.base, "?rounds=5").await;
    let mut finished = Value::Null;
    for _ in 0..1200 {
        let (status, job) = job_of(&operator, &server.base, &finished_id).await;
        assert_eq!(status, 200, "{job}");
        if job["status"] != "running" {
            finished = job;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(finished["status"], "succeeded", "{finished}");

    let cut_id = start_training(&operator, &server.base, "?rounds=2000").await;
    let mut learning = false;
    for _ in 0..1200 {
        let (_, job) = job_of(&operator, &server.base, &cut_id).await;
        assert_eq!(job["status"], "running", "{job}");
        if job["rounds_done"].as_u64().unwrap() > 0 {
            learning = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(learning, "the boosters did not start within two minutes");
    let mut server = server;
    server.child.kill().unwrap();
    let _ = server.child.wait();
    // What a kill while the model was being written leaves beside its place.
    let staging = data
        .path()
        .join("models")
        .join(format!(".{cut_id}.partial-4242"));
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("p50.txt"), "half a booster").unwrap();

    let restarted = RunningBinary::start(data.path(), &args, &env);
    let (status, cut) = job_of(&operator, &restarted.base, &cut_id).await;
    assert_eq!(status, 200, "{cut}");
    assert_eq!(cut["status"], "failed", "{cut}");
    assert_eq!(
        cut["error"], "the service stopped before the job finished",
        "{cut}"
    );
    assert!(cut["finished_at"].is_string(), "{cut}");
    let left: Vec<String> = std::fs::read_dir(data.path().join("models"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(&cut_id))
        .collect();
    assert!(left.is_empty(), "left of the job cut short: {left:?}");
    let (status, again) = job_of(&operator, &restarted.base, &finished_id).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, finished, "the finished job reads back as it ended");
    assert!(
        data.path().join("models").join(&finished_id).is_dir(),
        "the finished job's model stays"
    );
    let (status, _) = job_of(&operator, &restarted.base, "job_unknown").await;
    assert_eq!(status, 404);
    #[cfg(unix)]
    {
        let loose = crate::helpers::not_private(data.path());
        assert!(loose.is_empty(), "readable by others: {loose:?}");
    }
}
