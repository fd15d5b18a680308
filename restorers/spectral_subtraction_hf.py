"""Magnitude spectral subtraction on the band above 6 kHz."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from restorelab.dsp import Stft
from restorers.base import Restorer, RestorerParams, check_fft_size


@dataclass(frozen=True)
class SpectralSubtractionHFParams(RestorerParams):
    """Knobs of high-band spectral subtraction.

    Attributes:
        alpha: over-subtraction factor; above 1 removes more hiss but leaves
            more "musical noise" and thins the top end.
        beta: spectral floor as a fraction of the input magnitude; higher masks
            musical noise with a little residual hiss.
        cutoff_hz: bins at or above this are processed; the rest pass untouched.
        noise_quantile: fraction of frames, the quietest in the high band, whose
            mean magnitude is the noise estimate N.
        n_fft: STFT size; hop is a quarter of it.
    """

    alpha: float = 1.2
    beta: float = 0.04
    cutoff_hz: float = 6000.0
    noise_quantile: float = 0.1
    n_fft: int = 2048

    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        **RestorerParams.RANGES,
        "alpha": (0, 10),
        "beta": (0, 1),
        "cutoff_hz": (500, 20000),
        "noise_quantile": (0.01, 0.5),
        "n_fft": (256, 16384),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.cutoff_hz < 0:
            raise ValueError(f"cutoff_hz must be >= 0, got {self.cutoff_hz}")
        if not 0.0 < self.noise_quantile <= 1.0:
            raise ValueError(f"noise_quantile must be in (0, 1], got {self.noise_quantile}")
        check_fft_size(self.n_fft)


class SpectralSubtractionHF(Restorer):
    """High-band magnitude spectral subtraction with the input phase kept.

    Method: for bins at or above ``cutoff_hz``,
    ``|Y| = max(|X| - alpha * N, beta * |X|)``, ``angle(Y) = angle(X)``, where
    ``N`` is the mean magnitude of the quietest ``noise_quantile`` of frames.
    Bins below the cutoff are left as they are.

    Trade-off: ``alpha`` trades hiss removal against musical noise and a duller
    top; ``beta`` trades residual hiss against musical noise. The noise
    estimate assumes the hiss is steady across the clip.

    Reference: S. F. Boll, "Suppression of acoustic noise in speech using
    spectral subtraction", IEEE TASSP 27(2), 1979; M. Berouti, R. Schwartz,
    J. Makhoul, "Enhancement of speech corrupted by acoustic noise", ICASSP 1979.
    """

    name = "spectral_subtraction_hf"
    description = "Spectral subtraction (alpha 1.2, floor 0.04) of the band above 6 kHz, phase kept."
    Params = SpectralSubtractionHFParams
    context_s = 1.0

    def _band_magnitudes(self, audio: np.ndarray, sample_rate: int, spans):
        p = self.params
        stft = Stft(p.n_fft, p.n_fft // 4)
        k0 = stft.bin_index(p.cutoff_hz, sample_rate)
        for start, stop in spans:
            yield np.abs(stft.forward(audio[:, start:stop])[..., k0:])

    def _fit(self, audio: np.ndarray, sample_rate: int) -> np.ndarray | None:
        """N: the mean band magnitude of the quietest ``noise_quantile`` of all frames.

        Two passes over the input in chunk-sized blocks (frame energies, then
        the mean over the frames at or below the quantile's energy), so a long
        file needs one block's spectrogram at a time.
        """
        p = self.params
        hop = p.n_fft // 4
        if Stft(p.n_fft, hop).bin_index(p.cutoff_hz, sample_rate) >= p.n_fft // 2 + 1:
            return None
        spans = list(self.blocks(audio.shape[-1], sample_rate, multiple=hop))
        energies = np.concatenate([np.sum(np.square(m), axis=-1)
                                   for m in self._band_magnitudes(audio, sample_rate, spans)], axis=-1)
        count = max(1, int(round(p.noise_quantile * energies.shape[-1])))
        threshold = np.sort(energies, axis=-1)[:, count - 1 : count]
        total, frames = 0.0, 0
        for magnitude in self._band_magnitudes(audio, sample_rate, spans):
            quiet = np.sum(np.square(magnitude), axis=-1) <= threshold
            total = total + np.einsum("cf,cfk->ck", quiet, magnitude)
            frames = frames + quiet.sum(axis=-1)
        return (total / np.maximum(frames, 1)[:, None])[:, None, :]

    def _process(self, audio: np.ndarray, sample_rate: int, fitted: np.ndarray | None) -> np.ndarray:
        if fitted is None:
            return audio
        p = self.params
        stft = Stft(p.n_fft, p.n_fft // 4)
        k0 = stft.bin_index(p.cutoff_hz, sample_rate)
        spec = stft.forward(audio)
        band = spec[..., k0:]
        magnitude = np.abs(band)
        noise = fitted.astype(np.float32)
        target = np.maximum(magnitude - p.alpha * noise, p.beta * magnitude)
        # Scaling by |Y|/|X| keeps the phase; empty bins stay empty.
        gain = np.divide(target, magnitude, out=np.zeros_like(magnitude), where=magnitude > 0)
        spec[..., k0:] = band * gain
        return stft.inverse(spec, audio.shape[-1])
