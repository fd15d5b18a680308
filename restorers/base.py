"""The restorer contract and the plumbing every restorer shares.

A restorer is called as ``restorer(audio, sample_rate) -> audio``:

* ``audio`` is float, shaped ``[channels, samples]`` (a 1-D array is treated as
  mono and comes back 1-D);
* the output has the same shape, dtype and rate, is finite, and the input is
  never modified;
* the same parameters give the same output (any randomness is seeded from the
  parameters).

A member implements one hook, ``_process(audio, sample_rate, fitted)``, on a
float32 ``[channels, samples]`` block, and optionally ``_fit(audio,
sample_rate)``, which gathers whole-signal statistics (a noise profile) once,
in bounded memory, so that every chunk of a long file uses the same ones. The
base class owns validation, chunking of long inputs with discarded context and
a crossfade (so memory stays bounded), and the dry/wet ``mix``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class RestorerParams:
    """Parameters every restorer has.

    Attributes:
        mix: dry/wet balance, ``out = mix * wet + (1 - mix) * dry``; 0 returns
            the input unchanged, 1 the fully processed signal.
    """

    mix: float = 1.0

    #: Each numeric parameter's allowed closed range ``(low, high)``; subclasses add theirs. Values
    #: outside are refused with the parameter's name and range, before any audio is touched.
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {"mix": (0.0, 1.0)}

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{item.name} must be a finite number, got {value}")
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{_shown(low)}, {_shown(high)}], got {_shown(value)}")


def _shown(number: float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


def check_fft_size(n_fft: int, minimum: int = 256) -> None:
    """Raise ``ValueError`` unless ``n_fft`` is a power of two of at least ``minimum``."""
    if n_fft < minimum or n_fft & (n_fft - 1):
        raise ValueError(f"n_fft must be a power of two >= {minimum}, got {n_fft}")


def missing_module(*names: str) -> str | None:
    """The first of ``names`` that is not installed, else None; found without importing it
    (importing torch takes seconds, and listing the restorers must not)."""
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
            return name
    return None


@dataclass(frozen=True)
class Availability:
    """Whether a restorer can run here, and if not, why and how to fix it."""

    available: bool
    reason: str = ""


def coerce_value(field: dataclasses.Field, text: str) -> Any:
    """Turn a command-line string into the type a parameter field declares."""
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{field.name} expects true or false, got {text!r}")
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


def _checked_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``audio`` as an array, if it is what every restorer takes; a clear error if not."""
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2):
        raise ValueError(f"audio must be [channels, samples] or [samples], got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must be floating point, got {audio.dtype}")
    if not sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if audio.shape[-1] == 0:
        raise ValueError("audio has no samples")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or Inf samples")
    return audio


class Restorer:
    """Base class of every restorer.

    Subclasses set ``name``, ``kind``, ``Params`` and ``description``, and
    implement ``_process``. ``context_s`` is how much audio each side of a chunk
    the method needs to have settled (its longest time constant); it is
    processed and then discarded.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "dsp"
    description: ClassVar[str] = ""
    #: What the no-reference verdict checks (``restorelab.analysis.GOALS``): ``denoise``, less
    #: energy above 6 kHz; ``extend``, a wider effective bandwidth.
    goal: ClassVar[str] = "denoise"
    Params: ClassVar[type[RestorerParams]] = RestorerParams
    context_s: ClassVar[float] = 1.0
    #: Each channel is restored on its own (swapping channels swaps the output); False for
    #: methods that use the stereo image jointly, which still never downmix it.
    channels_independent: ClassVar[bool] = True

    #: Chunk length used for long inputs; shorter inputs are processed whole.
    default_chunk_s: ClassVar[float] = 30.0
    crossfade_s: ClassVar[float] = 0.05

    def __init__(self, params: RestorerParams | None = None, *, chunk_s: float | None = None,
                 **overrides: Any) -> None:
        if params is None:
            params = self.Params(**overrides)
        elif overrides:
            params = dataclasses.replace(params, **overrides)
        if not isinstance(params, self.Params):
            raise TypeError(f"{self.name} takes {self.Params.__name__}, got {type(params).__name__}")
        self.params = params
        self.chunk_s = self.default_chunk_s if chunk_s is None else float(chunk_s)
        if self.chunk_s <= 0:
            raise ValueError(f"chunk_s must be positive, got {self.chunk_s}")

    # -- discovery ---------------------------------------------------------
    @classmethod
    def availability(cls) -> Availability:
        """Whether the restorer can run here with its default parameters."""
        return cls.availability_for(cls.Params())

    @classmethod
    def availability_for(cls, params: RestorerParams) -> Availability:
        """Whether it can run with ``params`` (DSP always can; neural ones check for weights)."""
        return Availability(True)

    @classmethod
    def tiny(cls, **overrides: Any) -> "Restorer":
        """An instance that runs the real code path without downloaded weights (tests use it).

        DSP restorers are their own tiny variant; neural ones build a random-weight model.
        """
        return cls(**overrides)

    @classmethod
    def param_fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls.Params)

    @classmethod
    def parse_overrides(cls, assignments: dict[str, str]) -> dict[str, Any]:
        """Convert ``{"param": "text"}`` into typed values, rejecting unknown names."""
        fields = {f.name: f for f in cls.param_fields()}
        typed = {}
        for key, text in assignments.items():
            if key not in fields:
                known = ", ".join(sorted(fields))
                raise ValueError(f"{cls.name} has no parameter {key!r}; known: {known}")
            typed[key] = coerce_value(fields[key], text)
        return typed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"

    # -- the contract ------------------------------------------------------
    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        audio = _checked_audio(audio, sample_rate)
        if self.params.mix == 0.0:
            return audio.copy()

        # No copy here: _fit only reads, and each chunk is copied before _process.
        block = np.atleast_2d(audio).astype(np.float32, copy=False)
        fitted = self._fit(block, int(sample_rate))
        return self._finished(self._process_chunked(block, int(sample_rate), fitted), block, audio)

    def _finished(self, wet: np.ndarray, block: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """The output as the caller gets it: ``wet`` checked, mixed with the input and shaped like ``audio``."""
        if wet.shape != block.shape:
            raise RuntimeError(f"{self.name} returned shape {wet.shape} for input {block.shape}")
        if not np.all(np.isfinite(wet)):
            raise RuntimeError(f"{self.name} produced non-finite samples")

        mix = self.params.mix
        if mix < 1.0:
            wet = mix * wet + (1.0 - mix) * block
        return wet.reshape(audio.shape).astype(audio.dtype, copy=False)

    # -- restorers made of others ------------------------------------------
    def parts(self) -> tuple["Restorer", ...]:
        """The restorers whose outputs make this one's (:meth:`from_parts`); none for most.

        A comparison that runs restorers the same as these anyway (:meth:`same_as`) builds this
        one's output from theirs instead of running it.
        """
        return ()

    def from_parts(self, audio: np.ndarray, sample_rate: int, outputs: list[np.ndarray]) -> np.ndarray:
        """This restorer's output on ``audio``, made from its :meth:`parts`' outputs on it (in
        their order): what calling it gives, to float rounding."""
        audio = _checked_audio(audio, sample_rate)
        if len(outputs) != len(self.parts()) or any(np.shape(out) != audio.shape for out in outputs):
            raise ValueError(f"{self.name} is made of {len(self.parts())} outputs shaped like its input")
        if self.params.mix == 0.0:
            return audio.copy()
        block = np.atleast_2d(audio).astype(np.float32, copy=False)
        wet = self._combine(block, [np.atleast_2d(out).astype(np.float32, copy=False) for out in outputs])
        return self._finished(wet, block, audio)

    def _combine(self, audio: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        """The whole wet output from the parts' float32 ``[channels, samples]`` outputs (never
        written to)."""
        raise NotImplementedError(f"{self.name} is not made of other restorers")

    def same_as(self, other: "Restorer") -> bool:
        """Whether ``other`` gives this restorer's output on every input: the same class, equal
        parameters and chunking."""
        return type(other) is type(self) and other.params == self.params and other.chunk_s == self.chunk_s

    def _fit(self, audio: np.ndarray, sample_rate: int) -> Any:
        """Whole-signal statistics shared by every chunk (``None`` unless overridden).

        Runs on the full input, so it must stay in bounded memory: walk long
        inputs with :meth:`blocks`.
        """
        return None

    def _process(self, audio: np.ndarray, sample_rate: int, fitted: Any) -> np.ndarray:
        """Restore one float32 ``[channels, samples]`` block (may be modified in place)."""
        raise NotImplementedError

    def blocks(self, n_samples: int, sample_rate: int, multiple: int = 1):
        """``(start, stop)`` spans of at most one chunk (a multiple of ``multiple``) covering the input."""
        size = max(multiple, int(round(self.chunk_s * sample_rate)) // multiple * multiple)
        for start in range(0, n_samples, size):
            yield start, min(start + size, n_samples)

    # -- chunking ----------------------------------------------------------
    def _chunk_multiple(self, sample_rate: int) -> int:
        """Chunk starts and context are multiples of this many samples (a frame-based method
        returns its hop, so every chunk sees the same frame grid as the whole input)."""
        return 1

    def _process_chunked(self, audio: np.ndarray, sample_rate: int, fitted: Any) -> np.ndarray:
        """Run ``_process`` over chunks with discarded context and a linear crossfade.

        ``audio`` is the caller's array and is never written to. Chunk ``i`` owns samples ``[i*L, (i+1)*L)``; it is processed with
        ``context_s`` of extra audio on each side (thrown away afterwards) and
        extends ``crossfade`` samples into the next chunk, where the two outputs
        are blended with complementary linear ramps. Memory is the input, the
        output and one chunk's working set, whatever the input's length.
        """
        n = audio.shape[-1]
        multiple = self._chunk_multiple(sample_rate)
        chunk = max(multiple, int(round(self.chunk_s * sample_rate)) // multiple * multiple)
        context = -(-int(round(self.context_s * sample_rate)) // multiple) * multiple
        fade = min(int(round(self.crossfade_s * sample_rate)), chunk)
        if n <= chunk + fade:
            return self._process(audio.copy(), sample_rate, fitted)

        out = np.zeros_like(audio)
        ramp = np.linspace(0.0, 1.0, fade + 2, dtype=np.float32)[1:-1]
        for start in range(0, n, chunk):
            stop = min(start + chunk + fade, n)
            lo, hi = max(start - context, 0), min(stop + context, n)
            piece = self._process(audio[:, lo:hi].copy(), sample_rate, fitted)
            piece = piece[:, start - lo : stop - lo]
            if start > 0:
                head = min(fade, piece.shape[-1])
                piece[:, :head] *= ramp[:head]
                out[:, start : start + head] *= 1.0 - ramp[:head]
            out[:, start:stop] += piece
        return out
