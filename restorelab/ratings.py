"""Ratings from blind A/B votes: Bradley-Terry strengths with bootstrap intervals and pair statistics.

Each vote is between a left and a right restorer with a choice of ``left``,
``right``, ``tie`` or ``both_bad``. For the Bradley-Terry fit a tie or a
"both bad" counts half a win to each side (neither was preferred).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.stats

#: Votes a restorer needs before the leaderboard shows its rank.
DEFAULT_MIN_VOTES = 10


@dataclass
class Leaderboard:
    """Everything the Results tab shows.

    Attributes:
        rows: one per restorer, best first: ``name``, ``strength`` (log-odds
            scale, mean zero), ``ci_low``/``ci_high`` (95 % bootstrap),
            ``votes``, ``rank`` (``None`` below the minimum vote count).
        names: restorer order of the matrices.
        win_rate: ``[i, j]`` share of decisive votes between i and j won by i (NaN if none).
        counts: ``[i, j]`` votes between i and j, ties included.
        left_win_share: share of decisive votes won by the left side; ``left_bias_p`` its
            two-sided binomial p-value against 0.5.
        pair_tests: per pair, decisive wins each way and the sign test's two-sided p-value.
        message: why there is nothing to rank, when there is not.
    """

    rows: list[dict] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    win_rate: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=int))
    left_win_share: float = float("nan")
    left_bias_p: float = float("nan")
    pair_tests: list[dict] = field(default_factory=list)
    message: str = ""


def _outcomes(votes: list[dict], index: dict[str, int]) -> np.ndarray:
    """``[n, 3]``: left index, right index, score of the left side (1, 0 or 0.5)."""
    score = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}
    return np.array([(index[v["restorer_left"]], index[v["restorer_right"]], score[v["choice"]])
                     for v in votes], dtype=np.float64).reshape(-1, 3)


def bradley_terry(outcomes: np.ndarray, n_items: int, prior_games: float = 1.0,
                  iterations: int = 500, tolerance: float = 1e-9) -> np.ndarray:
    """Bradley-Terry log-strengths by the MM algorithm (Hunter 2004), mean zero.

    ``P(i beats j) = p_i / (p_i + p_j)``. A weak prior, ``prior_games`` virtual
    games each drawn against every other item, keeps strengths finite when an
    item has won or lost everything.
    """
    wins = np.zeros(n_items)
    games = np.zeros((n_items, n_items))
    left, right, score = outcomes[:, 0].astype(int), outcomes[:, 1].astype(int), outcomes[:, 2]
    np.add.at(wins, left, score)
    np.add.at(wins, right, 1.0 - score)
    np.add.at(games, (left, right), 1.0)
    games = games + games.T
    if prior_games > 0 and n_items > 1:
        off_diagonal = prior_games / (n_items - 1) * (1 - np.eye(n_items))
        games = games + off_diagonal
        wins = wins + off_diagonal.sum(axis=1) / 2
    p = np.ones(n_items)
    for _ in range(iterations):
        denominator = (games / (p[:, None] + p[None, :])).sum(axis=1)
        updated = np.where(denominator > 0, wins / np.maximum(denominator, 1e-300), p)
        updated = np.maximum(updated, 1e-12)
        updated /= np.exp(np.mean(np.log(updated)))
        if np.max(np.abs(np.log(updated) - np.log(p))) < tolerance:
            p = updated
            break
        p = updated
    strengths = np.log(p)
    return strengths - strengths.mean()


def leaderboard(votes: list[dict], min_votes: int = DEFAULT_MIN_VOTES, n_bootstrap: int = 500,
                seed: int = 0) -> Leaderboard:
    """Fit, bootstrap (resampling votes) and tabulate; never raises on empty or one-sided logs."""
    votes = [v for v in votes if v.get("choice") in ("left", "right", "tie", "both_bad")]
    if not votes:
        return Leaderboard(message="No votes yet: listen to a few pairs in the Listen tab first.")
    names = sorted({v["restorer_left"] for v in votes} | {v["restorer_right"] for v in votes})
    index = {name: i for i, name in enumerate(names)}
    outcomes = _outcomes(votes, index)
    n = len(names)
    strengths = bradley_terry(outcomes, n)
    rng = np.random.default_rng(seed)
    samples = np.empty((n_bootstrap, n))
    for b in range(n_bootstrap):
        samples[b] = bradley_terry(outcomes[rng.integers(0, len(outcomes), len(outcomes))], n)
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)

    counts = np.zeros((n, n), dtype=int)
    wins = np.zeros((n, n))
    for left, right, score in outcomes:
        i, j = int(left), int(right)
        counts[i, j] += 1
        counts[j, i] += 1
        if score != 0.5:
            winner, loser = (i, j) if score == 1.0 else (j, i)
            wins[winner, loser] += 1
    decisive = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(decisive > 0, wins / decisive, np.nan)

    per_item_votes = counts.sum(axis=1)
    order = np.argsort(-strengths)
    rows, rank = [], 0
    for i in order:
        shown = bool(per_item_votes[i] >= min_votes)
        rank += shown
        rows.append({"name": names[i], "strength": float(strengths[i]), "ci_low": float(low[i]),
                     "ci_high": float(high[i]), "votes": int(per_item_votes[i]),
                     "rank": rank if shown else None})

    decisive_votes = [v for v in votes if v["choice"] in ("left", "right")]
    left_wins = sum(v["choice"] == "left" for v in decisive_votes)
    result = Leaderboard(rows=rows, names=names, win_rate=win_rate, counts=counts)
    if decisive_votes:
        result.left_win_share = left_wins / len(decisive_votes)
        result.left_bias_p = float(scipy.stats.binomtest(left_wins, len(decisive_votes), 0.5).pvalue)
    for i in range(n):
        for j in range(i + 1, n):
            if counts[i, j] == 0:
                continue
            a, b = int(wins[i, j]), int(wins[j, i])
            p = float(scipy.stats.binomtest(a, a + b, 0.5).pvalue) if a + b else float("nan")
            result.pair_tests.append({"a": names[i], "b": names[j], "votes": int(counts[i, j]),
                                      "a_wins": a, "b_wins": b, "ties": int(counts[i, j] - a - b),
                                      "sign_test_p": p})
    if all(row["rank"] is None for row in rows):
        result.message = (f"Ranks appear once a restorer has {min_votes} votes; "
                          f"the most any has is {int(per_item_votes.max())}.")
    return result
