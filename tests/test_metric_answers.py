"""Every column the metrics tables print, pinned by answers derived by hand, not from the code.

Each test states where its number comes from: a textbook level, Parseval's theorem, the
distribution of a periodogram bin of white noise, or a construction whose answer is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SR
from restorelab import analysis as M
from restorelab.audio import loudness_lufs

EULER_GAMMA = 0.5772156649015329


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    """10 s of white Gaussian noise, sd 0.1, stereo."""
    return (0.1 * np.random.default_rng(42).standard_normal((2, 10 * SR))).astype(np.float32)


def sine(freq_hz: float, amplitude: float = 1.0, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq_hz * t))[None].astype(np.float32)


# -- reference metrics ------------------------------------------------------------------------------

def test_lsd_of_a_gain_of_ten_on_half_the_frames_is_one(noise):
    """x10 in amplitude is 2 in log10 power: frames with it score sqrt(mean 2^2) = 2, the others 0;
    the mean over frames is 1. (Averaging over frames inside the root would give sqrt(2).)"""
    estimate = noise.copy()
    estimate[:, noise.shape[-1] // 2:] *= 10
    assert M.lsd(noise, estimate, SR)["lsd"] == pytest.approx(1.0, abs=0.01)
    assert M.lsd(noise, 10 * noise, SR)["lsd"] == pytest.approx(2.0, abs=1e-6)


def test_lsd_of_a_silent_estimate_is_set_by_the_floor(noise, monkeypatch):
    """Against silence, every bin scores log10 P_ref - log10(floor). A periodogram bin of white
    noise (sd s, unnormalised Hann window of N = 2048) is exponential with mean s^2 * 3N/8 = 7.68;
    log10 of an exponential variable has mean log10(mean) - gamma / ln 10 and variance
    (pi^2 / 6) / ln(10)^2. So each frame scores sqrt((0.8854 - 0.2507 + 10)^2 + 0.3103) = 10.649."""
    mean_log = np.log10(0.01 * 3 * 2048 / 8) - EULER_GAMMA / np.log(10)
    expected = np.sqrt((mean_log + 10) ** 2 + (np.pi ** 2 / 6) / np.log(10) ** 2)
    silent = np.zeros_like(noise)
    assert M.lsd(noise, silent, SR)["lsd"] == pytest.approx(expected, abs=0.02)
    # Every bin of the noise is far above a floor ten times higher: the distance drops by exactly 1.
    monkeypatch.setattr(M, "LSD_POWER_FLOOR", 1e-9)
    assert M.lsd(noise, silent, SR)["lsd"] == pytest.approx(expected - 1.0, abs=0.02)
    assert M.lsd(silent, silent, SR)["lsd"] == 0.0


def test_lsd_below_and_above_the_cutoff(noise):
    """A gain of 10 above 11025 Hz only (on the whole signal's spectrum): the high band scores 2,
    the low band 0, and all bins sqrt(4 * share of bins above) per frame. The window smears the
    step over a few bins on each side of the cutoff, which moves each part by about 0.06."""
    spectrum = np.fft.rfft(noise.astype(np.float64), axis=-1)
    freqs = np.fft.rfftfreq(noise.shape[-1], 1 / SR)
    spectrum[..., freqs >= 11025.0] *= 10
    estimate = np.fft.irfft(spectrum, n=noise.shape[-1], axis=-1)
    row = M.lsd(noise, estimate, SR, cutoff_hz=11025.0)
    share = (1025 - 512) / 1025  # bin 512 of 1025 is 11025 Hz
    assert row["lsd_low"] == pytest.approx(0.0, abs=0.08)
    assert row["lsd_high"] == pytest.approx(2.0, abs=0.08)
    assert row["lsd"] == pytest.approx(np.sqrt(4 * share), abs=0.08)


def test_si_sdr_ignores_a_dc_offset_and_measures_orthogonal_noise(noise):
    """SI-SDR removes each signal's mean first; with noise e orthogonal to the reference r it is
    10 log10(|r|^2 / |e|^2) exactly, whatever the estimate's scale."""
    rng = np.random.default_rng(1)
    reference = noise[:1].astype(np.float64)
    error = rng.standard_normal(reference.shape)
    error -= error.mean()
    centred = reference - reference.mean()
    error -= (error @ centred.T) / (centred @ centred.T) * centred  # orthogonal to the reference
    error *= np.sqrt(np.sum(centred ** 2) / np.sum(error ** 2)) / 10  # 20 dB below
    estimate = reference + error
    assert M.si_sdr_db(reference, estimate) == pytest.approx(20.0, abs=1e-6)
    assert M.si_sdr_db(reference, estimate + 0.3) == pytest.approx(20.0, abs=1e-6)
    assert M.si_sdr_db(reference + 0.2, estimate) == pytest.approx(20.0, abs=1e-6)
    assert M.si_sdr_db(reference, 3 * estimate) == pytest.approx(20.0, abs=1e-6)  # any scale, either sign
    assert M.si_sdr_db(reference, -3 * estimate) == pytest.approx(20.0, abs=1e-6)


def test_mrstft_and_spectrogram_errors_of_double_amplitude(noise):
    """Twice the amplitude: spectral convergence |m - 2m| / |m| = 1 and log-magnitude L1 = ln 2 at
    every resolution (1.693); every dB spectrogram cell differs by 20 log10 2 = 6.0206 dB (MAE,
    and its square the MSE), and the magnitudes point the same way (cosine 1)."""
    double = 2 * noise
    assert M.multi_resolution_stft_distance(noise, double) == pytest.approx(1 + np.log(2), abs=1e-6)
    errors = M.spectrogram_errors(noise, double)
    assert errors["spec_mae_db"] == pytest.approx(6.0206, abs=1e-3)
    assert errors["spec_mse_db2"] == pytest.approx(6.0206 ** 2, abs=0.02)
    assert errors["spec_cosine"] == pytest.approx(1.0, abs=1e-9)
    assert M.multi_resolution_stft_distance(noise, noise) == 0.0


def test_spectrogram_cosine_of_signals_in_separate_bands():
    """A 1 kHz tone against a 10 kHz tone: their magnitudes share no bins above leakage (cosine ~0)."""
    assert M.spectrogram_errors(sine(1000.0), sine(10000.0))["spec_cosine"] < 1e-3


# -- no-reference metrics ---------------------------------------------------------------------------

def test_a_sine_reads_at_its_textbook_levels():
    """A sine of amplitude 0.5: RMS 0.5 / sqrt 2 (-9.03 dBFS), peak -6.02 dBFS, nothing clipped. Its
    window-normalised power summed over bins is A^2 / 4 * 1.5 (Parseval with a Hann window, whose
    noise bandwidth is 1.5 bins): 10 log10(0.09375) = -10.28 dB, all of it above 6 kHz for a 10 kHz
    tone; its centroid is its frequency."""
    row = M.no_reference_metrics(sine(10000.0, 0.5, seconds=10.0), SR)  # long: the edge frames weigh little
    assert row["rms_db"] == pytest.approx(-9.0309, abs=1e-3)
    assert row["peak_db"] == pytest.approx(-6.0206, abs=1e-3)
    assert row["clipped_samples"] == 0
    assert row["hf_energy_db"] == pytest.approx(10 * np.log10(0.25 * 0.25 * 1.5), abs=0.01)
    assert row["spectral_centroid_hz"] == pytest.approx(10000.0, abs=25)
    # Nothing above 6 kHz, but for the clicks of the tone's abrupt start and end (about -78 dB).
    assert M.no_reference_metrics(sine(1000.0, 0.5), SR)["hf_energy_db"] < -70


def test_loudness_of_a_full_scale_1k_sine_is_the_bs1770_value():
    """BS.1770: a 0 dBFS 1 kHz sine in one channel reads -3.01 LKFS; in both channels, +3 dB more."""
    mono = sine(1000.0, 1.0, seconds=5.0)
    assert loudness_lufs(mono, SR) == pytest.approx(-3.01, abs=0.05)
    assert loudness_lufs(np.vstack([mono, mono]), SR) == pytest.approx(0.0, abs=0.05)


def test_half_amplitude_lowers_the_high_band_by_6_02_db(noise):
    row = M.no_reference_metrics(0.5 * noise, SR, original=noise)
    assert row["hf_energy_gain_db"] == pytest.approx(-6.0206, abs=1e-3)
    assert row["log_mel_distance"] == pytest.approx(np.log10(4), abs=1e-3)  # |log10 power| difference
    louder = M.no_reference_metrics(2 * noise, SR, original=noise)
    assert louder["hf_energy_gain_db"] == pytest.approx(6.0206, abs=1e-3)


def test_clipped_samples_count_exactly():
    x = np.zeros((2, 1000), np.float32)
    x[0, :7] = 1.0
    x[1, 10:13] = -1.2
    x[1, 20] = 0.999
    assert M.no_reference_metrics(x, SR)["clipped_samples"] == 10


def test_white_noise_has_textbook_flatness_and_rolloffs(noise):
    """A periodogram bin of white noise is exponential: geometric over arithmetic mean is
    exp(E[ln X]) = exp(-gamma) = 0.5615. Two channels' bins averaged are gamma-distributed with
    shape 2, E[ln X] = digamma(2) - ln 2 = 1 - gamma - ln 2: flatness 0.7631. Its power is spread
    evenly up to Nyquist, so 85 % of it lies below 0.85 * 22050 = 18742 Hz and 99 % below
    21830 Hz; its centroid is half of Nyquist."""
    assert M.no_reference_metrics(noise[:1], SR)["spectral_flatness"] == pytest.approx(np.exp(-EULER_GAMMA),
                                                                                      abs=0.01)
    row = M.no_reference_metrics(noise, SR)
    assert row["spectral_flatness"] == pytest.approx(np.exp(1 - EULER_GAMMA - np.log(2)), abs=0.01)
    bin_hz = SR / 2048
    assert row["rolloff85_hz"] == pytest.approx(0.85 * SR / 2, abs=2 * bin_hz)
    assert row["rolloff99_hz"] == pytest.approx(0.99 * SR / 2, abs=2 * bin_hz)
    assert row["spectral_centroid_hz"] == pytest.approx(SR / 4, abs=100)
    assert row["rms_db"] == pytest.approx(-20.0, abs=0.05)  # sd 0.1


def test_the_noise_floor_is_the_quietest_tenth_of_the_frames():
    """A third of the clip at a constant 0.001 (-60 dBFS), the rest at 0.5: the quietest 10 % of
    50 ms frames all lie in the quiet third."""
    x = np.full((1, 6 * SR), 0.5, np.float32)
    x[:, : 2 * SR] = 0.001
    assert M.no_reference_metrics(x, SR)["noise_floor_db"] == pytest.approx(-60.0, abs=1e-3)


def test_the_quiet_frame_high_band_is_measured_where_the_input_is_quiet(noise):
    """hf_quiet_energy_db averages the high band over the input's quietest quarter of frames: with
    the first half at a tenth of the amplitude, that is 20 dB below the loud half's level."""
    x = noise[:, : 4 * SR].copy()
    x[:, : 2 * SR] *= 0.1
    row = M.no_reference_metrics(x, SR)
    loud = M.no_reference_metrics(x[:, 2 * SR:], SR)["hf_energy_db"]
    assert row["hf_quiet_energy_db"] == pytest.approx(loud - 20.0, abs=0.3)


def test_hpss_ratio_of_silence_and_its_sign():
    assert M.no_reference_metrics(np.zeros((1, SR), np.float32), SR)["hpss_ratio_db"] == 0.0
    clicks = np.zeros((1, 2 * SR), np.float32)
    clicks[:, :: SR // 10] = 0.9
    assert M.no_reference_metrics(sine(440.0, 0.5), SR)["hpss_ratio_db"] > 20
    assert M.no_reference_metrics(clicks, SR)["hpss_ratio_db"] < -20


def test_effective_bandwidth_of_band_limited_noise(noise):
    from restorelab.degrade import band_limit

    limited = band_limit(noise, SR, None, cutoff_hz=12000.0)
    assert M.no_reference_metrics(limited, SR)["effective_bandwidth_hz"] == pytest.approx(12000.0, abs=300)
    assert M.no_reference_metrics(noise, SR)["effective_bandwidth_hz"] > 21000
