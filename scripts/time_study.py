"""Time a study's page in a real browser: from a vote to the next pair ready to play.

Builds a study from the bundled examples (``--restorer`` as many as wanted), serves it with
``app.py --study``, and has one listener judge ``--trials`` pairs, each side heard for the
listening minimum. Prints the time from each vote's click until the next pair is decoded and
playable, and the study build's time per clip and restorer. Needs Debian's chromium.

    python scripts/time_study.py [--trials 10] [-r spectral_gate_hf -r unet_restore]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from local_app import CHROMIUM_ARGS, ROOT, local_app
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(ROOT))

from restorelab.cli import main as restorelab  # noqa: E402
from restorelab.listening.transport import ListenRules  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("-r", "--restorer", action="append", default=None)
    args = parser.parse_args()
    restorers = args.restorer or ["spectral_gate_hf", "unet_restore"]
    work = Path(tempfile.mkdtemp(prefix="restorelab-study-timing-"))
    clips = sorted(str(p) for p in (ROOT / "assets" / "examples").glob("*.flac"))
    start = time.monotonic()
    restorelab(["study", "build", *clips, *[f"-r{name}" for name in restorers], "-o", str(work / "study"), "-q",
                "--trials-per-listener", str(args.trials + 3)])
    build_s = time.monotonic() - start
    minimum = ListenRules.from_env().min_listen_s
    latencies = []
    with local_app(RESTORELAB_STUDY=str(work / "study"), RESTORELAB_VOTES_PATH=str(work / "votes.csv")) as (_, url):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#study-start")
            for question in page.locator("[id^=question-]").all():
                question.locator("input[type=radio]").first.check()
            page.click("#study-start")
            page.wait_for_function("window.abTransport && window.abTransport.buffers", timeout=60000)
            for _ in range(args.trials):
                for key, side in (("1", "left"), ("2", "right")):
                    page.keyboard.press(key)
                    while page.evaluate(f"window.abTransport.heard.{side}") < minimum + 0.1:
                        if not page.evaluate("window.abTransport.playing"):
                            page.keyboard.press(" ")
                        time.sleep(0.05)
                time.sleep(1.0)
                previous = page.evaluate("window.abTransport.trial")
                clicked = time.monotonic()
                page.click("#vote-tie")
                page.wait_for_function("previous => (window.abTransport.buffers && window.abTransport.trial !== previous)"
                                       " || /^[A-Z2-7]{10}$/.test(document.querySelector('#completion-code')"
                                       ".innerText.trim())", arg=previous, timeout=60000)
                latencies.append(time.monotonic() - clicked)
            browser.close()
    print(f"study build: {build_s:.1f} s for {len(clips)} clips x {len(restorers)} restorers "
          f"({build_s / (len(clips) * len(restorers)):.2f} s per clip and restorer, imports included)")
    print("| trials | vote -> next pair playable: median (s) | max (s) |\n|---|---|---|")
    print(f"| {len(latencies)} | {np.median(latencies):.2f} | {max(latencies):.2f} |")


if __name__ == "__main__":
    main()
