"""Full-band MCRA noise tracking with a decision-directed Wiener gain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from restorelab.dsp import Stft
from restorers.base import Restorer, RestorerParams, check_fft_size

_TINY = 1e-20


@dataclass(frozen=True)
class McraWienerParams(RestorerParams):
    """Knobs of MCRA noise estimation and the Wiener gain.

    Attributes:
        gain_floor_db: lowest gain applied; deeper removes more noise but
            brings musical noise and dulls reverb tails.
        dd_alpha: decision-directed smoothing of the a-priori SNR; closer to 1
            gives less musical noise but smears transients.
        min_window_s: window of the minimum search; longer protects held notes
            from being taken for noise but follows rising noise more slowly.
        min_search_bins: the minimum is also taken over this many neighbouring
            bins. Hiss is smooth across frequency and music is peaky, so the
            gaps between partials reveal the floor even where an instrument
            (a bass line, a pad) never stops; 1 is plain MCRA, which takes such
            an instrument for noise.
        presence_ratio: smoothed power over its minimum above which a bin is
            taken to hold signal (delta in MCRA).
        power_smoothing: recursive smoothing of the power (alpha_s).
        noise_smoothing: noise update smoothing while no signal (alpha_d).
        presence_smoothing: smoothing of the presence probability (alpha_p).
        n_fft: STFT size; hop is a quarter of it.
    """

    gain_floor_db: float = -15.0
    dd_alpha: float = 0.98
    min_window_s: float = 3.0
    min_search_bins: int = 9
    presence_ratio: float = 5.0
    power_smoothing: float = 0.8
    noise_smoothing: float = 0.95
    presence_smoothing: float = 0.2
    n_fft: int = 2048

    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        **RestorerParams.RANGES,
        "gain_floor_db": (-80, 0),
        "dd_alpha": (0, 0.999),
        "min_window_s": (0.1, 30),
        "min_search_bins": (1, 101),
        "presence_ratio": (1, 100),
        "power_smoothing": (0, 0.999),
        "noise_smoothing": (0, 0.999),
        "presence_smoothing": (0, 0.999),
        "n_fft": (256, 16384),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gain_floor_db > 0:
            raise ValueError(f"gain_floor_db must be <= 0, got {self.gain_floor_db}")
        for name in ("dd_alpha", "power_smoothing", "noise_smoothing", "presence_smoothing"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.min_window_s <= 0:
            raise ValueError(f"min_window_s must be positive, got {self.min_window_s}")
        if self.min_search_bins < 1:
            raise ValueError(f"min_search_bins must be >= 1, got {self.min_search_bins}")
        if self.presence_ratio <= 1:
            raise ValueError(f"presence_ratio must be > 1, got {self.presence_ratio}")
        check_fft_size(self.n_fft)


def mcra_noise_presence(power: np.ndarray, hop_s: float,
                        p: McraWienerParams) -> tuple[np.ndarray, np.ndarray]:
    """Signal-presence probability per bin from minima-controlled smoothing.

    Shape: ``[channels, frames, bins] ->`` (presence, tracked minimum), both
    the same shape. The smoothed power is a
    3-bin frequency average followed by first-order recursive averaging in time;
    its minimum is searched over a centred window of ``min_window_s`` (the clip
    is processed offline, so the window may look ahead) and ``min_search_bins``
    neighbouring bins.
    """
    import scipy.ndimage
    import scipy.signal

    local = scipy.ndimage.uniform_filter1d(power, size=3, axis=-1, mode="nearest")
    a = p.power_smoothing
    smoothed = scipy.signal.lfilter([1 - a], [1, -a], local, axis=-2, zi=a * local[..., :1, :])[0]
    window = max(1, int(round(p.min_window_s / hop_s)))
    minimum = scipy.ndimage.minimum_filter1d(smoothed, size=window, axis=-2, mode="nearest")
    minimum = scipy.ndimage.minimum_filter1d(minimum, size=p.min_search_bins, axis=-1, mode="nearest")
    # The unsmoothed power also signals presence, so that an onset is not
    # averaged into the noise during the frames the smoothing takes to rise.
    threshold = p.presence_ratio * np.maximum(minimum, _TINY)
    present = ((smoothed > threshold) | (local > threshold)).astype(np.float64)
    b = p.presence_smoothing
    return scipy.signal.lfilter([1 - b], [1, -b], present, axis=-2), minimum


def mcra_wiener_gain(power: np.ndarray, presence: np.ndarray, initial_noise: np.ndarray,
                     p: McraWienerParams) -> np.ndarray:
    """Noise tracking and decision-directed Wiener gain, frame by frame.

    ``lambda(l) = a(l) lambda(l-1) + (1 - a(l)) |X(l)|^2`` with
    ``a = alpha_d + (1 - alpha_d) p``;
    ``xi = alpha_dd |S(l-1)|^2 / lambda(l-1) + (1 - alpha_dd) max(gamma - 1, 0)``,
    ``G = max(xi / (1 + xi), G_min)``. ``initial_noise`` ([channels, bins])
    starts the recursion; the tracked minimum is a safe choice where the clip
    opens on music.
    """
    floor = 10.0 ** (p.gain_floor_db / 20.0)
    smoothing = p.noise_smoothing + (1.0 - p.noise_smoothing) * presence
    noise = np.maximum(initial_noise, _TINY)
    previous_clean_snr = np.ones_like(noise)
    gain = np.empty_like(power)
    for frame in range(power.shape[-2]):
        a = smoothing[..., frame, :]
        current = power[..., frame, :]
        noise = a * noise + (1.0 - a) * current
        noise = np.maximum(noise, _TINY)
        posterior = current / noise
        prior = p.dd_alpha * previous_clean_snr + (1.0 - p.dd_alpha) * np.maximum(posterior - 1.0, 0.0)
        g = np.maximum(prior / (1.0 + prior), floor)
        gain[..., frame, :] = g
        previous_clean_snr = g * g * posterior
    return gain


class McraWiener(Restorer):
    """MCRA noise estimate with a decision-directed Wiener gain, full band.

    Method: the noise PSD is recursively averaged where the minima-controlled
    presence probability ``p`` says no signal is present; the gain is the
    Wiener rule ``G = xi / (1 + xi)`` on the decision-directed a-priori SNR
    ``xi``, floored at ``gain_floor_db``; ``Y = G X`` with the input phase.

    Trade-off: a deeper gain floor removes more noise but produces musical
    noise; a longer minimum window keeps sustained notes from being estimated
    as noise but reacts more slowly to changing noise. Searching the minimum
    across neighbouring bins as well (a departure from speech MCRA) keeps
    continuous bass lines and pads out of the noise estimate.

    Reference: I. Cohen and B. Berdugo, "Noise estimation by minima controlled
    recursive averaging for robust speech enhancement", IEEE SPL 9(1), 2002;
    Y. Ephraim and D. Malah, IEEE TASSP 32(6), 1984 (decision-directed rule).
    """

    name = "mcra_wiener"
    description = "MCRA noise tracking with a decision-directed Wiener gain (floor -15 dB), full band."
    Params = McraWienerParams

    @property
    def context_s(self) -> float:  # type: ignore[override]
        return self.params.min_window_s + 1.0

    def _process(self, audio: np.ndarray, sample_rate: int, fitted: None) -> np.ndarray:
        p = self.params
        stft = Stft(p.n_fft, p.n_fft // 4)
        spec = stft.forward(audio)
        power = np.square(np.abs(spec), dtype=np.float64)
        presence, minimum = mcra_noise_presence(power, stft.hop / sample_rate, p)
        gain = mcra_wiener_gain(power, presence, minimum[..., 0, :], p)
        return stft.inverse(spec * gain.astype(np.float32), audio.shape[-1])
