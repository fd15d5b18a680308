"""Spectral band replication above the input's measured cutoff."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from restorelab.dsp import Stft, long_term_power
from restorelab.replication import Replication, follow_gains, guard_above_cutoff, replication_plan
from restorers.base import Restorer, RestorerParams, check_fft_size


@dataclass(frozen=True)
class BandwidthExtensionDspParams(RestorerParams):
    """Knobs of the DSP bandwidth extension.

    Attributes:
        cutoff_hz: where the input's content ends; 0 measures it per clip (where
            the spectrum starts falling into its empty band: see ``cliff_onset_hz``).
        max_frequency_hz: the generated band ends here, faded out over the
            sixth of an octave below. 19 kHz: lossy-coded music mostly ends
            between 19 and 20 kHz, and on the training corpus's recordings cut
            at 16 kHz this stop gives the lowest LSD (18.5-20.5 kHz tried).
        gain_db: level of the generated band relative to the continued
            envelope; lower is safer (less added hiss), higher is brighter.
        min_slope_db_per_octave, max_slope_db_per_octave: bounds on the
            envelope slope fitted below the cutoff and continued above it.
        margin_db: content threshold over the floor for measuring the cutoff.
        min_cliff_db: how steeply the spectrum must fall across the measured
            cutoff (see ``cliff_depth_db``) for the band above to count as
            removed by a codec; a gentler fall is music fading into noise, and
            the input is left alone.
        n_fft: STFT size; hop is a quarter, which keeps replicated partials
            phase-coherent from frame to frame.
        follow_db: how far the copy's level in each frame may be moved so it rises and
            falls with the input's last 1.5 kHz under the cutoff instead of with its
            source an octave below (see ``follow_gains``); 0, the default, keeps the
            source's. It helps where that band is music and hurts where hiss fills it:
            at 20 dB, LSD 2.6-6 % lower on held-out music cut at 16 kHz, at the same
            long-term level, but 1-5 % higher with hiss under the cutoff (``hiss_16k``,
            ``musicgen_like``), as the copy then follows the hiss (docs/EVALUATION.md).
    """

    cutoff_hz: float = Replication.cutoff_hz
    max_frequency_hz: float = Replication.max_frequency_hz
    gain_db: float = Replication.gain_db
    min_slope_db_per_octave: float = Replication.min_slope_db_per_octave
    max_slope_db_per_octave: float = Replication.max_slope_db_per_octave
    margin_db: float = Replication.margin_db
    min_cliff_db: float = Replication.min_cliff_db
    n_fft: int = Replication.n_fft
    follow_db: float = 0.0

    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        **RestorerParams.RANGES,
        "cutoff_hz": (0, 24000),
        "max_frequency_hz": (1000, 24000),
        "gain_db": (-40, 12),
        "min_slope_db_per_octave": (-96, 0),
        "max_slope_db_per_octave": (-96, 0),
        "margin_db": (1, 60),
        "min_cliff_db": (0, 60),
        "n_fft": (256, 16384),
        "follow_db": (0, 40),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cutoff_hz < 0:
            raise ValueError(f"cutoff_hz must be >= 0 (0 measures it), got {self.cutoff_hz}")
        if self.max_frequency_hz <= 0:
            raise ValueError(f"max_frequency_hz must be positive, got {self.max_frequency_hz}")
        if self.min_slope_db_per_octave > self.max_slope_db_per_octave:
            raise ValueError("min_slope_db_per_octave must not exceed max_slope_db_per_octave")
        if self.margin_db <= 0:
            raise ValueError(f"margin_db must be positive, got {self.margin_db}")
        check_fft_size(self.n_fft)

    def replication(self) -> Replication:
        """The band replication these knobs describe."""
        return Replication(**{name: getattr(self, name) for name in Replication.__dataclass_fields__})


class BandwidthExtensionDsp(Restorer):
    """Fill the empty band above the cutoff by spectral band replication.

    Method: the band replication of :mod:`restorelab.replication`: each bin above the
    cutoff copies one an octave or so below it, by a shift that keeps the copied partials'
    phase coherent, scaled to the envelope fitted below the cutoff and continued upwards,
    less what the input already has there. The copy keeps the source's timing (transients)
    but takes the continued slope, and a band that hiss already fills is left alone. With
    ``follow_db`` the copy's level follows the input's band just under the cutoff frame by frame.
    ``y = x + hp(istft(H))``: ``H`` is zero below ``kc`` and ``hp`` is a
    linear-phase high-pass with a 100 dB stop band ending 200 Hz below the
    cutoff, so the band below the cutoff is untouched.

    Trade-off: ``gain_db`` trades air against audible replicated hiss; the
    slope bounds keep an odd source band (a resonance, a roll-off dip) from
    producing an implausibly bright or dark top octave.

    Reference: M. Dietz, L. Liljeryd, K. Kjorling, O. Kunz, "Spectral Band
    Replication, a novel approach in audio coding", AES 112th Convention, 2002.
    """

    name = "bandwidth_extension_dsp"
    goal = "extend"
    description = "Spectral band replication above the measured cutoff, envelope continued from below."
    Params = BandwidthExtensionDspParams
    context_s = 0.2

    def _fit(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The whole input's long-term power per bin (cutoff, envelope and shortfall come from it)."""
        p = self.params
        stft = Stft(p.n_fft, p.n_fft // 4)
        total, frames = np.zeros(stft.n_bins), 0
        for start, stop in self.blocks(audio.shape[-1], sample_rate, multiple=stft.hop):
            spec = stft.forward(audio[:, start:stop])
            total += long_term_power(spec) * spec.shape[-2]
            frames += spec.shape[-2]
        return total / frames

    def _chunk_multiple(self, sample_rate: int) -> int:
        return self.params.n_fft // 4  # every chunk on the whole input's frame grid

    def _process(self, audio: np.ndarray, sample_rate: int, fitted: np.ndarray) -> np.ndarray:
        p = self.params
        stft = Stft(p.n_fft, p.n_fft // 4)
        plan = replication_plan(fitted, sample_rate, stft, p.replication())
        if plan is None:
            return audio
        spec = stft.forward(audio)
        high = spec[..., plan.origin] * plan.gain.astype(np.float32)
        if p.follow_db:
            high *= follow_gains(spec, high, fitted, plan, stft, sample_rate, p.follow_db)
        generated = stft.inverse(high, audio.shape[-1])
        return (audio + guard_above_cutoff(generated, plan.cutoff_bin, stft, sample_rate)).astype(np.float32)
