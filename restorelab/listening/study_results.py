"""A study's results: who listened, who failed the checks, and the ranking across clips.

Votes of a study are the vote-log rows with its ``study_id``. Check trials
never enter the ranking; they decide which listeners are flagged. The ranking
is fitted twice, with every listener and without the flagged ones, each with
95 % intervals from a bootstrap that resamples listeners and clips
(:func:`restorelab.listening.ratings.leaderboard`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from restorelab import plots
from restorelab.audio import atomic_write_text
from restorelab.listening.ratings import Leaderboard, leaderboard
from restorelab.listening.study import Design, Study
from restorelab.listening.votes import flagged_sessions
from restorelab.report import to_markdown, write_table

UNITS = ("listener_id", "clip_id")


@dataclass
class ListenerSummary:
    """One listener: votes, checks answered and failed, and why they are flagged (if they are)."""

    listener_id: str
    votes: int
    checks: int
    failed_checks: int
    flagged: str = ""
    questionnaire: str = ""


@dataclass
class StudyResults:
    """Everything ``restorelab study results`` reports."""

    study_id: str
    listeners: list[ListenerSummary]
    everyone: Leaderboard
    kept: Leaderboard
    per_clip: dict[str, Leaderboard] = field(default_factory=dict)
    separation: str = ""
    rule: str = ""
    n_bootstrap: int = 500

    @property
    def flagged(self) -> list[str]:
        return [listener.listener_id for listener in self.listeners if listener.flagged]


def study_results(study: Study, rows: list[dict[str, str]], n_bootstrap: int = 500, seed: int = 0) -> StudyResults:
    """Summarise a study's votes (``rows`` may hold others; only the study's are used)."""
    return summarise(study.id, rows, study.design.max_failed_check_share, [clip.id for clip in study.clips],
                     n_bootstrap, seed)


def study_ids(rows: list[dict[str, str]]) -> list[str]:
    """The studies that have votes in ``rows``, in the order they first appear."""
    return list(dict.fromkeys(row["study_id"] for row in rows if row.get("study_id")))


def summarise(study_id: str, rows: list[dict[str, str]], max_failed_check_share: float = Design().max_failed_check_share,
              clip_ids: list[str] | None = None, n_bootstrap: int = 500, seed: int = 0) -> StudyResults:
    """:func:`study_results` from the votes alone (the clips are those voted on, unless given)."""
    rows = [row for row in rows if row.get("study_id") == study_id and row.get("listener_id")]
    limit = max_failed_check_share
    paced = flagged_sessions([{**row, "session_id": row["listener_id"]} for row in rows])
    listeners = []
    for listener_id in sorted({row["listener_id"] for row in rows}):
        mine = [row for row in rows if row["listener_id"] == listener_id]
        checks = [row for row in mine if row.get("check")]
        failed = sum(row.get("check_passed") == "fail" for row in checks)
        reasons = []
        if checks and failed > limit * len(checks):
            reasons.append(f"failed {failed} of {len(checks)} checks")
        if listener_id in paced:
            reasons.append("voted faster than the listening rules allow")
        listeners.append(ListenerSummary(listener_id, len(mine) - len(checks), len(checks), failed, "; ".join(reasons),
                                         next((row.get("questionnaire", "") for row in mine), "")))
    flagged = {listener.listener_id for listener in listeners if listener.flagged}
    kept_rows = [row for row in rows if row["listener_id"] not in flagged]
    everyone = leaderboard(rows, min_votes=1, n_bootstrap=n_bootstrap, seed=seed, units=UNITS)
    kept = leaderboard(kept_rows, min_votes=1, n_bootstrap=n_bootstrap, seed=seed, units=UNITS)
    per_clip = {clip: leaderboard([row for row in kept_rows if row["clip_id"] == clip], min_votes=1,
                                  n_bootstrap=_per_clip(n_bootstrap), seed=seed, units=("listener_id",))
                for clip in (clip_ids if clip_ids is not None else dict.fromkeys(row["clip_id"] for row in rows))}
    rule = (f"A listener is flagged who fails more than {limit:.0%} of their checks (an identical pair not "
            "answered 'no difference', or the 3.5 kHz anchor not losing to the input), or who voted faster "
            "than the listening rules allow; results are given with and without them.")
    return StudyResults(study_id, listeners, everyone, kept, per_clip, separation(kept), rule, n_bootstrap)


def _per_clip(n_bootstrap: int) -> int:
    """Bootstrap samples of each clip's ranking: a fifth of the study's, at least 50."""
    return max(50, n_bootstrap // 5)


def separation(board: Leaderboard) -> str:
    """How many more votes would likely separate the top two, if their difference stays as it is.

    The 95 % interval of the difference shrinks as one over the square root of
    the votes; it excludes zero once it is narrower than the difference.
    """
    if len(board.rows) < 2 or board.bootstrap.shape[0] < 2:
        return "Fewer than two candidates have votes."
    first, second = board.rows[0], board.rows[1]
    i, j = board.names.index(first["name"]), board.names.index(second["name"])
    difference = first["strength"] - second["strength"]
    spread = float(np.std(board.bootstrap[:, i] - board.bootstrap[:, j]))
    low, high = np.percentile(board.bootstrap[:, i] - board.bootstrap[:, j], [2.5, 97.5])
    if low > 0:
        return (f"{first['name']} is ahead of {second['name']}: the 95 % interval of their difference, "
                f"[{low:.2f}, {high:.2f}], excludes zero.")
    if difference <= 1e-9 or spread == 0:
        return f"{first['name']} and {second['name']} are level so far; more votes will not tell them apart."
    more = math.ceil(board.votes * ((1.96 * spread / difference) ** 2 - 1))
    return (f"{first['name']} leads {second['name']} by {difference:.2f} (95 % interval [{low:.2f}, {high:.2f}]); "
            f"about {max(more, 1)} more votes like these would separate them, if the difference stays the same.")


def _board_rows(board: Leaderboard) -> list[dict]:
    return [{"rank": row["rank"], "name": row["name"], "strength": round(row["strength"], 3),
             "ci_low": round(row["ci_low"], 3), "ci_high": round(row["ci_high"], 3), "votes": row["votes"]}
            for row in board.rows]


def _win_rows(board: Leaderboard) -> list[dict]:
    """The win-rate matrix as rows: the share of decisive votes the row's restorer won against each column's."""
    return [{"restorer": name, **{other: "" if np.isnan(board.win_rate[i, j]) else round(float(board.win_rate[i, j]), 3)
                                 for j, other in enumerate(board.names)}}
            for i, name in enumerate(board.names)]


def write_results(results: StudyResults, folder: str | Path) -> list[Path]:
    """``results.md``, ``leaderboard.csv`` (with and without flagged listeners), ``per_clip.csv``,
    ``win_rates.csv``, ``listeners.csv`` and ``leaderboard.png`` in ``folder``."""
    folder = Path(folder)
    columns = ["rank", "name", "strength", "ci_low", "ci_high", "votes"]
    written = []
    table = [{"listeners": scope, **row} for scope, board in (("kept", results.kept), ("everyone", results.everyone))
             for row in _board_rows(board)]
    write_table(table, ["listeners", *columns], folder / "leaderboard.csv", None)
    clips = [{"clip": clip, **row} for clip, board in results.per_clip.items() for row in _board_rows(board)]
    write_table(clips, ["clip", *columns], folder / "per_clip.csv", None)
    write_table(_win_rows(results.kept), ["restorer", *results.kept.names], folder / "win_rates.csv", None)
    written.append(folder / "win_rates.csv")
    people = [vars(listener) for listener in results.listeners]
    write_table(people, ["listener_id", "votes", "checks", "failed_checks", "flagged", "questionnaire"],
                folder / "listeners.csv", None)
    written += [folder / "leaderboard.csv", folder / "per_clip.csv", folder / "listeners.csv"]
    written.append(plots.save(plots.strengths_with_intervals(results.kept.rows,
                                                             f"Study {results.study_id}: Bradley-Terry strengths"),
                              folder / "leaderboard.png"))
    atomic_write_text(folder / "results.md", results_markdown(results))
    written.append(folder / "results.md")
    return written


def results_markdown(results: StudyResults) -> str:
    columns = ["rank", "name", "strength", "ci_low", "ci_high", "votes"]
    kept = results.kept
    lines = [f"# Study {results.study_id}", "",
             f"{len(results.listeners)} listener(s), {len(results.flagged)} flagged; "
             f"{kept.votes} votes from the others. {results.rule}", "",
             "## Ranking (flagged listeners left out)", "", to_markdown(_board_rows(kept), columns), "",
             results.separation, ""]
    if np.isfinite(kept.left_win_share):
        lines += [f"Position bias: the left side won {kept.left_win_share:.0%} of decisive votes "
                  f"(two-sided binomial p = {kept.left_bias_p:.3f}).", ""]
    lines += ["## Win rates (row beats column, decisive votes; flagged listeners left out)", "",
              to_markdown(_win_rows(kept), ["restorer", *kept.names]), ""]
    lines += ["## Ranking with every listener", "", to_markdown(_board_rows(results.everyone), columns), ""]
    lines += ["## Per clip", ""]
    for clip, board in results.per_clip.items():
        lines += [f"### {clip}", "", to_markdown(_board_rows(board), columns) if board.rows else "No votes.", ""]
    lines += ["## Listeners", "", to_markdown([vars(listener) for listener in results.listeners],
                                              ["listener_id", "votes", "checks", "failed_checks", "flagged"]), "",
              f"Intervals: 95 % percentile bootstrap resampling listeners and clips ({results.n_bootstrap} "
              f"samples); per clip, listeners ({_per_clip(results.n_bootstrap)} samples). Strengths are "
              "Bradley-Terry log-odds (ties and 'both bad' count half), mean zero.", ""]
    return "\n".join(lines)
