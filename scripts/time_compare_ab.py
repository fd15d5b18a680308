"""Time Compare in two checkouts of the app, alternating, so a drift of the machine falls on both.

Starts ``app.py`` from each checkout (``A`` and ``B``: folders holding this repository at two
commits, e.g. made with ``git worktree add``) at once, with the output cache off, and opens one
page on each. After a first comparison on each page (not counted), it loads the bundled example
and presses Compare on A's page, then on B's, ``--rounds`` times, and prints per comparison when
the first restorer's player became playable, when everything was on screen (as
``time_compare.py`` sees it), and the CPU seconds the app and the browser spent meanwhile; then
the medians of each checkout. A single run of ``time_compare.py`` on this 2-core machine varies
by more than a change worth measuring; taken in alternation, the two checkouts meet the same
machine. ``--clip FILE`` uploads that file instead of loading the example.

    python scripts/time_compare_ab.py A B [--rounds 5] [--clip FILE]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from local_app import local_app
from playwright.sync_api import sync_playwright
from time_compare import browser_pages, click, compare_with_cpu, open_example, shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", type=Path, nargs=2, metavar="CHECKOUT")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clip", type=Path, help="an audio file to upload instead of the bundled example")
    args = parser.parse_args()
    runs: dict[Path, list[tuple[float, float, float, float]]] = {root: [] for root in args.checkouts}
    with ExitStack() as stack, sync_playwright() as p:
        apps = [stack.enter_context(local_app(root=root.resolve(), RESTORELAB_MAX_OUTPUT_CACHE_MB="0.001",
                                              RESTORELAB_VOTES_PATH=str(Path(tempfile.mkdtemp()) / "votes.csv")))
                for root in args.checkouts]
        time.sleep(10)  # both warm-ups done, so neither app's start falls on the other's comparison
        browser, pages = browser_pages(p, len(apps))
        for page, (_, url) in zip(pages, apps):  # each page's first comparison loads its scripts
            open_example(page, url, args.clip)
            shown([page], [click(page)])
        for _ in range(args.rounds):
            for root, page, (app, url) in zip(args.checkouts, pages, apps):
                open_example(page, url, args.clip)
                time.sleep(1)
                first, everything, app_s, browser_s = compare_with_cpu(page, app.pid)
                runs[root].append((first, everything, app_s, browser_s))
                print(f"{str(root):30s} first output {first:5.2f} s, everything {everything:5.2f} s, "
                      f"CPU s: app {app_s:.2f}, browser {browser_s:.2f}", flush=True)
        browser.close()
    for root, rows in runs.items():
        first, everything, app_s, browser_s = (statistics.median(column) for column in zip(*rows))
        print(f"{str(root):30s} medians of {len(rows)}: first output {first:.2f} s, everything {everything:.2f} s, "
              f"CPU s: app {app_s:.2f}, browser {browser_s:.2f}")


if __name__ == "__main__":
    main()
