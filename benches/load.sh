#!/usr/bin/env bash
# Load: the release build on 127.0.0.1, driven by wrk on the same machine, one scenario at a
# time (see benches/load/requests.lua). Writes target/load/results.json (one object per
# scenario) and target/load/results.md (the README's table).
#   bash benches/load.sh                            # every scenario, 20 s each
#   DURATION=5 SCENARIOS="eta" bash benches/load.sh
#   FEEDS=faulty bash benches/load.sh               # weather answering 503, traffic hanging,
#                                                   # routing refusing connections
#   FEEDS=healthy bash benches/load.sh              # the same feeds answering at once
#   STORE=postgres REPLICAS=2 SCENARIOS="eta positions mixed" bash benches/load.sh
#                                                   # replicas on a PostgreSQL cluster of its own
#                                                   # (from Debian, fsync on), behind nginx (Debian)
# CONNECTIONS (16) and THREADS (1) are wrk's; WORKERS the service's (default: one a core).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

SCENARIOS=${SCENARIOS:-"eta eta-factors batch positions mixed"}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-1}
FEEDS=${FEEDS:-none}
STORE=${STORE:-sqlite}
REPLICAS=${REPLICAS:-1}
BIN=${BIN:-target/release/etape}
OUT=${OUT:-target/load}

ensure_wrk
if [ "$BIN" = target/release/etape ]; then
  ensure_lightgbm_build_deps
  step "cargo build --release"
  cargo build --locked --release --bin etape
fi

if [ "$STORE" = postgres ]; then
  # Durable commits, as a deployment has them (the tests' cluster skips fsync).
  PG_FSYNC=on ensure_postgres
  ensure_nginx
elif [ "$REPLICAS" != 1 ]; then
  echo "REPLICAS needs STORE=postgres: replicas share a PostgreSQL database" >&2
  exit 2
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "$FEEDS" != none ]; then
  feeds_port=$(free_port)
  python3 benches/load/feeds.py "$FEEDS" "$feeds_port" > "$work/feeds.log" 2>&1 &
  pids+=($!)
  disown $!
  closed_port=$(free_port)   # nothing listens there: connections are refused
  export ETAPE__FEEDS__WEATHER_URL="http://127.0.0.1:$feeds_port/weather"
  export ETAPE__FEEDS__TRAFFIC_URL="http://127.0.0.1:$feeds_port/traffic"
  export ETAPE__FEEDS__TRAFFIC_KEY=load
  if [ "$FEEDS" = faulty ]; then
    export ETAPE__FEEDS__ROUTING_URL="http://127.0.0.1:$closed_port"
  fi
fi

[ -n "${WORKERS:-}" ] && export ETAPE__SERVER__WORKERS=$WORKERS
# One key drives the whole load: its rate limit is raised out of the way, but still checked.
export ETAPE__API__RATE_LIMIT_PER_SECOND=${RATE_LIMIT:-10000000} ETAPE__API__RATE_LIMIT_BURST=${RATE_LIMIT:-10000000}
if [ "$STORE" = postgres ]; then
  psql -q "$ETAPE_TEST_POSTGRES_URL" -c "CREATE DATABASE etape_load"
  export ETAPE__STORAGE__URL="${ETAPE_TEST_POSTGRES_URL%/*}/etape_load"
fi
# Replicas share the data directory (keys, models, uploads); the first start creates the keys.
services=()
ports=()
for replica in $(seq "$REPLICAS"); do
  replica_port=$(free_port)
  ETAPE__MODEL__DIR=data/models/bundled RUST_LOG=warn "$BIN" serve --bind "127.0.0.1:$replica_port" \
    --data-dir "$work/data" --no-demo > "$work/service-$replica.log" 2>&1 &
  pids+=($!)
  services+=($!)
  ports+=("$replica_port")
  disown $!
  for _ in $(seq 300); do
    [ -s "$work/data/demo-keys.env" ] && curl -sf "http://127.0.0.1:$replica_port/readyz" > /dev/null && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$replica_port/readyz" > /dev/null || { cat "$work/service-$replica.log"; exit 1; }
done
service=${services[0]}
port=${ports[0]}
if [ "$STORE" = postgres ]; then
  # One address in front of the replicas, as a deployment has.
  port=$(free_port)
  {
    # One process, the one killed at the end.
    echo "master_process off; pid $work/nginx.pid; error_log $work/nginx.log warn;"
    echo "events { worker_connections 1024; }"
    echo "http { access_log off; upstream etape {"
    for replica_port in "${ports[@]}"; do echo "  server 127.0.0.1:$replica_port;"; done
    echo "  keepalive 64; }"
    echo "  server { listen 127.0.0.1:$port; client_max_body_size 64m;"
    echo "    location / { proxy_pass http://etape; proxy_http_version 1.1;"
    echo "      proxy_set_header Connection \"\"; proxy_set_header Host \$host; } } }"
  } > "$work/nginx.conf"
  nginx -c "$work/nginx.conf" -g 'daemon off;' > "$work/nginx.out" 2>&1 &
  pids+=($!)
  disown $!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break; sleep 0.1; done
fi
export ETAPE_KEY
ETAPE_KEY=$(grep ETAPE_CARRIER_KEY "$work/data/demo-keys.env" | cut -d= -f2)
export LOAD_DIR="$PWD/benches/load"
# With every feed down, each ETA answer must say which feeds it lacked: wrk checks them all.
export CHECK_DEGRADED=0
[ "$FEEDS" = faulty ] && CHECK_DEGRADED=1

cores=$(nproc)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
results="$OUT/results.json"
: > "$results"
for scenario in $SCENARIOS; do
  export SCENARIO=${scenario%-factors} FACTORS=0
  [ "$scenario" = eta-factors ] && FACTORS=1
  step "$scenario: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s (feeds: $FEEDS)"
  # A short warm-up: the first requests open connections and, with feeds, trip the circuits.
  wrk -t1 -c2 -d1s -s benches/load/requests.lua "http://127.0.0.1:$port" > /dev/null
  line=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
    -s benches/load/requests.lua "http://127.0.0.1:$port" | tail -n1)
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$service/status")
  echo "$line"
  python3 - "$line" "$scenario" "$peak" "$cores" "$commit" "$FEEDS" "$CONNECTIONS" "$STORE" "$REPLICAS" >> "$results" <<'PY'
import json, sys
line, scenario, peak, cores, commit, feeds, connections, store, replicas = sys.argv[1:]
result = json.loads(line)
result.update(scenario=scenario, peak_rss_mib=round(int(peak) / 1024, 1), cores=int(cores),
              commit=commit, feeds=feeds, connections=int(connections), store=store,
              replicas=int(replicas))
print(json.dumps(result))
PY
done


python3 - "$results" > "$OUT/results.md" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("| scenario | store, replicas | feeds | requests/s | p50 ms | p99 ms | p99.9 ms | errors | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
# An answer without its degraded flags, with every feed down, counts as an error.
for r in rows:
    errors = r["non_2xx"] + r["socket_errors"] + r["timeouts"] + r.get("undegraded", 0)
    print(f"| {r['scenario']} | {r.get('store', 'sqlite')}, {r.get('replicas', 1)} | {r['feeds']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
          f"| {r['p999_ms']:.2f} | {errors} | {r['peak_rss_mib']:.0f} |")
PY
cat "$OUT/results.md"
# A load that errs is a failed run.
python3 -c 'import json,sys; sys.exit(any(r["non_2xx"] + r["socket_errors"] + r["timeouts"] + r["undegraded"] for r in map(json.loads, open(sys.argv[1]))))' "$results"
