"""Blind trials: balanced pairs, matched loudness, hidden names, votes only after listening."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, melody
from restorelab import audio as A
from restorelab.listening import Session, next_pair, record_vote, start_trial


@pytest.fixture
def clips():
    x = np.stack([melody(2.0, seed=1), melody(2.0, seed=2)])
    return {"input": x, "louder": 3.0 * x, "quieter": 0.1 * x}


def test_pairs_are_balanced_and_sides_random():
    session = Session("s", candidates=["input", "b", "c", "d"])
    rng = np.random.default_rng(0)
    lefts = []
    for _ in range(60):
        left, right = next_pair(session, rng)
        pair = tuple(sorted((left, right)))
        session.heard[pair] = session.heard.get(pair, 0) + 1
        lefts.append(left)
    assert set(session.heard.values()) == {10}  # 6 pairs, 10 times each
    assert 0.3 < np.mean([left == "input" for left in lefts]) * 2 < 1.7


def test_trial_sides_are_matched_lossless_and_anonymous(clips, tmp_path):
    session = Session("s", candidates=list(clips))
    trial = start_trial(session, clips, SR, tmp_path)
    assert trial.left != trial.right
    levels = []
    for path in (trial.left_path, trial.right_path):
        info = sf.info(path)
        assert info.subtype == "PCM_24" and info.samplerate == SR and info.channels == 2
        assert trial.left not in path.name and trial.right not in path.name
        audio, _ = sf.read(path, always_2d=True)
        levels.append(A.loudness_lufs(audio.T.astype(np.float32), SR))
        assert A.true_peak_dbtp(audio.T.astype(np.float32), SR) <= -1.0 + 0.1
    assert levels[0] == pytest.approx(levels[1], abs=0.1)
    assert levels[0] == pytest.approx(trial.target_lufs, abs=0.1)


def test_vote_needs_a_trial_and_both_sides_played(clips, tmp_path):
    session = Session("s", clip_id="c", candidates=list(clips))
    with pytest.raises(ValueError, match="Next pair"):
        record_vote(session, "left", 1.0, 1.0)
    trial = start_trial(session, clips, SR, tmp_path)
    with pytest.raises(ValueError, match="Play both sides"):
        record_vote(session, "left", 2.0, 0.0)
    vote = record_vote(session, "right", 2.0, 1.5)
    assert vote.winner == trial.right and vote.restorer_left == trial.left
    assert session.trial is None and session.heard[tuple(sorted((trial.left, trial.right)))] == 1
