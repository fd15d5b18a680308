"""Ratings from blind A/B votes: Bradley-Terry strengths with bootstrap intervals and pair statistics.

Each vote is between a left and a right candidate with a choice of ``left``,
``right``, ``tie`` or ``both_bad``. For the Bradley-Terry fit a tie or a
"both bad" counts half a win to each side (neither was preferred). A candidate
that stood for several restorers (outputs that sounded the same) passes the
vote on to each of them, sharing its weight.

Intervals come from a two-stage bootstrap: listener sessions are resampled,
then the votes within each drawn session. Votes of one listener are not
independent, so resampling votes alone gives intervals that are too narrow
when a few sessions cast most of the votes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from restorelab.listening.votes import CHOICES, MERGED

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
        bootstrap: ``[samples, len(names)]`` strengths of every bootstrap sample.
        votes: the votes fitted (checks left out).
    """

    rows: list[dict] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    win_rate: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=int))
    left_win_share: float = float("nan")
    left_bias_p: float = float("nan")
    pair_tests: list[dict] = field(default_factory=list)
    message: str = ""
    bootstrap: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    votes: int = 0


def members(candidate: str) -> list[str]:
    """The restorers behind a candidate name (merged candidates join theirs with ``=``)."""
    return candidate.split(MERGED)


def _expand(votes: list[dict], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """One outcome per pair of members: ``[n, 4]`` (left, right, left's score, weight) and each one's vote.

    A vote between merged candidates is evidence about every member on each
    side; its weight is shared among them so that it still counts as one vote.
    """
    score = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}
    rows, owner = [], []
    for k, vote in enumerate(votes):
        left, right = members(vote["restorer_left"]), members(vote["restorer_right"])
        weight = 1.0 / (len(left) * len(right))
        for a in left:
            for b in right:
                rows.append((index[a], index[b], score[vote["choice"]], weight))
                owner.append(k)
    return np.array(rows, dtype=np.float64).reshape(-1, 4), np.array(owner, dtype=int)


def bradley_terry(outcomes: np.ndarray, n_items: int, prior_games: float = 1.0,
                  iterations: int = 500, tolerance: float = 1e-9, weights: np.ndarray | None = None) -> np.ndarray:
    """Bradley-Terry log-strengths by the MM algorithm (Hunter 2004), mean zero.

    ``P(i beats j) = p_i / (p_i + p_j)``. ``outcomes`` rows are (left, right,
    left's score) with an optional fourth column of weights; ``weights``, when
    given, multiplies them (a bootstrap's multiplicities). A weak prior,
    ``prior_games`` virtual games each drawn against every other item, keeps
    strengths finite when an item has won or lost everything.
    """
    wins = np.zeros(n_items)
    games = np.zeros((n_items, n_items))
    left, right, score = outcomes[:, 0].astype(int), outcomes[:, 1].astype(int), outcomes[:, 2]
    weight = outcomes[:, 3] if outcomes.shape[1] > 3 else np.ones(len(outcomes))
    if weights is not None:
        weight = weight * weights
    np.add.at(wins, left, weight * score)
    np.add.at(wins, right, weight * (1.0 - score))
    np.add.at(games, (left, right), weight)
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


def _bootstrap_weights(votes: list[dict], units: tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """How often each vote is drawn in one bootstrap sample.

    One unit (listener sessions): the sessions are resampled, then the votes
    within each drawn session. Two crossed units (listeners and clips): each
    listener and each clip is drawn with replacement, and a vote counts as
    often as its listener times its clip (Owen's pigeonhole bootstrap, 2007),
    so the interval reflects how few listeners and how few clips there are.
    """
    if len(units) == 1:
        groups: dict[str, list[int]] = {}
        for k, vote in enumerate(votes):
            groups.setdefault(vote.get(units[0], ""), []).append(k)
        members = [np.array(g) for g in groups.values()]
        weights = np.zeros(len(votes))
        for u in rng.integers(0, len(members), len(members)):
            np.add.at(weights, members[u][rng.integers(0, len(members[u]), len(members[u]))], 1.0)
        return weights
    weights = np.ones(len(votes))
    for unit in units:
        keys = [vote.get(unit, "") for vote in votes]
        values = sorted(set(keys))
        drawn = np.bincount(rng.integers(0, len(values), len(values)), minlength=len(values))
        position = {value: i for i, value in enumerate(values)}
        weights *= drawn[[position[key] for key in keys]]
    return weights


def leaderboard(votes: list[dict], min_votes: int = DEFAULT_MIN_VOTES, n_bootstrap: int = 500,
                seed: int = 0, units: tuple[str, ...] = ("session_id",)) -> Leaderboard:
    """Fit, bootstrap and tabulate; never raises on empty or one-sided logs.

    ``units`` names the fields resampled in the bootstrap (:func:`_bootstrap_weights`):
    listener sessions in the Listen tab, listeners and clips in a study.
    Check trials of a study (a ``check`` column) are left out: they test the listener.
    """
    votes = [v for v in votes if v.get("choice") in CHOICES and not v.get("check")]
    if not votes:
        return Leaderboard(message="No votes yet: listen to a few pairs in the Listen tab first.")
    names = sorted({m for v in votes for side in ("restorer_left", "restorer_right") for m in members(v[side])})
    index = {name: i for i, name in enumerate(names)}
    outcomes, owner = _expand(votes, index)
    n = len(names)
    strengths = bradley_terry(outcomes, n)
    rng = np.random.default_rng(seed)
    samples = np.empty((n_bootstrap, n))
    for b in range(n_bootstrap):
        samples[b] = bradley_terry(outcomes, n, weights=_bootstrap_weights(votes, units, rng)[owner])
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)

    counts = np.zeros((n, n), dtype=int)
    wins = np.zeros((n, n))
    for left, right, score, _ in outcomes:
        i, j = int(left), int(right)
        counts[i, j] += 1
        counts[j, i] += 1
        if score != 0.5:
            winner, loser = (i, j) if score == 1.0 else (j, i)
            wins[winner, loser] += 1
    decisive = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(decisive > 0, wins / decisive, np.nan)

    per_item_votes = np.zeros(n, dtype=int)
    for vote in votes:
        for m in {*members(vote["restorer_left"]), *members(vote["restorer_right"])}:
            per_item_votes[index[m]] += 1
    order = np.argsort(-strengths)
    rows, rank = [], 0
    for i in order:
        shown = bool(per_item_votes[i] >= min_votes)
        rank += shown
        rows.append({"name": names[i], "strength": float(strengths[i]), "ci_low": float(low[i]),
                     "ci_high": float(high[i]), "votes": int(per_item_votes[i]),
                     "rank": rank if shown else None})

    import scipy.stats  # here, not at the top: the app imports this module at start, and scipy.stats takes 0.6 s

    decisive_votes = [v for v in votes if v["choice"] in ("left", "right")]
    left_wins = sum(v["choice"] == "left" for v in decisive_votes)
    result = Leaderboard(rows=rows, names=names, win_rate=win_rate, counts=counts, bootstrap=samples,
                         votes=len(votes))
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
