"""What each lossy-codec preset leaves on clean music: effective bandwidth, SI-SDR and LSD.

Degrades every clip in FOLDER with each preset (clip ``i`` with seed ``i``) and prints a Markdown
table: the effective bandwidth (where the long-term spectrum reaches its floor, n_fft 4096) as the
median and range over clips, and the mean SI-SDR and LSD against the clean clip.

    python scripts/codec_presets.py ../shared/data/music-reference
"""

from __future__ import annotations

import argparse

import numpy as np

from restorelab.analysis import lsd, si_sdr_db
from restorelab.audio import find_audio_files, load_audio
from restorelab.degrade import degrade
from restorelab.dsp import bandwidth_hz

PRESETS = ("opus_32k", "opus_64k", "mp3_64k", "mp3_128k", "vorbis_64k", "musicgen_codec")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="clean clips")
    args = parser.parse_args()
    files = find_audio_files([args.folder])
    print("| preset | effective bandwidth (Hz) | SI-SDR (dB) | LSD |\n|---|---|---|---|")
    for preset in PRESETS:
        rows = []
        for seed, path in enumerate(files):
            clip = load_audio(path)
            degraded, _ = degrade(clip.audio, clip.sample_rate, preset, seed=seed)
            bandwidth = bandwidth_hz(degraded, clip.sample_rate)
            rows.append((bandwidth, si_sdr_db(clip.audio, degraded), lsd(clip.audio, degraded, clip.sample_rate)["lsd"]))
        table = np.array(rows)
        print(f"| `{preset}` | {np.median(table[:, 0]):.0f} ({table[:, 0].min():.0f}–{table[:, 0].max():.0f}) "
              f"| {table[:, 1].mean():.1f} | {table[:, 2].mean():.2f} |", flush=True)


if __name__ == "__main__":
    main()
