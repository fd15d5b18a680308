"""Serving a study: listeners arrive, get their place in the design, judge their trials, get a code.

:class:`StudyServer` is the process-wide part: it hands each new listener the
next place in the design (restarting from the vote log, so places survive a
restart), counts each listener's votes (so a listener who reloads the page
resumes where they were) and makes completion codes. :class:`StudyListener`
is one listener's state, kept in their browser session.

A completion code is an HMAC of the study and the listener id under a secret
that never leaves the server (``$RESTORELAB_STUDY_SECRET``, else a file made
once beside the vote log), so the organiser can check a code a listener hands
in against the vote log, and nobody can make one without finishing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from restorelab.analysis import INPUT_ROW
from restorelab.listening.candidates import Candidate
from restorelab.listening.design import PlannedTrial, listener_plan
from restorelab.listening.mushra import Page, PageReport, PlannedPage, mushra_plan, rate_page, start_page
from restorelab.listening.study import ANCHOR, ANCHOR_CUTOFF_HZ, Study
from restorelab.listening.transport import ListeningError, ListeningReport, ListenRules, StimulusStore
from restorelab.listening.trials import Session, commit, count_judgement, judge, start_trial
from restorelab.listening.votes import Vote, VoteLog, new_session_id

SECRET_ENV = "RESTORELAB_STUDY_SECRET"
_LISTENER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def valid_listener_id(text: str | None) -> str | None:
    """``text`` if it can be a listener id (letters, digits, ``_``, ``-``; up to 64), else ``None``."""
    return text if isinstance(text, str) and _LISTENER_ID.match(text) else None


def study_secret(votes_path: Path) -> bytes:
    """``$RESTORELAB_STUDY_SECRET``, else the secret kept beside the vote log (made on first use)."""
    configured = os.environ.get(SECRET_ENV)
    if configured:
        return configured.encode()
    path = votes_path.parent / ".study-secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return path.read_bytes().strip()


@dataclass
class StudyListener:
    """One listener of a study, as their browser session keeps them.

    Attributes:
        listener_id: from the page's storage, the link (``?listener=``), or new.
        index: their place in the design.
        plan: their trials (pairs, or MUSHRA pages), in order.
        position: how many of them they have judged.
        questionnaire: their answers, as JSON.
        session: the listening session (the current trial, the pace rules).
        page: the MUSHRA page showing, if any.
        judged: what each judged trial was, for the reveal at the end.
    """

    listener_id: str
    index: int
    plan: list[PlannedTrial] | list[PlannedPage]
    position: int = 0
    questionnaire: str = ""
    session: Session = field(default_factory=lambda: Session(session_id=new_session_id()))
    page: Page | None = None
    judged: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.position >= len(self.plan)


class StudyServer:
    """The process-wide side of a served study.

    ``log`` is the vote log of a pairwise study, the rating log
    (:class:`restorelab.listening.mushra.RatingLog`) of a MUSHRA one.
    """

    def __init__(self, study: Study, log: VoteLog, store: StimulusStore, rules: ListenRules = ListenRules(),
                 secret: bytes | None = None) -> None:
        self.study = study
        self.log = log
        self.store = store
        self.rules = rules
        self._secret = secret if secret is not None else study_secret(log.path)
        self._lock = threading.Lock()
        self._indices: dict[str, int] = {}
        self._votes: dict[str, int] = {}
        self._answers: dict[str, str] = {}
        judged = set()  # (listener, trial or page): a MUSHRA page has one row per condition
        for row in log.read():
            if row.get("study_id") != study.id or not row.get("listener_id"):
                continue
            listener = row["listener_id"]
            if row.get("listener_index", "").isdigit():
                self._indices.setdefault(listener, int(row["listener_index"]))
            trial = (listener, row.get("trial_id") or row.get("page_id"))
            if trial not in judged:
                judged.add(trial)
                self._votes[listener] = self._votes.get(listener, 0) + 1
            self._answers.setdefault(listener, row.get("questionnaire", ""))
        self._next_index = max(self._indices.values(), default=-1) + 1

    @property
    def mushra(self) -> bool:
        return self.study.test == "mushra"

    def completion_code(self, listener_id: str) -> str:
        digest = hmac.new(self._secret, f"{self.study.id}:{listener_id}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode()[:10]

    def arrive(self, stored_id: str | None = None, link_id: str | None = None) -> StudyListener:
        """The listener behind this page: the one the link names, else the one this browser was, else new."""
        listener_id = valid_listener_id(link_id) or valid_listener_id(stored_id) or secrets.token_hex(8)
        with self._lock:
            if listener_id not in self._indices:
                self._indices[listener_id] = self._next_index
                self._next_index += 1
            index = self._indices[listener_id]
            position = self._votes.get(listener_id, 0)
            answers = self._answers.get(listener_id, "")
        plan = mushra_plan(self.study, index) if self.mushra else listener_plan(self.study, index)
        return StudyListener(listener_id, index, plan, min(position, len(plan)), answers)

    def answer(self, listener: StudyListener, answers: dict[str, str]) -> None:
        """Keep the questionnaire's answers (every question answered with one of its choices).

        Raises:
            ValueError: a question is unanswered or answered with something not offered.
        """
        for question in self.study.questionnaire:
            value = answers.get(question["id"])
            if value not in question["choices"]:
                raise ValueError(f"Please answer: {question['question']}")
        listener.questionnaire = json.dumps({q["id"]: answers[q["id"]] for q in self.study.questionnaire},
                                            ensure_ascii=False)

    def _candidate(self, clip_id: str, label: str) -> Candidate:
        clip = self.study.clip(clip_id)
        if label == ANCHOR:
            return Candidate(members=(ANCHOR,), path=self.study.path(clip.anchor_file), sha256="",
                             settings=json.dumps([{"anchor": f"{INPUT_ROW} low-passed at {ANCHOR_CUTOFF_HZ:g} Hz"}]))
        candidate = clip.candidate(label)
        return Candidate(members=candidate.members, path=self.study.path(candidate.file), sha256=candidate.sha256,
                         settings=json.dumps(candidate.settings, sort_keys=True))

    def present(self, listener: StudyListener):
        """Make the listener's next trial, or MUSHRA page (``None`` when they are done)."""
        if listener.done:
            return None
        if self.study.questionnaire and not listener.questionnaire:
            raise ValueError("Answer the questions first, then press Start.")
        planned = listener.plan[listener.position]
        if self.mushra:
            if listener.page is not None:
                self.store.discard(*listener.page.all_tokens)
            listener.page = start_page(self.study, planned, self.store)
            return listener.page
        session = listener.session
        session.clip_id, session.clip_source = planned.clip_id, self.study.clip(planned.clip_id).origin
        session.prompt = self.study.clip(planned.clip_id).prompt
        pair = (self._candidate(planned.clip_id, planned.left), self._candidate(planned.clip_id, planned.right))
        return start_trial(session, self.store, self.rules, pair=pair)

    def vote(self, listener: StudyListener, choice: str, report: str | None) -> Vote:
        """Judge, save and count the listener's vote on their current trial."""
        if listener.done or listener.session.trial is None:
            raise ListeningError("There is no pair to vote on: press Start.")
        planned = listener.plan[listener.position]
        passed = planned.check_passed(choice)
        cast = judge(listener.session, choice, ListeningReport.parse(report), self.store, self.rules,
                     study_id=self.study.id, listener_id=listener.listener_id, listener_index=listener.index,
                     check=planned.check, check_passed=passed,
                     completion_code=self.completion_code(listener.listener_id),
                     questionnaire=listener.questionnaire)
        self.log.append(cast)
        commit(listener.session, cast, self.store)
        with self._lock:
            self._votes[listener.listener_id] = self._votes.get(listener.listener_id, 0) + 1
            self._answers.setdefault(listener.listener_id, listener.questionnaire)
        listener.position += 1
        listener.judged.append(f"{cast.restorer_left} vs {cast.restorer_right}: {cast.winner}")
        return cast

    def rate(self, listener: StudyListener, report: str | None) -> list[dict[str, str]]:
        """Check, save and count the listener's ratings of their current MUSHRA page (one row per condition)."""
        page = listener.page
        if listener.done or page is None:
            raise ListeningError("There is no page to rate: press Start.")
        rows = rate_page(listener.session, page, PageReport.parse(report, len(page.tokens)), self.rules, self.store,
                         study_id=self.study.id, listener_id=listener.listener_id, listener_index=listener.index,
                         clip_source=self.study.clip(page.planned.clip_id).origin,
                         completion_code=self.completion_code(listener.listener_id),
                         questionnaire=listener.questionnaire)
        self.log.append_rows(rows)
        self.store.discard(*page.all_tokens)
        listener.page = None
        count_judgement(listener.session)
        with self._lock:
            self._votes[listener.listener_id] = self._votes.get(listener.listener_id, 0) + 1
            self._answers.setdefault(listener.listener_id, listener.questionnaire)
        listener.position += 1
        listener.judged.append(f"{page.planned.clip_id}: " + ", ".join(
            f"{k + 1} = {row['condition']} ({row['score']})" for k, row in enumerate(rows)))
        return rows
