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
