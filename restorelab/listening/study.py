"""Listening studies: stimuli prepared once by an organiser, judged by many listeners.

A study is a folder: ``study.json`` (the clips with their origin and prompt,
each clip's candidates with their full settings and hashes, the design, the
test, the app version) and ``stimuli/``, one 24-bit FLAC per candidate and
clip, every one of a clip matched to the same loudness. Candidates that sound
the same on a clip are one candidate there, named by all their restorers.

Two tests: ``pairwise`` (blind A/B preference; each clip also gets an anchor,
the input low-passed at 3.5 kHz, for the listening checks) and ``mushra``
(ITU-R BS.1534-3, for degraded clips whose clean original exists: each item's
conditions are the hidden reference, the 3.5 kHz and 7 kHz low-pass anchors
made from it, the degraded input and every restorer's output, rated against
the open reference; each condition carries its reference metrics).

:func:`build_study` restores clips with the project's restorers, or takes
outputs made elsewhere (``systems_dir``); either way it writes into a
temporary folder and renames it into place, so a failed build leaves nothing.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from restorelab import __version__
from restorelab.analysis import INPUT_ROW, reference_metrics
from restorelab.audio import AUDIO_SUFFIXES, AudioError, Clip, atomic_write_text, load_audio, write_wav
from restorelab.degrade import degrade
from restorelab.dsp import lowpass_fir, zero_phase_filter
from restorelab.listening.candidates import audio_sha256, merge_identical
from restorelab.listening.stimuli import match_together
from restorelab.listening.votes import MERGED

FORMAT_VERSION = 2
STUDY_FILE = "study.json"
REVEAL_MODES = ("end", "never", "each")
TESTS = ("pairwise", "mushra")
#: The check anchor: the input low-passed here (ITU-R BS.1534-3's low anchor).
ANCHOR_CUTOFF_HZ = 3500.0
ANCHOR = "anchor"
#: MUSHRA conditions made from the clean reference (ITU-R BS.1534-3, 5.1): the hidden reference,
#: the low anchor (low-passed at 3.5 kHz) and the mid anchor (at 7 kHz).
HIDDEN_REFERENCE = "hidden_reference"
LOW_ANCHOR = "anchor_3.5kHz"
MID_ANCHOR = "anchor_7kHz"
MID_ANCHOR_CUTOFF_HZ = 7000.0
#: What a MUSHRA condition is: the hidden reference, an anchor, the degraded input (with any
#: restorer that made no audible change to it) or a restorer's output.
KINDS = ("hidden_reference", "anchor", "input", "system")
#: Reference metrics each MUSHRA condition carries, for the correlation with the scores.
MUSHRA_METRICS = ("lsd", "si_sdr_db", "visqol_moslqo")
#: Outputs of other systems may differ from the input's length by this much (resampling, codec
#: delay); they are trimmed to the shortest. Larger differences are an error.
MAX_LENGTH_MISMATCH_S = 0.5
DEFAULT_QUESTIONNAIRE = (
    {"id": "playback", "question": "What are you listening on?",
     "choices": ["Headphones", "Earphones", "Loudspeakers", "Laptop or phone speakers"]},
    {"id": "experience", "question": "How would you describe your listening experience?",
     "choices": ["Casual listener", "Musician or audio hobbyist", "Audio professional"]},
)
DEFAULT_INSTRUCTIONS = (
    "You will hear pairs of short music excerpts. Each pair is the same music, processed in two ways. "
    "Play both sides (switch between them as often as you like), then say which sounds better, that you "
    "hear no difference, or that both are bad. Some pairs are checks: when both sides sound the same, "
    "say so. Use headphones in a quiet room if you can, and keep the volume the same throughout.")
MUSHRA_INSTRUCTIONS = (
    "Each page is one piece of music in several versions. Press Reference to hear the original, then play "
    "every version (switch as often as you like: playback stays at the same place) and rate how close each "
    "is to the reference, from 0 (bad) to 100 (excellent). One of the versions is the reference itself, "
    "hidden: give it 100 when you find it. Play every version before you submit. Use headphones in a quiet "
    "room if you can, and keep the volume the same throughout.")

ProgressCallback = Callable[[str, int, int], None]


class StudyError(ValueError):
    """A study cannot be built or read; the message names the file and the problem."""


@dataclass(frozen=True)
class StudyCandidate:
    """One sound of a clip: the restorers that made it, its file, its hash and settings."""

    members: tuple[str, ...]
    file: str
    sha256: str
    settings: list[dict[str, Any]] = field(default_factory=list)
    kind: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return MERGED.join(self.members)


@dataclass(frozen=True)
class StudyClip:
    """One item of a study: where it came from, its candidates (the input's first) and its anchor.

    In a MUSHRA study the candidates are the item's conditions and ``reference_file`` is the open
    reference (the hidden reference's file).
    """

    id: str
    source: str
    origin: str
    prompt: str
    duration_s: float
    candidates: tuple[StudyCandidate, ...]
    anchor_file: str
    loudness_lufs: float
    reference_file: str = ""

    def candidate(self, label: str) -> StudyCandidate:
        for candidate in self.candidates:
            if candidate.label == label:
                return candidate
        raise KeyError(label)


@dataclass(frozen=True)
class Design:
    """How trials are dealt to listeners.

    Attributes:
        trials_per_listener: trials each listener judges, checks included.
        check_share: share of those that are checks (at least ``min_checks``).
        min_checks: checks per listener at the least.
        max_failed_check_share: listeners who fail more than this share of
            their checks are flagged (their votes are shown apart).
        seed: fixes the order of trials and the sides; listener ``k`` always gets the same plan.
    """

    trials_per_listener: int = 20
    check_share: float = 0.15
    min_checks: int = 3
    max_failed_check_share: float = 1 / 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trials_per_listener < 1:
            raise ValueError(f"trials_per_listener must be at least 1, got {self.trials_per_listener}")
        if not 0 <= self.check_share < 1 or not 0 <= self.max_failed_check_share <= 1 or self.min_checks < 0:
            raise ValueError("check_share must be in [0, 1), max_failed_check_share in [0, 1], min_checks >= 0")

    @property
    def checks(self) -> int:
        wanted = max(self.min_checks, round(self.check_share * self.trials_per_listener))
        return min(wanted, self.trials_per_listener - 1)


@dataclass
class Study:
    """A study as read from its folder."""

    id: str
    folder: Path
    clips: list[StudyClip]
    design: Design = field(default_factory=Design)
    reveal: str = "end"
    test: str = "pairwise"
    instructions: str = DEFAULT_INSTRUCTIONS
    questionnaire: list[dict[str, Any]] = field(default_factory=lambda: [dict(q) for q in DEFAULT_QUESTIONNAIRE])
    app_version: str = __version__
    created_utc: str = ""

    def path(self, relative: str) -> Path:
        return self.folder / relative

    def clip(self, clip_id: str) -> StudyClip:
        for clip in self.clips:
            if clip.id == clip_id:
                return clip
        raise KeyError(clip_id)

    def to_json(self) -> str:
        data = {"format": FORMAT_VERSION, "id": self.id, "test": self.test, "reveal": self.reveal,
                "app_version": self.app_version, "created_utc": self.created_utc, "design": asdict(self.design),
                "instructions": self.instructions, "questionnaire": self.questionnaire,
                "clips": [{**asdict(clip), "candidates": [asdict(c) for c in clip.candidates]} for clip in self.clips]}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def load_study(folder: str | Path) -> Study:
    """Read ``folder/study.json`` and check that every stimulus it names is there.

    Raises:
        StudyError: no study file, a malformed one, or a missing stimulus.
    """
    folder = Path(folder)
    path = folder / STUDY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"{folder}: is not a study folder (no {STUDY_FILE}); make one with "
                         "`restorelab study build`") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path}: cannot be read as a study ({exc})") from None
    try:
        if data["format"] > FORMAT_VERSION:
            raise StudyError(f"{path}: was written by a newer version of restorelab (format {data['format']})")
        clips = [StudyClip(**{**clip, "candidates": tuple(StudyCandidate(**{**c, "members": tuple(c["members"])})
                                                          for c in clip["candidates"])})
                 for clip in data["clips"]]
        study = Study(id=data["id"], folder=folder, clips=clips, design=Design(**data["design"]),
                      reveal=data["reveal"], test=data["test"], instructions=data["instructions"],
                      questionnaire=data["questionnaire"], app_version=data["app_version"],
                      created_utc=data["created_utc"])
        if study.test not in TESTS:
            raise ValueError(f"unknown test {study.test!r}")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, StudyError):
            raise
        raise StudyError(f"{path}: is not a valid study file ({type(exc).__name__}: {exc})") from None
    for clip in study.clips:
        for relative in [c.file for c in clip.candidates] + [clip.anchor_file]:
            if not _inside(relative):
                raise StudyError(f"{path}: names a stimulus outside the study folder ({relative!r})")
            if not study.path(relative).is_file():
                raise StudyError(f"{study.path(relative)}: a stimulus of the study is missing")
    return study


def _inside(relative: str) -> bool:
    """Whether a path a study file names stays inside the study folder."""
    return not Path(relative).is_absolute() and ".." not in Path(relative).parts


def clean_id(text: str) -> str:
    """A study or clip id made of letters, digits, ``-`` and ``_`` only."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:64]
    if not cleaned:
        raise StudyError(f"{text!r} cannot be made into an id (letters, digits, - and _)")
    return cleaned


def anchor_of(audio: np.ndarray, sample_rate: int, cutoff_hz: float = ANCHOR_CUTOFF_HZ) -> np.ndarray:
    """The input low-passed at ``cutoff_hz`` (linear phase, 100 dB stop band, 500 Hz transition)."""
    return zero_phase_filter(audio, lowpass_fir(cutoff_hz, sample_rate)).astype(np.float32)


def _write_clip(folder: Path, index: int, clip: Clip, clip_id: str, outputs: dict[str, np.ndarray],
                settings: dict[str, list[dict]]) -> StudyClip:
    """Merge a clip's outputs that sound the same, match them and the anchor, write them."""
    sounds = {INPUT_ROW: clip.audio, **outputs}
    groups = merge_identical(sounds, clip.sample_rate)
    anchor = anchor_of(clip.audio, clip.sample_rate)
    (*matched, matched_anchor), level = match_together([sounds[group[0]] for group in groups] + [anchor],
                                                       clip.sample_rate)
    candidates = []
    for number, (group, stimulus) in enumerate(zip(groups, matched)):
        relative = f"stimuli/{index:03d}/{number:02d}.flac"
        write_wav(folder / relative, stimulus, clip.sample_rate, subtype="PCM_24", file_format="FLAC")
        candidates.append(StudyCandidate(members=tuple(group), file=relative, sha256=audio_sha256(sounds[group[0]]),
                                         settings=[s for name in group for s in settings[name]]))
    anchor_file = f"stimuli/{index:03d}/{ANCHOR}.flac"
    write_wav(folder / anchor_file, matched_anchor, clip.sample_rate, subtype="PCM_24", file_format="FLAC")
    return StudyClip(id=clip_id, source=Path(clip.source).name, origin=clip.origin, prompt=clip.prompt,
                     duration_s=clip.duration_s, candidates=tuple(candidates), anchor_file=anchor_file,
                     loudness_lufs=level)


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _write_mushra_clip(folder: Path, index: int, clip: Clip, clip_id: str, outputs: dict[str, np.ndarray],
                       settings: dict[str, list[dict]], reference: np.ndarray, with_visqol: bool) -> StudyClip:
    """One MUSHRA item: the input's and restorers' distinct sounds, the hidden reference and both
    anchors, all matched together, each with its reference metrics."""
    if reference.shape != clip.audio.shape:
        raise StudyError(f"{clip.source}: its reference has shape {reference.shape}, the clip {clip.audio.shape} "
                         "(channels, samples); they must match")
    sounds = {INPUT_ROW: clip.audio, **outputs}
    groups = merge_identical(sounds, clip.sample_rate)
    made = {HIDDEN_REFERENCE: reference, LOW_ANCHOR: anchor_of(reference, clip.sample_rate),
            MID_ANCHOR: anchor_of(reference, clip.sample_rate, MID_ANCHOR_CUTOFF_HZ)}
    made_settings = {HIDDEN_REFERENCE: [{"condition": "the clean reference, hidden"}],
                     LOW_ANCHOR: [{"condition": f"the reference low-passed at {ANCHOR_CUTOFF_HZ:g} Hz"}],
                     MID_ANCHOR: [{"condition": f"the reference low-passed at {MID_ANCHOR_CUTOFF_HZ:g} Hz"}]}
    conditions = [(group, sounds[group[0]], "input" if INPUT_ROW in group else "system",
                   [s for name in group for s in settings[name]]) for group in groups]
    conditions += [([name], audio, "hidden_reference" if name == HIDDEN_REFERENCE else "anchor", made_settings[name])
                   for name, audio in made.items()]
    matched, level = match_together([audio for _, audio, _, _ in conditions], clip.sample_rate)
    candidates = []
    for number, ((group, audio, kind, condition_settings), stimulus) in enumerate(zip(conditions, matched)):
        relative = f"stimuli/{index:03d}/{number:02d}.flac"
        write_wav(folder / relative, stimulus, clip.sample_rate, subtype="PCM_24", file_format="FLAC")
        row = reference_metrics(reference, audio, clip.sample_rate, with_visqol=with_visqol)
        metrics = {name: _finite(row[name]) for name in MUSHRA_METRICS if name in row}
        candidates.append(StudyCandidate(members=tuple(group), file=relative, sha256=audio_sha256(audio),
                                         settings=condition_settings, kind=kind, metrics=metrics))
    by_name = {c.members[0]: c for c in candidates}
    return StudyClip(id=clip_id, source=Path(clip.source).name, origin=clip.origin, prompt=clip.prompt,
                     duration_s=clip.duration_s, candidates=tuple(candidates),
                     anchor_file=by_name[LOW_ANCHOR].file, loudness_lufs=level,
                     reference_file=by_name[HIDDEN_REFERENCE].file)


def _references(inputs: list[Path], reference_dir: Path | None, preset: str | None, seed: int,
                max_duration_s: float):
    """Per input, ``(degraded clip, clean audio)``: the input and its namesake in ``reference_dir``,
    or the input (clean) degraded with ``preset`` (seed ``seed + index``) and the input itself."""
    references = {}
    if reference_dir is not None:
        if not Path(reference_dir).is_dir():
            raise StudyError(f"{reference_dir}: the reference folder does not exist")
        references = {p.stem: p for p in sorted(Path(reference_dir).rglob("*"))
                      if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES}
    for index, path in enumerate(inputs):
        try:
            clip = load_audio(path, max_duration_s=max_duration_s)
            if preset is not None:
                clean = clip.audio
                clip.audio, _ = degrade(clean, clip.sample_rate, preset, seed=seed + index)
                yield clip, clean
                continue
            if Path(path).stem not in references:
                raise StudyError(f"{path}: no reference with the stem {Path(path).stem!r} in {reference_dir}")
            clean = load_audio(references[Path(path).stem], max_duration_s=max_duration_s)
        except AudioError as exc:
            raise StudyError(str(exc)) from None
        except KeyError as exc:
            raise StudyError(str(exc.args[0])) from None
        if clean.channels != clip.channels:
            raise StudyError(f"{references[Path(path).stem]}: has {clean.channels} channel(s), {path} has "
                             f"{clip.channels}")
        mismatch = abs(clean.audio.shape[-1] - clip.audio.shape[-1]) / clip.sample_rate
        if mismatch > MAX_LENGTH_MISMATCH_S:
            raise StudyError(f"{path}: is {clip.duration_s:.2f} s long, its reference {clean.duration_s:.2f} s; "
                             f"at most {MAX_LENGTH_MISMATCH_S} s of difference is accepted")
        n = min(clean.audio.shape[-1], clip.audio.shape[-1])
        clip.audio = clip.audio[:, :n]
        yield clip, clean.audio[:, :n]


def _system_outputs(systems_dir: Path, stem: str, clip: Clip, max_duration_s: float) -> dict[str, np.ndarray]:
    """Every system's output for one clip of ``systems_dir/input/``, trimmed to one length."""
    outputs = {}
    for system in sorted(p for p in systems_dir.iterdir() if p.is_dir() and p.name != INPUT_ROW):
        found = sorted(p for p in system.iterdir() if p.stem == stem and p.suffix.lower() in AUDIO_SUFFIXES)
        if not found:
            raise StudyError(f"{system}/{stem}.*: missing; every system needs an output for every clip in "
                             f"{systems_dir / INPUT_ROW}")
        if len(found) > 1:
            raise StudyError(f"{system}: has {len(found)} files for {stem} ({', '.join(p.name for p in found)})")
        output = load_audio(found[0], max_duration_s=max_duration_s)
        if output.channels != clip.channels:
            raise StudyError(f"{found[0]}: has {output.channels} channel(s), the input has {clip.channels}")
        mismatch = abs(output.audio.shape[-1] - clip.audio.shape[-1]) / clip.sample_rate
        if mismatch > MAX_LENGTH_MISMATCH_S:
            raise StudyError(f"{found[0]}: is {output.duration_s:.2f} s long, the input {clip.duration_s:.2f} s; "
                             f"at most {MAX_LENGTH_MISMATCH_S} s of difference is accepted")
        outputs[system.name] = output.audio
    if not outputs:
        raise StudyError(f"{systems_dir}: has no system folders beside {INPUT_ROW}/")
    return outputs


def check_references(test: str, reference_dir, preset: str | None) -> None:
    """Refuse a MUSHRA test without exactly one source of clean originals, and a pairwise one with one."""
    if test not in TESTS:
        raise StudyError(f"the test must be one of {', '.join(TESTS)}, got {test!r}")
    if test == "mushra" and (reference_dir is None) == (preset is None):
        raise StudyError("a MUSHRA test needs the clean originals: give --reference-dir (the clips are degraded) "
                         "or --preset (the clips are clean, and are degraded with it), not both")
    if test != "mushra" and (reference_dir is not None or preset is not None):
        raise StudyError("--reference-dir and --preset are for --test mushra")


def build_study(inputs: list[Path], folder: str | Path, *, restorers: dict[str, Any] | None = None,
                systems_dir: str | Path | None = None, design: Design = Design(), reveal: str = "end",
                study_id: str | None = None, max_duration_s: float = 600.0, test: str = "pairwise",
                reference_dir: str | Path | None = None, preset: str | None = None, degrade_seed: int = 0,
                with_visqol: bool = False, progress: ProgressCallback | None = None) -> Study:
    """Restore (or collect) every clip's candidates once and write the study folder.

    Args:
        inputs: the clips (audio files); ignored with ``systems_dir``, whose ``input/`` holds them.
        folder: the study folder to create; it must not exist yet (or be empty).
        restorers: name -> restorer instance, each run on every clip.
        systems_dir: outputs made elsewhere, ``DIR/<system>/<clip stem>.<ext>``, the clips in ``DIR/input/``.
        design, reveal: how trials are dealt, and when listeners learn the names (``end``, ``never``, ``each``).
        test: ``pairwise`` or ``mushra``; a MUSHRA test needs the clean originals: ``reference_dir``
            (matched to the clips by stem) or ``preset`` (the clips are clean and are degraded with it,
            clip ``i`` with seed ``degrade_seed + i``, before restoring).
        with_visqol: add ViSQOL to each MUSHRA condition's metrics (about 1 s per second of audio).

    Raises:
        StudyError: the folder exists, an input is bad or missing, a system lacks an output, ids clash,
            a MUSHRA test has no reference (or a pairwise one has one).
    """
    check_references(test, reference_dir, preset)
    if systems_dir is not None:
        if preset is not None:
            raise StudyError("--systems-dir holds outputs of degraded clips; give their originals with "
                             "--reference-dir, not --preset")
        systems_dir = Path(systems_dir)
        input_dir = systems_dir / INPUT_ROW
        if not input_dir.is_dir():
            raise StudyError(f"{input_dir}: missing; --systems-dir needs the unprocessed clips in input/")
        inputs = sorted(p for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    elif not restorers:
        raise StudyError("no restorers: name at least one with -r")

    def clips():
        if test == "mushra":
            yield from _references(inputs, reference_dir, preset, degrade_seed, max_duration_s)
            return
        for path in inputs:
            try:
                yield load_audio(path, max_duration_s=max_duration_s), None
            except AudioError as exc:
                raise StudyError(str(exc)) from None

    def items():
        from restorers import restore_all

        for path, (clip, reference) in zip(inputs, clips()):
            if systems_dir is not None:
                outputs = _system_outputs(systems_dir, Path(path).stem, clip, max_duration_s)
                n = min(clip.audio.shape[-1], *(o.shape[-1] for o in outputs.values()))
                clip.audio = clip.audio[:, :n]
                reference = None if reference is None else reference[:, :n]
                outputs = {name: audio[:, :n] for name, audio in outputs.items()}
                settings = {name: [{"system": name}] for name in outputs}
            else:
                outputs = restore_all(restorers, clip.audio, clip.sample_rate)
                settings = {name: [{"restorer": name, "params": asdict(restorer.params)}]
                            for name, restorer in restorers.items()}
            yield (clip, outputs, settings) if reference is None else (clip, outputs, settings, reference)

    return write_study([Path(p).stem for p in inputs], items(), folder, design=design, reveal=reveal,
                       study_id=study_id, progress=progress, test=test, with_visqol=with_visqol)


def write_study(names: list[str], items, folder: str | Path, *, design: Design = Design(), reveal: str = "end",
                study_id: str | None = None, progress: ProgressCallback | None = None, test: str = "pairwise",
                with_visqol: bool = False) -> Study:
    """Write a study folder from ``items``: per clip (named by ``names``, in order), ``(clip, outputs,
    settings)`` with ``outputs`` restorer -> audio and ``settings`` restorer -> list of settings; for a
    ``mushra`` test, ``(clip, outputs, settings, reference)`` with the clean reference's audio.

    Everything goes into a temporary folder beside ``folder``, renamed into place at the end.

    Raises:
        StudyError: the folder exists, ``reveal`` is unknown, there are no clips, or their ids clash.
    """
    folder = Path(folder)
    if reveal not in REVEAL_MODES:
        raise StudyError(f"reveal must be one of {', '.join(REVEAL_MODES)}, got {reveal!r}")
    if test not in TESTS:
        raise StudyError(f"the test must be one of {', '.join(TESTS)}, got {test!r}")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise StudyError(f"{folder}: already exists; choose a new folder for the study")
    if not names:
        raise StudyError("no clips: give audio files or folders")
    ids = [clean_id(name) for name in names]
    clashes = sorted({i for i in ids if ids.count(i) > 1})
    if clashes:
        raise StudyError(f"these clips would share an id: {', '.join(clashes)}; rename them")
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        clips = []
        for index, (clip_id, (clip, outputs, settings, *reference)) in enumerate(zip(ids, items)):
            if progress:
                progress(clip_id, index, len(ids))
            settings = {INPUT_ROW: [{"restorer": INPUT_ROW}], **settings}
            if test == "mushra":
                clips.append(_write_mushra_clip(partial, index, clip, clip_id, outputs, settings, reference[0],
                                                with_visqol))
            else:
                clips.append(_write_clip(partial, index, clip, clip_id, outputs, settings))
        if progress:
            progress("done", len(ids), len(ids))
        study = Study(id=clean_id(study_id) if study_id else f"study-{secrets.token_hex(4)}", folder=folder,
                      clips=clips, design=design, reveal=reveal, test=test,
                      instructions=MUSHRA_INSTRUCTIONS if test == "mushra" else DEFAULT_INSTRUCTIONS,
                      created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        atomic_write_text(partial / STUDY_FILE, study.to_json())
        if folder.exists():
            folder.rmdir()
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return study
