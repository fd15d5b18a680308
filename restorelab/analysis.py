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

import numpy as np
import scipy.signal

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

def _as_2d(audio: np.ndarray) -> np.ndarray:
    return np.atleast_2d(np.asarray(audio, dtype=np.float32))


def normalised_power(audio: np.ndarray, stft: Stft = FEATURE_STFT) -> np.ndarray:
    """Power spectrogram scaled so a full-scale sine reads 0.25 at its bin.

    Shape: ``[channels, samples] -> [channels, frames, bins]``.
    """
    spec = stft.forward(_as_2d(audio))
    scale = 1.0 / float(np.sum(hann(stft.n_fft)))
    return np.square(np.abs(spec) * scale, dtype=np.float64)


def linear_spectrogram_db(audio: np.ndarray, sample_rate: int, stft: Stft = FEATURE_STFT):
    """Channel-averaged power spectrogram in dB re full scale.

    Returns:
        ``(times_s [frames], freqs_hz [bins], level_db [bins, frames])``.
    """
    power = normalised_power(audio, stft).mean(axis=0)
    level = np.maximum(db(power), SPECTROGRAM_FLOOR_DB)
    times = np.arange(power.shape[0]) * stft.hop / sample_rate
    return times, stft.bin_frequencies_hz(sample_rate), level.T


def mel_power(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Channel-averaged mel power spectrogram, ``[n_mels, frames]``."""
    power = normalised_power(audio).mean(axis=0)
    fb = mel_filterbank(sample_rate, FEATURE_STFT.n_fft, N_MELS)
    # Area-normalised filters: rescale so a flat spectrum keeps its level.
    fb = fb / fb.sum(axis=1, keepdims=True)
    return fb @ power.T


def mel_spectrogram_db(audio: np.ndarray, sample_rate: int):
    """Returns ``(times_s, mel_centre_hz, level_db [n_mels, frames])``."""
    mel = mel_power(audio, sample_rate)
    fb = mel_filterbank(sample_rate, FEATURE_STFT.n_fft, N_MELS)
    centres = (fb * FEATURE_STFT.bin_frequencies_hz(sample_rate)).sum(axis=1) / fb.sum(axis=1)
    times = np.arange(mel.shape[1]) * FEATURE_STFT.hop / sample_rate
    return times, centres, np.maximum(db(mel), SPECTROGRAM_FLOOR_DB)


def welch_psd_db(audio: np.ndarray, sample_rate: int, n_fft: int = 4096):
    """Channel-averaged Welch PSD in dB re full scale per Hz: ``(freqs_hz, psd_db)``."""
    # Half-overlapping Hann segments (scipy's default), on the last axis.
    freqs, psd = scipy.signal.welch(_as_2d(audio).astype(np.float64), fs=sample_rate, nperseg=n_fft)
    return freqs, db(psd.mean(axis=0))


# -- no-reference measures --------------------------------------------------

def hf_band_energy_db(power: np.ndarray, sample_rate: int, band_hz: float = HF_BAND_HZ,
                      frames: np.ndarray | None = None) -> float:
    """Mean power per frame (over ``frames``, default all) summed over bins at or above ``band_hz``, in dB."""
    k = FEATURE_STFT.bin_index(band_hz, sample_rate)
    band = power[..., k:].sum(axis=-1)
    return float(db((band if frames is None else band[..., frames]).mean()))


def quiet_frames(power: np.ndarray, share: float = QUIET_SHARE) -> np.ndarray:
    """Indices of the quietest ``share`` of frames by total power (channels averaged)."""
    total = power.sum(axis=-1).reshape(-1, power.shape[-2]).mean(axis=0)
    count = max(1, int(round(share * total.size)))
    return np.sort(np.argsort(total, kind="stable")[:count])


def hpss_ratio_db(power: np.ndarray, kernel: int = 17) -> float:
    """Harmonic-to-percussive energy ratio by median-filtering HPSS (Fitzgerald 2010).

    Harmonic = median over time, percussive = median over frequency, both with
    ``kernel`` taps, on the channel-averaged magnitude spectrogram; energies are
    split with soft Wiener masks.
    """
    magnitude = np.sqrt(power.mean(axis=0)).astype(np.float32)  # [frames, bins]
    harmonic = median_filter(magnitude, kernel, axis=0)
    percussive = median_filter(magnitude, kernel, axis=1)
    h2, p2 = np.square(harmonic, dtype=np.float64), np.square(percussive, dtype=np.float64)
    total = h2 + p2
    with np.errstate(invalid="ignore", divide="ignore"):
        mask_h = np.where(total > 0, h2 / total, 0.5)
    energy = np.square(magnitude, dtype=np.float64)
    e_h = float(np.sum(energy * mask_h))
    e_p = float(np.sum(energy * (1.0 - mask_h)))
    floor = 1e-6 * (e_h + e_p)  # bounds the ratio at +-60 dB; silence reads 0 dB
    if floor == 0:
        return 0.0
    return float(10.0 * np.log10((e_h + floor) / (e_p + floor)))


def log_mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference of log10 mel power (0 = identical; 0.1 = 1 dB)."""
    a = np.log10(np.maximum(mel_power(reference, sample_rate), MEL_POWER_FLOOR))
    b = np.log10(np.maximum(mel_power(estimate, sample_rate), MEL_POWER_FLOOR))
    frames = min(a.shape[1], b.shape[1])
    return float(np.mean(np.abs(a[:, :frames] - b[:, :frames])))


def spectral_shape(power: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Centroid, 85 % and 99 % rolloff, flatness and bandwidth of a power spectrogram."""
    freqs = FEATURE_STFT.bin_frequencies_hz(sample_rate)
    mono = power.mean(axis=0)  # [frames, bins]
    frame_energy = mono.sum(axis=1)
    active = frame_energy > frame_energy.max() * 1e-6 if frame_energy.max() > 0 else None
    if active is None or not active.any():
        return {"spectral_centroid_hz": 0.0, "rolloff85_hz": 0.0, "rolloff99_hz": 0.0,
                "spectral_flatness": 0.0, "effective_bandwidth_hz": 0.0}
    frames = mono[active]
    centroid = float(np.mean((frames @ freqs) / frames.sum(axis=1)))
    long_term = frames.mean(axis=0)
    cumulative = np.cumsum(long_term) / long_term.sum()
    floor = 1e-20
    flatness = np.exp(np.mean(np.log(frames + floor), axis=1)) / (frames.mean(axis=1) + floor)
    return {
        "spectral_centroid_hz": centroid,
        "rolloff85_hz": float(freqs[np.searchsorted(cumulative, 0.85)]),
        "rolloff99_hz": float(freqs[np.searchsorted(cumulative, 0.99)]),
        "spectral_flatness": float(np.mean(flatness)),
        "effective_bandwidth_hz": estimate_cutoff_hz(power.reshape(-1, power.shape[-1]).mean(axis=0),
                                                     sample_rate),
    }


def noise_floor_db(audio: np.ndarray, sample_rate: int, quantile: float = 0.1) -> float:
    """Mean power of the quietest ``quantile`` of 50 ms frames, in dB re full scale."""
    mono = _as_2d(audio).mean(axis=0)
    frame = int(0.05 * sample_rate)
    rms = frame_rms(mono, frame, frame // 2)
    count = max(1, int(round(quantile * rms.size)))
    return float(db(np.mean(np.sort(rms)[:count] ** 2)))


def no_reference_metrics(audio: np.ndarray, sample_rate: int, original: np.ndarray | None = None,
                         original_power: np.ndarray | None = None) -> dict[str, float]:
    """Every no-reference measure of one clip.

    ``original`` is the unprocessed input; the comparative measures
    (log-mel distance, high-band energy gain, quiet-frame selection) are taken
    against it, and are 0 when ``original`` is the clip itself or absent.
    ``original_power`` is its :func:`normalised_power`, when the caller has it already.
    """
    audio = _as_2d(audio)
    power = normalised_power(audio)
    hf = hf_band_energy_db(power, sample_rate)
    if original is None:
        original_power = power
    elif original_power is None:
        original_power = normalised_power(_as_2d(original))
    # The same frames for the input and every output: the input's quietest.
    quiet = quiet_frames(original_power) if original_power.shape[-2] == power.shape[-2] else quiet_frames(power)
    row: dict[str, float] = {"hf_energy_db": hf,
                             "hf_quiet_energy_db": hf_band_energy_db(power, sample_rate, frames=quiet),
                             "hpss_ratio_db": hpss_ratio_db(power)}
    if original is None:
        row["log_mel_distance"] = 0.0
        row["hf_energy_gain_db"] = 0.0
    else:
        row["log_mel_distance"] = log_mel_distance(original, audio, sample_rate)
        row["hf_energy_gain_db"] = hf - hf_band_energy_db(original_power, sample_rate)
    row.update(spectral_shape(power, sample_rate))
    mean_square = float(np.mean(np.square(audio, dtype=np.float64)))
    peak = float(np.max(np.abs(audio)))
    row.update({
        "rms_db": float(db(mean_square)),
        "noise_floor_db": noise_floor_db(audio, sample_rate),
        "loudness_lufs": loudness_lufs(audio, sample_rate),
        "peak_db": float(20 * np.log10(peak)) if peak > 0 else float("-inf"),
        "clipped_samples": int(np.count_nonzero(np.abs(audio) >= CLIP_LEVEL)),
    })
    return row


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

    # The heavy parts (FFTs, median filters) release the GIL: measure clips in parallel.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        base_job = pool.submit(no_reference_metrics, original, sample_rate)
        original_power = normalised_power(_as_2d(original))  # once, not once per output
        jobs = {name: pool.submit(no_reference_metrics, audio, sample_rate, original, original_power)
                for name, audio in outputs.items()}
        baseline = base_job.result()
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


def lsd(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
        cutoff_hz: float | None = None) -> dict[str, float]:
    """Log-spectral distance, ``mean_t sqrt(mean_f (log10 P_ref - log10 P_est)^2)``.

    Over all bins, and when ``cutoff_hz`` is given also over the bins below and
    at or above it. Averaged over channels. See :data:`LSD_STFT` and
    :data:`LSD_POWER_FLOOR`.
    """
    reference, estimate = _matched(reference, estimate)
    p_ref = np.maximum(np.square(np.abs(LSD_STFT.forward(reference)), dtype=np.float64), LSD_POWER_FLOOR)
    p_est = np.maximum(np.square(np.abs(LSD_STFT.forward(estimate)), dtype=np.float64), LSD_POWER_FLOOR)
    squared = np.square(np.log10(p_ref) - np.log10(p_est))

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
