"""The stationary-floor measure of ``scripts/quiet_band.py``, on signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from restorelab.audio import WORKING_RATE
from scripts.quiet_band import measure


@pytest.mark.parametrize("channels, left", [(1, 1 / np.e), (2, 2 / np.e**2)])
def test_white_noise_is_all_floor(channels, left):
    # Removing a floor equal to the mean power from cells whose power is exponential (one channel)
    # leaves E[max(X - 1, 0)] = 1/e of it; averaged over two channels (Gamma(2, 1/2)), 2/e^2. The
    # bias scaling is what makes the estimated floor the mean. A loud low tone that swells and fades
    # picks the quiet frames, as music does, not the noise.
    t = np.arange(20 * WORKING_RATE) / WORKING_RATE
    tone = np.sin(2 * np.pi * 300 * t) * (0.2 + 0.8 * np.sin(2 * np.pi * 0.3 * t) ** 2)
    noise = np.random.default_rng(1).standard_normal((channels, t.size)) * 0.01
    m = measure((tone + noise).astype(np.float32))
    assert m["floor_db"] == pytest.approx(-10 * np.log10(left), abs=0.2)


def test_a_band_that_comes_and_goes_has_little_floor():
    # The high band sounds in bursts that follow the low band (music-like): the quiet frames hold
    # the quiet ends of the bursts, over a floor 60 dB down, and the two bands move together.
    rng = np.random.default_rng(2)
    t = np.arange(20 * WORKING_RATE) / WORKING_RATE
    envelope = 0.01 + np.sin(2 * np.pi * 0.1 * t) ** 2
    low = np.sin(2 * np.pi * 2000 * t) * envelope
    high = rng.standard_normal(t.size) * envelope * 0.1
    audio = np.stack([low + high] * 2).astype(np.float32) + 1e-4 * rng.standard_normal((2, t.size)).astype(np.float32)
    m = measure(audio)
    assert m["floor_db"] < 1.0
    assert m["comodulation"] > 0.5
