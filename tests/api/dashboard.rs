//! The dashboard: served by the service itself, every asset from the binary, signed in with a
//! dispatcher key; and drawn by a real browser (headless Chromium) on the demo fleet.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{artifact_path, spawn_app, RunningBinary};

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/outline.json", "application/json"),
    ] {
        let response = client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }
    let outline: Value = client
        .get(format!("{}/assets/outline.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outline["countries"][0]["code"], "FR");
    assert!(outline["source"]
        .as_str()
        .unwrap()
        .contains("public domain"));
    // No demo fleet, no demo login.
    let demo = client
        .get(format!("{}/dashboard/demo-login", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(demo.status(), 404);
}

/// Headless Chromium, as `scripts/test` installs it; without it (a plain `cargo test`) the
/// browser test says so loudly and skips, unless `ETAPE_REQUIRE_BROWSER` is set.
fn chromium() -> Option<&'static str> {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(candidate).exists() {
            return Some(candidate);
        }
    }
    assert!(
        std::env::var_os("ETAPE_REQUIRE_BROWSER").is_none(),
        "Chromium is required (scripts/test installs it)"
    );
    eprintln!("\n!!!!!!!!!! SKIPPED the browser test: no Chromium (scripts/test installs it) !!!!!!!!!!\n");
    None
}

/// The page after its scripts ran for `budget_ms` of virtual time, as Chromium's DOM, and a
/// screenshot of it.
fn render(browser: &str, url: &str, language: &str, budget_ms: u32, screenshot: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let common = |command: &mut Command| {
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--window-size=1400,1000",
            ])
            .arg(format!("--accept-lang={language}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--virtual-time-budget={budget_ms}"));
    };
    let mut dump = Command::new(browser);
    common(&mut dump);
    let output = dump.arg("--dump-dom").arg(url).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut shot = Command::new(browser);
    common(&mut shot);
    let path = artifact_path(screenshot);
    let _ = shot
        .arg(format!("--screenshot={}", path.display()))
        .arg(url)
        .output();
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_browser_shows_the_demo_fleet_on_the_map_in_either_language() {
    let Some(browser) = chromium() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = RunningBinary::start(data.path(), &[], &[("ETAPE__DEMO__TRUCKS", "4")]);
    // The demo's trucks are on the road within seconds.
    for _ in 0..100 {
        let page: Value = server.get_json("/v1/shipments?status=in_transit").await;
        if page["items"].as_array().unwrap().len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let url = format!("{}/?demo", server.base);
    let (english, french) = {
        let (url_en, url_fr) = (url.clone(), url.clone());
        let english = tokio::task::spawn_blocking(move || {
            render(browser, &url_en, "en-GB", 8_000, "dashboard-en.png")
        });
        let french = tokio::task::spawn_blocking(move || {
            render(browser, &url_fr, "fr-FR", 8_000, "dashboard-fr.png")
        });
        (english.await.unwrap(), french.await.unwrap())
    };
    for dom in [&english, &french] {
        // Four trucks in the fleet table and on the map, over the outline of France.
        assert_eq!(dom.matches("<tr tabindex=\"0\"").count(), 4, "{dom}");
        assert!(dom.contains("DEMO-00"), "{dom}");
        assert!(dom.contains("class=\"country FR\""));
        assert_eq!(dom.matches("class=\"truck ").count(), 4);
    }
    assert!(english.contains("<html lang=\"en\"") && english.contains(">Next stop<"));
    assert!(french.contains("<html lang=\"fr\"") && french.contains(">Prochain arrêt<"));
}

/// The operations panel's figures are the caller's organisation's: its pings, its shipments,
/// the model serving it; another organisation sees none of them.
#[tokio::test]
async fn operations_count_the_callers_pings_and_shipments_only() {
    let app = spawn_app().await;
    let now = chrono::DateTime::parse_from_rfc3339(crate::helpers::TEST_NOW).unwrap();
    let pings: String = (0..3)
        .map(|minute| {
            serde_json::json!({"vehicle_id": "FR-1", "lat": 48.85, "lon": 2.35 + 0.01 * f64::from(minute),
                "timestamp": (now - chrono::TimeDelta::minutes(10 - i64::from(minute))).to_rfc3339(),
                "speed_kmh": 50.0})
            .to_string()
                + "\n"
        })
        .collect();
    let response = app
        .client
        .post(format!("{}/v1/positions", app.address))
        .header("content-type", "application/x-ndjson")
        .body(pings)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = app
        .post_json(
            "/v1/shipments",
            &serde_json::json!({"reference": "OPS-1", "vehicle_id": "FR-1", "vehicle_class": "van",
                "stops": [{"id": "a", "lat": 48.9, "lon": 2.4}], "planned_departure": crate::helpers::TEST_NOW}),
        )
        .await;
    assert_eq!(status, 201);
    let dispatcher = crate::helpers::client_with_key(&app.keys["dispatcher"]);
    let ours: Value =
        crate::helpers::json_of(dispatcher.get(format!("{}/v1/operations", app.address))).await;
    assert_eq!(ours["pings_received"], 3, "{ours}");
    assert_eq!(
        ours["shipments_in_transit"].as_u64().unwrap()
            + ours["shipments_planned"].as_u64().unwrap(),
        1
    );
    assert_eq!(ours["model_version"], "rules");
    assert_eq!(ours["feeds"], serde_json::json!([]));

    let admin = crate::helpers::client_with_key(&app.keys["admin"]);
    let created = admin
        .post(format!("{}/v1/organisations", app.address))
        .body(serde_json::json!({"id": "other", "name": "Other"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let issued: Value = crate::helpers::json_of(
        admin
            .post(format!("{}/v1/organisations/other/keys", app.address))
            .body(serde_json::json!({"name": "desk", "roles": ["dispatcher"]}).to_string()),
    )
    .await;
    let theirs: Value = crate::helpers::json_of(
        crate::helpers::client_with_key(issued["key"].as_str().unwrap())
            .get(format!("{}/v1/operations", app.address)),
    )
    .await;
    assert_eq!(theirs["pings_received"], 0, "{theirs}");
    assert_eq!(theirs["shipments_in_transit"], 0);
    assert_eq!(theirs["shipments_planned"], 0);
    let anonymous = reqwest::Client::new()
        .get(format!("{}/v1/operations", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
