"""The vote log: one module owns its schema.

An append-only CSV with a fixed header and one row per vote. Every row is one
line: free text is bounded (:data:`TEXT_LIMITS`) and its line breaks and other
control characters become spaces, so a damaged row can never swallow the rows
after it. A row is written under an exclusive lock, whole or not at all: a
short write, a full disk or a read-only file truncates the file back to where
it was and raises :class:`VoteLogError`. Reading skips a damaged row and says
which line it was, and never fails because of one.

Listeners are identified by a random session id, never by an address. New
columns are appended at the end; files written by older versions stay readable
and are upgraded in place (rewritten whole, then renamed) on the next append.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import logging
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from restorelab import __version__
from restorelab.audio import atomic_replace

LOG = logging.getLogger(__name__)

#: The columns of the first version; every later one appends to them.
FIELDS_V1 = (
    "timestamp_utc", "session_id", "trial_id", "clip_id", "clip_source", "prompt",
    "restorer_left", "restorer_right", "choice", "winner", "listened_left_s", "listened_right_s",
    "decision_s", "loudness_target_lufs", "app_version",
)
FIELDS = FIELDS_V1 + (
    "settings_left", "settings_right", "stimulus_left_sha256", "stimulus_right_sha256",
    "excerpt_start_s", "excerpt_duration_s", "flags",
    "study_id", "listener_id", "listener_index", "check", "check_passed", "completion_code", "questionnaire",
)
CHOICES = ("left", "right", "tie", "both_bad")
#: Listening checks a study mixes in: the same sound on both sides (the right answer is a tie), and
#: the input against a clearly degraded anchor (the anchor must lose).
CHECKS = ("identical", "anchor")
#: Longest accepted value (characters) of each free-text field; longer ones are refused.
TEXT_LIMITS = {
    "session_id": 64, "trial_id": 64, "clip_id": 200, "clip_source": 40, "prompt": 500,
    "restorer_left": 400, "restorer_right": 400, "settings_left": 4000, "settings_right": 4000,
    "stimulus_left_sha256": 64, "stimulus_right_sha256": 64, "flags": 200,
    "study_id": 64, "listener_id": 64, "completion_code": 32, "questionnaire": 1000,
}
#: Separator of the names of a merged candidate (outputs that sound the same), e.g. ``input=unet_bwe``.
MERGED = "="
NUMERIC = ("listened_left_s", "listened_right_s", "decision_s", "loudness_target_lufs", "excerpt_start_s",
           "excerpt_duration_s", "listener_index")
#: Environment variable naming the vote file; otherwise /data (a Space's persistent disk) or ./votes.
VOTES_PATH_ENV = "RESTORELAB_VOTES_PATH"
#: A Hugging Face Space's persistent disk, where it has one.
PERSISTENT_DATA = Path("/data")
#: Environment variable naming a Hugging Face dataset repository to sync the votes folder to.
VOTES_DATASET_ENV = "RESTORELAB_VOTES_DATASET"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
#: Rows longer than this are damaged or foreign, never a vote this module wrote.
_MAX_ROW_CHARS = 1 << 20
#: How many physical lines a row of an older version (which kept line breaks in prompts) may span.
_MAX_LEGACY_LINES = 50
csv.field_size_limit(max(csv.field_size_limit(), _MAX_ROW_CHARS))


class VoteLogError(ValueError):
    """The vote log cannot be written (or is not a vote log); the message is fit for a listener."""


def new_session_id() -> str:
    """A random, unguessable listener id (128 bits), unrelated to who or where they are."""
    return secrets.token_hex(16)


def new_trial_id() -> str:
    return secrets.token_hex(8)


def single_line(text: str) -> str:
    """``text`` with line breaks and other control characters replaced by spaces."""
    return _CONTROL.sub(" ", text)


@dataclass(frozen=True)
class Vote:
    """One blind A/B judgement. ``winner`` is derived: the chosen candidate, ``tie`` or ``both_bad``.

    ``restorer_left``/``restorer_right`` name the candidates; outputs that sound
    the same are one candidate named by all of them joined with :data:`MERGED`.
    ``settings_*`` hold each side's full settings as JSON, ``stimulus_*_sha256``
    the hash of each side's audio before the excerpt, level matching and dither.
    ``flags`` lists the listening rules the session broke (see
    :mod:`restorelab.listening.trials`), separated by spaces.

    In a study, ``study_id``, ``listener_id`` and ``listener_index`` (the
    listener's place in the design) say who voted, ``check`` names a check
    trial (:data:`CHECKS`) and ``check_passed`` whether it was answered right;
    ``completion_code`` is the listener's code and ``questionnaire`` their
    answers as JSON.
    """

    session_id: str
    trial_id: str
    clip_id: str
    clip_source: str
    prompt: str
    restorer_left: str
    restorer_right: str
    choice: str
    listened_left_s: float
    listened_right_s: float
    decision_s: float
    loudness_target_lufs: float
    timestamp_utc: str = ""
    app_version: str = __version__
    settings_left: str = ""
    settings_right: str = ""
    stimulus_left_sha256: str = ""
    stimulus_right_sha256: str = ""
    excerpt_start_s: float = 0.0
    excerpt_duration_s: float = 0.0
    flags: str = ""
    study_id: str = ""
    listener_id: str = ""
    listener_index: int = -1
    check: str = ""
    check_passed: bool | None = None
    completion_code: str = ""
    questionnaire: str = ""

    def __post_init__(self) -> None:
        if self.choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}, got {self.choice!r}")
        if self.check and self.check not in CHECKS:
            raise ValueError(f"check must be one of {', '.join(CHECKS)}, got {self.check!r}")
        if self.restorer_left == self.restorer_right and self.check != "identical":
            raise ValueError("a pair needs two different restorers")
        for name in ("listened_left_s", "listened_right_s", "decision_s", "excerpt_start_s", "excerpt_duration_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name, limit in TEXT_LIMITS.items():
            if len(getattr(self, name)) > limit:
                raise ValueError(f"the {name.replace('_', ' ')} is {len(getattr(self, name))} characters long; "
                                 f"the limit is {limit}")
        if not self.timestamp_utc:
            stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            object.__setattr__(self, "timestamp_utc", stamp)

    @property
    def winner(self) -> str:
        if self.choice == "left":
            return self.restorer_left
        if self.choice == "right":
            return self.restorer_right
        return self.choice

    def row(self) -> dict[str, str]:
        values = asdict(self)
        values["winner"] = self.winner
        for name in ("listened_left_s", "listened_right_s", "decision_s", "excerpt_start_s", "excerpt_duration_s"):
            values[name] = f"{values[name]:.3f}"
        values["loudness_target_lufs"] = f"{self.loudness_target_lufs:.1f}"
        values["listener_index"] = "" if self.listener_index < 0 else str(self.listener_index)
        values["check_passed"] = {None: "", True: "pass", False: "fail"}[self.check_passed]
        return {field: single_line(str(values[field])) for field in FIELDS}


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


@dataclass(frozen=True)
class Schema:
    """The columns of one kind of append-only log, and what makes a row of it whole.

    Attributes:
        fields: every column, in order; later versions only ever append.
        first_fields: the columns of the first version (the shortest header accepted).
        key: a column whose value must be one of ``key_values`` in every whole row.
        numeric: columns kept as numbers in spreadsheet exports.
        name, entry, unit: what one row is, what one append records and what it is about,
            for messages ("vote", "vote" and "pair"; "rating", "ratings" and "page").
    """

    fields: tuple[str, ...]
    first_fields: tuple[str, ...]
    key: str
    key_values: tuple[str, ...]
    numeric: tuple[str, ...]
    name: str = "vote"
    entry: str = "vote"
    unit: str = "pair"

    def known_header(self, line: str) -> tuple[str, ...] | None:
        """The columns of a header line of this log (this version or an older one), else ``None``."""
        try:
            columns = tuple(next(csv.reader([line])))
        except (csv.Error, StopIteration):
            return None
        known = len(columns) >= len(self.first_fields) and self.fields[: len(columns)] == columns
        return columns if known else None

    @property
    def header_line(self) -> str:
        return _csv_line(list(self.fields))

    @property
    def was(self) -> str:
        return "were" if self.entry.endswith("s") else "was"


VOTES = Schema(FIELDS, FIELDS_V1, "choice", CHOICES, NUMERIC)


@dataclass
class ReadResult:
    """Rows of a log (each with every column of its schema) and the damaged lines skipped."""

    rows: list[dict[str, str]]
    problems: list[str]


class VoteLog:
    """An append-only vote CSV at ``path`` (created with its header on first write).

    Other logs with the same guarantees (whole rows under a lock, damaged rows
    skipped and reported, older headers upgraded) subclass it with another
    :class:`Schema`.
    """

    schema = VOTES

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    # -- writing ------------------------------------------------------------
    def append(self, vote: Vote) -> None:
        """Append one row durably, or raise and leave the file as it was.

        The row is written under an exclusive lock and ``fsync``-ed. A file of
        an older version is first rewritten with the current header.

        Raises:
            VoteLogError: the file is not a vote log, or the row could not be
                written (full disk, read-only file or folder, any I/O error).
        """
        self.append_rows([vote.row()])

    def append_rows(self, rows: list[dict[str, str]]) -> None:
        """Append ``rows`` (every column of the schema, single-line values) together: all or none."""
        schema = self.schema
        line = "".join(_csv_line([row[field] for field in schema.fields]) for row in rows).encode("utf-8")
        for _ in range(10):  # another process may upgrade the file between our open and our lock
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                raise self._error(exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not _same_file(fd, self.path):
                    continue
                size = os.fstat(fd).st_size
                data = line
                if size == 0:
                    data = schema.header_line.encode("utf-8") + line
                else:
                    first = _first_line(fd)
                    columns = schema.known_header(first)
                    if columns is None:
                        raise VoteLogError(f"The {schema.name} log on the server is not a {schema.name} file of this app; "
                                           "nothing was written to it.")
                    if columns != schema.fields:
                        self._upgrade()
                        continue
                    if os.pread(fd, 1, size - 1) != b"\n":
                        data = b"\n" + line  # a torn last line from a crash stays separate
                _write_all(fd, data, size, self)
                return
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        raise VoteLogError(f"The log kept changing while your {schema.entry} {schema.was} written; please try again.")

    def _upgrade(self) -> None:
        """Rewrite an older version's file with the current header (called under its lock)."""
        rows = self.read_all().rows
        fields = self.schema.fields
        text = self.schema.header_line + "".join(_csv_line([single_line(row[field]) for field in fields])
                                                 for row in rows)
        try:
            with atomic_replace(self.path, ".upgrade") as tmp:
                with open(tmp, "w", encoding="utf-8", newline="") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:
            raise self._error(exc) from None
        LOG.info("%s: upgraded to the current columns (%d rows kept)", self.path, len(rows))

    def _error(self, exc: OSError) -> VoteLogError:
        LOG.error("could not write the log %s: %s", self.path, exc)
        log = f"the {self.schema.name} log"
        why = {errno.ENOSPC: "the server's disk is full", errno.EDQUOT: "the server's disk quota is used up",
               errno.EROFS: f"{log} is on a read-only disk", errno.EACCES: f"{log} is read-only",
               errno.EPERM: f"{log} is read-only"}.get(exc.errno, f"the server could not write {log}")
        return VoteLogError(f"Your {self.schema.entry} could not be saved: {why}. Nothing was recorded for "
                            f"this {self.schema.unit}; please tell the organiser of this test.")

    # -- reading ------------------------------------------------------------
    def read(self) -> list[dict[str, str]]:
        """Every well-formed row; damaged rows are skipped (see :meth:`read_all` for which)."""
        return self.read_all().rows

    def read_all(self) -> ReadResult:
        """Every well-formed row, and a note per damaged line skipped.

        Rows of older versions get the columns added since, empty. A row whose
        field count or choice is wrong, or that is cut off, is skipped and
        reported; the rows after it are read as usual.

        Raises:
            VoteLogError: the file exists but is not a vote log (its header is foreign).
        """
        if not self.path.exists():
            return ReadResult([], [])
        with open(self.path, "rb") as handle:
            lines = handle.read().decode("utf-8", "replace").splitlines(keepends=True)
        if not lines:
            return ReadResult([], [])
        schema = self.schema
        columns = schema.known_header(lines[0])
        if columns is None:
            raise VoteLogError(f"The {schema.name} log on the server is not a {schema.name} file of this app.")
        rows: list[dict[str, str]] = []
        problems: list[str] = []
        index = 1
        # Rows of this version are single lines; older versions kept line breaks in quoted prompts.
        max_lines = 1 if columns == schema.fields else _MAX_LEGACY_LINES
        while index < len(lines):
            parsed = _parse_row(lines, index, columns, max_lines, schema)
            if parsed is None:
                problems.append(f"line {index + 1}: not a complete {schema.name} row, skipped")
                index += 1
            else:
                rows.append(parsed[0])
                index += parsed[1]
        return ReadResult(rows, problems)


def _parse_row(lines: list[str], start: int, columns: tuple[str, ...], max_lines: int,
               schema: Schema) -> tuple[dict[str, str], int] | None:
    """The row beginning at ``lines[start]`` and how many lines it spans, or None if it is damaged.

    A line with an open quote continues on the next ones, up to ``max_lines`` in all.
    """
    text = ""
    for used in range(1, max_lines + 1):
        if start + used > len(lines):
            break
        text += lines[start + used - 1]
        if len(text) > _MAX_ROW_CHARS:
            break
        if text.count('"') % 2:  # an open quote: the row continues on the next line
            continue
        try:
            values = next(csv.reader([text], strict=True))
        except (csv.Error, StopIteration):
            return None
        if len(values) != len(columns) or values[columns.index(schema.key)] not in schema.key_values:
            return None
        row = dict.fromkeys(schema.fields, "")
        row.update(zip(columns, values))
        return row, used
    return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _first_line(fd: int) -> str:
    head = os.pread(fd, 64 * 1024, 0)
    return head.split(b"\n", 1)[0].decode("utf-8", "replace") + "\n"


def _write_all(fd: int, data: bytes, size: int, log: VoteLog) -> None:
    """Write ``data`` at the end of ``fd`` and sync it, or truncate back to ``size`` and raise."""
    view = memoryview(data)
    try:
        written = 0
        while written < len(data):
            count = os.write(fd, view[written:])
            if count <= 0:
                raise OSError(errno.ENOSPC, "no bytes written")
            written += count
        os.fsync(fd)
    except OSError as exc:
        try:
            os.ftruncate(fd, size)
        except OSError:
            LOG.error("%s: could not remove a partly written row after %s", log.path, exc)
        raise log._error(exc) from None


def neutralise(value: str) -> str:
    """Make a text cell inert in spreadsheets: a leading ``= + - @`` (or tab/CR) gets a ``'``."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_csv(rows: list[dict[str, str]], schema: Schema = VOTES) -> str:
    """The rows as CSV text with every text field neutralised against formula injection.

    Numeric fields are kept as numbers (a negative LUFS target is a number, not a formula).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(schema.fields)
    numeric = schema.numeric
    for row in rows:
        values = [(field, row.get(field, "")) for field in schema.fields]
        writer.writerow([value if field in numeric and _is_number(value) else neutralise(value)
                         for field, value in values])
    return buffer.getvalue()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: A session is left out for hasty voting once this many of its votes (and half of them) are ``fast``.
MIN_FAST_VOTES = 3


def flagged_sessions(rows: list[dict[str, str]]) -> set[str]:
    """Sessions that broke the listening rules: a vote refused for its pace (``rate``), or at
    least :data:`MIN_FAST_VOTES` votes, and half of all theirs, decided faster than the rules
    expect (``fast``). One quick decision is a listener's right; a habit of them is a script's."""
    votes: dict[str, int] = {}
    fast: dict[str, int] = {}
    flagged = set()
    for row in rows:
        flags = row["flags"].split()
        session = row["session_id"]
        votes[session] = votes.get(session, 0) + 1
        fast[session] = fast.get(session, 0) + ("fast" in flags)
        if "rate" in flags:
            flagged.add(session)
    return flagged | {session for session, count in fast.items()
                      if count >= MIN_FAST_VOTES and 2 * count >= votes[session]}


def default_votes_path() -> Path:
    """``$RESTORELAB_VOTES_PATH``, else ``/data/votes.csv`` where a persistent ``/data`` exists, else ``votes/votes.csv``."""
    configured = os.environ.get(VOTES_PATH_ENV)
    if configured:
        return Path(configured)
    if PERSISTENT_DATA.is_dir() and os.access(PERSISTENT_DATA, os.W_OK):
        return PERSISTENT_DATA / "votes.csv"
    return Path("votes") / "votes.csv"


def start_dataset_sync(path: Path, *beside: Path, every_minutes: float = 5.0):
    """Push the votes folder (the vote log, and the logs ``beside`` it) to ``$RESTORELAB_VOTES_DATASET``
    with scheduled commits, if configured.

    Returns the ``huggingface_hub.CommitScheduler`` or ``None`` when the
    variable is unset. Needs ``huggingface_hub`` and a write token (``HF_TOKEN``).
    """
    repo_id = os.environ.get(VOTES_DATASET_ENV)
    if not repo_id:
        return None
    from huggingface_hub import CommitScheduler

    return CommitScheduler(repo_id=repo_id, repo_type="dataset", folder_path=path.parent, path_in_repo="votes",
                           every=every_minutes, allow_patterns=[path.name, *(other.name for other in beside)])
