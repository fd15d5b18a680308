"""Measurements of restored audio: numbers only (figures live in :mod:`restorelab.plots`).

Two families:

* no-reference measures for real MusicGen clips, which have no clean original
  (every table has the unprocessed input as its first row);
* reference measures for degraded copies of clean music (LSD, SI-SDR,
  multi-resolution STFT distance, spectrogram errors, ViSQOL).

Resolutions and floors are module constants and are printed next to every
number in reports (:data:`SETTINGS_NOTE`): LSD moves by a factor of three with
its floor alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np

from restorelab.audio import loudness_lufs, resample
from restorelab.dsp import Stft, db, estimate_cutoff_hz, frame_rms, hann, median_filter, mel_filterbank

#: STFT for the no-reference spectral features and spectrograms.
FEATURE_STFT = Stft(2048, 512)
#: LSD as in NVSR/AudioSR: n_fft 2048, hop 441 (10 ms) at 44.1 kHz, unnormalised Hann STFT.
LSD_STFT = Stft(2048, 441)
#: Floor on the power |X|^2 (unnormalised STFT) before log10 in LSD.
LSD_POWER_FLOOR = 1e-10
#: Resolutions (n_fft, hop) of the multi-resolution STFT distance.
MRSTFT_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
#: Mel settings for log-mel distance and the Mel spectrogram.
N_MELS = 128
#: Floor on mel power (window-normalised, full-scale sine = 0.25) before log10.
MEL_POWER_FLOOR = 1e-10
#: Floor of the dB spectrograms used for plots and spectrogram errors.
SPECTROGRAM_FLOOR_DB = -120.0
HF_BAND_HZ = 6000.0
#: Share of the input's frames, the quietest by total power, where hiss is easiest to hear.
QUIET_SHARE = 0.25
#: Name of the unprocessed input's row in every table, and of the input in comparisons and listening tests.
INPUT_ROW = "input"
CLIP_LEVEL = 1.0

SETTINGS_NOTE = (
    f"LSD: log10 power, unnormalised Hann STFT n_fft={LSD_STFT.n_fft} hop={LSD_STFT.hop}, "
    f"power floor {LSD_POWER_FLOOR:g}; log-mel distance: mean |log10 mel power| difference, "
    f"{N_MELS} Slaney mels, n_fft={FEATURE_STFT.n_fft} hop={FEATURE_STFT.hop}, "
    f"floor {MEL_POWER_FLOOR:g} (full-scale sine = 0.25); MR-STFT: spectral convergence + "
    f"log-magnitude L1 averaged over {', '.join(f'{n}/{h}' for n, h in MRSTFT_RESOLUTIONS)}; "
    f"spectrogram MSE/MAE in dB with a {SPECTROGRAM_FLOOR_DB:g} dB floor, cosine on magnitudes."
)


# -- spectra ----------------------------------------------------------------

#: Frames of the feature STFT held at once (about 47 s at 44.1 kHz): a longer clip is measured
#: a block of frames at a time, with the same numbers, in memory that does not grow with its length.
BLOCK_FRAMES = 4096
#: Taps of the median filters of the harmonic/percussive split.
HPSS_KERNEL = 17


def _as_2d(audio: np.ndarray) -> np.ndarray:
    return np.atleast_2d(np.asarray(audio, dtype=np.float32))


def normalised_power(audio: np.ndarray, stft: Stft = FEATURE_STFT, start: int = 0,
                     stop: int | None = None) -> np.ndarray:
    """Power spectrogram scaled so a full-scale sine reads 0.25 at its bin; frames ``[start, stop)``
    (default: all).

    Shape: ``[channels, samples] -> [channels, frames, bins]``.
    """
    spec = stft.forward(_as_2d(audio), start, stop)
    return np.square(np.abs(spec) * (1.0 / float(np.sum(hann(stft.n_fft)))), dtype=np.float64)


def power_blocks(audio: np.ndarray, stft: Stft = FEATURE_STFT, block_frames: int | None = None,
                 context: int = 0) -> Iterator[tuple[int, int, np.ndarray]]:
    """:func:`normalised_power`, channels averaged, a block of frames at a time.

    Yields ``(start, stop, power)``: frames ``[start, stop)`` with up to ``context`` frames more on
    each side where the clip has them, so ``power`` holds frames
    ``[max(start - context, 0), min(stop + context, frames))``, shaped ``[frames, bins]``.
    ``block_frames`` defaults to :data:`BLOCK_FRAMES`.
    """
    block_frames = block_frames or BLOCK_FRAMES
    audio = _as_2d(audio)
    total = stft.n_frames(audio.shape[-1])
    for start in range(0, total, block_frames):
        stop = min(start + block_frames, total)
        yield start, stop, normalised_power(audio, stft, max(start - context, 0), min(stop + context, total)).mean(0)


def loudest_of_runs(level: np.ndarray, step: int, axis: int = 1) -> np.ndarray:
    """The largest of each run of ``step`` entries along ``axis`` of a 2-D array (the last run may
    be shorter): how a spectrogram is shrunk for drawing without losing its transients and tones."""
    if step == 1:
        return level
    level = np.moveaxis(level, axis, 1)
    pad = -level.shape[1] % step
    runs = np.pad(level, ((0, 0), (0, pad)), mode="edge").reshape(level.shape[0], -1, step).max(axis=2)
    return np.moveaxis(runs, 1, axis)


def _spectrograms_db(audio: np.ndarray, stft: Stft, weights: dict[str, np.ndarray | None],
                     max_columns: int | None) -> dict[str, np.ndarray]:
    """Level in dB ``[rows, columns]`` of the channel-averaged power through each of ``weights``
    (``[rows, bins]``; ``None``: the bins themselves), at most ``max_columns`` wide: the loudest
    frame of each run, so transients stay visible. One pass over the clip, a block of frames at a time."""
    step = _run_length(stft.n_frames(_as_2d(audio).shape[-1]), max_columns)
    columns: dict[str, list] = {kind: [] for kind in weights}
    # Blocks hold whole runs, so reducing each block gives the runs of the whole clip.
    for _, _, power in power_blocks(audio, stft, block_frames=max(1, BLOCK_FRAMES // step) * step):
        for kind, rows in weights.items():
            level = power.T if rows is None else rows @ power.T
            columns[kind].append(loudest_of_runs(_drawn_db(level), step))
    return {kind: np.concatenate(parts, axis=1) for kind, parts in columns.items()}


def _run_length(frames: int, max_columns: int | None) -> int:
    """Frames per drawn column: the fewest that fit ``frames`` into ``max_columns`` (1: every frame)."""
    return 1 if max_columns is None else max(1, -(-frames // max_columns))


def _drawn_db(power: np.ndarray) -> np.ndarray:
    """Power in dB as the spectrograms draw it: floored at :data:`SPECTROGRAM_FLOOR_DB`."""
    return np.maximum(db(power), SPECTROGRAM_FLOOR_DB)


def _frame_times(audio: np.ndarray, sample_rate: int, stft: Stft, max_columns: int | None) -> np.ndarray:
    frames = stft.n_frames(_as_2d(audio).shape[-1])
    return np.arange(0, frames, _run_length(frames, max_columns)) * stft.hop / sample_rate


@lru_cache(maxsize=4)
def _mel_weights(sample_rate: int) -> np.ndarray:
    fb = mel_filterbank(sample_rate, FEATURE_STFT.n_fft, N_MELS)
    # Area-normalised filters: rescale so a flat spectrum keeps its level.
    return fb / fb.sum(axis=1, keepdims=True)


def spectrograms_db(audio: np.ndarray, sample_rate: int, kinds: tuple[str, ...] = ("mel", "linear"),
                    max_columns: int | None = None) -> dict[str, tuple]:
    """The Mel and linear spectrograms (of :data:`FEATURE_STFT`, channels averaged, in dB re full
    scale) from one pass over the clip: kind -> ``(times_s, freqs_hz, level_db [rows, frames])``,
    the Mel rows at their bands' centres. With ``max_columns``, at most that many frames, each the
    loudest of a run (for drawing a long clip)."""
    weights = {}
    for kind in kinds:
        if kind not in ("mel", "linear"):
            raise ValueError(f"kind must be mel or linear, got {kind!r}")
        weights[kind] = _mel_weights(sample_rate) if kind == "mel" else None
    levels = _spectrograms_db(audio, FEATURE_STFT, weights, max_columns)
    times = _frame_times(audio, sample_rate, FEATURE_STFT, max_columns)
    freqs = {"mel": _mel_centres_hz(sample_rate), "linear": FEATURE_STFT.bin_frequencies_hz(sample_rate)}
    return {kind: (times, freqs[kind], level) for kind, level in levels.items()}


def _mel_centres_hz(sample_rate: int) -> np.ndarray:
    fb = mel_filterbank(sample_rate, FEATURE_STFT.n_fft, N_MELS)
    return (fb * FEATURE_STFT.bin_frequencies_hz(sample_rate)).sum(axis=1) / fb.sum(axis=1)


def linear_spectrogram_db(audio: np.ndarray, sample_rate: int, stft: Stft = FEATURE_STFT,
                          max_columns: int | None = None):
    """Channel-averaged power spectrogram in dB re full scale.

    Returns:
        ``(times_s [frames], freqs_hz [bins], level_db [bins, frames])``; ``max_columns`` as in
        :func:`spectrograms_db`.
    """
    level = _spectrograms_db(audio, stft, {"linear": None}, max_columns)["linear"]
    return _frame_times(audio, sample_rate, stft, max_columns), stft.bin_frequencies_hz(sample_rate), level


def mel_power(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Channel-averaged mel power spectrogram, ``[n_mels, frames]``."""
    weights = _mel_weights(sample_rate)
    return np.concatenate([weights @ power.T for _, _, power in power_blocks(audio)], axis=1)


def mel_spectrogram_db(audio: np.ndarray, sample_rate: int, max_columns: int | None = None):
    """Returns ``(times_s, mel_centre_hz, level_db [n_mels, frames])``; ``max_columns`` as in
    :func:`spectrograms_db`."""
    return spectrograms_db(audio, sample_rate, ("mel",), max_columns)["mel"]


def welch_psd_db(audio: np.ndarray, sample_rate: int, n_fft: int = 4096, block_segments: int = 256):
    """Channel-averaged Welch PSD in dB re full scale per Hz: ``(freqs_hz, psd_db)``.

    scipy's ``welch`` with its defaults (half-overlapping periodic Hann segments, each less its
    mean, density scaling, the mean over segments), computed ``block_segments`` segments at a time
    with one FFT call per block: the same numbers as one ``welch`` call over the whole clip, without
    holding every segment's spectrum at once, and a third faster than ``welch``'s own loop.
    """
    import scipy.fft
    import scipy.signal

    audio = _as_2d(audio)
    n_fft = min(n_fft, audio.shape[-1])
    hop = n_fft // 2
    segments = (audio.shape[-1] - n_fft) // hop + 1
    window = scipy.signal.get_window("hann", n_fft)
    scale = np.full(n_fft // 2 + 1, 2.0 / (sample_rate * np.sum(window**2)))
    scale[0] /= 2  # the one-sided spectrum doubles every bin but 0 Hz (and Nyquist, for an even n_fft)
    if n_fft % 2 == 0:
        scale[-1] /= 2
    total = np.zeros(n_fft // 2 + 1)
    for first in range(0, segments, block_segments):
        count = min(block_segments, segments - first)
        piece = audio[:, first * hop : (first + count - 1) * hop + n_fft].astype(np.float64)
        frames = np.lib.stride_tricks.sliding_window_view(piece, n_fft, axis=-1)[:, ::hop]
        spectrum = scipy.fft.rfft((frames - frames.mean(axis=-1, keepdims=True)) * window, axis=-1)
        total += (np.square(spectrum.real) + np.square(spectrum.imag)).sum(axis=(0, 1)) / audio.shape[0]
    return scipy.fft.rfftfreq(n_fft, 1.0 / sample_rate), db(total * scale / segments)


# -- no-reference measures --------------------------------------------------

def hf_band_energy_db(power: np.ndarray, sample_rate: int, band_hz: float = HF_BAND_HZ,
                      frames: np.ndarray | None = None) -> float:
    """Mean power per frame (over ``frames``, default all) summed over bins at or above ``band_hz``, in dB."""
    k = FEATURE_STFT.bin_index(band_hz, sample_rate)
    band = power[..., k:].sum(axis=-1)
    return float(db((band if frames is None else band[..., frames]).mean()))


def quiet_frames(power: np.ndarray, share: float = QUIET_SHARE) -> np.ndarray:
    """Indices of the quietest ``share`` of frames by total power (channels averaged); ``power`` is
    ``[..., frames, bins]``, or the total power of each frame ``[frames]``."""
    total = power if power.ndim == 1 else power.sum(axis=-1).reshape(-1, power.shape[-2]).mean(axis=0)
    count = max(1, int(round(share * total.size)))
    return np.sort(np.argsort(total, kind="stable")[:count])


def _hpss_energies(power: np.ndarray, core: slice, kernel: int = HPSS_KERNEL) -> tuple[float, float]:
    """Harmonic and percussive energy of frames ``core`` of a channel-averaged power spectrogram
    ``[frames, bins]``; the frames around ``core`` are context for the median over time."""
    magnitude = np.sqrt(power).astype(np.float32)
    harmonic = median_filter(magnitude, kernel, axis=0)[core]
    magnitude = magnitude[core]
    percussive = median_filter(magnitude, kernel, axis=1)
    # The harmonic mask h^2 / (h^2 + p^2), in place in float32 (0.5 where both are 0); the
    # energies summed in float64. The percussive energy is what the harmonic mask leaves.
    mask_h = np.square(harmonic, out=harmonic)
    total = mask_h + np.square(percussive, out=percussive)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(mask_h, total, out=mask_h)
    mask_h[total == 0] = 0.5
    energy = np.square(magnitude)
    harmonic_energy = float(np.sum(energy * mask_h, dtype=np.float64))
    return harmonic_energy, float(np.sum(energy, dtype=np.float64)) - harmonic_energy


def _hpss_ratio(e_h: float, e_p: float) -> float:
    floor = 1e-6 * (e_h + e_p)  # bounds the ratio at +-60 dB; silence reads 0 dB
    if floor == 0:
        return 0.0
    return float(10.0 * np.log10((e_h + floor) / (e_p + floor)))


def hpss_ratio_db(power: np.ndarray, kernel: int = HPSS_KERNEL) -> float:
    """Harmonic-to-percussive energy ratio by median-filtering HPSS (Fitzgerald 2010).

    Harmonic = median over time, percussive = median over frequency, both with
    ``kernel`` taps, on the channel-averaged magnitude spectrogram; energies are
    split with soft Wiener masks.
    """
    return _hpss_ratio(*_hpss_energies(power.mean(axis=0), slice(None), kernel))


def log_mel(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``log10`` of :func:`mel_power`, floored at :data:`MEL_POWER_FLOOR`: what log-mel distance compares."""
    return np.log10(np.maximum(mel_power(audio, sample_rate), MEL_POWER_FLOOR))


def _log_mel_difference(a: np.ndarray, b: np.ndarray) -> float:
    frames = min(a.shape[1], b.shape[1])
    return float(np.mean(np.abs(a[:, :frames] - b[:, :frames])))


def log_mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference of log10 mel power (0 = identical; 0.1 = 1 dB)."""
    return _log_mel_difference(log_mel(reference, sample_rate), log_mel(estimate, sample_rate))


#: Frames below this share of the loudest frame's power are left out of the spectral shape.
ACTIVE_SHARE = 1e-6


class _Spectra:
    """The spectral measures of one clip, fed its channel-averaged power a block of frames at a time.

    Per frame it keeps a few numbers (total and high-band power, centroid, flatness, the log-mel
    column); over frames, sums. (The HPSS ratio needs context across block edges: :func:`_spectra`
    sums it.) Which frames count as active (above :data:`ACTIVE_SHARE` of the
    loudest) is known only at the end, so the long-term spectrum of the active frames is summed
    against the loudest frame so far, and :meth:`needs_again` names the blocks that a louder frame
    later made wrong: the caller feeds those again through :meth:`correct`.
    """

    def __init__(self, sample_rate: int, frames: int, mel_db: bool = False):
        self.sample_rate = sample_rate
        self.freqs = FEATURE_STFT.bin_frequencies_hz(sample_rate)
        self.hf_bin = FEATURE_STFT.bin_index(HF_BAND_HZ, sample_rate)
        self.total = np.zeros(frames)
        self.hf = np.zeros(frames)
        self.centroid = np.zeros(frames)
        self.flatness = np.zeros(frames)
        self.log_mel = np.zeros((N_MELS, frames))
        # With ``mel_db``, also the Mel spectrogram as :func:`spectrograms_db` draws it, every frame.
        self.mel_db = np.zeros((N_MELS, frames), np.float32) if mel_db else None
        self.long_term = np.zeros(FEATURE_STFT.n_bins)
        self.active_sum = np.zeros(FEATURE_STFT.n_bins)
        self.counted = np.zeros(frames, dtype=bool)
        self.loudest = 0.0

    def add(self, start: int, power: np.ndarray) -> None:
        """Frames ``start + [0, len(power))``."""
        frames = slice(start, start + power.shape[0])
        total = power.sum(axis=1)
        self.total[frames] = total
        self.hf[frames] = power[:, self.hf_bin:].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.centroid[frames] = (power @ self.freqs) / total
        floor = 1e-20
        self.flatness[frames] = np.exp(np.mean(np.log(power + floor), axis=1)) / (power.mean(axis=1) + floor)
        mel = _mel_weights(self.sample_rate) @ power.T
        self.log_mel[:, frames] = np.log10(np.maximum(mel, MEL_POWER_FLOOR))
        if self.mel_db is not None:
            self.mel_db[:, frames] = _drawn_db(mel)
        self.long_term += power.sum(axis=0)
        self.loudest = max(self.loudest, float(total.max()))
        counted = total > self.loudest * ACTIVE_SHARE
        self.counted[frames] = counted
        self.active_sum += power[counted].sum(axis=0)

    def active(self) -> np.ndarray:
        return self.total > self.loudest * ACTIVE_SHARE

    def needs_again(self, block_frames: int) -> list[int]:
        """Starts of the blocks holding a frame counted as active before a louder frame came."""
        wrong = np.flatnonzero(self.counted & ~self.active())
        return sorted({int(frame) // block_frames * block_frames for frame in wrong})

    def correct(self, start: int, power: np.ndarray) -> None:
        """Take back the frames of the block at ``start`` (its ``power``, no context) counted wrongly."""
        frames = np.arange(start, start + power.shape[0])
        wrong = self.counted[frames] & ~self.active()[frames]
        self.active_sum -= power[wrong].sum(axis=0)
        self.counted[frames[wrong]] = False

    def measures(self) -> dict[str, float]:
        active = self.active() if self.loudest > 0 else np.zeros_like(self.counted)
        if not active.any():
            return {"spectral_centroid_hz": 0.0, "rolloff85_hz": 0.0, "rolloff99_hz": 0.0,
                    "spectral_flatness": 0.0, "effective_bandwidth_hz": 0.0}
        cumulative = np.cumsum(self.active_sum) / self.active_sum.sum()
        return {
            "spectral_centroid_hz": float(np.mean(self.centroid[active])),
            "rolloff85_hz": float(self.freqs[np.searchsorted(cumulative, 0.85)]),
            "rolloff99_hz": float(self.freqs[np.searchsorted(cumulative, 0.99)]),
            "spectral_flatness": float(np.mean(self.flatness[active])),
            "effective_bandwidth_hz": estimate_cutoff_hz(self.long_term / self.total.size, self.sample_rate),
        }


def _spectra(audio: np.ndarray, sample_rate: int, mel_db: bool = False) -> tuple[_Spectra, float]:
    """A clip's :class:`_Spectra` and HPSS ratio (dB), from one pass over its blocks (and again over
    any block a louder frame made wrong)."""
    audio = _as_2d(audio)
    block_frames = BLOCK_FRAMES
    spectra = _Spectra(sample_rate, FEATURE_STFT.n_frames(audio.shape[-1]), mel_db)
    context = HPSS_KERNEL // 2
    harmonic = percussive = 0.0
    for start, stop, power in power_blocks(audio, FEATURE_STFT, block_frames, context):
        before = start - max(start - context, 0)
        core = slice(before, before + stop - start)
        h, p = _hpss_energies(power, core)  # the frames around the core are context for the median
        harmonic, percussive = harmonic + h, percussive + p
        spectra.add(start, power[core])
    for start in spectra.needs_again(block_frames):
        stop = min(start + block_frames, spectra.total.size)
        spectra.correct(start, normalised_power(audio, FEATURE_STFT, start, stop).mean(axis=0))
    return spectra, _hpss_ratio(harmonic, percussive)


def spectral_shape(power: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Centroid, 85 % and 99 % rolloff, flatness and bandwidth of a power spectrogram ``[..., frames, bins]``."""
    mono = power.mean(axis=0) if power.ndim == 3 else power
    spectra = _Spectra(sample_rate, mono.shape[0])
    spectra.add(0, mono)
    return spectra.measures()


#: Samples of a clip held at once, channels averaged, by the level measures (about 24 s at 44.1 kHz).
BLOCK_SAMPLES = 1 << 20


def noise_floor_db(audio: np.ndarray, sample_rate: int, quantile: float = 0.1) -> float:
    """Mean power of the quietest ``quantile`` of 50 ms frames, in dB re full scale."""
    audio = _as_2d(audio)
    frame = int(0.05 * sample_rate)
    hop = frame // 2
    count = max(1, (audio.shape[-1] - frame) // hop + 1)
    per_block = max(1, BLOCK_SAMPLES // hop)
    # Frames [first, first + per_block) start at multiples of the hop inside their own slice.
    rms = np.concatenate([
        frame_rms(audio[:, first * hop : (min(first + per_block, count) - 1) * hop + frame].mean(axis=0),
                  frame, hop)
        for first in range(0, count, per_block)])
    kept = max(1, int(round(quantile * rms.size)))
    return float(db(np.mean(np.sort(rms)[:kept] ** 2)))


def _level_measures(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """RMS, noise floor, loudness, peak and clipped samples, a block of samples at a time."""
    audio = _as_2d(audio)
    squares, peak, clipped = 0.0, 0.0, 0
    for start in range(0, audio.shape[-1], BLOCK_SAMPLES):
        block = audio[:, start : start + BLOCK_SAMPLES]
        squares += float(np.sum(np.square(block, dtype=np.float64)))
        magnitude = np.abs(block)
        peak = max(peak, float(magnitude.max()))
        clipped += int(np.count_nonzero(magnitude >= CLIP_LEVEL))
    return {
        "rms_db": float(db(squares / audio.size)),
        "noise_floor_db": noise_floor_db(audio, sample_rate),
        "loudness_lufs": loudness_lufs(audio, sample_rate),
        "peak_db": float(20 * np.log10(peak)) if peak > 0 else float("-inf"),
        "clipped_samples": clipped,
    }


@dataclass(frozen=True)
class InputProfile:
    """What the comparative measures of an output need of the unprocessed input: taken once, by
    :func:`measure_input`, and shared by every output.

    Attributes:
        hf_energy_db: the input's high-band energy.
        frame_power: the input's total power per frame (which frames are quiet).
        log_mel: the input's :func:`log_mel`.
    """

    hf_energy_db: float
    frame_power: np.ndarray
    log_mel: np.ndarray


def _measure(audio: np.ndarray, sample_rate: int, original: InputProfile | None,
             mel_db: bool = False) -> tuple[dict[str, float], InputProfile, _Spectra]:
    spectra, hpss_ratio = _spectra(audio, sample_rate, mel_db)
    hf = float(db(spectra.hf.mean()))
    comparable = original is not None and original.frame_power.size == spectra.total.size
    # The same frames for the input and every output: the input's quietest.
    quiet = quiet_frames(original.frame_power if comparable else spectra.total)
    row: dict[str, float] = {"hf_energy_db": hf, "hf_quiet_energy_db": float(db(spectra.hf[quiet].mean()))}
    row["hpss_ratio_db"] = hpss_ratio
    if original is None:
        row["log_mel_distance"] = 0.0
        row["hf_energy_gain_db"] = 0.0
    else:
        row["log_mel_distance"] = _log_mel_difference(original.log_mel, spectra.log_mel)
        row["hf_energy_gain_db"] = hf - original.hf_energy_db
    row.update(spectra.measures())
    row.update(_level_measures(audio, sample_rate))
    return row, InputProfile(hf_energy_db=hf, frame_power=spectra.total, log_mel=spectra.log_mel), spectra


def measure_input(audio: np.ndarray, sample_rate: int) -> tuple[dict[str, float], InputProfile]:
    """The unprocessed input's row of :func:`no_reference_metrics`, with its :class:`InputProfile`."""
    return _measure(audio, sample_rate, None)[:2]


def measure_with_mel(audio: np.ndarray, sample_rate: int, original: InputProfile | None,
                     max_columns: int) -> tuple[dict[str, float], InputProfile, tuple]:
    """A clip's row of :func:`no_reference_metrics` against ``original`` (the input's own row
    when ``None``), its :class:`InputProfile`, and its Mel spectrogram as
    ``spectrograms_db(audio, sample_rate, ("mel",), max_columns)["mel"]`` gives it, from the one
    STFT the measures take (what a comparison shows of a clip, in one pass)."""
    row, profile, spectra = _measure(audio, sample_rate, original, mel_db=True)
    times = _frame_times(audio, sample_rate, FEATURE_STFT, max_columns)
    level = loudest_of_runs(spectra.mel_db, _run_length(spectra.total.size, max_columns))
    return row, profile, (times, _mel_centres_hz(sample_rate), level)


def no_reference_metrics(audio: np.ndarray, sample_rate: int,
                         original: np.ndarray | InputProfile | None = None) -> dict[str, float]:
    """Every no-reference measure of one clip.

    ``original`` is the unprocessed input (or its :class:`InputProfile`, when the caller has it
    already); the comparative measures (log-mel distance, high-band energy gain, quiet-frame
    selection) are taken against it, and are 0 when ``original`` is absent. A long clip is measured
    a block at a time (:data:`BLOCK_FRAMES`, :data:`BLOCK_SAMPLES`), with the same numbers.
    """
    if original is not None and not isinstance(original, InputProfile):
        original = measure_input(original, sample_rate)[1]
    return _measure(audio, sample_rate, original)[0]


#: Column order and units of the no-reference table.
NO_REFERENCE_COLUMNS = (
    "hf_energy_db", "hf_energy_gain_db", "hf_quiet_energy_db", "hpss_ratio_db", "log_mel_distance",
    "spectral_centroid_hz", "rolloff85_hz", "rolloff99_hz", "spectral_flatness",
    "effective_bandwidth_hz", "rms_db", "noise_floor_db", "loudness_lufs", "peak_db",
    "clipped_samples",
)


@dataclass(frozen=True)
class VerdictThresholds:
    """What counts as a successful clean-up of a clip without a reference.

    Attributes:
        max_log_mel_distance: faithfulness to the input (0.20 = 2 dB mean).
        hpss_drop_tolerance_db: how far the harmonic/percussive ratio may fall. Restorers that
            barely touch a clip move it by up to about 0.01 dB either way (the median filters
            see a slightly different spectrogram); a damaging one drops it by tenths of a dB or more.
        min_hf_reduction_db: how far the energy above 6 kHz must go down (denoisers).
        min_bandwidth_gain_hz: how far the effective bandwidth must rise (bandwidth extenders).
    """

    max_log_mel_distance: float = 0.20
    hpss_drop_tolerance_db: float = 0.05
    min_hf_reduction_db: float = 0.0
    min_bandwidth_gain_hz: float = 500.0


#: What a restorer is for, as the no-reference verdict judges it: ``denoise`` (the energy
#: above 6 kHz goes down) or ``extend`` (the effective bandwidth goes up).
GOALS = ("denoise", "extend")
#: The verdict's checks, in display order (a row has the goal's own check, not the other's).
VERDICT_CHECKS = ("hf_energy_down", "band_extended", "hpss_kept", "faithful", "pass")


def verdict(row: dict[str, float], baseline: dict[str, float],
            thresholds: VerdictThresholds = VerdictThresholds(), goal: str = "denoise") -> dict[str, bool]:
    """The per-clip checks: the goal's own (less high-band energy, or a wider band), HPSS kept, faithful."""
    if goal == "denoise":
        checks = {"hf_energy_down": row["hf_energy_db"] < baseline["hf_energy_db"] - thresholds.min_hf_reduction_db}
    elif goal == "extend":
        gain = row["effective_bandwidth_hz"] - baseline["effective_bandwidth_hz"]
        checks = {"band_extended": gain >= thresholds.min_bandwidth_gain_hz}
    else:
        raise ValueError(f"goal must be one of {', '.join(GOALS)}, got {goal!r}")
    checks["hpss_kept"] = row["hpss_ratio_db"] >= baseline["hpss_ratio_db"] - thresholds.hpss_drop_tolerance_db
    checks["faithful"] = row["log_mel_distance"] < thresholds.max_log_mel_distance
    checks["pass"] = all(checks.values())
    return checks


def compare_no_reference(original: np.ndarray, outputs: dict[str, np.ndarray], sample_rate: int,
                         thresholds: VerdictThresholds = VerdictThresholds(),
                         goals: dict[str, str] | None = None) -> list[dict]:
    """One row per clip, the unprocessed input first, with verdicts for the outputs.

    ``goals``: each output's goal (see :data:`GOALS`); ``denoise`` where not given.
    """
    from concurrent.futures import ThreadPoolExecutor

    baseline, profile = measure_input(original, sample_rate)
    # The heavy parts (FFTs, median filters) release the GIL: measure clips in parallel.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        jobs = {name: pool.submit(no_reference_metrics, audio, sample_rate, profile)
                for name, audio in outputs.items()}
        return rows_with_verdicts(baseline, {name: job.result() for name, job in jobs.items()}, thresholds, goals)


def rows_with_verdicts(baseline: dict[str, float], measured: dict[str, dict[str, float]],
                       thresholds: VerdictThresholds = VerdictThresholds(),
                       goals: dict[str, str] | None = None) -> list[dict]:
    """The table's rows from :func:`no_reference_metrics` of the input (``baseline``) and of each
    output: the input first, then each output with its verdict. ``goals`` as in :func:`compare_no_reference`."""
    rows = [{"name": INPUT_ROW, **baseline}]
    for name, row in measured.items():
        goal = (goals or {}).get(name, "denoise")
        rows.append({"name": name, **row, **verdict(row, baseline, thresholds, goal)})
    return rows


# -- reference measures -----------------------------------------------------

def _matched(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference, estimate = _as_2d(reference), _as_2d(estimate)
    if reference.shape[0] != estimate.shape[0]:
        raise ValueError(f"channel counts differ: reference {reference.shape[0]}, "
                         f"estimate {estimate.shape[0]}")
    n = min(reference.shape[-1], estimate.shape[-1])
    return reference[:, :n], estimate[:, :n]


def log_spectral_error(reference: np.ndarray, estimate: np.ndarray, stft: Stft | None = None,
                       power_floor: float | None = None) -> np.ndarray:
    """Squared difference of log10 power per cell ``[channels, frames, bins]`` (unless given,
    :data:`LSD_STFT`, power floored at :data:`LSD_POWER_FLOOR`): what :func:`lsd` averages."""
    reference, estimate = _matched(reference, estimate)
    stft = LSD_STFT if stft is None else stft
    power_floor = LSD_POWER_FLOOR if power_floor is None else power_floor
    p_ref = np.maximum(np.square(np.abs(stft.forward(reference)), dtype=np.float64), power_floor)
    p_est = np.maximum(np.square(np.abs(stft.forward(estimate)), dtype=np.float64), power_floor)
    return np.square(np.log10(p_ref) - np.log10(p_est))


def lsd(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
        cutoff_hz: float | None = None) -> dict[str, float]:
    """Log-spectral distance, ``mean_t sqrt(mean_f (log10 P_ref - log10 P_est)^2)``.

    Over all bins, and when ``cutoff_hz`` is given also over the bins below and
    at or above it. Averaged over channels. See :data:`LSD_STFT` and
    :data:`LSD_POWER_FLOOR`.
    """
    squared = log_spectral_error(reference, estimate)

    def over(bins: slice) -> float:
        return float(np.mean(np.sqrt(np.mean(squared[..., bins], axis=-1))))

    result = {"lsd": over(slice(None))}
    if cutoff_hz is not None:
        k = LSD_STFT.bin_index(cutoff_hz, sample_rate)
        result["lsd_low"] = over(slice(0, k))
        result["lsd_high"] = over(slice(k, None))
    return result


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR (Le Roux et al. 2019), zero-mean, averaged over the channels whose reference
    is not silent (NaN if every one is)."""
    reference, estimate = _matched(reference, estimate)
    values = []
    for r, e in zip(reference.astype(np.float64), estimate.astype(np.float64)):
        r = r - r.mean()
        e = e - e.mean()
        energy = np.dot(r, r)
        if energy == 0:  # a silent reference channel has no SI-SDR
            continue
        target = np.dot(e, r) / energy * r
        residual = e - target
        values.append(float(db(np.dot(target, target)) - db(np.dot(residual, residual))))
    return float(np.mean(values)) if values else float("nan")


def multi_resolution_stft_distance(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Spectral convergence plus log-magnitude L1, averaged over resolutions (0 = identical).

    As in the Parallel WaveGAN auxiliary loss (Yamamoto et al. 2020), with a
    magnitude floor of 1e-7.
    """
    reference, estimate = _matched(reference, estimate)
    total = 0.0
    for n_fft, hop in MRSTFT_RESOLUTIONS:
        stft = Stft(n_fft, hop)
        m_ref = np.abs(stft.forward(reference)).astype(np.float64)
        m_est = np.abs(stft.forward(estimate)).astype(np.float64)
        norm = np.linalg.norm(m_ref)
        convergence = np.linalg.norm(m_ref - m_est) / norm if norm > 0 else float(np.linalg.norm(m_est) > 0)
        log_l1 = np.mean(np.abs(np.log(np.maximum(m_ref, 1e-7)) - np.log(np.maximum(m_est, 1e-7))))
        total += convergence + log_l1
    return float(total / len(MRSTFT_RESOLUTIONS))


def spectrogram_errors(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """MSE and MAE between dB spectrograms (floored) and cosine similarity of magnitudes."""
    reference, estimate = _matched(reference, estimate)
    p_ref, p_est = normalised_power(reference), normalised_power(estimate)
    d_ref = np.maximum(db(p_ref), SPECTROGRAM_FLOOR_DB)
    d_est = np.maximum(db(p_est), SPECTROGRAM_FLOOR_DB)
    m_ref, m_est = np.sqrt(p_ref).ravel(), np.sqrt(p_est).ravel()
    denominator = np.linalg.norm(m_ref) * np.linalg.norm(m_est)
    return {
        "spec_mse_db2": float(np.mean(np.square(d_ref - d_est))),
        "spec_mae_db": float(np.mean(np.abs(d_ref - d_est))),
        "spec_cosine": float(np.dot(m_ref, m_est) / denominator) if denominator > 0 else 0.0,
    }


def visqol_available() -> bool:
    try:
        import visqol  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _visqol_api():
    from visqol import VisqolApi

    api = VisqolApi()
    api.create(mode="audio")
    return api


def visqol_moslqo(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """ViSQOL v3 audio mode MOS-LQO (1-5) on the channel means resampled to 48 kHz."""
    reference, estimate = _matched(reference, estimate)
    ref48 = resample(reference.mean(axis=0, keepdims=True), sample_rate, 48000)[0]
    est48 = resample(estimate.mean(axis=0, keepdims=True), sample_rate, 48000)[0]
    result = _visqol_api().measure_from_arrays(ref48.astype(np.float64), est48.astype(np.float64), 48000)
    return float(result.moslqo)


def reference_metrics(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
                      cutoff_hz: float | None = None, with_visqol: bool = False) -> dict[str, float]:
    """Every reference measure of one estimate against the clean reference."""
    row = lsd(reference, estimate, sample_rate, cutoff_hz)
    row["si_sdr_db"] = si_sdr_db(reference, estimate)
    row["mrstft"] = multi_resolution_stft_distance(reference, estimate)
    row.update(spectrogram_errors(reference, estimate))
    if with_visqol:
        row["visqol_moslqo"] = visqol_moslqo(reference, estimate, sample_rate)
    return row


REFERENCE_COLUMNS = ("lsd", "lsd_low", "lsd_high", "si_sdr_db", "mrstft",
                     "spec_mse_db2", "spec_mae_db", "spec_cosine", "visqol_moslqo")
