"""What the listening lab does, without any UI: sources, comparisons, listening sessions, results.

The Gradio app (``app.py``) only converts widget values to these calls and
back. Everything here raises ``ValueError`` (``AudioError`` included) with a
message fit for a user; the app turns it into ``gr.Error``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from restorelab import plots
from restorelab.audio import Clip, load_audio, match_loudness, write_wav
from restorelab.compare import Comparison, run_comparison, write_comparison
from restorelab.analysis import INPUT_ROW
from restorelab.listening import TARGET_LUFS, Session, record_vote, start_trial
from restorelab.ratings import Leaderboard, leaderboard
from restorelab.votes import VoteLog, new_session_id
from restorers import REGISTRY, output_names, restorer_class, restorer_info

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "examples"
#: Bundled examples: label -> (file, description). Made by scripts/make_examples.py.
EXAMPLES = {
    "Synth pop, MusicGen-like degradation": ("synth_pop_musicgen_like.flac",
                                             "Synthesised by the project, then through the musicgen_like "
                                             "degradation (32 kHz, rolloff, 12-bit, hiss). Not a MusicGen output."),
    "Synth ballad with hiss": ("synth_ballad_hiss.flac",
                               "A slow synthesised ballad, full band, with white hiss above 4 kHz at 30 dB SNR "
                               "(the hiss preset): the case the denoisers are for."),
    "Synth pop, clean": ("synth_pop_clean.flac", "The same clip before degradation (full band)."),
}
#: One main knob per restorer for the Compare tab: restorer -> (parameter, label, min, max, step).
MAIN_KNOBS = {
    "spectral_gate_hf": ("prop_decrease", "HF gate: reduction", 0.0, 1.0, 0.05),
    "spectral_subtraction_hf": ("alpha", "HF subtraction: over-subtraction alpha", 0.5, 3.0, 0.1),
    "mcra_wiener": ("gain_floor_db", "MCRA: gain floor (dB)", -30.0, 0.0, 1.0),
    "spectral_gate": ("prop_decrease", "Gate: reduction", 0.0, 1.0, 0.05),
    "bandwidth_extension_dsp": ("gain_db", "BWE: level of the new band (dB)", -20.0, 6.0, 1.0),
}


#: Where comparisons and trials write their files; folders older than WORK_MAX_AGE_S are removed.
WORK_ROOT = Path(tempfile.gettempdir()) / "restorelab-work"
WORK_MAX_AGE_S = 6 * 3600


def work_folder(prefix: str) -> Path:
    """A fresh folder under :data:`WORK_ROOT`, after removing ones older than :data:`WORK_MAX_AGE_S`.

    A long-running server would otherwise keep every comparison (tens of MB each) forever.
    """
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - WORK_MAX_AGE_S
    for old in WORK_ROOT.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        except OSError:
            pass  # another request is cleaning up too
    return Path(tempfile.mkdtemp(prefix=prefix, dir=WORK_ROOT))


def restorer_choices() -> list[str]:
    """Restorers a user can pick (the input is always the control, never a choice)."""
    return output_names()


def unavailable_restorers() -> dict[str, str]:
    return {name: info["reason"] for name in REGISTRY if not (info := restorer_info(name))["available"]}


def load_example(label: str) -> Clip:
    try:
        filename, _ = EXAMPLES[label]
    except KeyError:
        raise ValueError(f"unknown example {label!r}; known: {', '.join(EXAMPLES)}") from None
    clip = load_audio(ASSETS / filename)
    clip.origin = "example"
    return clip


def load_upload(path: str | None) -> Clip:
    if not path:
        raise ValueError("Choose an audio file to upload first.")
    return load_audio(path)


def clip_summary(clip: Clip) -> str:
    notes = "; ".join(clip.notes)
    return (f"**{Path(clip.source).name}**: {clip.duration_s:.1f} s, {clip.channels} channel(s), "
            f"stored at {clip.source_rate} Hz, working at {clip.sample_rate} Hz"
            + (f" ({notes})" if notes else ""))


@dataclass
class CompareView:
    """A comparison ready to show: file paths for players and images, a figure and a table."""

    comparison: Comparison
    folder: Path
    players: dict[str, Path] = field(default_factory=dict)
    matched_players: dict[str, Path] = field(default_factory=dict)  # written on first use
    mel_png: Path | None = None
    linear_png: Path | None = None
    psd_figure: object | None = None
    zip_path: Path | None = None


def compare(clip: Clip, names: list[str], knobs: dict[str, float], progress=None) -> CompareView:
    """Run the chosen restorers, write every artefact into a fresh folder, and build the view.

    ``knobs`` maps restorer names to the value of their :data:`MAIN_KNOBS` parameter.
    """
    if clip is None:
        raise ValueError("Load a clip in the Source tab first.")
    if not names:
        raise ValueError("Choose at least one restorer.")
    params = {name: {MAIN_KNOBS[name][0]: value} for name, value in knobs.items()
              if name in names and name in MAIN_KNOBS}
    folder = work_folder("compare-")
    result = run_comparison(clip, names, params, progress=progress)
    files = write_comparison(result, folder)
    view = CompareView(comparison=result, folder=folder, players=files.wavs, mel_png=files.figures["mel"],
                       linear_png=files.figures["linear"])
    view.psd_figure = plots.psd_overlay_plotly({INPUT_ROW: clip.audio, **result.outputs}, clip.sample_rate)
    view.zip_path = _zip_folder(folder, folder / "restorelab-comparison.zip")
    return view


def matched_players(view: CompareView) -> dict[str, Path]:
    """Every clip loudness-matched to the input (true peak at most -1 dBTP), written on first use.

    The loudness of each clip is already in the metrics rows; it is not measured again.
    """
    if not view.matched_players:
        result = view.comparison
        loudness = {row["name"]: row["loudness_lufs"] for row in result.rows}
        target = loudness[INPUT_ROW] if np.isfinite(loudness[INPUT_ROW]) else TARGET_LUFS
        for name, audio in {INPUT_ROW: result.clip.audio, **result.outputs}.items():
            matched = match_loudness(audio, result.clip.sample_rate, target, measured_lufs=loudness[name])
            view.matched_players[name] = write_wav(view.folder / "matched" / f"{name}.wav", matched.audio,
                                                   result.clip.sample_rate)
    return view.matched_players


def _zip_folder(folder: Path, target: Path) -> Path:
    """Zip a folder; audio is stored as it is (float WAV hardly deflates, and it costs seconds)."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path != target:
                method = zipfile.ZIP_STORED if path.suffix == ".wav" else zipfile.ZIP_DEFLATED
                archive.write(path, path.relative_to(folder), compress_type=method)
    return target


def metrics_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Columns and rows for display: the input first, verdicts as pass/fail words."""
    columns = ["name", "hf_energy_db", "hf_energy_gain_db", "hpss_ratio_db", "log_mel_distance",
               "noise_floor_db", "effective_bandwidth_hz", "loudness_lufs", "peak_db", "clipped_samples",
               "faithful", "pass"]
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column, "")
            if isinstance(value, bool):
                value = "pass" if value else "fail"
            elif isinstance(value, float):
                value = round(value, 3)
            cells.append(value)
        body.append(cells)
    return columns, body


def new_session() -> Session:
    return Session(session_id=new_session_id())


def start_listening(session: Session, view: CompareView, clip: Clip, prompt: str = "") -> Session:
    """Point the session at the compared clip: the input and every output are candidates."""
    if view is None:
        raise ValueError("Run a comparison first: its outputs are what you listen to.")
    session.clip_id = Path(clip.source).stem
    session.clip_source = clip.origin
    session.prompt = prompt
    session.candidates = [INPUT_ROW, *view.comparison.outputs]
    session.heard = {}
    session.trial = None
    return session


def next_trial(session: Session, view: CompareView):
    if not session.candidates:
        raise ValueError("Press 'Start listening' first.")
    clips = {INPUT_ROW: view.comparison.clip.audio, **view.comparison.outputs}
    folder = work_folder("trial-")
    return start_trial(session, clips, view.comparison.clip.sample_rate, folder)


def vote(session: Session, log: VoteLog, choice: str, listened_left_s: float, listened_right_s: float):
    """Record the vote and reveal who was who."""
    cast = record_vote(session, choice, listened_left_s, listened_right_s)
    log.append(cast)
    return cast


def results(log: VoteLog, session_id: str | None = None, min_votes: int = 10) -> Leaderboard:
    rows = log.read()
    if session_id:
        rows = [row for row in rows if row["session_id"] == session_id]
    return leaderboard(rows, min_votes=min_votes)


def knob_default(name: str) -> float:
    parameter = MAIN_KNOBS[name][0]
    return getattr(restorer_class(name).Params(), parameter)
