//! The typed contract: every request and answer of `/openapi.json` has a schema a client can
//! generate code from, the webhook payloads are in its `webhooks` section, `/docs` renders it,
//! and a client generated from it runs a TMS's first steps against the real server.

use std::path::Path;

use serde_json::{Map, Value};

use crate::dashboard::{chromium, Driven};
use crate::helpers::{spawn_app, TEST_NOW};

async fn document() -> Value {
    let app = spawn_app().await;
    app.get("/openapi.json").await.json().await.unwrap()
}

/// Answers with no body on purpose, besides the 204s: the OsmAnd protocol's phone apps read
/// the status alone, and expect a 200.
const EMPTY_ANSWERS: &[(&str, &str, &str)] = &[
    ("GET", "/v1/osmand/{token}", "200"),
    ("POST", "/v1/osmand/{token}", "200"),
];

/// Finds, by their path in the document, the schemas a client could only read as a bag of
/// values: an object with no `properties`, no typed `additionalProperties` and no
/// composition, and a schema that says nothing at all (`{}`, what `serde_json::Value` gives).
struct Walk<'a> {
    schemas: &'a Map<String, Value>,
    found: Vec<String>,
}

impl Walk<'_> {
    fn schema(&mut self, schema: &Value, at: &str, resolving: &mut Vec<String>) {
        let Some(fields) = schema.as_object() else {
            self.found.push(format!("{at}: not a schema"));
            return;
        };
        if let Some(reference) = fields.get("$ref").and_then(Value::as_str) {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or(reference)
                .to_owned();
            // A type that contains itself is walked once.
            if resolving.contains(&name) {
                return;
            }
            let Some(target) = self.schemas.get(&name) else {
                self.found
                    .push(format!("{at}: {reference} resolves to nothing"));
                return;
            };
            resolving.push(name.clone());
            self.schema(target, &format!("{at} → {name}"), resolving);
            resolving.pop();
            return;
        }
        let composed = ["oneOf", "anyOf", "allOf"]
            .iter()
            .any(|key| fields.contains_key(*key));
        for key in ["oneOf", "anyOf", "allOf"] {
            for (index, part) in fields
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                self.schema(part, &format!("{at}/{key}[{index}]"), resolving);
            }
        }
        let types: Vec<&str> = match fields.get("type") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let properties = fields.get("properties").and_then(Value::as_object);
        let additional = fields.get("additionalProperties");
        let typed_additional = additional
            .and_then(Value::as_object)
            .is_some_and(|schema| !schema.is_empty());
        let says_something = !types.is_empty()
            || composed
            || properties.is_some()
            || ["items", "enum", "const"]
                .iter()
                .any(|key| fields.contains_key(*key));
        if !says_something {
            self.found.push(format!("{at}: a schema of any value"));
        }
        if types.contains(&"object")
            && properties.is_none_or(Map::is_empty)
            && !typed_additional
            && !composed
        {
            self.found
                .push(format!("{at}: an object of unnamed fields"));
        }
        for (name, property) in properties.into_iter().flatten() {
            self.schema(property, &format!("{at}.{name}"), resolving);
        }
        if typed_additional {
            self.schema(additional.unwrap(), &format!("{at}{{*}}"), resolving);
        }
        if let Some(items) = fields.get("items") {
            self.schema(items, &format!("{at}[]"), resolving);
        }
    }

    /// Each content of a request body or a response, which must have a schema.
    fn contents(&mut self, contents: Option<&Value>, at: &str) {
        let Some(contents) = contents.and_then(Value::as_object) else {
            self.found.push(format!("{at}: no content"));
            return;
        };
        for (media_type, content) in contents {
            // A stream's schema is the one of each event, which its description names.
            if media_type == "text/event-stream" {
                continue;
            }
            let at = format!("{at} {media_type}");
            match content.get("schema") {
                Some(schema) => self.schema(schema, &at, &mut Vec::new()),
                None => self.found.push(format!("{at}: no schema")),
            }
        }
    }

    fn operations(&mut self, section: &Value, kind: &str) {
        for (path, item) in section.as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let method = method.to_uppercase();
                let at = format!("{kind} {method} {path}");
                if let Some(body) = operation.get("requestBody") {
                    self.contents(body.get("content"), &format!("{at} request"));
                }
                for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                    // Webhook receivers answer; what they say is not read.
                    let empty = (method.as_str(), path.as_str(), status.as_str());
                    if status == "204" || kind == "webhook" || EMPTY_ANSWERS.contains(&empty) {
                        continue;
                    }
                    self.contents(response.get("content"), &format!("{at} {status}"));
                }
            }
        }
    }
}

#[tokio::test]
async fn every_request_and_answer_in_the_document_has_a_typed_schema() {
    let document = document().await;
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let mut walk = Walk {
        schemas,
        found: Vec::new(),
    };
    walk.operations(&document["paths"], "path");
    walk.operations(&document["webhooks"], "webhook");
    assert!(
        walk.found.is_empty(),
        "untyped in /openapi.json:\n{}",
        walk.found.join("\n")
    );
}

#[test]
fn the_walk_names_what_it_finds() {
    let schemas = serde_json::json!({
        "Bag": {"type": "object"},
        "Map": {"type": "object", "additionalProperties": {}},
        "Typed": {"type": "object", "properties": {"bag": {"$ref": "#/components/schemas/Bag"},
                                                    "any": {}, "self": {"$ref": "#/components/schemas/Typed"}}},
    });
    let mut walk = Walk {
        schemas: schemas.as_object().unwrap(),
        found: Vec::new(),
    };
    let paths = serde_json::json!({"/x": {"get": {"responses": {
        "200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Typed"}}}},
        "201": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Map"}}}},
        "202": {"description": "no content"},
        "204": {"description": "nothing"},
    }}}});
    walk.operations(&paths, "path");
    walk.found.sort();
    assert_eq!(
        walk.found,
        [
            "path GET /x 200 application/json → Typed.any: a schema of any value",
            "path GET /x 200 application/json → Typed.bag → Bag: an object of unnamed fields",
            "path GET /x 201 application/json → Map: an object of unnamed fields",
            "path GET /x 202: no content",
        ]
    );
}

#[tokio::test]
async fn the_positions_body_is_declared_in_its_three_content_types() {
    let document = document().await;
    let body = &document["paths"]["/v1/positions"]["post"]["requestBody"]["content"];
    let mut types: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        ["application/json", "application/x-ndjson", "text/csv"]
    );
    assert_eq!(body["text/csv"]["schema"]["type"], "string");
    assert_eq!(
        body["application/x-ndjson"]["schema"]["$ref"],
        "#/components/schemas/PingBody"
    );
    let ping = &document["components"]["schemas"]["PingBody"];
    let mut required: Vec<&str> = ping["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["lat", "lon", "timestamp", "vehicle_id"]);
}

#[tokio::test]
async fn every_webhook_event_is_in_the_webhooks_section_with_its_payload_and_headers() {
    let document = document().await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "`webhooks` needs OpenAPI 3.1"
    );
    let webhooks = document["webhooks"].as_object().unwrap();
    let mut listed: Vec<&str> = webhooks.keys().map(String::as_str).collect();
    listed.sort_unstable();
    let mut events = etape::adapters::webhooks::EVENTS.to_vec();
    events.sort_unstable();
    assert_eq!(listed, events);
    let schemas = &document["components"]["schemas"];
    for (event, item) in webhooks {
        let operation = &item["post"];
        let headers: Vec<&str> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|parameter| parameter["in"] == "header")
            .filter_map(|parameter| parameter["name"].as_str())
            .collect();
        for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            assert!(headers.contains(&header), "{event}: {headers:?}");
        }
        let reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap();
        let payload = &schemas[reference.rsplit('/').next().unwrap()];
        let fixed = &payload["allOf"][1]["properties"];
        assert_eq!(
            fixed["event"]["enum"],
            serde_json::json!([event]),
            "{payload}"
        );
        let data = fixed["data"]["$ref"].as_str().unwrap();
        assert!(
            schemas[data.rsplit('/').next().unwrap()]["properties"].is_object(),
            "{event}: {data}"
        );
    }
}

#[tokio::test]
async fn docs_render_the_reference_from_the_binary_without_a_network() {
    let app = spawn_app().await;
    let page = app.get("/docs").await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.starts_with("default-src 'none'; script-src 'self';"),
        "{policy}"
    );
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    // No other origin is allowed for anything: the page cannot reach the network.
    assert!(!policy.contains("http"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("/docs/docs.js"), "{html}");
    let bundle = app.get("/docs/redoc.js").await;
    assert!(bundle.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(bundle.text().await.unwrap().contains("Version: 3.0.1"));
    let Some(browser) = chromium() else {
        return;
    };
    let url = format!("{}/docs", app.address);
    let origin = app.address.clone();
    let (rendered, elsewhere) = tokio::task::spawn_blocking(move || {
        let mut page = Driven::open(browser);
        page.call("Page.enable", serde_json::json!({}));
        page.call("Page.navigate", serde_json::json!({"url": url}));
        // The title is the document's, and an operation of it is listed: Redoc read
        // /openapi.json and drew it.
        let rendered = page.wait_for(
            "document.body.innerText.includes('etape') \
             && document.body.innerText.includes('/v1/eta/batch')",
            30,
        );
        page.screenshot("docs.png");
        // Whatever the page asked of another origin (Redoc's footer logo, from its CDN) the
        // policy refused: no answer came, not a byte.
        let elsewhere = page.evaluate(&format!(
            "performance.getEntriesByType('resource')\
             .filter(e => !e.name.startsWith('{origin}/') && !e.name.startsWith('data:') \
                     && !e.name.startsWith('blob:'))\
             .filter(e => (e.responseStatus || 0) > 0 || e.transferSize > 0)\
             .map(e => e.name)"
        ));
        (rendered, elsewhere)
    })
    .await
    .unwrap();
    assert!(
        rendered,
        "the reference did not render; see target/tmp/docs.png"
    );
    assert_eq!(elsewhere, serde_json::json!([]), "fetched from elsewhere");
}

/// openapi-python-client from PyPI generates a client from the served document, and
/// `client_smoke.py` drives the real server with it. It needs the interpreter scripts/test
/// installs the generator into (`ETAPE_TEST_PYTHON`); without that variable it says so loudly
/// and skips, as a plain `cargo test` has no Python tools.
#[tokio::test]
async fn a_client_generated_from_the_document_drives_the_real_server() {
    let Some(python) = std::env::var_os("ETAPE_TEST_PYTHON").filter(|path| !path.is_empty()) else {
        eprintln!("\n!!!!!!!!!! SKIPPED the generated client's test: ETAPE_TEST_PYTHON is not set (scripts/test sets it) !!!!!!!!!!\n");
        return;
    };
    let python = std::path::PathBuf::from(python);
    let app = spawn_app().await;
    let document = app.get("/openapi.json").await.text().await.unwrap();
    let key = app.keys["carrier"].clone();
    let address = app.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        let scratch = tempfile::tempdir().unwrap();
        let spec = scratch.path().join("openapi.json");
        std::fs::write(&spec, document).unwrap();
        // The generator is installed beside the interpreter, in the same environment.
        let generator = python.with_file_name("openapi-python-client");
        let generated = std::process::Command::new(&generator)
            .arg("generate")
            .arg("--path")
            .arg(&spec)
            .args(["--meta", "none"])
            .arg("--output-path")
            .arg(scratch.path().join("etape_client"))
            .output()
            .unwrap_or_else(|error| {
                panic!(
                    "{} does not run ({error}): scripts/test installs it",
                    generator.display()
                )
            });
        assert!(
            generated.status.success(),
            "the generator failed: {}{}",
            String::from_utf8_lossy(&generated.stdout),
            String::from_utf8_lossy(&generated.stderr)
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/client_smoke.py");
        std::process::Command::new(&python)
            .arg(script)
            .args([address.as_str(), key.as_str(), TEST_NOW])
            .env("PYTHONPATH", scratch.path())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("ok"),
        "the smoke script failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
