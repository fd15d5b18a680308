"""Full-band spectral gating with noisereduce: the usual denoising baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from restorers.base import Restorer, RestorerParams

# Gating divides by smoothed magnitudes, which are exactly zero in digital
# silence. A seeded dither 240 dB below full scale keeps every ratio finite and
# vanishes when the result is stored as float32 or any integer format.
_DITHER_RMS = 1e-12


@dataclass(frozen=True)
class SpectralGateParams(RestorerParams):
    """Knobs of noisereduce's spectral gate.

    Attributes:
        stationary: estimate one noise threshold per frequency from the whole
            clip (right for steady hiss) instead of tracking a moving floor
            (follows changing noise, but also eats sustained notes).
        prop_decrease: how far gated bins are pulled down (1 = removed);
            lower keeps more ambience and fewer gating artefacts.
        n_std_thresh: stationary threshold in standard deviations above the
            mean level per frequency; higher gates more.
        time_constant_s: smoothing of the non-stationary noise floor.
        freq_mask_smooth_hz: mask smoothing across frequency (less musical noise,
            coarser gating). noisereduce's 500 Hz, chosen for speech, averages an
            isolated harmonic's mask with its gated neighbours and pulls
            sustained notes down by several dB; 100 Hz (5 bins) does not.
        time_mask_smooth_ms: mask smoothing across time.
        noise_window_s: length of the quietest contiguous stretch of the clip
            used as the noise sample (as one selects a quiet passage in an
            editor); 0 uses the whole clip, noisereduce's own default, which
            takes steady musical tones for noise.
        n_fft: STFT size (at 44.1 kHz 2048 resolves 21.5 Hz).
    """

    stationary: bool = True
    prop_decrease: float = 0.8
    n_std_thresh: float = 1.5
    time_constant_s: float = 2.0
    freq_mask_smooth_hz: float = 100.0
    time_mask_smooth_ms: float = 50.0
    noise_window_s: float = 0.25
    n_fft: int = 2048

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.prop_decrease <= 1.0:
            raise ValueError(f"prop_decrease must be in [0, 1], got {self.prop_decrease}")
        if self.time_constant_s <= 0:
            raise ValueError(f"time_constant_s must be positive, got {self.time_constant_s}")
        if self.n_fft < 256 or self.n_fft & (self.n_fft - 1):
            raise ValueError(f"n_fft must be a power of two >= 256, got {self.n_fft}")
        if self.freq_mask_smooth_hz <= 0 or self.time_mask_smooth_ms <= 0:
            raise ValueError("freq_mask_smooth_hz and time_mask_smooth_ms must be positive")
        if self.noise_window_s < 0:
            raise ValueError(f"noise_window_s must be >= 0 (0 = whole clip), got {self.noise_window_s}")


def quietest_window(band: Callable[[int, int], np.ndarray], n_samples: int, window: int,
                    spans: Iterable[tuple[int, int]]) -> np.ndarray:
    """The contiguous ``window`` samples with the lowest energy over all channels.

    Args:
        band: ``band(start, stop)`` returns the (possibly filtered) signal over
            that span, ``[channels, stop - start]``.
        n_samples: length of the signal.
        window: length of the stretch to find.
        spans: blocks covering the signal, each a multiple of ``window // 10``
            long, so the search runs in bounded memory.

    Returns:
        ``band`` over the quietest stretch; candidates start every tenth of a
        window (the whole signal when it is not longer than ``window``).
    """
    if window >= n_samples:
        return band(0, n_samples)
    step = max(1, window // 10)
    energies = []
    for start, stop in spans:
        power = np.sum(np.square(band(start, stop), dtype=np.float64), axis=0)
        steps = -(-power.size // step)
        power = np.pad(power, (0, steps * step - power.size))
        energies.append(power.reshape(steps, step).sum(axis=1))
    energy = np.concatenate(energies)
    per_window = window // step
    cumulative = np.concatenate([[0.0], np.cumsum(energy)])
    totals = cumulative[per_window:] - cumulative[:-per_window]
    last_start = (n_samples - window) // step
    best = int(np.argmin(totals[: last_start + 1])) * step
    return band(best, best + window)


def spectral_gate(audio: np.ndarray, sample_rate: int, params: SpectralGateParams,
                  noise_sample: np.ndarray | None) -> np.ndarray:
    """Gate ``[channels, samples]`` with noisereduce; returns float64 of the same shape.

    ``noise_sample`` gives the stationary gate its noise statistics; ``None``
    lets noisereduce take them from the signal itself.

    noisereduce smooths its mask against zeros beyond the spectrogram's edges,
    which would pull down the first and last frames; the clip is therefore
    reflected at both ends first and the padding cut away afterwards.
    """
    import noisereduce

    if params.prop_decrease == 0.0:
        return audio.astype(np.float64)
    n = audio.shape[-1]
    pad = min(4 * params.n_fft, n - 1)
    rng = np.random.default_rng(0)
    padded = np.pad(audio.astype(np.float64), ((0, 0), (pad, pad)), mode="reflect")
    padded += _DITHER_RMS * rng.standard_normal(padded.shape)
    hop = params.n_fft // 4
    # noisereduce rejects smoothing narrower than one bin or one hop.
    freq_smooth = max(params.freq_mask_smooth_hz, 2 * sample_rate / params.n_fft)
    time_smooth = max(params.time_mask_smooth_ms, 1000.0 * hop / sample_rate + 1e-6)
    if noise_sample is not None:
        noise_sample = noise_sample.astype(np.float64) + _DITHER_RMS * rng.standard_normal(noise_sample.shape)
    out = noisereduce.reduce_noise(
        y=padded,
        sr=sample_rate,
        y_noise=noise_sample,
        stationary=params.stationary,
        prop_decrease=params.prop_decrease,
        n_std_thresh_stationary=params.n_std_thresh,
        time_constant_s=params.time_constant_s,
        freq_mask_smooth_hz=freq_smooth,
        time_mask_smooth_ms=time_smooth,
        n_fft=params.n_fft,
        chunk_size=padded.shape[-1],  # the restorer base already chunks long inputs
        padding=params.n_fft,
        clip_noise_stationary=False,
    )
    return np.asarray(out, dtype=np.float64).reshape(padded.shape)[:, pad : pad + n]


class SpectralGate(Restorer):
    """Spectral gating over the full band (noisereduce).

    Method: ``Y(t,f) = X(t,f) * (1 - p + p * M(t,f))`` where the mask ``M`` is
    1 for bins above a per-frequency noise threshold, smoothed over time and
    frequency. Stationary: the threshold is ``mean + k*std`` of the dB
    spectrogram of a noise sample, here the quietest ``noise_window_s`` of the
    clip; non-stationary: a time-smoothed floor of the clip itself.

    Trade-off: a high ``prop_decrease`` or threshold removes more hiss but
    gates quiet musical detail (reverb tails, cymbal decays) and can leave
    "musical noise"; mask smoothing hides that at the cost of precision.

    Reference: T. Sainburg, "noisereduce" (2019), after the Audacity noise
    reduction effect; T. Sainburg et al., PLoS Comput Biol 16(10), 2020.
    """

    name = "spectral_gate"
    description = "noisereduce spectral gating over the full band (the usual baseline)."
    Params = SpectralGateParams
    context_s = 2.0

    def _fit(self, audio: np.ndarray, sample_rate: int) -> np.ndarray | None:
        """The noise sample: the quietest ``noise_window_s`` of the whole input."""
        p = self.params
        if not p.stationary or p.noise_window_s == 0:
            return None
        window = int(round(p.noise_window_s * sample_rate))
        spans = self.blocks(audio.shape[-1], sample_rate, multiple=max(1, window // 10))
        return quietest_window(lambda a, b: audio[:, a:b], audio.shape[-1], window, spans)

    def _process(self, audio: np.ndarray, sample_rate: int, fitted: np.ndarray | None) -> np.ndarray:
        return spectral_gate(audio, sample_rate, self.params, fitted).astype(np.float32)
