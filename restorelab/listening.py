"""Blind A/B trials: balanced pair drawing, loudness matching, hidden identities.

A listener's state is a :class:`Session` (kept per browser in ``gr.State``):
the candidates, how often each pair has been heard, and the current trial.
Each side of a trial is loudness-matched to one target with a true-peak
ceiling and written as 24-bit WAV under a random file name, so neither the
level, the format nor the URL tells the sides apart.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from restorelab.audio import match_loudness, write_wav
from restorelab.votes import Vote, new_trial_id

#: Listening level for every side; -23 LUFS (EBU R 128) leaves headroom for peaky restorations.
TARGET_LUFS = -23.0
TRUE_PEAK_CEILING_DBTP = -1.0


@dataclass
class Trial:
    """One pair as presented: which restorer is on which side stays on the server until the vote."""

    trial_id: str
    left: str
    right: str
    left_path: Path
    right_path: Path
    target_lufs: float
    started_at: float


@dataclass
class Session:
    """One listener: the candidates of the current clip and what they have heard."""

    session_id: str
    clip_id: str = ""
    clip_source: str = ""
    prompt: str = ""
    candidates: list[str] = field(default_factory=list)
    heard: dict[tuple[str, str], int] = field(default_factory=dict)
    trial: Trial | None = None
    seed: int = field(default_factory=lambda: secrets.randbits(32))
    votes_cast: int = 0


def next_pair(session: Session, rng: np.random.Generator) -> tuple[str, str]:
    """A least-heard pair (ties broken at random), its sides in random order."""
    pairs = list(itertools.combinations(sorted(session.candidates), 2))
    if not pairs:
        raise ValueError("a listening test needs at least two candidates (the input and one restorer)")
    fewest = min(session.heard.get(pair, 0) for pair in pairs)
    pair = pairs[rng.choice([i for i, p in enumerate(pairs) if session.heard.get(p, 0) == fewest])]
    return (pair[0], pair[1]) if rng.random() < 0.5 else (pair[1], pair[0])


def start_trial(session: Session, clips: dict[str, np.ndarray], sample_rate: int, folder: Path,
                target_lufs: float = TARGET_LUFS, ceiling_dbtp: float = TRUE_PEAK_CEILING_DBTP) -> Trial:
    """Draw the next pair, write both sides loudness-matched, and make it the session's trial.

    Both sides get the same target; if either side's true peak would pass the
    ceiling, both are lowered together so they stay matched.
    """
    rng = np.random.default_rng([session.seed, session.votes_cast, len(session.heard)])
    left, right = next_pair(session, rng)
    matched = [match_loudness(clips[name], sample_rate, target_lufs, ceiling_dbtp) for name in (left, right)]
    # A side held below the target by its peak ceiling pulls the other down with it.
    lowered_db = max(0.0, max(target_lufs - m.loudness_lufs for m in matched))
    paths = [folder / f"{secrets.token_hex(8)}.wav" for _ in range(2)]
    for path, side in zip(paths, matched):
        write_wav(path, side.audio * np.float32(10 ** (-lowered_db / 20)), sample_rate, subtype="PCM_24")
    trial = Trial(trial_id=new_trial_id(), left=left, right=right, left_path=paths[0], right_path=paths[1],
                  target_lufs=target_lufs - lowered_db, started_at=time.monotonic())
    session.trial = trial
    return trial


def record_vote(session: Session, choice: str, listened_left_s: float, listened_right_s: float) -> Vote:
    """The vote for the session's current trial; counts the pair as heard and clears the trial.

    Raises:
        ValueError: no trial is running, or a side has not been played.
    """
    trial = session.trial
    if trial is None:
        raise ValueError("There is no pair to vote on: press 'Next pair' first.")
    if listened_left_s <= 0 or listened_right_s <= 0:
        raise ValueError("Play both sides before voting.")
    vote = Vote(session_id=session.session_id, trial_id=trial.trial_id, clip_id=session.clip_id,
                clip_source=session.clip_source, prompt=session.prompt, restorer_left=trial.left,
                restorer_right=trial.right, choice=choice, listened_left_s=listened_left_s,
                listened_right_s=listened_right_s, decision_s=time.monotonic() - trial.started_at,
                loudness_target_lufs=trial.target_lufs)
    pair = tuple(sorted((trial.left, trial.right)))
    session.heard[pair] = session.heard.get(pair, 0) + 1
    session.votes_cast += 1
    session.trial = None
    return vote
