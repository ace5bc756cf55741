#!/usr/bin/env bash
# Debian's Chromium, for the dashboard's real-browser test (tests/test_dashboard.py), which Playwright drives
# through `executable_path`: no `playwright install`, no browser download.
#
#   bash scripts/chromium.sh    # installs it when missing, if run as root with apt-get; else says what to install
#
# Without Chromium the browser test skips, saying so.
set -euo pipefail

if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; }
else
  echo "chromium.sh: the dashboard's browser test skips: install chromium (Debian/Ubuntu) to run it" >&2
fi
