"""The sounds of a blind trial (a pair, or a MUSHRA page), made fresh for every trial.

Each trial plays a randomly placed excerpt of its candidates (the same
excerpt for all), with short fades, every sound at one loudness, as 24-bit WAV
with fresh TPDF dither. So no two trials ever send the same bytes, lengths or
names for a candidate, and nothing but the sound itself tells the sides apart
or links a trial to another one (or to the files the Compare tab served).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from restorelab.audio import loudness_lufs, true_peak_dbtp

#: Listening level for every side; -23 LUFS (EBU R 128) leaves headroom for peaky restorations.
TARGET_LUFS = -23.0
TRUE_PEAK_CEILING_DBTP = -1.0
#: Longest excerpt a trial plays; longer clips are heard a random section at a time.
MAX_EXCERPT_S = 20.0
#: Clips no longer than the excerpt lose a random amount up to this at each end instead.
MAX_TRIM_S = 0.5
FADE_S = 0.02
#: One step of 24-bit audio; the dither is triangular, two steps wide (about -141 dBFS RMS).
LSB_24 = 2.0 ** -23


@dataclass(frozen=True)
class PairStimuli:
    """Both sides of a trial, ready to send.

    Attributes:
        left, right: complete 24-bit WAV files.
        start_s, duration_s: where the excerpt begins in the clip, and its length.
        loudness_lufs: both sides' integrated loudness: the target, or lower
            where a side's true peak would otherwise pass the ceiling.
        lowered_db: how far below the target that is (0 when not lowered).
    """

    left: bytes
    right: bytes
    start_s: float
    duration_s: float
    loudness_lufs: float
    lowered_db: float


def excerpt_bounds(frames: int, sample_rate: int, rng: np.random.Generator,
                   max_excerpt_s: float = MAX_EXCERPT_S) -> tuple[int, int]:
    """A random ``(start, stop)`` in frames: a section of ``max_excerpt_s`` placed anywhere in a
    longer clip, or a shorter clip with up to :data:`MAX_TRIM_S` trimmed from each end."""
    length = int(max_excerpt_s * sample_rate)
    if frames > length:
        start = int(rng.integers(0, frames - length + 1))
        return start, start + length
    trim = min(int(MAX_TRIM_S * sample_rate), frames // 20)
    return int(rng.integers(0, trim + 1)), frames - int(rng.integers(0, trim + 1))


def read_excerpt(path: Path, start: int, stop: int) -> np.ndarray:
    """Frames ``[start, stop)`` of an audio file as float32 ``[channels, samples]``."""
    data, _ = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def make_pair(left: Path, right: Path, rng: np.random.Generator, *, max_excerpt_s: float = MAX_EXCERPT_S,
              target_lufs: float = TARGET_LUFS, ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP) -> PairStimuli:
    """Cut the same random excerpt from both files and make it a matched, dithered pair (see :func:`make_set`)."""
    made = make_set([left, right], rng, max_excerpt_s=max_excerpt_s, target_lufs=target_lufs,
                    ceiling_dbtp=ceiling_dbtp)
    return PairStimuli(left=made.files[0], right=made.files[1], start_s=made.start_s, duration_s=made.duration_s,
                       loudness_lufs=made.loudness_lufs, lowered_db=made.lowered_db)


@dataclass(frozen=True)
class StimulusSet:
    """Several sounds of one trial, ready to send (the fields as in :class:`PairStimuli`)."""

    files: list[bytes]
    start_s: float
    duration_s: float
    loudness_lufs: float
    lowered_db: float


def make_set(paths: list[Path], rng: np.random.Generator, *, max_excerpt_s: float = MAX_EXCERPT_S,
             target_lufs: float = TARGET_LUFS, ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP) -> StimulusSet:
    """Cut the same random excerpt from every file and make them matched, dithered stimuli.

    Every sound is gained to ``target_lufs``; if any one's true peak would pass
    ``ceiling_dbtp``, all are lowered together so they stay matched.
    """
    infos = [sf.info(str(path)) for path in paths]
    frames = min(info.frames for info in infos)
    rate = infos[0].samplerate
    start, stop = excerpt_bounds(frames, rate, rng, max_excerpt_s)
    fade = _fade(stop - start, rate)
    sounds, common = match_together([read_excerpt(path, start, stop) * fade for path in paths], rate,
                                    target_lufs, ceiling_dbtp)
    return StimulusSet(files=[_wav_bytes(sound, rate, rng) for sound in sounds], start_s=start / rate,
                       duration_s=(stop - start) / rate, loudness_lufs=common, lowered_db=target_lufs - common)


def match_together(sounds: list[np.ndarray], sample_rate: int, target_lufs: float = TARGET_LUFS,
                   ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP) -> tuple[list[np.ndarray], float]:
    """Every sound at one integrated loudness: ``target_lufs``, or lower where any sound's true peak
    would pass ``ceiling_dbtp`` (all lowered together, so they stay matched). Silence is left alone.

    Returns:
        ``(sounds, loudness_lufs)``: the gained sounds and the loudness they share.
    """
    levels = [loudness_lufs(sound, sample_rate) for sound in sounds]
    # The loudest each sound can be without passing the ceiling; all go to the lowest of these.
    reachable = [min(target_lufs, ceiling_dbtp - true_peak_dbtp(sound, sample_rate) + level)
                 for sound, level in zip(sounds, levels) if np.isfinite(level)]
    common = min(reachable, default=target_lufs)
    gained = [sound * np.float32(10 ** ((common - level) / 20)) if np.isfinite(level) else sound
              for sound, level in zip(sounds, levels)]
    return gained, common


def _fade(length: int, sample_rate: int) -> np.ndarray:
    """Raised-cosine fade in and out, so a cut at a random place does not click."""
    ramp = min(int(FADE_S * sample_rate), length // 2)
    envelope = np.ones(length, dtype=np.float32)
    if ramp > 0:
        rise = (0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)).astype(np.float32)
        envelope[:ramp] = rise
        envelope[length - ramp:] = rise[::-1]
    return envelope


def _wav_bytes(audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> bytes:
    """24-bit WAV with triangular dither of one step each way, rounded to the nearest step.

    The samples are quantised here (libsndfile's own conversion truncates) and
    handed over as 32-bit integers whose low byte is zero, which it stores as they are.
    """
    steps = audio.astype(np.float64) / LSB_24 + (rng.random(audio.shape) - rng.random(audio.shape))
    quantised = np.clip(np.round(steps), -(2 ** 23), 2 ** 23 - 1).astype(np.int32) << 8
    buffer = io.BytesIO()
    sf.write(buffer, quantised.T, sample_rate, subtype="PCM_24", format="WAV")
    return buffer.getvalue()
