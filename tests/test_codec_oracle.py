"""The ceilings of ``scripts/codec_oracle.py``, on signals with known answers."""

from __future__ import annotations

import numpy as np

from restorelab.audio import WORKING_RATE
from restorelab.dsp import Stft
from scripts.codec_oracle import oracles


def test_the_oracle_gain_undoes_a_level_change_within_its_range():
    # A coder that halved every cell: the clean magnitude over the coded one is 2, the top of the
    # mask's range, so both oracles give back the clean clip.
    clean = (np.random.default_rng(0).standard_normal((2, WORKING_RATE)) * 0.1).astype(np.float32)
    for name, audio in oracles(clean, clean / 2).items():
        np.testing.assert_allclose(audio, clean, atol=1e-5, err_msg=name)


def test_only_the_fill_gives_back_cells_the_coder_emptied():
    # A coder that kept the clip but silenced every cell from 8 kHz up, save a residue 40 dB down:
    # a gain clipped at 2 can lift that residue by 6 dB only; the fill restores the clean magnitude.
    clean = (np.random.default_rng(1).standard_normal((1, WORKING_RATE)) * 0.1).astype(np.float32)
    stft = Stft(2048, 512)
    spec = stft.forward(clean)
    high = stft.bin_frequencies_hz(WORKING_RATE) >= 8000.0
    spec[..., high] *= 0.01
    coded = stft.inverse(spec, clean.shape[-1])

    def high_band_error_db(audio):
        error = np.abs(stft.forward(audio)[..., high]) - np.abs(stft.forward(clean)[..., high])
        return 10 * np.log10(np.sum(error ** 2) / np.sum(np.abs(stft.forward(clean)[..., high]) ** 2))

    rows = oracles(clean, coded)
    assert high_band_error_db(rows["oracle gain"]) > -1  # lifted to 0.02 of the magnitude: still almost all missing
    assert high_band_error_db(rows["oracle gain and fill"]) < -20  # what is left: the re-analysis of a coded STFT
