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


# -- spectra behind the figures and the mel distance -----------------------------------------------

def bin_sine(k: int, n_fft: int = 2048, seconds: float = 2.0) -> np.ndarray:
    """A full-scale sine exactly on bin ``k`` of an ``n_fft`` STFT."""
    return sine(k * SR / n_fft, 1.0, seconds)


def test_linear_spectrogram_axes_and_channel_average():
    """A full-scale sine on a bin reads 0.25 there (window-normalised); with a silent right channel
    the channel average halves it: 10 log10(0.125) = -9.03 dB. Times step by the hop, bins by
    sr / n_fft, and the STFT passed in is the one used."""
    stereo = np.vstack([bin_sine(94), np.zeros((1, 2 * SR), np.float32)])
    times, freqs, level = M.linear_spectrogram_db(stereo, SR)
    assert level.shape == (1025, times.size) and freqs.size == 1025
    assert times[1] - times[0] == pytest.approx(512 / SR) and freqs[94] == pytest.approx(94 * SR / 2048)
    assert np.median(level[94]) == pytest.approx(10 * np.log10(0.125), abs=1e-3)
    times, freqs, level = M.linear_spectrogram_db(stereo, SR, M.Stft(1024, 256))
    assert level.shape == (513, times.size) and times[1] - times[0] == pytest.approx(256 / SR)
    assert np.median(level[47]) == pytest.approx(10 * np.log10(0.125), abs=1e-3)


def test_mel_power_of_white_noise_is_flat_at_the_per_bin_level(noise):
    """A window-normalised periodogram bin of white noise (variance s^2, Hann of N bins) has mean
    s^2 * sum(w^2) / sum(w)^2 = s^2 * 1.5 / N. Each mel band averages bins with weights summing to
    one, so every band reads that level too (0.4 dB allows for the fewest-bin bands' spread)."""
    mel = M.mel_power(noise, SR)
    assert mel.shape[0] == M.N_MELS
    expected_db = 10 * np.log10(0.01 * 1.5 / 2048)
    assert np.abs(10 * np.log10(mel.mean(axis=1)) - expected_db).max() < 0.4


def test_mel_spectrogram_axes_and_where_a_tone_lands():
    times, centres, level = M.mel_spectrogram_db(bin_sine(93), SR)
    assert level.shape == (M.N_MELS, times.size) and times[1] - times[0] == pytest.approx(512 / SR)
    assert np.all(np.diff(centres) > 0) and 0 < centres[0] < 50 and 20000 < centres[-1] < SR / 2
    loudest = int(np.argmax(level[:, times.size // 2]))
    assert centres[loudest] == pytest.approx(93 * SR / 2048, rel=0.05)


def test_welch_psd_of_white_noise_is_two_variance_over_the_rate(noise):
    """One-sided PSD of white noise of variance s^2 sampled at fs: 2 s^2 / fs per Hz."""
    freqs, level = M.welch_psd_db(noise, SR)
    assert freqs[1] == pytest.approx(SR / 4096)
    assert np.median(level[1:-1]) == pytest.approx(10 * np.log10(2 * 0.01 / SR), abs=0.1)


def test_quiet_frames_are_the_quietest_share_by_channel_average():
    power = np.ones((2, 8, 4))
    power[0, 5] = power[1, 2] = 0.1  # frames 5 and 2 are quiet on average; frame 7 only in one channel
    power[0, 7] = 0.5
    assert M.quiet_frames(power).tolist() == [2, 5]  # a quarter of 8
    assert M.quiet_frames(power[:, :4]).tolist() == [2]  # a quarter of 4: just one
    assert M.quiet_frames(power, share=0.5).tolist() == [0, 2, 5, 7]  # then frame 7; ties go to the first


def test_log_mel_distance_compares_the_common_frames():
    """A longer estimate is compared over the frames both have: the same music plus a tail is
    nearly 0 (only the last shared frame differs, where the shorter one ends)."""
    x = bin_sine(93)
    longer = np.concatenate([x, bin_sine(93, seconds=1.0)], axis=-1)
    assert M.log_mel_distance(x, longer, SR) < 0.05


def test_spectral_shape_of_silence_is_all_zero_and_flatness_averages_frames():
    zeros = dict.fromkeys(("spectral_centroid_hz", "rolloff85_hz", "rolloff99_hz", "spectral_flatness",
                           "effective_bandwidth_hz"), 0.0)
    assert M.spectral_shape(np.zeros((1, 4, 1025)), SR) == zeros
    # A flat frame has flatness 1; one alternating 1, 4, 1, ... has geometric mean 4^(512/1025)
    # over arithmetic mean (513 + 4 * 512) / 1025. The column is the mean of the two.
    power = np.ones((1, 2, 1025))
    power[0, 1, 1::2] = 4.0
    alternating = 4.0 ** (512 / 1025) / ((513 + 4 * 512) / 1025)
    assert M.spectral_shape(power, SR)["spectral_flatness"] == pytest.approx((1 + alternating) / 2, rel=1e-9)


def test_the_noise_floor_uses_50_ms_frames_at_half_overlap():
    """At a rate of 40 Hz a frame is 2 samples and the hop 1: frame i has power (x_i^2 + x_{i+1}^2) / 2.
    With 8 samples there are 7 frames; the quietest 10 % is round(0.7) = 1 frame, 30 % is 2."""
    x = np.array([[0.001, 0.002, 0.004, 0.008, 0.5, 0.5, 0.5, 0.5]])
    first, second = (1e-6 + 4e-6) / 2, (4e-6 + 16e-6) / 2
    assert M.noise_floor_db(x, 40) == pytest.approx(10 * np.log10(first), abs=1e-5)  # float32 samples
    assert M.noise_floor_db(x, 40, quantile=0.3) == pytest.approx(10 * np.log10((first + second) / 2), abs=1e-5)


def test_outputs_are_judged_on_the_inputs_quiet_frames(noise):
    """The output, time-reversed, is loud where the input was quiet: measured on the input's quiet
    frames, its high band reads at the loud level. An output of another length (so other frames)
    uses its own quietest frames."""
    x = noise[:, : 4 * SR].copy()
    x[:, :SR] *= 0.01  # the input's quiet first second: its quietest quarter of frames
    loud = M.no_reference_metrics(noise[:, : 4 * SR], SR)["hf_energy_db"]
    reversed_row = M.no_reference_metrics(x[:, ::-1].copy(), SR, original=x)
    assert reversed_row["hf_quiet_energy_db"] == pytest.approx(loud, abs=0.3)
    shorter_row = M.no_reference_metrics(x[:, : 3 * SR], SR, original=x)
    assert shorter_row["hf_quiet_energy_db"] == pytest.approx(loud - 40.0, abs=0.5)


def test_without_an_original_the_comparative_columns_are_zero():
    row = M.no_reference_metrics(sine(1000.0, 1.0, seconds=5.0), SR)
    assert row["log_mel_distance"] == 0.0 and row["hf_energy_gain_db"] == 0.0
    assert row["loudness_lufs"] == pytest.approx(-3.01, abs=0.05)  # BS.1770's one-channel sine


# -- the verdict at its thresholds -----------------------------------------------------------------

def test_verdict_checks_at_their_boundaries():
    """Each check's boundary, with thresholds that are exact in binary: a reduction must exceed the
    minimum, a band gain reach it, the HPSS ratio may fall by exactly the tolerance, and the log-mel
    distance must stay strictly under its maximum."""
    t = M.VerdictThresholds(max_log_mel_distance=0.25, hpss_drop_tolerance_db=0.5, min_hf_reduction_db=1.0,
                            min_bandwidth_gain_hz=500.0)
    base = {"hf_energy_db": -40.0, "effective_bandwidth_hz": 16000.0, "hpss_ratio_db": 3.0,
            "log_mel_distance": 0.0}
    row = {"hf_energy_db": -41.0, "effective_bandwidth_hz": 16500.0, "hpss_ratio_db": 2.5,
           "log_mel_distance": 0.25}
    assert M.verdict(row, base, t) == {"hf_energy_down": False, "hpss_kept": True, "faithful": False,
                                       "pass": False}
    assert M.verdict({**row, "hf_energy_db": -41.5, "log_mel_distance": 0.125}, base, t)["pass"]
    assert M.verdict(row, base, t, goal="extend")["band_extended"]
    assert not M.verdict({**row, "effective_bandwidth_hz": 16499.0}, base, t, goal="extend")["band_extended"]
    assert not M.verdict({**row, "hpss_ratio_db": 2.25}, base, t)["hpss_kept"]
    with pytest.raises(ValueError, match="^goal must be one of denoise, extend, got 'louder'$"):
        M.verdict(row, base, t, goal="louder")


# -- reference metrics at their edges --------------------------------------------------------------

def test_reference_metrics_compare_the_common_length_and_refuse_other_channel_counts(noise):
    assert M.lsd(noise, noise[:, :-1000], SR)["lsd"] == 0.0
    assert M.si_sdr_db(noise[:, :-1000], noise) > 100
    with pytest.raises(ValueError, match="^channel counts differ: reference 2, estimate 1$"):
        M.lsd(noise, noise[:1], SR)


def test_lsd_below_a_cutoff_at_the_first_bin_is_the_dc_bin():
    """Ten times the amplitude scores 2 in every bin, the DC bin included."""
    x = (0.1 * np.random.default_rng(3).standard_normal((1, SR))).astype(np.float32)
    row = M.lsd(x, 10 * x, SR, cutoff_hz=SR / 2048)
    assert row["lsd_low"] == pytest.approx(2.0, abs=1e-6) and row["lsd_high"] == pytest.approx(2.0, abs=1e-6)


def test_si_sdr_leaves_out_silent_reference_channels(noise):
    estimate = noise + 0.01 * np.random.default_rng(5).standard_normal(noise.shape).astype(np.float32)
    right_only = M.si_sdr_db(noise[1:], estimate[1:])
    silent_left = noise.copy()
    silent_left[0] = 0.0
    assert M.si_sdr_db(silent_left, estimate) == pytest.approx(right_only, abs=1e-9)
    assert np.isnan(M.si_sdr_db(np.zeros_like(noise), estimate))


def test_distances_from_silence_and_below_the_magnitude_floor(noise):
    """Magnitudes under the 1e-7 floor add nothing to the log term, so only spectral convergence is
    left: from a silent reference it is 1 for any sound and 0 for silence; between two such faint
    signals it is |m - 3m| / |m| = 2. The cosine of silence with anything is 0, of two faint
    copies 1."""
    faint = 1e-12 * noise
    silent = np.zeros_like(noise)
    assert M.multi_resolution_stft_distance(silent, silent) == 0.0
    assert M.multi_resolution_stft_distance(silent, faint) == pytest.approx(1.0, abs=1e-9)
    assert M.multi_resolution_stft_distance(faint, 3 * faint) == pytest.approx(2.0, abs=1e-6)
    assert M.spectrogram_errors(silent, noise)["spec_cosine"] == 0.0
    assert M.spectrogram_errors(faint, 2 * faint)["spec_cosine"] == pytest.approx(1.0, abs=1e-9)


def test_visqol_reads_its_ceiling_for_identical_audio_and_falls_with_noise():
    """ViSQOL v3's audio mode scores identical signals 4.732 (its model's ceiling); more noise scores lower."""
    import importlib.util

    if importlib.util.find_spec("visqol") is None:
        pytest.skip("visqol-python is not installed")
    assert M.visqol_available()
    x = sine(440.0, 0.3) + 0.02 * np.random.default_rng(7).standard_normal((1, 2 * SR)).astype(np.float32)
    noise = np.random.default_rng(8).standard_normal(x.shape).astype(np.float32)
    assert "visqol_moslqo" not in M.reference_metrics(x, x, SR)
    assert M.reference_metrics(x, x, SR, with_visqol=True)["visqol_moslqo"] == pytest.approx(4.732, abs=0.001)
    mild, strong = M.visqol_moslqo(x, x + 0.003 * noise, SR), M.visqol_moslqo(x, x + 0.03 * noise, SR)
    assert 4.732 > mild > strong > 1.0


def test_visqol_availability_follows_the_import(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "visqol", None)  # import visqol now raises ImportError
    assert M.visqol_available() is False
