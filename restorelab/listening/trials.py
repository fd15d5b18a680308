"""Blind A/B trials: balanced pairs, fresh stimuli, hidden identities, votes only after listening.

A listener's state is a :class:`Session` (kept per browser in ``gr.State``):
the clip being judged and its candidates, how often each pair has been heard,
the current trial and the listener's voting pace. Which candidate is on which
side stays in the session, on the server, until the vote.

A vote goes through :func:`judge` (the listening rules and the pace; nothing
changes), then the vote log, then :func:`commit` (the pair counts as heard):
a vote that could not be saved leaves the trial open.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from restorelab.listening.candidates import Candidate
from restorelab.listening.stimuli import make_pair
from restorelab.listening.transport import (ListeningError, ListeningReport, ListenRules, StimulusStore,
                                            check_listening)
from restorelab.listening.votes import Vote, new_trial_id

#: Flags a vote can carry (see :class:`ListenRules`).
FLAG_FAST = "fast"
FLAG_RATE = "rate"


@dataclass
class Trial:
    """One pair as presented.

    Attributes:
        trial_id: random; the page knows the trial only by it.
        left, right: the candidates on each side.
        tokens: the single-use stimulus tokens of the left and right side.
        start_s, duration_s: the excerpt played.
        loudness_lufs: both sides' loudness.
    """

    trial_id: str
    left: Candidate
    right: Candidate
    tokens: tuple[str, str]
    start_s: float
    duration_s: float
    loudness_lufs: float


@dataclass
class Session:
    """One listener on one clip: the candidates and what has been heard.

    Attributes:
        clip_id, clip_source, prompt: the clip being judged, as votes record it.
        heard: sorted pair of candidate labels -> votes cast on it.
        flags: rules this session has broken (recorded with each later vote).
        vote_times: server-clock times of the votes of the last hour, for the pace rules.
    """

    session_id: str
    clip_id: str = ""
    clip_source: str = ""
    prompt: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    heard: dict[tuple[str, str], int] = field(default_factory=dict)
    trial: Trial | None = None
    seed: int = field(default_factory=lambda: secrets.randbits(64))
    votes_cast: int = 0
    flags: set[str] = field(default_factory=set)
    vote_times: list[float] = field(default_factory=list)

    def reset(self, clip_id: str, clip_source: str, prompt: str, candidates: list[Candidate]) -> None:
        """Point the session at a new clip; what was heard of the last one no longer counts."""
        self.clip_id, self.clip_source, self.prompt = clip_id, clip_source, prompt
        self.candidates = list(candidates)
        self.heard = {}
        self.trial = None


class ClipComplete(ValueError):
    """Every pair of this clip has been judged as often as the rules allow."""


def next_pair(session: Session, rng: np.random.Generator, max_votes_per_pair: int | None = None
              ) -> tuple[Candidate, Candidate]:
    """A least-heard pair (ties broken at random), its sides in random order.

    Raises:
        ValueError: fewer than two candidates.
        ClipComplete: every pair has been heard ``max_votes_per_pair`` times.
    """
    by_label = {c.label: c for c in session.candidates}
    pairs = list(itertools.combinations(sorted(by_label), 2))
    if not pairs:
        raise ValueError("A listening test needs at least two different sounds, and every restorer chosen "
                         "made no audible change to this clip: choose others, or another clip.")
    fewest = min(session.heard.get(pair, 0) for pair in pairs)
    if max_votes_per_pair is not None and fewest >= max_votes_per_pair:
        raise ClipComplete(f"You have judged every pair of this clip {max_votes_per_pair} time(s): the test on "
                           "this clip is complete. Load another clip to go on.")
    pair = pairs[rng.choice([i for i, p in enumerate(pairs) if session.heard.get(p, 0) == fewest])]
    first, second = (pair[0], pair[1]) if rng.random() < 0.5 else (pair[1], pair[0])
    return by_label[first], by_label[second]


def start_trial(session: Session, store: StimulusStore, rules: ListenRules = ListenRules(),
                pair: tuple[Candidate, Candidate] | None = None) -> Trial:
    """Draw the next pair (or take ``pair``, sides as given), make its stimuli and publish them;
    the trial becomes the session's.

    A drawn pair and its sides come from the session's seed; the excerpt and
    the dither from fresh randomness, so stimuli never repeat.
    """
    if session.trial is not None:
        store.discard(*session.trial.tokens)
        session.trial = None
    if pair is None:
        rng = np.random.default_rng([session.seed, session.votes_cast, sum(session.heard.values())])
        pair = next_pair(session, rng, rules.max_votes_per_pair)
    left, right = pair
    pair = make_pair(left.path, right.path, np.random.default_rng(secrets.randbits(128)))
    tokens = (store.publish(pair.left), store.publish(pair.right))
    session.trial = Trial(trial_id=new_trial_id(), left=left, right=right, tokens=tokens, start_s=pair.start_s,
                          duration_s=pair.duration_s, loudness_lufs=pair.loudness_lufs)
    return session.trial


def judge(session: Session, choice: str, report: ListeningReport, store: StimulusStore,
          rules: ListenRules = ListenRules(), now: float | None = None, **study: Any) -> Vote:
    """The vote for the session's current trial, if the rules accept it; the session is not changed.

    ``study`` adds a study's fields to the vote (``study_id``, ``listener_id``, ``check``, ...).

    Raises:
        ListeningError: no trial is open, the report is for another trial,
            the listening does not support a vote (:func:`check_listening`),
            or the session votes faster than ``max_votes_per_minute`` or
            ``max_votes_per_hour`` allow (the session is then flagged ``rate``).
    """
    now = time.monotonic() if now is None else now
    trial = session.trial
    if trial is None:
        raise ListeningError("There is no pair to vote on: press 'Start listening' first.")
    if report.trial_id != trial.trial_id:
        raise ListeningError("That pair has already been judged or replaced; vote on the pair now playing.")
    fetched = [store.fetched_at(token) for token in trial.tokens]
    check_listening(rules, report, fetched[0], fetched[1], trial.duration_s, now)
    check_pace(session, rules, now)
    decision_s = now - min(fetched)
    flags = set(session.flags)
    if decision_s < 2 * rules.required_s(trial.duration_s) + rules.min_decision_s:
        flags.add(FLAG_FAST)
    return Vote(session_id=session.session_id, trial_id=trial.trial_id, clip_id=session.clip_id,
                clip_source=session.clip_source, prompt=session.prompt, restorer_left=trial.left.label,
                restorer_right=trial.right.label, choice=choice, listened_left_s=report.left_s,
                listened_right_s=report.right_s, decision_s=decision_s, loudness_target_lufs=trial.loudness_lufs,
                settings_left=trial.left.settings, settings_right=trial.right.settings,
                stimulus_left_sha256=trial.left.sha256, stimulus_right_sha256=trial.right.sha256,
                excerpt_start_s=trial.start_s, excerpt_duration_s=trial.duration_s, flags=" ".join(sorted(flags)),
                **study)


def check_pace(session: Session, rules: ListenRules, now: float, doing: str = "voting", things: str = "votes",
               unit: str = "pair") -> None:
    """Refuse a judgement beyond ``max_votes_per_minute`` or ``max_votes_per_hour`` of the session's
    (flagging the session ``rate`` from then on).

    Raises:
        ListeningError: the session judges faster than the pace rules allow.
    """
    for window_s, limit, per in ((60.0, rules.max_votes_per_minute, "a minute"),
                                 (3600.0, rules.max_votes_per_hour, "an hour")):
        if sum(now - t < window_s for t in session.vote_times) >= limit:
            session.flags.add(FLAG_RATE)
            raise ListeningError(f"You are {doing} faster than this test allows ({limit} {things} {per}); "
                                 f"take your time with each {unit}.")


def count_judgement(session: Session, now: float | None = None) -> None:
    """Count a saved judgement (a vote, or a MUSHRA page) towards the session's pace rules."""
    session.votes_cast += 1
    now = time.monotonic() if now is None else now
    session.vote_times = [t for t in session.vote_times if now - t < 3600.0] + [now]


def commit(session: Session, vote: Vote, store: StimulusStore, now: float | None = None) -> None:
    """Count the judged pair as heard and close the trial (after the vote was saved)."""
    trial = session.trial
    pair = tuple(sorted((vote.restorer_left, vote.restorer_right)))
    session.heard[pair] = session.heard.get(pair, 0) + 1
    count_judgement(session, now)
    if trial is not None:
        store.discard(*trial.tokens)
    session.trial = None
