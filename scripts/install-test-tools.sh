#!/usr/bin/env bash
# Install the system tools some tests use, from Debian's packages: headless Chromium and its
# WebDriver (`chromium`, `chromium-driver`) for tests/test_browser_report.py, and `strace` for
# the hostile-file tests' check that nothing outside the model's folder is opened
# (tests/hostile/). Idempotent, and never fails the build: when they are already there, or we
# cannot install them (not root, no apt-get, no network), it says so and exits 0 — the tests
# that need them then skip that check with the reason.
set -u

have() { command -v "$1" >/dev/null 2>&1; }

missing=()
{ have chromium && have chromedriver; } || missing+=(chromium chromium-driver)
have strace || missing+=(strace)
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-test-tools: chromium, chromedriver and strace already installed"
    exit 0
fi
if ! have apt-get; then
    echo "install-test-tools: no apt-get here; tests needing ${missing[*]} will skip" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-tools: not root; cannot install ${missing[*]} (those tests will skip)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || echo "install-test-tools: apt-get could not install ${missing[*]}; those tests will skip" >&2
fi
exit 0
