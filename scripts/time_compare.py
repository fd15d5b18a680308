"""Time the app's Compare button in a real browser: from the click until every result is on screen.

Starts ``app.py`` on a free localhost port, loads the bundled MusicGen-like example, presses
Compare with the default selection (every restorer available here) and waits for the players, both spectrogram images, the PSD plot
and the status line. Repeats on fresh page loads and prints the times. Needs Debian's chromium
(``sh scripts/install-test-deps.sh``) and the ``playwright`` package.

    python scripts/time_compare.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync", "--disable-background-networking",
        "--disable-component-update"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
               RESTORELAB_VOTES_PATH=str(Path(tempfile.mkdtemp()) / "votes.csv"))
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        times = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
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
    finally:
        server.terminate()
        server.wait()
    print("Compare -> all results shown, 9.7 s stereo example, every available restorer (s): "
          + ", ".join(f"{t:.2f}" for t in times))


if __name__ == "__main__":
    main()
