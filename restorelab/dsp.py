"""Signal-processing building blocks shared by the restorers and the analysis.

Everything here works on arrays shaped ``[..., samples]`` and is vectorised over
the leading axes, so one call handles every channel of a clip at once.

The STFT is time-major: a spectrogram is shaped ``[..., frames, bins]``, which
keeps each frame contiguous for the FFT and makes recursions over time cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

# scipy.signal is imported in the functions that use it: importing it takes about half a second,
# and listing the restorers or printing --help must not wait for it.


@lru_cache(maxsize=16)
def hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (the one that overlap-adds to a constant)."""
    import scipy.signal

    return scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)


@dataclass(frozen=True)
class Stft:
    """A short-time Fourier transform with a Hann window and exact inverse.

    Frames are centred: the signal is zero-padded by ``n_fft // 2`` on both
    sides, so frame ``t`` is centred on sample ``t * hop``. The inverse
    overlap-adds with the same window and divides by the summed squared
    window, which reconstructs any signal exactly (to float rounding) as long as
    ``hop <= n_fft // 2``.

    Magnitudes are not normalised: a full-scale sine of amplitude 1 reads
    ``n_fft / 4`` at its bin, as with ``torch.stft`` and ``scipy.fft``.
    """

    n_fft: int = 2048
    hop: int = 512

    def __post_init__(self) -> None:
        if self.n_fft < 16 or self.n_fft % 2:
            raise ValueError(f"n_fft must be an even number >= 16, got {self.n_fft}")
        if not 0 < self.hop <= self.n_fft // 2:
            raise ValueError(f"hop must be in (0, n_fft/2], got {self.hop} for n_fft {self.n_fft}")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop + 1

    def bin_frequencies_hz(self, sample_rate: float) -> np.ndarray:
        return np.arange(self.n_bins) * (sample_rate / self.n_fft)

    def bin_index(self, frequency_hz: float, sample_rate: float) -> int:
        """First bin whose centre frequency is at or above ``frequency_hz``."""
        return int(np.clip(np.ceil(frequency_hz * self.n_fft / sample_rate), 0, self.n_bins))

    def forward(self, x: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``[..., samples]`` real -> ``[..., frames, bins]`` complex64.

        ``start`` and ``stop`` pick frames ``[start, stop)`` of the whole transform (default: all),
        with the same numbers, so a long signal can be transformed a block of frames at a time.
        """
        x = np.asarray(x, dtype=np.float32)
        stop = self.n_frames(x.shape[-1]) if stop is None else stop
        if not 0 <= start < stop <= self.n_frames(x.shape[-1]):
            raise ValueError(f"frames [{start}, {stop}) are not within the "
                             f"{self.n_frames(x.shape[-1])} frames of {x.shape[-1]} samples")
        # Frame t covers samples [t * hop - n_fft / 2, t * hop + n_fft / 2), zeros outside the signal.
        first = start * self.hop - self.n_fft // 2
        total = (stop - start - 1) * self.hop + self.n_fft
        padded = np.zeros(x.shape[:-1] + (total,), dtype=np.float32)
        lo, hi = max(first, 0), min(first + total, x.shape[-1])
        padded[..., lo - first : hi - first] = x[..., lo:hi]
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft, axis=-1)[
            ..., :: self.hop, :
        ]
        return scipy.fft.rfft(frames * hann(self.n_fft), axis=-1)

    def inverse(self, spec: np.ndarray, n_samples: int) -> np.ndarray:
        """``[..., frames, bins]`` complex -> ``[..., n_samples]`` float32."""
        window = hann(self.n_fft)
        frames = scipy.fft.irfft(spec, n=self.n_fft, axis=-1).astype(np.float32, copy=False)
        frames *= window
        n_frames = frames.shape[-2]
        total = (n_frames - 1) * self.hop + self.n_fft
        out = np.zeros(frames.shape[:-2] + (total,), dtype=np.float32)
        _overlap_add(out, frames, self.hop)
        norm = _window_square_sum(self.n_fft, self.hop, n_frames)
        half = self.n_fft // 2
        out = out[..., half : half + n_samples]
        return out / norm[half : half + n_samples]


def _overlap_add(out: np.ndarray, frames: np.ndarray, hop: int) -> None:
    """Add ``frames`` [..., T, n] into ``out`` at multiples of ``hop``.

    Frames ``r, r + k, r + 2k, ...`` with ``k = ceil(n / hop)`` never overlap one
    another, so each such group is laid down with one reshaped add.
    """
    n_frames, n = frames.shape[-2], frames.shape[-1]
    stride = -(-n // hop)
    for r in range(min(stride, n_frames)):
        group = frames[..., r::stride, :]
        count = group.shape[-2]
        span = stride * hop
        padded_len = count * span
        if span != n:
            block = np.zeros(group.shape[:-1] + (span,), dtype=group.dtype)
            block[..., :n] = group
        else:
            block = group
        flat = block.reshape(group.shape[:-2] + (padded_len,))
        start = r * hop
        stop = min(start + padded_len, out.shape[-1])
        out[..., start:stop] += flat[..., : stop - start]


@lru_cache(maxsize=8)
def _window_square_sum(n_fft: int, hop: int, n_frames: int) -> np.ndarray:
    w2 = hann(n_fft) ** 2
    total = (n_frames - 1) * hop + n_fft
    norm = np.zeros(total, dtype=np.float32)
    _overlap_add(norm[None], np.broadcast_to(w2, (1, n_frames, n_fft)), hop)
    # Only the zero-padded outer edges can fall below this; they are cut away.
    return np.maximum(norm, 1e-8)


def lowpass_fir(cutoff_hz: float, sample_rate: float, transition_hz: float = 500.0) -> np.ndarray:
    """Linear-phase (odd-length, symmetric) Kaiser low-pass with 100 dB stop band.

    Args:
        cutoff_hz: -6 dB point of the filter.
        sample_rate: in Hz.
        transition_hz: width of the transition band; narrower costs more taps.
    """
    import scipy.signal

    nyquist = sample_rate / 2
    if not 0 < cutoff_hz < nyquist:
        raise ValueError(f"cutoff_hz must be in (0, {nyquist:g}), got {cutoff_hz:g}")
    n_taps, beta = scipy.signal.kaiserord(100.0, transition_hz / nyquist)
    n_taps |= 1
    return scipy.signal.firwin(n_taps, cutoff_hz, window=("kaiser", beta), fs=sample_rate)


def zero_phase_filter(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Apply a symmetric odd-length FIR with its delay removed (output aligned)."""
    import scipy.signal

    delay = (len(taps) - 1) // 2
    y = scipy.signal.oaconvolve(x.astype(np.float64, copy=False), taps[(None,) * (x.ndim - 1)], axes=-1)
    return y[..., delay : delay + x.shape[-1]]


def split_bands(x: np.ndarray, crossover_hz: float, sample_rate: float,
                transition_hz: float = 500.0) -> tuple[np.ndarray, np.ndarray]:
    """Complementary two-band split: ``low + high == x`` (float64, exactly up to rounding).

    The low band is a zero-phase linear-phase FIR low-pass; the high band is
    the remainder, so the split itself can never colour the signal.
    """
    x64 = x.astype(np.float64, copy=False)
    low = zero_phase_filter(x64, lowpass_fir(crossover_hz, sample_rate, transition_hz))
    return low, x64 - low


def _odd_even_merge_sort(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sorting network for ``n`` (a power of two) inputs, as
    compare-exchange pairs ``(low, high)`` in the order they apply."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@lru_cache(maxsize=None)
def selection_network(size: int, ranks: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Compare-exchange pairs that leave the ``k``-th smallest of ``size`` values at index ``k``,
    for each ``k`` in ``ranks`` (0 is the smallest).

    Batcher's network for the next power of two, without the pairs that touch the padding (it
    would hold +inf and never move) or that cannot reach an output in ``ranks``.
    """
    n = 1 << max(0, (size - 1).bit_length())
    pairs = [(i, j) for i, j in _odd_even_merge_sort(n) if j < size]
    needed, kept = set(ranks), []
    for i, j in reversed(pairs):
        if i in needed or j in needed:
            kept.append((i, j))
            needed |= {i, j}
    return tuple(reversed(kept))


#: Values per lane of :func:`median_filter`'s network (64 kB of float32): the lanes of a 17-tap
#: filter stay in a core's cache while every compare-exchange goes over them.
LANE_VALUES = 1 << 14


def median_filter(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Running median of odd length ``size = 2h + 1`` along ``axis`` of a 2-D array of finite
    values, edges mirrored.

    The same numbers as ``scipy.ndimage.median_filter(x, size=(size, 1) or (1, size),
    mode="reflect")``, several times faster. Two neighbouring windows share ``2h`` values: a
    selection network (:func:`selection_network`) finds the ``h``-th and ``h+1``-th smallest of
    those, ``lo`` and ``hi``, and each window's median is its own remaining value clamped to
    ``[lo, hi]``: 53 compare-exchanges for two medians of 17 taps. The network runs in place on
    lanes of shifted copies of a block of the array (:data:`LANE_VALUES` each).
    """
    if size % 2 != 1 or x.ndim != 2:
        raise ValueError(f"size must be odd and x 2-D, got size {size} and shape {x.shape}")
    half = size // 2
    if half == 0:
        return x.copy()
    length = x.shape[axis]
    even = length + length % 2  # an odd length gets one more median, dropped at the end
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half + even - length)
    padded = np.pad(x, pad, mode="symmetric")
    out = np.empty((even, x.shape[1]) if axis == 0 else (x.shape[0], even), x.dtype)
    network = selection_network(2 * half, (half - 1, half))
    scratch = np.empty((2 * half + 1, max(LANE_VALUES, x.shape[1 - axis], even // 2)), x.dtype)
    if axis == 0:  # blocks of pairs of rows, each row whole
        step = 2 * max(1, LANE_VALUES // x.shape[1])
        for start in range(0, even, step):
            stop = min(start + step, even)
            # Windows start and start + 1 share rows start + 1 .. start + 2h.
            low, high = _select_pair(network, half, [padded[start + 1 + k:stop + 1 + k:2] for k in range(2 * half)],
                                     scratch)
            _clamp(padded[start:stop:2], low, high, out[start:stop:2])
            _clamp(padded[start + 1 + 2 * half:stop + 1 + 2 * half:2], low, high, out[start + 1:stop:2])
        return out[:length]
    step = max(1, LANE_VALUES // (even // 2))  # blocks of rows, each filtered along its length
    for start in range(0, x.shape[0], step):
        block, done = padded[start:start + step], out[start:start + step]
        low, high = _select_pair(network, half, [block[:, 1 + k:even + 1 + k:2] for k in range(2 * half)], scratch)
        _clamp(block[:, 0:even:2], low, high, done[:, 0::2])
        _clamp(block[:, 1 + 2 * half:even + 1 + 2 * half:2], low, high, done[:, 1::2])
    return out if even == length else np.ascontiguousarray(out[:, :length])


def _select_pair(network, half: int, sources: list[np.ndarray], scratch: np.ndarray):
    """The ``half``-th and ``half+1``-th smallest of ``sources`` (equal-shaped arrays), elementwise,
    by ``network`` run in place on copies of them in ``scratch`` (one lane per source, and a spare)."""
    shape, count = sources[0].shape, sources[0].size
    lanes = [scratch[k, :count].reshape(shape) for k in range(len(sources) + 1)]
    for lane, source in zip(lanes, sources):
        lane[...] = source
    spare = lanes.pop()
    for i, j in network:
        np.minimum(lanes[i], lanes[j], out=spare)
        np.maximum(lanes[i], lanes[j], out=lanes[j])
        lanes[i], spare = spare, lanes[i]
    return lanes[half - 1], lanes[half]


def _clamp(values: np.ndarray, low: np.ndarray, high: np.ndarray, out: np.ndarray) -> None:
    np.maximum(values, low, out=out)
    np.minimum(out, high, out=out)


def frame_rms(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """RMS of non-centred frames ``[..., samples] -> [..., frames]`` (at least one frame)."""
    if x.shape[-1] < frame:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (frame - x.shape[-1],), x.dtype)], axis=-1)
    windows = np.lib.stride_tricks.sliding_window_view(x, frame, axis=-1)[..., ::hop, :]
    return np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=-1))


def db(power: np.ndarray | float, floor: float = 1e-20) -> np.ndarray:
    """``10 log10(max(power, floor))``."""
    return 10.0 * np.log10(np.maximum(power, floor))


def long_term_power(spec: np.ndarray) -> np.ndarray:
    """Mean power per bin over frames and channels: ``[..., frames, bins] -> [bins]``."""
    power = np.square(np.abs(spec), dtype=np.float64)
    return power.reshape(-1, power.shape[-1]).mean(axis=0)


def smooth_bins(values: np.ndarray, width: int) -> np.ndarray:
    """Moving average over ``width`` bins (edges use the available bins)."""
    if width <= 1:
        return values
    kernel = np.ones(width) / width
    num = np.convolve(values, kernel, mode="same")
    den = np.convolve(np.ones_like(values), kernel, mode="same")
    return num / den


def _level_db(power: np.ndarray, sample_rate: float, smooth_hz: float) -> tuple[np.ndarray, float]:
    """A long-term spectrum smoothed over ``smooth_hz``, in dB, and its bin spacing in Hz."""
    bin_hz = sample_rate / 2 / (len(power) - 1)
    return db(smooth_bins(power, max(1, int(round(smooth_hz / bin_hz))))), bin_hz


def _mean_level_db(level_db: np.ndarray) -> float:
    """The level of the mean power of a run of bins given in dB."""
    return float(db(np.mean(10 ** (level_db / 10))))


def cliff_depth_db(power: np.ndarray, cutoff_hz: float, sample_rate: float,
                   smooth_hz: float = 200.0) -> float:
    """How far a long-term spectrum falls across ``cutoff_hz``, in dB.

    Mean level over the kilohertz below the cutoff minus that over 150-650 Hz
    above it. A codec's low-pass (MusicGen's at about 15.5 kHz) measures
    12-57 dB; music that merely sinks into a noise floor measures 2-8 dB.
    """
    level, bin_hz = _level_db(power, sample_rate, smooth_hz)
    k = int(round(cutoff_hz / bin_hz))
    below = level[max(0, k - int(round(1000 / bin_hz))) : k]
    above = level[k + int(round(150 / bin_hz)) : k + int(round(650 / bin_hz))]
    if below.size == 0 or above.size == 0:
        return 0.0
    return _mean_level_db(below) - _mean_level_db(above)


def cliff_onset_hz(power: np.ndarray, cutoff_hz: float, sample_rate: float, drop_db: float = 6.0,
                   search_hz: float = 1500.0, smooth_hz: float = 65.0) -> float:
    """Where the fall into an empty band begins, at or below ``cutoff_hz`` (from :func:`estimate_cutoff_hz`).

    :func:`estimate_cutoff_hz` finds where a spectrum reaches its floor; a codec's
    or resampler's low-pass starts falling a few hundred hertz lower (about 500 Hz
    for a 16 kHz brick wall, up to a kilohertz for MusicGen's). The onset is the
    upper edge of the highest bin within ``search_hz`` (at most a quarter of the
    cutoff) below the cutoff whose level is no more than ``drop_db`` under the mean
    level of the kilohertz below that search range. Bandwidth extension starts
    here, so the transition band is filled rather than left as a notch.
    """
    level, bin_hz = _level_db(power, sample_rate, smooth_hz)
    k = min(int(round(cutoff_hz / bin_hz)), len(power) - 1)
    low = max(1, k - int(round(min(search_hz, cutoff_hz / 4) / bin_hz)))
    window = level[max(0, low - int(round(1000 / bin_hz))) : low]
    if window.size == 0 or k <= low:
        return float(cutoff_hz)
    kept = np.flatnonzero(level[low:k] >= _mean_level_db(window) - drop_db)
    return float((low + kept[-1] + 1) * bin_hz if kept.size else low * bin_hz)


def estimate_cutoff_hz(power: np.ndarray, sample_rate: float, margin_db: float = 20.0,
                       floor_band_hz: float = 1000.0, smooth_hz: float = 200.0) -> float:
    """Frequency where a long-term spectrum falls into its empty-band floor.

    The floor is the median level of the top ``floor_band_hz`` below Nyquist;
    the cutoff is the upper edge of the highest bin still more than
    ``margin_db`` above it. A spectrum whose peak is not at least twice the
    margin above that floor has no empty band: the cutoff is Nyquist.

    Args:
        power: long-term power per bin, bins evenly spaced from 0 to Nyquist.
        sample_rate: in Hz.
        margin_db: how far above the floor counts as content.

    Returns:
        The cutoff in Hz (Nyquist when the spectrum has no empty band or is silent).
    """
    nyquist = sample_rate / 2
    level, bin_hz = _level_db(power, sample_rate, smooth_hz)
    top = max(1, int(round(floor_band_hz / bin_hz)))
    floor = float(np.median(level[-top:]))
    if level.max() - floor < 2 * margin_db:
        return nyquist
    above = np.flatnonzero(level > floor + margin_db)
    return float(min((above[-1] + 1) * bin_hz, nyquist))


def bandwidth_hz(audio: np.ndarray, sample_rate: int) -> float:
    """Where a clip's long-term spectrum ends (n_fft 4096; Nyquist when it has no empty band)."""
    return estimate_cutoff_hz(long_term_power(Stft(4096, 1024).forward(audio)), sample_rate)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Slaney-style mel filterbank with area normalisation, ``[n_mels, bins]``.

    Shared by the metrics' Mel spectrograms and the U-Net's Mel front end; a shipped checkpoint's
    front end depends on it, so a change here changes what those checkpoints see.
    """
    fmax = sample_rate / 2 if fmax is None else fmax

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        linear = f / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log_part, linear)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        linear = m * (200.0 / 3)
        log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log_part, linear)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights
