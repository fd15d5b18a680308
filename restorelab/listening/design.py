"""Which trials each listener of a study judges.

Every (clip, pair of candidates) of the study is one main trial. A fixed
random permutation of them (from the study's seed) is dealt out in
consecutive blocks: listener ``k`` gets the ``k``-th block of
``trials_per_listener - checks`` trials, wrapping round at the end. So across
any number of listeners, every (clip, pair) is dealt the same number of times
give or take one, and clips in proportion to how many pairs they have. Each
listener's block is shuffled, sides are drawn at random, and the checks are
put at random places after the first trial. A listener's plan depends only on
the study and ``k``, so a listener who comes back resumes the same plan.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from restorelab.listening.study import ANCHOR, Study


@dataclass(frozen=True)
class PlannedTrial:
    """One trial of a listener's plan.

    Attributes:
        clip_id: the clip.
        left, right: candidate labels (``anchor`` for the check anchor; the same label twice for
            an identical-pair check).
        check: ``""``, ``identical`` or ``anchor``.
    """

    clip_id: str
    left: str
    right: str
    check: str = ""

    def check_passed(self, choice: str) -> bool | None:
        """Whether ``choice`` answers a check rightly (``None`` for a main trial)."""
        if self.check == "identical":
            return choice == "tie"
        if self.check == "anchor":
            return choice == ("left" if self.right == ANCHOR else "right")
        return None


def main_trials(study: Study) -> list[tuple[str, str, str]]:
    """Every (clip, first label, second label) of the study, the labels in sorted order."""
    return [(clip.id, a, b) for clip in study.clips
            for a, b in itertools.combinations(sorted(c.label for c in clip.candidates), 2)]


def listener_plan(study: Study, listener_index: int) -> list[PlannedTrial]:
    """The trials listener ``listener_index`` judges, in order, checks included."""
    design = study.design
    universe = main_trials(study)
    if not universe:
        raise ValueError("the study has no pair to judge: every clip has a single distinct sound")
    order = np.random.default_rng([design.seed, 0]).permutation(len(universe))
    n_main = design.trials_per_listener - design.checks
    start = listener_index * n_main
    block = [universe[order[(start + j) % len(universe)]] for j in range(n_main)]
    rng = np.random.default_rng([design.seed, 1, listener_index])
    rng.shuffle(block)
    plan = [PlannedTrial(clip, *((a, b) if rng.random() < 0.5 else (b, a))) for clip, a, b in block]
    kinds = ["identical", "anchor"] if rng.random() < 0.5 else ["anchor", "identical"]
    for number in range(design.checks):
        clip = study.clips[int(rng.integers(len(study.clips)))]
        if kinds[number % 2] == "identical":
            label = clip.candidates[int(rng.integers(len(clip.candidates)))].label
            check = PlannedTrial(clip.id, label, label, "identical")
        else:
            input_label = clip.candidates[0].label  # the input's candidate comes first
            sides = (input_label, ANCHOR) if rng.random() < 0.5 else (ANCHOR, input_label)
            check = PlannedTrial(clip.id, *sides, "anchor")
        plan.insert(int(rng.integers(1, len(plan) + 1)) if plan else 0, check)
    return plan

