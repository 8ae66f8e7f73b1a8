#!/usr/bin/env bash
# Training time on simulated worlds of 100,000 and 1,000,000 trips (8 carriers, 5% of trips
# with pings), with the release build. Prints and appends to target/bench-results/train.txt.
#
#   bash benches/train.sh            # both sizes
#   bash benches/train.sh 100000     # one size
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_lightgbm_build_deps
cargo build --locked --release --bin etape
etape=target/release/etape
mkdir -p target/bench-data target/bench-results
sizes=("${@:-100000 1000000}")
for trips in ${sizes[@]}; do
  world="target/bench-data/world-$trips"
  if [ ! -d "$world" ]; then
    "$etape" simulate --carriers 8 --trips "$trips" --seed 11 --pings --ping-share 0.05 --out "$world"
  fi
  histories=()
  for carrier in "$world"/carrier-*; do
    histories+=(--history "$(basename "$carrier")=$carrier")
  done
  rm -rf "target/bench-data/model-$trips"
  start=$(date +%s.%N)
  /usr/bin/time -v "$etape" train "${histories[@]}" \
    --weather "$world/weather.parquet" --traffic "$world/traffic.parquet" \
    --out "target/bench-data/model-$trips" 2> "target/bench-data/time-$trips.txt"
  end=$(date +%s.%N)
  peak_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "target/bench-data/time-$trips.txt")
  line=$(printf '%s trips: %.1f s, peak memory %.0f MiB, %s cores' \
    "$trips" "$(echo "$end - $start" | bc)" "$(echo "$peak_kb / 1024" | bc)" "$(nproc)")
  echo "$line" | tee -a target/bench-results/train.txt
done
