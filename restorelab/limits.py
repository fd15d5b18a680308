"""The app's resource limits: what one visitor may ask of a shared server.

Each limit is a named field with its default written once here; a deployment
changes one with an environment variable ``RESTORELAB_<FIELD>`` in upper case
(``RESTORELAB_MAX_CLIP_S=60``). Every limit, when hit, gets a message that
says which one and what is allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


def env_overrides(cls) -> dict:
    """Values for a settings dataclass's fields from ``RESTORELAB_<FIELD>`` environment variables.

    Raises:
        ValueError: a variable is set to something that is not a number.
    """
    values = {}
    for item in fields(cls):
        name = f"RESTORELAB_{item.name.upper()}"
        text = os.environ.get(name)
        if text is None or not text.strip():
            continue
        kind = int if item.type in (int, "int") else float
        try:
            values[item.name] = kind(text)
        except ValueError:
            raise ValueError(f"{name}={text!r} is not a valid {kind.__name__}") from None
    return values


class EnvSettings:
    """A settings dataclass whose fields a deployment can set with ``RESTORELAB_<FIELD>``."""

    @classmethod
    def from_env(cls):
        return cls(**env_overrides(cls))


@dataclass(frozen=True)
class Limits(EnvSettings):
    """Bounds on what the app accepts and keeps.

    Attributes:
        max_prompt_chars: longest MusicGen prompt (MusicGen's text encoder
            reads about 512 tokens; a longer prompt only costs memory).
        max_generation_s: longest clip MusicGen is asked for.
        max_upload_mb: largest file the server accepts (uploads and melodies).
        max_clip_s: longest clip the app works on (longer files: the command line).
        max_jobs_per_session: generations or comparisons one visitor may run at once.
        max_work_disk_mb: disk the app's work files (comparisons, source
            players, exports) may use; the oldest go first.
        work_max_age_s: work files older than this are removed.
        max_stimulus_memory_mb: trial audio kept in memory waiting to be fetched.
        max_output_cache_mb: restorer outputs kept in memory so that repeating a comparison with
            the same clip and settings does not run the restorers again.
    """

    max_prompt_chars: int = 500
    max_generation_s: float = 30.0
    max_upload_mb: float = 50.0
    max_clip_s: float = 30.0
    max_jobs_per_session: int = 1
    max_work_disk_mb: float = 2000.0
    work_max_age_s: float = 3600.0
    max_stimulus_memory_mb: float = 256.0
    max_output_cache_mb: float = 256.0

    def __post_init__(self) -> None:
        for item in fields(self):
            if not getattr(self, item.name) > 0:
                raise ValueError(f"{item.name} must be positive, got {getattr(self, item.name)}")
