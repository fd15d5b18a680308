"""Full-band spectral gating with noisereduce: the usual denoising baseline."""

from __future__ import annotations

from dataclasses import dataclass

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
    noise_window_s: float = 1.0
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


def quietest_window(audio: np.ndarray, window: int) -> np.ndarray:
    """The contiguous ``window`` samples with the lowest RMS over all channels.

    Candidates start every tenth of a window; returns ``[channels, window]``
    (the whole input when it is not longer than ``window``).
    """
    n = audio.shape[-1]
    if window >= n:
        return audio
    step = max(1, window // 10)
    energy = np.cumsum(np.concatenate([[0.0], np.sum(np.square(audio, dtype=np.float64), axis=0)]))
    starts = np.arange(0, n - window + 1, step)
    best = int(starts[np.argmin(energy[starts + window] - energy[starts])])
    return audio[:, best : best + window]


def spectral_gate(audio: np.ndarray, sample_rate: int, params: SpectralGateParams) -> np.ndarray:
    """Gate ``[channels, samples]`` with noisereduce; returns float64 of the same shape."""
    import noisereduce

    n = audio.shape[-1]
    rng = np.random.default_rng(0)
    noisy = audio.astype(np.float64) + _DITHER_RMS * rng.standard_normal(audio.shape)
    hop = params.n_fft // 4
    # noisereduce rejects smoothing narrower than one bin or one hop.
    freq_smooth = max(params.freq_mask_smooth_hz, 2 * sample_rate / params.n_fft)
    time_smooth = max(params.time_mask_smooth_ms, 1000.0 * hop / sample_rate + 1e-6)
    noise_sample = None
    if params.stationary and params.noise_window_s > 0:
        noise_sample = quietest_window(noisy, int(round(params.noise_window_s * sample_rate)))
    out = noisereduce.reduce_noise(
        y=noisy,
        sr=sample_rate,
        y_noise=noise_sample,
        stationary=params.stationary,
        prop_decrease=params.prop_decrease,
        n_std_thresh_stationary=params.n_std_thresh,
        time_constant_s=params.time_constant_s,
        freq_mask_smooth_hz=freq_smooth,
        time_mask_smooth_ms=time_smooth,
        n_fft=params.n_fft,
        chunk_size=n,  # the restorer base already chunks long inputs
        padding=params.n_fft,
        clip_noise_stationary=False,
    )
    return np.asarray(out, dtype=np.float64).reshape(audio.shape)


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

    def _process(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return spectral_gate(audio, sample_rate, self.params).astype(np.float32)
