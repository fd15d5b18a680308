#!/bin/sh
# System packages the tests use, from Debian: headless Chromium (the browser test, driven by
# Playwright) and FluidSynth with its General MIDI sound font (the training-data render test).
# Installs what is missing when this user may; otherwise says why, and those tests skip.
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v fluidsynth >/dev/null 2>&1 || missing="$missing fluidsynth"
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing="$missing fluid-soundfont-gm"
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "missing:$missing, and this user cannot apt-get them: the tests that need them will be skipped" >&2
fi
exit 0
