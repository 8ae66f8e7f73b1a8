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
        ("/assets/track.js", "text/javascript"),
        ("/assets/leaflet/leaflet.js", "text/javascript"),
        ("/assets/leaflet/leaflet.css", "text/css"),
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
    let page_settings: Value = client
        .get(format!("{}/dashboard/settings", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page_settings["tile_url"], "", "offline by default");
    assert_eq!(page_settings["slip_alert_minutes"], 30);
    assert_eq!(page_settings["silent_alert_minutes"], 30);
    // The page runs its own scripts only and talks to this service only.
    let page = client
        .get(format!("{}/", app.address))
        .send()
        .await
        .unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    let leaflet = client
        .get(format!("{}/assets/leaflet/leaflet.js", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        leaflet.starts_with("/* @preserve\n * Leaflet 1.9.4"),
        "the vendored Leaflet"
    );
    // No demo fleet, no demo login.
    let demo = client
        .get(format!("{}/dashboard/demo-login", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(demo.status(), 404);
}

/// The demo login hands out a dispatcher's key: only to a browser on the machine itself. With
/// the demo on but listening on every interface, the service has no such login.
#[tokio::test]
async fn the_demo_login_is_offered_on_a_loopback_address_only() {
    let env = [("ETAPE__DEMO__TRUCKS", "1")];
    let local_data = tempfile::tempdir().unwrap();
    let local = RunningBinary::start(local_data.path(), &[], &env);
    let login = local
        .client
        .get(format!("{}/dashboard/demo-login", local.base))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let login: Value = login.json().await.unwrap();
    assert_eq!(
        login["key"],
        crate::helpers::demo_keys(local_data.path())["dispatcher"].as_str()
    );
    drop(local);

    let open_data = tempfile::tempdir().unwrap();
    let open = RunningBinary::start_bound("0.0.0.0:0", open_data.path(), &[], &env);
    let login = open
        .client
        .get(format!("{}/dashboard/demo-login", open.base))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 404);
    let page = open
        .client
        .get(format!("{}/", open.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the dashboard itself still serves");
}

/// Headless Chromium, as `scripts/test` installs it; without it (a plain `cargo test`) the
/// browser test says so loudly and skips, unless `ETAPE_REQUIRE_BROWSER` is set.
pub(crate) fn chromium() -> Option<&'static str> {
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

/// Headless Chromium as the dashboard's tests start it: no background traffic, a fresh
/// profile, the language asked.
fn chromium_command(browser: &str, profile: &std::path::Path, language: &str) -> Command {
    let mut command = Command::new(browser);
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
        .arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// The page after its scripts ran for `budget_ms` of virtual time, as Chromium's DOM, and a
/// screenshot of it.
fn render(browser: &str, url: &str, language: &str, budget_ms: u32, screenshot: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let budget = format!("--virtual-time-budget={budget_ms}");
    let output = chromium_command(browser, profile.path(), language)
        .arg(&budget)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = artifact_path(screenshot);
    let _ = chromium_command(browser, profile.path(), language)
        .arg(&budget)
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
    // A tile server that does not answer: the page still draws the outline over the tiles'
    // places, and the tiles' addresses are in the map.
    let server = RunningBinary::start(
        data.path(),
        &[],
        &[
            ("ETAPE__DEMO__TRUCKS", "4"),
            (
                "ETAPE__DASHBOARD__TILE_URL",
                "http://127.0.0.1:9/{z}/{x}/{y}.png",
            ),
        ],
    );
    // The demo's trucks are on the road within seconds.
    for _ in 0..100 {
        let page: Value = server.get_json("/v1/shipments?status=in_transit").await;
        if page["items"].as_array().unwrap().len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Polling, not the stream: Chromium's virtual time stands still while a request is open,
    // so a page reading the stream would never reach its budget.
    let url = format!("{}/?demo&poll", server.base);
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
        // Four trucks in the fleet table and on the map (alone or clustered), over the
        // outline of France that Leaflet draws.
        assert_eq!(dom.matches("<tr tabindex=\"0\"").count(), 4, "{dom}");
        assert!(dom.contains("DEMO-00"), "{dom}");
        assert!(dom.contains("class=\"country FR\""), "{dom}");
        assert!(dom.contains("data-trucks-on-map=\"4\""), "{dom}");
        assert!(
            dom.contains("class=\"leaflet-marker-icon truck-icon"),
            "{dom}"
        );
    }
    assert!(english.contains("<html lang=\"en\"") && english.contains(">Next stop<"));
    // Leaflet's tiles, from the tile server set, under the outline.
    assert!(
        english.contains("src=\"http://127.0.0.1:9/") && english.contains("leaflet-tile"),
        "{english}"
    );
    assert!(english.contains("over-tiles"));
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

    let operator = crate::helpers::client_with_key(&app.keys["operator"]);
    let created = operator
        .post(format!("{}/v1/organisations", app.address))
        .body(serde_json::json!({"id": "other", "name": "Other"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let issued: Value = crate::helpers::json_of(
        operator
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

/// axe-core 4.14.1 from the npm registry (MPL-2.0, `assets/axe-LICENSE`): in the tests only,
/// never in the binary.
const AXE: &str = include_str!("assets/axe.min.js");

/// A GET to Chromium's DevTools HTTP endpoint, which keeps the connection open: the body is
/// read by its length.
fn devtools_get(port: u16, path: &str) -> String {
    use std::io::{BufRead, Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    );
    let mut reader = std::io::BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    String::from_utf8_lossy(&body).into_owned()
}

/// A page in headless Chromium, driven over the DevTools protocol.
pub(crate) struct Driven {
    browser: std::process::Child,
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Driven {
    pub(crate) fn open(browser: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let child = chromium_command(browser, profile.path(), "en-GB")
            .arg("--remote-debugging-port=0")
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Chromium writes the port it chose into the profile.
        let active = profile.path().join("DevToolsActivePort");
        let mut port = None;
        for _ in 0..100 {
            if let Ok(text) = std::fs::read_to_string(&active) {
                port = text
                    .lines()
                    .next()
                    .and_then(|line| line.parse::<u16>().ok());
                if port.is_some() {
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let port = port.expect("Chromium opens its DevTools port");
        let mut page = None;
        for _ in 0..50 {
            let list: Value =
                serde_json::from_str(&devtools_get(port, "/json/list")).unwrap_or(Value::Null);
            page = list
                .as_array()
                .and_then(|targets| targets.iter().find(|target| target["type"] == "page"))
                .and_then(|target| target["webSocketDebuggerUrl"].as_str())
                .map(str::to_owned);
            if page.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let (socket, _) = tungstenite::connect(page.expect("a page target")).unwrap();
        Self {
            browser: child,
            socket,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a DevTools command and returns its result, skipping the events in between.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = serde_json::json!({"id": id, "method": method, "params": params});
        self.socket
            .send(tungstenite::Message::text(message.to_string()))
            .unwrap();
        loop {
            let reply = self.socket.read().unwrap();
            if let Ok(text) = reply.to_text() {
                let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                if value["id"] == id {
                    return value["result"].clone();
                }
            }
        }
    }

    pub(crate) fn evaluate(&mut self, expression: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expression, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }

    /// Waits up to `seconds` for `expression` to be true in the page.
    pub(crate) fn wait_for(&mut self, expression: &str, seconds: u64) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if self.evaluate(expression) == Value::Bool(true) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        false
    }

    /// `expression`'s value once the promise it returns has settled.
    fn evaluate_async(&mut self, expression: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )["result"]["value"]
            .clone()
    }

    /// A key pressed and released, as the keyboard would: the page's default actions (Tab
    /// moving the focus) follow.
    fn press(&mut self, key: &str, code: u32) {
        let text = match key {
            "Enter" => "\r",
            " " => " ",
            _ => "",
        };
        for kind in ["keyDown", "keyUp"] {
            let text = if kind == "keyDown" { text } else { "" };
            self.call(
                "Input.dispatchKeyEvent",
                serde_json::json!({"type": kind, "key": key, "code": key, "text": text,
                    "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code}),
            );
        }
    }

    /// axe-core's serious and critical violations on the page as it is, each with the first
    /// nodes it names.
    fn axe_violations(&mut self) -> Vec<Value> {
        if self.evaluate("typeof window.axe") != "object" {
            self.evaluate(AXE);
        }
        let found = self.evaluate_async(
            "axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify(r.violations \
             .filter(v => v.impact === 'serious' || v.impact === 'critical') \
             .map(v => ({id: v.id, impact: v.impact, help: v.help, \
                         nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))))",
        );
        serde_json::from_str(found.as_str().unwrap_or("null")).expect("axe ran")
    }

    pub(crate) fn screenshot(&mut self, name: &str) {
        use base64::Engine as _;
        let shot = self.call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png"}),
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .unwrap_or_default();
        std::fs::write(artifact_path(name), bytes).unwrap();
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        let _ = self.browser.kill();
        let _ = self.browser.wait();
    }
}

/// In one page session: a shipment posted through the API appears and moves without a reload
/// within five seconds, the detail view draws its timeline and ETA chart, and the language
/// button switches every label.
#[tokio::test]
async fn the_dashboard_follows_a_truck_live_and_switches_language() {
    let Some(browser) = chromium() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    // Estimates follow pings within a fifth of a second, so that what is measured is the page.
    let server = RunningBinary::start(
        data.path(),
        &[],
        &[
            ("ETAPE__DEMO__TRUCKS", "2"),
            ("ETAPE__TRACKING__DEBOUNCE_MS", "200"),
        ],
    );
    let base = server.base.clone();
    let carrier = server.client.clone();
    let now = chrono::Utc::now();
    let (status, shipment) = {
        let response = carrier
            .post(format!("{base}/v1/shipments"))
            .body(
                serde_json::json!({"reference": "LIVE-1", "vehicle_id": "FR-LIVE", "vehicle_class": "rigid",
                    "origin": {"lat": 48.85, "lon": 2.35},
                    "stops": [{"id": "lyon", "lat": 45.76, "lon": 4.84,
                        "window": {"start": (now + chrono::TimeDelta::hours(4)).to_rfc3339(),
                                   "end": (now + chrono::TimeDelta::hours(9)).to_rfc3339()}}],
                    "planned_departure": now.to_rfc3339()})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 201, "{shipment}");
    let id = shipment["id"].as_str().unwrap().to_owned();
    let ping = |minutes_ago: i64, lat: f64, lon: f64| {
        serde_json::json!([{"vehicle_id": "FR-LIVE", "lat": lat, "lon": lon, "speed_kmh": 85.0,
            "timestamp": (now - chrono::TimeDelta::minutes(minutes_ago)).to_rfc3339()}])
        .to_string()
    };
    let post = |body: String| {
        let (carrier, base) = (carrier.clone(), base.clone());
        async move {
            let response = carrier
                .post(format!("{base}/v1/positions"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    post(ping(2, 48.60, 2.60)).await;

    let url = format!("{base}/?demo");
    let mut page = tokio::task::spawn_blocking(move || {
        let mut page = Driven::open(browser);
        page.call("Page.enable", serde_json::json!({}));
        page.call("Page.navigate", serde_json::json!({"url": url}));
        assert!(
            page.wait_for("document.querySelector('tr[data-id]') !== null && [...document.querySelectorAll('td')].some(td => td.textContent === 'LIVE-1')", 20),
            "the fleet lists the shipment"
        );
        page
    })
    .await
    .unwrap();
    // The longitude at which the map drew the truck, alone or in a cluster.
    let truck_x = "(() => { const t = window.etape && window.etape.onMap('FR-LIVE'); return t ? t.lon : null; })()";
    let on_map = format!("{truck_x} !== null");
    let (mut page, before) = tokio::task::spawn_blocking(move || {
        assert!(page.wait_for(&on_map, 10), "the truck is on the map");
        let before = page.evaluate(truck_x);
        (page, before)
    })
    .await
    .unwrap();

    // The truck moves 150 km south-east; the page follows without a reload.
    post(ping(1, 47.50, 3.70)).await;
    let expression =
        format!("(() => {{ const x = {truck_x}; return x !== null && x !== {before}; }})()");
    let moved = tokio::task::spawn_blocking(move || {
        let moved = page.wait_for(&expression, 5);
        (page, moved)
    })
    .await
    .unwrap();
    let (mut page, moved) = moved;
    assert!(moved, "the truck moved on the map within five seconds");

    let detail = format!("document.querySelector('tr[data-id=\"{id}\"]').click(); true");
    let page = tokio::task::spawn_blocking(move || {
        page.evaluate(&detail);
        assert!(
            page.wait_for("document.querySelectorAll('#timeline rect.segment').length > 0 && document.querySelector('#history-chart polyline.median') !== null && !document.querySelector('#detail').hidden", 10),
            "the detail view draws its timeline and chart"
        );
        page.screenshot("dashboard-detail.png");
        assert_eq!(page.evaluate("document.documentElement.lang"), "en");
        page.evaluate("document.querySelector('#language').click(); true");
        assert!(page.wait_for("document.documentElement.lang === 'fr' && document.querySelector('#fleet-title').textContent === 'Flotte'", 5));
        page.screenshot("dashboard-detail-fr.png");
        page
    })
    .await
    .unwrap();
    drop(page);
}

/// The fleet loads with one request a page and then follows the event stream: a truck's new
/// ping moves it on the map, and no request asks for one shipment's `/eta`.
#[tokio::test]
async fn the_dashboard_follows_the_stream_without_a_request_per_shipment() {
    let Some(browser) = chromium() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = RunningBinary::start(
        data.path(),
        &[],
        &[
            ("ETAPE__DEMO__TRUCKS", "3"),
            ("ETAPE__TRACKING__DEBOUNCE_MS", "200"),
        ],
    );
    let base = server.base.clone();
    let carrier = server.client.clone();
    let now = chrono::Utc::now();
    let registered = carrier
        .post(format!("{base}/v1/shipments"))
        .body(
            serde_json::json!({"reference": "STREAM-1", "vehicle_id": "FR-STREAM", "vehicle_class": "rigid",
                "origin": {"lat": 48.85, "lon": 2.35},
                "stops": [{"id": "lyon", "lat": 45.76, "lon": 4.84}],
                "planned_departure": now.to_rfc3339()})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let post = |minutes_ago: i64, lat: f64, lon: f64| {
        let (carrier, base) = (carrier.clone(), base.clone());
        let body = serde_json::json!([{"vehicle_id": "FR-STREAM", "lat": lat, "lon": lon, "speed_kmh": 85.0,
            "timestamp": (now - chrono::TimeDelta::minutes(minutes_ago)).to_rfc3339()}])
        .to_string();
        async move {
            let response = carrier
                .post(format!("{base}/v1/positions"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    };
    post(2, 48.60, 2.60).await;

    let url = format!("{base}/?demo");
    // The longitude at which the map drew the truck, alone or in a cluster.
    let truck_x = "(() => { const t = window.etape && window.etape.onMap('FR-STREAM'); return t ? t.lon : null; })()";
    let (page, before) = tokio::task::spawn_blocking(move || {
        let mut page = Driven::open(browser);
        page.call("Page.enable", serde_json::json!({}));
        page.call("Page.navigate", serde_json::json!({"url": url}));
        assert!(
            page.wait_for(
                &format!("{truck_x} !== null && document.body.dataset.live === 'stream'"),
                20
            ),
            "the fleet is drawn and the stream is up"
        );
        let before = page.evaluate(truck_x);
        (page, before)
    })
    .await
    .unwrap();

    post(1, 47.50, 3.70).await;
    let moved = format!(
        "(() => {{ const x = {truck_x}; return x !== null && x !== {before} && Number(document.body.dataset.events) > 0; }})()"
    );
    let page = tokio::task::spawn_blocking(move || {
        let mut page = page;
        assert!(page.wait_for(&moved, 5), "the truck moved within five seconds");
        assert_eq!(page.evaluate("document.body.dataset.live"), "stream");
        let per_shipment = page.evaluate(
            "performance.getEntriesByType('resource').filter(e => /^\\/v1\\/shipments\\/[^/]+\\/eta$/.test(new URL(e.name).pathname)).length",
        );
        assert_eq!(per_shipment, 0, "a request asked one shipment's estimate");
        let lists = page.evaluate(
            "performance.getEntriesByType('resource').filter(e => new URL(e.name).pathname === '/v1/shipments').length",
        );
        assert!(
            lists.as_u64().is_some_and(|count| (1..=6).contains(&count)),
            "list requests: {lists}"
        );
        page.screenshot("dashboard-stream.png");
        page
    })
    .await
    .unwrap();
    drop(page);
}

/// The fleet table fits from 1280 px up and on a tablet: reference, vehicle, next stop, ETA,
/// risk and band without a horizontal scroll bar, over the demo fleet's long references; the
/// other columns come with more room or on demand.
#[tokio::test]
async fn the_fleet_table_fits_from_1280_pixels_and_on_a_tablet() {
    let Some(browser) = chromium() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = RunningBinary::start(data.path(), &[], &[("ETAPE__DEMO__TRUCKS", "4")]);
    for _ in 0..100 {
        let page: Value = server.get_json("/v1/shipments?status=in_transit").await;
        if page["items"].as_array().unwrap().len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let url = format!("{}/?demo", server.base);
    let layout = "(() => { const table = document.querySelector('#fleet-table'); \
        const section = document.querySelector('#fleet'); \
        const shown = [...table.querySelectorAll('thead th')].filter(th => getComputedStyle(th).display !== 'none').map(th => th.textContent.trim()); \
        return JSON.stringify({fits: section.scrollWidth <= section.clientWidth, shown}); })()";
    tokio::task::spawn_blocking(move || {
        let mut page = Driven::open(browser);
        page.call("Page.enable", serde_json::json!({}));
        page.call("Page.navigate", serde_json::json!({"url": url}));
        assert!(
            page.wait_for("document.querySelectorAll('tr[data-id]').length >= 4", 20),
            "the demo fleet is listed"
        );
        for (width, height) in [(1024, 768), (1280, 800), (1440, 900), (1920, 1080)] {
            page.call(
                "Emulation.setDeviceMetricsOverride",
                serde_json::json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
            let measured: Value =
                serde_json::from_str(page.evaluate(layout).as_str().unwrap()).unwrap();
            assert_eq!(measured["fits"], true, "{width} px: {measured}");
            let shown: Vec<&str> = measured["shown"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for column in ["Reference", "Vehicle", "Next stop", "ETA", "Risk", "P10 to P90"] {
                assert!(
                    shown.iter().any(|name| name.starts_with(column)),
                    "{width} px lacks {column}: {shown:?}"
                );
            }
            if width >= 1440 {
                assert!(shown.contains(&"Window"), "{width} px: {shown:?}");
            }
            page.screenshot(&format!("dashboard-{width}.png"));
        }
        // The rest on demand.
        page.evaluate("document.querySelector('#all-columns').click(); true");
        assert!(page.wait_for(
            "getComputedStyle(document.querySelector('#fleet-table thead th.col-feeds')).display !== 'none'",
            5
        ));
        drop(page);
    })
    .await
    .unwrap();
}

/// Registers a shipment with `client`; its id.
async fn register(client: &reqwest::Client, base: &str, shipment: Value) -> String {
    let response = client
        .post(format!("{base}/v1/shipments"))
        .header("content-type", "application/json")
        .body(shipment.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn post_pings(client: &reqwest::Client, base: &str, pings: &[Value]) {
    let body: String = pings.iter().map(|ping| format!("{ping}\n")).collect();
    let response = client
        .post(format!("{base}/v1/positions"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// axe-core finds no serious or critical violation on the dashboard, its detail open or not,
/// nor on the consignee's tracking page; and the keyboard does everything: the skip link, a
/// row opened with Enter moves the focus into the detail and Escape gives it back to the row,
/// an alert acknowledged with Enter stays acknowledged in this browser.
#[tokio::test]
async fn the_dashboard_and_the_tracking_page_pass_axe_and_work_by_keyboard() {
    let Some(browser) = chromium() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = RunningBinary::start(
        data.path(),
        &[],
        &[
            ("ETAPE__DEMO__TRUCKS", "2"),
            ("ETAPE__TRACKING__DEBOUNCE_MS", "200"),
        ],
    );
    let base = server.base.clone();
    let now = chrono::Utc::now();
    // Paris to Lyon with a window closing within the hour: late, so the alerts panel has one.
    let id = register(
        &server.client,
        &base,
        serde_json::json!({"reference": "AXE-1", "vehicle_id": "FR-AXE", "vehicle_class": "rigid",
            "origin": {"lat": 48.85, "lon": 2.35},
            "stops": [{"id": "lyon", "lat": 45.76, "lon": 4.84,
                "window": {"start": (now + chrono::TimeDelta::minutes(30)).to_rfc3339(),
                           "end": (now + chrono::TimeDelta::minutes(60)).to_rfc3339()}}],
            "planned_departure": now.to_rfc3339()}),
    )
    .await;
    post_pings(
        &server.client,
        &base,
        &[
            serde_json::json!({"vehicle_id": "FR-AXE", "lat": 48.60, "lon": 2.60, "speed_kmh": 85.0,
            "timestamp": (now - chrono::TimeDelta::minutes(2)).to_rfc3339()}),
        ],
    )
    .await;
    let shared: Value = server
        .client
        .post(format!("{base}/v1/shipments/{id}/share"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = shared["url"]
        .as_str()
        .and_then(|url| url.rsplit_once("/track/"))
        .map(|(_, token)| token.to_owned())
        .unwrap_or_else(|| panic!("a share link: {shared}"));

    let (dashboard, tracking) = (format!("{base}/?demo"), format!("{base}/track/{token}"));
    tokio::task::spawn_blocking(move || {
        let mut page = Driven::open(browser);
        page.call("Page.enable", serde_json::json!({}));
        // Focus and :focus-visible as in a window that has the focus.
        page.call(
            "Emulation.setFocusEmulationEnabled",
            serde_json::json!({"enabled": true}),
        );
        page.call("Page.navigate", serde_json::json!({"url": dashboard}));
        let row = format!("document.querySelector('tr[data-id=\"{id}\"]')");
        assert!(
            page.wait_for(&format!("{row} !== null && document.querySelector('#alert-list li[data-level]') !== null && document.querySelector('.truck-icon') !== null"), 20),
            "the fleet, its alerts and the map are drawn"
        );
        let violations = page.axe_violations();
        assert!(violations.is_empty(), "axe on the dashboard: {violations:#?}");

        // The first Tab reaches the skip link; Enter on it moves the focus to the fleet.
        page.evaluate("document.activeElement && document.activeElement.blur(); true");
        page.press("Tab", 9);
        assert_eq!(
            page.evaluate("document.activeElement.className"),
            "skip-link"
        );
        page.press("Enter", 13);
        assert_eq!(page.evaluate("document.activeElement.id"), "fleet-title");

        // A row opened with Enter: the focus moves into the detail, and back on Escape.
        page.evaluate(&format!("{row}.focus(); true"));
        page.press("Enter", 13);
        assert!(
            page.wait_for("!document.querySelector('#detail').hidden && document.activeElement.id === 'detail-title'", 5),
            "the focus is in the detail"
        );
        assert!(
            page.wait_for("document.querySelectorAll('#timeline rect.segment').length > 0", 10),
            "the detail is drawn"
        );
        let violations = page.axe_violations();
        assert!(violations.is_empty(), "axe with the detail open: {violations:#?}");
        page.screenshot("dashboard-a11y-detail.png");
        page.press("Escape", 27);
        assert!(
            page.wait_for(&format!("document.querySelector('#detail').hidden && document.activeElement === {row}"), 5),
            "the focus is back on the row"
        );

        // The late shipment's alert, acknowledged from the keyboard, is kept under this key.
        let alert = format!("document.querySelector('#alert-list li[data-key=\"{id}:late\"]')");
        assert!(page.wait_for(&format!("{alert} !== null"), 10), "the late shipment is an alert");
        assert_eq!(page.evaluate(&format!("{alert}.dataset.level")), "critical");
        page.evaluate(&format!("{alert}.querySelector('button[data-action=\"acknowledge\"]').focus(); true"));
        page.press("Enter", 13);
        assert!(page.wait_for(&format!("{alert} === null"), 5), "acknowledged, out of the list");
        let kept = page.evaluate(&format!(
            "Object.keys(localStorage).filter(k => k.startsWith('etape-acks:')).some(k => localStorage.getItem(k).includes('{id}:late'))"
        ));
        assert_eq!(kept, true);
        page.screenshot("dashboard-alerts.png");

        // The consignee's page: no key, its own policy, the same bar.
        page.call("Page.navigate", serde_json::json!({"url": tracking}));
        assert!(
            page.wait_for("document.readyState === 'complete' && document.querySelector('main ol.stops') !== null", 10),
            "the tracking page is served"
        );
        let violations = page.axe_violations();
        assert!(violations.is_empty(), "axe on the tracking page: {violations:#?}");
        page.screenshot("tracking-page.png");
    })
    .await
    .unwrap();
}

/// 1,000 shipments on the road in one organisation: the page lists them a page of 200 at a
/// time, draws an estimate the stream brings within 200 ms of its arrival (timed in the page,
/// from the event to the page laid out again), and never asks anything per shipment. Panned
/// and zoomed, the map's truck labels never overlap, and its clusters hold every truck in view.
#[tokio::test]
async fn a_thousand_trucks_update_within_200_ms_and_their_labels_never_overlap() {
    let Some(browser) = chromium() else {
        return;
    };
    const N_SHIPMENTS: usize = 1_000;
    let data = tempfile::tempdir().unwrap();
    let server = RunningBinary::start(
        data.path(),
        &[],
        &[
            // The demo login without its trucks: nothing moves but what the test sends.
            ("ETAPE__DEMO__TRUCKS", "0"),
            ("ETAPE__TRACKING__DEBOUNCE_MS", "200"),
            ("ETAPE__API__RATE_LIMIT_PER_SECOND", "0"),
        ],
    );
    let base = server.base.clone();
    let now = chrono::Utc::now();
    // Spread over France by a fixed sequence, a tenth of them within 15 km of Paris, where
    // labels would collide the most.
    let place = |index: usize| -> (f64, f64) {
        let (a, b) = (
            (index * 7919 % 1000) as f64 / 1000.0,
            (index * 104_729 % 997) as f64 / 997.0,
        );
        if index % 10 == 0 {
            (48.85 + (a - 0.5) * 0.25, 2.35 + (b - 0.5) * 0.35)
        } else {
            (43.6 + a * 6.8, -1.0 + b * 8.0)
        }
    };
    let mut ids = vec![String::new(); N_SHIPMENTS];
    for chunk in (0..N_SHIPMENTS).collect::<Vec<_>>().chunks(25) {
        let mut registering = tokio::task::JoinSet::new();
        for &index in chunk {
            let (client, base) = (server.client.clone(), base.clone());
            let (lat, lon) = place(index);
            // Every fifth has a window it cannot make: late trucks among the others.
            let window_hours = if index % 5 == 0 { 1 } else { 30 };
            let shipment = serde_json::json!({"reference": format!("SCALE-{index:04}-{}", "x".repeat(index % 12)),
                "vehicle_id": format!("SC-{index:04}"), "vehicle_class": "rigid",
                "origin": {"lat": lat, "lon": lon},
                "stops": [{"id": format!("dock-{index}"), "lat": 45.76, "lon": 4.84,
                    "window": {"start": now.to_rfc3339(),
                               "end": (now + chrono::TimeDelta::hours(window_hours)).to_rfc3339()}}],
                "planned_departure": now.to_rfc3339()});
            registering.spawn(async move { (index, register(&client, &base, shipment).await) });
        }
        while let Some(done) = registering.join_next().await {
            let (index, id) = done.unwrap();
            ids[index] = id;
        }
    }
    // One request of pings for the whole fleet; every seventh truck silent for 45 minutes.
    let pings: Vec<Value> = (0..N_SHIPMENTS)
        .map(|index| {
            let (lat, lon) = place(index);
            let minutes_ago = if index % 7 == 0 { 45 } else { 1 };
            serde_json::json!({"vehicle_id": format!("SC-{index:04}"), "lat": lat, "lon": lon, "speed_kmh": 80.0,
                "timestamp": (now - chrono::TimeDelta::minutes(minutes_ago)).to_rfc3339()})
        })
        .collect();
    post_pings(&server.client, &base, &pings).await;

    let url = format!("{base}/?demo");
    let page = tokio::task::spawn_blocking(move || {
        let mut page = Driven::open(browser);
        page.call("Page.enable", serde_json::json!({}));
        // Every request the page makes is counted, well past the default buffer of 250.
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            serde_json::json!({"source": "performance.setResourceTimingBufferSize(100000);"}),
        );
        page.call("Page.navigate", serde_json::json!({"url": url}));
        // A row comes with its first estimate: a debug build takes about 30 s for the 1,000.
        assert!(
            page.wait_for(&format!("document.querySelectorAll('tr[data-id]').length >= {N_SHIPMENTS} && document.body.dataset.live === 'stream'"), 120),
            "the fleet is listed and the stream is up"
        );
        // The estimates of the pings above have come and been drawn: a quiet page.
        assert!(
            page.wait_for("performance.now() - state.lastRender > 2000", 60),
            "the page settles"
        );
        page
    })
    .await
    .unwrap();

    let moved = ids[1].clone();
    let requests = "JSON.stringify((() => { const paths = performance.getEntriesByType('resource').map(e => new URL(e.name).pathname); \
        return {lists: paths.filter(p => p === '/v1/shipments').length, \
                per_shipment: paths.filter(p => p.startsWith('/v1/shipments/') || p.startsWith('/v1/vehicles/')).length, \
                api: paths.filter(p => p.startsWith('/v1/')).length}; })())";
    let (mut page, before) = tokio::task::spawn_blocking(move || {
        let mut page = page;
        page.evaluate("window.etape.renderedIn = {}; true");
        let before: Value =
            serde_json::from_str(page.evaluate(requests).as_str().unwrap()).unwrap();
        (page, before)
    })
    .await
    .unwrap();
    let (lat, lon) = place(1);
    post_pings(
        &server.client,
        &base,
        &[serde_json::json!({"vehicle_id": "SC-0001", "lat": lat - 0.008, "lon": lon + 0.008, "speed_kmh": 80.0,
            "timestamp": now.to_rfc3339()})],
    )
    .await;
    tokio::task::spawn_blocking(move || {
        let drawn = format!("window.etape.renderedIn['{moved}']");
        assert!(
            page.wait_for(&format!("{drawn} !== undefined"), 10),
            "the stream brought the estimate and the page drew it"
        );
        let milliseconds = page.evaluate(&drawn).as_f64().unwrap();
        assert!(
            milliseconds < 200.0,
            "an update took {milliseconds} ms to draw over {N_SHIPMENTS} shipments"
        );
        let after: Value =
            serde_json::from_str(page.evaluate(requests).as_str().unwrap()).unwrap();
        assert_eq!(after["per_shipment"], 0, "a request for one shipment: {after}");
        let new_lists = after["lists"].as_u64().unwrap() - before["lists"].as_u64().unwrap();
        // At most the every-30-s reread of the list came in between (5 pages on the road, 1
        // planned), never anything per truck.
        assert!(new_lists <= 6, "{new_lists} list requests for one update");
        assert!(
            after["api"].as_u64().unwrap() < 100,
            "{after}: the API was asked per shipment"
        );

        // Pan and zoom with Leaflet's API: wherever the map looks, labels stay apart and the
        // markers account for every truck in view.
        let labels = "JSON.stringify((() => { const box = document.querySelector('#map').getBoundingClientRect(); \
            const rects = [...document.querySelectorAll('#map .truck-label')].map(l => l.getBoundingClientRect()) \
              .filter(r => r.width > 0 && r.right > box.left && r.left < box.right && r.bottom > box.top && r.top < box.bottom); \
            const overlaps = []; \
            for (let i = 0; i < rects.length; i++) for (let j = i + 1; j < rects.length; j++) { \
              const [a, b] = [rects[i], rects[j]]; \
              if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) overlaps.push([i, j]); } \
            const counted = [...document.querySelectorAll('#map .truck-icon')].reduce((sum, m) => sum + Number(m.dataset.count), 0); \
            return {labels: rects.length, overlaps, counted, trucks: Number(document.body.dataset.trucksOnMap), \
                    zoom: window.etape.map.getZoom()}; })())";
        let views = [
            ("m.fitBounds([[41.0, -5.5], [51.8, 10.5]], {animate: false})", "dashboard-1000.png"),
            ("m.setView([48.85, 2.35], 9, {animate: false})", "dashboard-1000-paris.png"),
            ("m.setView([48.85, 2.35], 12, {animate: false})", ""),
            ("m.panBy([250, 120], {animate: false})", ""),
            ("m.setZoom(7.5, {animate: false})", ""),
            ("m.setView([45.5, 3.0], 6.25, {animate: false})", ""),
        ];
        let mut most_labels = 0;
        for (view, screenshot) in views {
            page.evaluate(&format!("(() => {{ const m = window.etape.map; {view}; return true; }})()"));
            let measured: Value =
                serde_json::from_str(page.evaluate(labels).as_str().unwrap()).unwrap();
            assert_eq!(measured["overlaps"], serde_json::json!([]), "{view}: {measured}");
            assert_eq!(measured["counted"], measured["trucks"], "{view}: {measured}");
            most_labels = most_labels.max(measured["labels"].as_u64().unwrap());
            if !screenshot.is_empty() {
                page.screenshot(screenshot);
            }
        }
        assert!(most_labels >= 10, "labels were drawn: {most_labels}");
    })
    .await
    .unwrap();
    drop(server);
}
