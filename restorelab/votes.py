"""The vote log: one module owns its schema.

An append-only CSV with a fixed header, one row per vote, written under an
exclusive lock with a single ``write`` of the whole row, so concurrent
listeners (threads or processes) can never interleave or half-write a row.
Listeners are identified by a random session id, never by an address.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from restorelab import __version__

FIELDS = (
    "timestamp_utc", "session_id", "trial_id", "clip_id", "clip_source", "prompt",
    "restorer_left", "restorer_right", "choice", "winner", "listened_left_s", "listened_right_s",
    "decision_s", "loudness_target_lufs", "app_version",
)
CHOICES = ("left", "right", "tie", "both_bad")
#: Environment variable naming the vote file; otherwise /data (a Space's persistent disk) or ./votes.
VOTES_PATH_ENV = "RESTORELAB_VOTES_PATH"
#: Environment variable naming a Hugging Face dataset repository to sync the votes folder to.
VOTES_DATASET_ENV = "RESTORELAB_VOTES_DATASET"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def new_session_id() -> str:
    """A random, unguessable listener id (128 bits), unrelated to who or where they are."""
    return secrets.token_hex(16)


def new_trial_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Vote:
    """One blind A/B judgement. ``winner`` is derived: the chosen restorer, ``tie`` or ``both_bad``."""

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

    def __post_init__(self) -> None:
        if self.choice not in CHOICES:
            raise ValueError(f"choice must be one of {', '.join(CHOICES)}, got {self.choice!r}")
        if self.restorer_left == self.restorer_right:
            raise ValueError("a pair needs two different restorers")
        for name in ("listened_left_s", "listened_right_s", "decision_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
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
        for name in ("listened_left_s", "listened_right_s", "decision_s"):
            values[name] = f"{values[name]:.3f}"
        values["loudness_target_lufs"] = f"{self.loudness_target_lufs:.1f}"
        return {field: str(values[field]) for field in FIELDS}


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


HEADER_LINE = _csv_line(list(FIELDS))


class VoteLog:
    """An append-only vote CSV at ``path`` (created with its header on first write)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def append(self, vote: Vote) -> None:
        """Append one row under an exclusive lock, as one ``write`` of the whole line.

        Raises:
            ValueError: the file exists with a different header (never appended to).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = _csv_line([vote.row()[field] for field in FIELDS]).encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size == 0:
                line = HEADER_LINE.encode("utf-8") + line
            else:
                header = os.pread(fd, len(HEADER_LINE.encode("utf-8")), 0).decode("utf-8", "replace")
                if header != HEADER_LINE:
                    raise ValueError(f"{self.path}: is not a vote log of this version (unexpected header)")
                if os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a torn last line from a crash stays separate
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def read(self) -> list[dict[str, str]]:
        """Every well-formed row (a torn or foreign row is skipped, never guessed at)."""
        if not self.path.exists():
            return []
        with open(self.path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return []
            if tuple(header) != FIELDS:
                raise ValueError(f"{self.path}: is not a vote log of this version (unexpected header)")
            return [dict(zip(FIELDS, values)) for values in reader
                    if len(values) == len(FIELDS) and values[FIELDS.index("choice")] in CHOICES]


def neutralise(value: str) -> str:
    """Make a text cell inert in spreadsheets: a leading ``= + - @`` (or tab/CR) gets a ``'``."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_csv(rows: list[dict[str, str]]) -> str:
    """The vote rows as CSV text with every text field neutralised against formula injection.

    Numeric fields are kept as numbers (a negative LUFS target is a number, not a formula).
    """
    numeric = {"listened_left_s", "listened_right_s", "decision_s", "loudness_target_lufs"}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows:
        writer.writerow([row[f] if f in numeric and _is_number(row[f]) else neutralise(row[f]) for f in FIELDS])
    return buffer.getvalue()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def default_votes_path() -> Path:
    """``$RESTORELAB_VOTES_PATH``, else ``/data/votes.csv`` where a persistent ``/data`` exists, else ``votes/votes.csv``."""
    configured = os.environ.get(VOTES_PATH_ENV)
    if configured:
        return Path(configured)
    data = Path("/data")
    if data.is_dir() and os.access(data, os.W_OK):
        return data / "votes.csv"
    return Path("votes") / "votes.csv"


def start_dataset_sync(path: Path, every_minutes: float = 5.0):
    """Push the votes folder to ``$RESTORELAB_VOTES_DATASET`` with scheduled commits, if configured.

    Returns the ``huggingface_hub.CommitScheduler`` or ``None`` when the
    variable is unset. Needs ``huggingface_hub`` and a write token (``HF_TOKEN``).
    """
    repo_id = os.environ.get(VOTES_DATASET_ENV)
    if not repo_id:
        return None
    from huggingface_hub import CommitScheduler

    return CommitScheduler(repo_id=repo_id, repo_type="dataset", folder_path=path.parent,
                           path_in_repo="votes", every=every_minutes, allow_patterns=[path.name])
