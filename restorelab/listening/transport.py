"""What the server knows of playback: stimuli behind single-use links, and the rule that opens voting.

The page's A/B transport fetches each side of a trial once, through a link
made of a fresh random token (:class:`StimulusStore`), so no URL is ever seen
twice. The store remembers when each token was fetched, on the server's clock.
The transport measures how long each side has played and reports it with the
vote; :func:`check_listening` accepts the report only if both sides were
fetched, each side was heard for the minimum, and the listening reported fits
in the time that has passed on the server since the audio was sent. A client
that skips the audio, or claims more listening than time allows, is refused.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, fields

from restorelab.limits import EnvSettings

#: URL path under which the app serves stimuli: ``/ab/stimulus/<token>``.
STIMULUS_ROUTE = "/ab/stimulus"


class ListeningError(ValueError):
    """A vote the listening rules refuse; the message says what the listener must do."""


@dataclass(frozen=True)
class ListenRules(EnvSettings):
    """The rules a blind vote must meet; each can be set with ``RESTORELAB_<NAME>`` (upper case).

    Attributes:
        min_listen_s: each side must play through the transport at least this
            long (or its whole length, if shorter) before voting opens.
        clock_tolerance_s: slack between the transport's clock and the
            server's, when the reported listening is checked against the time
            since the audio was sent.
        min_decision_s: time to decide once both sides have been heard for
            the minimum: a vote cast sooner than twice the minimum listening
            plus this, after the pair's audio was sent, carries the flag ``fast``.
        max_votes_per_minute, max_votes_per_hour: a session's votes beyond
            this many in 60 s (or in an hour) are refused, and the session is
            flagged ``rate`` from then on. Eight a minute is a vote every 7.5 s,
            about the quickest the listening minimum allows, kept up for a minute.
        max_votes_per_pair: how often one session judges the same pair of
            candidates of one clip; then the test on that clip is complete.
    """

    min_listen_s: float = 3.0
    clock_tolerance_s: float = 0.5
    min_decision_s: float = 1.0
    max_votes_per_minute: int = 8
    max_votes_per_hour: int = 240
    max_votes_per_pair: int = 3

    def __post_init__(self) -> None:
        for item in fields(self):
            if not getattr(self, item.name) >= 0:
                raise ValueError(f"{item.name} must be >= 0, got {getattr(self, item.name)}")
        if min(self.max_votes_per_minute, self.max_votes_per_hour, self.max_votes_per_pair) < 1:
            raise ValueError("max_votes_per_minute, max_votes_per_hour and max_votes_per_pair must be at least 1")

    def required_s(self, duration_s: float) -> float:
        """The listening each side needs: the minimum, or the whole stimulus if shorter."""
        return min(self.min_listen_s, duration_s)


@dataclass
class _Entry:
    data: bytes | None
    created: float
    fetched_at: float | None = None


class StimulusStore:
    """Trial audio behind single-use random tokens, in bounded memory.

    Args:
        max_bytes: audio kept waiting to be fetched; the oldest goes first
            when a new stimulus would pass it (its trial then has to restart).
        max_age_s: unfetched audio older than this is dropped.
    """

    def __init__(self, max_bytes: int = 256 << 20, max_age_s: float = 3600.0) -> None:
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def publish(self, data: bytes) -> str:
        """Keep ``data`` until fetched; returns its token (192 random bits, URL-safe)."""
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._entries[token] = _Entry(data, now)
            self._bytes += len(data)
            self._evict(now)
        return token

    def take(self, token: str) -> bytes | None:
        """The audio behind ``token``, once: later calls (and unknown tokens) get ``None``.

        The time of the first fetch is kept for :meth:`fetched_at`.
        """
        with self._lock:
            entry = self._entries.get(token)
            if entry is None or entry.data is None:
                return None
            data, entry.data = entry.data, None
            entry.fetched_at = time.monotonic()
            self._bytes -= len(data)
            return data

    def fetched_at(self, token: str) -> float | None:
        """When ``token`` was fetched (``time.monotonic``), or ``None`` if it has not been."""
        with self._lock:
            entry = self._entries.get(token)
            return entry.fetched_at if entry else None

    def discard(self, *tokens: str) -> None:
        """Forget tokens (their trial is over); unfetched audio is dropped."""
        with self._lock:
            for token in tokens:
                entry = self._entries.pop(token, None)
                if entry is not None and entry.data is not None:
                    self._bytes -= len(entry.data)

    @property
    def bytes_waiting(self) -> int:
        return self._bytes

    def _evict(self, now: float) -> None:
        while self._entries:
            token, entry = next(iter(self._entries.items()))
            too_old = now - entry.created > self.max_age_s
            if not (too_old or self._bytes > self.max_bytes) or len(self._entries) == 1:
                break
            self._entries.popitem(last=False)
            if entry.data is not None:
                self._bytes -= len(entry.data)


@dataclass(frozen=True)
class ListeningReport:
    """What the transport says about the pair it played.

    Attributes:
        trial_id: the trial it played (votes for a replaced pair are refused).
        left_s, right_s: seconds each side played through the transport.
    """

    trial_id: str
    left_s: float
    right_s: float

    @classmethod
    def parse(cls, text: str | None) -> "ListeningReport":
        """From the transport's JSON report; anything malformed is refused with a clear message."""
        try:
            if len(text or "") > 1000:  # a report is a few dozen characters
                raise ValueError("too long")
            data = json.loads(text or "")
            report = cls(str(data["trial"])[:64], float(data["left_s"]), float(data["right_s"]))
        except (ValueError, TypeError, KeyError):
            raise ListeningError("The player did not report what was heard; play both sides through the "
                                 "A/B player and vote again.") from None
        if not (0 <= report.left_s < 1e6 and 0 <= report.right_s < 1e6):
            raise ListeningError("The player reported an impossible listening time.")
        return report


def check_listening(rules: ListenRules, report: ListeningReport, fetched_left: float | None,
                    fetched_right: float | None, duration_s: float, now: float) -> None:
    """Refuse a vote that the listening does not support (see :func:`check_heard`).

    Args:
        fetched_left, fetched_right: when each side's audio was fetched (server clock), or ``None``.
        duration_s: the stimulus length.
        now: the server's clock at the vote.

    Raises:
        ListeningError: as :func:`check_heard`.
    """
    check_heard(rules, {"left": report.left_s, "right": report.right_s},
                {"left": fetched_left, "right": fetched_right}, duration_s, now)


def check_heard(rules: ListenRules, heard: dict[str, float], fetched: dict[str, float | None], duration_s: float,
                now: float, what: str = "pair", unit: str = "side", action: str = "voting") -> None:
    """Refuse a judgement of several sounds that the listening does not support.

    One sound plays at a time, so ``n`` sounds heard for the minimum each take
    at least ``n`` times the minimum since the first was fetched.

    Args:
        heard: seconds each sound played, as the transport reports it, by name.
        fetched: when each sound's audio was fetched (server clock), or ``None``.
        duration_s: the stimulus length.
        now: the server's clock at the judgement.
        what, unit, action: words for messages: what is judged ("pair"), what
            each sound is ("side"), what the listening opens ("voting").

    Raises:
        ListeningError: a sound's audio was never fetched, a sound was heard
            for less than :meth:`ListenRules.required_s`, or the report claims
            more listening than the time since the audio was sent allows.
    """
    required = rules.required_s(duration_s)
    missing = [name for name in heard if fetched.get(name) is None]
    if missing:
        raise ListeningError(f"The {missing[0]} {unit}'s audio was never loaded: play every {unit} through the "
                             f"player before {action}.")
    short = [f"{name} {seconds:.1f} s" for name, seconds in heard.items() if seconds + 1e-3 < required]
    if short:
        raise ListeningError(f"Listen to each {unit} for at least {required:.1f} s before {action} "
                             f"(so far: {', '.join(short)}).")
    elapsed = now - min(fetched[name] for name in heard)
    if elapsed + rules.clock_tolerance_s < len(heard) * required:
        raise ListeningError(f"{action.capitalize()} opens once each {unit} has played for {required:.1f} s; the "
                             f"{what} was loaded {elapsed:.1f} s ago.")
    if sum(heard.values()) > elapsed + rules.clock_tolerance_s:
        raise ListeningError(f"The player reports {sum(heard.values()):.1f} s of listening, but the {what} was "
                             f"loaded only {elapsed:.1f} s ago; refused.")
