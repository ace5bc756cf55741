#!/usr/bin/env bash
# Set up a development environment from a fresh clone: a virtualenv with the package, and Java for Spark.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  # Probed quietly: a pyenv shim exists for every installed version and explains at length (on stderr) why
  # those not selected cannot run.
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$candidate; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "setup: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing taxi-duration-predictor with the spark, dashboard, tune and dev extras into $VENV" \
    "(1.7 GB installed: about a minute from a warm pip cache or a fast mirror, several over a slow link)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  if [ -t 1 ]; then  # on a terminal, pip's own lines and progress bars; in a log, only its errors
    "$VENV/bin/python" -m pip install -e ".[spark,dashboard,tune,dev]"
  else
    "$VENV/bin/python" -m pip install --quiet -e ".[spark,dashboard,tune,dev]"
  fi
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

# Spark 4 runs on Java 17 or 21; the embedded engine (the default) needs no Java at all.
java_major() {
  local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  command -v "$java" >/dev/null 2>&1 || return 1
  "$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}
major=$(java_major || true)
if [ "$major" != 17 ] && [ "$major" != 21 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Java 17 for Spark (openjdk-17-jre-headless)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    cat >&2 <<'MSG'
setup: Spark needs Java 17 or 21 and none was found. The embedded engine works without it; for Spark:
  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless
  macOS:         brew install openjdk@17 && export JAVA_HOME="$(brew --prefix openjdk@17)"
  or set JAVA_HOME to an installed JDK 17 or 21, then re-run `make setup`.
MSG
  fi
fi
echo "setup: ready ($("$VENV/bin/python" --version), Java ${major:-$(java_major || echo none)})"
