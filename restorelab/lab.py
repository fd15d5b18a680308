"""What the listening lab does, without any UI: sources, comparisons, listening sessions, results.

The Gradio app (``app.py``) only converts widget values to these calls and
back. Everything here raises ``ValueError`` (``AudioError`` included) with a
message fit for a user, naming the problem without server paths; the app
turns it into ``gr.Error``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import threading
import time
import zipfile
from collections import Counter, OrderedDict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np

from restorelab import plots
from restorelab.analysis import (INPUT_ROW, InputProfile, VerdictThresholds, measure_with_mel, rows_with_verdicts,
                                 welch_psd_db)
from restorelab.audio import AudioError, Clip, load_audio, match_loudness, write_wav
from restorelab.compare import write_metric_tables
from restorelab.limits import Limits
from restorelab.listening.candidates import Candidate, audio_sha256, merge_identical
from restorelab.listening.ratings import Leaderboard, leaderboard
from restorelab.listening.stimuli import TARGET_LUFS
from restorelab.listening.study import Design, Study, write_study
from restorelab.listening.study_results import study_ids, summarise
from restorelab.listening.transport import ListeningReport, ListenRules, StimulusStore
from restorelab.listening.trials import Session, Trial, commit, judge, start_trial
from restorelab.listening.votes import Vote, VoteLog, flagged_sessions, new_session_id
from restorers import REGISTRY, build_available, made_of_others, output_names, restorer_class, restorer_info

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
NO_AUDIBLE_CHANGE = "made no audible change"

#: Where comparisons, source players and exports write their files.
WORK_ROOT = Path(tempfile.gettempdir()) / "restorelab-work"
#: Work folders younger than this are never removed to make room (a request may still be using them).
WORK_MIN_KEEP_S = 120.0


def work_folder(prefix: str, limits: Limits = Limits()) -> Path:
    """A fresh folder under :data:`WORK_ROOT`, within the work-disk limit.

    Folders older than ``limits.work_max_age_s`` are removed, then the oldest
    others until the total is under ``limits.max_work_disk_mb``.

    Raises:
        ValueError: the work space is still full (every folder is in use).
    """
    WORK_ROOT.mkdir(parents=True, exist_ok=True)
    now = time.time()
    kept = []
    for old in WORK_ROOT.iterdir():
        try:
            mtime = old.stat().st_mtime
            if now - mtime > limits.work_max_age_s:
                _remove(old)
            else:
                kept.append((mtime, old, _size(old)))
        except OSError:
            pass  # another request is cleaning up too
    used = sum(size for _, _, size in kept)
    budget = limits.max_work_disk_mb * 1e6
    for mtime, old, size in sorted(kept, key=lambda item: item[0]):
        if used <= budget or now - mtime < WORK_MIN_KEEP_S:
            break
        _remove(old)
        used -= size
    if used > budget:
        raise ValueError(f"The server's work space is full ({used / 1e6:.0f} MB of {limits.max_work_disk_mb:.0f} MB "
                         "in use); try again in a few minutes.")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=WORK_ROOT))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


class SessionJobs:
    """Counts the heavy jobs (generation, comparison) each visitor has running, up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key: str | None, what: str):
        """Run one job for visitor ``key`` (``None``: not counted).

        Raises:
            ValueError: the visitor already has ``limit`` jobs running.
        """
        if key is None:
            yield
            return
        with self._lock:
            if self._running[key] >= self.limit:
                raise ValueError(f"You already have {self.limit} job(s) running; wait for it to finish "
                                 f"before starting {what}.")
            self._running[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._running[key] -= 1
                if self._running[key] <= 0:
                    del self._running[key]


def restorer_choices() -> list[str]:
    """Restorers a user can pick (the input is always the control, never a choice)."""
    return output_names()


def unavailable_restorers() -> dict[str, str]:
    return {name: info["reason"] for name in REGISTRY if not (info := restorer_info(name))["available"]}


def available_choices(unavailable: dict[str, str] | None = None) -> list[str]:
    """The restorers a user can pick that run here (``unavailable``: :func:`unavailable_restorers`,
    when already at hand)."""
    unavailable = unavailable_restorers() if unavailable is None else unavailable
    return [name for name in restorer_choices() if name not in unavailable]


#: Held while :func:`warm_up` runs: a comparison starts restoring once the models are loaded, not
#: beside the loading (a 30 s clip's comparison beside a warm-up peaked 120 MB higher).
_WARMING = threading.Lock()


def warm_up(seconds: float = 1.0) -> list[str]:
    """Load what a first comparison would otherwise wait for (torch, and every available neural
    restorer's checkpoint, kept by its module), by running every available neural restorer on the
    first ``seconds`` of the bundled example. Meant for a background thread once the app answers:
    on the reference machine, a first comparison on a fresh app showed everything after 5.6 s
    without it and 4.2 s with it. A comparison started meanwhile waits for it before restoring.
    Returns the restorers that failed, with why (one failing does not stop the others).
    """
    clip = load_example(next(iter(EXAMPLES)))
    excerpt = clip.audio[:, : int(seconds * clip.sample_rate)]
    failed = []
    with _WARMING:
        names = [name for name in available_choices() if restorer_class(name).kind == "neural"]
        restorers, _ = build_available(names)
        for name, restorer in restorers.items():
            try:
                restorer(excerpt, clip.sample_rate)
            except Exception as exc:  # reported again, in full, by the comparison that runs it
                failed.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
    return failed


def load_example(label: str) -> Clip:
    try:
        filename, _ = EXAMPLES[label]
    except (KeyError, TypeError):
        raise ValueError(f"unknown example {str(label)[:80]!r}; known: {', '.join(EXAMPLES)}") from None
    clip = load_audio(ASSETS / filename)
    clip.origin = "example"
    return clip


def load_upload(path: str | None, limits: Limits = Limits()) -> Clip:
    """An uploaded file as a working clip; errors name the file as the user knows it, not the server's path."""
    if not path:
        raise ValueError("Choose an audio file to upload first.")
    name = Path(path).name
    try:
        size_mb = Path(path).stat().st_size / 1e6
    except OSError:
        raise AudioError(name, "the upload did not arrive; try again") from None
    if size_mb > limits.max_upload_mb:
        raise AudioError(name, f"is {size_mb:.0f} MB; the limit is {limits.max_upload_mb:.0f} MB")
    try:
        clip = load_audio(path, max_duration_s=limits.max_clip_s)
    except AudioError as exc:
        problem = exc.problem.replace(str(path), name)  # libsndfile's messages quote the full path
        if problem.startswith("is too long"):
            problem += " here (the command line takes longer files)"
        raise AudioError(name, problem) from None
    clip.source = name
    return clip


def clip_summary(clip: Clip) -> str:
    notes = "; ".join(clip.notes)
    return (f"**{Path(clip.source).name}**: {clip.duration_s:.1f} s, {clip.channels} channel(s), "
            f"stored at {clip.source_rate} Hz, working at {clip.sample_rate} Hz"
            + (f" ({notes})" if notes else ""))


def clip_id(clip: Clip) -> str:
    return Path(clip.source).stem


@dataclass
class CompareView:
    """A finished comparison, as files: what the Compare tab shows and the Listen tab judges.

    It owns the identity of the clip it compared, so votes are always labelled
    with the clip that was heard. It holds no audio arrays (only paths), so a
    visitor's state stays small however long the clip.

    Attributes:
        clip_id, clip_name, clip_source, prompt: the compared clip.
        players: clip name -> WAV, the input first.
        rows: no-reference metric rows, the input first.
        skipped: restorer -> why it did not run.
        candidates: the distinct sounds, the input's first (outputs that sound the same merged).
        notes: restorer -> ``made no audible change`` or ``sounds the same as ...``.
        settings: restorer -> the settings it ran with (as votes and studies record them).
        psds: clip name -> its Welch PSD (a few kilobytes), for the overlay and the zip's PNG.
    """

    clip_id: str
    clip_name: str
    clip_source: str
    prompt: str
    sample_rate: int
    duration_s: float
    folder: Path
    players: dict[str, Path] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    settings: dict[str, dict] = field(default_factory=dict)
    matched_players: dict[str, Path] = field(default_factory=dict)  # written on first use
    mel_png: Path | None = None
    linear_png: Path | None = None
    psds: dict[str, tuple] = field(default_factory=dict)
    psd_figure: object | None = None
    zip_path: Path | None = None
    finished: bool = False  # every stage of compare_steps is done


class OutputCache:
    """Restorer outputs kept for a repeat of the same comparison, with what was measured of them.

    Keyed by the input's hash, the restorer and every setting it ran with, so a changed knob or
    another clip is never served from here. Bounded by the bytes of audio held (what is measured
    of an output is a small fraction of it); the least recently used entry goes first. Safe to
    share between the app's request threads.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, tuple[np.ndarray, object]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[np.ndarray, object] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple, audio: np.ndarray, measured: object) -> None:
        if audio.nbytes > self.max_bytes:
            return
        audio = audio.view()
        audio.flags.writeable = False  # shared by every comparison that reuses it
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes -= 0 if old is None else old[0].nbytes
            self._entries[key] = (audio, measured)
            self._bytes += audio.nbytes
            while self._bytes > self.max_bytes:
                _, (dropped, _) = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes


#: Restorers that run at once in a comparison (numpy and torch both work outside the GIL).
COMPARE_WORKERS = max(1, min(2, os.cpu_count() or 1))


def limit_blas_threads():
    """Give numpy's BLAS its share of the cores in a process that compares: each of the
    :data:`COMPARE_WORKERS` restorers running at once gets ``cores // COMPARE_WORKERS`` threads
    (BLAS's default is every core for each call). On two cores, two BLAS threads under each of two
    restorers kept a comparison's threads spinning on each other: the 9.7 s example took 4.5 CPU
    seconds and 2.6 s instead of 3.6 and 2.2 (``scripts/time_compare.py`` shows it in the app).
    The setting is the process's (the BLAS libraries loaded now); returns the ``threadpoolctl``
    limiter, whose ``restore_original_limits()`` undoes it.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=max(1, (os.cpu_count() or 1) // COMPARE_WORKERS), user_api="blas")


def _checked_params(names: list[str], knobs: dict[str, float]) -> dict[str, dict[str, float]]:
    """The restorers' parameters from the Compare tab's knobs, each checked against its range."""
    params = {}
    for name, value in knobs.items():
        if name in names and name in MAIN_KNOBS and value is not None:
            parameter, label, low, high, _ = MAIN_KNOBS[name]
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"{label} must be a number from {low:g} to {high:g}")
            params[name] = {parameter: float(value)}
    return params


@dataclass(frozen=True)
class _Measured:
    """What a comparison shows of one clip besides its player: its metric row, and its PSD and Mel
    spectrogram as drawn (as :func:`plots.figure_data` gives them: a few hundred kilobytes)."""

    row: dict
    figures: dict


def _measured(audio: np.ndarray, sample_rate: int, original: InputProfile | None):
    """A clip's :class:`_Measured` and profile; its Mel spectrogram comes from its measures' STFT."""
    row, profile, mel = measure_with_mel(audio, sample_rate, original, plots.DISPLAY_COLUMNS)
    figures = {"mel": plots.panel_spectrogram(*mel), "psd": welch_psd_db(audio, sample_rate)}
    return _Measured(row, figures), profile


def _measure_the_input(clip: Clip):
    """The input's row and figures, and its profile (what every output is measured against)."""
    return _measured(clip.audio, clip.sample_rate, None)


class InputMeasures:
    """The measures of recently loaded inputs, taken as soon as a clip is loaded (:meth:`start`,
    in a thread of their own) so that its comparison finds them done or under way instead of
    taking them after the click.

    Keyed by the audio's SHA-256 and rate; the ``size`` most recently used clips are kept (each a
    few megabytes at the app's longest clip). At most ``waiting`` clips are with the thread at
    once, measured or queued: a clip loaded beyond that (a flood of uploads) is measured by its
    comparison. Safe to share between the app's request threads.
    """

    def __init__(self, size: int = 8, waiting: int = 2) -> None:
        self.size = size
        self.waiting = waiting
        self._jobs: OrderedDict[tuple[str, int], Future] = OrderedDict()
        self._waiting = 0
        self._lock = threading.Lock()
        self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="measure-ahead")

    def start(self, clip: Clip) -> Future | None:
        """Measure ``clip`` behind the caller (a clip just loaded): its job (the one started
        before, if any), or ``None`` while :attr:`waiting` clips are with the thread."""
        key = (audio_sha256(clip.audio), clip.sample_rate)
        with self._lock:
            job = self._kept(key)
            if job is not None or self._waiting >= self.waiting:
                return job
            self._waiting += 1
            job = self._keep(key, self._ahead.submit(_measure_the_input, clip))
        job.add_done_callback(self._started_one_finished)  # at once if done already: not under the lock
        return job

    def job(self, clip: Clip, sha256: str, pool: ThreadPoolExecutor) -> Future:
        """The measuring of ``clip`` (whose audio has ``sha256``): the one started before, else a
        new one submitted to ``pool``."""
        key = (sha256, clip.sample_rate)
        with self._lock:
            return self._kept(key) or self._keep(key, pool.submit(_measure_the_input, clip))

    def _kept(self, key: tuple[str, int]) -> Future | None:
        """The job kept under ``key``, now the most recently used; none for one that failed."""
        job = self._jobs.get(key)
        if job is None or (job.done() and job.exception() is not None):
            return None
        self._jobs.move_to_end(key)
        return job

    def _keep(self, key: tuple[str, int], job: Future) -> Future:
        self._jobs[key] = job
        self._jobs.move_to_end(key)
        while len(self._jobs) > self.size:
            self._jobs.popitem(last=False)
        return job

    def _started_one_finished(self, _: Future) -> None:
        with self._lock:
            self._waiting -= 1


#: The inputs' measures, shared by every comparison in this process.
INPUT_MEASURES = InputMeasures()


def input_psd(clip: Clip):
    """The PSD overlay of the input alone, shown before the clip is compared, from its measures
    (see :class:`InputMeasures`); ``None`` when they wait behind too many others."""
    job = INPUT_MEASURES.start(clip)
    if job is None:
        return None
    measured, _ = job.result()
    return plots.psd_overlay_plotly({INPUT_ROW: measured.figures["psd"]}, clip.sample_rate)


def _measure_output(audio: np.ndarray, sample_rate: int, input_job: Future) -> _Measured:
    """What is shown of an output, measured against the input's profile (``input_job``, a job
    submitted to the same pool before this one, so running or done by now)."""
    return _measured(audio, sample_rate, input_job.result()[1])[0]


def compare_steps(clip: Clip, names: list[str], knobs: dict[str, float], limits: Limits = Limits(),
                  cache: OutputCache | None = None, gather_s: float = 0.0) -> Iterator[tuple[str, CompareView]]:
    """Run the chosen restorers and fill one view as results come, yielding ``(stage, view)``.

    Stages, in order: ``input`` (the input's player), ``output`` as restorers finish (their
    players), ``metrics`` (the table, verdicts and which outputs sound the same), ``psd`` (the
    overlay) and ``spectrograms`` (the Mel spectrograms). Outputs computed before for the same
    input and settings come from ``cache``. What the page shows only on request is drawn then: the
    linear spectrograms (:func:`linear_spectrograms`), and the PSD and metric bars as PNG (when the
    comparison is zipped).

    ``knobs`` maps restorer names to the value of their :data:`MAIN_KNOBS` parameter. With
    ``gather_s`` 0, each ``output`` brings the restorers that finished since the last; above 0, an
    output done less than ``gather_s`` seconds after the last ``output`` waits for the next, by at
    most that long (the last restorer's goes at once): a page that redraws itself for every step
    redraws fewer times.
    """
    if clip is None:
        raise ValueError("Load a clip in the Source tab first.")
    names = [str(name) for name in (names or [])]
    if not names:
        raise ValueError("Choose at least one restorer.")
    unknown = [name for name in names if name not in REGISTRY or name == "passthrough"]
    if unknown:
        raise ValueError(f"unknown restorer(s) {', '.join(n[:40] for n in unknown[:5])}; "
                         f"known: {', '.join(restorer_choices())}")
    restorers, skipped = build_available(output_names(names), _checked_params(names, knobs))
    folder = work_folder("compare-", limits)
    sr = clip.sample_rate
    view = CompareView(clip_id=clip_id(clip), clip_name=Path(clip.source).name, clip_source=clip.origin,
                       prompt=clip.prompt, sample_rate=sr, duration_s=clip.duration_s, folder=folder,
                       skipped=skipped)
    view.settings = {INPUT_ROW: {"restorer": INPUT_ROW},
                     **{name: {"restorer": name, "params": dataclasses.asdict(restorer.params)}
                        for name, restorer in restorers.items()}}
    view.players[INPUT_ROW] = write_wav(folder / f"{INPUT_ROW}.wav", clip.audio, sr)
    yield "input", view

    input_hash = audio_sha256(clip.audio)
    keys = {name: (input_hash, name, json.dumps(view.settings[name], sort_keys=True)) for name in restorers}
    outputs: dict[str, np.ndarray] = {}
    measured: dict[str, _Measured] = {}
    with _WARMING:  # a warm-up running now finishes first
        pass
    # Every restorer is queued before any measuring, so each player goes out as soon as its
    # restorer is done; the table waits for the measurements, queued behind the restorers. A
    # restorer made of others in the comparison is built from their outputs once they are done.
    made_of = made_of_others(restorers)
    with ThreadPoolExecutor(max_workers=COMPARE_WORKERS) as pool:
        restoring: dict[Future, str] = {}
        waiting: dict[str, list[str]] = {}
        for name, restorer in restorers.items():
            cached = cache.get(keys[name]) if cache is not None else None
            if cached is not None:
                outputs[name], measured[name] = cached
                view.players[name] = write_wav(folder / f"{name}.wav", outputs[name], sr)
            elif name in made_of:
                waiting[name] = made_of[name]
            else:
                restoring[pool.submit(restorer, clip.audio, sr)] = name
        input_job = INPUT_MEASURES.job(clip, input_hash, pool)
        sent = float("-inf")  # when the last ``output`` went
        if outputs:
            sent = time.monotonic()
            yield "output", view
        measuring = {}
        held = False  # outputs done since then, waiting for the next
        while restoring or waiting:
            for name in [name for name, parts in waiting.items() if any(part in view.skipped for part in parts)]:
                del waiting[name]  # one of its parts failed: it runs itself
                restoring[pool.submit(restorers[name], clip.audio, sr)] = name
            built = [name for name, parts in waiting.items() if all(part in outputs for part in parts)]
            if built:  # adding outputs takes a moment: done here, not queued behind the measures
                results = [(name, partial(restorers[name].from_parts, clip.audio, sr,
                                          [outputs[part] for part in waiting.pop(name)])) for name in built]
            else:
                due = max(0.0, sent + gather_s - time.monotonic()) if held else None
                finished, _ = wait(restoring, timeout=due, return_when=FIRST_COMPLETED)
                results = [(restoring.pop(job), job.result) for job in finished]
            for name, result in results:
                try:
                    outputs[name] = result()
                except Exception as exc:  # one restorer failing must not lose the others
                    view.skipped[name] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
                    continue
                measuring[name] = pool.submit(_measure_output, outputs[name], sr, input_job)
                view.players[name] = write_wav(folder / f"{name}.wav", outputs[name], sr)
                held = True
            if held and (time.monotonic() - sent >= gather_s or not (restoring or waiting)):
                held, sent = False, time.monotonic()
                yield "output", view
        for name, job in measuring.items():
            measured[name] = job.result()
            if cache is not None:
                cache.put(keys[name], outputs[name], measured[name])
        measured[INPUT_ROW] = input_job.result()[0]

    order = [name for name in restorers if name in outputs]
    view.players = {INPUT_ROW: view.players[INPUT_ROW], **{name: view.players[name] for name in order}}
    view.settings = {name: view.settings[name] for name in view.players}
    view.rows = rows_with_verdicts(measured[INPUT_ROW].row, {name: measured[name].row for name in order},
                                   goals={name: restorers[name].goal for name in order})
    write_metric_tables(view.rows, folder)
    clips = {INPUT_ROW: clip.audio, **{name: outputs[name] for name in order}}
    for group in merge_identical(clips, sr):
        first = group[0]
        view.candidates.append(Candidate(members=tuple(group), path=view.players[first],
                                         sha256=input_hash if first == INPUT_ROW else audio_sha256(clips[first]),
                                         settings=json.dumps([view.settings[name] for name in group],
                                                             sort_keys=True)))
        for name in group[1:]:
            view.notes[name] = NO_AUDIBLE_CHANGE if first == INPUT_ROW else f"sounds the same as {first}"
    yield "metrics", view

    view.psds = {name: measured[name].figures["psd"] for name in view.players}
    view.psd_figure = plots.psd_overlay_plotly(view.psds, sr)
    yield "psd", view

    view.mel_png = plots.save(plots.spectrogram_grid({name: measured[name].figures["mel"] for name in view.players},
                                                     "mel"), folder / "mel_spectrograms.png")
    view.finished = True
    yield "spectrograms", view


def linear_spectrograms(view: CompareView) -> Path:
    """The linear spectrograms of a finished comparison, drawn the first time someone asks."""
    _finished(view)
    _still_there(view)
    if view.linear_png is None:
        _draw_linear(view, _player_audio(view))
    return view.linear_png


def _player_audio(view: CompareView) -> dict[str, np.ndarray]:
    return {name: load_audio(path).audio for name, path in view.players.items()}


def _spectrograms(clips: dict[str, np.ndarray], sample_rate: int, kind: str) -> dict[str, tuple]:
    return {name: plots.display_spectrograms(audio, sample_rate, (kind,))[kind] for name, audio in clips.items()}


def _draw_linear(view: CompareView, clips: dict[str, np.ndarray]) -> None:
    view.linear_png = plots.save(plots.spectrogram_grid(_spectrograms(clips, view.sample_rate, "linear"), "linear"),
                                 view.folder / "linear_spectrograms.png")


def compare(clip: Clip, names: list[str], knobs: dict[str, float], limits: Limits = Limits(),
            cache: OutputCache | None = None) -> CompareView:
    """Every step of :func:`compare_steps`; the finished view."""
    view = None
    for _, view in compare_steps(clip, names, knobs, limits, cache):
        pass
    return view


def _finished(view: CompareView) -> None:
    if not view.finished:
        raise ValueError("The comparison is still running: wait for it to finish.")


def _still_there(view: CompareView) -> None:
    """Check that a comparison's files are still on disk, and mark them as in use.

    Raises:
        ValueError: they were removed (too old, or the work space ran short).
    """
    try:
        os.utime(view.folder)
    except OSError:
        raise ValueError("This comparison's files were removed from the server (they are kept for a while, "
                         "less when space runs short): press Compare again.") from None


def matched_players(view: CompareView) -> dict[str, Path]:
    """Every clip loudness-matched to the input (true peak at most -1 dBTP), written on first use.

    The loudness of each clip is already in the metrics rows; it is not measured again.
    """
    if not view.rows:
        raise ValueError("The comparison is still measuring its outputs: wait a moment.")
    _still_there(view)
    if not view.matched_players:
        loudness = {row["name"]: row["loudness_lufs"] for row in view.rows}
        target = loudness[INPUT_ROW] if np.isfinite(loudness[INPUT_ROW]) else TARGET_LUFS
        for name, path in view.players.items():
            audio = load_audio(path).audio
            matched = match_loudness(audio, view.sample_rate, target, measured_lufs=loudness[name])
            view.matched_players[name] = write_wav(view.folder / "matched" / f"{name}.wav", matched.audio,
                                                   view.sample_rate)
    return view.matched_players


def comparison_zip(view: CompareView) -> Path:
    """One zip of the comparison's folder, built the first time someone asks for it."""
    _finished(view)
    _still_there(view)
    if view.zip_path is None:
        if view.linear_png is None:
            _draw_linear(view, _player_audio(view))
        plots.save(plots.psd_overlay(view.psds, view.sample_rate), view.folder / "psd_overlay.png")
        plots.save(plots.metric_change_bars(view.rows), view.folder / "metric_changes.png")
        view.zip_path = _zip_folder(view.folder, view.folder / "restorelab-comparison.zip")
    return view.zip_path


def _zip_folder(folder: Path, target: Path, inside: str = "") -> Path:
    """Zip every file under ``folder`` (in a folder named ``inside`` within the zip, if given),
    through a partial file renamed at the end. Audio is stored as it is: it hardly deflates."""
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path not in (target, partial):
                method = zipfile.ZIP_STORED if path.suffix in (".wav", ".flac") else zipfile.ZIP_DEFLATED
                archive.write(path, Path(inside) / path.relative_to(folder), compress_type=method)
    partial.replace(target)
    return target


def study_from_comparisons(views: list[CompareView], limits: Limits = Limits(), trials_per_listener: int = 20,
                           reveal: str = "end") -> tuple[Study, Path]:
    """A study of the compared clips with the restorers they were compared with, and a zip of its folder.

    Every comparison must have run the same restorers (a study compares the same systems on every clip).

    Raises:
        ValueError: no comparison, different restorers, or files already removed from the server.
    """
    if not views:
        raise ValueError("Add at least one comparison to the study first.")
    names = [list(view.players)[1:] for view in views]
    if any(n != names[0] for n in names):
        raise ValueError("Every comparison in a study needs the same restorers; these differ: "
                         + "; ".join(f"{v.clip_name}: {', '.join(n)}" for v, n in zip(views, names)))
    for view in views:
        _finished(view)
        _still_there(view)

    def items():
        for view in views:
            clip = load_audio(view.players[INPUT_ROW])
            clip.origin, clip.prompt, clip.source = view.clip_source, view.prompt, view.clip_name
            outputs = {name: load_audio(path).audio for name, path in view.players.items() if name != INPUT_ROW}
            yield clip, outputs, {name: [view.settings[name]] for name in outputs}

    folder = work_folder("study-", limits)
    study = write_study([view.clip_id for view in views], items(), folder / "study",
                        design=Design(trials_per_listener=int(trials_per_listener)), reveal=reveal)
    return study, _zip_folder(study.folder, folder / f"{study.id}.zip", inside=study.id)


#: The metrics table's columns: those shown unless the visitor picks others, then the rest.
TABLE_COLUMNS = ("verdict", "hf_energy_gain_db", "log_mel_distance", "hpss_ratio_db", "effective_bandwidth_hz",
                 "loudness_lufs", "peak_db")
MORE_TABLE_COLUMNS = ("hf_energy_db", "hf_quiet_energy_db", "noise_floor_db", "spectral_centroid_hz", "rolloff85_hz",
                      "rolloff99_hz", "spectral_flatness", "rms_db", "clipped_samples")


def verdict_reason(row: dict, baseline: dict, thresholds: VerdictThresholds = VerdictThresholds()) -> str:
    """``pass``, or ``fail:`` and each check that failed with the numbers that failed it."""
    if "pass" not in row:
        return ""
    if row["pass"]:
        return "pass"
    reasons = []
    if row.get("hf_energy_down") is False:
        reasons.append(f"energy above 6 kHz not lower ({row['hf_energy_gain_db']:+.2f} dB)")
    if row.get("band_extended") is False:
        gain = row["effective_bandwidth_hz"] - baseline["effective_bandwidth_hz"]
        reasons.append(f"band {gain:+.0f} Hz, needs +{thresholds.min_bandwidth_gain_hz:.0f}")
    if not row["hpss_kept"]:
        drop = baseline["hpss_ratio_db"] - row["hpss_ratio_db"]
        reasons.append(f"harmonic/percussive ratio down {drop:.2f} dB (at most {thresholds.hpss_drop_tolerance_db:g})")
    if not row["faithful"]:
        reasons.append(f"log-mel distance {row['log_mel_distance']:.3f} >= {thresholds.max_log_mel_distance:g}")
    return "fail: " + "; ".join(reasons)


def metrics_table(rows: list[dict], notes: dict[str, str] | None = None,
                  columns: tuple[str, ...] | list[str] = TABLE_COLUMNS) -> tuple[list[str], list[list]]:
    """Columns and rows for display: the input first, the chosen columns (unknown ones left out),
    each output's verdict with its reason, and a note for outputs that sound like the input or like
    another output."""
    known = (*TABLE_COLUMNS, *MORE_TABLE_COLUMNS)
    columns = ["name", *[c for c in known if c in columns], "note"]
    baseline = rows[0] if rows else {}
    body = []
    for row in rows:
        cells = []
        for column in columns:
            if column == "note":
                value = (notes or {}).get(row["name"], "")
            elif column == "verdict":
                value = verdict_reason(row, baseline)
            else:
                value = row.get(column, "")
            if isinstance(value, float):
                value = round(value, 3)
            cells.append(value)
        body.append(cells)
    return columns, body


def generation_request(model: str, prompt: str | None, duration_s, seed, guidance_scale,
                       melody: Clip | None = None, limits: Limits = Limits()):
    """A MusicGen request from form values, each checked against the app's limits.

    Raises:
        ValueError: a value is missing, of the wrong kind or out of range.
    """
    from restorelab.generation import GenerationRequest

    prompt = prompt if isinstance(prompt, str) else ""
    if len(prompt) > limits.max_prompt_chars:
        raise ValueError(f"The prompt is {len(prompt)} characters long; the limit is {limits.max_prompt_chars}.")
    if not prompt.strip():
        raise ValueError("Write a prompt first.")
    values = {}
    for name, value, low, high in (("duration", duration_s, 0.5, limits.max_generation_s),
                                   ("seed", seed, 0, 2 ** 32 - 1), ("guidance scale", guidance_scale, 1.0, 10.0)):
        if not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"The {name} must be a number from {low:g} to {high:g}.")
        values[name] = value
    return GenerationRequest(model=str(model), prompt=prompt, duration_s=float(values["duration"]),
                             seed=int(values["seed"]), guidance_scale=float(values["guidance scale"]),
                             melody=None if melody is None else (melody.audio, melody.sample_rate))


def new_session() -> Session:
    return Session(session_id=new_session_id())


def start_listening(session: Session, view: CompareView | None) -> Session:
    """Point the session at the compared clip: its distinct sounds, the input's among them, are the candidates."""
    if view is None:
        raise ValueError("Run a comparison first: its outputs are what you listen to.")
    _finished(view)
    _still_there(view)
    session.reset(view.clip_id, view.clip_source, view.prompt, view.candidates)
    return session


def next_trial(session: Session, store: StimulusStore, rules: ListenRules = ListenRules()) -> Trial:
    """The session's next pair; listening keeps its comparison's files from being cleared."""
    if not session.candidates:
        raise ValueError("Press 'Start listening' first.")
    folder = session.candidates[0].path.parent
    try:
        os.utime(folder)
        return start_trial(session, store, rules)
    except (OSError, RuntimeError):  # soundfile's errors are RuntimeErrors
        if folder.is_dir():
            raise
        session.candidates = []
        raise ValueError("The compared files were removed from the server (they are kept for a while, less "
                         "when space runs short): press Compare, then Start listening again.") from None


def vote(session: Session, log: VoteLog, choice: str, report: str | None, store: StimulusStore,
         rules: ListenRules = ListenRules()) -> Vote:
    """Judge the vote against the listening rules, save it, then count the pair as heard.

    Raises:
        ValueError: the vote is refused (the message says why), or it could
            not be saved (the trial stays open, so the listener can vote again).
    """
    if choice not in ("left", "right", "tie", "both_bad"):
        raise ValueError("unknown choice")
    cast = judge(session, choice, ListeningReport.parse(report), store, rules)
    log.append(cast)
    commit(session, cast, store)
    return cast


@dataclass
class Results:
    """The leaderboard and what was left out of it (and, for a study, what its results say)."""

    board: Leaderboard
    damaged_rows: list[str]
    excluded_sessions: int
    notes: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)


def results(log: VoteLog, session_id: str | None = None, min_votes: int = 10,
            exclude_flagged: bool = True, study_id: str | None = None) -> Results:
    """The leaderboard over the lab's votes (or one session's), flagged sessions left out if asked;
    or, with ``study_id``, over a study's listeners and clips as ``restorelab study results`` ranks them.

    The lab's leaderboard leaves the votes of studies out. ``Results.studies`` lists the studies in the log.

    Raises:
        ValueError: ``study_id`` has no votes in the log.
    """
    read = log.read_all()
    studies = study_ids(read.rows)
    if study_id:
        if study_id not in studies:
            raise ValueError(f"no votes of a study {study_id[:64]!r}; studies with votes: {', '.join(studies) or 'none'}")
        found = summarise(study_id, read.rows)
        notes = [f"Study {study_id}: {len(found.listeners)} listener(s), {len(found.flagged)} flagged. {found.rule}",
                 found.separation]
        board = found.kept if exclude_flagged else found.everyone
        return Results(_with_minimum(board, min_votes), read.problems, len(found.flagged) if exclude_flagged else 0,
                       notes, studies)
    rows = [row for row in read.rows if not row.get("study_id")]
    if session_id:
        rows = [row for row in rows if row["session_id"] == session_id]
    flagged = flagged_sessions(rows) if exclude_flagged else set()
    rows = [row for row in rows if row["session_id"] not in flagged]
    return Results(leaderboard(rows, min_votes=min_votes), read.problems, len(flagged), studies=studies)


def _with_minimum(board: Leaderboard, min_votes: int) -> Leaderboard:
    """The board with ranks shown only from ``min_votes`` votes on."""
    rank = 0
    for row in board.rows:
        shown = row["votes"] >= min_votes
        rank += shown
        row["rank"] = rank if shown else None
    return board



def knob_default(name: str) -> float:
    parameter = MAIN_KNOBS[name][0]
    return getattr(restorer_class(name).Params(), parameter)
