"""Run several restorers on one clip and measure them side by side."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from restorelab import analysis, plots
from restorelab.audio import Clip, write_wav
from restorelab.report import columns_of, write_table
from restorers import build_available, output_names

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class Comparison:
    """Outputs of every restorer on one clip, with their measurements.

    Attributes:
        clip: the input at the working rate.
        outputs: restorer name -> restored audio (same shape as the input).
        skipped: restorer name -> why it did not run (unavailable, failed).
        rows: no-reference rows, the input first.
        reference_rows: reference rows (the input first) when a clean reference was given.
        settings: restorer name -> every parameter it ran with.
    """

    clip: Clip
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    reference_rows: list[dict] = field(default_factory=list)


def run_comparison(clip: Clip, names: list[str] | None = None,
                   params: dict[str, dict[str, Any]] | None = None,
                   reference: np.ndarray | None = None, cutoff_hz: float | None = None,
                   with_visqol: bool = False, progress: ProgressCallback | None = None) -> Comparison:
    """Restore ``clip`` with each named restorer (all registered ones by default) and measure.

    ``passthrough`` is not run as an output: the input row already is the
    unprocessed control.
    """
    restorers, skipped = build_available(output_names(names), params)
    result = Comparison(clip=clip, skipped=skipped)
    for index, (name, restorer) in enumerate(restorers.items()):
        if progress:
            progress(name, index, len(restorers))
        result.outputs[name] = restorer(clip.audio, clip.sample_rate)
        result.settings[name] = dataclasses.asdict(restorer.params)
    if progress:
        progress("measuring", len(restorers), len(restorers))
    goals = {name: restorer.goal for name, restorer in restorers.items()}
    result.rows = analysis.compare_no_reference(clip.audio, result.outputs, clip.sample_rate, goals=goals)
    if reference is not None:
        candidates = {analysis.INPUT_ROW: clip.audio, **result.outputs}
        result.reference_rows = [
            {"name": name, **analysis.reference_metrics(reference, audio, clip.sample_rate, cutoff_hz,
                                                        with_visqol)}
            for name, audio in candidates.items()
        ]
    return result


@dataclass
class ComparisonFiles:
    """Where :func:`write_comparison` put everything.

    Attributes:
        wavs: clip name -> WAV at the working rate, the input first.
        tables: the metric tables (CSV and Markdown).
        figures: ``mel``, ``linear``, ``psd``, ``metric_changes`` -> PNG (empty without figures).
    """

    wavs: dict[str, Path] = field(default_factory=dict)
    tables: list[Path] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)

    def all(self) -> list[Path]:
        return [*self.wavs.values(), *self.tables, *self.figures.values()]


def write_metric_tables(rows: list[dict], outdir: Path) -> list[Path]:
    """``metrics.csv`` and ``metrics.md`` (with the settings note) of no-reference rows."""
    columns = ["name", *analysis.NO_REFERENCE_COLUMNS, *analysis.VERDICT_CHECKS]
    write_table(rows, columns, outdir / "metrics.csv", outdir / "metrics.md", note=analysis.SETTINGS_NOTE)
    return [outdir / "metrics.csv", outdir / "metrics.md"]


def write_comparison(result: Comparison, outdir: str | Path, figures: bool = True) -> ComparisonFiles:
    """Write the input and every output as WAV, ``metrics.csv``/``metrics.md`` and the figures."""
    outdir = Path(outdir)
    sr = result.clip.sample_rate
    clips = {analysis.INPUT_ROW: result.clip.audio, **result.outputs}
    files = ComparisonFiles(wavs={name: write_wav(outdir / f"{name}.wav", audio, sr) for name, audio in clips.items()})
    files.tables += write_metric_tables(result.rows, outdir)
    if result.reference_rows:
        ref_columns = columns_of(result.reference_rows, ("name", *analysis.REFERENCE_COLUMNS))
        write_table(result.reference_rows, ref_columns, outdir / "reference_metrics.csv",
                    outdir / "reference_metrics.md", note=analysis.SETTINGS_NOTE)
        files.tables += [outdir / "reference_metrics.csv", outdir / "reference_metrics.md"]
    if figures:
        files.figures = {
            "mel": plots.save(plots.spectrogram_grid(clips, sr, "mel"), outdir / "mel_spectrograms.png"),
            "linear": plots.save(plots.spectrogram_grid(clips, sr, "linear"), outdir / "linear_spectrograms.png"),
            "psd": plots.save(plots.psd_overlay(clips, sr), outdir / "psd_overlay.png"),
            "metric_changes": plots.save(plots.metric_change_bars(result.rows), outdir / "metric_changes.png"),
        }
    return files
