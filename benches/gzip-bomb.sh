#!/usr/bin/env bash
# A gzip bomb against a running service: a few hundred kilobytes of gzip holding one 256 MiB
# field, uploaded as a partner. Prints the answer's status, how long it took, and the server's
# memory before and at its peak (VmRSS and VmHWM from /proc), beside a plain upload of the
# example trips as the anchor.
#   bash benches/gzip-bomb.sh                      # the release build
#   BIN=target/debug/etape bash benches/gzip-bomb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

BIN=${BIN:-target/release/etape}
if [ "$BIN" = target/release/etape ]; then
  ensure_lightgbm_build_deps
  cargo build --locked --release --bin etape
fi

work=$(mktemp -d)
trap 'kill -9 "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$work/bomb.csv.gz" <<'PY'
import gzip, sys
header = b"trip_id,vehicle_class,origin_lat,origin_lon,destination_lat,destination_lon,departure_time,arrival_time\n"
with gzip.open(sys.argv[1], "wb", compresslevel=9) as out:
    out.write(header + b"BOMB-1,")
    chunk = b"x" * (1 << 20)
    for _ in range(256):
        out.write(chunk)
    out.write(b",50.6,3.05,43.3,5.37,2026-10-01T08:00:00+02:00,2026-10-01T18:00:00+02:00\n")
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BIN" serve --bind "127.0.0.1:$port" --data-dir "$work/data" --no-demo \
  > "$work/service.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$port/readyz" > /dev/null && break
  sleep 0.2
done
# shellcheck disable=SC1091
source "$work/data/demo-keys.env"
memory() { awk -v key="$1" '$1 == key":" { printf "%.0f MB", $2 / 1024 }' "/proc/$pid/status"; }
upload() {
  curl -s -o "$work/answer.json" -w '%{http_code} in %{time_total} s' \
    -H "Authorization: Bearer $ETAPE_PARTNER_KEY" --data-binary "@$1" \
    "http://127.0.0.1:$port/v1/history"
}
echo "bomb: $(stat -c %s "$work/bomb.csv.gz") bytes of gzip, 256 MiB once decompressed"
echo "before: RSS $(memory VmRSS), peak so far $(memory VmHWM)"
echo "example trips: $(upload data/example/trips.csv)"
echo "after the example: RSS $(memory VmRSS), peak $(memory VmHWM)"
echo "bomb: $(upload "$work/bomb.csv.gz")"
echo "after the bomb: RSS $(memory VmRSS), peak $(memory VmHWM)"
echo "its answer: $(cat "$work/answer.json")"
