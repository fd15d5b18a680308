"""Metrics: ideal values on (x, x) and the right values on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SR, add_noise, band_limited_noise, melody
from restorelab import analysis as A


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.stack([add_noise(melody(4.0, seed=s), 30, rng) for s in (1, 2)])


def test_reference_metrics_ideal_on_identical_signals(music):
    row = A.reference_metrics(music, music, SR, cutoff_hz=16000.0)
    assert row["lsd"] == row["lsd_low"] == row["lsd_high"] == 0.0
    assert row["si_sdr_db"] > 100
    assert row["mrstft"] == 0.0
    assert row["spec_mse_db2"] == row["spec_mae_db"] == 0.0
    assert row["spec_cosine"] == pytest.approx(1.0)
    assert A.log_mel_distance(music, music, SR) == 0.0


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_si_sdr_of_added_noise(snr, rng):
    """x + noise at a known SNR: SI-SDR equals it (to the random projection of noise on x)."""
    x = melody(4.0)
    noisy = add_noise(x, snr, rng)
    assert A.si_sdr_db(x, noisy) == pytest.approx(snr, abs=0.1)


def test_si_sdr_ignores_scale(music):
    assert A.si_sdr_db(music, 0.25 * music) > 100


def test_lsd_of_a_pure_gain(rng):
    """Scaling by 10 (power x100) moves every log10 power by exactly 2: LSD = 2."""
    x = rng.standard_normal((1, 2 * SR)).astype(np.float32)
    row = A.lsd(x, 10 * x, SR, cutoff_hz=16000.0)
    assert row["lsd"] == pytest.approx(2.0, abs=1e-3)
    assert row["lsd_low"] == pytest.approx(2.0, abs=1e-3)
    assert row["lsd_high"] == pytest.approx(2.0, abs=1e-3)


def test_lsd_splits_at_the_cutoff(rng):
    """Band-limiting white noise damages only the bins above the cutoff."""
    x = rng.standard_normal((1, 2 * SR)).astype(np.float32)
    spectrum = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    spectrum[..., freqs >= 16000] = 0
    y = np.fft.irfft(spectrum, n=x.shape[-1], axis=-1).astype(np.float32)
    row = A.lsd(x, y, SR, cutoff_hz=16000.0)
    assert row["lsd_low"] < 0.05
    assert row["lsd_high"] > 2.0


def test_mrstft_and_spectrogram_errors_grow_with_damage(music, rng):
    mild = add_noise(music, 30, rng)
    strong = add_noise(music, 5, rng)
    assert 0 < A.multi_resolution_stft_distance(music, mild) < A.multi_resolution_stft_distance(music, strong)
    mild_errors, strong_errors = A.spectrogram_errors(music, mild), A.spectrogram_errors(music, strong)
    assert mild_errors["spec_mae_db"] < strong_errors["spec_mae_db"]
    assert mild_errors["spec_cosine"] > strong_errors["spec_cosine"]


def test_log_mel_distance_of_a_gain():
    """A gain of g dB moves every log10 mel power by g/10 (clear of the floor)."""
    x = np.random.default_rng(2).standard_normal((1, SR)).astype(np.float32) * 0.1
    assert A.log_mel_distance(x, x * 10 ** (3 / 20), SR) == pytest.approx(0.3, abs=1e-3)


def test_hf_energy_of_white_noise(rng):
    """White noise: the band above 6 kHz holds (22050 - 6000) / 22050 of the power."""
    x = rng.standard_normal((1, 4 * SR)).astype(np.float32)
    power = A.normalised_power(x)
    share = 10 ** ((A.hf_band_energy_db(power, SR) - A.hf_band_energy_db(power, SR, 0.0)) / 10)
    assert share == pytest.approx(16050 / 22050, abs=0.01)


def test_spectral_shape_of_white_and_band_limited_noise(rng):
    white = rng.standard_normal((1, 4 * SR)).astype(np.float32)
    shape = A.spectral_shape(A.normalised_power(white), SR)
    assert shape["rolloff85_hz"] == pytest.approx(0.85 * SR / 2, rel=0.01)
    assert shape["spectral_centroid_hz"] == pytest.approx(SR / 4, rel=0.01)
    assert shape["spectral_flatness"] > 0.5  # ~0.56 for Gaussian noise (exp(-euler gamma))
    limited = band_limited_noise(4.0, 11000.0, rng) + 1e-5 * white
    assert A.spectral_shape(A.normalised_power(limited), SR)["effective_bandwidth_hz"] == pytest.approx(11000, abs=300)


def test_flatness_of_a_tone_is_near_zero():
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    assert A.spectral_shape(A.normalised_power(tone), SR)["spectral_flatness"] < 0.01


def test_hpss_ratio_tells_tones_from_clicks():
    t = np.arange(2 * SR) / SR
    tones = (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 1320 * t)).astype(np.float32)
    clicks = np.zeros(2 * SR, np.float32)
    clicks[:: SR // 8] = 1.0
    assert A.hpss_ratio_db(A.normalised_power(tones)) > 20
    assert A.hpss_ratio_db(A.normalised_power(clicks)) < -10


def test_hpss_ratio_is_fitzgeralds_split_with_soft_masks(music):
    """Against the definition written out in float64 with scipy's median filters, with a silent
    band where both medians are 0 (no 0 / 0 in the masks)."""
    from scipy.ndimage import median_filter

    power = A.normalised_power(music)
    power[:, :, 900:] = 0  # a silent band: both medians are 0 there
    magnitude = np.sqrt(power.mean(axis=0))
    h2 = median_filter(magnitude, size=(17, 1), mode="reflect") ** 2
    p2 = median_filter(magnitude, size=(1, 17), mode="reflect") ** 2
    with np.errstate(invalid="ignore"):
        mask = np.where(h2 + p2 > 0, h2 / (h2 + p2), 0.5)
    e_h, e_p = np.sum(magnitude ** 2 * mask), np.sum(magnitude ** 2 * (1 - mask))
    assert A.hpss_ratio_db(power) == pytest.approx(10 * np.log10((e_h + 1e-6 * (e_h + e_p)) / (e_p + 1e-6 * (e_h + e_p))),
                                                   abs=1e-5)


def test_noise_floor_finds_the_quiet_part(rng):
    x = np.zeros(4 * SR, np.float32)
    x[: 2 * SR] = rng.standard_normal(2 * SR) * 0.3
    x[2 * SR :] = rng.standard_normal(2 * SR) * 0.001  # -60 dB re 1.0 power
    assert A.noise_floor_db(x, SR) == pytest.approx(-60.0, abs=0.5)


def test_no_reference_row_basics():
    x = np.zeros((2, SR), np.float32)
    x[0, :100] = 1.2
    row = A.no_reference_metrics(x, SR)
    assert row["clipped_samples"] == 100
    assert row["peak_db"] == pytest.approx(20 * np.log10(1.2))
    assert set(A.NO_REFERENCE_COLUMNS) <= set(row)


def test_compare_puts_the_input_first_with_verdicts(music):
    outputs = {"same": music, "louder": music * 4}
    rows = A.compare_no_reference(music, outputs, SR)
    assert [r["name"] for r in rows] == ["input", "same", "louder"]
    assert "pass" not in rows[0]
    assert rows[1]["log_mel_distance"] == 0.0 and rows[1]["hf_energy_gain_db"] == 0.0
    # Unchanged audio did not reduce the high band: it fails that check.
    assert rows[1]["hf_energy_down"] is False and rows[1]["pass"] is False
    assert rows[2]["faithful"] is False  # 12 dB louder is 1.2 log10 units away


def test_verdict_thresholds_are_parameters():
    base = {"hf_energy_db": -30.0, "hpss_ratio_db": 5.0}
    row = {"hf_energy_db": -33.0, "hpss_ratio_db": 4.9, "log_mel_distance": 0.15}
    assert A.verdict(row, base)["pass"] is False  # HPSS dropped by 0.1 dB
    assert A.verdict({**row, "hpss_ratio_db": 4.99}, base)["pass"] is True  # 0.01 dB: within the tolerance
    assert A.verdict({**row, "hpss_ratio_db": 4.99}, base, A.VerdictThresholds(hpss_drop_tolerance_db=0.0))[
        "hpss_kept"] is False
    loose = A.VerdictThresholds(hpss_drop_tolerance_db=0.5)
    assert A.verdict(row, base, loose)["pass"] is True
    strict = A.VerdictThresholds(hpss_drop_tolerance_db=0.5, max_log_mel_distance=0.1)
    assert A.verdict(row, base, strict)["faithful"] is False


def test_extenders_are_judged_by_the_band_they_add():
    base = {"hf_energy_db": -30.0, "hpss_ratio_db": 5.0, "effective_bandwidth_hz": 15000.0}
    row = {"hf_energy_db": -29.9, "hpss_ratio_db": 5.0, "log_mel_distance": 0.03, "effective_bandwidth_hz": 17000.0}
    extended = A.verdict(row, base, goal="extend")
    assert extended == {"band_extended": True, "hpss_kept": True, "faithful": True, "pass": True}
    assert A.verdict(row, base)["hf_energy_down"] is False  # judged as a denoiser, the same output fails
    narrow = {**row, "effective_bandwidth_hz": 15400.0}
    assert A.verdict(narrow, base, goal="extend")["band_extended"] is False  # 400 Hz: under the 500 Hz bar
    assert A.verdict(narrow, base, A.VerdictThresholds(min_bandwidth_gain_hz=300.0), goal="extend")["pass"] is True
    with pytest.raises(ValueError, match="goal"):
        A.verdict(row, base, goal="upsample")


def test_compare_applies_each_outputs_goal(music):
    rows = A.compare_no_reference(music, {"kept": music, "extended": music}, SR, goals={"extended": "extend"})
    assert rows[1]["hf_energy_down"] is False and "band_extended" not in rows[1]
    assert rows[2]["band_extended"] is False and "hf_energy_down" not in rows[2]  # nothing was added


def test_spectra_shapes(music):
    times, freqs, level = A.linear_spectrogram_db(music, SR)
    assert level.shape == (len(freqs), len(times)) and level.min() >= A.SPECTROGRAM_FLOOR_DB
    times, centres, mel = A.mel_spectrogram_db(music, SR)
    assert mel.shape == (A.N_MELS, len(times)) and np.all(np.diff(centres) > 0)
    freqs, psd = A.welch_psd_db(music, SR)
    assert freqs[-1] == SR / 2 and psd.shape == freqs.shape


@pytest.mark.slow
@pytest.mark.skipif(not A.visqol_available(), reason="visqol-python is not installed")
def test_visqol_prefers_the_cleaner_signal(music, rng):
    clean = music[:, : 3 * SR]
    mild, strong = add_noise(clean, 30, rng), add_noise(clean, 5, rng)
    assert A.visqol_moslqo(clean, mild, SR) > A.visqol_moslqo(clean, strong, SR)


def test_quiet_passage_hiss_is_measured_on_the_inputs_quietest_frames(rng):
    """Hiss removed only where the music is quiet: the quiet-frame measure sees all of it."""
    t = np.arange(4 * SR) / SR
    loud = (t < 3.0).astype(np.float32)
    music = (0.5 * np.sin(2 * np.pi * 440 * t) * loud + 0.01 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    hiss = 0.003 * rng.standard_normal(t.size).astype(np.float32)
    noisy = (music + hiss)[None]
    cleaned = (music + hiss * loud)[None]  # the last second, the quiet one, is clean
    frames = A.quiet_frames(A.normalised_power(noisy))
    times = frames * A.FEATURE_STFT.hop / SR
    assert times.min() > 2.9  # the quiet quarter is the last second
    before = A.no_reference_metrics(noisy, SR)
    after = A.no_reference_metrics(cleaned, SR, original=noisy)
    assert before["hf_quiet_energy_db"] - after["hf_quiet_energy_db"] > 20
    assert before["hf_energy_db"] - after["hf_energy_db"] < 3  # the overall measure barely moves


# -- long clips a block at a time -------------------------------------------------------------------

def use_small_blocks(monkeypatch):
    """Blocks of 37 frames and 5000 samples: a few seconds of audio spans many of them."""
    from restorelab import audio

    monkeypatch.setattr(A, "BLOCK_FRAMES", 37)
    monkeypatch.setattr(A, "BLOCK_SAMPLES", 5000)
    monkeypatch.setattr(audio, "LOUDNESS_BLOCK_SAMPLES", 5000)


def measured_whole_and_in_blocks(audio, original, monkeypatch):
    whole = A.no_reference_metrics(audio, SR, original)
    use_small_blocks(monkeypatch)
    return whole, A.no_reference_metrics(audio, SR, original)


def test_every_measure_of_a_clip_in_blocks_equals_the_whole(music, monkeypatch):
    """The row of a clip measured 37 frames (and 5000 samples) at a time equals one pass over it:
    the median filters get their context across block edges, and the quantiles, loudness gates
    and spectral sums see every frame."""
    output = (0.5 * music + 0.01 * np.random.default_rng(3).standard_normal(music.shape)).astype(np.float32)
    whole, blocked = measured_whole_and_in_blocks(output, music, monkeypatch)
    assert whole["log_mel_distance"] > 0.1 and whole["hf_energy_gain_db"] != 0.0  # an output, not the input
    assert blocked == pytest.approx(whole, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("blocks", ["whole", "small"])
def test_measures_with_their_mel_spectrogram_equal_the_two_taken_apart(music, monkeypatch, blocks):
    """A comparison's one pass gives the row and profile of the measures and the Mel spectrogram of
    the figures: the same numbers as taking each on its own, whole or 37 frames at a time (runs
    of the drawn spectrogram then straddle the blocks), a silent stretch floored alike."""
    output = (0.5 * music).astype(np.float32)
    output[:, SR:2 * SR] = 0.0
    if blocks == "small":
        use_small_blocks(monkeypatch)
    row, profile = A.measure_input(music, SR)
    for audio, original, expected in ((music, None, row), (output, profile, A.no_reference_metrics(output, SR, music))):
        got_row, got_profile, (times, freqs, level) = A.measure_with_mel(audio, SR, original, max_columns=50)
        assert got_row == expected
        if original is None:
            np.testing.assert_array_equal(got_profile.log_mel, profile.log_mel)
        alone = A.spectrograms_db(audio, SR, ("mel",), max_columns=50)["mel"]
        np.testing.assert_array_equal(times, alone[0])
        np.testing.assert_array_equal(freqs, alone[1])
        assert level.shape == alone[2].shape == (A.N_MELS, 50)  # 345 frames in runs of 7
        np.testing.assert_allclose(level, alone[2], rtol=1e-6, atol=1e-4)  # float32 of the same dB
    assert level.min() == A.SPECTROGRAM_FLOOR_DB  # the silent second


def test_frames_counted_before_a_louder_frame_came_are_taken_back(monkeypatch):
    """A second of noise 80 dB under the next second's: in blocks, the quiet frames are the loudest
    seen while their blocks are summed, but against the whole clip's loudest frame they fall under
    the active share and leave the long-term spectrum behind the rolloffs. Their power is about
    1e-8 of it, so only the sum itself shows whether they were taken back."""
    rng = np.random.default_rng(5)
    clip = np.concatenate([1e-4 * rng.standard_normal((1, SR)), rng.standard_normal((1, SR))], axis=1)
    whole = A._spectra(clip, SR)[0].active_sum
    use_small_blocks(monkeypatch)
    np.testing.assert_allclose(A._spectra(clip, SR)[0].active_sum, whole, rtol=1e-12)
    monkeypatch.setattr(A._Spectra, "correct", lambda self, start, power: None)
    assert not np.allclose(A._spectra(clip, SR)[0].active_sum, whole, rtol=1e-10, atol=0)


def test_figures_spectra_in_blocks_equal_the_whole(music, monkeypatch):
    """The loudest frame of each run, block by block, equals reducing the whole spectrogram; the
    Welch PSD averaged 7 segments at a time equals scipy's over the whole clip."""
    import scipy.signal

    wholes = {compute: compute(music, SR) for compute in (A.mel_spectrogram_db, A.linear_spectrogram_db)}
    use_small_blocks(monkeypatch)
    for compute, (times, _, level) in wholes.items():
        step = 7  # 345 frames in at most 50 columns
        runs = [level[:, i : i + step].max(axis=1) for i in range(0, level.shape[1], step)]
        reduced_times, _, reduced = compute(music, SR, max_columns=50)
        np.testing.assert_allclose(reduced, np.stack(runs, axis=1), rtol=1e-12)  # FFT rounding at the end
        np.testing.assert_allclose(reduced_times, times[::step])
    both = A.spectrograms_db(music, SR, max_columns=50)  # one pass for the two kinds
    for kind, compute in (("mel", A.mel_spectrogram_db), ("linear", A.linear_spectrogram_db)):
        for got, alone in zip(both[kind], compute(music, SR, max_columns=50)):
            np.testing.assert_array_equal(got, alone)
    with pytest.raises(ValueError, match=r"^kind must be mel or linear, got 'bark'$"):
        A.spectrograms_db(music, SR, ("bark",))
    from restorelab import plots

    _, freqs, level = A.linear_spectrogram_db(music, SR, max_columns=plots.DISPLAY_COLUMNS)
    _, shown_freqs, shown = plots.display_spectrograms(music, SR)["linear"]  # 1,025 bins in runs of 3
    assert shown.shape == (342, level.shape[1]) and shown.dtype == np.float32
    np.testing.assert_array_equal(shown[0], level[:3].max(axis=0).astype(np.float32))
    np.testing.assert_array_equal(shown[-1], level[-2:].max(axis=0).astype(np.float32))  # 1,025 = 3 * 341 + 2
    np.testing.assert_array_equal(shown_freqs, freqs[::3])
    freqs, psd = scipy.signal.welch(music.astype(np.float64), fs=SR, nperseg=4096)
    blocked_freqs, blocked = A.welch_psd_db(music, SR, block_segments=7)
    np.testing.assert_array_equal(blocked_freqs, freqs)
    np.testing.assert_allclose(blocked, 10 * np.log10(psd.mean(axis=0)), atol=1e-9)
