"""Time the app's comparison without the app: ``lab.compare_steps`` in this process, no server, no page.

Runs every available restorer on the bundled example (or ``--clip FILE``) as Compare does, with
the output cache off and numpy's BLAS limited as the app limits it, after one comparison not
counted (models loaded). Prints, per run, the wall seconds to the first output, the last output,
the metrics table and everything (the Mel grid drawn), and the CPU seconds of the whole run, all
threads; then the medians. ``--root DIR`` imports ``restorelab`` from another checkout of this
repository (e.g. one made with ``git worktree add``), so two commits can be timed alike.

    python scripts/time_compare_server.py [--runs 5] [--clip FILE] [--root DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clip", type=Path, help="an audio file to compare instead of the bundled example")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to import restorelab from")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root.resolve()))
    from restorelab import lab

    lab.limit_blas_threads()
    lab.WORK_ROOT = Path(tempfile.mkdtemp(prefix="restorelab-timing-"))  # not the app's, and removed after
    try:
        time_runs(lab, args)
    finally:
        shutil.rmtree(lab.WORK_ROOT, ignore_errors=True)


def time_runs(lab, args) -> None:
    clip = lab.load_example(next(iter(lab.EXAMPLES))) if args.clip is None else lab.load_upload(str(args.clip))
    names = lab.available_choices()
    for _ in lab.compare_steps(clip, names, {}, cache=None):  # models loaded, modules imported
        pass
    columns = ("first output", "last output", "table", "everything", "CPU s")
    runs = []
    print(f"{len(names)} restorers on {args.clip or 'the bundled example'} ({clip.duration_s:.1f} s), "
          f"restorelab from {args.root}")
    print("| run | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for run in range(1, args.runs + 1):
        start, cpu = time.monotonic(), time.process_time()
        outputs = []
        for stage, _ in lab.compare_steps(clip, names, {}, cache=None):
            if stage == "output":
                outputs.append(time.monotonic() - start)
            elif stage == "metrics":
                table = time.monotonic() - start
        runs.append((outputs[0], outputs[-1], table, time.monotonic() - start, time.process_time() - cpu))
        print(f"| {run} | " + " | ".join(f"{value:.2f}" for value in runs[-1]) + " |")
    print("| median | " + " | ".join(f"{statistics.median(column):.2f}" for column in zip(*runs)) + " |")


if __name__ == "__main__":
    main()
