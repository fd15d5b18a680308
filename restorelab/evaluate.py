"""Reference-based evaluation: degrade clean music (or pair degraded with clean), restore, score."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from restorelab import analysis
from restorelab.audio import WORKING_RATE, load_audio
from restorelab.degrade import PRESETS, degrade
from restorers import build_available, output_names, restore_all

INPUT_ROW = analysis.INPUT_ROW


@dataclass
class Evaluation:
    """Per-clip rows and the per-restorer summary (mean and standard deviation).

    The unprocessed (degraded) input is scored like a restorer and always comes first.
    """

    per_clip: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    cutoff_hz: float | None = None


def pairs_from_preset(clean_files: Iterable[Path], preset: str, seed: int = 0):
    """Yield ``(clip_id, clean, degraded)``; each clip gets seed ``seed + index``."""
    for index, path in enumerate(clean_files):
        clean = load_audio(path).audio
        degraded, _ = degrade(clean, WORKING_RATE, preset, seed=seed + index)
        yield path.stem, clean, degraded


def pairs_from_folders(degraded_files: Iterable[Path], reference_dir: Path):
    """Yield ``(clip_id, clean, degraded)`` matching files by stem."""
    references = {p.stem: p for p in Path(reference_dir).rglob("*") if p.is_file()}
    for path in degraded_files:
        if path.stem not in references:
            raise FileNotFoundError(f"{path}: no reference with the stem {path.stem!r} in {reference_dir}")
        clean = load_audio(references[path.stem]).audio
        degraded = load_audio(path).audio
        n = min(clean.shape[-1], degraded.shape[-1])
        yield path.stem, clean[:, :n], degraded[:, :n]


def evaluate(pairs, names: list[str] | None = None, cutoff_hz: float | None = None,
             with_visqol: bool = False, on_clip: Callable[[str], None] | None = None,
             params: dict[str, dict] | None = None) -> Evaluation:
    """Score the input and every available restorer on each ``(clip_id, clean, degraded)``.

    ``on_clip`` is called with each clip's id once it has been scored; ``params``
    overrides restorer parameters (name -> {param: value}).
    """
    restorers, skipped = build_available(output_names(names), params)
    result = Evaluation(cutoff_hz=cutoff_hz, skipped=skipped)
    for clip_id, clean, degraded in pairs:
        candidates = {INPUT_ROW: degraded}
        candidates.update(restore_all(restorers, degraded, WORKING_RATE))
        for name, audio in candidates.items():
            row = analysis.reference_metrics(clean, audio, WORKING_RATE, cutoff_hz, with_visqol)
            result.per_clip.append({"clip": clip_id, "restorer": name, **row})
        if on_clip:
            on_clip(clip_id)
    result.summary = summarise(result.per_clip, [INPUT_ROW, *restorers])
    return result


def evaluate_no_reference(files: Iterable[Path], names: list[str] | None = None,
                          thresholds: analysis.VerdictThresholds = analysis.VerdictThresholds(),
                          on_clip: Callable[[str], None] | None = None,
                          params: dict[str, dict] | None = None) -> Evaluation:
    """No-reference rows for every clip (the input first), verdicts, and a summary.

    For clips without a clean original, such as real MusicGen outputs. The
    summary adds each restorer's pass rate of every verdict check.
    """
    restorers, skipped = build_available(output_names(names), params)
    result = Evaluation(skipped=skipped)
    goals = {name: restorer.goal for name, restorer in restorers.items()}
    for path in files:
        clip = load_audio(path)
        outputs = restore_all(restorers, clip.audio, clip.sample_rate)
        for row in analysis.compare_no_reference(clip.audio, outputs, clip.sample_rate, thresholds, goals):
            name = row.pop("name")
            result.per_clip.append({"clip": path.stem, "restorer": name, **row})
        if on_clip:
            on_clip(path.stem)
    result.summary = summarise(result.per_clip, [INPUT_ROW, *restorers], analysis.NO_REFERENCE_COLUMNS,
                               rates=analysis.VERDICT_CHECKS)
    return result


def summarise(per_clip: list[dict], order: list[str], metrics=analysis.REFERENCE_COLUMNS,
              rates: tuple[str, ...] = ()) -> list[dict]:
    """Mean and standard deviation per restorer of every metric; share of clips passing each check."""
    metrics = [c for c in metrics if any(c in row for row in per_clip)]
    summary = []
    for name in order:
        rows = [row for row in per_clip if row["restorer"] == name]
        if not rows:
            continue
        entry: dict = {"restorer": name, "clips": len(rows)}
        for metric in metrics:
            values = np.array([row[metric] for row in rows], dtype=np.float64)
            entry[f"{metric}_mean"] = float(np.mean(values))
            entry[f"{metric}_std"] = float(np.std(values))
        for check in rates:
            if all(check in row for row in rows):
                entry[f"{check}_rate"] = float(np.mean([bool(row[check]) for row in rows]))
        summary.append(entry)
    return summary


def preset_cutoff(preset: str) -> float | None:
    return PRESETS[preset].cutoff_hz
