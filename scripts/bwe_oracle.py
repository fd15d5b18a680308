"""How far an extension that shapes a copied band could go, if it knew the reference's band energies.

For each clip (an excerpt of ``--seconds`` from its middle), band-limited at 16 kHz
(``band_limit_16k``, clip ``i`` with seed ``i``):

- the two extensions as shipped, and each with its added band turned down by 4 and 8 dB (a log
  measure such as LSD prefers a band quieter than the true one where the true one is uncertain);
- ``unet_bwe`` with a tail: the DSP copy from its 19 kHz stop up to 20.5 kHz, 30 dB under the
  continued envelope (music whose band ends at 19 kHz against music that carries 19-20 kHz);
- the oracle envelope over bands of N bins: the DSP extension's copy, made up to Nyquist, scaled
  in every frame and band so its energy is what the reference holds there beyond the input (the
  ceiling of any extension that shapes this copy, as ``unet_bwe`` does, at that resolution:
  ``unet_bwe``'s Mel bands are 500-600 Hz apart at 16-20 kHz, about 26 bins of 21.5 Hz);
- the oracle per cell: the reference's magnitude with the copy's phase.

LSD over the whole band, as ``restorelab evaluate`` measures it and in the papers' convention
(unnormalised Hann STFT, n_fft 2048, hop 512, power floor 1e-8), each also as a share of the
input's; and the long-term level of the 16-19 kHz band against the reference's (the median over
clips, in dB), which says whether a row's band is as loud as the music's.

    python scripts/bwe_oracle.py --manifest ~/.cache/restorelab/train-data --split validation --later-pieces
    python scripts/bwe_oracle.py ../shared/data/music-reference
"""

from __future__ import annotations

import argparse

import numpy as np

from restorelab.analysis import log_spectral_error, lsd
from restorelab.audio import load_audio
from restorelab.degrade import degrade
from restorelab.dsp import Stft, long_term_power
from restorelab.replication import Replication, fade_below, guard_above_cutoff, replication_plan
from restorers import get_restorer

STFT = Stft(2048, 512)  # the extensions' grid, and the papers' LSD
PAPERS_POWER_FLOOR = 1e-8
ORACLE_BANDS = (8, 32, 64, 128)
LEVEL_BAND_HZ = (16000.0, 19000.0)


def papers_lsd(reference: np.ndarray, estimate: np.ndarray) -> float:
    """LSD in the papers' convention: n_fft 2048, hop 512, power floor 1e-8, log10 power."""
    squared = log_spectral_error(reference, estimate, STFT, PAPERS_POWER_FLOOR)
    return float(np.mean(np.sqrt(np.mean(squared, axis=-1))))


def band_level_db(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """The long-term power of ``estimate`` in :data:`LEVEL_BAND_HZ` against ``reference``'s, in dB."""
    frequency = STFT.bin_frequencies_hz(sample_rate)
    band = (frequency >= LEVEL_BAND_HZ[0]) & (frequency < LEVEL_BAND_HZ[1])

    def power(audio: np.ndarray) -> float:
        return float(np.mean(np.square(np.abs(STFT.forward(audio)[..., band]))))

    return float(10 * np.log10(max(power(estimate), 1e-30) / max(power(reference), 1e-30)))


def tail(audio: np.ndarray, sample_rate: int, start_hz: float, stop_hz: float, gain_db: float) -> np.ndarray | None:
    """The DSP copy between ``start_hz`` (faded in as the shipped band fades out) and ``stop_hz``."""
    spec = STFT.forward(audio)
    plan = replication_plan(long_term_power(spec), sample_rate, STFT, Replication(max_frequency_hz=stop_hz))
    if plan is None:
        return None
    fade_in = 1 - fade_below(STFT.bin_frequencies_hz(sample_rate), start_hz)
    gain = (plan.gain * fade_in * 10 ** (gain_db / 20)).astype(np.float32)
    generated = STFT.inverse(spec[..., plan.origin] * gain, audio.shape[-1])
    return guard_above_cutoff(generated, plan.cutoff_bin, STFT, sample_rate)


def oracles(clean: np.ndarray, degraded: np.ndarray, copied: np.ndarray) -> dict[str, np.ndarray]:
    """``copied``: the DSP extension's output with its band up to Nyquist."""
    added = STFT.forward(copied - degraded)
    missing = STFT.forward(clean - degraded)
    first = int(np.argmax(np.abs(added).sum(axis=(0, 1)) > 0))
    n = clean.shape[-1]
    rows = {}
    for width in ORACLE_BANDS:
        shaped = np.zeros_like(added)
        for start in range(first, added.shape[-1], width):
            band = slice(start, start + width)
            have = np.sum(np.square(np.abs(added[..., band])), axis=-1, keepdims=True)
            want = np.sum(np.square(np.abs(missing[..., band])), axis=-1, keepdims=True)
            shaped[..., band] = added[..., band] * np.sqrt(want / np.maximum(have, 1e-30))
        rows[f"oracle envelope, {width} bins"] = degraded + STFT.inverse(shaped, n)
    phase = added / np.maximum(np.abs(added), 1e-30)
    rows["oracle per cell"] = degraded + STFT.inverse(np.where(np.abs(added) > 0, np.abs(missing) * phase, 0), n)
    return rows


def main() -> None:
    from codec_restorers import add_clip_arguments, clips_of  # this folder's: the same clips, chosen the same way

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(parser)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    files = clips_of(args)
    dsp, unet = get_restorer("bandwidth_extension_dsp"), get_restorer("unet_bwe")
    to_nyquist = get_restorer("bandwidth_extension_dsp", max_frequency_hz=24000.0)
    rows: dict[str, list[tuple[float, float, float]]] = {}
    print(f"{len(files)} clips")
    for seed, path in enumerate(files):
        clip = load_audio(path, max_duration_s=1800)
        rate = clip.sample_rate
        n = int(args.seconds * rate)
        start = max(0, (clip.audio.shape[-1] - n) // 2)
        clean = clip.audio[:, start:start + n]
        degraded = degrade(clean, rate, "band_limit_16k", seed=seed)[0]
        outputs = {"input": degraded}
        for name, restorer in (("bandwidth_extension_dsp", dsp), ("unet_bwe", unet)):
            added = restorer(degraded, rate) - degraded
            for down_db in (0, 4, 8):
                label = name if not down_db else f"{name}, band {down_db} dB down"
                outputs[label] = degraded + added * 10 ** (-down_db / 20)
        extra = tail(degraded, rate, unet.trained_stop_hz(), 20500.0, -30.0)
        outputs["unet_bwe, tail to 20.5 kHz at -30 dB"] = outputs["unet_bwe"] + (0 if extra is None else extra)
        outputs.update(oracles(clean, degraded, to_nyquist(degraded, rate)))
        for name, audio in outputs.items():
            rows.setdefault(name, []).append((lsd(clean, audio, rate)["lsd"], papers_lsd(clean, audio),
                                              band_level_db(clean, audio, rate)))
    first = np.mean(rows["input"], axis=0)
    print("\n| | LSD | of the input's | LSD, papers' convention | of the input's | 16-19 kHz level (dB) |\n"
          "|---|---|---|---|---|---|")
    for name, values in rows.items():
        mean, level = np.mean(values, axis=0), np.median(np.array(values)[:, 2])
        print(f"| {name} | {mean[0]:.3f} | {mean[0] / first[0]:.2f} | {mean[1]:.3f} | {mean[1] / first[1]:.2f} "
              f"| {level:+.1f} |")


if __name__ == "__main__":
    main()
