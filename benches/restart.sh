#!/usr/bin/env bash
# Restart: how soon the release build listens again, and how soon `/readyz` says the live
# estimates are back (200), with SIZES active shipments (1,000 and 10,000 by default), each
# with an hour of pings and the bundled model serving. Not in CI (minutes, and a figure of
# the machine's, not a check).
#   bash benches/restart.sh
#   SIZES=1000 bash benches/restart.sh
#   BIN=target/serve/etape bash benches/restart.sh      # the build scripts/serve makes
# Each size: a first start that registers the shipments through the API (their pings first,
# so that each registration computes one estimate), a SIGTERM, then the timed start on the
# same data directory. Prints one line per size and keeps the logs in a directory it names.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SIZES=${SIZES:-"1000 10000"}
BIN=${BIN:-target/release/etape}
MODEL=${MODEL:-data/models/bundled}

if [ "$BIN" = target/release/etape ]; then
  ensure_lightgbm_build_deps
  step "cargo build --release"
  cargo build --locked --release --bin etape
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pid=""
stop_service() {
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}
trap stop_service EXIT

# Starts the service on $1's data directory, logging to $2; sets $pid.
serve() {
  ETAPE__MODEL__DIR="$MODEL" ETAPE__API__RATE_LIMIT_PER_SECOND=0 \
    "$BIN" serve --bind "127.0.0.1:$port" --data-dir "$1" --no-demo >>"$2" 2>&1 &
  pid=$!
}
status_of() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$1" || true; }
millis() { date +%s%3N; }
seconds() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }

results=()
for size in $SIZES; do
  data="$work/$size/data"
  log="$work/$size/service.log"
  mkdir -p "$work/$size"

  step "$size shipments: first start, pings, registrations"
  serve "$data" "$log"
  until [ "$(status_of /readyz)" = 200 ] && [ -s "$data/demo-keys.env" ]; do
    kill -0 "$pid" || { tail -n 50 "$log"; exit 1; }
    sleep 0.1
  done
  python3 - "$port" "$data/demo-keys.env" "$size" <<'PYTHON'
import concurrent.futures, datetime, http.client, json, sys

port, keys_file, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
keys = dict(line.strip().split("=", 1) for line in open(keys_file) if "=" in line)
headers = {"Authorization": f"Bearer {keys['ETAPE_CARRIER_KEY']}"}
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
stamp = lambda at: at.strftime("%Y-%m-%dT%H:%M:%SZ")

def call(connection, method, path, body, content_type):
    connection.request(method, path, body=body, headers={**headers, "Content-Type": content_type})
    response = connection.getresponse()
    data = response.read()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {data[:300]!r}")
    return json.loads(data)

def origin(i):
    return 50.0 + (i % 100) * 0.01, 2.5 + (i // 100) * 0.01

# An hour of pings a minute apart, the trucks heading south from the Lille area.
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
for minute in range(60):
    at = stamp(now - datetime.timedelta(minutes=60 - minute))
    lines = []
    for i in range(size):
        lat, lon = origin(i)
        lines.append(json.dumps({"vehicle_id": f"TRUCK-{i:05}", "timestamp": at,
                                 "lat": lat - minute * 0.012, "lon": lon, "speed_kmh": 80}))
    answer = call(connection, "POST", "/v1/positions", "\n".join(lines), "application/x-ndjson")
    assert answer["accepted"] == size, answer

def register(chunk):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    for i in chunk:
        lat, lon = origin(i)
        call(connection, "POST", "/v1/shipments", json.dumps({
            "reference": f"RESTART-{i}", "vehicle_id": f"TRUCK-{i:05}",
            "vehicle_class": "articulated", "origin": {"lat": lat, "lon": lon},
            "stops": [{"id": "lyon", "lat": 45.76, "lon": 4.84, "planned_dwell_minutes": 30},
                      {"id": "marseille", "lat": 43.30, "lon": 5.37}],
            "planned_departure": stamp(now - datetime.timedelta(minutes=70))}), "application/json")

with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(register, [range(n, size, 4) for n in range(4)]))
print(f"{size} shipments registered with {size * 60:,} pings", flush=True)
PYTHON
  stop_service

  step "$size shipments: restart"
  started=$(millis)
  serve "$data" "$log"
  until [ "$(status_of /healthz)" = 200 ]; do
    kill -0 "$pid" || { tail -n 50 "$log"; exit 1; }
    sleep 0.02
  done
  listening=$(($(millis) - started))
  readiness=$(curl -s "http://127.0.0.1:$port/readyz")
  until [ "$(status_of /readyz)" = 200 ]; do
    kill -0 "$pid" || { tail -n 50 "$log"; exit 1; }
    sleep 0.1
  done
  ready=$(($(millis) - started))
  stop_service
  echo "first /readyz: $readiness"
  results+=("$(printf '%6s active shipments: listening after %s, ready after %s' \
    "$size" "$(seconds "$listening")" "$(seconds "$ready")")")
done

steps_report
printf '\n==> restart (%s cores, %s; logs in %s)\n' "$(nproc)" "$BIN" "$work"
printf '%s\n' "${results[@]}"
