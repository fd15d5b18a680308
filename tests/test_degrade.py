"""Degradations: seeded, shape-preserving, and doing what their names say."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SR, band_level_db, melody
from restorelab import degrade as D


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    rng = np.random.default_rng(4)
    return np.stack([melody(3.0, seed=1), melody(3.0, seed=2)]) + 0.01 * rng.standard_normal((2, 3 * SR)).astype(np.float32)


@pytest.mark.parametrize("preset", list(D.PRESETS))
def test_presets_are_seeded_and_keep_shape(preset, clean):
    a, steps_a = D.degrade(clean, SR, preset, seed=3)
    b, steps_b = D.degrade(clean, SR, preset, seed=3)
    assert a.shape == clean.shape and a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert steps_a == steps_b
    assert not np.array_equal(a, clean)


@pytest.mark.parametrize("name", list(D.DEGRADATIONS))
def test_every_degradation_keeps_shape(name, clean):
    out = D.DEGRADATIONS[name](clean, SR, np.random.default_rng(0))
    assert out.shape == clean.shape and np.all(np.isfinite(out))


def test_groups_draw_from_their_own_members(clean):
    drawn = {D.degrade(clean, SR, "group_a", seed=s)[1][0][0] for s in range(12)}
    assert drawn <= set(D.GROUP_A) and len(drawn) > 1
    drawn = {D.degrade(clean, SR, "group_b", seed=s)[1][0][0] for s in range(12)}
    assert drawn <= set(D.GROUP_B) and len(drawn) > 1


@pytest.mark.parametrize("snr", [10.0, 30.0])
def test_additive_noise_hits_its_snr(snr, clean):
    noisy = D.additive_noise(clean, SR, np.random.default_rng(0), snr_db=snr)
    noise = noisy.astype(np.float64) - clean
    measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert measured == pytest.approx(snr, abs=0.01)


def test_band_limit_empties_the_top(clean):
    white = np.random.default_rng(1).standard_normal((1, 3 * SR)).astype(np.float32)
    out = D.band_limit(white, SR, np.random.default_rng(0), cutoff_hz=16000.0)
    inner = slice(2000, -2000)
    assert band_level_db(out[:, inner], white[:, inner], 16100.0, 22050.0) < -85
    assert band_level_db(out[:, inner], white[:, inner], 100.0, 15700.0) == pytest.approx(0.0, abs=0.01)


def test_musicgen_like_has_nothing_above_16k_and_hiss_at_its_snr(clean):
    out = D.musicgen_like(clean, SR, np.random.default_rng(0))
    assert band_level_db(out, clean, 16500.0, 22050.0) < -60
    # Same seed without hiss: the difference is the hiss alone, 35 dB under the
    # (low-passed, quantised) signal, and it lives above its 4 kHz high-pass.
    quiet = D.musicgen_like(clean, SR, np.random.default_rng(0), hiss_snr_db=300.0)
    hiss = out.astype(np.float64) - quiet
    snr = 10 * np.log10(np.mean(quiet.astype(np.float64) ** 2) / np.mean(hiss ** 2))
    assert snr == pytest.approx(35.0, abs=0.5)
    assert band_level_db(hiss, hiss, 0.0, 2000.0, reference_band=(0.0, SR / 2)) < -25


def test_hiss_16k_is_the_hiss_preset_under_the_band_limit(clean):
    out, steps = D.degrade(clean, SR, "hiss_16k", seed=3)
    hissy, _ = D.degrade(clean, SR, "hiss", seed=3)
    np.testing.assert_array_equal(out, D.band_limit(hissy, SR, None, cutoff_hz=16000.0))
    assert [name for name, _ in steps] == ["additive_noise", "band_limit"]
    assert band_level_db(out, hissy, 16500.0, 22050.0) < -60
    assert D.PRESETS["hiss_16k"].cutoff_hz == 16000.0


def test_quantize_levels():
    x = np.linspace(-1, 1, 1001, dtype=np.float32)[None]
    out = D.quantize(x, SR, np.random.default_rng(0), bits=4)
    assert len(np.unique(out)) <= 2 ** 4 + 1
    assert np.max(np.abs(out - x)) <= 1 / 2 ** 4 + 1e-6


def test_clipping_and_distortion_bound_the_peak(clean):
    rng = np.random.default_rng(0)
    peak = np.max(np.abs(clean))
    assert np.max(np.abs(D.clipping(clean, SR, rng, threshold=0.5))) == pytest.approx(0.5 * peak, rel=1e-6)
    assert np.max(np.abs(D.harmonic_distortion(clean, SR, rng, drive=4.0))) <= peak * 1.0001


def test_unknown_preset_lists_known_ones(clean):
    with pytest.raises(KeyError, match="band_limit_16k"):
        D.degrade(clean, SR, "nope")


@pytest.mark.parametrize("codec, kbps", [("opus", 48.0), ("vorbis", 96.0), ("mp3", 128.0)])
def test_a_lossy_codec_round_trip_hits_its_bitrate_keeps_time_and_is_repeatable(codec, kbps):
    """Through the real encoder: the average rate lands within 10 % of the target, the clip keeps
    its length and alignment (its correlation with the input peaks at lag 0), and the same input
    gives the same output."""
    from restorelab.audio import resample

    x = np.vstack([melody(3.0, SR, seed=4), melody(3.0, SR, seed=5)]).astype(np.float32)
    rate = 48000 if codec == "opus" else SR
    _, achieved = D.at_bitrate(resample(x, SR, rate), rate, codec, kbps)
    assert abs(achieved - kbps) <= 0.1 * kbps
    y = D.lossy_codec(x, SR, np.random.default_rng(0), codec=codec, kbps=kbps)
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    middle = slice(SR // 2, SR // 2 + SR)
    best = max(range(-200, 201), key=lambda lag: float(np.dot(x[0, middle], np.roll(y[0], -lag)[middle])))
    assert best == 0
    assert np.array_equal(y, D.lossy_codec(x, SR, np.random.default_rng(1), codec=codec, kbps=kbps))


def test_fewer_bits_do_more_damage_and_a_bad_codec_is_named():
    lossy_codec = D.lossy_codec
    x = np.vstack([melody(3.0, SR, seed=6), melody(3.0, SR, seed=7)]).astype(np.float32)
    rng = np.random.default_rng(0)
    errors = [float(np.mean((lossy_codec(x, SR, rng, codec="mp3", kbps=kbps) - x) ** 2)) for kbps in (48.0, 160.0)]
    assert errors[0] > 2 * errors[1]
    with pytest.raises(ValueError, match="^codec must be one of opus, vorbis, mp3, got 'aac'$"):
        lossy_codec(x, SR, rng, codec="aac")
    with pytest.raises(ValueError, match="^kbps must be positive, got 0$"):
        lossy_codec(x, SR, rng, kbps=0)


def test_the_musicgen_codec_preset_adds_hiss_band_limits_and_goes_through_opus():
    x = np.vstack([melody(3.0, SR, seed=8), melody(3.0, SR, seed=9)]).astype(np.float32)
    y, steps = D.degrade(x, SR, "musicgen_codec", seed=3)
    assert [name for name, _ in steps] == ["additive_noise", "band_limit", "lossy_codec"]
    assert y.shape == x.shape and D.PRESETS["musicgen_codec"].cutoff_hz == 16000.0
    # Above the limit only what Opus adds of its own (about -44 dB under the 1-4 kHz band on this clip: its
    # noise fill of empty bands, one of the codec artifacts this preset is for); below it, the music and hiss.
    assert band_level_db(y, y, 17000, 21000, reference_band=(1000, 4000)) < -35
    assert band_level_db(y, y, 12000, 15000, reference_band=(1000, 4000)) > -35


@pytest.mark.parametrize("color, db_per_octave", [("white", 0.0), ("pink", -3.01), ("brown", -6.02)])
def test_noise_colours_fall_as_named(color, db_per_octave):
    silence = np.zeros((1, 8 * SR), dtype=np.float32)
    noise = D.additive_noise(silence + 1e-3, SR, np.random.default_rng(0), snr_db=0.0, color=color)[0] - 1e-3
    power = np.abs(np.fft.rfft(noise)) ** 2
    f = np.fft.rfftfreq(noise.size, 1 / SR)
    octaves = [power[(f >= lo) & (f < 2 * lo)].mean() for lo in (1000.0, 2000.0, 4000.0, 8000.0)]
    # The mean power density of each octave band falls by the colour's dB per octave.
    np.testing.assert_allclose(np.diff(10 * np.log10(octaves)), db_per_octave, atol=0.3)
