#!/usr/bin/env bash
# Soak: the release build on 127.0.0.1 with its demo fleet on the road and the bundled model
# serving, under mixed API traffic for DURATION (30 minutes by default): ETAs, batches and
# positions as the load benchmark's mixed scenario sends them, and reads of the fleet's
# shipments, their estimates and the page of those under way (benches/load/soak.lua), paced
# rather than flat out. wrk drives it a minute at a time; after each minute the script
# samples the service's resident memory beside what wrk measured. Prints one row a minute
# and a verdict, and writes target/load/soak.csv. Not in CI (half an hour, and a figure of
# the machine's).
#
# The verdict passes when no request failed (no non-2xx answer, socket error or timeout),
# the service logged no error and never stopped, and memory after the warm-up is flat: no
# sample after WARMUP minutes (5) above the first of them by more than TOLERANCE percent (10).
#   bash benches/soak.sh
#   DURATION=10m WARMUP=2 bash benches/soak.sh
#   PROFILE=serve bash benches/soak.sh                 # the build scripts/serve makes
#   BIN=target/release/etape bash benches/soak.sh      # as built, no build step
# DURATION takes s, m or h (a bare number is seconds, as in benches/load.sh); CONNECTIONS
# (4) and DELAY_MS (20, each connection's pause between requests) set the pace; PINGS (2)
# fixes a positions request among VEHICLES (200).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DURATION=${DURATION:-30m}
WARMUP=${WARMUP:-5}
TOLERANCE=${TOLERANCE:-10}
CONNECTIONS=${CONNECTIONS:-4}
export DELAY_MS=${DELAY_MS:-20}
# Few vehicles and fixes a request: the pings the service keeps grow by what they add, a few
# MiB in half an hour, well within the tolerance (the demo fleet's come on top, as in use).
export PINGS=${PINGS:-2} VEHICLES=${VEHICLES:-200}
PROFILE=${PROFILE:-release}
OUT=${OUT:-target/load}

case "$DURATION" in
  *h) seconds=$((${DURATION%h} * 3600)) ;;
  *m) seconds=$((${DURATION%m} * 60)) ;;
  *s) seconds=${DURATION%s} ;;
  *) seconds=$DURATION ;;
esac
minutes_total=$(((seconds + 59) / 60))
if [ "$minutes_total" -le "$WARMUP" ]; then
  echo "DURATION ($DURATION) must run past the warm-up ($WARMUP min)" >&2
  exit 2
fi

ensure_wrk
if [ -z "${BIN:-}" ]; then
  BIN=target/$PROFILE/etape
  ensure_lightgbm_build_deps
  step "cargo build --profile $PROFILE"
  cargo build --locked --profile "$PROFILE" --bin etape
fi

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
mkdir -p "$OUT"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

step "starting the service with its demo fleet ($BIN)"
# One key drives the traffic: its rate limit is raised out of the way, but still checked.
ETAPE__MODEL__DIR=data/models/bundled RUST_LOG=warn \
  ETAPE__API__RATE_LIMIT_PER_SECOND=10000000 ETAPE__API__RATE_LIMIT_BURST=10000000 \
  "$BIN" serve --bind "127.0.0.1:$port" --data-dir "$work/data" --log-format json \
  > "$work/service.log" 2>&1 &
pid=$!
for _ in $(seq 1200); do
  [ -s "$work/data/demo-keys.env" ] && curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break
  kill -0 "$pid" 2>/dev/null || { tail -n 50 "$work/service.log"; exit 1; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/readyz" > /dev/null || { tail -n 50 "$work/service.log"; exit 1; }
export ETAPE_KEY LOAD_DIR="$PWD/benches/load" SCENARIO=mixed FACTORS=0 CHECK_DEGRADED=0 SHIPMENTS
ETAPE_KEY=$(grep ETAPE_CARRIER_KEY "$work/data/demo-keys.env" | cut -d= -f2)

# The fleet's shipments, once it has registered some: the reads ask for them.
SHIPMENTS=""
for _ in $(seq 120); do
  SHIPMENTS=$(curl -s -H "Authorization: Bearer $ETAPE_KEY" \
    "http://127.0.0.1:$port/v1/shipments?limit=100" |
    python3 -c 'import json, sys; print(",".join(item["id"] for item in json.load(sys.stdin).get("items", [])))' ||
    true)
  [ -n "$SHIPMENTS" ] && break
  sleep 1
done
[ -n "$SHIPMENTS" ] || { echo "the demo fleet registered no shipment" >&2; tail -n 50 "$work/service.log"; exit 1; }

step "soak: $minutes_total min of wrk -c$CONNECTIONS (pause ${DELAY_MS} ms), a sample a minute"
samples="$work/samples.jsonl"
: > "$samples"
for minute in $(seq "$minutes_total"); do
  left=$((seconds - (minute - 1) * 60))
  chunk=$((left < 60 ? left : 60))
  line=$(wrk -t1 -c"$CONNECTIONS" -d"${chunk}s" --timeout 10s \
    -s benches/load/soak.lua "http://127.0.0.1:$port" | tail -n1 || true)
  alive=1
  rss=0
  logged=$(grep -c '"level":"ERROR"' "$work/service.log" || true)
  if kill -0 "$pid" 2>/dev/null; then
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  else
    alive=0
  fi
  python3 - "$line" "$minute" "$rss" "$alive" "$logged" >> "$samples" <<'PY'
import json, sys
line, minute, rss, alive, logged = sys.argv[1:]
try:
    sample = json.loads(line)
except ValueError:
    # wrk said nothing measurable: the minute counts as failed.
    sample = {"requests": 0, "rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0,
              "non_2xx": 0, "socket_errors": 1, "timeouts": 0}
sample.update(minute=int(minute), rss_mib=round(int(rss) / 1024, 1), alive=alive == "1",
              logged_errors=int(logged or 0))
print(json.dumps(sample))
print(f"minute {sample['minute']:3}: {sample['rps']:8.1f} requests/s, p99 {sample['p99_ms']:8.2f} ms, "
      f"RSS {sample['rss_mib']:7.1f} MiB", file=sys.stderr)
PY
  [ "$alive" = 1 ] || break
done

steps_report
printf '\n==> soak (%s cores, %s, %s; service log in %s)\n' "$(nproc)" "$BIN" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$work/service.log"
python3 - "$samples" "$WARMUP" "$TOLERANCE" "$OUT/soak.csv" <<'PY'
import csv, json, sys

path, warmup, tolerance, table = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
samples = [json.loads(line) for line in open(path) if line.strip()]
errors_of = lambda s: s["non_2xx"] + s["socket_errors"] + s["timeouts"]
# The service's error log lines are counted from its start: each minute shows its own.
previous = 0
for s in samples:
    s["new_logged"], previous = s["logged_errors"] - previous, s["logged_errors"]
columns = ["minute", "requests", "rps", "p50_ms", "p99_ms", "max_ms", "failed_requests",
           "logged_errors", "rss_mib"]
with open(table, "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(columns)
    for s in samples:
        writer.writerow([s["minute"], s["requests"], s["rps"], s["p50_ms"], s["p99_ms"],
                         s["max_ms"], errors_of(s), s["new_logged"], s["rss_mib"]])

print("| minute | requests/s | p50 ms | p99 ms | max ms | failed requests | errors logged | RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
for s in samples:
    mark = " (warm-up)" if s["minute"] <= warmup else ""
    print(f"| {s['minute']}{mark} | {s['rps']:,.1f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
          f"| {s['max_ms']:.2f} | {errors_of(s)} | {s['new_logged']} | {s['rss_mib']:.1f} |")

failures = []
errors = sum(errors_of(s) for s in samples)
if errors:
    failures.append(f"{errors} failed requests")
logged = samples[-1]["logged_errors"] if samples else 0
if logged:
    failures.append(f"{logged} errors in the service's log")
stopped = [s["minute"] for s in samples if not s["alive"]]
if stopped:
    failures.append(f"the service stopped (gone at minute {stopped[0]})")
settled = [s for s in samples if s["minute"] > warmup and s["alive"]]
if settled:
    baseline = settled[0]["rss_mib"]
    peak = max(s["rss_mib"] for s in settled)
    growth = (peak - baseline) / baseline * 100 if baseline else 0.0
    last = settled[-1]["rss_mib"]
    print(f"\nmemory after the {warmup}-minute warm-up: {baseline:.1f} MiB, then at most "
          f"{peak:.1f} MiB ({growth:+.1f} %, tolerance {tolerance:g} %), {last:.1f} MiB at the end")
    if growth > tolerance:
        failures.append(f"memory grew {growth:.1f} % after the warm-up")
else:
    failures.append("no sample after the warm-up")
requests = sum(s["requests"] for s in samples)
print(f"{requests:,} requests over {len(samples)} min, {errors} failed")
print("verdict: " + ("pass" if not failures else "FAIL: " + "; ".join(failures)))
sys.exit(1 if failures else 0)
PY
