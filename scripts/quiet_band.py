"""How much of the high band in a clip's quiet frames is a stationary floor, the part a denoiser
can take without taking music.

For each clip: the power at 6-14 kHz (under the 32 kHz codec's cliff) over its quietest quarter of
frames, as ``restorelab evaluate --no-reference`` picks them; a per-bin stationary floor
estimated by minimum statistics (the power smoothed over 0.3 s, its minimum over the clip, scaled
so that white noise is estimated at its own level); and the dB that removing exactly that floor
from the quiet frames would take off (``floor_db``). Where a restorer takes off more than that, the
rest was not stationary: it rose and fell with the music. ``comodulation`` is the correlation, over
the quiet frames, of the high band's level with the 1-6 kHz band's. For the clips with a floor of
1.5 dB or more: how far the floor lies under the clip's mean power, and its slope from 6 to 14 kHz.

Known answers first: the reference excerpts band-limited at 16 kHz (a floor of their own, no
hiss added), the same with the ``hiss_16k`` preset's hiss, and with brown hiss (-6 dB per octave,
as the real clips' floors fall) and what each restorer takes of it; the true drop is known (the
quiet high band with and without the hiss). Then the clips in question.

    python scripts/quiet_band.py ../shared/data/music-reference ../shared/data/musicgen-clips \\
        -r spectral_gate_hf -r spectral_subtraction_hf -r unet_denoise
"""

from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from restorelab.analysis import quiet_frames
from restorelab.audio import WORKING_RATE, find_audio_files, load_audio
from restorelab.degrade import additive_noise, degrade
from restorelab.dsp import Stft
from restorelab.report import to_markdown

STFT = Stft(2048, 512)
HIGH = (6000.0, 14000.0)
MID = (1000.0, 6000.0)
SMOOTH_S = 0.3


def power(audio: np.ndarray) -> np.ndarray:
    """Channel-averaged power ``[frames, bins]``."""
    return np.mean(np.square(np.abs(STFT.forward(audio))), axis=0)


#: What :func:`measure` gives of every clip (the rest only of the clips in question).
BASIC = ("quiet_high_db", "floor_db", "comodulation")


def _bins(band: tuple[float, float]) -> slice:
    return slice(*(STFT.bin_index(f, WORKING_RATE) for f in band))


def _band(p: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    return p[:, _bins(band)]


def _minimum(p: np.ndarray) -> np.ndarray:
    width = max(1, int(round(SMOOTH_S * WORKING_RATE / STFT.hop)))
    return uniform_filter1d(p, width, axis=0, mode="nearest").min(axis=0)


@lru_cache(maxsize=8)
def _bias(channels: int, samples: int) -> float:
    """Mean over estimated floor for white noise of the same channels and length, through the same
    STFT (its overlapping frames are not independent), so that white noise is estimated at its level."""
    noise = np.random.default_rng(0).standard_normal((channels, samples)).astype(np.float32)
    high = _band(power(noise), HIGH)
    return float(high.mean() / _minimum(high).mean())


def measure(audio: np.ndarray, quiet: np.ndarray | None = None) -> dict:
    """The quiet frames' high band, its stationary floor and comodulation (see the module's doc)."""
    p = power(audio)
    if quiet is None:
        quiet = quiet_frames(p)
    high = _band(p, HIGH)
    floor = _minimum(high) * _bias(*np.atleast_2d(audio).shape)
    level = high[quiet].sum(axis=1)
    left = np.maximum(high[quiet] - floor, 0.0).sum(axis=1)
    mid = _band(p, MID)[quiet].sum(axis=1)
    bins = _bins(HIGH)
    octaves = np.log2(np.arange(bins.start, bins.stop) * WORKING_RATE / STFT.n_fft)
    return {"quiet_high_db": float(10 * np.log10(level.mean() + 1e-20)),
            "floor_db": float(10 * np.log10(level.mean() / max(left.mean(), 1e-20))),
            "comodulation": float(np.corrcoef(np.log10(level + 1e-20), np.log10(mid + 1e-20))[0, 1]),
            "floor_under_mean_db": float(10 * np.log10(p.sum(axis=1).mean() / max(floor.sum(), 1e-20))),
            "floor_slope_db_per_octave": float(np.polyfit(octaves, 10 * np.log10(floor + 1e-20), 1)[0]),
            "quiet": quiet}


def summary(name: str, rows: list[dict]) -> dict:
    out = {"set": name, "clips": len(rows)}
    for key in rows[0]:
        values = np.array([row[key] for row in rows], dtype=float)
        out[key] = f"{np.mean(values):.2f} ({np.median(values):.2f})"
        if key.startswith("floor_") and key != "floor_db":  # the few clips with a floor: their range too
            out[key] += f", {values.min():.1f} to {values.max():.1f}"
        if key == "floor_db":
            out["floor_at_least_1.5_db"] = int(np.sum(values >= 1.5))
    return out


def _with_hiss(noisy: dict, clean: np.ndarray) -> dict:
    """The row of a clip with hiss added, and the true drop: its quiet high band less the clean one's."""
    return {k: noisy[k] for k in BASIC} | {"true_drop_db": noisy["quiet_high_db"]
                                          - measure(clean, noisy["quiet"])["quiet_high_db"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("references", type=Path, help="full-band music (the known answers)")
    parser.add_argument("clips", type=Path, help="the clips in question (e.g. real MusicGen output)")
    parser.add_argument("-r", "--restorer", action="append", default=[],
                        help="restorers to measure on the clips: NAME or NAME:CHECKPOINT")
    args = parser.parse_args()

    from codec_restorers import restorers_of  # this folder's, run as a script

    restorers = restorers_of(args.restorer)

    table = []
    limited, hissy, brown, on_brown = [], [], [], {name: [] for name in restorers}
    for i, path in enumerate(find_audio_files([args.references])):
        reference = load_audio(path).audio
        clean, _ = degrade(reference, WORKING_RATE, "band_limit_16k", seed=0)
        noisy, _ = degrade(reference, WORKING_RATE, "hiss_16k", seed=0)
        # Hiss falling 6 dB per octave, as the real clips' floors do (above 4 kHz, 30 dB under the music).
        steep = additive_noise(clean, WORKING_RATE, np.random.default_rng(i), snr_db=30.0, color="brown",
                               highpass_hz=4000.0)
        a, c = measure(clean), measure(steep)
        limited.append({k: a[k] for k in BASIC})
        hissy.append(_with_hiss(measure(noisy), clean))
        brown.append(_with_hiss(c, clean))
        for name, restorer in restorers.items():
            out = measure(np.asarray(restorer(steep, WORKING_RATE), dtype=np.float32), c["quiet"])
            on_brown[name].append({"taken_db": c["quiet_high_db"] - out["quiet_high_db"]})
    table.append(summary(f"{args.references.name}, band-limited at 16 kHz", limited))
    table.append(summary(f"{args.references.name}, hiss_16k", hissy))
    table.append(summary(f"{args.references.name}, band-limited, brown hiss", brown))
    for name, values in on_brown.items():
        table.append(summary(f"{args.references.name}, band-limited, brown hiss, {name}", values))

    rows, floors, taken = [], [], {name: [] for name in restorers}
    for path in find_audio_files([args.clips]):
        audio = load_audio(path).audio
        m = measure(audio)
        rows.append({k: m[k] for k in BASIC})
        floors.append({k: m[k] for k in ("floor_db", "floor_under_mean_db", "floor_slope_db_per_octave")})
        for name, restorer in restorers.items():
            out = measure(np.asarray(restorer(audio, WORKING_RATE), dtype=np.float32), m["quiet"])
            taken[name].append({"taken_db": m["quiet_high_db"] - out["quiet_high_db"],
                                "beyond_floor_db": m["quiet_high_db"] - out["quiet_high_db"] - m["floor_db"]})
    table.append(summary(args.clips.name, rows))
    for name, values in taken.items():
        table.append(summary(f"{args.clips.name}, {name}", values))
    floored = [i for i, row in enumerate(rows) if row["floor_db"] >= 1.5]
    if floored:  # the clips with a floor worth taking: the floor, and what each restorer took of it
        table.append(summary(f"{args.clips.name} with a floor of 1.5 dB or more", [floors[i] for i in floored]))
        for name, values in taken.items():
            table.append(summary(f"{args.clips.name} with a floor of 1.5 dB or more, {name}",
                                 [values[i] for i in floored]))
    columns = ["set", "clips", "floor_db", "floor_at_least_1.5_db", "comodulation", "true_drop_db", "taken_db",
               "beyond_floor_db", "floor_under_mean_db", "floor_slope_db_per_octave"]
    print(to_markdown([{c: row.get(c, "") for c in columns} for row in table], columns))
    print("mean (median) over clips; dB of the 6-14 kHz band in each clip's quietest quarter of frames")


if __name__ == "__main__":
    main()
