"""Time the app's Compare button in a real browser: from the click until results are on screen.

Starts ``app.py`` on a free localhost port (and reports how long until it answers), loads the
bundled MusicGen-like example and presses Compare with the default selection (every restorer
available here). For each run on a fresh page it prints when the first restorer's player became
playable and when every result was on screen (every player, the metrics table, the PSD plot, the
Mel spectrograms and the summary line); then two visitors pressing Compare at the same moment,
with the app's output cache off; then, in an app with it on, Compare pressed twice with the same
settings (the second reuses the outputs). The restorers alone, run in this process on the same
clip, give the overhead as a ratio. Needs Debian's chromium (``sh scripts/install-test-deps.sh``)
and the ``playwright`` package.

    python scripts/time_compare.py [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from local_app import CHROMIUM_ARGS, local_app
from playwright.sync_api import sync_playwright

EXAMPLE = "Synth pop, MusicGen-like degradation"
FIRST_OUTPUT = ("() => [...document.querySelectorAll('.compare-player')].slice(1).some(p => p.offsetParent"
                " && (p.querySelector('#duration') || {}).innerText && p.querySelector('#duration').innerText !== '0:00')")
ALL_PLAYERS = ("() => [...document.querySelectorAll('.compare-player')].filter(p => p.offsetParent)"
               ".every(p => (p.querySelector('#duration') || {}).innerText !== '0:00')")


def restorers_alone() -> float:
    """Seconds the chosen restorers take on the example, one after another, in this process."""
    from restorelab import lab
    from restorers import build_available

    clip = lab.load_example(EXAMPLE)
    names = [name for name in lab.restorer_choices() if name not in lab.unavailable_restorers()]
    restorers, _ = build_available(names)
    for restorer in restorers.values():  # load models once, as the app has by its second comparison
        restorer(clip.audio[:, : clip.sample_rate], clip.sample_rate)
    start = time.monotonic()
    for restorer in restorers.values():
        restorer(clip.audio, clip.sample_rate)
    return time.monotonic() - start


def open_example(page, url: str) -> None:
    page.goto(url)
    page.click("#load-example")
    page.wait_for_function("document.querySelector('#source-info').innerText.includes('synth_pop')")
    page.get_by_role("tab", name="Compare").click()


#: Notes when this Compare's progress line appears, so a repeat is not taken for the last one's end.
WATCH_STATUS = """() => {
    window.compareRunning = false;
    const status = document.querySelector('#compare-status');
    new MutationObserver(() => { if (status.innerText.includes('Restored')) window.compareRunning = true; })
        .observe(status, {childList: true, subtree: true, characterData: true});
}"""


def click(page) -> float:
    page.evaluate(WATCH_STATUS)
    start = time.monotonic()
    page.click("#compare")
    return start


def shown(page, start: float) -> tuple[float, float]:
    """``(first output playable, every result shown)`` in seconds from ``start``."""
    page.wait_for_function(FIRST_OUTPUT, timeout=120_000)
    first = time.monotonic() - start
    page.wait_for_function("window.compareRunning && document.querySelector('#compare-status').innerText"
                           ".includes('Compared')", timeout=120_000)
    page.locator("#mel").scroll_into_view_if_needed()  # Gradio loads images only near the viewport
    for selector in ("#psd .js-plotly-plot", "#mel img", "#metrics table"):
        page.wait_for_selector(selector)
    page.wait_for_function(ALL_PLAYERS)
    return first, time.monotonic() - start


def browser_pages(p, count: int):
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
    return browser, [browser.new_context(viewport={"width": 1400, "height": 1000}).new_page() for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    alone = restorers_alone()
    votes = str(Path(tempfile.mkdtemp()) / "votes.csv")
    started = time.monotonic()
    # Without the output cache (1 kB holds no output): every Compare runs the restorers.
    with local_app(RESTORELAB_VOTES_PATH=votes, RESTORELAB_MAX_OUTPUT_CACHE_MB="0.001") as (_, url):
        answered = time.monotonic() - started
        with sync_playwright() as p:
            browser, (page, *others) = browser_pages(p, 3)
            fresh = []
            for _ in range(args.runs):
                open_example(page, url)
                fresh.append(shown(page, click(page)))
            for other in others:
                open_example(other, url)
            starts = [click(other) for other in others]  # two visitors press Compare together
            both = [shown(other, start) for other, start in zip(others, starts)]
            browser.close()
    with local_app(RESTORELAB_VOTES_PATH=votes) as (_, url), sync_playwright() as p:
        browser, (page,) = browser_pages(p, 1)
        open_example(page, url)
        shown(page, click(page))
        repeated = shown(page, click(page))  # the same clip, restorers and settings again
        browser.close()
    print(f"app answered its first request {answered:.1f} s after start")
    print(f"restorers alone on the 9.7 s stereo example, one after another: {alone:.2f} s")
    for label, runs in (("fresh page", fresh), ("two visitors at once", both),
                        ("Compare again, same settings", [repeated])):
        for first, total in runs:
            print(f"{label:30s} first output playable {first:5.2f} s, everything shown {total:5.2f} s "
                  f"({total / alone:.1f} x the restorers alone)")


if __name__ == "__main__":
    main()
