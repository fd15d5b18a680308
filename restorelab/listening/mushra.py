"""MUSHRA pages (ITU-R BS.1534-3): every condition of one item rated 0-100 against the open reference.

A listener's plan is a list of items (:func:`mushra_plan`), each with its
conditions in an order of its own. A page (:func:`start_page`) plays the same
random excerpt of the open reference and of every condition, made fresh and
matched in loudness as for a pair (:func:`restorelab.listening.stimuli.make_set`),
behind single-use links; the page learns only a random id, the links in slider
order and the listening each needs. Submitting (:func:`rate_page`) is refused
unless the reference and every condition were fetched and heard for the
minimum; the ratings become one row per condition in the rating log
(:class:`RatingLog`), whose rows carry the vote log's guarantees: a page's rows
are written whole or not at all, damaged rows are skipped and reported, and
exports are safe for spreadsheets.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from restorelab import __version__
from restorelab.listening.stimuli import make_set
from restorelab.listening.study import HIDDEN_REFERENCE, KINDS, Study, StudyCandidate
from restorelab.listening.transport import ListeningError, ListenRules, StimulusStore, check_heard
from restorelab.listening.trials import FLAG_FAST, Session, check_pace
from restorelab.listening.votes import Schema, VoteLog, new_trial_id, single_line

#: The longest excerpt a page plays (BS.1534-3 asks for items of about 10 s).
MAX_EXCERPT_S = 10.0
#: A hidden reference rated at least this counts as found; BS.1534-3's post-screening uses 90.
REFERENCE_FOUND = 90
#: The name of the open reference in the page's report.
REFERENCE = "reference"
#: The check a hidden reference's row carries.
CHECK_HIDDEN_REFERENCE = "hidden_reference"

RATING_FIELDS = (
    "timestamp_utc", "study_id", "listener_id", "listener_index", "session_id", "page_id", "clip_id",
    "clip_source", "condition", "kind", "position", "score", "heard_s", "reference_heard_s", "page_s",
    "loudness_target_lufs", "excerpt_start_s", "excerpt_duration_s", "settings", "stimulus_sha256", "check",
    "check_passed", "flags", "completion_code", "questionnaire", "app_version",
)
RATINGS = Schema(RATING_FIELDS, RATING_FIELDS, "kind", KINDS,
                 ("listener_index", "position", "score", "heard_s", "reference_heard_s", "page_s",
                  "loudness_target_lufs", "excerpt_start_s", "excerpt_duration_s"),
                 name="rating", entry="ratings", unit="page")
#: Longest accepted value (characters) of each free-text field.
TEXT_LIMITS = {"study_id": 64, "listener_id": 64, "session_id": 64, "page_id": 64, "clip_id": 200,
               "clip_source": 40, "condition": 400, "settings": 4000, "stimulus_sha256": 64, "flags": 200,
               "completion_code": 32, "questionnaire": 1000}


class RatingLog(VoteLog):
    """The MUSHRA rating CSV: one row per condition rating, a page's rows appended together."""

    schema = RATINGS


def ratings_path(votes_path: Path) -> Path:
    """Where the ratings go: ``mushra.csv`` beside the vote log."""
    return Path(votes_path).with_name("mushra.csv")


@dataclass(frozen=True)
class PlannedPage:
    """One page of a listener's plan: the item and its conditions in slider order (labels)."""

    clip_id: str
    order: tuple[str, ...]


def mushra_plan(study: Study, listener_index: int) -> list[PlannedPage]:
    """The pages listener ``listener_index`` rates, in order.

    Every listener rates ``trials_per_listener`` items (every item, if the
    study has no more): consecutive blocks of a fixed random permutation of
    the items, so items are rated equally often; the block's order and each
    page's condition order are the listener's own, fixed by the study's seed.
    """
    design = study.design
    items = [clip.id for clip in study.clips]
    order = np.random.default_rng([design.seed, 2]).permutation(len(items))
    count = min(design.trials_per_listener, len(items))
    start = listener_index * count
    block = [items[order[(start + j) % len(items)]] for j in range(count)]
    rng = np.random.default_rng([design.seed, 3, listener_index])
    rng.shuffle(block)
    pages = []
    for clip_id in block:
        labels = [c.label for c in study.clip(clip_id).candidates]
        pages.append(PlannedPage(clip_id, tuple(labels[i] for i in rng.permutation(len(labels)))))
    return pages


@dataclass
class Page:
    """One MUSHRA page as presented.

    Attributes:
        page_id: random; the page knows itself only by it.
        planned: the item and its conditions in slider order.
        conditions: the conditions (as the study has them), in slider order.
        reference_token, tokens: the single-use links of the open reference and of each slider's condition.
        start_s, duration_s, loudness_lufs: the excerpt played and the loudness all share.
    """

    page_id: str
    planned: PlannedPage
    conditions: list[StudyCandidate]
    reference_token: str
    tokens: list[str]
    start_s: float
    duration_s: float
    loudness_lufs: float

    @property
    def all_tokens(self) -> list[str]:
        return [self.reference_token, *self.tokens]


def start_page(study: Study, planned: PlannedPage, store: StimulusStore) -> Page:
    """Make the page's stimuli (a fresh excerpt, fresh dither) and publish them."""
    clip = study.clip(planned.clip_id)
    conditions = [clip.candidate(label) for label in planned.order]
    paths = [study.path(clip.reference_file)] + [study.path(c.file) for c in conditions]
    made = make_set(paths, np.random.default_rng(secrets.randbits(128)), max_excerpt_s=MAX_EXCERPT_S)
    tokens = [store.publish(data) for data in made.files]
    return Page(new_trial_id(), planned, conditions, tokens[0], tokens[1:], made.start_s, made.duration_s,
                made.loudness_lufs)


@dataclass(frozen=True)
class PageReport:
    """What the page sends: its id, the seconds each sound played, and the scores in slider order."""

    page_id: str
    reference_s: float
    heard_s: tuple[float, ...]
    scores: tuple[int, ...]

    @classmethod
    def parse(cls, text: str | None, conditions: int) -> "PageReport":
        """From the page's JSON; anything malformed or out of range is refused with a clear message.

        The JSON is ``{"trial": id, "heard": {"reference": s, "1": s, ...}, "scores": [0-100, ...]}``,
        with one score per slider, in slider order.
        """
        try:
            if len(text or "") > 4000:
                raise ValueError("too long")
            data = json.loads(text or "")
            heard = data["heard"]
            report = cls(str(data["trial"])[:64], float(heard[REFERENCE]),
                         tuple(float(heard[str(k + 1)]) for k in range(conditions)),
                         tuple(_score(value) for value in data["scores"]))
        except ListeningError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError):
            raise ListeningError("The page did not report what was heard and rated; play every sound through the "
                                 "player, rate each, and submit again.") from None
        if len(report.scores) != conditions:
            raise ListeningError(f"Rate every sound: the page has {conditions} sliders, the ratings sent have "
                                 f"{len(report.scores)}.")
        if not all(0 <= s < 1e6 for s in (report.reference_s, *report.heard_s)):
            raise ListeningError("The player reported an impossible listening time.")
        return report


def _score(value) -> int:
    """A rating: a whole number from 0 to 100 (a number with a fraction is refused, as is anything else)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(value)
    if value != int(value) or not 0 <= value <= 100:
        raise ListeningError(f"Ratings are whole numbers from 0 to 100; {value!r} is not one.")
    return int(value)


def rate_page(session: Session, page: Page, report: PageReport, rules: ListenRules, store: StimulusStore,
              now: float | None = None, **study: str | int) -> list[dict[str, str]]:
    """The page's rating rows, if the listening rules accept them; nothing is changed.

    ``study`` gives the rows' study fields (``study_id``, ``listener_id``,
    ``listener_index``, ``clip_source``, ``completion_code``, ``questionnaire``).

    Raises:
        ListeningError: the report is for another page, a sound was not
            fetched or heard long enough (:func:`check_heard`), or the session
            submits pages faster than the pace rules allow (then it is flagged ``rate``).
    """
    now = time.monotonic() if now is None else now
    if report.page_id != page.page_id:
        raise ListeningError("That page has already been rated or replaced; rate the page now showing.")
    names = [REFERENCE, *(f"sound {k + 1}" for k in range(len(page.tokens)))]
    heard = dict(zip(names, (report.reference_s, *report.heard_s)))
    fetched = dict(zip(names, (store.fetched_at(token) for token in page.all_tokens)))
    check_heard(rules, heard, fetched, page.duration_s, now, what="page", unit="sound", action="submitting")
    check_pace(session, rules, now, doing="submitting", things="pages", unit="page")
    page_s = now - min(fetched.values())
    flags = set(session.flags)
    if page_s < len(heard) * rules.required_s(page.duration_s) + rules.min_decision_s:
        flags.add(FLAG_FAST)
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    rows = []
    for position, (condition, score, heard_s) in enumerate(zip(page.conditions, report.scores, report.heard_s)):
        hidden = condition.kind == HIDDEN_REFERENCE
        row = {"timestamp_utc": stamp, "session_id": session.session_id, "page_id": page.page_id,
               "clip_id": page.planned.clip_id, "condition": condition.label, "kind": condition.kind,
               "position": str(position + 1), "score": str(score), "heard_s": f"{heard_s:.3f}",
               "reference_heard_s": f"{report.reference_s:.3f}", "page_s": f"{page_s:.3f}",
               "loudness_target_lufs": f"{page.loudness_lufs:.1f}", "excerpt_start_s": f"{page.start_s:.3f}",
               "excerpt_duration_s": f"{page.duration_s:.3f}",
               "settings": json.dumps(condition.settings, sort_keys=True), "stimulus_sha256": condition.sha256,
               "check": CHECK_HIDDEN_REFERENCE if hidden else "",
               "check_passed": ("pass" if score >= REFERENCE_FOUND else "fail") if hidden else "",
               "flags": " ".join(sorted(flags)), "app_version": __version__,
               **{name: str(value) for name, value in study.items()}}
        rows.append(_bounded({field: single_line(row.get(field, "")) for field in RATING_FIELDS}))
    return rows


def _bounded(row: dict[str, str]) -> dict[str, str]:
    for name, limit in TEXT_LIMITS.items():
        if len(row[name]) > limit:
            raise ValueError(f"the {name.replace('_', ' ')} is {len(row[name])} characters long; the limit is {limit}")
    if row["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {row['kind']!r}")
    return row
