use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use etape::app::startup::Application;
use etape::config::{LogSettings, Settings};
use etape::domain::clock::Clock;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// The model the embedded default serves.
pub const BUNDLED_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/models/bundled");

/// The instant the tests live at, so that dates in them never age past the one-year limit.
pub const TEST_NOW: &str = "2026-11-28T09:00:00Z";

pub struct TestApp {
    pub address: String,
    /// Sends the demo organisation's carrier key unless a request sets its own.
    pub client: reqwest::Client,
    /// The first start's keys by role: the demo organisation's `carrier`, `dispatcher`,
    /// `partner` and `admin`, and the installation's `operator`.
    pub keys: std::collections::HashMap<String, String>,
    shutdown: Option<oneshot::Sender<()>>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The app's data directory, removed with it.
    _data: tempfile::TempDir,
    /// What it was started with, to start it again (`restart_at`).
    settings: Settings,
}

/// Starts the real server on 127.0.0.1, on a port of its own. `TEST_LOG=1` shows its logs.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::default();
    settings.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    settings.server.workers = 1;
    settings.server.shutdown_timeout_secs = 5;
    // The rules engine's own behaviour is what most tests check; model tests opt in.
    settings.model.dir = "target/tmp/no-model-here".into();
    let data = tempfile::tempdir().expect("a temporary directory");
    settings.storage.data_dir = data.path().to_owned();
    settings.storage.url = store_url(data.path());
    settings.webhooks.secrets_key_file = shared_key_file(data.path());
    settings.demo.enabled = false;
    // Estimates follow pings within a tenth of a second, so that tests need not wait.
    settings.tracking.debounce_ms = 50;
    settings.webhooks.backoff_initial_ms = 20;
    settings.webhooks.backoff_max_ms = 100;
    // The tests' receivers listen on 127.0.0.1; the check of destinations has tests of its own.
    settings.webhooks.allow_private_networks = true;
    customise(&mut settings);
    if std::env::var_os("TEST_LOG").is_some() {
        etape::telemetry::init_logging(&LogSettings {
            filter: "debug".into(),
            ..settings.log.clone()
        });
    }
    let now = DateTime::parse_from_rfc3339(TEST_NOW)
        .unwrap()
        .with_timezone(&Utc);
    launch(settings, now, data).await
}

/// Serves `settings` from `data` with the clock fixed at `now`, once the live tracking of the
/// previous start is back (the server listens before: `restart::` tests that part).
async fn launch(settings: Settings, now: DateTime<Utc>, data: tempfile::TempDir) -> TestApp {
    let application =
        Application::build_with_clock(&settings, Clock::Fixed(now)).expect("the app builds");
    let port = application.port();
    let tracker = application.tracker();
    let (sender, receiver) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async move {
        let _ = receiver.await;
    }));
    tracker
        .wait_restored()
        .await
        .expect("the live tracking is restored");
    let keys = demo_keys(&settings.storage.data_dir);
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: client_with_key(&keys["carrier"]),
        keys,
        shutdown: Some(sender),
        server,
        _data: data,
        settings,
    }
}

/// With `ETAPE_TEST_STORE=postgres`, the whole suite runs on PostgreSQL: each data directory
/// gets a database of its own on the server `ETAPE_TEST_POSTGRES_URL` names, the same one on
/// every start (the restart tests need it).
pub fn store_url(data_dir: &std::path::Path) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    static DATABASES: OnceLock<Mutex<HashMap<std::path::PathBuf, String>>> = OnceLock::new();
    match std::env::var("ETAPE_TEST_STORE").as_deref() {
        Ok("postgres") => {}
        Ok("sqlite") | Err(_) => return None,
        Ok(other) => panic!("ETAPE_TEST_STORE is sqlite or postgres, not {other}"),
    }
    let server = std::env::var("ETAPE_TEST_POSTGRES_URL")
        .expect("ETAPE_TEST_STORE=postgres needs ETAPE_TEST_POSTGRES_URL");
    let mut databases = DATABASES.get_or_init(Default::default).lock().unwrap();
    let count = databases.len();
    let url = databases.entry(data_dir.to_owned()).or_insert_with(|| {
        let name = format!("api_{}_{count}", std::process::id());
        etape::adapters::store::postgres::PostgresStore::scratch_database(&server, &name)
            .expect("a scratch database")
    });
    Some(url.clone())
}

/// On PostgreSQL (`ETAPE_TEST_STORE=postgres`), the key file that seals the webhook secrets
/// of the services on `data_dir`, as an operator gives one to every replica: made at the first
/// start, the same on every start after.
pub fn shared_key_file(data_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    use base64::Engine;

    store_url(data_dir)?;
    let path = data_dir.join("shared-secrets.key");
    if !path.exists() {
        let key: [u8; 32] = rand::random();
        let text = format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        etape::partners::keys::write_private(&path, text.as_bytes()).expect("a key file");
    }
    Some(path)
}

/// The PostgreSQL server the tests may use, if any.
pub fn postgres_server() -> Option<String> {
    etape::adapters::store::postgres::PostgresStore::test_server()
}

/// A database of its own, named after `name` and this run, on that server, for the
/// replicas a test starts to share; none without a server.
pub fn shared_database(name: &str) -> Option<String> {
    let server = postgres_server()?;
    let name = format!("{name}_{}", std::process::id());
    let database =
        etape::adapters::store::postgres::PostgresStore::scratch_database(&server, &name)
            .expect("a scratch database");
    Some(database)
}

/// The keys the first start wrote to the data directory, by role.
pub fn demo_keys(data_dir: &std::path::Path) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(data_dir.join(etape::partners::keys::DEMO_KEYS_FILE))
        .expect("the first start writes the demo keys");
    text.lines()
        .filter_map(|line| line.strip_prefix("ETAPE_")?.split_once("_KEY="))
        .map(|(role, key)| (role.to_ascii_lowercase(), key.to_owned()))
        .collect()
}

/// A client that sends `key` with every request that sets no `Authorization` of its own.
pub fn client_with_key(key: &str) -> reqwest::Client {
    etape::adapters::webhooks::install_tls_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The real binary, serving on a free port of 127.0.0.1 with JSON logs.
pub struct RunningBinary {
    pub child: std::process::Child,
    pub base: String,
    /// With the carrier key of the data directory's demo organisation.
    pub client: reqwest::Client,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RunningBinary {
    /// Starts `etape serve` with `data_dir` and `args` after the bind and log flags, and
    /// waits until it listens.
    pub fn start(
        data_dir: &std::path::Path,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_bound("127.0.0.1:0", data_dir, args, env)
    }

    /// As `start`, listening on `bind` (port 0 picks one); it is reached through 127.0.0.1.
    /// Returns once `/readyz` says the previous run's live tracking is back.
    pub fn start_bound(
        bind: &str,
        data_dir: &std::path::Path,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> Self {
        let mut binary = Self::start_listening(bind, data_dir, args, env);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while binary.readyz_status() != Some(200) {
            if let Ok(Some(exit)) = binary.child.try_wait() {
                panic!(
                    "the binary stopped ({exit}) before it was ready: {:?}",
                    binary.logs()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not ready within 120 s: {:?}",
                binary.logs()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        binary
    }

    /// As `start_bound`, returning as soon as the port listens, ready or not.
    pub fn start_listening(
        bind: &str,
        data_dir: &std::path::Path,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let key_file = shared_key_file(data_dir);
        let mut command = Command::new(env!("CARGO_BIN_EXE_etape"));
        command
            .args(["serve", "--bind", bind, "--log-format", "json"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("ETAPE__SERVER__WORKERS", "1")
            // Receivers on 127.0.0.1, as in `spawn_app`; `env` may turn the check back on.
            .env("ETAPE__WEBHOOKS__ALLOW_PRIVATE_NETWORKS", "true")
            .envs(store_url(data_dir).map(|url| ("ETAPE__STORAGE__URL", url)))
            .envs(key_file.map(|path| ("ETAPE__WEBHOOKS__SECRETS_KEY_FILE", path)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let port = loop {
            let line = lines.next().expect("the server logs").unwrap();
            logs.lock().unwrap().push(line.clone());
            let Ok(record) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(port) = record["fields"]["port"].as_u64() {
                break port;
            }
        };
        // Keep reading the logs so that the server never blocks on a full pipe.
        let kept = logs.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: client_with_key(&demo_keys(data_dir)["carrier"]),
            logs,
        }
    }

    /// Every line the server has logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The status `GET /readyz` answers, through a plain socket so that a synchronous caller
    /// can ask; none while nothing answers (the process gone).
    pub fn readyz_status(&self) -> Option<u16> {
        use std::io::{Read, Write};
        let address = self.base.strip_prefix("http://")?;
        let mut stream = std::net::TcpStream::connect(address).ok()?;
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok()?;
        write!(
            stream,
            "GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().nth(1)?.parse().ok()
    }
}

impl RunningBinary {
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the request is sent")
            .json()
            .await
            .expect("a JSON body")
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestApp {
    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the request is sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.post(path, body.to_string()).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// A body posted as it is, under its own content type; the answer's JSON when it has one.
    pub async fn post_text(&self, path: &str, content_type: &str, body: String) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the request is sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the request is sent")
    }

    /// Stops the server and starts it again on the same data directory (and database) with
    /// the clock at `now`: how a test sees time pass.
    pub async fn restart_at(self, now: DateTime<Utc>) -> TestApp {
        let TestApp {
            shutdown,
            server,
            _data: data,
            settings,
            ..
        } = self;
        if let Some(sender) = shutdown {
            let _ = sender.send(());
        }
        server
            .await
            .expect("the server task does not panic")
            .expect("the server stops cleanly");
        launch(settings, now, data).await
    }

    /// Triggers the graceful shutdown and waits for the server to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        self.server.await.expect("the server task does not panic")
    }
}

pub fn lille_to_marseille(departure: &str, vehicle_class: &str) -> Value {
    json!({
        "origin": {"lat": 50.63, "lon": 3.06},
        "destination": {"lat": 43.30, "lon": 5.37},
        "departure_time": departure,
        "vehicle_class": vehicle_class,
    })
}

/// Segments of a given kind in an ETA response's timeline.
pub fn segments<'a>(response: &'a Value, kind: &str) -> Vec<&'a Value> {
    response["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

/// Where test artifacts go, for tools that check them after the run.
pub fn artifact_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Every file and directory under `dir`, `dir` included, that others than its owner may
/// read, write or enter, or whose owner's mode is not read and write (files) or read, write
/// and enter (directories), with its mode in octal.
#[cfg(unix)]
pub fn not_private(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        // A running service may remove a file between the listing and the look (a merged
        // ping segment).
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = metadata.permissions().mode() & 0o777;
        let expected = if metadata.is_dir() { 0o700 } else { 0o600 };
        if mode != expected {
            found.push(format!("{} {mode:o}", path.display()));
        }
        if metadata.is_dir() {
            let entries = std::fs::read_dir(&path).into_iter().flatten().flatten();
            pending.extend(entries.map(|entry| entry.path()));
        }
    }
    found.sort();
    found
}

/// Sends a request and reads its JSON answer, whatever its status.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// A request header as text, empty when absent or not text: what a test receiver records.
pub fn header_text(request: &actix_web::HttpRequest, name: &str) -> String {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned()
}
