"""Figures from analysis numbers: spectrogram grids, PSD overlays, metric-change bars.

Every figure is drawn from numbers :mod:`restorelab.analysis` measured (spectra, metric rows) and
returned as a matplotlib ``Figure`` (or a plotly one); :func:`save` writes it atomically. Figures
are made without pyplot: nothing global keeps them (no closing needed), several request threads
can draw at once, and no interactive-drawing hook runs on every change.
:func:`display_spectrograms` shrinks a clip's spectrograms to what a panel shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from restorelab import analysis

PASS_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"
NEUTRAL_COLOUR = "#607d8b"


#: Largest spectrogram drawn per panel: a panel is a few hundred pixels each way, fewer than a clip
#: has frames or a linear spectrogram has bins, and drawing (or holding) more costs for nothing.
DISPLAY_COLUMNS, DISPLAY_ROWS = 600, 400


def display_spectrograms(audio: np.ndarray, sample_rate: int, kinds: tuple[str, ...] = ("mel", "linear")):
    """A clip's spectrograms for panels of :func:`spectrogram_grid`, from one pass over it: kind
    (``mel``, ``linear``) -> ``(times_s, freqs_hz, level_db)`` with at most :data:`DISPLAY_COLUMNS`
    frames and :data:`DISPLAY_ROWS` bins, each the loudest of its run (so transients and tones stay
    visible), as float32. Computed a block at a time, so a long clip never has its whole
    spectrogram in memory."""
    shown = {}
    for kind, (times, freqs, level) in analysis.spectrograms_db(audio, sample_rate, kinds,
                                                                 max_columns=DISPLAY_COLUMNS).items():
        step = -(-level.shape[0] // DISPLAY_ROWS)
        shown[kind] = times, freqs[::step], analysis.loudest_of_runs(level, step, axis=0).astype(np.float32)
    return shown


def figure_data(audio: np.ndarray, sample_rate: int, spectrograms: tuple[str, ...] = ("mel", "linear")) -> dict:
    """What a comparison's figures draw of one clip: its :func:`display_spectrograms` of the kinds
    ``spectrograms`` and its Welch PSD (``psd``, :func:`analysis.welch_psd_db`). Small, so it can be
    kept after the clip's audio is let go."""
    return {**display_spectrograms(audio, sample_rate, spectrograms), "psd": analysis.welch_psd_db(audio, sample_rate)}


def spectrogram_grid(spectra: dict[str, tuple], kind: str = "mel", dynamic_range_db: float = 90.0):
    """One spectrogram per clip, all on the same colour scale (max over all clips).

    Args:
        spectra: clip name -> one of its :func:`display_spectrograms`.
        kind: ``mel`` or ``linear`` (the axis labels).
        dynamic_range_db: the colour scale spans this far below the loudest bin.
    """
    vmax = max(float(level.max()) for _, _, level in spectra.values())
    vmin = vmax - dynamic_range_db
    n = len(spectra)
    cols = min(n, 3)
    rows = -(-n // cols)
    # A fixed layout (no constrained layout: solving it takes longer than drawing), the axis labels
    # on the outer panels only, the names large enough to read at page size.
    width, height = 4.2 * cols + 1.0, 2.9 * rows + 0.8  # inches: the panels and the margins around them
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    fig.subplots_adjust(left=0.9 / width, right=1 - 1.2 / width, bottom=0.5 / height, top=1 - 0.7 / height,
                        wspace=0.08, hspace=0.28)
    image = None
    for index, (ax, (name, (times, freqs, level))) in enumerate(zip(axes.flat, spectra.items())):
        extent = (times[0], times[-1] if len(times) > 1 else 1.0, 0, level.shape[0])
        image = ax.imshow(level, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax,
                          cmap="magma", interpolation="nearest")
        ticks = np.linspace(0, level.shape[0] - 1, 5).astype(int)
        ax.set_yticks(ticks, [f"{freqs[i] / 1000:.1f}" for i in ticks])
        ax.set_title(name, fontsize=12)
        if index % cols == 0:
            ax.set_ylabel("Mel band centre (kHz)" if kind == "mel" else "Frequency (kHz)")
        if index + cols >= n:
            ax.set_xlabel("Time (s)")
            ax.xaxis.set_tick_params(labelbottom=True)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, cax=fig.add_axes((1 - 1.0 / width, 0.15, 0.12 / width, 0.7)),
                     label="dB re full scale")
    fig.suptitle(f"{'Mel' if kind == 'mel' else 'Linear'} spectrograms (shared colour scale)", fontsize=13)
    return fig


def psd_overlay(psds: dict[str, tuple[np.ndarray, np.ndarray]], sample_rate: int, dynamic_range_db: float = 120.0):
    """Welch PSD of every clip on one log-frequency axis, down to ``dynamic_range_db`` below the top.

    Args:
        psds: clip name -> its :func:`analysis.welch_psd_db`.
    """
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.subplots()
    top = -np.inf
    for name, (freqs, level) in psds.items():
        keep = freqs > 0
        top = max(top, float(level[keep].max()))
        ax.semilogx(freqs[keep], level[keep], label=name, linewidth=1.6 if name == analysis.INPUT_ROW else 1.0)
    ax.set_xlim(20, sample_rate / 2)
    if np.isfinite(top):
        ax.set_ylim(top - dynamic_range_db, top + 5)
    ax.set_xlabel("Frequency (Hz)")
    ax.set_ylabel("PSD (dB re FS²/Hz)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Power spectral density (Welch, 4096-point)")
    return fig


def metric_change_bars(rows: list[dict], metrics: tuple[str, ...] = (
        "hf_energy_db", "hpss_ratio_db", "log_mel_distance", "noise_floor_db")):
    """Change of each metric against the input row, bars coloured by the clip's verdict."""
    baseline = rows[0]
    outputs = rows[1:]
    fig = Figure(figsize=(3.6 * len(metrics), 3.6), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        names = [row["name"] for row in outputs]
        delta = [row[metric] - (baseline[metric] if metric != "log_mel_distance" else 0.0)
                 for row in outputs]
        colours = [NEUTRAL_COLOUR if "pass" not in row else (PASS_COLOUR if row["pass"] else FAIL_COLOUR)
                   for row in outputs]
        ax.barh(names, delta, color=colours)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(metric if metric == "log_mel_distance" else f"Δ {metric}", fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        ax.invert_yaxis()
    fig.suptitle("Change against the input (green: passes every check, red: fails one)")
    return fig


def save(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a figure through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        # Light PNG compression: a spectrogram hardly compresses, and the heavier levels cost time.
        fig.savefig(tmp, dpi=dpi, **({"pil_kwargs": {"compress_level": 1}} if path.suffix == ".png" else {}))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# -- interactive (plotly) ------------------------------------------------------

def psd_overlay_plotly(psds: dict[str, tuple[np.ndarray, np.ndarray]], sample_rate: int,
                       dynamic_range_db: float = 120.0):
    """The PSD overlay (clip name -> its :func:`analysis.welch_psd_db`) as an interactive plotly
    figure (log-frequency axis).

    Two views, switched by buttons in the figure without a round trip to the server: every
    clip's PSD, and each output's difference from the input (where curves that lie on top of
    each other in the first come apart). Clicking a name in the legend hides its curve.
    """
    import plotly.colors
    import plotly.graph_objects as go

    spectra = psds
    freqs = next(iter(spectra.values()))[0]
    keep = freqs > 0
    base = spectra.get(analysis.INPUT_ROW, next(iter(spectra.values())))[1]
    top = max(float(level[keep].max()) for _, level in spectra.values())
    palette = plotly.colors.qualitative.Plotly + plotly.colors.qualitative.Dark24
    fig = go.Figure()
    names = list(spectra)
    for difference in (False, True):
        for index, (name, (_, level)) in enumerate(spectra.items()):
            fig.add_trace(go.Scatter(x=freqs[keep], y=(level - base if difference else level)[keep], name=name,
                                     mode="lines", legendgroup=name, visible=not difference,
                                     line={"width": 2.5 if name == analysis.INPUT_ROW else 1.2,
                                           "color": palette[index % len(palette)]}))
    absolute_range = [top - dynamic_range_db, top + 5] if np.isfinite(top) else None
    shown = [True] * len(names) + [False] * len(names)
    fig.update_layout(
        title="Power spectral density (Welch, 4096-point). Click a name to hide its curve.", height=520,
        margin={"l": 70, "r": 20, "t": 90, "b": 150},
        legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},  # below: clear of the axes and title
        updatemenus=[{"type": "buttons", "direction": "right", "x": 1, "xanchor": "right", "y": 1.18,
                      "buttons": [
                          {"label": "PSD", "method": "update",
                           "args": [{"visible": shown}, {"yaxis.title.text": "PSD (dB re FS²/Hz)",
                                                        "yaxis.range": absolute_range}]},
                          {"label": "Difference from the input", "method": "update",
                           "args": [{"visible": shown[::-1]}, {"yaxis.title.text": "dB relative to the input",
                                                              "yaxis.range": [-40, 20]}]}]}])
    fig.update_xaxes(type="log", title="Frequency (Hz)", range=[np.log10(20), np.log10(sample_rate / 2)])
    fig.update_yaxes(title="PSD (dB re FS²/Hz)", range=absolute_range)
    return fig


def strengths_with_intervals(rows: list[dict], title: str):
    """Bradley-Terry strengths as points with their 95 % intervals, best at the top."""
    fig = Figure(figsize=(7, 0.45 * max(len(rows), 2) + 1.2), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(rows))[::-1]
    for y, row in zip(positions, rows):
        ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=NEUTRAL_COLOUR, linewidth=2)
        ax.plot(row["strength"], y, "o", color=PASS_COLOUR if row["strength"] >= 0 else FAIL_COLOUR)
    ax.set_yticks(positions, [row["name"] for row in rows])
    ax.axvline(0, color="black", linewidth=0.8, alpha=0.5)
    ax.set_xlabel("strength (log-odds, mean zero) with 95 % interval")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    return fig


def heatmap_plotly(matrix: np.ndarray, names: list[str], title: str, fmt: str = ".2f"):
    """A labelled heatmap (row beats column). Cells with no value are grey and marked "–", never
    coloured like a value (a win rate of 0.5 is white); a count's colour bar has whole-number ticks;
    the figure grows with the number of names so every cell stays readable."""
    import plotly.graph_objects as go

    text = [["–" if not np.isfinite(v) else format(v, fmt) for v in row] for row in matrix]
    rates = "win" in title.lower()
    finite = matrix[np.isfinite(matrix)]
    colorbar = {} if rates else {"tickformat": "d", "dtick": max(1, int(np.ceil((finite.max() if finite.size else 1) / 5)))}
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, text=text, texttemplate="%{text}", textfont={"size": 13},
                               colorscale="RdBu" if rates else "Blues", zmid=0.5 if rates else None,
                               zmin=0.0, zmax=1.0 if rates else None, xgap=2, ygap=2,
                               colorbar=colorbar, hovertemplate="%{y} vs %{x}: %{text}<extra></extra>"))
    size = 160 + 48 * len(names)
    fig.update_layout(title=title, height=size, margin={"l": 150, "r": 20, "t": 50, "b": 130},
                      xaxis_title="opponent", yaxis_title="restorer", plot_bgcolor="#bdbdbd")
    fig.update_xaxes(tickangle=-35, showgrid=False)
    fig.update_yaxes(autorange="reversed", showgrid=False)  # read like a table: first row on top
    return fig


def mushra_scores(scores: dict[str, list[float]], means: list[dict], title: str):
    """MUSHRA scores per condition: box plots of every rating, and each mean with its 95 % interval.

    ``means`` rows have ``condition``, ``mean``, ``ci_low`` and ``ci_high``; the conditions are drawn in their order.
    """
    names = [row["condition"] for row in means]
    fig = Figure(figsize=(max(6.0, 0.9 * len(names) + 2), 4.6), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(1, len(names) + 1)
    ax.boxplot([scores.get(name, []) for name in names], positions=positions, widths=0.5, showfliers=True,
               medianprops={"color": NEUTRAL_COLOUR})
    for x, row in zip(positions, means):
        ax.plot([x + 0.32, x + 0.32], [row["ci_low"], row["ci_high"]], color=PASS_COLOUR, linewidth=2)
        ax.plot(x + 0.32, row["mean"], "o", color=PASS_COLOUR)
    for level, label in ((20, "bad"), (40, "poor"), (60, "fair"), (80, "good")):
        ax.axhline(level, color="black", linewidth=0.5, alpha=0.3)
        ax.text(0.45, level - 10, label, fontsize=8, alpha=0.6, va="center")
    ax.text(0.45, 90, "excellent", fontsize=8, alpha=0.6, va="center")
    ax.set_xticks(positions, names, rotation=30, ha="right")
    ax.set_xlim(0.3, len(names) + 0.7)
    ax.set_ylim(-2, 102)
    ax.set_ylabel("score (box: ratings; dot and bar: mean, 95 % interval)")
    ax.set_title(title, fontsize=10)
    return fig


def metric_scatter(points: list[dict], metrics: tuple[str, ...], title: str):
    """Each (item, condition) mean score against each metric, one panel per metric that has values."""
    metrics = [m for m in metrics if any(p.get(m) is not None for p in points)]
    fig = Figure(figsize=(4.2 * max(len(metrics), 1), 3.8), layout="constrained")
    axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        shown = [p for p in points if p.get(metric) is not None]
        ax.scatter([p[metric] for p in shown], [p["score"] for p in shown], s=18, color=NEUTRAL_COLOUR)
        ax.set_xlabel(metric)
        ax.set_ylabel("mean score")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return fig
