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
    n = -(-a.shape[-1] // frame) * frame
    pad = ((0, 0), (0, n - a.shape[-1]))

    def frame_energy(x: np.ndarray) -> np.ndarray:
        x = np.pad(x.astype(np.float64), pad)
        return np.square(x).reshape(x.shape[0], -1, frame).sum(axis=(0, 2))

    difference = frame_energy(a - b.astype(np.float64))
    louder = np.maximum(frame_energy(a), frame_energy(b))
    floor = a.shape[0] * frame * 10 ** (INAUDIBLE_LEVEL_DBFS / 10)
    return bool(np.all((difference <= louder * 10 ** (-INAUDIBLE_DIFFERENCE_DB / 10)) | (difference <= floor)))


def merge_identical(clips: dict[str, np.ndarray], sample_rate: int) -> list[list[str]]:
    """Group names whose clips sound the same (:func:`audibly_identical` to the group's first).

    Groups keep the order of ``clips``; each group's first name is the one that came first.
    """
    groups: list[list[str]] = []
    for name, audio in clips.items():
        for group in groups:
            if audibly_identical(clips[group[0]], audio, sample_rate):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups
