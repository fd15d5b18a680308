"""Figures from analysis numbers: spectrogram grids, PSD overlays, metric-change bars.

Every figure is drawn from numbers :mod:`restorelab.analysis` measured (spectra, metric rows) and
returned as a matplotlib ``Figure`` (a plotly one for the page's interactive figures, a PIL image
for the spectrogram grids); :func:`save` writes any of them atomically. Figures are made without
pyplot: nothing global keeps them (no closing needed), several request threads can draw at once,
and no interactive-drawing hook runs on every change.
:func:`display_spectrograms` shrinks a clip's spectrograms to what a panel shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from restorelab import analysis
from restorelab.audio import atomic_replace

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
    return {kind: panel_spectrogram(*spectrogram) for kind, spectrogram in
            analysis.spectrograms_db(audio, sample_rate, kinds, max_columns=DISPLAY_COLUMNS).items()}


def panel_spectrogram(times: np.ndarray, freqs: np.ndarray, level: np.ndarray) -> tuple:
    """A spectrogram of at most :data:`DISPLAY_COLUMNS` frames with at most :data:`DISPLAY_ROWS`
    bins, each the loudest of its run, as float32: what a panel of :func:`spectrogram_grid` draws."""
    step = -(-level.shape[0] // DISPLAY_ROWS)
    return times, freqs[::step], analysis.loudest_of_runs(level, step, axis=0).astype(np.float32)


def figure_data(audio: np.ndarray, sample_rate: int, spectrograms: tuple[str, ...] = ("mel", "linear")) -> dict:
    """What a comparison's figures draw of one clip: its :func:`display_spectrograms` of the kinds
    ``spectrograms`` and its Welch PSD (``psd``, :func:`analysis.welch_psd_db`). Small, so it can be
    kept after the clip's audio is let go."""
    return {**display_spectrograms(audio, sample_rate, spectrograms), "psd": analysis.welch_psd_db(audio, sample_rate)}


@dataclass(frozen=True)
class GridLayout:
    """Where :func:`spectrogram_grid` puts its panels, in pixels: up to three per row, each
    ``panel_width`` by ``panel_height``, with room on the left for the frequency labels, above each
    panel for its name, below the last panel of each column for the time labels, and on the right
    for the colour bar."""

    count: int
    left: ClassVar[int] = 84
    right: ClassVar[int] = 120
    top: ClassVar[int] = 72
    bottom: ClassVar[int] = 56
    gap_x: ClassVar[int] = 16
    gap_y: ClassVar[int] = 40
    panel_width: ClassVar[int] = 420
    panel_height: ClassVar[int] = 240

    @property
    def columns(self) -> int:
        return min(self.count, 3)

    @property
    def rows(self) -> int:
        return -(-self.count // self.columns)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the whole image."""
        return (self.left + self.columns * self.panel_width + (self.columns - 1) * self.gap_x + self.right,
                self.top + self.rows * self.panel_height + (self.rows - 1) * self.gap_y + self.bottom)

    def panel(self, index: int) -> tuple[int, int]:
        """``(x, y)`` of panel ``index``'s top left pixel (panels fill rows first)."""
        row, column = divmod(index, self.columns)
        return (self.left + column * (self.panel_width + self.gap_x),
                self.top + row * (self.panel_height + self.gap_y))


def _font(size_px: int) -> ImageFont.FreeTypeFont:
    # matplotlib's own DejaVu Sans, so the spectrograms read like the other figures; loaded per
    # figure (a millisecond) rather than shared, as one FreeType face must not draw in two threads.
    return ImageFont.truetype(str(Path(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")), size_px)


def _panel_codes(level: np.ndarray, vmin: float, range_db: float, width: int, height: int) -> np.ndarray:
    """A spectrogram ``[bins, frames]`` as colour-map indices 0..255 for a ``height`` x ``width``
    panel: nearest bin and frame per pixel, the lowest bin at the bottom."""
    codes = np.clip((level - vmin) * (255.0 / range_db), 0, 255).astype(np.uint8)
    rows = ((np.arange(height)[::-1] + 0.5) * level.shape[0] / height).astype(int)
    columns = ((np.arange(width) + 0.5) * level.shape[1] / width).astype(int)
    return codes[np.ix_(rows, columns)]


def spectrogram_grid(spectra: dict[str, tuple], kind: str = "mel", dynamic_range_db: float = 90.0) -> Image.Image:
    """One spectrogram per clip, all on the same colour scale (max over all clips), as an RGB image.

    Painted straight into pixels (each panel one nearest-neighbour lookup of the colour map, its
    labels drawn with PIL) rather than as matplotlib axes: laying out and drawing ten sets of axes
    took most of the half second a comparison's Mel spectrograms used to cost.

    Args:
        spectra: clip name -> one of its :func:`display_spectrograms`.
        kind: ``mel`` or ``linear`` (the axis labels).
        dynamic_range_db: the colour scale spans this far below the loudest bin.
    """
    vmax = max(float(level.max()) for _, _, level in spectra.values())
    vmin = vmax - dynamic_range_db
    layout = GridLayout(len(spectra))
    width, height = layout.size
    pw, ph = layout.panel_width, layout.panel_height
    colours = (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    pixels = np.full((height, width, 3), 255, np.uint8)
    labels = []  # (x, y, text, size_px, anchor, rotated)
    for index, (name, (times, freqs, level)) in enumerate(spectra.items()):
        x, y = layout.panel(index)
        pixels[y:y + ph, x:x + pw] = colours[_panel_codes(level, vmin, dynamic_range_db, pw, ph)]
        pixels[[y - 1, y + ph], x - 1:x + pw + 1] = 0  # the frame
        pixels[y - 1:y + ph + 1, [x - 1, x + pw]] = 0
        labels.append((x + pw // 2, y - 6, name, 18, "md", False))
        if index % layout.columns == 0:
            for i in np.linspace(0, level.shape[0] - 1, 5).astype(int):
                tick = int(y + ph - (i + 0.5) * ph / level.shape[0])
                pixels[tick, x - 6:x - 1] = 0
                labels.append((x - 8, tick, f"{freqs[i] / 1000:.1f}", 14, "rm", False))
            labels.append((x - 62, y + ph // 2, "Mel band centre (kHz)" if kind == "mel" else "Frequency (kHz)",
                           15, "mm", True))
        if index + layout.columns >= layout.count:  # the last panel of its column
            start, stop = float(times[0]), float(times[-1])
            stop = stop if stop > start else start + 1.0  # a single frame spans its second
            for second in MaxNLocator(6).tick_values(start, stop):
                if start <= second <= stop:
                    tick = int(x + (second - start) / (stop - start) * (pw - 1))
                    pixels[y + ph + 1:y + ph + 6, tick] = 0
                    labels.append((tick, y + ph + 8, f"{second:g}", 14, "mt", False))
            labels.append((x + pw // 2, y + ph + 28, "Time (s)", 15, "mt", False))
    bar_x, bar_y = width - layout.right + 24, layout.top + 20
    bar_height = height - layout.top - layout.bottom - 40
    pixels[bar_y:bar_y + bar_height, bar_x:bar_x + 16] = colours[np.linspace(255, 0, bar_height).astype(int)][:, None]
    for level_db in MaxNLocator(8).tick_values(vmin, vmax):
        if vmin <= level_db <= vmax:
            tick = int(bar_y + (vmax - level_db) / dynamic_range_db * (bar_height - 1))
            pixels[tick, bar_x + 16:bar_x + 21] = 0
            labels.append((bar_x + 23, tick, f"{level_db:g}", 14, "lm", False))
    labels.append((bar_x + 84, bar_y + bar_height // 2, "dB re full scale", 15, "mm", True))
    labels.append((width // 2, 12, f"{'Mel' if kind == 'mel' else 'Linear'} spectrograms (shared colour scale)",
                   20, "mt", False))
    image = Image.fromarray(pixels)
    _draw_labels(image, labels)
    return image


def _draw_labels(image: Image.Image, labels: list[tuple]) -> None:
    """Write ``(x, y, text, size_px, anchor, rotated)`` labels in black: ``anchor`` is PIL's
    two-letter anchor; a rotated label reads upwards, centred on ``(x, y)``."""
    draw = ImageDraw.Draw(image)
    fonts = {size: _font(size) for size in {label[3] for label in labels}}
    for x, y, text, size, anchor, rotated in labels:
        if not rotated:
            draw.text((x, y), text, fill="black", font=fonts[size], anchor=anchor)
            continue
        left, top, right, bottom = fonts[size].getbbox(text)
        strip = Image.new("L", (right - left + 2, bottom - top + 2), 0)
        ImageDraw.Draw(strip).text((1 - left, 1 - top), text, fill=255, font=fonts[size])
        strip = strip.rotate(90, expand=True)
        image.paste((0, 0, 0), (x - strip.width // 2, y - strip.height // 2), mask=strip)


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
    """Write a figure (matplotlib's, or a PIL image at its own size) through a temporary file and a
    rename (:func:`audio.atomic_replace`)."""
    path = Path(path)
    # Light PNG compression: a spectrogram hardly compresses, and the heavier levels cost time.
    png = {"compress_level": 1} if path.suffix == ".png" else {}
    with atomic_replace(path, path.suffix) as tmp:  # the suffix names the format
        if isinstance(fig, Image.Image):
            fig.save(tmp, **png)
        else:
            fig.savefig(tmp, dpi=dpi, **({"pil_kwargs": png} if png else {}))
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
        # Two short lines: the title fits a phone's width too.
        title={"text": "Power spectral density (Welch, 4096-point)<br>Click a name to hide its curve.",
               "font": {"size": 14}, "y": 0.9, "yanchor": "top"},
        height=530, margin={"l": 70, "r": 20, "t": 125, "b": 150},
        showlegend=True,  # a clip's own PSD, before its comparison, is one curve: still named
        # Below the axes, from the bottom up: on a phone the names take several rows, and the plot
        # gives way to them instead of the names covering the axis title.
        legend={"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0, "x": 0},
        updatemenus=[{"type": "buttons", "direction": "right", "x": 1, "xanchor": "right", "y": 1.02,
                      "yanchor": "bottom",  # between the title and the axes
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
