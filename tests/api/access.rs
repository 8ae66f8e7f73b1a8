//! Keys, roles and tenant isolation, through the real server.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TEST_NOW};

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, Option<String>) {
    let url = format!("{}{path}", app.address);
    // A client without a default key: each call says who it is.
    etape::adapters::webhooks::install_tls_provider();
    let client = reqwest::Client::new();
    let mut request = match method {
        "get" => client.get(url),
        "post" => client.post(url),
        "delete" => client.delete(url),
        "put" => client.put(url),
        other => panic!("no method {other}"),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        challenge,
    )
}

#[tokio::test]
async fn every_v1_route_wants_a_valid_key_and_its_role() {
    let app = spawn_app().await;
    let (status, error, challenge) = call(&app, "get", "/v1/shipments", None, None).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"etape\""));
    let (status, _, challenge) =
        call(&app, "get", "/v1/shipments", Some("etp_abc_def"), None).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap().contains("invalid_token"));
    // Health, metrics and the document stay open to probes and scrapers.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            app.client
                .get(format!("{}{path}", app.address))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let shipment = json!({"reference": "R", "vehicle_id": "V", "vehicle_class": "van",
        "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}], "planned_departure": TEST_NOW});
    let (status, error, _) = call(
        &app,
        "post",
        "/v1/shipments",
        Some(&app.keys["dispatcher"]),
        Some(&shipment),
    )
    .await;
    assert_eq!((status, error["code"].as_str()), (403, Some("forbidden")));
    let (status, _, _) = call(
        &app,
        "get",
        "/v1/shipments",
        Some(&app.keys["dispatcher"]),
        None,
    )
    .await;
    assert_eq!(status, 200, "dispatchers read shipments");
    let (status, _, _) = call(
        &app,
        "get",
        "/v1/shipments",
        Some(&app.keys["partner"]),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = call(
        &app,
        "get",
        "/v1/organisations",
        Some(&app.keys["carrier"]),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // The operator issues a key, the organisation's admin sees it listed without its secret and
    // revokes it: it stops at once.
    let operator = Some(app.keys["operator"].as_str());
    let admin = Some(app.keys["admin"].as_str());
    let (status, issued, _) = call(
        &app,
        "post",
        "/v1/organisations/demo/keys",
        operator,
        Some(&json!({"name": "TMS", "roles": ["carrier"]})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let key = issued["key"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&app, "get", "/v1/shipments", Some(&key), None).await.0,
        200
    );
    let (_, listed, _) = call(&app, "get", "/v1/organisations/demo/keys", admin, None).await;
    // The first start's five and the new one.
    assert_eq!(listed.as_array().unwrap().len(), 6, "{listed}");
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|key| key.get("key").is_none()));
    let path = format!("/v1/keys/{}", issued["id"].as_str().unwrap());
    assert_eq!(call(&app, "delete", &path, admin, None).await.0, 204);
    let (status, error, _) = call(&app, "get", "/v1/shipments", Some(&key), None).await;
    assert_eq!(
        (status, error["message"].as_str()),
        (401, Some("the key was revoked"))
    );
    let (status, error, _) = call(
        &app,
        "post",
        "/v1/organisations/nobody/keys",
        operator,
        Some(&json!({"name": "x", "roles": ["pilot"]})),
    )
    .await;
    assert_eq!((status, error["field"].as_str()), (400, Some("roles[0]")));
}

/// Organisation `demo` owns a shipment, a webhook and a vehicle's pings; organisation `other`,
/// with every role, tries every route on them and gets 403 or 404, or its own empty lists.
#[tokio::test]
async fn no_organisation_reaches_another_ones_data() {
    let app = spawn_app().await;
    let operator = Some(app.keys["operator"].as_str());
    let (status, _, _) = call(
        &app,
        "post",
        "/v1/organisations",
        operator,
        Some(&json!({"id": "other", "name": "Other carrier"})),
    )
    .await;
    assert_eq!(status, 201);
    let mut other_keys = Vec::new();
    for role in ["carrier", "dispatcher", "partner"] {
        let (_, issued, _) = call(
            &app,
            "post",
            "/v1/organisations/other/keys",
            operator,
            Some(&json!({"name": role, "roles": [role]})),
        )
        .await;
        other_keys.push((role, issued["key"].as_str().unwrap().to_owned()));
    }
    // What `demo` owns.
    let (shipment_id, webhook_id) = demo_shipment_and_webhook(&app).await;
    let ping = json!([{"vehicle_id": "V-1", "timestamp": "2026-11-28T08:59:00Z", "lat": 48.9, "lon": 2.4}]);
    let (status, _) = app.post_json("/v1/positions", &ping).await;
    assert_eq!(status, 200);

    let trips = include_str!("../../data/example/trips.csv");
    let uploaded: Value = crate::helpers::json_of(
        app.client
            .post(format!("{}/v1/history", app.address))
            .bearer_auth(&app.keys["partner"])
            .body(trips),
    )
    .await;
    let upload_id = uploaded["upload"]["id"].as_str().unwrap().to_owned();
    let event = json!({"stop_index": 0, "kind": "arrived"});
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("get", format!("/v1/shipments/{shipment_id}"), None),
        ("post", format!("/v1/shipments/{shipment_id}/cancel"), None),
        (
            "post",
            format!("/v1/shipments/{shipment_id}/events"),
            Some(event),
        ),
        ("get", format!("/v1/shipments/{shipment_id}/eta"), None),
        (
            "get",
            format!("/v1/shipments/{shipment_id}/eta/history"),
            None,
        ),
        ("get", format!("/v1/webhooks/{webhook_id}"), None),
        ("delete", format!("/v1/webhooks/{webhook_id}"), None),
        (
            "post",
            format!("/v1/webhooks/{webhook_id}/rotate-secret"),
            None,
        ),
        ("get", format!("/v1/webhooks/{webhook_id}/deliveries"), None),
        (
            "post",
            format!("/v1/webhooks/{webhook_id}/deliveries/dlv_none/replay"),
            None,
        ),
        ("get", "/v1/organisations".into(), None),
        ("get", "/v1/organisations/demo/keys".into(), None),
        (
            "post",
            "/v1/organisations/demo/keys".into(),
            Some(json!({"name": "x", "roles": ["admin"]})),
        ),
        ("delete", format!("/v1/keys/{}", "anything"), None),
        ("get", format!("/v1/history/{upload_id}/export"), None),
        ("delete", format!("/v1/history/{upload_id}"), None),
        ("get", "/v1/models".into(), None),
        ("post", "/v1/models/train".into(), None),
        ("get", "/v1/models/jobs/anything".into(), None),
        ("post", "/v1/models/anything/activate".into(), None),
        // No model has learnt from the other organisation: its report does not exist.
        ("get", "/v1/partners/me/report".into(), None),
    ];
    for (role, key) in &other_keys {
        for (method, path, body) in &routes {
            let (status, answer, _) = call(&app, method, path, Some(key), body.as_ref()).await;
            assert!(
                status == 403 || status == 404,
                "{role} of another organisation: {method} {path} answered {status}: {answer}"
            );
            assert!(!answer.to_string().contains("SECRET-1"));
        }
        // Lists are their own: empty, never the other's.
        for path in [
            "/v1/shipments",
            "/v1/webhooks",
            "/v1/vehicles/V-1/positions",
        ] {
            let (status, answer, _) = call(&app, "get", path, Some(key), None).await;
            assert!(status == 403 || status == 200, "{role} {path}: {status}");
            if status == 200 {
                let items = answer.get("items").unwrap_or(&answer);
                assert_eq!(
                    items.as_array().unwrap().len(),
                    0,
                    "{role} {path}: {answer}"
                );
            }
        }
    }
    // The other organisation's own V-1 is another vehicle: its pings do not move ours.
    let (_, other_carrier) = &other_keys[0];
    let foreign = json!([{"vehicle_id": "V-1", "timestamp": "2026-11-28T08:59:30Z", "lat": 43.3, "lon": 5.4}]);
    let (status, _, _) = call(
        &app,
        "post",
        "/v1/positions",
        Some(other_carrier),
        Some(&foreign),
    )
    .await;
    assert_eq!(status, 200);
    let ours: Value = app
        .get("/v1/vehicles/V-1/positions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ours.as_array().unwrap().len(), 1);
    // And everything of ours is intact.
    let (_, shipment) = {
        let response = app.get(&format!("/v1/shipments/{shipment_id}")).await;
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    assert_eq!(shipment["status"], "in_transit");
    let hooks: Value = app.get("/v1/webhooks").await.json().await.unwrap();
    assert_eq!(hooks.as_array().unwrap().len(), 1);
    let exported = app
        .client
        .get(format!("{}/v1/history/{upload_id}/export", app.address))
        .bearer_auth(&app.keys["partner"])
        .send()
        .await
        .unwrap();
    assert_eq!(exported.text().await.unwrap(), trips);
    // The other partner's standing is its own.
    let (_, partner_key) = &other_keys[2];
    let (_, me, _) = call(&app, "get", "/v1/partners/me", Some(partner_key), None).await;
    assert_eq!(
        (me["organisation"].as_str(), me["uploads"].as_u64()),
        (Some("other"), Some(0))
    );
}

/// Every route that reaches one organisation's resource by its id, or acts on the whole
/// installation: a key of another organisation, its admin's included, gets 403 or 404 on each.
/// A route added to the API goes here or in `OWN_ROUTES`, or the walk below fails.
const ANOTHER_ORGANISATIONS_ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/organisations"),
    ("post", "/v1/organisations"),
    ("get", "/v1/organisations/{id}/keys"),
    ("post", "/v1/organisations/{id}/keys"),
    ("delete", "/v1/keys/{id}"),
    ("get", "/v1/shipments/{id}"),
    ("post", "/v1/shipments/{id}/cancel"),
    ("post", "/v1/shipments/{id}/events"),
    ("get", "/v1/shipments/{id}/eta"),
    ("get", "/v1/shipments/{id}/eta/history"),
    ("post", "/v1/shipments/{id}/share"),
    ("delete", "/v1/shipments/{id}/share/{share_id}"),
    ("get", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("post", "/v1/webhooks/{id}/rotate-secret"),
    ("get", "/v1/webhooks/{id}/deliveries"),
    ("post", "/v1/webhooks/{id}/deliveries/{delivery}/replay"),
    ("get", "/v1/history/{id}/export"),
    ("delete", "/v1/history/{id}"),
    ("get", "/v1/models"),
    ("post", "/v1/models/train"),
    ("get", "/v1/models/jobs/{id}"),
    ("post", "/v1/models/{version}/activate"),
    ("delete", "/v1/devices/{id}"),
];

/// Routes that act on the caller's own organisation whatever the request names: what another
/// organisation's key finds there is its own (`no_organisation_reaches_another_ones_data`, and
/// the consent below).
const OWN_ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/eta"),
    ("post", "/v1/eta/batch"),
    ("get", "/v1/operations"),
    ("post", "/v1/shipments"),
    ("get", "/v1/shipments"),
    ("get", "/v1/events"),
    ("post", "/v1/positions"),
    ("get", "/v1/vehicles/{vehicle_id}/positions"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("post", "/v1/history"),
    ("get", "/v1/history"),
    ("get", "/v1/partners/me"),
    ("get", "/v1/partners/me/report"),
    ("put", "/v1/partners/me/consent"),
    ("post", "/v1/devices"),
    ("get", "/v1/devices"),
    // No key at all: the device token in the path names the organisation (tests/api/phones.rs).
    ("get", "/v1/osmand/{token}"),
    ("post", "/v1/osmand/{token}"),
];

/// A shipment and a webhook of `demo`'s, by their ids.
async fn demo_shipment_and_webhook(app: &TestApp) -> (String, String) {
    let (_, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "SECRET-1", "vehicle_id": "V-1", "vehicle_class": "rigid",
                "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}, {"id": "b", "lat": 45.76, "lon": 4.84}],
                "planned_departure": TEST_NOW}),
        )
        .await;
    let (_, webhook) = app
        .post_json(
            "/v1/webhooks",
            &json!({"url": "http://127.0.0.1:9/", "events": ["arrived"]}),
        )
        .await;
    (
        shipment["id"].as_str().unwrap().to_owned(),
        webhook["id"].as_str().unwrap().to_owned(),
    )
}

fn listed_in(table: &[(&str, &str)], method: &str, path: &str) -> bool {
    table
        .iter()
        .any(|&(listed_method, listed_path)| listed_method == method && listed_path == path)
}

/// Asks `by` for a key of `organisation` with `roles`: the status and the answer.
async fn mint(app: &TestApp, by: &str, organisation: &str, roles: &[&str]) -> (u16, Value) {
    let body = json!({"name": roles.join(" "), "roles": roles});
    let path = format!("/v1/organisations/{organisation}/keys");
    let (status, answer, _) = call(app, "post", &path, Some(by), Some(&body)).await;
    (status, answer)
}

async fn minted(app: &TestApp, by: &str, organisation: &str, roles: &[&str]) -> String {
    let (status, issued) = mint(app, by, organisation, roles).await;
    assert_eq!(status, 201, "{roles:?} for {organisation}: {issued}");
    issued["key"].as_str().unwrap().to_owned()
}

/// The bundled model, copied where the service looks for models to activate; its version.
fn a_model_to_activate(app: &TestApp) -> String {
    let dir = app.data_dir().join("models").join("bundled");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(crate::helpers::BUNDLED_MODEL).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    etape::training::registry::read_card(&dir).unwrap().version
}

/// A training the operator started and saw to its end; its id. Run before any upload, it has
/// nothing to learn from and ends at once.
async fn a_finished_training(app: &TestApp) -> String {
    let operator = Some(app.keys["operator"].as_str());
    let (status, job, _) = call(app, "post", "/v1/models/train?rounds=1", operator, None).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/models/jobs/{id}");
    for _ in 0..600 {
        let (status, job, _) = call(app, "get", &path, operator, None).await;
        assert_eq!(status, 200, "{job}");
        if job["status"] != "running" {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the training did not end in thirty seconds");
}

/// The admin of a second organisation, alone and holding every role an organisation can have,
/// walks every route of the first organisation and of the installation with ids that exist, so
/// that a gate giving way answers 200, 201 or 204: it is refused each time, and the first
/// organisation's data is intact.
#[tokio::test]
async fn a_second_organisations_admin_reaches_nothing_of_the_first_one() {
    let app = spawn_app().await;
    let operator = app.keys["operator"].clone();
    // What the installation holds: a model to activate and a finished training.
    let version = a_model_to_activate(&app);
    let job_id = a_finished_training(&app).await;
    // What `demo` owns: a shipment, a webhook, an upload, its consent and its keys.
    let (shipment_id, webhook_id) = demo_shipment_and_webhook(&app).await;
    let trips = include_str!("../../data/example/trips.csv");
    let partner = Some(app.keys["partner"].as_str());
    let uploaded: Value = crate::helpers::json_of(
        app.client
            .post(format!("{}/v1/history", app.address))
            .bearer_auth(&app.keys["partner"])
            .body(trips),
    )
    .await;
    let upload_id = uploaded["upload"]["id"].as_str().unwrap().to_owned();
    let consent = json!({"pool": false});
    let (status, _, _) = call(
        &app,
        "put",
        "/v1/partners/me/consent",
        partner,
        Some(&consent),
    )
    .await;
    assert_eq!(status, 200);
    let demo_admin = Some(app.keys["admin"].as_str());
    let (_, demo_keys, _) =
        call(&app, "get", "/v1/organisations/demo/keys", demo_admin, None).await;
    let demo_admin_id = demo_keys
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["roles"] == json!(["admin"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, _, _) = call(
        &app,
        "post",
        "/v1/organisations",
        Some(&operator),
        Some(&json!({"id": "other", "name": "Other carrier"})),
    )
    .await;
    assert_eq!(status, 201);
    let walkers = [
        ("admin", minted(&app, &operator, "other", &["admin"]).await),
        (
            "admin with every role",
            minted(
                &app,
                &operator,
                "other",
                &["admin", "carrier", "dispatcher", "partner"],
            )
            .await,
        ),
    ];
    let concrete = |template: &str| -> String {
        let id = if template.starts_with("/v1/shipments/") {
            shipment_id.as_str()
        } else if template.starts_with("/v1/webhooks/") {
            webhook_id.as_str()
        } else if template.starts_with("/v1/keys/") {
            demo_admin_id.as_str()
        } else if template.starts_with("/v1/history/") {
            upload_id.as_str()
        } else if template.starts_with("/v1/models/jobs/") {
            job_id.as_str()
        } else {
            "demo"
        };
        let path = template
            .replace("{id}", id)
            .replace("{version}", &version)
            .replace("{delivery}", "dlv_none");
        // Should the gate give way, the training it starts ends at once.
        if path == "/v1/models/train" {
            return format!("{path}?rounds=1");
        }
        path
    };
    // Bodies a route would take, so that a refusal is never a mere 400.
    let body = |method: &str, template: &str| match (method, template) {
        ("post", "/v1/organisations") => Some(json!({"id": "third", "name": "Third"})),
        ("post", "/v1/organisations/{id}/keys") => {
            Some(json!({"name": "x", "roles": ["admin", "carrier", "dispatcher", "partner"]}))
        }
        ("post", "/v1/shipments/{id}/events") => Some(json!({"stop_index": 0, "kind": "arrived"})),
        ("post", "/v1/shipments/{id}/share") => Some(json!({"expires_in_hours": 1})),
        _ => None,
    };
    for (walker, key) in &walkers {
        for &(method, template) in ANOTHER_ORGANISATIONS_ROUTES {
            let path = concrete(template);
            let request = body(method, template);
            let (status, answer, _) = call(&app, method, &path, Some(key), request.as_ref()).await;
            assert!(
                status == 403 || status == 404,
                "the {walker} of another organisation: {method} {path} answered {status}: {answer}"
            );
            assert!(!answer.to_string().contains("SECRET-1"), "{path}: {answer}");
        }
    }
    // Consent is always the caller's own: the admin alone may not give it, the one holding
    // `partner` gives its own organisation's, and `demo`'s stays as `demo` set it.
    let pool = json!({"pool": true});
    let (status, _, _) = call(
        &app,
        "put",
        "/v1/partners/me/consent",
        Some(&walkers[0].1),
        Some(&pool),
    )
    .await;
    assert_eq!(status, 403);
    let (status, theirs, _) = call(
        &app,
        "put",
        "/v1/partners/me/consent",
        Some(&walkers[1].1),
        Some(&pool),
    )
    .await;
    assert_eq!(
        (status, theirs["organisation"].as_str()),
        (200, Some("other"))
    );
    let (_, ours, _) = call(&app, "get", "/v1/partners/me", partner, None).await;
    assert_eq!(
        (
            ours["organisation"].as_str(),
            ours["pool"].as_bool(),
            ours["uploads"].as_u64()
        ),
        (Some("demo"), Some(false), Some(1)),
        "{ours}"
    );

    // Everything of `demo` is intact: its keys, its shipment, its webhook, its upload; no
    // organisation was added, no model activated.
    let (status, keys, _) =
        call(&app, "get", "/v1/organisations/demo/keys", demo_admin, None).await;
    assert_eq!(status, 200);
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(
        keys.iter().all(|key| key["revoked_at"].is_null()),
        "{keys:?}"
    );
    let (status, shipment, _) = call(
        &app,
        "get",
        &format!("/v1/shipments/{shipment_id}"),
        Some(&app.keys["carrier"]),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(shipment["status"], "cancelled");
    let hooks: Value = app.get("/v1/webhooks").await.json().await.unwrap();
    assert_eq!(hooks.as_array().unwrap().len(), 1);
    let exported = app
        .client
        .get(format!("{}/v1/history/{upload_id}/export", app.address))
        .bearer_auth(&app.keys["partner"])
        .send()
        .await
        .unwrap();
    assert_eq!(exported.text().await.unwrap(), trips);
    let (_, organisations, _) = call(&app, "get", "/v1/organisations", Some(&operator), None).await;
    let ids: Vec<&str> = organisations
        .as_array()
        .unwrap()
        .iter()
        .map(|organisation| organisation["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{organisations}");
    assert!(
        ids.contains(&"demo") && ids.contains(&"other"),
        "{organisations}"
    );
    let (_, models, _) = call(&app, "get", "/v1/models", Some(&operator), None).await;
    assert!(
        models
            .as_array()
            .unwrap()
            .iter()
            .all(|model| model["active"].as_bool() == Some(false)),
        "{models}"
    );

    // No route of the API escapes the two tables.
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            assert!(
                !path.starts_with("/v1/")
                    || listed_in(ANOTHER_ORGANISATIONS_ROUTES, method, path)
                    || listed_in(OWN_ROUTES, method, path),
                "{method} {path}: add it to ANOTHER_ORGANISATIONS_ROUTES or OWN_ROUTES"
            );
        }
    }
}

/// Training, its jobs and the served model belong to the installation: every key of an
/// organisation, its admin's included, is refused; the operator's is not.
#[tokio::test]
async fn only_an_operator_key_trains_and_activates_a_model() {
    let app = spawn_app().await;
    let version = a_model_to_activate(&app);
    let activate = format!("/v1/models/{version}/activate");
    for role in ["carrier", "dispatcher", "partner", "admin"] {
        let key = Some(app.keys[role].as_str());
        for (method, path) in [
            ("post", "/v1/models/train?rounds=1"),
            ("post", activate.as_str()),
            ("get", "/v1/models"),
        ] {
            let (status, answer, _) = call(&app, method, path, key, None).await;
            assert_eq!(
                (status, answer["code"].as_str()),
                (403, Some("forbidden")),
                "{role}: {method} {path}: {answer}"
            );
        }
    }
    let job_id = a_finished_training(&app).await;
    let job = format!("/v1/models/jobs/{job_id}");
    let (status, _, _) = call(&app, "get", &job, Some(&app.keys["admin"]), None).await;
    assert_eq!(status, 403);
    let operator = Some(app.keys["operator"].as_str());
    let (status, activated, _) = call(&app, "post", &activate, operator, None).await;
    assert_eq!(
        (status, activated["version"].as_str()),
        (200, Some(version.as_str())),
        "{activated}"
    );
}

/// An admin issues keys of its own organisation, with roles its own key holds; nobody gets an
/// operator key from the API, and an admin cannot revoke the operator's.
#[tokio::test]
async fn an_admin_grants_only_its_own_roles_and_the_api_never_an_operator_key() {
    let app = spawn_app().await;
    let (operator, admin) = (app.keys["operator"].as_str(), app.keys["admin"].as_str());
    let refused = |(status, answer): (u16, Value)| {
        assert_eq!(
            (status, answer["code"].as_str(), answer["field"].as_str()),
            (403, Some("forbidden"), Some("roles")),
            "{answer}"
        );
    };
    minted(&app, admin, "demo", &["admin"]).await;
    refused(mint(&app, admin, "demo", &["carrier"]).await);
    refused(mint(&app, admin, "demo", &["admin", "operator"]).await);
    refused(mint(&app, operator, "demo", &["operator"]).await);

    // An admin that also holds `carrier` grants it, and still nothing it lacks.
    let wider = minted(&app, operator, "demo", &["admin", "carrier"]).await;
    let carrier = minted(&app, &wider, "demo", &["carrier"]).await;
    assert_eq!(
        call(&app, "get", "/v1/shipments", Some(&carrier), None)
            .await
            .0,
        200
    );
    refused(mint(&app, &wider, "demo", &["dispatcher"]).await);

    // The first start's operator key is kept under `demo`, out of its admin's reach.
    let (_, keys, _) = call(
        &app,
        "get",
        "/v1/organisations/demo/keys",
        Some(admin),
        None,
    )
    .await;
    let operator_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["roles"] == json!(["operator"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = format!("/v1/keys/{operator_id}");
    assert_eq!(
        call(&app, "delete", &revoke, Some(admin), None).await.0,
        403
    );
    assert_eq!(
        call(&app, "get", "/v1/organisations", Some(operator), None)
            .await
            .0,
        200
    );
}

/// `etape keys` works on the data directory; a running service accepts a new key at once and
/// refuses a revoked one within a second.
#[tokio::test]
async fn keys_made_on_the_command_line_work_on_a_running_service() {
    use std::process::Command;

    let data = tempfile::tempdir().unwrap();
    let server = crate::helpers::RunningBinary::start(data.path(), &["--no-demo".as_ref()], &[]);
    let etape = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_etape"))
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .envs(crate::helpers::store_url(data.path()).map(|url| ("ETAPE__STORAGE__URL", url)))
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (ok, _, error) = etape(&[
        "keys",
        "create",
        "--organisation",
        "martin",
        "--name",
        "TMS",
        "--role",
        "carrier",
    ]);
    assert!(!ok);
    assert!(error.contains("--new-organisation-name"), "{error}");
    let (ok, _, error) = etape(&[
        "keys",
        "create",
        "--organisation",
        "demo",
        "--name",
        "x",
        "--role",
        "pilot",
    ]);
    assert!(
        !ok && error.contains("invalid value 'pilot' for '--role <ROLE>'"),
        "{error}"
    );
    let (ok, key, _) = etape(&[
        "keys",
        "create",
        "--organisation",
        "martin",
        "--new-organisation-name",
        "Transports Martin",
        "--name",
        "TMS",
        "--role",
        "carrier",
        "--role",
        "dispatcher",
    ]);
    assert!(ok);
    let key = key.trim().to_owned();
    let client = reqwest::Client::new();
    let shipments = |key: String| {
        let (client, url) = (client.clone(), format!("{}/v1/shipments", server.base));
        async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut status = 401;
    for _ in 0..30 {
        status = shipments(key.clone()).await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    let (_, listed, _) = etape(&["keys", "list", "--organisation", "martin"]);
    let id = listed.split('\t').next().unwrap().to_owned();
    assert!(
        listed.contains("carrier,dispatcher") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key));
    let (ok, _, _) = etape(&["keys", "revoke", &id]);
    assert!(ok);
    let mut status = 200;
    for _ in 0..30 {
        status = shipments(key.clone()).await;
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401);
    assert!(!etape(&["keys", "revoke", "nothing"]).0);

    // Operator keys come from here: this one reaches the installation's routes.
    let (ok, operator, _) = etape(&[
        "keys",
        "create",
        "--organisation",
        "martin",
        "--name",
        "ops",
        "--role",
        "operator",
    ]);
    assert!(ok);
    let mut status = 401;
    for _ in 0..30 {
        status = client
            .get(format!("{}/v1/organisations", server.base))
            .bearer_auth(operator.trim())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}
