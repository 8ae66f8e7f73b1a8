//! The database going away: PostgreSQL stopped in the middle of a stream of pings and ETA
//! reads, then started again. While it is down every request that needs it is answered 503
//! with `Retry-After`, fast; once it is back the same process answers 200 again; and every
//! ping that was answered 200 is in the store.
//!
//! On a cluster of its own (`ETAPE_TEST_POSTGRES_CTL` is pg_ctl as the clusters' user): the
//! suite's shared cluster serves the other PostgreSQL tests meanwhile. Skipped without it.
//!
//! The embedded store's full disk: the data directory on a 4 MiB tmpfs of the test's own,
//! filled to the last byte; skipped where `mount` is not allowed (not root).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp, TEST_NOW};

const VEHICLE: &str = "OUTAGE-1";

/// Longest a request may take to be refused while the store is down: the pool's two seconds
/// to give up on a connection, and a margin for a loaded machine.
const FAIL_FAST: Duration = Duration::from_secs(5);

/// A PostgreSQL cluster in a temporary directory, stopped and removed with it.
struct Cluster {
    ctl: Vec<String>,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn create() -> Option<Self> {
        let ctl = match std::env::var("ETAPE_TEST_POSTGRES_CTL") {
            Ok(ctl) if !ctl.trim().is_empty() => ctl,
            _ => {
                eprintln!("PostgreSQL outage test skipped: ETAPE_TEST_POSTGRES_CTL is not set");
                return None;
            }
        };
        let ctl: Vec<String> = ctl.split_whitespace().map(str::to_owned).collect();
        let dir = tempfile::tempdir().unwrap();
        // The clusters' user (postgres, when the suite runs as root) creates its directory here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self {
            ctl,
            log: dir.path().join("log"),
            data,
            port,
            _dir: dir,
        };
        cluster.pg_ctl(&["init", "-s", "-o", "-U etape --auth=trust -E UTF8"]);
        let settings = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\n",
            cluster.data.display()
        );
        let auto = cluster.data.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto).unwrap();
        text.push_str(&settings);
        std::fs::write(&auto, text).unwrap();
        cluster.start();
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://etape@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let status = Command::new(&self.ctl[0])
            .args(&self.ctl[1..])
            .args(args)
            .arg("-D")
            .arg(&self.data)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {args:?}: {status}");
    }

    fn start(&self) {
        let log = self.log.display().to_string();
        self.pg_ctl(&["start", "-w", "-l", &log]);
    }

    /// As an operator restarting it: the server tells each session it is shutting down.
    fn stop(&self) {
        self.pg_ctl(&["stop", "-w", "-m", "fast"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.ctl[0])
            .args(&self.ctl[1..])
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One answer to one ping.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    code: Option<String>,
    took: Duration,
}

fn ping_at(index: i64) -> DateTime<Utc> {
    let now: DateTime<Utc> = TEST_NOW.parse().unwrap();
    now - TimeDelta::hours(2) + TimeDelta::seconds(index)
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn post_ping(app: &TestApp, index: i64) -> Answer {
    let body = json!([{"vehicle_id": VEHICLE, "timestamp": stamp(ping_at(index)),
                       "lat": 45.0 + index as f64 * 0.0001, "lon": 4.84, "speed_kmh": 60}]);
    let started = Instant::now();
    answer_of(app.post("/v1/positions", body.to_string()).await, started).await
}

async fn get_eta(app: &TestApp, id: &str) -> Answer {
    let started = Instant::now();
    answer_of(app.get(&format!("/v1/shipments/{id}/eta")).await, started).await
}

async fn answer_of(response: reqwest::Response, started: Instant) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        code: body["code"].as_str().map(str::to_owned),
        took: started.elapsed(),
    }
}

/// A 503 as the store's absence answers it: fast, with a delay to retry after, and its code.
fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 503, "{what}");
    assert_eq!(answer.code.as_deref(), Some("unavailable"), "{what}");
    let retry_after: u64 = answer
        .retry_after
        .as_deref()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{what}: a Retry-After in seconds"));
    assert!(
        (1..=30).contains(&retry_after),
        "{what}: Retry-After {retry_after}"
    );
    assert!(answer.took < FAIL_FAST, "{what} took {:?}", answer.took);
}

async fn blocking(work: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(work).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_answers_503_meanwhile_and_loses_nothing_acknowledged() {
    let Some(cluster) = Cluster::create() else {
        return;
    };
    let cluster = std::sync::Arc::new(cluster);
    let url = cluster.url();
    let app = spawn_app_with(move |settings| settings.storage.url = Some(url)).await;
    let now: DateTime<Utc> = TEST_NOW.parse().unwrap();
    let (status, shipment) = app
        .post_json(
            "/v1/shipments",
            &json!({"reference": "OUT-1", "vehicle_id": VEHICLE, "vehicle_class": "articulated",
                    "origin": {"lat": 45.0, "lon": 4.84},
                    "stops": [{"id": "marseille", "lat": 43.30, "lon": 5.37}],
                    "planned_departure": stamp(now - TimeDelta::hours(2))}),
        )
        .await;
    assert_eq!(status, 201, "{shipment}");
    let id = shipment["id"].as_str().unwrap().to_owned();

    let mut acknowledged = Vec::new();
    let mut next = 0;
    for _ in 0..20 {
        let answer = post_ping(&app, next).await;
        assert_eq!(answer.status, 200, "ping {next} before the outage");
        acknowledged.push(next);
        next += 1;
    }
    assert_eq!(get_eta(&app, &id).await.status, 200);

    let stopping = cluster.clone();
    blocking(move || stopping.stop()).await;
    // Every request that needs the database is refused while it is down, none hangs.
    for _ in 0..5 {
        let answer = post_ping(&app, next).await;
        assert_unavailable(&answer, &format!("ping {next} while PostgreSQL is down"));
        next += 1;
    }
    assert_unavailable(
        &get_eta(&app, &id).await,
        "the ETA while PostgreSQL is down",
    );

    let starting = cluster.clone();
    blocking(move || starting.start()).await;
    let back = Instant::now();
    loop {
        let answer = post_ping(&app, next).await;
        match answer.status {
            200 => {
                acknowledged.push(next);
                next += 1;
                break;
            }
            503 => assert_unavailable(&answer, "a ping as PostgreSQL comes back"),
            other => panic!("ping {next} answered {other} as PostgreSQL comes back"),
        }
        next += 1;
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "still refused {:?} after PostgreSQL started again",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        let answer = post_ping(&app, next).await;
        assert_eq!(answer.status, 200, "ping {next} after the outage");
        acknowledged.push(next);
        next += 1;
    }
    assert_eq!(
        get_eta(&app, &id).await.status,
        200,
        "the ETA after the outage"
    );

    let stored = positions(&app).await;
    let lost: Vec<i64> = acknowledged
        .iter()
        .copied()
        .filter(|&index| !stored.contains(&ping_at(index)))
        .collect();
    assert!(lost.is_empty(), "answered 200 but not stored: {lost:?}");
    app.stop().await.unwrap();
}

/// A tmpfs of `bytes` mounted on a directory of its own, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            eprintln!("full-disk test skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the file system refuses: nothing is left for anyone.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0_u8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_keeps_what_it_had_and_recovers() {
    if std::env::var("ETAPE_TEST_STORE").as_deref() == Ok("postgres") {
        // The embedded store's test: with the suite on PostgreSQL, the pings are not on disk.
        return;
    }
    let Some(disk) = SmallDisk::mount(4 << 20) else {
        return;
    };
    let data = disk.path().join("live");
    let app = spawn_app_with(|settings| {
        settings.storage.data_dir = data.clone();
        settings.storage.url = None;
    })
    .await;
    let mut acknowledged = Vec::new();
    for index in 0..5 {
        assert_eq!(post_ping(&app, index).await.status, 200, "ping {index}");
        acknowledged.push(index);
    }

    let filler = disk.fill();
    for index in 5..10 {
        let answer = post_ping(&app, index).await;
        assert_unavailable(&answer, &format!("ping {index} on a full disk"));
    }
    // What was kept before is still there, and still served.
    let stored = positions(&app).await;
    for index in &acknowledged {
        assert!(stored.contains(&ping_at(*index)), "ping {index} lost");
    }

    std::fs::remove_file(filler).unwrap();
    for index in 5..10 {
        let answer = post_ping(&app, index).await;
        assert_eq!(answer.status, 200, "ping {index} once space returned");
        acknowledged.push(index);
    }
    let stored = positions(&app).await;
    let lost: Vec<i64> = acknowledged
        .iter()
        .copied()
        .filter(|&index| !stored.contains(&ping_at(index)))
        .collect();
    assert!(lost.is_empty(), "answered 200 but not kept: {lost:?}");
    app.stop().await.unwrap();
    drop(disk);
}

async fn positions(app: &TestApp) -> Vec<DateTime<Utc>> {
    let response = app
        .get(&format!(
            "/v1/vehicles/{VEHICLE}/positions?since={}",
            stamp(ping_at(0))
        ))
        .await;
    assert_eq!(response.status(), 200);
    response
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|ping| {
            DateTime::parse_from_rfc3339(ping["timestamp"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        })
        .collect()
}
