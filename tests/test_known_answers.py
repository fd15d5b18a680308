"""Known answers from synthetic signals: what each restorer must do to a signal we fully know."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SR, add_noise, band_level_db, band_limited_noise, melody, snr_db
from restorelab.dsp import Stft
from restorers import get_restorer

DENOISERS = ["spectral_gate_hf", "spectral_subtraction_hf", "mcra_wiener", "spectral_gate"]
INPUT_SNR_DB = 10.0
#: Minimum SNR gain each denoiser must achieve on notes in white noise at 10 dB.
#: The high-band ones can only remove the ~73 % of white noise above 6 kHz
#: (at most +5.7 dB).
MIN_GAIN_DB = {"spectral_gate_hf": 3.0, "spectral_subtraction_hf": 3.0, "mcra_wiener": 6.0,
               "spectral_gate": 3.0}


@pytest.fixture(scope="module")
def notes_in_noise():
    clean = melody(6.0)
    noisy = add_noise(clean, INPUT_SNR_DB, np.random.default_rng(99))
    return clean, noisy


@pytest.mark.parametrize("name", DENOISERS)
def test_denoiser_raises_snr(name, notes_in_noise):
    clean, noisy = notes_in_noise
    assert snr_db(clean, noisy) == pytest.approx(INPUT_SNR_DB, abs=0.01)
    out = get_restorer(name)(noisy, SR)
    assert snr_db(clean, out) > INPUT_SNR_DB + MIN_GAIN_DB[name]


@pytest.mark.parametrize("name", ["spectral_gate_hf", "spectral_subtraction_hf", "mcra_wiener"])
def test_denoiser_keeps_the_music_level(name, notes_in_noise):
    """The clean notes' component in the output (projection gain) stays within 1 dB."""
    clean, noisy = notes_in_noise
    out = get_restorer(name)(noisy, SR).astype(np.float64)
    gain = np.dot(out, clean) / np.dot(clean, clean)
    assert abs(20 * np.log10(gain)) < 1.0


@pytest.mark.parametrize("name", ["spectral_gate_hf", "spectral_subtraction_hf"])
def test_high_band_restorers_leave_the_low_band(name, rng):
    """Below the 6 kHz crossover (less its transition) the output equals the input."""
    x = add_noise(melody(4.0), 20.0, rng)
    out = get_restorer(name)(x, SR)
    # Below 5 kHz the change is at least 60 dB under the signal there.
    assert band_level_db(out - x, x, 0.0, 5000.0) < -60


def test_spectral_gate_hf_with_gate_off_is_the_input(rng):
    x = add_noise(melody(3.0), 20.0, rng)
    out = get_restorer("spectral_gate_hf", prop_decrease=0.0)(x, SR)
    np.testing.assert_allclose(out, x, atol=2e-6)


def test_spectral_subtraction_matches_formula(rng):
    """The streaming noise estimate and the vectorised rule agree with a per-bin loop of |Y| = max(|X| - aN, b|X|)."""
    x = add_noise(melody(2.0), 15.0, rng)
    restorer = get_restorer("spectral_subtraction_hf")
    p = restorer.params
    stft = Stft(p.n_fft, p.n_fft // 4)
    spec = stft.forward(x[None])
    k0 = stft.bin_index(p.cutoff_hz, SR)
    mag = np.abs(spec[..., k0:])
    energy = (mag ** 2).sum(-1)[0]
    count = max(1, int(round(p.noise_quantile * mag.shape[-2])))
    quiet = np.argsort(energy, kind="stable")[:count]
    noise = mag[0, quiet].mean(axis=0)
    np.testing.assert_allclose(restorer._fit(x[None], SR)[0, 0], noise, rtol=1e-5)
    expected = spec.copy()
    for t in range(spec.shape[-2]):
        for k in range(k0, spec.shape[-1]):
            m = abs(spec[0, t, k])
            if m > 0:
                expected[0, t, k] *= max(m - p.alpha * noise[k - k0], p.beta * m) / m
    want = stft.inverse(expected, x.size)[0]
    np.testing.assert_allclose(restorer(x, SR), want, atol=1e-6)


@pytest.fixture(scope="module")
def band_limited():
    return band_limited_noise(4.0, 16000.0, np.random.default_rng(5), channels=2)


def test_bandwidth_extension_fills_above_the_cutoff(band_limited):
    out = get_restorer("bandwidth_extension_dsp")(band_limited, SR)
    gain_db = band_level_db(out, band_limited, 16500.0, 19500.0)
    # The empty band gains at least 60 dB (it held nothing) ...
    assert gain_db > 60
    # ... and its level per hertz ends within 20 dB of the octave below the cutoff.
    level_db = band_level_db(out, out, 16500.0, 19500.0) - band_level_db(out, out, 8000.0, 15500.0)
    width_ratio_db = 10 * np.log10((19500 - 16500) / (15500 - 8000))
    assert abs(level_db - width_ratio_db) < 20


@pytest.mark.parametrize("follow_db", [20.0, 0.0])
def test_bandwidth_extension_follows_the_band_under_the_cutoff_frame_by_frame(follow_db):
    """Steady music across the octave the copy comes from, and a part that sounds in every other
    quarter second only in the last 1.7 kHz under the cutoff (as a hi-hat over a pad): the
    generated band comes and goes as that band does (within 2 dB), where the copy alone is steady."""
    rng = np.random.default_rng(6)
    steady = band_limited_noise(4.0, 16000.0, rng)
    freqs = np.fft.rfftfreq(steady.shape[-1], 1 / SR)
    spectrum = np.fft.rfft(rng.standard_normal(steady.shape), axis=-1)
    spectrum[..., (freqs < 14300.0) | (freqs >= 16000.0)] = 0
    part = np.fft.irfft(spectrum, n=steady.shape[-1], axis=-1)
    on = (np.arange(steady.shape[-1]) // (SR // 4)) % 2 == 1
    x = (steady + 0.2 * part * on).astype(np.float32)
    out = get_restorer("bandwidth_extension_dsp", follow_db=follow_db)(x, SR)
    stft = Stft(2048, 512)
    frames = np.arange(stft.forward(x).shape[-2]) * stft.hop
    away = np.abs(frames % (SR // 4) - SR // 8) < SR // 16  # frames away from the switches
    sounding = on[np.minimum(frames, on.size - 1)]

    def contrast_db(audio, low_hz, high_hz):
        bins = slice(stft.bin_index(low_hz, SR), stft.bin_index(high_hz, SR))
        level = np.mean(np.square(np.abs(stft.forward(audio)[0][:, bins])), axis=-1)
        return 10 * np.log10(np.mean(level[away & sounding]) / np.mean(level[away & ~sounding]))

    under = contrast_db(x, 14500.0, 15800.0)
    assert under > 10
    expected = under if follow_db else 0.0
    assert contrast_db(out, 16500.0, 17500.0) == pytest.approx(expected, abs=2.0)


def test_bandwidth_extension_leaves_the_band_below_the_cutoff(band_limited):
    """Everything below the cutoff is the input's: the difference there is 80 dB down."""
    out = get_restorer("bandwidth_extension_dsp")(band_limited, SR)
    # Up to the guard filter's 200 Hz transition below the cutoff.
    assert band_level_db(out - band_limited, band_limited, 0.0, 15750.0) < -80


def test_bandwidth_extension_leaves_full_band_audio_alone(rng):
    x = band_limited_noise(2.0, 22050.0, rng)
    np.testing.assert_array_equal(get_restorer("bandwidth_extension_dsp")(x, SR), x)


def test_bandwidth_extension_leaves_music_fading_into_hiss_alone():
    """Notes whose harmonics sink gradually into hiss that reaches Nyquist: no codec cliff, no fill."""
    from restorelab.degrade import degrade

    x = np.stack([melody(6.0, seed=1), melody(6.0, seed=2)])
    hissy, _ = degrade(x, SR, "hiss", seed=0)
    np.testing.assert_array_equal(get_restorer("bandwidth_extension_dsp")(hissy, SR), hissy)


def test_bandwidth_extension_adds_nothing_where_the_band_is_already_full(rng):
    """With a given cutoff below real content, only the shortfall against the envelope is added."""
    x = band_limited_noise(3.0, 22050.0, rng)
    out = get_restorer("bandwidth_extension_dsp", cutoff_hz=12000.0, gain_db=-10.0)(x, SR)
    assert band_level_db(out - x, x, 12500.0, 19000.0) < -60


@pytest.mark.parametrize("follow_db", [0.0, 20.0])  # with nothing under the given cutoff to follow
def test_bandwidth_extension_respects_a_given_cutoff(band_limited, follow_db):
    out = get_restorer("bandwidth_extension_dsp", cutoff_hz=18000.0, follow_db=follow_db)(band_limited, SR)
    assert band_level_db(out - band_limited, band_limited, 0.0, 17750.0) < -80
    assert band_level_db(out, band_limited, 18500.0, 19500.0) > 60


@pytest.mark.parametrize("stationary", [True, False])
@pytest.mark.parametrize("prop_decrease", [1.0, 0.6])
def test_spectral_gate_agrees_with_noisereduce(stationary, prop_decrease, rng):
    """The fast gate is noisereduce's algorithm: the library's own output, away from the clip's ends.

    The ends differ on purpose (this implementation reflects the clip before
    smoothing the mask, the library pads it with zeros), and the non-stationary
    floor starts from rest at each end, so a short time constant keeps those
    ramps out of the compared interior; there the two must agree to float32
    rounding of the mask.
    """
    noisereduce = pytest.importorskip("noisereduce")
    from restorers.spectral_gate import SpectralGateParams, spectral_gate

    x = np.stack([add_noise(melody(3.0, seed=s), 15.0, rng) for s in (1, 2)])
    noise = (0.01 * rng.standard_normal((2, SR // 2))).astype(np.float32)
    params = SpectralGateParams(stationary=stationary, prop_decrease=prop_decrease, n_fft=1024,
                                freq_mask_smooth_hz=500.0, time_mask_smooth_ms=50.0, time_constant_s=0.05)
    ours = spectral_gate(x, SR, params, noise if stationary else None)
    theirs = noisereduce.reduce_noise(
        y=x.astype(np.float64), sr=SR, y_noise=noise if stationary else None, stationary=stationary,
        prop_decrease=prop_decrease, n_fft=1024, freq_mask_smooth_hz=500.0, time_mask_smooth_ms=50.0,
        time_constant_s=0.05, chunk_size=x.shape[-1], padding=1024, clip_noise_stationary=False)
    inner = slice(SR // 2, -SR // 2)
    diff = ours[:, inner] - theirs[:, inner]
    assert 10 * np.log10(np.sum(diff ** 2) / np.sum(theirs[:, inner] ** 2)) < -60
