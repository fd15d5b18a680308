"""Run several restorers on one clip and measure them side by side."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from restorelab import analysis, plots
from restorelab.audio import Clip, write_wav
from restorelab.memory import release_memory, return_large_arrays
from restorelab.report import columns_of, write_table
from restorers import build_available, output_names, restore_each

ProgressCallback = Callable[[str, int, int], None]

#: Clips up to this size (about three minutes of stereo) have an output measured while the next
#: restorer runs, and hold the outputs a later restorer is made of (``unet_restore``'s stages);
#: longer ones one output at a time, so memory does not grow with their length.
OVERLAP_MAX_BYTES = 64 << 20


@dataclass
class ComparisonFiles:
    """Where :func:`run_comparison` put everything.

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


@dataclass
class Comparison:
    """What a comparison of restorers on one clip measured and wrote.

    Attributes:
        files: the WAVs, tables and figures written.
        skipped: restorer name -> why it did not run (unavailable).
        rows: no-reference rows, the input first.
        reference_rows: reference rows (the input first) when a clean reference was given.
        settings: restorer name -> every parameter it ran with.
    """

    files: ComparisonFiles = field(default_factory=ComparisonFiles)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    reference_rows: list[dict] = field(default_factory=list)


def run_comparison(clip: Clip, outdir: str | Path, names: list[str] | None = None,
                   params: dict[str, dict[str, Any]] | None = None,
                   reference: np.ndarray | None = None, cutoff_hz: float | None = None,
                   with_visqol: bool = False, figures: bool = True,
                   progress: ProgressCallback | None = None) -> Comparison:
    """Restore ``clip`` with each named restorer (all registered ones by default), measure every
    output and write it all to ``outdir``: the input and each output as WAV, ``metrics.csv`` and
    ``metrics.md`` (``reference_metrics.*`` with a ``reference``) and, with ``figures``, the Mel and
    linear spectrograms, the PSD overlay and the metric changes as PNG.

    Each output is written, measured against the input's profile, reduced to what the figures draw
    (a display-sized spectrogram and a PSD) and let go: while the next restorer runs for a short
    clip (:data:`OVERLAP_MAX_BYTES`), before it for a long one. Memory holds the input and at most
    two outputs whatever the number of restorers (one for a long clip, for which large arrays are
    also handed back to the system as soon as they are freed: :func:`memory.return_large_arrays`),
    and a clip twice as long takes twice as long. ``passthrough`` is not run as an output: the input row already is the
    unprocessed control.

    For a short clip, a restorer made of others that run before it (``unet_restore`` after
    ``unet_denoise`` and ``unet_bwe``) is built from their outputs, held until then (two more
    outputs at most), instead of running again; a long clip's outputs are not held.
    """
    outdir = Path(outdir)
    sr = clip.sample_rate
    restorers, skipped = build_available(output_names(names), params)
    result = Comparison(skipped=skipped)
    drawn: dict[str, dict[str, tuple]] = {"mel": {}, "linear": {}, "psd": {}}
    measured: dict[str, dict] = {}

    def keep(name: str, audio: np.ndarray) -> None:
        if name != analysis.INPUT_ROW:
            measured[name] = analysis.no_reference_metrics(audio, sr, input_job.result()[1])
        result.files.wavs[name] = write_wav(outdir / f"{name}.wav", audio, sr)
        if reference is not None:
            result.reference_rows.append(
                {"name": name, **analysis.reference_metrics(reference, audio, sr, cutoff_hz, with_visqol)})
        if figures:
            for kind, data in plots.figure_data(audio, sr).items():
                drawn[kind][name] = data

    # One worker measures and writes, in order, while the next restorer runs: two outputs held at
    # once for a short clip, one for a long one (each waits for the last to be measured first).
    overlap = clip.audio.nbytes <= OVERLAP_MAX_BYTES
    if not overlap:
        return_large_arrays()  # for the rest of the process: a fifth less memory, up to 30 % more time
    order = {name: index for index, name in enumerate(restorers)}

    def before(name: str) -> None:
        if progress:
            progress(name, order[name], len(restorers))
        if not overlap:
            pending.result()
            release_memory()  # what measuring the last output left in the worker's arena

    with ThreadPoolExecutor(max_workers=1) as worker:
        input_job = worker.submit(analysis.measure_input, clip.audio, sr)
        pending = worker.submit(keep, analysis.INPUT_ROW, clip.audio)
        for name, audio in restore_each(restorers, clip.audio, sr, hold_parts=overlap, before=before):
            result.settings[name] = dataclasses.asdict(restorers[name].params)
            pending.result()
            pending = worker.submit(keep, name, audio)
            del audio
        pending.result()
        baseline = input_job.result()[0]
    if progress:
        progress("writing figures" if figures else "writing tables", len(restorers), len(restorers))
    result.rows = analysis.rows_with_verdicts(baseline, measured,
                                              goals={name: restorer.goal for name, restorer in restorers.items()})
    result.files.tables += write_metric_tables(result.rows, outdir)
    if result.reference_rows:
        ref_columns = columns_of(result.reference_rows, ("name", *analysis.REFERENCE_COLUMNS))
        write_table(result.reference_rows, ref_columns, outdir / "reference_metrics.csv",
                    outdir / "reference_metrics.md", note=analysis.SETTINGS_NOTE)
        result.files.tables += [outdir / "reference_metrics.csv", outdir / "reference_metrics.md"]
    if figures:
        result.files.figures = {
            "mel": plots.save(plots.spectrogram_grid(drawn["mel"], "mel"), outdir / "mel_spectrograms.png"),
            "linear": plots.save(plots.spectrogram_grid(drawn["linear"], "linear"),
                                 outdir / "linear_spectrograms.png"),
            "psd": plots.save(plots.psd_overlay(drawn["psd"], sr), outdir / "psd_overlay.png"),
            "metric_changes": plots.save(plots.metric_change_bars(result.rows), outdir / "metric_changes.png"),
        }
    return result


def write_metric_tables(rows: list[dict], outdir: Path) -> list[Path]:
    """``metrics.csv`` and ``metrics.md`` (with the settings note) of no-reference rows."""
    columns = ["name", *analysis.NO_REFERENCE_COLUMNS, *analysis.VERDICT_CHECKS]
    write_table(rows, columns, outdir / "metrics.csv", outdir / "metrics.md", note=analysis.SETTINGS_NOTE)
    return [outdir / "metrics.csv", outdir / "metrics.md"]
