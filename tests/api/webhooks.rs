//! Standard Webhooks through the real server: deliveries checked by the official Python
//! library, secret rotation, replays, and a receiver answering 410 Gone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, TEST_NOW};
use crate::tracking::{receiver, Delivery, Received};

/// Verifies each delivery of the file `argv[2]` under the secret `argv[1]`, one verdict a
/// line, with the official library's own `Webhook.verify` (its timestamp tolerance included).
const VERIFY: &str = r#"
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

webhook = Webhook(sys.argv[1])
with open(sys.argv[2]) as deliveries:
    for delivery in json.load(deliveries):
        try:
            webhook.verify(delivery["body"], delivery["headers"])
            print("verified")
        except WebhookVerificationError as error:
            print(f"refused: {error}")
"#;

const HOW_TO_INSTALL: &str = "the official library is needed: scripts/test installs it \
     (target/tools/venv/bin/python -m pip install standardwebhooks==1.1.0), or set \
     ETAPE_TEST_PYTHON to an interpreter that has it";

/// The interpreter that has the library: `ETAPE_TEST_PYTHON` (scripts/test sets it), or the
/// test tools' environment that scripts/test makes.
fn python() -> PathBuf {
    std::env::var_os("ETAPE_TEST_PYTHON")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/python")
        })
}

/// What the official Python library (`standardwebhooks`) says of each delivery under
/// `secret`: `verified`, or `refused: ` and its reason. Without the library this fails: a
/// check of interoperability that skips itself would prove nothing.
pub(crate) fn official_verdicts(secret: &str, deliveries: &[Delivery]) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("deliveries.json");
    let listed: Vec<Value> = deliveries
        .iter()
        .map(|delivery| {
            let body = String::from_utf8(delivery.body.clone()).expect("a JSON body");
            json!({"headers": delivery.headers, "body": body})
        })
        .collect();
    std::fs::write(&path, serde_json::to_vec(&listed).unwrap()).unwrap();
    let python = python();
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(VERIFY)
        .arg(secret)
        .arg(&path)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "{} does not run ({error}): {HOW_TO_INSTALL}",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "{} could not verify: {}\n{HOW_TO_INSTALL}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A webhook of `events` to `url`: its id and its secret.
async fn subscribe(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let (status, webhook) = app
        .post_json("/v1/webhooks", &json!({"url": url, "events": events}))
        .await;
    assert_eq!(status, 201, "{webhook}");
    (
        webhook["id"].as_str().unwrap().to_owned(),
        webhook["secret"].as_str().unwrap().to_owned(),
    )
}

/// A shipment of two stops, by its id.
async fn new_shipment(app: &TestApp) -> String {
    let (status, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "R-1", "vehicle_id": "V-1", "vehicle_class": "van",
                    "stops": [{"id": "a", "lat": 48.85, "lon": 2.35}, {"id": "b", "lat": 45.76, "lon": 4.84}],
                    "planned_departure": TEST_NOW}),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");
    shipment["id"].as_str().unwrap().to_owned()
}

/// The shipment arrives at its stop `index`: an `arrived` notice, and more at the last stop.
async fn arrive(app: &TestApp, shipment: &str, index: usize) {
    let (status, answer) = app
        .post_json(
            &format!("/v1/shipments/{shipment}/events"),
            &json!({"stop_index": index, "kind": "arrived"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
}

/// Everything received, once at least `count` deliveries came.
async fn deliveries(received: &Received, count: usize) -> Vec<Delivery> {
    for _ in 0..200 {
        let all = received.all();
        if all.len() >= count {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{count} deliveries never came: {:?}", received.all());
}

async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn timestamp(delivery: &Delivery) -> i64 {
    delivery.header("webhook-timestamp").parse().unwrap()
}

#[tokio::test]
async fn a_replayed_delivery_keeps_its_webhook_id_and_a_stale_one_fails_the_official_library() {
    let app = spawn_app().await;
    let (url, received, hook_server) = receiver(200).await;
    let (webhook_id, secret) = subscribe(&app, &url, &["arrived"]).await;
    let shipment = new_shipment(&app).await;
    arrive(&app, &shipment, 0).await;
    let first = deliveries(&received, 1).await.remove(0);
    let delivery_id = first.header("webhook-id").to_owned();
    assert!(delivery_id.starts_with("dlv_"), "{first:?}");
    assert_eq!(first.header("x-etape-attempt"), "1");
    // Timestamps are whole seconds: the replay's is a later one.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let replay = format!("/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay");
    let (status, attempt) = app.post_json(&replay, &json!({})).await;
    assert_eq!(status, 200, "{attempt}");
    assert_eq!(
        (
            attempt["id"].as_str(),
            attempt["attempt"].as_u64(),
            attempt["outcome"].as_str(),
            attempt["status_code"].as_u64(),
            attempt["replayed"].as_bool(),
        ),
        (
            Some(delivery_id.as_str()),
            Some(2),
            Some("delivered"),
            Some(200),
            Some(true)
        ),
        "{attempt}"
    );
    let both = deliveries(&received, 2).await;
    assert_eq!(both.len(), 2);
    let again = both[1].clone();
    assert_eq!(again.header("webhook-id"), delivery_id);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("x-etape-attempt"), "2");
    assert!(timestamp(&again) > timestamp(&first), "{first:?} {again:?}");
    assert_ne!(
        again.header("webhook-signature"),
        first.header("webhook-signature")
    );
    let (_, log) = get_json(&app, &format!("/v1/webhooks/{webhook_id}/deliveries")).await;
    let listed: Vec<(u64, bool)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["attempt"].as_u64().unwrap(),
                entry["replayed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [(2, true), (1, false)], "{log}");

    // The capture of the replay sent again past the library's five minutes: signed as the
    // service would have signed it then, and refused for its age alone.
    let old = chrono::Utc::now().timestamp() - 301;
    let mut stale = again.clone();
    let resigned = etape::adapters::webhooks::sign(&secret, &delivery_id, old, &stale.body);
    assert!(etape::adapters::webhooks::verify(
        &secret,
        &delivery_id,
        old,
        &stale.body,
        &resigned
    ));
    stale
        .headers
        .insert("webhook-timestamp".into(), old.to_string());
    stale.headers.insert("webhook-signature".into(), resigned);
    // A timestamp moved without its signature.
    let mut moved = again.clone();
    moved.headers.insert(
        "webhook-timestamp".into(),
        (timestamp(&again) + 1).to_string(),
    );
    assert_eq!(
        official_verdicts(&secret, &[first, again, stale, moved]),
        [
            "verified",
            "verified",
            "refused: Message timestamp too old",
            "refused: No matching signature found"
        ]
    );

    // No such delivery, or another webhook's: not found, and nothing sent.
    let (status, _) = app
        .post_json(
            &format!("/v1/webhooks/{webhook_id}/deliveries/dlv_none/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
    let (other_id, _) = subscribe(&app, &url, &["departed"]).await;
    let (status, _) = app
        .post_json(
            &format!("/v1/webhooks/{other_id}/deliveries/{delivery_id}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(received.all().len(), 2);
    hook_server.stop(true).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_receiver_answering_410_gone_disables_its_webhook_and_gets_nothing_more() {
    let app = spawn_app().await;
    let (url, received, hook_server) = receiver(410).await;
    let (webhook_id, _) = subscribe(&app, &url, &["arrived", "departed", "delivered"]).await;
    let shipment = new_shipment(&app).await;
    arrive(&app, &shipment, 0).await;
    let mut webhook = Value::Null;
    for _ in 0..200 {
        (_, webhook) = get_json(&app, &format!("/v1/webhooks/{webhook_id}")).await;
        if webhook["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(webhook["enabled"], false, "{webhook}");
    assert_eq!(
        webhook["disabled_reason"], "the receiver answered 410 Gone",
        "{webhook}"
    );
    assert!(webhook["disabled_at"].is_string(), "{webhook}");
    assert!(webhook.get("secret").is_none(), "{webhook}");
    let (_, listed) = get_json(&app, "/v1/webhooks").await;
    assert_eq!(
        listed[0]["disabled_reason"],
        "the receiver answered 410 Gone"
    );

    // Not retried, and later notices go nowhere: the last stop's arrival and the delivery.
    arrive(&app, &shipment, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received.all().len(), 1, "{:?}", received.all());
    let (_, log) = get_json(&app, &format!("/v1/webhooks/{webhook_id}/deliveries")).await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0]["outcome"].as_str(), log[0]["status_code"].as_u64()),
        (Some("failed"), Some(410))
    );

    // Nor can a replay reach it.
    let delivery_id = log[0]["id"].as_str().unwrap();
    let (status, refusal) = app
        .post_json(
            &format!("/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 409, "{refusal}");
    assert!(
        refusal["message"].as_str().unwrap().contains("410 Gone"),
        "{refusal}"
    );
    assert_eq!(received.all().len(), 1);
    hook_server.stop(true).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_through_its_grace_and_not_after() {
    for grace_secs in [24 * 60 * 60, 0] {
        let app =
            spawn_app_with(|settings| settings.webhooks.rotation_grace_secs = grace_secs).await;
        let (url, received, hook_server) = receiver(200).await;
        let (webhook_id, old) = subscribe(&app, &url, &["arrived"]).await;
        let (status, rotated) = app
            .post_json(
                &format!("/v1/webhooks/{webhook_id}/rotate-secret"),
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{rotated}");
        let new = rotated["secret"].as_str().unwrap().to_owned();
        // `whsec_` and the base64 of 32 bytes.
        assert_eq!(new.len(), "whsec_".len() + 44, "{new}");
        assert!(new.starts_with("whsec_") && new != old);
        let (_, shown) = get_json(&app, &format!("/v1/webhooks/{webhook_id}")).await;
        assert!(shown.get("secret").is_none(), "the secret is shown once");
        assert!(shown["previous_secret_expires_at"].is_string(), "{shown}");

        let shipment = new_shipment(&app).await;
        arrive(&app, &shipment, 0).await;
        let delivery = deliveries(&received, 1).await.remove(0);
        let signatures = delivery.header("webhook-signature").split(' ').count();
        let by_new = official_verdicts(&new, std::slice::from_ref(&delivery));
        let by_old = official_verdicts(&old, std::slice::from_ref(&delivery));
        if grace_secs > 0 {
            assert_eq!(signatures, 2, "{delivery:?}");
            assert_eq!(by_new, ["verified"]);
            assert_eq!(by_old, ["verified"]);
        } else {
            assert_eq!(signatures, 1, "{delivery:?}");
            assert_eq!(by_new, ["verified"]);
            assert_eq!(by_old, ["refused: No matching signature found"]);
        }
        // The deprecated signature is the new secret's alone.
        assert!(etape::adapters::webhooks::verify_legacy(
            &new,
            &delivery.body,
            delivery.header("x-etape-signature")
        ));
        hook_server.stop(true).await;
        app.stop().await.unwrap();
    }
    let app = spawn_app().await;
    let (status, _) = app
        .post_json("/v1/webhooks/whk_none/rotate-secret", &json!({}))
        .await;
    assert_eq!(status, 404);
}
