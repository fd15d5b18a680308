"""Clean full-band training music, assembled from Debian packages and cached outside the repo.

Two kinds of source, all installed with ``apt-get`` (see :data:`APT_PACKAGES`):

* MIDI rendered by FluidSynth with the FluidR3 General MIDI sound font (lossless,
  content up to about 21 kHz): the music lumps of Freedoom's WADs, the
  ``openttd-openmsx`` base set, and songs written over MMA's groove library.
  Each MIDI gets seeded variations (instruments within their General MIDI
  family, tempo, velocity) so the same notes sound different.
* Real recordings (Vorbis, and Opus for ``warzone2100-music``) from the packages
  in :data:`RECORDING_DIRS` and the game archives in :data:`RECORDING_ARCHIVES`,
  keeping only tracks whose spectrum reaches 19 kHz and never a track that
  ``music-reference/MANIFEST.tsv`` holds out for evaluation. Each track is cut into
  consecutive pieces (up to ``recording_seconds`` of it), each piece a clip.

Each recording is assigned, by a hash of its package and path, to the ``train``
or the ``validation`` split (:data:`VALIDATION_SHARE` of them): checkpoints and
recipes are chosen on the validation split, never on the evaluation excerpts.

Everything is written as 24-bit FLAC at the working rate with a ``manifest.tsv``
(file, source, package, licence, seconds, measured bandwidth, split). Training pairs
are made from these clips on the fly by :mod:`restorelab.degrade`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import struct
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from restorelab.audio import WORKING_RATE, AudioError, atomic_write_text, load_audio, write_wav
from restorelab.dsp import bandwidth_hz

APT_PACKAGES = ("fluidsynth", "fluid-soundfont-gm", "freedoom", "openttd-openmsx", "mma",
                "wesnoth-1.16-music", "hedgewars-data", "supertux-data", "singularity-music",
                "planetblupi-music-ogg", "drascula-music", "warzone2100-music", "nexuiz-music")
SOUND_FONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
FREEDOOM_WADS = (Path("/usr/share/games/doom/freedoom1.wad"), Path("/usr/share/games/doom/freedoom2.wad"))
OPENMSX_DIR = Path("/usr/share/games/openttd/baseset/openmsx")
MMA_STDLIB = Path("/usr/share/mma/lib/stdlib")
#: Package -> folder of its music (Ogg Vorbis or Ogg Opus files).
RECORDING_DIRS = {
    "wesnoth-1.16-music": Path("/usr/share/games/wesnoth/1.16/data/core/music"),
    "hedgewars-data": Path("/usr/share/games/hedgewars/Data/Music"),
    "supertux-data": Path("/usr/share/games/supertux2/music"),
    "singularity-music": Path("/usr/share/games/singularity/music"),
    "planetblupi-music-ogg": Path("/usr/share/planetblupi/music"),
    "drascula-music": Path("/usr/share/scummvm/drascula/audio"),
    "warzone2100-music": Path("/usr/share/games/warzone2100/music"),
}
#: Package -> (zip archive, folder inside it) of music shipped inside a game's data archive.
RECORDING_ARCHIVES = {
    "nexuiz-music": (Path("/usr/share/games/nexuiz/data/music.pk3"), "sound/cdtracks"),
}
RECORDING_SUFFIXES = (".ogg", ".opus")
#: Licences as the packages' Debian copyright files state them (the sound font: MIT).
LICENCES = {
    "freedoom": "BSD-3-Clause (Freedoom licence)",
    "openttd-openmsx": "GPL-2.0",
    "mma": "GPL-2.0+",
    "wesnoth-1.16-music": "GPL-2.0+",
    "hedgewars-data": "GPL-2.0 / CC-BY-SA-3.0 (per file)",
    "supertux-data": "GPL-2.0+ / CC-BY-SA (per file)",
    "singularity-music": "CC-BY-SA-3.0",
    "planetblupi-music-ogg": "GPL-3.0+",
    "drascula-music": "Drascula licence (free redistribution)",
    "warzone2100-music": "CC-BY-SA-3.0 or GPL-2.0+ (per album)",
    "nexuiz-music": "GPL-2.0+",
}
DEFAULT_CACHE = Path(os.environ.get("RESTORELAB_DATA", Path.home() / ".cache" / "restorelab" / "train-data"))
MIN_BANDWIDTH_HZ = 19000.0
MANIFEST_COLUMNS = ("file", "source", "package", "licence", "seconds", "bandwidth_hz", "split")
SPLITS = ("train", "validation")
#: Share of the recordings kept for validation (chosen by a hash of package and path, so a
#: rebuild, or a build with more packages, keeps every track's split).
VALIDATION_SHARE = 0.15

#: Chord loops for the MMA songs (Roman numerals on a random key).
_PROGRESSIONS = (("I", "vi", "IV", "V"), ("I", "IV", "V", "IV"), ("ii", "V", "I", "I"),
                 ("I", "V", "vi", "IV"), ("vi", "IV", "I", "V"), ("I", "iii", "IV", "V"))
_DEGREES = {"I": (0, ""), "ii": (2, "m"), "iii": (4, "m"), "IV": (5, ""), "V": (7, ""), "vi": (9, "m")}
_KEYS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class Item:
    """One clean clip in the cache."""

    file: str
    source: str
    package: str
    seconds: float
    bandwidth_hz: float
    split: str = "train"


# -- MIDI ----------------------------------------------------------------------

def wad_music_lumps(wad: Path) -> Iterator[tuple[str, bytes]]:
    """``(lump name, MIDI bytes)`` for each music lump (``D_*``) of a Doom WAD that is MIDI."""
    data = wad.read_bytes()
    magic, count, offset = struct.unpack_from("<4sii", data, 0)
    if magic not in (b"IWAD", b"PWAD"):
        raise ValueError(f"{wad}: not a WAD file (magic {magic!r})")
    for i in range(count):
        position, size, raw = struct.unpack_from("<ii8s", data, offset + 16 * i)
        name = raw.rstrip(b"\0").decode("ascii", "replace")
        lump = data[position : position + size]
        if name.startswith("D_") and lump[:4] == b"MThd":
            yield name, lump


def mma_song(groove: str, rng: np.random.Generator, bars: int = 16) -> str:
    """An MMA song: a random key, tempo and chord loop over ``groove``."""
    key = int(rng.integers(12))
    loop = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    lines = [f"Tempo {int(rng.integers(80, 150))}", f"Groove {groove}"]
    for bar in range(bars):
        step, quality = _DEGREES[loop[bar % len(loop)]]
        lines.append(f"{bar + 1} {_KEYS[(key + step) % 12]}{quality}")
    return "\n".join(lines) + "\n"


def mma_grooves(stdlib: Path = MMA_STDLIB) -> list[str]:
    """Groove names defined in MMA's standard library (one per file, the file's first)."""
    grooves = []
    for path in sorted(stdlib.glob("*.mma")):
        for line in path.read_text(errors="replace").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0].lower() == "defgroove":
                grooves.append(words[1])
                break
    return grooves


def vary_midi(midi: bytes, rng: np.random.Generator, max_seconds: float = 60.0) -> bytes:
    """A seeded variation of a MIDI file, cut to ``max_seconds``.

    Each melodic channel's programs move to a random instrument of the same
    General MIDI family (eight programs each) with probability one half; tempo
    scales by 0.85-1.15 and velocities by 0.7-1.1. Drums (channel 10) keep their kit.
    """
    import mido

    song = mido.MidiFile(file=io.BytesIO(midi))
    tempo_scale = float(rng.uniform(0.85, 1.15))
    velocity_scale = float(rng.uniform(0.7, 1.1))
    family_shift = {channel: (int(rng.integers(8)) if rng.random() < 0.5 else None) for channel in range(16)}
    # Cut by absolute time, which needs the tempo map: merge into one timeline first.
    out = mido.MidiFile(type=0, ticks_per_beat=song.ticks_per_beat)
    track = mido.MidiTrack()
    out.tracks.append(track)
    tempo, seconds = 500000, 0.0
    for message in mido.merge_tracks(song.tracks):
        seconds += mido.tick2second(message.time, song.ticks_per_beat, tempo) / tempo_scale
        if seconds > max_seconds:
            break
        if message.type == "set_tempo":
            tempo = message.tempo
            message = message.copy(tempo=max(1, min(16777215, int(round(message.tempo / tempo_scale)))))
        elif message.type == "program_change" and message.channel != 9:
            shift = family_shift[message.channel]
            if shift is not None:
                message = message.copy(program=message.program // 8 * 8 + shift)
        elif message.type == "note_on" and message.velocity > 0:
            message = message.copy(velocity=int(np.clip(round(message.velocity * velocity_scale), 1, 127)))
        if message.is_meta and message.type == "end_of_track":
            continue
        track.append(message)
    # Release whatever still sounds (a cut leaves notes without their note-off, which keeps
    # FluidSynth's renderer going), let it ring for two beats, then end.
    for channel in range(16):
        track.append(mido.Message("control_change", channel=channel, control=123, value=0))
    track.append(mido.MetaMessage("end_of_track", time=int(song.ticks_per_beat * 2)))
    buffer = io.BytesIO()
    out.save(file=buffer)
    return buffer.getvalue()


def render_midi(midi: bytes, sound_font: Path = SOUND_FONT, sample_rate: int = WORKING_RATE) -> np.ndarray:
    """Render MIDI bytes with FluidSynth to float32 ``[2, samples]``."""
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None or not sound_font.is_file():
        raise RuntimeError("rendering MIDI needs fluidsynth and the FluidR3 sound font: "
                           "apt-get install fluidsynth fluid-soundfont-gm")
    with tempfile.TemporaryDirectory(prefix="restorelab-render-") as folder:
        midi_path, wav_path = Path(folder) / "in.mid", Path(folder) / "out.wav"
        midi_path.write_bytes(midi)
        subprocess.run([fluidsynth, "-ni", "-q", "-r", str(sample_rate), "-O", "float", "-T", "wav",
                        "-F", str(wav_path), str(sound_font), str(midi_path)],
                       check=True, capture_output=True, timeout=600)
        audio, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz, asked for {sample_rate}")
    return audio.T


def trim_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = -60.0) -> np.ndarray:
    """Drop leading and trailing stretches quieter than ``threshold_db`` below the peak (50 ms frames)."""
    frame = sample_rate // 20
    n_frames = audio.shape[-1] // frame
    if n_frames == 0:
        return audio
    energy = np.mean(np.square(audio[:, : n_frames * frame]).reshape(audio.shape[0], n_frames, frame), axis=(0, 2))
    loud = np.flatnonzero(energy > energy.max() * 10 ** (threshold_db / 10))
    if loud.size == 0:
        return audio[:, :0]
    return audio[:, loud[0] * frame : (loud[-1] + 1) * frame]


# -- recordings ----------------------------------------------------------------

def held_out_paths(manifest: Path) -> set[str]:
    """Paths inside their packages of the evaluation excerpts (``path_in_package`` column)."""
    if not manifest.is_file():
        return set()
    with open(manifest, newline="", encoding="utf-8") as handle:
        return {row["path_in_package"] for row in csv.DictReader(handle, delimiter="\t")}


def split_of(package: str, relative: str) -> str:
    """``validation`` for about :data:`VALIDATION_SHARE` of the recordings, else ``train``: a hash of
    the package and the path, so a track's split never depends on what else is built."""
    digest = hashlib.sha256(f"{package}/{relative}".encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") / 2**64 < VALIDATION_SHARE else "train"


def recording_pieces(audio: np.ndarray, sample_rate: int, clip_seconds: float,
                     max_seconds: float) -> list[np.ndarray]:
    """Consecutive pieces of ``clip_seconds`` of a track's sounding part, up to ``max_seconds`` of it
    in all; a last piece under 5 s is dropped."""
    audio = trim_silence(audio, sample_rate)[:, : int(max_seconds * sample_rate)]
    n, shortest = int(clip_seconds * sample_rate), 5 * sample_rate
    return [audio[:, start : start + n] for start in range(0, audio.shape[-1], n)
            if audio.shape[-1] - start >= shortest]


def _recording_folders(unpacked: Path) -> Iterator[tuple[str, Path, Path]]:
    """``(package, folder of its tracks, where the tracks come from)`` for every recording source; the
    tracks inside an archive are first unpacked under ``unpacked``."""
    for package, folder in RECORDING_DIRS.items():
        yield package, folder, folder
    for package, (archive, inner) in RECORDING_ARCHIVES.items():
        if not archive.is_file():
            continue
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if member.startswith(f"{inner}/") and Path(member).suffix.lower() in RECORDING_SUFFIXES:
                    bundle.extract(member, unpacked / package)
        yield package, unpacked / package / inner, archive / inner


def _load_recording(path: Path, log) -> np.ndarray | None:
    """A track as stereo at the working rate, or None (said why) if it cannot be read or its band
    stops under :data:`MIN_BANDWIDTH_HZ`."""
    try:
        clip = load_audio(path, max_duration_s=1800)
    except AudioError as exc:
        log(f"skipped {exc}")
        return None
    audio = clip.audio if clip.channels == 2 else np.repeat(clip.audio, 2, axis=0)
    width = bandwidth_hz(audio, WORKING_RATE)
    if width < MIN_BANDWIDTH_HZ:
        log(f"skipped {path.name}: bandwidth {width:.0f} Hz is under {MIN_BANDWIDTH_HZ:.0f}")
        return None
    return audio


# -- the cache -----------------------------------------------------------------

def _write_flac(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    scale = 0.98 / peak if peak > 0.98 else 1.0  # FLAC is integer: keep the clip whole
    write_wav(path, audio * scale, sample_rate, subtype="PCM_24", file_format="FLAC")


def read_manifest(cache: Path) -> list[Item]:
    """The items of a built cache; raises if it has not been built."""
    path = Path(cache) / "manifest.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training data here; run `restorelab data build` first")
    with open(path, newline="", encoding="utf-8") as handle:
        return [Item(row["file"], row["source"], row["package"], float(row["seconds"]), float(row["bandwidth_hz"]),
                     row.get("split") or "train")  # manifests from before the split: all train
                for row in csv.DictReader(handle, delimiter="\t")]


def recordings_of(cache: Path, split: str = "validation") -> list[Path]:
    """The files of a built cache's recordings in ``split`` (the validation split by default)."""
    return [Path(cache) / item.file for item in read_manifest(cache)
            if item.split == split and item.source == "recording"]


def _write_manifest(cache: Path, items: list[Item]) -> None:
    lines = ["\t".join(MANIFEST_COLUMNS)]
    for item in items:
        lines.append("\t".join([item.file, item.source, item.package, LICENCES[item.package],
                                f"{item.seconds:.2f}", f"{item.bandwidth_hz:.0f}", item.split]))
    atomic_write_text(cache / "manifest.tsv", "\n".join(lines) + "\n")


def build(cache: Path = DEFAULT_CACHE, *, seed: int = 0, clip_seconds: float = 45.0,
          recording_seconds: float = 240.0, held_out_manifest: Path | None = None, mma_songs: int = 40,
          variations: int = 1, log=print) -> list[Item]:
    """Render and collect the training music into ``cache``; returns the manifest's items.

    MIDI renders are cut to ``clip_seconds``; recordings to pieces of ``clip_seconds``, up to
    ``recording_seconds`` of each track. Existing files are kept (the build resumes); a
    recording whose bandwidth is under 19 kHz, or that is held out, is skipped and said so.
    """
    cache = Path(cache)
    rng = np.random.default_rng(seed)
    items: list[Item] = []

    # A file already written keeps the bandwidth its last manifest measured (files are never rewritten).
    measured = {item.file: item.bandwidth_hz for item in read_manifest(cache)} if (cache / "manifest.tsv").is_file() else {}

    def keep(relative: str, source: str, package: str, make, split: str = "train") -> None:
        """Add a clip: the file already in the cache, else what ``make`` returns (trimmed; None: skip)."""
        path = cache / relative
        if path.is_file():
            info = sf.info(str(path))
            width = measured.get(relative)
            if width is None:
                width = bandwidth_hz(sf.read(str(path), dtype="float32", always_2d=True)[0].T, WORKING_RATE)
        else:
            audio = make()
            if audio is None:
                return
            if audio.shape[-1] < 5 * WORKING_RATE:
                log(f"skipped {relative}: under 5 s of sound")
                return
            _write_flac(path, audio, WORKING_RATE)
            info, width = sf.info(str(path)), bandwidth_hz(audio, WORKING_RATE)
        items.append(Item(relative, source, package, info.frames / info.samplerate, width, split))

    midis: list[tuple[str, str, bytes]] = []
    for wad in FREEDOOM_WADS:
        if wad.is_file():
            midis += [("freedoom", f"{wad.stem}-{name}", lump) for name, lump in wad_music_lumps(wad)]
    midis += [("openttd-openmsx", path.stem, path.read_bytes()) for path in sorted(OPENMSX_DIR.glob("*.mid"))]
    grooves = mma_grooves() if shutil.which("mma") else []
    for index in range(mma_songs if grooves else 0):
        groove = grooves[int(rng.integers(len(grooves)))]
        midi = _mma_midi(mma_song(groove, rng))
        if midi and "metronome" not in groove.lower():  # a click track is not music
            midis.append(("mma", f"song{index:03d}-{groove}", midi))
    log(f"{len(midis)} MIDI files to render ({variations} variation(s) each)")
    for package, name, midi in midis:
        for v in range(variations):
            variant_rng = np.random.default_rng([seed, v, *name.encode()])

            def render(midi=midi, variant_rng=variant_rng):
                audio = render_midi(vary_midi(midi, variant_rng, max_seconds=clip_seconds + 5))
                return trim_silence(audio, WORKING_RATE)[:, : int(clip_seconds * WORKING_RATE)]

            keep(f"midi/{package}/{name}-v{v}.flac", "midi", package, render)

    held_out = held_out_paths(held_out_manifest) if held_out_manifest else set()
    with tempfile.TemporaryDirectory(prefix="restorelab-archives-") as unpacked:
        for package, folder, origin in _recording_folders(Path(unpacked)):
            paths = [p for p in folder.rglob("*") if p.suffix.lower() in RECORDING_SUFFIXES] if folder.is_dir() else []
            for path in sorted(paths):
                inside = path.relative_to(folder)
                if str(origin / inside) in held_out:
                    log(f"held out for evaluation: {origin / inside}")
                    continue
                stem = f"recordings/{package}/{inside.with_suffix('')}"
                split = split_of(package, f"{stem}.flac")  # every piece of a track in the same split
                seconds = min(sf.info(str(path)).duration, recording_seconds)
                decoded: list = []

                def piece(k, path=path, decoded=decoded):
                    if not decoded:
                        whole = _load_recording(path, log)
                        decoded.append([] if whole is None else
                                       recording_pieces(whole, WORKING_RATE, clip_seconds, recording_seconds))
                    return decoded[0][k] if k < len(decoded[0]) else None

                for k in range(max(1, int(np.ceil(seconds / clip_seconds)))):
                    name = f"{stem}.flac" if k == 0 else f"{stem}-part{k + 1}.flac"
                    keep(name, "recording", package, lambda k=k, piece=piece: piece(k), split)
    _write_manifest(cache, items)
    log(f"{len(items)} clips, {sum(i.seconds for i in items) / 60:.1f} min, in {cache}")
    return items


def subset(cache: Path, out: Path, *, seconds: float = 3.0, max_mb: float = 50.0, split: str = "train",
           source: str | None = None, min_bandwidth_hz: float = 0.0, seed: int = 0, log=print) -> list[Item]:
    """A smaller cache for training elsewhere: one random excerpt of ``seconds`` from each clip of
    ``split`` (of ``source``, ``recording`` or ``midi``, when given, and reaching ``min_bandwidth_hz``;
    a channel or the mid, at random), as 16-bit mono FLAC, clips in a seeded random order until
    ``max_mb`` is reached. The manifest keeps each source clip's package and bandwidth."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    items = [item for item in read_manifest(cache) if item.split == split and source in (None, item.source)
             and item.bandwidth_hz >= min_bandwidth_hz]
    kept: list[Item] = []
    size = 0
    n = int(seconds * WORKING_RATE)
    for index in rng.permutation(len(items)):
        item = items[int(index)]
        source = str(Path(cache) / item.file)
        info = sf.info(source)
        if info.frames < n:
            continue
        start = int(rng.integers(info.frames - n + 1))
        channel = int(rng.integers(info.channels + 1))
        piece = sf.read(source, start=start, frames=n, dtype="float32", always_2d=True)[0].T  # the excerpt only
        mono = piece.mean(axis=0, keepdims=True) if channel == info.channels else piece[channel:channel + 1]
        relative = str(Path(item.file).with_suffix("")) + f"-{start}.flac"
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, mono, WORKING_RATE, subtype="PCM_16", file_format="FLAC")
        size += path.stat().st_size
        kept.append(Item(relative, item.source, item.package, seconds, item.bandwidth_hz, item.split))
        if size > max_mb * 1e6:
            break
    _write_manifest(out, kept)
    log(f"{len(kept)} excerpts of {seconds:g} s, {size / 1e6:.1f} MB, in {out}")
    return kept


def _mma_midi(song: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="restorelab-mma-") as folder:
        source, target = Path(folder) / "song.mma", Path(folder) / "song.mid"
        source.write_text(song)
        result = subprocess.run(["mma", "-f", str(target), str(source)], capture_output=True, timeout=120)
        return target.read_bytes() if result.returncode == 0 and target.is_file() else b""
