"""The spectral U-Net: one model family for denoising, codec artifacts and bandwidth extension, linear or Mel.

The network never writes a spectrum of its own. It predicts a real gain per
time-frequency cell, which multiplies a complex STFT that already has coherent
phase (and, for codec artifacts, a scale for the input's own local level):

* ``denoise``: the gain (0 to ``max_gain``) multiplies the input's own STFT.
* ``bwe``: above the measured cutoff a phase-coherent copy of the band below it
  is added (spectral band replication with a shift that is a multiple of
  ``n_fft / hop`` bins, at ``bandwidth_extension_dsp``'s continued envelope);
  the gain corrects that copy's envelope and tonality cell by cell, starting
  from 0 dB, so the untrained network is exactly the DSP method. Below the
  cutoff nothing is changed.
* ``codec``: a gain as for ``denoise``, plus a fill for the cells a lossy coder
  emptied: a second output scales the local envelope of the input's magnitude
  (its mean over :data:`FILL_NEIGHBOURHOOD`) and adds it along each cell's own
  phase. The codec's residue in an emptied cell still has a phase, so the fill
  needs no random numbers and a chunk gives what the whole input gives.
  With ``filter_frames`` set, the network also sees each cell's phase advance
  and adds a complex filter over the ``2 * filter_frames + 1`` frames around
  each cell (deep filtering: a partial is coherent from frame to frame, the
  coder's noise is not), which a real gain cannot do.

Two front ends share one U-Net core of ``n_bands`` frequency rows:

* ``linear``: the 1,024 STFT bins (Nyquist dropped) enter through a strided
  convolution that folds ``1024 / n_bands`` bins into each row, and the gain
  leaves through the transposed convolution, so the mask keeps full resolution.
* ``mel``: log-Mel power in ``n_bands`` bands enters; the Mel gain is spread
  back onto the bins through the normalised filterbank and applied as a mask
  on the input's STFT (keeping its phase; compare :func:`griffin_lim`).

The core: multi-scale residual blocks (a plain 3x3 branch beside a branch
dilated in time), strided down-sampling in time and frequency, skip
connections, and a bottleneck dilated further in time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from restorelab.dsp import mel_filterbank

TASKS = ("denoise", "bwe", "codec")
REPRESENTATIONS = ("linear", "mel")
LOG_EPS = 1e-10
#: The widest complex filter a codec checkpoint may ask for, in frames on each side.
MAX_FILTER_FRAMES = 4


@dataclass(frozen=True)
class UNetConfig:
    """Architecture and front end of one checkpoint."""

    task: str = "denoise"
    representation: str = "linear"
    n_bands: int = 128
    channels: tuple[int, ...] = (12, 24, 48)
    n_fft: int = 2048
    hop: int = 512
    sample_rate: int = 44100
    #: Denoising gain ceiling (a gain above one restores what a degradation dulled).
    max_gain: float = 2.0
    #: Codec, linear front end: frames on each side of the complex filter (0: none, the gain
    #: and fill alone). The phase advance from the previous frame then enters as two features.
    filter_frames: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}")
        if self.representation == "linear" and (self.n_fft // 2) % self.n_bands:
            raise ValueError(f"n_bands must divide {self.n_fft // 2} for the linear front end")
        if self.n_bands % (2 ** (len(self.channels) - 1)):
            raise ValueError("n_bands must be divisible by 2 per down-sampling level")
        if self.max_gain <= 1.0:
            raise ValueError(f"max_gain must exceed 1 (the untrained gain), got {self.max_gain}")
        if not 0 <= self.filter_frames <= MAX_FILTER_FRAMES:
            raise ValueError(f"filter_frames must be within [0, {MAX_FILTER_FRAMES}], got {self.filter_frames}")
        if self.filter_frames and (self.task, self.representation) != ("codec", "linear"):
            raise ValueError("filter_frames needs the codec task and the linear front end")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def in_channels(self) -> int:
        """Log power; for ``bwe`` the band indicator, with ``filter_frames`` the phase advance."""
        return 2 if self.task == "bwe" else 3 if self.filter_frames else 1

    @property
    def filter_taps(self) -> int:
        return 2 * self.filter_frames + 1 if self.filter_frames else 0

    @property
    def out_channels(self) -> int:
        """Gain (all tasks), the fill for ``codec``, and each filter tap's real and imaginary part."""
        return 2 + 2 * self.filter_taps if self.task == "codec" else 1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels)}


def mel_to_bins(config: UNetConfig) -> np.ndarray:
    """``[n_bands, bins]`` matrix spreading Mel gains onto STFT bins.

    Each bin takes the filterbank-weighted mean of the bands covering it (a
    bin no filter covers takes its nearest band), so a constant Mel gain gives
    the same constant gain on every bin.
    """
    fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_bands)
    weights = fb / np.maximum(fb.max(axis=1, keepdims=True), 1e-12)
    cover = weights.sum(axis=0)
    centres = np.argmax(fb, axis=1)
    for k in np.flatnonzero(cover <= 1e-9):
        weights[np.argmin(np.abs(centres - k)), k] = 1.0
    return (weights / weights.sum(axis=0, keepdims=True)).astype(np.float32)


def mel_analysis(config: UNetConfig) -> np.ndarray:
    """``[n_bands, bins]`` area-normalised Mel filterbank (rows sum to one)."""
    fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_bands)
    return (fb / np.maximum(fb.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


class MultiScaleBlock(nn.Module):
    """Residual block: a 3x3 branch and a branch dilated ``dilation`` frames in time, fused by 1x1."""

    def __init__(self, channels: int, dilation: int = 4) -> None:
        super().__init__()
        half = channels // 2
        self.local = nn.Conv2d(channels, half, 3, padding=1)
        self.wide = nn.Conv2d(channels, channels - half, 3, padding=(dilation, 1), dilation=(dilation, 1))
        self.fuse = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(torch.cat([self.local(x), self.wide(x)], dim=1), 0.1)
        return x + self.fuse(y)


class SpectralUNet(nn.Module):
    """Gain predictor over ``[batch, in_channels, frames, features]`` (features: bins or Mel bands)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        if config.representation == "linear":
            fold = (config.n_fft // 2) // config.n_bands
            self.embed = nn.Conv2d(config.in_channels, c[0], (3, 2 * fold), stride=(1, fold),
                                   padding=(1, fold // 2))
            self.head = nn.ConvTranspose2d(c[0], config.out_channels, (1, 2 * fold), stride=(1, fold),
                                           padding=(0, fold // 2))
        else:
            self.embed = nn.Conv2d(config.in_channels, c[0], 3, padding=1)
            self.head = nn.Conv2d(c[0], config.out_channels, 1)
        nn.init.zeros_(self.head.weight)  # starts as the identity (denoise) or the DSP envelope (bwe)
        nn.init.zeros_(self.head.bias)
        self.encoders = nn.ModuleList(MultiScaleBlock(ch) for ch in c[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(c[:-1], c[1:]))
        self.bottleneck = nn.Sequential(MultiScaleBlock(c[-1], 2), MultiScaleBlock(c[-1], 8))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(c[:-1], c[1:]))
        self.merges = nn.ModuleList(nn.Conv2d(2 * ch, ch, 1) for ch in c[:-1])
        self.decoders = nn.ModuleList(MultiScaleBlock(ch) for ch in c[:-1])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw logits, ``[batch, frames, bins]`` (linear: 1,024 bins) or ``[batch, frames, bands]``; for
        ``codec``, ``[batch, 2, frames, ...]`` (gain, fill)."""
        frames = features.shape[2]
        levels = len(self.config.channels) - 1
        pad = (-frames) % (2 ** levels)
        x = F.pad(features, (0, 0, 0, pad))
        x = F.leaky_relu(self.embed(x), 0.1)
        skips = []
        for encode, down in zip(self.encoders, self.downs):
            x = encode(x)
            skips.append(x)
            x = F.leaky_relu(down(x), 0.1)
        x = self.bottleneck(x)
        for up, merge, decode, skip in zip(reversed(self.ups), reversed(self.merges), reversed(self.decoders),
                                           reversed(skips)):
            x = F.leaky_relu(up(x), 0.1)
            x = decode(merge(torch.cat([x, skip], dim=1)))
        out = self.head(x)[:, :, :frames]
        return out if self.config.out_channels > 1 else out[:, 0]


# -- the signal path shared by training and inference --------------------------------

@dataclass
class Frontend:
    """STFT, features and gain mapping for one configuration."""

    config: UNetConfig

    def __post_init__(self) -> None:
        c = self.config
        self.window = torch.hann_window(c.n_fft)
        if c.representation == "mel":
            self.analysis = torch.from_numpy(mel_analysis(c))
            self.spread = torch.from_numpy(mel_to_bins(c))

    def to(self, device: str | torch.device) -> "Frontend":
        """Moves the window and filterbanks to ``device`` (in place); returns self."""
        for name in ("window", "analysis", "spread"):
            if hasattr(self, name):
                setattr(self, name, getattr(self, name).to(device))
        return self

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """``[batch, samples] -> [batch, frames, bins]`` complex."""
        c = self.config
        return torch.stft(audio, c.n_fft, c.hop, window=self.window, center=True,
                          return_complex=True).transpose(1, 2)

    def istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        c = self.config
        return torch.istft(spec.transpose(1, 2), c.n_fft, c.hop, window=self.window, center=True, length=length)

    def features(self, power: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Log power (linear: bins without Nyquist; mel: bands) minus ``offset`` (per item, ``[batch]``)."""
        if self.config.representation == "mel":
            power = power @ self.analysis.T
        else:
            power = power[..., :-1]
        return torch.log(power + LOG_EPS) - offset[:, None, None]

    def phase_advance(self, spec: torch.Tensor) -> torch.Tensor:
        """``[batch, 2, frames, bins]``: cosine and sine of each cell's phase advance from the frame
        before, less a bin-centred partial's own advance (``2 pi k hop / n_fft``); 0 in the first
        frame and where either cell is silent. Linear front end (Nyquist dropped)."""
        c = self.config
        bins = torch.arange(c.n_bins - 1, device=spec.device)
        centred = torch.polar(torch.ones_like(bins, dtype=torch.float32), -2 * math.pi * bins * c.hop / c.n_fft)
        x = spec[..., :-1]
        advance = x[:, 1:] * x[:, :-1].conj() * centred
        unit = advance / advance.abs().clamp_min(1e-20)
        unit = F.pad(torch.view_as_real(unit), (0, 0, 0, 0, 1, 0))  # [batch, frames, bins, 2]
        return unit.permute(0, 3, 1, 2)

    def to_bins(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-bin values from the network's output rows (linear: repeat the last bin for Nyquist)."""
        if self.config.representation == "mel":
            return logits @ self.spread
        return torch.cat([logits, logits[..., -1:]], dim=-1)

    def band_indicator(self, above: torch.Tensor) -> torch.Tensor:
        """A ``[batch, bins]`` 0/1 mask of the generated band, expressed in the network's feature rows."""
        if self.config.representation == "mel":
            return above @ self.analysis.T
        return above[..., :-1]


def log_power_offset(power: torch.Tensor) -> torch.Tensor:
    """The per-item normaliser of the features: mean log power over frames and bins."""
    return torch.log(power + LOG_EPS).mean(dim=(1, 2))


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x)`` as ``2 sigmoid(2x) - 1``: the same values to float rounding, about four times
    faster than ``torch.tanh`` on CPU."""
    return 2 * torch.sigmoid(2 * x) - 1


def denoise_gain(logits: torch.Tensor, config: UNetConfig) -> torch.Tensor:
    """``max_gain * sigmoid``: exactly 1 where the logits are 0 (the untrained head)."""
    return config.max_gain * torch.sigmoid(logits + math.log(1.0 / (config.max_gain - 1.0)))


#: The network's correction of the replicated band, in dB: down to -60 (a band the source
#: leaves nearly empty, as lossy coders do above 18 kHz), up to +20, 0 where the head is 0.
BWE_CUT_DB, BWE_BOOST_DB = 60.0, 20.0


#: The codec fill: at most ``CODEC_MAX_FILL`` times the local envelope; the head's 0 gives
#: ``sigmoid(-CODEC_FILL_BIAS)`` of that (-55 dB), so the untrained network is almost the identity.
CODEC_MAX_FILL, CODEC_FILL_BIAS = 2.0, 7.0
#: Frames and bins over which the fill's envelope is the mean magnitude.
FILL_NEIGHBOURHOOD = (3, 9)


def codec_fill(logits: torch.Tensor) -> torch.Tensor:
    return CODEC_MAX_FILL * torch.sigmoid(logits - CODEC_FILL_BIAS)


#: Each complex filter tap's real and imaginary part lies within +-this; the head's 0 gives no filter.
FILTER_TAP_LIMIT = 1.0


def deep_filter(spec: torch.Tensor, taps: Iterable[torch.Tensor], frames_each_side: int) -> torch.Tensor:
    """``sum_k taps[k] * spec[t + k - K]`` over the ``2K + 1`` frames around each cell (frames
    outside the input count as 0). ``spec``: ``[batch, frames, bins]`` complex; ``taps``: the
    ``2K + 1`` complex ``[batch, frames, bins]`` taps, earliest frame first (a generator is
    enough: one tap is held at a time)."""
    padded = F.pad(torch.view_as_real(spec), (0, 0, 0, 0, frames_each_side, frames_each_side))
    padded = torch.view_as_complex(padded)
    frames = spec.shape[1]
    out = torch.zeros_like(spec)
    k = -1
    for k, tap in enumerate(taps):
        out = out + tap * padded[:, k : k + frames]
    if k + 1 != 2 * frames_each_side + 1:
        raise ValueError(f"expected {2 * frames_each_side + 1} taps, got {k + 1}")
    return out


def local_envelope(magnitude: torch.Tensor) -> torch.Tensor:
    """The mean of ``[batch, frames, bins]`` magnitudes over :data:`FILL_NEIGHBOURHOOD` (edges: the
    cells that exist).

    Box sums of shifted slices, one axis after the other, over the count of cells that exist
    (``avg_pool2d`` without its padding gives the same numbers, several times slower on CPU).
    """
    t, f = FILL_NEIGHBOURHOOD
    frames, bins = magnitude.shape[-2:]
    padded = F.pad(magnitude, (f // 2, f // 2, t // 2, t // 2))
    across = padded[..., :bins].clone()
    for k in range(1, f):
        across += padded[..., k : k + bins]
    total = across[..., :frames, :].clone()
    for k in range(1, t):
        total += across[..., k : k + frames, :]
    return total / (_cells_in_window(frames, t, magnitude)[:, None] * _cells_in_window(bins, f, magnitude))


def _cells_in_window(length: int, window: int, like: torch.Tensor) -> torch.Tensor:
    """How many of the ``window`` positions centred on each of ``length`` positions exist."""
    position = torch.arange(length, device=like.device)
    half = window // 2
    return (position.clamp(max=half) + (length - 1 - position).clamp(max=half) + 1).to(like.dtype)


def bwe_gain(logits: torch.Tensor) -> torch.Tensor:
    squashed = tanh(logits)
    correction_db = torch.where(squashed < 0, BWE_CUT_DB * squashed, BWE_BOOST_DB * squashed)
    return torch.pow(10.0, correction_db / 20.0)


@dataclass
class BandPlan:
    """Per-item band replication as tensors ``[batch, bins]``: the bin each bin copies, the
    DSP envelope's gain for the copy (0 where nothing is generated), and 1 at or above the cutoff."""

    origin: torch.Tensor
    gain: torch.Tensor
    above: torch.Tensor

    @classmethod
    def stack(cls, plans, n_bins: int) -> "BandPlan":
        """From :class:`restorers.bandwidth_extension_dsp.ReplicationPlan` objects."""
        origin = torch.stack([torch.from_numpy(np.asarray(p.origin, dtype=np.int64)) for p in plans])
        gain = torch.stack([torch.from_numpy(np.asarray(p.gain, dtype=np.float32)) for p in plans])
        above = torch.stack([(torch.arange(n_bins) >= p.cutoff_bin).float() for p in plans])
        return cls(origin, gain, above)

    def to(self, device: str | torch.device) -> "BandPlan":
        return BandPlan(self.origin.to(device), self.gain.to(device), self.above.to(device))


def enhance(model: SpectralUNet, frontend: Frontend, spec: torch.Tensor, offset: torch.Tensor,
            plan: BandPlan | None = None) -> torch.Tensor:
    """The restored complex STFT, ``[batch, frames, bins]``.

    ``denoise``: ``G * X``. ``codec``: ``G * X + F * A * X / |X|``, the fill ``F`` of the local
    envelope ``A`` along each cell's phase (none where ``X`` is exactly 0). ``bwe``: ``X`` below
    each item's cutoff; above it, ``X + G * E * X[origin]``: the phase-coherent copy at the DSP
    envelope ``E`` (``bandwidth_extension_dsp``'s), corrected by the network's ``G`` (0 dB untrained).
    """
    config = model.config
    power = spec.real.square() + spec.imag.square()
    if config.task == "denoise":
        logits = model(frontend.features(power, offset)[:, None])
        return spec * denoise_gain(frontend.to_bins(logits), config)
    if config.task == "codec":
        features = frontend.features(power, offset)[:, None]
        if config.filter_frames:
            features = torch.cat([features, frontend.phase_advance(spec)], dim=1)
        logits = model(features)
        gain = denoise_gain(frontend.to_bins(logits[:, 0]), config)
        fill = codec_fill(frontend.to_bins(logits[:, 1]))
        magnitude = power.sqrt()
        # G X + F A X / |X|: one real factor on X (the fill is 0 where the cell is exactly 0).
        restored = spec * (gain + fill * local_envelope(magnitude) / magnitude.clamp_min(1e-20))
        if config.filter_frames:
            def part(channel: int) -> torch.Tensor:
                return FILTER_TAP_LIMIT * tanh(frontend.to_bins(logits[:, channel]))

            taps = (torch.complex(part(2 + 2 * k), part(3 + 2 * k)) for k in range(config.filter_taps))
            restored = restored + deep_filter(spec, taps, config.filter_frames)
        return restored
    if plan is None:
        raise ValueError("bandwidth extension needs each item's replication plan")
    copy = torch.gather(spec, 2, plan.origin[:, None, :].expand(-1, spec.shape[1], -1)) * plan.gain[:, None, :]
    copy_power = copy.real.square() + copy.imag.square()
    mixed_power = power * (1 - plan.above[:, None, :]) + copy_power
    indicator = frontend.band_indicator(plan.above)[:, None, :].expand(-1, spec.shape[1], -1)
    features = torch.stack([frontend.features(mixed_power, offset), indicator], dim=1)
    return spec + copy * bwe_gain(frontend.to_bins(model(features)))


# -- checkpoints -------------------------------------------------------------------------

def save_checkpoint(path: str | Path, model: SpectralUNet, meta: dict[str, Any]) -> Path:
    """Write ``{"config", "state_dict", "meta"}`` through a temporary file and a rename."""
    from restorelab.audio import atomic_replace

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_replace(path) as tmp:
        torch.save({"config": model.config.to_dict(), "state_dict": state, "meta": meta}, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> tuple[SpectralUNet, dict[str, Any]]:
    """The model (in eval mode) and the checkpoint's metadata; tensors only, no pickled code."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    config = UNetConfig(**{**blob["config"], "channels": tuple(blob["config"]["channels"])})
    model = SpectralUNet(config)
    model.load_state_dict(blob["state_dict"])
    return model.eval(), dict(blob.get("meta", {}))
