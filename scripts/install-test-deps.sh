#!/bin/sh
# Headless Chromium for the browser test (Debian's package; Playwright drives it).
# Installs it when missing and this user may; otherwise says why, and the test skips.
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
    echo "chromium is not installed and this user cannot apt-get it: the browser test will be skipped" >&2
fi
exit 0
