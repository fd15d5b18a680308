"""Time the app's Compare button in a real browser: from the click until results are on screen.

Starts ``app.py`` on a free localhost port (and reports how long until it answers), loads the
bundled MusicGen-like example and presses Compare with the default selection (every restorer
available here). For each run on a fresh page it prints when the first restorer's player became
playable and when every result was on screen (every player, the metrics table, the PSD plot, the
Mel spectrograms and the summary line); then two visitors pressing Compare at the same moment,
with the app's output cache off, first on new pages, then on the same pages again (like the
fresh-page runs after the first, whose page had compared before); then, in an app with the cache
on, Compare pressed twice with the same settings (the second reuses the outputs). The restorers
alone, run in this process on the same clip, give the overhead as a ratio. For each fresh page it
also prints the CPU seconds the app and the browser spent from the click until everything was
shown (Linux's ``/proc``), against what the machine's cores could give in that time: where the two
add up to about that, the comparison is bound by the machine's CPU, wherever its time goes. Needs
Debian's chromium (``sh scripts/install-test-deps.sh``) and the ``playwright`` package.

``--clip FILE`` uploads that file instead of loading the example (the visitors and the restorers
alone take it too); ``-r NAME`` (repeatable) leaves only those restorers chosen.

    python scripts/time_compare.py [--runs 3] [--clip FILE] [-r NAME ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from local_app import CHROMIUM_ARGS, local_app
from playwright.sync_api import sync_playwright

EXAMPLE = "Synth pop, MusicGen-like degradation"
#: A player can play its clip: Gradio's waveform player shows the clip's duration once it has decoded
#: it; the browser's own player has read the clip's length and holds data at its start.
PLAYABLE = ("p => p.querySelector('#duration') ? p.querySelector('#duration').innerText !== '0:00'"
            " : Boolean(p.querySelector('audio') && p.querySelector('audio').readyState >= 2"
            " && p.querySelector('audio').duration > 0)")
FIRST_OUTPUT = ("() => [...document.querySelectorAll('.compare-player')].slice(1).some(p => p.offsetParent && ("
                + PLAYABLE + ")(p))")
#: Every visible player holds its clip (a player still waiting for its restorer has none).
ALL_PLAYERS = ("() => [...document.querySelectorAll('.compare-player')].filter(p => p.offsetParent).every("
               + PLAYABLE + ")")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far, all its threads (Linux's ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def browser_cpu_seconds() -> float:
    """CPU seconds so far of every Chromium process (the browser, its renderers and helpers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "exe")).name.startswith("chrom"):
                total += cpu_seconds(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return total


def restorers_alone(names: list[str], path: Path | None = None) -> float:
    """Seconds the restorers ``names`` take on the example (or ``path``), one after another, in this
    process."""
    from restorelab import lab
    from restorelab.audio import load_audio
    from restorers import build_available

    clip = lab.load_example(EXAMPLE) if path is None else load_audio(path)
    restorers, _ = build_available(names)
    for restorer in restorers.values():  # load models once, as the app has by its second comparison
        restorer(clip.audio[:, : clip.sample_rate], clip.sample_rate)
    start = time.monotonic()
    for restorer in restorers.values():
        restorer(clip.audio, clip.sample_rate)
    return time.monotonic() - start


def open_example(page, url: str, path: Path | None = None, unchosen: list[str] | None = None) -> None:
    """Load the example, or upload ``path``, open the Compare tab and untick the restorers
    ``unchosen``."""
    page.goto(url)
    if path is None:
        page.click("#load-example")
        name = "synth_pop"
    else:
        page.get_by_text("Upload", exact=True).click()  # its accordion starts closed
        page.set_input_files("#upload input[type=file]", str(path))
        name = path.stem
    page.wait_for_function(f"document.querySelector('#source-info').innerText.includes({name!r})", timeout=120_000)
    page.get_by_role("tab", name="Compare").click()
    for name in unchosen or []:
        page.locator("#restorer-choice").get_by_label(name, exact=True).uncheck()


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


#: Every result is on screen: this Compare's summary line, the PSD plot, the Mel spectrograms (scrolled
#: to, since Gradio loads images only near the viewport, and decoded), the metrics table and every player.
EVERYTHING = """() => {
    const status = document.querySelector('#compare-status');
    if (!window.compareRunning || !status.innerText.includes('Compared')) return false;
    const mel = document.querySelector('#mel');
    mel.scrollIntoView();
    const image = mel.querySelector('img');
    return Boolean(image && image.complete && image.naturalWidth > 0
                   && document.querySelector('#psd .js-plotly-plot') && document.querySelector('#metrics table'))
        && (""" + ALL_PLAYERS + """)();
}"""


def shown(pages: list, starts: list[float], timeout_s: float = 120.0) -> list[tuple[float, float]]:
    """Per page, ``(first output playable, every result shown)`` in seconds from its ``start``.

    The pages are watched together (each checked every 50 ms), so the times of visitors who pressed
    Compare at once are each their own, not one page's time waited out before the next is looked at.
    """
    first: list[float | None] = [None] * len(pages)
    everything: list[float | None] = [None] * len(pages)
    while None in everything:
        for k, page in enumerate(pages):
            now = time.monotonic()
            if first[k] is None and page.evaluate(FIRST_OUTPUT):
                first[k] = now - starts[k]
            if first[k] is not None and everything[k] is None and page.evaluate(EVERYTHING):
                everything[k] = now - starts[k]
            if now - starts[k] > timeout_s:
                raise TimeoutError(f"Compare was not done after {timeout_s:.0f} s")
        time.sleep(0.05)
    return list(zip(first, everything))


def compare_with_cpu(page, app_pid: int) -> tuple[float, float, float, float]:
    """Press Compare on ``page`` alone: ``(first output playable, everything shown)`` in seconds,
    and the CPU seconds the app (process ``app_pid``) and the browser spent meanwhile."""
    before = cpu_seconds(app_pid), browser_cpu_seconds()
    (first, everything), = shown([page], [click(page)])
    return first, everything, cpu_seconds(app_pid) - before[0], browser_cpu_seconds() - before[1]


def browser_pages(p, count: int):
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
    return browser, [browser.new_context(viewport={"width": 1400, "height": 1000}).new_page() for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clip", type=Path, help="an audio file to upload instead of the bundled example")
    parser.add_argument("-r", "--restorer", action="append", help="leave only this restorer chosen (repeatable)")
    args = parser.parse_args()
    from restorelab.lab import available_choices

    available = available_choices()  # what Compare offers here, in its order
    unknown = set(args.restorer or []) - set(available)
    if unknown:
        parser.error(f"not available here: {', '.join(sorted(unknown))}")
    unchosen = [name for name in available if name not in args.restorer] if args.restorer else []
    alone = restorers_alone(args.restorer or available, args.clip)
    votes = str(Path(tempfile.mkdtemp()) / "votes.csv")
    started = time.monotonic()
    # Without the output cache (1 kB holds no output): every Compare runs the restorers.
    with local_app(RESTORELAB_VOTES_PATH=votes, RESTORELAB_MAX_OUTPUT_CACHE_MB="0.001") as (app, url):
        answered = time.monotonic() - started
        with sync_playwright() as p:
            browser, (page, *others) = browser_pages(p, 3)
            fresh, cpu = [], []
            for _ in range(args.runs):
                open_example(page, url, args.clip, unchosen)
                first, everything, app_s, browser_s = compare_with_cpu(page, app.pid)
                fresh.append((first, everything))
                cpu.append((app_s, browser_s))
            both = []
            for _ in range(2):  # new visitors (their pages' first comparison), then the same two again
                for other in others:
                    open_example(other, url, args.clip, unchosen)
                starts = [click(other) for other in others]  # two visitors press Compare together
                both.append(shown(others, starts))
            browser.close()
    with local_app(RESTORELAB_VOTES_PATH=votes) as (_, url), sync_playwright() as p:
        browser, (page,) = browser_pages(p, 1)
        open_example(page, url, args.clip, unchosen)
        shown([page], [click(page)])
        repeated = shown([page], [click(page)])[0]  # the same clip, restorers and settings again
        browser.close()
    print(f"app answered its first request {answered:.1f} s after start")
    chosen = ", ".join(args.restorer) if args.restorer else "restorers"
    print(f"{chosen} alone on {args.clip or 'the 9.7 s stereo example'}, one after another: {alone:.2f} s")
    for label, runs in (("fresh page", fresh), ("two new visitors at once", both[0]),
                        ("the same two again, at once", both[1]),
                        ("Compare again, same settings", [repeated])):
        for first, total in runs:
            print(f"{label:30s} first output playable {first:5.2f} s, everything shown {total:5.2f} s "
                  f"({total / alone:.1f} x the restorers alone)")
    cores = os.cpu_count() or 1
    for (_, total), (app_s, browser_s) in zip(fresh, cpu):
        print(f"fresh page, CPU seconds from the click: app {app_s:.2f}, browser {browser_s:.2f}, together "
              f"{app_s + browser_s:.2f} of the {cores * total:.2f} that {cores} cores give in {total:.2f} s")


if __name__ == "__main__":
    main()
