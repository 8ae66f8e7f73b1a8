# Shared by scripts/serve and scripts/test: each ensure_* installs a tool only when missing,
# so a second run costs nothing. Tools that are not Debian packages live in target/tools.
TOOLS="$PWD/target/tools"
mkdir -p "$TOOLS"

step() { printf '\n==> %s\n' "$*"; }

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

# cargo-deny, from crates.io, for the licence, ban and source checks (and advisories).
ensure_cargo_deny() {
  command -v cargo-deny >/dev/null 2>&1 && return
  step "installing cargo-deny"
  cargo install cargo-deny --locked
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
# Exports ETAPE_TEST_POSTGRES_URL.
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
  "${as[@]}" "$bin/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$PG_DATA -c fsync=${PG_FSYNC:-off} -c max_connections=200" \
    start >/dev/null
  PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$PG_DATA/data" -m immediate stop)
  trap 'stop_postgres' EXIT
  export ETAPE_TEST_POSTGRES_URL="postgres://etape@127.0.0.1:$port/postgres"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

stop_postgres() {
  if [ -n "${PG_DATA:-}" ]; then
    "${PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$PG_DATA"
  fi
}
