"""Spectral gating of the high band only, recombined with the untouched low band."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from restorelab.dsp import lowpass_fir, split_bands
from restorers.base import Restorer
from restorers.spectral_gate import SpectralGateParams, quietest_window, spectral_gate


@dataclass(frozen=True)
class SpectralGateHFParams(SpectralGateParams):
    """Spectral-gate knobs plus the crossover.

    Attributes:
        crossover_hz: the band at and above this is gated; below it the
            signal passes untouched. Lower reaches more hiss but risks dulling
            the presence region of voices and instruments.
        transition_hz: width of the linear-phase crossover's transition band.
    """

    crossover_hz: float = 6000.0
    transition_hz: float = 1000.0

    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        **SpectralGateParams.RANGES,
        "crossover_hz": (500, 20000),
        "transition_hz": (10, 10000),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crossover_hz <= 0:
            raise ValueError(f"crossover_hz must be positive, got {self.crossover_hz}")
        if not 0 < self.transition_hz < self.crossover_hz:
            raise ValueError(f"transition_hz must be in (0, crossover_hz), got {self.transition_hz}")


class SpectralGateHF(Restorer):
    """noisereduce spectral gating applied only to the band at or above 6 kHz.

    Method: ``x = low + high`` with ``low = h * x`` (zero-phase linear-phase FIR
    low-pass at ``crossover_hz``) and ``high = x - low``, so the split is
    exactly complementary; ``y = low + gate(high)``. With the gate disabled
    (``prop_decrease = 0``) the output is the input.

    Trade-off: as for ``spectral_gate``, but the music's body below the
    crossover can never be gated, which is where full-band gating does its
    audible damage; hiss below the crossover stays.

    Reference: T. Sainburg, "noisereduce" (2019). Acting only on the band
    where hiss dominates is the idea of single-ended hiss reducers.
    """

    name = "spectral_gate_hf"
    description = "Spectral gating (noisereduce's algorithm) of the band above 6 kHz; the low band is untouched."
    Params = SpectralGateHFParams
    context_s = 2.0

    def _fit(self, audio: np.ndarray, sample_rate: int) -> np.ndarray | None:
        """The noise sample: the high band of the input's quietest ``noise_window_s`` up there."""
        p = self.params
        if not p.stationary or p.noise_window_s == 0 or p.crossover_hz >= sample_rate / 2:
            return None
        n = audio.shape[-1]
        margin = len(lowpass_fir(p.crossover_hz, sample_rate, p.transition_hz))

        def high_band(start: int, stop: int) -> np.ndarray:
            lo, hi = max(start - margin, 0), min(stop + margin, n)
            high = split_bands(audio[:, lo:hi], p.crossover_hz, sample_rate, p.transition_hz)[1]
            return high[:, start - lo : stop - lo]

        window = int(round(p.noise_window_s * sample_rate))
        spans = self.blocks(n, sample_rate, multiple=max(1, window // 10))
        return quietest_window(high_band, n, window, spans)

    def _process(self, audio: np.ndarray, sample_rate: int, fitted: np.ndarray | None) -> np.ndarray:
        p = self.params
        if p.crossover_hz >= sample_rate / 2:
            return audio
        low, high = split_bands(audio, p.crossover_hz, sample_rate, p.transition_hz)
        return (low + spectral_gate(high.astype(np.float32), sample_rate, p, fitted)).astype(np.float32)
