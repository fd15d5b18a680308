"""How far a magnitude mask on the coded input could go, if it knew the clean music.

For each clip (an excerpt of ``--seconds`` from its middle) and codec preset: the coded input, the
oracle gain ``clip(|S| / |X|, 0, 2)`` on the input's STFT (its phase kept; the ceiling of
``unet_codec``'s gain), and that gain plus the oracle fill (cells the coder left 30 dB or more under
the clean music get the clean magnitude along their own phase, the ceiling of ``unet_codec``'s
fill). LSD below each clip's codec bandwidth and SI-SDR, as ``scripts/codec_restorers.py``
measures them. The gap between these rows and the trained model's is what the input alone does
not tell a mask.

    python scripts/codec_oracle.py --manifest ~/.cache/restorelab/train-data --split validation
"""

from __future__ import annotations

import argparse

import numpy as np

from restorelab.analysis import lsd, si_sdr_db
from restorelab.audio import load_audio
from restorelab.degrade import degrade
from restorelab.dsp import Stft, bandwidth_hz

PRESETS = ("opus_32k", "opus_64k", "mp3_64k", "mp3_128k", "vorbis_64k")


def oracles(clean: np.ndarray, coded: np.ndarray) -> dict[str, np.ndarray]:
    stft = Stft(2048, 512)
    s, x = stft.forward(clean), stft.forward(coded)
    magnitude = np.abs(x)
    gain = np.clip(np.abs(s) / np.maximum(magnitude, 1e-12), 0.0, 2.0)
    phase = np.where(magnitude > 0, x / np.maximum(magnitude, 1e-30), 0)
    emptied = np.square(magnitude) < 1e-3 * np.square(np.abs(s))
    fill = np.where(emptied, np.abs(s) * phase, 0)
    n = clean.shape[-1]
    return {"oracle gain": stft.inverse(x * gain, n), "oracle gain and fill": stft.inverse(x * gain + fill, n)}


def main() -> None:
    from codec_restorers import add_clip_arguments, clips_of  # this folder's: the same clips, chosen the same way

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(parser)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    files = clips_of(args)
    print(f"{len(files)} clips")
    for preset in PRESETS:
        rows: dict[str, list[tuple[float, float]]] = {}
        for seed, path in enumerate(files):
            clip = load_audio(path, max_duration_s=1800)
            n = int(args.seconds * clip.sample_rate)
            start = max(0, (clip.audio.shape[-1] - n) // 2)
            clean = clip.audio[:, start:start + n]
            coded = degrade(clean, clip.sample_rate, preset, seed=seed)[0]
            bandwidth = bandwidth_hz(coded, clip.sample_rate)
            for name, audio in {"input": coded, **oracles(clean, coded)}.items():
                row = lsd(clean, audio, clip.sample_rate, bandwidth)
                rows.setdefault(name, []).append((row["lsd_low"], si_sdr_db(clean, audio)))
        print(f"\n`{preset}`\n\n| | LSD below the bandwidth | SI-SDR (dB) |\n|---|---|---|")
        for name, values in rows.items():
            table = np.array(values)
            print(f"| {name} | {table[:, 0].mean():.3f} | {table[:, 1].mean():.2f} |", flush=True)


if __name__ == "__main__":
    main()
