"""Time ``restorelab compare`` on long stereo clips and measure its peak memory.

For each duration it writes the bundled MusicGen-like example (or ``--source``) looped to that
length as a stereo WAV, runs ``python -m restorelab compare`` on it in a child process with every
available restorer and the figures, and prints a table: wall time, seconds per minute of audio
(constant when time is linear in the duration) and the child's peak resident memory.

    python scripts/time_compare_cli.py [--durations 60 600] [--source FILE] [-r NAME ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from restorelab import lab  # noqa: E402
from restorelab.audio import load_audio, write_wav  # noqa: E402


def looped(source: Path | None, seconds: float, path: Path) -> Path:
    clip = load_audio(source) if source else lab.load_example(next(iter(lab.EXAMPLES)))
    audio = clip.audio if clip.channels == 2 else np.repeat(clip.audio[:1], 2, axis=0)
    n = int(seconds * clip.sample_rate)
    return write_wav(path, np.resize(audio, (2, n)), clip.sample_rate, subtype="PCM_16")


def peak_mb(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of ``command`` run in a fresh child process."""
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    return wall, int(done.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[60.0, 600.0], help="clip lengths (s)")
    parser.add_argument("--source", type=Path, help="audio to loop (default: the bundled example)")
    parser.add_argument("-r", "--restorer", action="append", default=[], help="restorer (default: all)")
    args = parser.parse_args()
    print("| clip (s) | wall (s) | s per minute of audio | peak memory (MB) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for seconds in args.durations:
            clip = looped(args.source, seconds, Path(folder) / f"clip{seconds:g}.wav")
            command = [sys.executable, "-m", "restorelab", "compare", str(clip), "-o", str(Path(folder) / "out"),
                       "-q", *[part for name in args.restorer for part in ("-r", name)]]
            wall, peak = peak_mb(command)
            print(f"| {seconds:g} | {wall:.1f} | {wall / seconds * 60:.1f} | {peak:.0f} |", flush=True)
    print(f"\n{os.cpu_count()} CPU(s); ru_maxrss of the compare process.")


if __name__ == "__main__":
    main()
