"""Time the app's Compare button in a real browser: from the click until every result is on screen.

Starts ``app.py`` on a free localhost port, loads the bundled MusicGen-like example, presses
Compare with the default selection (every restorer available here) and waits for the players, both spectrogram images, the PSD plot
and the status line. Repeats on fresh page loads and prints the times. Needs Debian's chromium
(``sh scripts/install-test-deps.sh``) and the ``playwright`` package.

    python scripts/time_compare.py [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from local_app import CHROMIUM_ARGS, local_app
from playwright.sync_api import sync_playwright


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = []
    with local_app(RESTORELAB_VOTES_PATH=str(Path(tempfile.mkdtemp()) / "votes.csv")) as (_, url):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for _ in range(args.runs):
                page.goto(url)
                page.click("#load-example")
                page.wait_for_function("document.querySelector('#source-info').innerText.includes('synth_pop')")
                page.get_by_role("tab", name="Compare").click()
                start = time.monotonic()
                page.click("#compare")
                page.wait_for_function("document.querySelector('#compare-status').innerText.includes('Compared')",
                                       timeout=300_000)
                for selector in ("#psd .js-plotly-plot", "#mel img", "#linear img"):
                    page.wait_for_selector(selector)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.compare-player')].filter(p => p.offsetParent)"
                    ".every(p => (p.querySelector('#duration') || {}).innerText !== '0:00')")
                times.append(time.monotonic() - start)
            browser.close()
    print("Compare -> all results shown, 9.7 s stereo example, every available restorer (s): "
          + ", ".join(f"{t:.2f}" for t in times))


if __name__ == "__main__":
    main()
