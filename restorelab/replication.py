"""Spectral band replication: where a band-limited spectrum's empty band is filled from, and how loud.

Shared by ``bandwidth_extension_dsp`` (which adds the copy as planned) and the U-Net extension
(which starts from the same copy and corrects it cell by cell, in training and at inference).

With cutoff bin ``kc`` and shift ``D`` (the octave below the cutoff, rounded to a multiple of
``n_fft / hop`` bins so the copied partials keep coherent phase across frames), each target bin
``k >= kc`` copies ``X(t, k - m D)`` for the smallest ``m`` that lands in ``[kc - D, kc)``, scaled
to the long-term power ``max(E(k) - P_x(k), 0)``: ``E`` is the envelope fitted as a line in dB per
octave over ``[fc/2, fc)`` and continued upwards, ``P_x`` what the input already has there.

Reference: M. Dietz, L. Liljeryd, K. Kjorling, O. Kunz, "Spectral Band Replication, a novel
approach in audio coding", AES 112th Convention, 2002.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from restorelab.dsp import (Stft, cliff_depth_db, cliff_onset_hz, db, estimate_cutoff_hz, lowpass_fir,
                            zero_phase_filter)

_MAX_GAIN_DB = 30.0
_GUARD_TRANSITION_HZ = 200.0
_FADE_OCTAVES = 1 / 6
_FOLLOW_BAND_HZ = 1500.0  # the band under the cutoff whose level the copy follows, and the copy's band
_FOLLOW_SKIP_BINS = 4  # the last bins under the cutoff, where a codec's filter rolls off
_FOLLOW_SILENCE = 1e-6  # frames 60 dB under their band's long-term level count as silent
_FOLLOW_EMPTY_DB = 40.0  # a band under the cutoff this far under the copied octave holds no music to follow


@dataclass(frozen=True)
class Replication:
    """Where the band is generated and the envelope it gets (the DSP extension's knobs,
    ``BandwidthExtensionDspParams``, take their defaults from here).

    Attributes:
        cutoff_hz: where the input's content ends; 0 measures it from the spectrum.
        max_frequency_hz: the generated band ends here, faded out over the sixth of an octave below.
        gain_db: level of the generated band relative to the continued envelope.
        min_slope_db_per_octave, max_slope_db_per_octave: bounds on the envelope slope.
        margin_db: content threshold over the floor for measuring the cutoff.
        min_cliff_db: how steeply the spectrum must fall across a measured cutoff for the band
            above to count as removed by a codec.
        n_fft: the STFT size the plan is made for (hop a quarter of it).
    """

    cutoff_hz: float = 0.0
    max_frequency_hz: float = 19000.0
    gain_db: float = -3.0
    min_slope_db_per_octave: float = -24.0
    max_slope_db_per_octave: float = -3.0
    margin_db: float = 20.0
    min_cliff_db: float = 12.0
    n_fft: int = 2048


def fit_slope_db_per_octave(level_db: np.ndarray, freqs_hz: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line of level (dB) over ``log2(f)``.

    Returns:
        ``(slope, centre_octave, centre_level_db)``: the line passes through its
        centroid, which stays the pivot when the slope is later clamped.
    """
    octaves = np.log2(freqs_hz)
    slope = np.polyfit(octaves, level_db, 1)[0]
    return float(slope), float(octaves.mean()), float(level_db.mean())


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


def replication_plan(power: np.ndarray, sample_rate: int, stft: Stft, p: Replication) -> ReplicationPlan | None:
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
    fade = fade_below(freqs[target_bins], stop_hz)
    # Capped so a near-empty source bin cannot turn its noise into a whistle.
    gain_db = np.minimum(db(shortfall) - db(power[origin[kc:k_stop]]), _MAX_GAIN_DB)
    gain = np.zeros(len(power))
    gain[kc:k_stop] = np.where(shortfall > 0, 10.0 ** (gain_db / 20.0), 0.0) * fade
    return ReplicationPlan(kc, origin, gain)


def follow_gains(spec: np.ndarray, copy: np.ndarray, power: np.ndarray, plan: ReplicationPlan, stft: Stft,
                 sample_rate: int, limit_db: float) -> np.ndarray:
    """Per channel and frame, the amplitude gain ``[..., frames, 1]`` that makes the copy's level
    move from frame to frame as the input's last 1.5 kHz under the cutoff moves.

    The copy comes from about an octave below, whose level follows other instruments (a bass line
    under a hi-hat); the band just under the cutoff is the nearest measure of what the missing band
    does. Each band's level in a frame is taken against its long-term level over the whole input
    (``power``, per bin, as the plan was made from; the copy's is ``gain^2 P(origin)``), so a chunk's
    gains are the whole input's. Within ``+-limit_db``; all 1 where that band is empty (a cutoff
    given above the input's content).
    """
    kc = plan.cutoff_bin
    width = kc - stft.bin_index(stft.bin_frequencies_hz(sample_rate)[kc] - _FOLLOW_BAND_HZ, sample_rate)
    under, above = slice(kc - width, kc - _FOLLOW_SKIP_BINS), slice(kc, kc + width)
    copy_power = np.square(plan.gain[above]) * power[plan.origin[above]]
    octave = power[plan.origin[kc]:kc]  # the band the copy starts from
    if (width <= _FOLLOW_SKIP_BINS or not np.sum(copy_power) > 0
            or not np.mean(power[under]) > np.mean(octave) * 10.0 ** (-_FOLLOW_EMPTY_DB / 10.0)):
        return np.ones((*spec.shape[:-1], 1), dtype=np.float32)
    level_under = np.sum(np.square(np.abs(spec[..., under])), axis=-1, keepdims=True) / np.sum(power[under])
    level_copy = np.sum(np.square(np.abs(copy[..., above])), axis=-1, keepdims=True) / np.sum(copy_power)
    gain = np.sqrt((level_under + _FOLLOW_SILENCE) / (level_copy + _FOLLOW_SILENCE))
    limit = 10.0 ** (limit_db / 20.0)
    return np.clip(gain, 1 / limit, limit).astype(np.float32)


def fade_below(freqs_hz: np.ndarray, stop_hz: float) -> np.ndarray:
    """The generated band's amplitude fade: 1 up to a sixth of an octave below ``stop_hz``, then
    linear in octaves to 0 at it."""
    return np.clip(np.log2(stop_hz / np.maximum(freqs_hz, 1.0)) / _FADE_OCTAVES, 0.0, 1.0)


def guard_above_cutoff(generated: np.ndarray, cutoff_bin: int, stft: Stft, sample_rate: int) -> np.ndarray:
    """What ``generated`` has above the cutoff: a 100 dB linear-phase high-pass ending just below it.

    The synthesis window spreads each bin over its neighbours; this keeps the band
    below the cutoff exactly the input's.
    """
    cutoff_hz = stft.bin_frequencies_hz(sample_rate)[cutoff_bin]
    guard_hz = min(_GUARD_TRANSITION_HZ, cutoff_hz / 4)
    taps = lowpass_fir(cutoff_hz - guard_hz / 2, sample_rate, guard_hz)
    return generated - zero_phase_filter(generated, taps)
