"""Tables: rows of metrics as CSV and Markdown, written atomically."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from restorelab.audio import atomic_write_text


def _cell(value, digits: int = 3) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "-inf" if value < 0 else "inf"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def columns_of(rows: list[dict], preferred: tuple[str, ...] = ()) -> list[str]:
    """Columns present in ``rows``: ``preferred`` ones in order, then the rest as first seen."""
    seen: list[str] = []
    for row in rows:
        for key in row:
            if key not in seen:
                seen.append(key)
    ordered = [c for c in preferred if c in seen]
    return ordered + [c for c in seen if c not in ordered]


def to_csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    return buffer.getvalue()


def to_markdown(rows: list[dict], columns: list[str], digits: int = 3) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, ""), digits) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], columns: list[str], csv_path: str | os.PathLike | None = None,
                markdown_path: str | os.PathLike | None = None, note: str = "") -> None:
    if csv_path is not None:
        atomic_write_text(Path(csv_path), to_csv(rows, columns))
    if markdown_path is not None:
        text = to_markdown(rows, columns)
        atomic_write_text(Path(markdown_path), text + (f"\n{note}\n" if note else ""))
