"""The unprocessed input: the control in every comparison."""

from __future__ import annotations

import numpy as np

from restorers.base import Restorer


class Passthrough(Restorer):
    """``y = x``. Listed so that the input is rated and measured like any restorer."""

    name = "passthrough"
    description = "The input itself, unchanged (the control in every comparison)."
    context_s = 0.0

    def _process(self, audio: np.ndarray, sample_rate: int, fitted: None) -> np.ndarray:
        return audio
