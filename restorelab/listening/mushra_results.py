"""A MUSHRA study's results: post-screening, mean scores with 95 % intervals, and what the metrics predict.

Post-screening follows ITU-R BS.1534-3 (4.1.2): a listener is excluded who
rated the hidden reference below 90 on more than 15 % of the items they
rated, or the 7 kHz (mid) anchor above 90 on more than 15 % of them. One rule
is added: a listener whose pages broke the pace rules (see
:func:`restorelab.listening.votes.flagged_sessions`) is excluded too. Results
are given for the listeners kept, and the overall means also with everyone.

A condition that several restorers produced alike (``input=unet_bwe``) is
scored for each of them. Per item, the interval is the t-interval over the
listeners (BS.1534-3, 9.2). Overall, items and listeners both vary, so
BS.1534-3's interval over all ratings as if independent would be too narrow.
Where every kept listener rated the condition on every item (the usual
MUSHRA design), the interval comes from the two-way random-effects analysis
of variance of the listener-by-item means, whose grand mean has variance
``(MS_listeners + MS_items - MS_residual) / (L * I)`` (never taken below
``max(MS_listeners, MS_items) / (L * I)``), with Satterthwaite's degrees of
freedom for the t quantile. Otherwise it is a percentile bootstrap that
resamples listeners and items together.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from restorelab import plots
from restorelab.audio import atomic_write_text
from restorelab.listening.mushra import RATINGS, REFERENCE_FOUND
from restorelab.listening.study import HIDDEN_REFERENCE, MID_ANCHOR, MUSHRA_METRICS, Study
from restorelab.listening.votes import MERGED, export_csv, flagged_sessions
from restorelab.report import to_markdown, write_table

#: BS.1534-3's post-screening share of items.
MAX_SCREENED_SHARE = 0.15
#: Metrics whose higher values are better (the others are distances).
HIGHER_IS_BETTER = ("si_sdr_db", "visqol_moslqo")


@dataclass
class MushraListener:
    """One listener: items rated, how often the screening rules were broken, and why they are excluded."""

    listener_id: str
    items: int
    reference_below_90: int
    mid_anchor_above_90: int
    excluded: str = ""
    questionnaire: str = ""


@dataclass
class MushraResults:
    """Everything ``restorelab study results`` reports for a MUSHRA study.

    Attributes:
        overall, everyone: per condition (best first): ``condition``, ``mean``,
            ``ci_low``, ``ci_high``, ``median``, ``ratings``, ``listeners``, the
            listeners kept and everyone.
        per_item: item -> rows as ``overall`` (the t-interval over listeners).
        scores: condition -> every kept rating, for the box plots.
        points: per (item, condition), the mean kept score and the condition's metrics.
        metric_table: per condition, the mean score and the mean of each metric.
        correlations: per metric, Pearson's r and Spearman's rho of ``points`` (hidden reference left out).
        ratings: the study's rows, as the rating log holds them.
    """

    study_id: str
    listeners: list[MushraListener]
    overall: list[dict]
    everyone: list[dict]
    per_item: dict[str, list[dict]] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)
    points: list[dict] = field(default_factory=list)
    metric_table: list[dict] = field(default_factory=list)
    correlations: list[dict] = field(default_factory=list)
    rule: str = ""
    ratings: list[dict[str, str]] = field(default_factory=list)

    @property
    def excluded(self) -> list[str]:
        return [listener.listener_id for listener in self.listeners if listener.excluded]


def screen(rows: list[dict[str, str]], max_share: float = MAX_SCREENED_SHARE) -> list[MushraListener]:
    """The listeners of ``rows`` (one study's ratings) and the BS.1534-3 screening of each."""
    listeners = []
    pages = {}  # one row per page, for the pace rules
    for row in rows:
        pages.setdefault(row["page_id"], {**row, "session_id": row["listener_id"]})
    paced = flagged_sessions(list(pages.values()))
    for listener_id in sorted({row["listener_id"] for row in rows}):
        mine = [row for row in rows if row["listener_id"] == listener_id]
        items = len({row["page_id"] for row in mine})
        low = sum(row["kind"] == HIDDEN_REFERENCE and float(row["score"]) < REFERENCE_FOUND for row in mine)
        high = sum(row["condition"] == MID_ANCHOR and float(row["score"]) > REFERENCE_FOUND for row in mine)
        reasons = []
        if low > max_share * items:
            reasons.append(f"rated the hidden reference below {REFERENCE_FOUND} on {low} of {items} items")
        if high > max_share * items:
            reasons.append(f"rated the 7 kHz anchor above {REFERENCE_FOUND} on {high} of {items} items")
        if listener_id in paced:
            reasons.append("rated faster than the listening rules allow")
        listeners.append(MushraListener(listener_id, items, low, high, "; ".join(reasons),
                                        mine[0].get("questionnaire", "")))
    return listeners


def _members(label: str) -> list[str]:
    return label.split(MERGED)


def _cube(rows: list[dict[str, str]]) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """Listeners, items, conditions (members of merged ones apart) and the mean score of each cell (NaN if none)."""
    listeners = sorted({row["listener_id"] for row in rows})
    items = sorted({row["clip_id"] for row in rows})
    conditions = sorted({name for row in rows for name in _members(row["condition"])})
    total = np.zeros((len(listeners), len(items), len(conditions)))
    count = np.zeros_like(total)
    li, ii, ci = ({name: k for k, name in enumerate(names)} for names in (listeners, items, conditions))
    for row in rows:
        for name in _members(row["condition"]):
            cell = li[row["listener_id"]], ii[row["clip_id"]], ci[name]
            total[cell] += float(row["score"])
            count[cell] += 1
    with np.errstate(invalid="ignore"):
        return listeners, items, conditions, total / count


def condition_means(rows: list[dict[str, str]], n_bootstrap: int = 2000, seed: int = 0) -> list[dict]:
    """Mean score per condition with a 95 % interval, best first (see the module's notes for the interval)."""
    if not rows:
        return []
    listeners, items, conditions, cube = _cube(rows)
    bootstrapped = None
    result = []
    for k, name in enumerate(conditions):
        cells = cube[:, :, k]
        values = cells[np.isfinite(cells)]
        mean = float(values.mean())
        if np.isfinite(cells).all() and min(cells.shape) >= 2:
            half, method = two_way_half_width(cells), "two-way ANOVA t"
            low, high = mean - half, mean + half
        else:
            if bootstrapped is None:
                bootstrapped = _bootstrap(cube, n_bootstrap, seed)
            low, high, method = float(bootstrapped[0][k]), float(bootstrapped[1][k]), "bootstrap"
        result.append({"condition": name, "mean": mean, "ci_low": low, "ci_high": high,
                       "median": float(np.median(values)), "ratings": int(values.size),
                       "listeners": int(np.isfinite(cells).any(axis=1).sum()), "interval": method})
    return sorted(result, key=lambda row: -row["mean"])


def two_way_half_width(cells: np.ndarray, confidence: float = 0.95) -> float:
    """Half the width of the interval of the grand mean of a complete listeners-by-items matrix,
    listeners and items both random (two-way ANOVA, Satterthwaite's degrees of freedom)."""
    n_listeners, n_items = cells.shape
    grand = cells.mean()
    by_listener, by_item = cells.mean(axis=1), cells.mean(axis=0)
    ms_listeners = n_items * np.sum((by_listener - grand) ** 2) / (n_listeners - 1)
    ms_items = n_listeners * np.sum((by_item - grand) ** 2) / (n_items - 1)
    residual = cells - by_listener[:, None] - by_item[None, :] + grand
    ms_residual = np.sum(residual ** 2) / ((n_listeners - 1) * (n_items - 1))
    combined = max(ms_listeners + ms_items - ms_residual, ms_listeners, ms_items)
    if combined <= 0:
        return 0.0
    df = combined ** 2 / (ms_listeners ** 2 / (n_listeners - 1) + ms_items ** 2 / (n_items - 1)
                          + ms_residual ** 2 / ((n_listeners - 1) * (n_items - 1)))
    return float(stats.t.ppf(0.5 + confidence / 2, df) * np.sqrt(combined / (n_listeners * n_items)))


def _bootstrap(cube: np.ndarray, n_bootstrap: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2.5 and 97.5 percentiles per condition of the mean over resampled listeners and items."""
    rng = np.random.default_rng(seed)
    n_listeners, n_items, n_conditions = cube.shape
    samples = np.empty((n_bootstrap, n_conditions))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a condition absent from a resample: NaN
        for b in range(n_bootstrap):
            sub = cube[np.ix_(rng.integers(n_listeners, size=n_listeners), rng.integers(n_items, size=n_items))]
            samples[b] = np.nanmean(sub, axis=(0, 1))
        low, high = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    return low, high


def item_means(rows: list[dict[str, str]]) -> list[dict]:
    """Mean score per condition of one item, with BS.1534-3's t-interval over the listeners, best first."""
    result = []
    for name in dict.fromkeys(row["condition"] for row in rows):
        scores = np.array([float(row["score"]) for row in rows if row["condition"] == name])
        n = scores.size
        half = float(stats.t.ppf(0.975, n - 1) * scores.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        mean = float(scores.mean())
        result.append({"condition": name, "mean": mean, "ci_low": mean - half, "ci_high": mean + half,
                       "median": float(np.median(scores)), "ratings": n, "listeners": n, "interval": "t"})
    return sorted(result, key=lambda row: -row["mean"])


def correlate(points: list[dict], metrics: tuple[str, ...] = MUSHRA_METRICS) -> list[dict]:
    """Pearson's r and Spearman's rho between mean scores and each metric over ``points``
    (the hidden reference left out: its metrics are those of a perfect copy)."""
    result = []
    for metric in metrics:
        shown = [p for p in points if p.get(metric) is not None and p["kind"] != HIDDEN_REFERENCE]
        if len(shown) < 3:
            continue
        x = np.array([p[metric] for p in shown])
        y = np.array([p["score"] for p in shown])
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        pearson = stats.pearsonr(x, y)
        spearman = stats.spearmanr(x, y)
        result.append({"metric": metric, "points": len(shown), "pearson_r": float(pearson.statistic),
                       "pearson_p": float(pearson.pvalue), "spearman_rho": float(spearman.statistic),
                       "spearman_p": float(spearman.pvalue),
                       "better_when": "higher" if metric in HIGHER_IS_BETTER else "lower"})
    return result


def mushra_results(study: Study, rows: list[dict[str, str]], n_bootstrap: int = 2000, seed: int = 0,
                   max_share: float = MAX_SCREENED_SHARE) -> MushraResults:
    """Screen, average and correlate a MUSHRA study's ratings (``rows`` may hold other studies')."""
    rows = [row for row in rows if row.get("study_id") == study.id and row.get("listener_id")]
    listeners = screen(rows, max_share)
    excluded = {listener.listener_id for listener in listeners if listener.excluded}
    kept = [row for row in rows if row["listener_id"] not in excluded]
    per_item = {clip.id: item_means([row for row in kept if row["clip_id"] == clip.id]) for clip in study.clips}
    scores: dict[str, list[float]] = {}
    for row in kept:
        for name in _members(row["condition"]):
            scores.setdefault(name, []).append(float(row["score"]))
    points = []
    for clip in study.clips:
        means = {row["condition"]: row["mean"] for row in per_item[clip.id]}
        for candidate in clip.candidates:
            if candidate.label in means:
                points.append({"item": clip.id, "condition": candidate.label, "kind": candidate.kind,
                               "score": means[candidate.label],
                               **{m: candidate.metrics.get(m) for m in MUSHRA_METRICS}})
    overall = condition_means(kept, n_bootstrap, seed)
    table = []
    for row in overall:
        mine = [p for p in points if row["condition"] in _members(p["condition"])]
        table.append({"condition": row["condition"], "mean_score": row["mean"],
                      **{m: _mean([p.get(m) for p in mine]) for m in MUSHRA_METRICS}})
    rule = (f"BS.1534-3 post-screening: a listener is excluded who rated the hidden reference below "
            f"{REFERENCE_FOUND} on more than {max_share:.0%} of their items, or the 7 kHz anchor above "
            f"{REFERENCE_FOUND} on more than {max_share:.0%} of them; also (a rule of this project) one who "
            "rated faster than the listening rules allow.")
    return MushraResults(study.id, listeners, overall, condition_means(rows, n_bootstrap, seed), per_item, scores,
                         points, table, correlate(points), rule, rows)


def _mean(values: list) -> float | None:
    shown = [v for v in values if v is not None]
    return float(np.mean(shown)) if shown else None


# -- writing --------------------------------------------------------------------

MEAN_COLUMNS = ["condition", "mean", "ci_low", "ci_high", "median", "ratings", "listeners", "interval"]
LISTENER_COLUMNS = ["listener_id", "items", "reference_below_90", "mid_anchor_above_90", "excluded"]


def _rounded(rows: list[dict], digits: int = 2) -> list[dict]:
    return [{k: round(v, digits) if isinstance(v, float) else ("" if v is None else v) for k, v in row.items()}
            for row in rows]


def write_mushra_results(results: MushraResults, folder: str | Path) -> list[Path]:
    """``results.md``, ``mushra_means.csv`` (kept and everyone), ``mushra_items.csv``,
    ``mushra_metrics.csv``, ``mushra_correlations.csv``, ``listeners.csv``, ``mushra_ratings.csv``
    (every rating of the study, safe for spreadsheets), ``mushra_scores.png`` (box plots and means)
    and ``mushra_metrics.png`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "mushra_ratings.csv", export_csv(results.ratings, RATINGS))
    means = [{"listeners_kept": scope, **row} for scope, board in (("kept", results.overall),
                                                                    ("everyone", results.everyone))
             for row in _rounded(board)]
    tables = {
        "mushra_means.csv": (means, ["listeners_kept", *MEAN_COLUMNS]),
        "mushra_items.csv": ([{"item": item, **row} for item, board in results.per_item.items()
                              for row in _rounded(board)], ["item", *MEAN_COLUMNS]),
        "mushra_metrics.csv": (_rounded(results.metric_table, 3), ["condition", "mean_score", *MUSHRA_METRICS]),
        "mushra_correlations.csv": (_rounded(results.correlations, 3),
                                    ["metric", "points", "pearson_r", "pearson_p", "spearman_rho", "spearman_p",
                                     "better_when"]),
        "listeners.csv": ([vars(listener) for listener in results.listeners], [*LISTENER_COLUMNS, "questionnaire"]),
    }
    written = [folder / "mushra_ratings.csv"]
    for name, (rows, columns) in tables.items():
        write_table(rows, columns, folder / name, None)
        written.append(folder / name)
    written.append(plots.save(plots.mushra_scores(results.scores, results.overall,
                                                  f"Study {results.study_id}: MUSHRA scores (listeners kept)"),
                              folder / "mushra_scores.png"))
    written.append(plots.save(plots.metric_scatter(results.points, MUSHRA_METRICS,
                                                   "Mean score per item and condition against each metric"),
                              folder / "mushra_metrics.png"))
    atomic_write_text(folder / "results.md", mushra_markdown(results))
    written.append(folder / "results.md")
    return written


def mushra_markdown(results: MushraResults) -> str:
    kept = len(results.listeners) - len(results.excluded)
    lines = [f"# Study {results.study_id} (MUSHRA)", "",
             f"{len(results.listeners)} listener(s), {len(results.excluded)} excluded, {kept} kept. {results.rule}",
             "", "## Mean score per condition (listeners kept)", "",
             to_markdown(_rounded(results.overall), MEAN_COLUMNS) if results.overall else "No ratings.", "",
             "Intervals (95 %): where every listener rated the condition on every item, from the two-way "
             "random-effects analysis of variance of listeners and items (t with Satterthwaite's degrees of "
             "freedom); otherwise a percentile bootstrap resampling listeners and items together (2000 "
             "samples). A sound several restorers made alike is scored for each of them.", ""]
    if results.correlations:
        lines += ["## What the metrics predict", "",
                  "Each point is one condition on one item: its mean score against its metric (the hidden "
                  "reference left out). A metric that predicts the scores has |r| near 1, with the sign "
                  "that its 'better' direction implies (negative for distances such as LSD).", "",
                  to_markdown(_rounded(results.correlations, 3),
                              ["metric", "points", "pearson_r", "pearson_p", "spearman_rho", "spearman_p",
                               "better_when"]), "",
                  to_markdown(_rounded(results.metric_table, 3), ["condition", "mean_score", *MUSHRA_METRICS]), ""]
    lines += ["## Mean score per condition with every listener", "",
              to_markdown(_rounded(results.everyone), MEAN_COLUMNS) if results.everyone else "No ratings.", "",
              "## Per item (listeners kept; 95 % t-interval over listeners)", ""]
    for item, board in results.per_item.items():
        lines += [f"### {item}", "", to_markdown(_rounded(board), MEAN_COLUMNS) if board else "No ratings.", ""]
    lines += ["## Listeners", "", to_markdown([vars(listener) for listener in results.listeners], LISTENER_COLUMNS),
              ""]
    return "\n".join(lines)
