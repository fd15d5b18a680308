"""Structural identities of the shared signal-processing blocks."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SR, band_level_db, band_limited_noise
from restorelab import dsp as D
from restorelab.dsp import Stft, estimate_cutoff_hz, long_term_power, split_bands


@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (2048, 441), (1024, 256), (512, 128), (256, 128)])
@pytest.mark.parametrize("n", [1, 100, 4410, 44101])
def test_stft_round_trip(n_fft, hop, n, rng):
    x = rng.standard_normal((2, n)).astype(np.float32)
    stft = Stft(n_fft, hop)
    spec = stft.forward(x)
    assert spec.shape == (2, stft.n_frames(n), n_fft // 2 + 1)
    np.testing.assert_allclose(stft.inverse(spec, n), x, atol=2e-6)


def test_stft_matches_direct_dft(rng):
    """Frame t is the windowed DFT of the zero-padded signal centred on t * hop."""
    x = rng.standard_normal(3000).astype(np.float32)
    stft = Stft(256, 64)
    spec = stft.forward(x)
    padded = np.concatenate([np.zeros(128), x, np.zeros(256)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(256) / 256)
    for t in (0, 5, 20, spec.shape[0] - 1):
        frame = padded[t * 64 : t * 64 + 256] * window
        np.testing.assert_allclose(spec[t], np.fft.rfft(frame), atol=1e-3)


def test_stft_sine_amplitude():
    """A full-scale sine on a bin centre reads n_fft / 4 (unnormalised Hann)."""
    stft = Stft(2048, 512)
    k = 100
    t = np.arange(SR) / SR
    x = np.sin(2 * np.pi * k * SR / 2048 * t)
    spec = stft.forward(x)
    assert np.abs(spec[10, k]) == pytest.approx(2048 / 4, rel=1e-3)


@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (512, 128)])
def test_stft_of_a_range_of_frames_is_that_slice_of_the_whole(n_fft, hop, rng):
    """Frames [start, stop) alone, bit for bit: the first, the last, one inside, and the whole."""
    x = rng.standard_normal((2, 10_000)).astype(np.float32)
    stft = Stft(n_fft, hop)
    whole = stft.forward(x)
    frames = stft.n_frames(x.shape[-1])
    for start, stop in [(0, 1), (0, 3), (5, 9), (frames - 2, frames), (0, frames)]:
        assert np.array_equal(stft.forward(x, start, stop), whole[..., start:stop, :])
    with pytest.raises(ValueError, match=rf"^frames \[3, {frames + 1}\) are not within the {frames} frames "
                                         r"of 10000 samples$"):
        stft.forward(x, 3, frames + 1)


def test_stft_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"hop must be in \(0, n_fft/2\], got 2048"):
        Stft(2048, 2048)
    with pytest.raises(ValueError, match="n_fft must be an even number >= 16, got 1001"):
        Stft(1001, 100)


def test_split_bands_is_complementary_and_splits(rng):
    x = rng.standard_normal((2, SR)).astype(np.float32)
    low, high = split_bands(x, 6000.0, SR, 1000.0)
    np.testing.assert_allclose(low + high, x, atol=1e-12)
    # 100 dB stop band: away from the clip's ends (the FIR's 3 ms half-length),
    # each band is empty to the measurement's -90 dB on the other side (from
    # 100 Hz: Welch removes each segment's mean, leaving no reference at DC).
    inner = slice(1000, -1000)
    low, high, x = low[:, inner], high[:, inner], x[:, inner]
    assert band_level_db(low, x, 6600.0, 20000.0) < -85
    assert band_level_db(high, x, 100.0, 5400.0) < -85
    assert band_level_db(low, x, 0.0, 5000.0) == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize("cutoff", [8000.0, 11000.0, 16000.0, 19500.0])
def test_estimate_cutoff_finds_a_band_limit(cutoff, rng):
    x = band_limited_noise(3.0, cutoff, rng, channels=2)
    x = x + 1e-5 * rng.standard_normal(x.shape).astype(np.float32)  # a -100 dB floor
    power = long_term_power(Stft().forward(x))
    assert estimate_cutoff_hz(power, SR) == pytest.approx(cutoff, abs=300)


def test_cliff_onset_is_where_a_low_pass_starts_falling(rng):
    """A 700 Hz wide transition (flat to 15.5 kHz, -6 dB at 15.85 kHz, -100 dB from 16.2 kHz):
    the floor-based cutoff lands in the stop band, the onset (6 dB down) at the -6 dB point."""
    from restorelab.dsp import cliff_onset_hz, lowpass_fir, zero_phase_filter

    noise = band_limited_noise(4.0, SR / 2, rng)
    x = zero_phase_filter(noise, lowpass_fir(15850.0, SR, 700.0))
    x = x + 1e-7 * rng.standard_normal(x.shape).astype(np.float32)  # a -140 dB floor
    power = long_term_power(Stft().forward(x))
    cutoff = estimate_cutoff_hz(power, SR)
    onset = cliff_onset_hz(power, cutoff, SR)
    assert cutoff > 16100
    assert onset == pytest.approx(15850.0, abs=100)
    # A brick wall has no transition: the onset is the cutoff.
    brick = band_limited_noise(4.0, 16000.0, rng) + 1e-7 * rng.standard_normal((1, 4 * SR)).astype(np.float32)
    power = long_term_power(Stft().forward(brick))
    assert cliff_onset_hz(power, estimate_cutoff_hz(power, SR), SR) == pytest.approx(16000.0, abs=120)


def test_estimate_cutoff_full_band_and_silence(rng):
    white = rng.standard_normal((1, SR)).astype(np.float32)
    assert estimate_cutoff_hz(long_term_power(Stft().forward(white)), SR) == SR / 2
    assert estimate_cutoff_hz(np.zeros(1025), SR) == SR / 2


def test_cliff_depth_tells_a_codec_cutoff_from_a_gentle_roll_off(rng):
    from restorelab.dsp import cliff_depth_db

    brick = band_limited_noise(3.0, 16000.0, rng) + 1e-5 * rng.standard_normal((1, 3 * SR)).astype(np.float32)
    assert cliff_depth_db(long_term_power(Stft().forward(brick)), 16000.0, SR) > 40
    # Second-order low-pass at 8 kHz: about 12 dB per octave, so 1.5 dB over these 1.2 kHz at 12 kHz.
    import scipy.signal
    sos = scipy.signal.butter(2, 8000.0, fs=SR, output="sos")
    gentle = scipy.signal.sosfilt(sos, rng.standard_normal((1, 3 * SR))).astype(np.float32)
    assert cliff_depth_db(long_term_power(Stft().forward(gentle)), 12000.0, SR) < 5


# (1501, 40) and (40, 1501): odd lengths over several blocks of the filter's lanes, either axis.
@pytest.mark.parametrize("shape", [(200, 70), (70, 200), (1, 5), (3, 3), (130, 1), (1501, 40), (40, 1501)])
@pytest.mark.parametrize("size", [1, 3, 17])
@pytest.mark.parametrize("axis", [0, 1])
def test_median_filter_equals_scipy_with_mirrored_edges(shape, size, axis, rng):
    import scipy.ndimage

    x = rng.standard_normal(shape).astype(np.float32)
    footprint = (size, 1) if axis == 0 else (1, size)
    expected = scipy.ndimage.median_filter(x, size=footprint, mode="reflect")
    assert np.array_equal(D.median_filter(x, size, axis), expected)


@pytest.mark.parametrize("size", [1, 3, 5, 9, 17])
def test_the_median_network_selects_the_median_of_every_0_1_input(size):
    # The 0-1 principle: a comparator network that selects the k-th smallest of every sequence of
    # zeros and ones selects it of every sequence. All 2**size such sequences, at once.
    bits = (np.arange(2**size)[:, None] >> np.arange(size)) & 1
    lanes = [bits[:, k].copy() for k in range(size)]
    for i, j in D.selection_network(size, (size // 2,)):
        lanes[i], lanes[j] = np.minimum(lanes[i], lanes[j]), np.maximum(lanes[i], lanes[j])
    assert np.array_equal(lanes[size // 2], (bits.sum(axis=1) > size // 2).astype(int))


@pytest.mark.parametrize("half", [1, 2, 4, 8])
def test_the_pair_network_selects_the_two_middle_values_of_every_0_1_input(half):
    # The running median's shared part: of 2h values, the h-th and h+1-th smallest (indices h - 1
    # and h). The k-th smallest of zeros and ones is 1 when at most k of them are zeros.
    size = 2 * half
    bits = (np.arange(2**size)[:, None] >> np.arange(size)) & 1
    lanes = [bits[:, k].copy() for k in range(size)]
    for i, j in D.selection_network(size, (half - 1, half)):
        lanes[i], lanes[j] = np.minimum(lanes[i], lanes[j]), np.maximum(lanes[i], lanes[j])
    ones = bits.sum(axis=1)
    assert np.array_equal(lanes[half - 1], (ones >= half + 1).astype(int))
    assert np.array_equal(lanes[half], (ones >= half).astype(int))
    assert len(D.selection_network(16, (7, 8))) == 53  # the filter's docstring counts on it


def test_median_filter_known_answer_and_bad_sizes():
    x = np.array([[5.0, 1.0, 4.0, 2.0, 3.0]])
    # Windows of three, the edges mirrored (5 | 5 1 4 2 3 | 3): medians 5, 4, 2, 3, 3.
    assert D.median_filter(x, 3, axis=1).tolist() == [[5.0, 4.0, 2.0, 3.0, 3.0]]
    with pytest.raises(ValueError, match="size must be odd and x 2-D, got size 4"):
        D.median_filter(x, 4, axis=1)
