"""Spectral band replication above the input's measured cutoff."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from restorelab.dsp import (Stft, cliff_depth_db, cliff_onset_hz, db, estimate_cutoff_hz, long_term_power, lowpass_fir,
                            zero_phase_filter)
from restorers.base import Restorer, RestorerParams, check_fft_size

_MAX_GAIN_DB = 30.0
_GUARD_TRANSITION_HZ = 200.0
_FADE_OCTAVES = 1 / 6


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
    """

    cutoff_hz: float = 0.0
    max_frequency_hz: float = 19000.0
    gain_db: float = -3.0
    min_slope_db_per_octave: float = -24.0
    max_slope_db_per_octave: float = -3.0
    margin_db: float = 20.0
    min_cliff_db: float = 12.0
    n_fft: int = 2048

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


def fit_slope_db_per_octave(level_db: np.ndarray, freqs_hz: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line of level (dB) over ``log2(f)``.

    Returns:
        ``(slope, centre_octave, centre_level_db)``: the line passes through its
        centroid, which stays the pivot when the slope is later clamped.
    """
    octaves = np.log2(freqs_hz)
    slope = np.polyfit(octaves, level_db, 1)[0]
    return float(slope), float(octaves.mean()), float(level_db.mean())


class BandwidthExtensionDsp(Restorer):
    """Fill the empty band above the cutoff by spectral band replication.

    Method: with cutoff bin ``kc`` and shift ``D`` (the octave below the cutoff,
    rounded to a multiple of ``n_fft / hop`` bins so the copied partials keep
    coherent phase across frames), each target bin ``k >= kc`` takes
    ``X(t, k - m D)`` for the smallest ``m`` that lands in ``[kc - D, kc)``,
    scaled to the long-term power ``max(E(k) - P_x(k), 0)``: ``E`` is the
    envelope fitted as a line in dB per octave over ``[fc/2, fc)`` and continued
    upwards, ``P_x`` what the input already has there. The copy keeps the
    source's timing (transients) but takes the continued slope, and a band that
    hiss already fills is left alone.
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
        plan = replication_plan(fitted, sample_rate, stft, p)
        if plan is None:
            return audio
        spec = stft.forward(audio)
        high = spec[..., plan.origin] * plan.gain.astype(np.float32)
        generated = stft.inverse(high, audio.shape[-1])
        return (audio + guard_above_cutoff(generated, plan.cutoff_bin, stft, sample_rate)).astype(np.float32)


@dataclass(frozen=True)
class ReplicationPlan:
    """Where the copied band comes from and how loud it is made, per STFT bin.

    Attributes:
        cutoff_bin: the first generated bin.
        origin: for each bin, the bin it copies (itself below the cutoff).
        gain: amplitude gain per bin applied to the copy (zero below the cutoff and above the stop).
    """

    cutoff_bin: int
    origin: np.ndarray
    gain: np.ndarray


def replication_plan(power: np.ndarray, sample_rate: int, stft: Stft, p: BandwidthExtensionDspParams
                     ) -> ReplicationPlan | None:
    """The band replication for a long-term spectrum ``power`` (per bin), or None where it should not act.

    None when ``p.cutoff_hz`` is 0 and the measured cutoff has no codec-like cliff,
    or when the band below the cutoff is too narrow or silent to copy from.
    """
    cutoff = p.cutoff_hz
    if not cutoff:
        cutoff = estimate_cutoff_hz(power, sample_rate, p.margin_db)
        if cliff_depth_db(power, cutoff, sample_rate) < p.min_cliff_db:
            return None
        cutoff = cliff_onset_hz(power, cutoff, sample_rate)  # the transition band is filled, not left as a notch
    nyquist = sample_rate / 2
    stop_hz = min(p.max_frequency_hz, nyquist)
    kc = stft.bin_index(cutoff, sample_rate)
    k_stop = stft.bin_index(stop_hz, sample_rate)
    phase_step = p.n_fft // stft.hop
    shift = (kc // 2) // phase_step * phase_step
    if shift < phase_step or k_stop <= kc or not np.any(power[:kc] > 0):
        return None

    freqs = stft.bin_frequencies_hz(sample_rate)
    # The fit skips the last half-kilohertz, where codecs roll off.
    guard = min(stft.bin_index(500.0, sample_rate), shift // 2)
    fit_bins = np.arange(kc - shift, kc - guard)
    slope, centre_octave, centre_db = fit_slope_db_per_octave(db(power[fit_bins]), freqs[fit_bins])
    slope = float(np.clip(slope, p.min_slope_db_per_octave, p.max_slope_db_per_octave))
    level_at_cutoff = centre_db + slope * (np.log2(freqs[kc]) - centre_octave)

    target_bins = np.arange(kc, k_stop)
    origin = np.arange(len(power))
    origin[kc:k_stop] = target_bins - np.ceil((target_bins - kc + 1) / shift).astype(int) * shift
    octaves_above = np.log2(freqs[target_bins] / freqs[kc])
    target_db = level_at_cutoff + slope * octaves_above + p.gain_db
    # Only the shortfall is filled: an empty band gets the whole envelope,
    # a band that hiss (or real content) already fills gets nothing.
    shortfall = np.maximum(10.0 ** (target_db / 10.0) - power[target_bins], 0.0)
    fade = np.clip(np.log2(stop_hz / freqs[target_bins]) / _FADE_OCTAVES, 0.0, 1.0)
    # Capped so a near-empty source bin cannot turn its noise into a whistle.
    gain_db = np.minimum(db(shortfall) - db(power[origin[kc:k_stop]]), _MAX_GAIN_DB)
    gain = np.zeros(len(power))
    gain[kc:k_stop] = np.where(shortfall > 0, 10.0 ** (gain_db / 20.0), 0.0) * fade
    return ReplicationPlan(kc, origin, gain)


def guard_above_cutoff(generated: np.ndarray, cutoff_bin: int, stft: Stft, sample_rate: int) -> np.ndarray:
    """What ``generated`` has above the cutoff: a 100 dB linear-phase high-pass ending just below it.

    The synthesis window spreads each bin over its neighbours; this keeps the band
    below the cutoff exactly the input's.
    """
    cutoff_hz = stft.bin_frequencies_hz(sample_rate)[cutoff_bin]
    guard_hz = min(_GUARD_TRANSITION_HZ, cutoff_hz / 4)
    taps = lowpass_fir(cutoff_hz - guard_hz / 2, sample_rate, guard_hz)
    return generated - zero_phase_filter(generated, taps)
