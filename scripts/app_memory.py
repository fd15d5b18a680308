"""Measure the app's memory and disk for the longest clip it accepts, through its own HTTP API.

Starts ``app.py`` on a free localhost port, uploads a stereo clip as long as the app allows (the
bundled MusicGen-like example repeated, or a file given with ``--clip``), compares it with every
available restorer, starts a blind pair and fetches both sides, then reads the server's peak
resident memory (``VmHWM``) and the disk its work files use. Prints a Markdown table. Linux only.

    python scripts/app_memory.py [--clip FILE] [--runs 2] [-o bench-results/app_memory.md]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from local_app import ROOT, local_app

sys.path.insert(0, str(ROOT))

from restorelab.audio import load_audio, write_wav  # noqa: E402
from restorelab.limits import Limits  # noqa: E402


def status_mb(pid: int, field: str) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) / 1024


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6 if path.exists() else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", help="audio file to repeat up to the app's longest clip")
    parser.add_argument("--runs", type=int, default=2, help="comparisons in a row (the second shows what stays)")
    parser.add_argument("-o", "--output", help="also write the table here")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    limits = Limits.from_env()
    work = Path(tempfile.mkdtemp(prefix="restorelab-memory-"))
    source = load_audio(args.clip or ROOT / "assets/examples/synth_pop_musicgen_like.flac")
    frames = int(limits.max_clip_s * source.sample_rate) - source.sample_rate // 10
    audio = np.resize(source.audio if source.channels == 2 else np.repeat(source.audio, 2, 0), (2, frames))
    clip = write_wav(work / "longest_clip.wav", audio, source.sample_rate, subtype="PCM_24")
    rows = []
    with local_app(RESTORELAB_VOTES_PATH=str(work / "votes.csv"), GRADIO_TEMP_DIR=str(work / "gradio"),
                   TMPDIR=str(work)) as (server, url):
        rows.append(("started", "", status_mb(server.pid, "VmHWM"), status_mb(server.pid, "VmRSS")))
        client = Client(url, verbose=False)
        client.predict(handle_file(str(clip)), api_name="/on_upload")
        info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/on_compare"]
        names = info["parameters"][0]["parameter_default"] or info["parameters"][0]["example_input"]
        knobs = [p["parameter_default"] for p in info["parameters"][2:]]
        for run in range(args.runs):
            start = time.monotonic()
            client.predict(names, False, *knobs, api_name="/on_compare")
            seconds = time.monotonic() - start
            rows.append((f"compare {run + 1}: {len(names)} restorers, {frames / source.sample_rate:.1f} s stereo",
                         f"{seconds:.1f}", status_mb(server.pid, "VmHWM"), status_mb(server.pid, "VmRSS")))
        ticket, *_ = client.predict(api_name="/on_start_listening")
        for link in re.findall(r'data-(?:left|right)="([^"]*)"', ticket):
            urllib.request.urlopen(url + link, timeout=30).read()
        rows.append(("a blind pair made and fetched", "", status_mb(server.pid, "VmHWM"),
                     status_mb(server.pid, "VmRSS")))
    work_mb = folder_mb(work / "restorelab-work")
    cache_mb = folder_mb(work / "gradio")
    lines = ["| step | seconds | peak RSS (MiB) | RSS now (MiB) |", "|---|---|---|---|"]
    lines += [f"| {step} | {seconds} | {peak:.0f} | {now:.0f} |" for step, seconds, peak, now in rows]
    lines += ["", f"Work files: {work_mb:.0f} MB after {args.runs} comparison(s); Gradio's cache: {cache_mb:.0f} MB "
              "(the upload). Limits: " + ", ".join(f"{k}={v:g}" for k, v in vars(limits).items()) + "."]
    table = "\n".join(lines)
    print(table)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(table + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
