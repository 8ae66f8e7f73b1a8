#!/usr/bin/env bash
# Training time and memory on simulated worlds of 100,000 and 1,000,000 trips (8 carriers, 5%
# of trips with pings), etape beside Python's LightGBM (PyPI, the version etape builds) on the
# same feature matrix and parameters. For each size:
#   - `etape train`: wall time and peak memory of the whole command (reading the histories,
#     building the features, choosing whether to learn the time of year, the three boosters,
#     the interval's calibration, writing the model);
#   - `etape train --boosters-input`: the same up to the boosters' input, written to disk;
#     the difference is what the three boosters and the calibration took;
#   - benches/train_lightgbm.py: Python's LightGBM training the three boosters on that input.
# Prints and appends to target/bench-results/train.txt. Not in CI (minutes, and gigabytes).
#
#   bash benches/train.sh                  # both sizes, the serve profile's build
#   bash benches/train.sh 100000           # one size
#   PROFILE=release bash benches/train.sh
#   BIN=target/serve/etape bash benches/train.sh   # as built, no build step
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

PROFILE=${PROFILE:-serve}
ensure_lightgbm_build_deps
lightgbm_version=$(cat "$(cargo metadata --format-version 1 --locked \
  | python3 -c 'import json, sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "lightgbm3-sys"))' \
  | xargs dirname)/lightgbm/VERSION.txt")
ensure_python_tools numpy "lightgbm==$lightgbm_version"
python="$TOOLS/venv/bin/python"
etape=${BIN:-target/$PROFILE/etape}
if [ -z "${BIN:-}" ]; then
  step "cargo build --profile $PROFILE"
  cargo build --locked --profile "$PROFILE" --bin etape
fi
mkdir -p target/bench-data target/bench-results
sizes=("${@:-100000 1000000}")

# Wall seconds and peak MiB of a command, from GNU time's report in $1.
measured() {
  awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; wall = s}
              /Maximum resident set size/ {peak = $2 / 1024}
              END {printf "%.1f %.0f\n", wall, peak}' "$2"
}

for trips in ${sizes[@]}; do
  world="target/bench-data/world-$trips"
  if [ ! -d "$world" ]; then
    step "simulating $trips trips"
    "$etape" simulate --carriers 8 --trips "$trips" --seed 11 --pings --ping-share 0.05 --out "$world"
  fi
  histories=()
  for carrier in "$world"/carrier-*; do
    histories+=(--history "$(basename "$carrier")=$carrier")
  done
  feeds=(--weather "$world/weather.parquet" --traffic "$world/traffic.parquet")
  model="target/bench-data/model-$trips" input="target/bench-data/boosters-input-$trips"
  rm -rf "$model" "$input"
  step "etape train, $trips trips"
  /usr/bin/time -v "$etape" train "${histories[@]}" "${feeds[@]}" --out "$model" \
    2> "target/bench-data/time-train-$trips.txt"
  read -r train_s train_mib < <(measured x "target/bench-data/time-train-$trips.txt")
  step "etape train --boosters-input, $trips trips"
  /usr/bin/time -v "$etape" train "${histories[@]}" "${feeds[@]}" --boosters-input "$input" \
    2> "target/bench-data/time-input-$trips.txt"
  read -r input_s _ < <(measured x "target/bench-data/time-input-$trips.txt")
  step "Python LightGBM $lightgbm_version, $trips trips"
  python_json=$("$python" benches/train_lightgbm.py "$input")
  read -r rows python_s python_mib < <(echo "$python_json" \
    | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["rows"], d["seconds"], d["peak_mib"])')
  rm -rf "$input"
  line=$(python3 - "$trips" "$rows" "$train_s" "$train_mib" "$input_s" "$python_s" "$python_mib" "$(nproc)" <<'PY'
import sys
trips, rows, train_s, train_mib, input_s, python_s, python_mib, cores = sys.argv[1:]
boosters = float(train_s) - float(input_s)
print(f"{int(trips):,} trips ({int(rows):,} rows), {cores} cores: etape train {float(train_s):.1f} s, "
      f"peak {float(train_mib):,.0f} MiB (up to the boosters' input {float(input_s):.1f} s; "
      f"three boosters and calibration {boosters:.1f} s); Python LightGBM's three boosters "
      f"{float(python_s):.1f} s, peak {float(python_mib):,.0f} MiB; "
      f"etape's boosters {boosters / float(python_s):.2f} times Python's, "
      f"the whole command {float(train_s) / float(python_s):.2f} times")
PY
)
  echo "$line" | tee -a target/bench-results/train.txt
done
steps_report
