"""Candidates of a listening test: outputs that sound the same are one candidate.

A restorer that finds nothing to do returns its input (a bandwidth extender on
a clip without a codec cliff), and two restorers can produce the same audio (a
denoiser and a chain that only adds an empty band). Asking a listener to
choose between identical sounds wastes their time and splits the votes, so
such outputs are merged into one candidate carrying all their names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from restorelab.listening.votes import MERGED

#: Two clips sound the same when their difference is this far below the clip in every frame...
INAUDIBLE_DIFFERENCE_DB = 60.0
#: ...or, in near-silent frames, below this level (under the quantisation noise of 16-bit audio).
INAUDIBLE_LEVEL_DBFS = -96.0
FRAME_S = 0.05


@dataclass(frozen=True)
class Candidate:
    """One sound in a listening test.

    Attributes:
        members: the restorers whose outputs are this sound (the input is ``input``), first one first.
        path: a file holding the sound (the first member's output).
        sha256: hash of the audio's float32 samples, as :func:`audio_sha256` gives it.
        settings: each member's full settings, as JSON text.
    """

    members: tuple[str, ...]
    path: Path
    sha256: str
    settings: str = "[]"

    @property
    def label(self) -> str:
        """The name votes record: the members joined by ``=``."""
        return MERGED.join(self.members)


def audio_sha256(audio: np.ndarray) -> str:
    """SHA-256 of a clip's float32 samples in ``[channels, samples]`` order, with its shape."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    digest = hashlib.sha256(repr(audio.shape).encode())
    digest.update(audio.tobytes())
    return digest.hexdigest()


def _frame_energy(x: np.ndarray, frame: int) -> np.ndarray:
    """Energy of each ``frame``-sample frame of ``[channels, samples]``, summed over channels (the
    last frame zero-padded)."""
    x = x.astype(np.float64)
    x = np.pad(x, ((0, 0), (0, -x.shape[-1] % frame)))
    return np.square(x).reshape(x.shape[0], -1, frame).sum(axis=(0, 2))


def _allowed_difference(energy_a: np.ndarray, energy_b: np.ndarray, channels: int, frame: int) -> np.ndarray:
    """Per frame, the largest difference energy that still counts as inaudible."""
    floor = channels * frame * 10 ** (INAUDIBLE_LEVEL_DBFS / 10)
    return np.maximum(np.maximum(energy_a, energy_b) * 10 ** (-INAUDIBLE_DIFFERENCE_DB / 10), floor)


def audibly_identical(a: np.ndarray, b: np.ndarray, sample_rate: int) -> bool:
    """Whether two clips differ by less than can be heard.

    True when, in every 50 ms frame, the energy of ``a - b`` is at least
    :data:`INAUDIBLE_DIFFERENCE_DB` below the louder clip's, or below
    :data:`INAUDIBLE_LEVEL_DBFS` RMS. A 60 dB margin covers a level difference
    of 0.009 dB; the frame-wise test keeps a change confined to quiet passages
    (hiss removed between notes) from hiding in the whole clip's energy.
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    if a.shape != b.shape:
        return False
    frame = max(1, int(FRAME_S * sample_rate))
    return _identical(a, b, _frame_energy(a, frame), _frame_energy(b, frame), frame)


def _identical(a: np.ndarray, b: np.ndarray, energy_a: np.ndarray, energy_b: np.ndarray, frame: int) -> bool:
    allowed = _allowed_difference(energy_a, energy_b, a.shape[0], frame)
    # The difference of two frames has at least (|a| - |b|)^2 of energy: clips whose levels differ
    # audibly in some frame are told apart without computing it (with a margin for rounding).
    if np.any((np.sqrt(energy_a) - np.sqrt(energy_b)) ** 2 > allowed * (1 + 1e-9)):
        return False
    return bool(np.all(_frame_energy(a - b.astype(np.float64), frame) <= allowed))


def merge_identical(clips: dict[str, np.ndarray], sample_rate: int) -> list[list[str]]:
    """Group names whose clips sound the same (:func:`audibly_identical` to the group's first).

    Groups keep the order of ``clips``; each group's first name is the one that came first.
    """
    frame = max(1, int(FRAME_S * sample_rate))
    clips = {name: np.atleast_2d(audio) for name, audio in clips.items()}
    energy = {name: _frame_energy(audio, frame) for name, audio in clips.items()}
    groups: list[list[str]] = []
    for name, audio in clips.items():
        for group in groups:
            first = clips[group[0]]
            if first.shape == audio.shape and _identical(first, audio, energy[group[0]], energy[name], frame):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups
