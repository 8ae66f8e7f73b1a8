//! Partners' uploads and consent, through the real server.

use std::io::Write;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, RunningBinary, TestApp};

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
    let listed: Value = restarted
        .client
        .get(format!("{}/v1/history", restarted.base))
        .bearer_auth(&partner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "the staging directory is swept"
    );
}

async fn admin_json(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(&app.keys["admin"]);
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Trains and waits; the job as it ended.
async fn retrain(app: &TestApp) -> Value {
    let (status, job) = admin_json(app, reqwest::Method::POST, "/v1/models/train", None).await;
    assert_eq!(status, 202, "{job}");
    let path = format!("/v1/models/jobs/{}", job["id"].as_str().unwrap());
    for _ in 0..1200 {
        let (_, job) = admin_json(app, reqwest::Method::GET, &path, None).await;
        if job["status"] != "running" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the training did not finish in two minutes");
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
    let (status, _) = admin_json(
        &app,
        reqwest::Method::POST,
        "/v1/organisations",
        Some(json!({"id": "other", "name": "Other"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, issued) = admin_json(
        &app,
        reqwest::Method::POST,
        "/v1/organisations/other/keys",
        Some(json!({"name": "history", "roles": ["partner"]})),
    )
    .await;
    let other = issued["key"].as_str().unwrap().to_owned();
    let ours = app.keys["partner"].clone();
    let sample = |carrier: &str| {
        std::fs::read(format!(
            "{}/data/sample/{carrier}/trips.parquet",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let mut upload_ids = Vec::new();
    for (key, carrier) in [(&ours, "carrier-07"), (&other, "carrier-08")] {
        let response = app
            .client
            .post(format!("{}/v1/history", app.address))
            .bearer_auth(key)
            .body(sample(carrier))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let uploaded: Value = response.json().await.unwrap();
        assert_eq!(uploaded["upload"]["format"], "parquet");
        upload_ids.push(uploaded["upload"]["id"].as_str().unwrap().to_owned());
        let consent = app
            .client
            .put(format!("{}/v1/partners/me/consent", app.address))
            .bearer_auth(key)
            .body(json!({"pool": true}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(consent.status(), 200);
    }

    let first = retrain(&app).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(
        (first["partners"].as_u64(), first["uploads"].as_u64()),
        (Some(2), Some(2))
    );
    let first_card = card(&app, &first);
    assert_eq!(partners_of(&first_card), ["demo", "other"]);
    // Each partner sees its own figures, and only counts about the pool.
    let report: Value = app
        .client
        .get(format!("{}/v1/partners/me/report", app.address))
        .bearer_auth(&ours)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["model_version"], first["version"], "{report}");
    assert_eq!(report["pool"]["partners"], 2);
    assert!(
        report["own_trips"]["pooled"]["mae"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["own_trips"]["own_only_mae"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        !report.to_string().contains("other"),
        "nothing about the other partner but counts"
    );
    let (_, models) = admin_json(&app, reqwest::Method::GET, "/v1/models", None).await;
    assert_eq!(models[0]["partners"], 2);
    assert_eq!(
        models[0]["active"], false,
        "listed, not served until activated"
    );

    // The other partner withdraws: the next model has none of its rows.
    let withdrawn = app
        .client
        .put(format!("{}/v1/partners/me/consent", app.address))
        .bearer_auth(&other)
        .body(json!({"pool": false}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), 200);
    let second = retrain(&app).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let second_card = card(&app, &second);
    assert_eq!(partners_of(&second_card), ["demo"]);
    assert_ne!(
        first_card["training"]["fingerprint"],
        second_card["training"]["fingerprint"]
    );
    assert!(second_card["training"]["rows"].as_u64() < first_card["training"]["rows"].as_u64());

    // Erasing ours names both models that learnt from it; the next training has nothing left.
    let erased: Value = app
        .client
        .delete(format!("{}/v1/history/{}", app.address, upload_ids[0]))
        .bearer_auth(&ours)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut trained: Vec<&str> = erased["trained_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|version| version.as_str().unwrap())
        .collect();
    trained.sort_unstable();
    let mut expected = [
        first["version"].as_str().unwrap(),
        second["version"].as_str().unwrap(),
    ];
    expected.sort_unstable();
    assert_eq!(trained, expected);
    let third = retrain(&app).await;
    assert_eq!(third["status"], "failed");
    assert!(
        third["error"]
            .as_str()
            .unwrap()
            .contains("no consenting partner"),
        "{third}"
    );
}
