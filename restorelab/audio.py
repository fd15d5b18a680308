"""Audio in and out: loading that survives real files, resampling, loudness, atomic writes.

Everything a user compares is at one working rate, 44.1 kHz, float32, shaped
``[channels, samples]``. Files enter through :func:`load_audio`, which either
returns such a clip or raises :class:`AudioError` naming the file and the
problem; they leave through :func:`write_wav`, which never leaves half a file.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

WORKING_RATE = 44100
MIN_RATE_HZ = 4000
MAX_RATE_HZ = 384000
MIN_DURATION_S = 0.1
DEFAULT_MAX_DURATION_S = 20 * 60.0
MAX_CHANNELS = 2
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")


class AudioError(ValueError):
    """A file or array that cannot be used as audio; the message names it and says why."""

    def __init__(self, source: str | os.PathLike, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


@dataclass
class Clip:
    """A clip at the working rate.

    Attributes:
        audio: float32 ``[channels, samples]``.
        sample_rate: the working rate.
        source: where it came from (a path or a label).
        source_rate: the rate it was stored at.
        notes: what loading changed (resampling, downmix), for the user to see.
        origin: how it was obtained: ``file``, ``example`` or ``musicgen``.
        prompt: the text it was generated from (MusicGen clips), else empty.
    """

    audio: np.ndarray
    sample_rate: int
    source: str
    source_rate: int
    notes: list[str] = field(default_factory=list)
    origin: str = "file"
    prompt: str = ""

    @property
    def channels(self) -> int:
        return self.audio.shape[0]

    @property
    def duration_s(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


def validate_audio(audio: np.ndarray, sample_rate: float, source: str = "<array>", *,
                   max_duration_s: float = DEFAULT_MAX_DURATION_S,
                   max_channels: int = MAX_CHANNELS) -> np.ndarray:
    """Check an in-memory signal against the same rules as a file; return it as float32 2-D."""
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise AudioError(source, f"expected [channels, samples], got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(source, f"expected floating-point samples, got {audio.dtype}")
    if not MIN_RATE_HZ <= sample_rate <= MAX_RATE_HZ:
        raise AudioError(source, f"sample rate {sample_rate:g} Hz is outside "
                                 f"{MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
    channels, n = audio.shape
    if channels == 0 or n == 0:
        raise AudioError(source, "contains no samples (zero length)")
    if channels > max_channels:
        raise AudioError(source, f"has {channels} channels; at most {max_channels} are supported "
                                 "(pass downmix=True to mix them down)")
    if n < MIN_DURATION_S * sample_rate:
        raise AudioError(source, f"is too short: {n} sample(s) ({n / sample_rate * 1000:.1f} ms); "
                                 f"at least {MIN_DURATION_S * 1000:.0f} ms is needed")
    if n > max_duration_s * sample_rate:
        raise AudioError(source, f"is too long: {n / sample_rate:.1f} s; the limit is "
                                 f"{max_duration_s:.0f} s")
    finite = np.isfinite(audio)
    if not finite.all():
        bad = int(np.size(finite) - np.count_nonzero(finite))
        raise AudioError(source, f"contains {bad} NaN or Inf sample(s)")
    return audio.astype(np.float32, copy=False)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """High-quality resampling (soxr, very-high-quality preset, linear phase).

    Shape: ``[channels, samples] -> [channels, round(samples * rate_out / rate_in)]``.
    """
    if rate_in == rate_out:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio.T), rate_in, rate_out, quality="VHQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


#: The longest Opus frame (s): how far a decoded Ogg Opus stream may fall short of its declared length.
OPUS_FRAME_S = 0.02


def load_audio(path: str | os.PathLike, *, target_rate: int = WORKING_RATE,
               max_duration_s: float = DEFAULT_MAX_DURATION_S, downmix: bool = False) -> Clip:
    """Read a WAV, FLAC, OGG or MP3 file into a working-rate clip.

    Float files keep their values (peaks above 1.0 are not clipped); integer
    files are scaled to [-1, 1). Stereo stays stereo. Files with more than two
    channels raise unless ``downmix`` is set, which averages them to stereo
    (first half of the channels left, second half right) and says so in
    ``notes``.

    Raises:
        AudioError: missing, empty, truncated or unreadable file, no samples,
            NaN/Inf samples, an absurd rate, too short or too long.
    """
    path = Path(path)
    name = str(path)
    if path.is_dir():
        raise AudioError(name, "is a folder, not an audio file")
    if not path.is_file():
        raise AudioError(name, "no such file")
    if path.stat().st_size == 0:
        raise AudioError(name, "is an empty file (0 bytes)")
    with open(path, "rb") as handle:  # through a handle: libsndfile cannot open names that are not UTF-8
        return _load_open(handle, path, name, target_rate, max_duration_s, downmix)


def _load_open(handle, path: Path, name: str, target_rate: int, max_duration_s: float, downmix: bool) -> Clip:
    """:func:`load_audio` from an open file (``name`` for messages, ``path`` for the size checks)."""
    try:
        info = sf.info(handle)
        handle.seek(0)
    except Exception as exc:  # libsndfile's errors are plain RuntimeErrors
        raise AudioError(name, f"is not a readable audio file ({_first_line(exc)})") from None
    if not MIN_RATE_HZ <= info.samplerate <= MAX_RATE_HZ:
        raise AudioError(name, f"sample rate {info.samplerate} Hz is outside "
                               f"{MIN_RATE_HZ}-{MAX_RATE_HZ} Hz")
    if info.frames > max_duration_s * info.samplerate * 1.01 + 1:
        raise AudioError(name, f"is too long: {info.frames / info.samplerate:.1f} s; the limit is "
                               f"{max_duration_s:.0f} s")
    try:
        data, rate = sf.read(handle, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(name, f"could not be decoded, it may be truncated or corrupt "
                               f"({_first_line(exc)})") from None
    missing = _wav_missing_bytes(path)
    if missing:
        raise AudioError(name, f"is truncated: its data chunk declares {missing} more bytes "
                               "than the file holds")
    declared = info.frames
    # Ogg Opus declares a length its decoder can fall short of by a few samples (seen: 10 of 18.8
    # million); a shortfall under one 20 ms Opus frame is not a truncated file.
    slack = int(OPUS_FRAME_S * info.samplerate) if info.subtype == "OPUS" else 0
    if 0 < declared < 2**62 and data.shape[0] < declared - slack:
        raise AudioError(name, f"is truncated: the header declares {declared} frames, "
                               f"only {data.shape[0]} could be read")
    audio = data.T
    notes: list[str] = []
    if audio.shape[0] > MAX_CHANNELS and downmix:
        audio = _downmix_to_stereo(audio)
        notes.append(f"downmixed {info.channels} channels to stereo")
    audio = validate_audio(audio, rate, name, max_duration_s=max_duration_s)
    if rate != target_rate:
        audio = resample(audio, rate, target_rate)
        notes.append(f"resampled {rate} Hz -> {target_rate} Hz (soxr VHQ)")
    return Clip(audio=audio, sample_rate=target_rate, source=name, source_rate=rate, notes=notes)


def _wav_missing_bytes(path: Path) -> int:
    """Bytes a RIFF WAV's ``data`` chunk declares beyond the end of the file (0 if none).

    libsndfile silently reads what is there, so a cut-off download would
    otherwise pass as a shorter clip.
    """
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        size = path.stat().st_size
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk = handle.read(8)
            chunk_size = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # streamed or RF64 placeholder
                    return 0
                return max(0, position + 8 + chunk_size - size)
            position += 8 + chunk_size + (chunk_size & 1)
    return 0


def _downmix_to_stereo(audio: np.ndarray) -> np.ndarray:
    half = audio.shape[0] // 2
    return np.stack([audio[:half].mean(axis=0), audio[half:].mean(axis=0)])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def find_audio_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (recursively) into a sorted list of audio files.

    A named file is kept whatever its suffix, so a bad file still gets its
    clear error; inside folders only known audio suffixes are collected.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*")
                                if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES))
        else:
            found.append(item)
    return found


# -- loudness ---------------------------------------------------------------

#: Samples filtered at a time by :func:`loudness_lufs` (about 24 s at 44.1 kHz).
LOUDNESS_BLOCK_SAMPLES = 1 << 20


def loudness_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated) in LUFS; ``-inf`` for silence.

    pyloudnorm's meter (its K-weighting filters, gating blocks and thresholds), applied
    :data:`LOUDNESS_BLOCK_SAMPLES` at a time with the filters' state carried from block to block: the same
    number as one pass over the whole clip, in memory that does not grow with its length.
    Clips shorter than the 400 ms gating block are measured over a looped copy of themselves
    padded to one block.
    """
    import pyloudnorm
    import scipy.signal

    audio = np.atleast_2d(audio)
    channels, n = audio.shape
    meter = pyloudnorm.Meter(sample_rate)
    if n < int(0.4 * sample_rate) + 1:
        audio = np.resize(audio, (channels, int(0.4 * sample_rate) + 1))
        n = audio.shape[-1]
    # Gating blocks of 400 ms every 100 ms, bounded as pyloudnorm bounds them.
    length_s, step = meter.block_size, 1.0 - meter.overlap
    count = int(np.round((n / sample_rate - length_s) / (length_s * step))) + 1
    starts = np.array([int(length_s * (j * step) * sample_rate) for j in range(count)])
    stops = np.array([int(length_s * (j * step + 1) * sample_rate) for j in range(count)])
    # Sums of squares between consecutive block edges; each gating block adds up its pieces.
    edges = np.unique(np.concatenate([starts, stops]))
    pieces = np.zeros((channels, edges.size))
    stages = list(meter._filters.values())  # the K-weighting: a high shelf, then a high pass (biquads)
    # The two biquads as one cascade of second-order sections: one pass over the samples.
    sections = np.stack([np.concatenate([stage.b / stage.a[0], stage.a / stage.a[0]]) for stage in stages])
    gain = float(np.prod([stage.passband_gain for stage in stages]))
    state = np.zeros((len(stages), channels, 2))
    for begin in range(0, n, LOUDNESS_BLOCK_SAMPLES):
        end = min(begin + LOUDNESS_BLOCK_SAMPLES, n)
        block, state = scipy.signal.sosfilt(sections, audio[:, begin:end].astype(np.float64), axis=-1, zi=state)
        block *= gain
        inside = edges[(edges > begin) & (edges < end)]
        marks = np.concatenate([[begin], inside])
        sums = np.add.reduceat(np.square(block), marks - begin, axis=-1)
        pieces[:, np.searchsorted(edges, marks, side="right") - 1] += sums
    first, last = np.searchsorted(edges, starts), np.searchsorted(edges, stops)
    mean_square = np.stack([pieces[:, a:b].sum(axis=-1) for a, b in zip(first, last)], axis=-1)
    mean_square /= length_s * sample_rate
    weights = np.array([1.0, 1.0, 1.0, 1.41, 1.41])[:channels]  # BS.1770's channel weights
    with np.errstate(divide="ignore"):
        block_loudness = -0.691 + 10.0 * np.log10(weights @ mean_square)
        gated = block_loudness >= -70.0
        if not gated.any():
            return float("-inf")
        relative = -0.691 + 10.0 * np.log10(weights @ mean_square[:, gated].mean(axis=-1)) - 10.0
        gated &= block_loudness > relative
        if not gated.any():
            return float("-inf")
        value = -0.691 + 10.0 * np.log10(weights @ mean_square[:, gated].mean(axis=-1))
    return float(value) if np.isfinite(value) else float("-inf")


def true_peak_dbtp(audio: np.ndarray, sample_rate: int) -> float:
    """True peak in dBTP, estimated with 4x oversampling (BS.1770-4 Annex 2)."""
    up = resample(np.atleast_2d(audio).astype(np.float32), sample_rate, 4 * sample_rate)
    peak = float(np.max(np.abs(up))) if up.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


@dataclass(frozen=True)
class LoudnessMatch:
    """Result of :func:`match_loudness`.

    Attributes:
        audio: the gained signal.
        gain_db: gain applied.
        loudness_lufs: loudness after the gain.
        limited_by_peak: the gain was reduced to respect the true-peak ceiling,
            so ``loudness_lufs`` is below the target.
    """

    audio: np.ndarray
    gain_db: float
    loudness_lufs: float
    limited_by_peak: bool


def match_loudness(audio: np.ndarray, sample_rate: int, target_lufs: float = -23.0,
                   true_peak_ceiling_dbtp: float = -1.0, measured_lufs: float | None = None) -> LoudnessMatch:
    """Gain a clip to ``target_lufs`` without its true peak exceeding the ceiling.

    A plain gain (no limiter): where the target would push the true peak over
    the ceiling the gain stops at the ceiling and ``limited_by_peak`` says so.
    Silence is returned unchanged. ``measured_lufs`` skips measuring a clip
    whose loudness is already known.
    """
    measured = loudness_lufs(audio, sample_rate) if measured_lufs is None else measured_lufs
    if not np.isfinite(measured):
        return LoudnessMatch(np.array(audio, copy=True), 0.0, measured, False)
    gain_db = target_lufs - measured
    peak = true_peak_dbtp(audio, sample_rate)
    limited = peak + gain_db > true_peak_ceiling_dbtp
    if limited:
        gain_db = true_peak_ceiling_dbtp - peak
    gained = (np.asarray(audio, dtype=np.float32) * np.float32(10.0 ** (gain_db / 20.0)))
    return LoudnessMatch(gained, float(gain_db), measured + gain_db, bool(limited))


# -- writing ----------------------------------------------------------------

def _temporary_beside(path: Path, suffix: str) -> str:
    """A temporary file in ``path``'s folder (so the final rename is atomic), with the
    permissions a plain new file would get (``mkstemp`` alone makes it private)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


@contextmanager
def atomic_replace(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block ends cleanly, rename it onto ``path``.

    The folder is created if needed. On any error the temporary file is removed and
    ``path`` is left as it was, so a reader never sees half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_beside(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
              subtype: str = "FLOAT", file_format: str = "WAV") -> Path:
    """Write audio atomically (a temporary file in the same folder, then a rename).

    ``FLOAT`` (32-bit float) keeps peaks above full scale intact; ``PCM_24``
    or ``PCM_16`` clip them, so use those only for level-controlled audio.
    ``file_format`` is a libsndfile format (``WAV``, ``FLAC``).
    """
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    try:
        with atomic_replace(path, f".tmp.{file_format.lower()}") as tmp, open(tmp, "wb") as handle:
            # Through the file's descriptor: libsndfile cannot open names that are not UTF-8, and
            # writes to a descriptor itself, where a Python file object costs a call per chunk.
            sf.write(handle.fileno(), audio.T, sample_rate, subtype=subtype, format=file_format, closefd=False)
    except OSError as exc:  # name the file being written, not its temporary
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file through a temporary file and a rename."""
    with atomic_replace(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return Path(path)
