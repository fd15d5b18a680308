"""Restorers against lossy codecs: LSD below each clip's codec bandwidth and SI-SDR, per preset.

Each clip (an excerpt of ``--seconds`` from its middle) is degraded with each preset (clip ``i``
with seed ``i``); the bandwidth the codec left is measured on the degraded clip (where its
long-term spectrum reaches its floor, n_fft 4096), and LSD is taken below it, so a band the coder
cut off entirely (MP3 at 64 kbps ends near 5.5 kHz) does not swamp what a restorer does inside
the band. The clean clip itself (``clean``) checks that a restorer leaves clean music alone.
Prints a Markdown table per preset: mean LSD below the bandwidth, whole-band LSD, SI-SDR, and with
``--visqol`` ViSQOL's MOS-LQO (about a second of computing per second of audio and row).

    python scripts/codec_restorers.py CLIPS... -r unet_codec -r spectral_gate_hf
    python scripts/codec_restorers.py --manifest ~/.cache/restorelab/train-data --split validation \
        -r unet_codec -r unet_codec:candidate.pt

``-r NAME:CHECKPOINT`` runs a U-Net restorer with another checkpoint (a row of its own);
``-r A+B`` runs restorer ``A`` and then ``B`` on its output (``unet_codec+unet_restore``).
``--set NAME.param=value`` changes a setting as ``restorelab evaluate --set`` does. ``--band-errors``
adds, per restorer, the mean squared log10-power error (LSD's STFT and floor) that each band
contributes, so the bands left to win show.
``--by-package`` adds LSD per source package (a cache's recordings, or each file's folder).
``--later-pieces`` keeps only the pieces after each track's first: builds before recordings were
cut into pieces held only a track's first piece, so no checkpoint trained on one of them heard these.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np

from restorelab.analysis import LSD_STFT, log_spectral_error, lsd, si_sdr_db, visqol_moslqo
from restorelab.audio import find_audio_files, load_audio
from restorelab.cli import parse_settings
from restorelab.degrade import degrade
from restorelab.dsp import bandwidth_hz
from restorers import get_restorer

BAND_EDGES_HZ = (0, 15000, 16000, 17000, 18000, 19000, 20000, 22050)
#: The SI-SDR (dB) above which a restorer is taken to leave a clean clip alone.
CLEAN_SI_SDR_DB = 40.0
PRESETS = ("clean", "opus_32k", "opus_64k", "mp3_64k", "mp3_128k", "vorbis_64k", "musicgen_codec")


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """The clean clips' options that :func:`clips_of` reads: files and folders, or a cache's split."""
    parser.add_argument("clips", nargs="*", help="clean clips or folders")
    parser.add_argument("--manifest", help="a training cache: take its recordings of --split")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--later-pieces", action="store_true",
                        help="only the pieces after each track's first (never in a build before the pieces)")


def clips_of(args) -> list[Path]:
    """The clean clips: the recordings of a training cache's split, or the files and folders given."""
    if args.manifest:
        from restorelab.unet.corpus import recordings_of

        files = recordings_of(Path(args.manifest), args.split)
    else:
        files = find_audio_files(args.clips)
    return [path for path in files if "-part" in path.stem] if args.later_pieces else files


def restorers_of(labels: list[str], settings: dict | None = None) -> dict:
    """``NAME`` or ``NAME:CHECKPOINT`` (a U-Net restorer with another checkpoint) -> the restorer,
    with ``settings`` (``restorelab.cli.parse_settings``'s) for its name; ``A+B`` runs ``A``, then
    ``B`` on its output."""
    restorers = {}
    for label in labels:
        stages = []
        for stage in label.split("+"):
            name, _, checkpoint = stage.partition(":")
            stages.append(get_restorer(name, **(settings or {}).get(name, {}),
                                       **({"checkpoint": checkpoint} if checkpoint else {})))
        restorers[label] = stages[0] if len(stages) == 1 else partial(_in_turn, stages)
    return restorers


def _in_turn(stages: list, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    for stage in stages:
        audio = stage(audio, sample_rate)
    return audio


def package_of(path: Path) -> str:
    """A cache recording's package (``recordings/PACKAGE/...``), else the file's folder."""
    parts = path.parts
    return parts[parts.index("recordings") + 1] if "recordings" in parts[:-2] else path.parent.name


def band_errors(clean: np.ndarray, estimate: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per band of :data:`BAND_EDGES_HZ`, its bins' share of the mean squared log10-power error."""
    error = log_spectral_error(clean, estimate).mean(axis=(0, 1))
    frequency = np.arange(error.size) * sample_rate / LSD_STFT.n_fft
    band = np.digitize(frequency, BAND_EDGES_HZ[1:-1])
    return np.bincount(band, weights=error, minlength=len(BAND_EDGES_HZ) - 1) / error.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(parser)
    parser.add_argument("-r", "--restorer", action="append", required=True, help="NAME or NAME:CHECKPOINT")
    parser.add_argument("--preset", action="append", help="presets (default: all of PRESETS)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--visqol", action="store_true", help="add ViSQOL's MOS-LQO (slow)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME.param=value")
    parser.add_argument("--band-errors", action="store_true", help="add each band's share of the squared error")
    parser.add_argument("--by-package", action="store_true", help="add LSD per source package")
    args = parser.parse_args()
    restorers = restorers_of(args.restorer, parse_settings(args.set))
    files = clips_of(args)
    packages = [package_of(path) for path in files]
    print(f"{len(files)} clips")
    for preset in args.preset or PRESETS:
        rows: dict[str, list[tuple[float, ...]]] = {"input": [], **{name: [] for name in restorers}}
        bands: dict[str, list[np.ndarray]] = {name: [] for name in rows}
        for seed, path in enumerate(files):
            clip = load_audio(path, max_duration_s=1800)
            n = int(args.seconds * clip.sample_rate)
            start = max(0, (clip.audio.shape[-1] - n) // 2)
            clean = clip.audio[:, start:start + n]
            degraded = clean if preset == "clean" else degrade(clean, clip.sample_rate, preset, seed=seed)[0]
            bandwidth = bandwidth_hz(degraded, clip.sample_rate)
            outputs = {"input": degraded, **{name: r(degraded, clip.sample_rate) for name, r in restorers.items()}}
            for name, audio in outputs.items():
                row = lsd(clean, audio, clip.sample_rate, bandwidth)
                visqol = (visqol_moslqo(clean, audio, clip.sample_rate),) if args.visqol else ()
                rows[name].append((row["lsd_low"], row["lsd"], si_sdr_db(clean, audio), *visqol))
                if args.band_errors:
                    bands[name].append(band_errors(clean, audio, clip.sample_rate))
        extra = (" ViSQOL |", "---|") if args.visqol else ("", "")
        print(f"\n`{preset}`\n\n| restorer | LSD below the bandwidth | LSD | SI-SDR (dB) |{extra[0]}\n"
              f"|---|---|---|---|{extra[1]}")
        for name, values in rows.items():
            table = np.array(values)
            visqol = f" {table[:, 3].mean():.3f} |" if args.visqol else ""
            print(f"| {name} | {table[:, 0].mean():.3f} | {table[:, 1].mean():.3f} | {table[:, 2].mean():.2f} |"
                  f"{visqol}", flush=True)
        if preset == "clean":  # the target asks for clean music back above CLEAN_SI_SDR_DB, clip by clip
            print("\nclean clips, SI-SDR clip by clip\n\n"
                  f"| restorer | lowest (dB) | clips under {CLEAN_SI_SDR_DB:g} dB |\n|---|---|---|")
            for name in restorers:
                si_sdr = np.array(rows[name])[:, 2]
                print(f"| {name} | {si_sdr.min():.2f} | {int((si_sdr < CLEAN_SI_SDR_DB).sum())} |")
        if args.by_package:
            names = sorted(set(packages))
            print("\nLSD by package (clips)\n")
            print("| restorer | " + " | ".join(f"{n} ({packages.count(n)})" for n in names)
                  + " | mean of the packages |\n|---|" + "---|" * (len(names) + 1))
            for name, values in rows.items():
                means = [np.mean([v[1] for v, p in zip(values, packages) if p == n]) for n in names]
                print(f"| {name} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.mean(means):.3f} |")
        if args.band_errors:
            edges = [f"{a / 1000:g}-{b / 1000:g} kHz" for a, b in zip(BAND_EDGES_HZ, BAND_EDGES_HZ[1:])]
            print("\nmean squared log10-power error contributed by each band (they add up to the whole)\n")
            print("| restorer | " + " | ".join(edges) + " | all |\n|---|" + "---|" * (len(edges) + 1))
            for name, values in bands.items():
                mean = np.mean(values, axis=0)
                print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in mean) + f" | {mean.sum():.3f} |")


if __name__ == "__main__":
    main()
