"""The ceilings of ``scripts/bwe_oracle.py``, on signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from restorelab.audio import WORKING_RATE
from restorelab.dsp import lowpass_fir, zero_phase_filter
from scripts.bwe_oracle import ORACLE_BANDS, band_level_db, oracles, papers_lsd


def test_papers_lsd_reads_a_level_change_in_decades():
    audio = np.random.default_rng(0).standard_normal((2, WORKING_RATE)).astype(np.float32)
    assert papers_lsd(audio, audio) == 0.0
    assert papers_lsd(audio, 10 * audio) == pytest.approx(2.0)  # 20 dB: two decades of power


def test_every_oracle_gives_back_the_band_that_a_copy_20_db_too_loud_has():
    # The copy is the reference's own band, 20 dB too loud: every band's energy ratio is 100, so
    # each oracle scales it back to the reference, and the output is the reference.
    rng = np.random.default_rng(1)
    t = np.arange(3 * WORKING_RATE) / WORKING_RATE
    clean = (rng.standard_normal((2, t.size)) * (0.1 + np.sin(2 * np.pi * 0.5 * t) ** 2) * 0.1).astype(np.float32)
    degraded = zero_phase_filter(clean, lowpass_fir(16000.0, WORKING_RATE, 500.0)).astype(np.float32)
    copied = degraded + 10 * (clean - degraded)
    rows = oracles(clean, degraded, copied)
    assert set(rows) == {*(f"oracle envelope, {w} bins" for w in ORACLE_BANDS), "oracle per cell"}
    for name, audio in rows.items():
        np.testing.assert_allclose(audio, clean, atol=1e-4, err_msg=name)
    assert papers_lsd(clean, degraded) > 0.5  # the band was missing


def test_band_level_reads_the_16_to_19_khz_band_alone():
    rng = np.random.default_rng(2)
    audio = rng.standard_normal((1, 2 * WORKING_RATE)).astype(np.float32)
    high = audio - zero_phase_filter(audio, lowpass_fir(15000.0, WORKING_RATE, 500.0)).astype(np.float32)
    doubled = band_level_db(audio, audio + high, WORKING_RATE)  # twice the amplitude in the band
    assert doubled == pytest.approx(10 * np.log10(4), abs=0.05)
    assert band_level_db(audio, audio - high, WORKING_RATE) < -40  # the band gone
