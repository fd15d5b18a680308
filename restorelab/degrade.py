"""Seeded degradations of clean music, for training pairs and reference-based evaluation.

Each degradation is a named function ``f(audio, sample_rate, rng, **params) -> audio``
on float32 ``[channels, samples]`` that keeps the shape. A preset is a recipe
of degradations with their parameters; :func:`degrade` applies one with a seed.

Group A (additive and quantisation damage): ``quantize``, ``tonal_stripes``,
``additive_noise``. Group B (non-linear and filtering damage): ``clipping``,
``reverb``, ``lowpass``, ``harmonic_distortion``. Plus ``band_limit`` (the
plain 16 kHz limit of a 32 kHz codec), ``musicgen_like``, and ``lossy_codec``: a round
trip through a real lossy codec (Opus, Vorbis, MP3) at a target bitrate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from restorelab.audio import resample
from restorelab.dsp import lowpass_fir, zero_phase_filter

Degradation = Callable[..., np.ndarray]


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


# -- group A ----------------------------------------------------------------

def quantize(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, bits: int = 8) -> np.ndarray:
    """Uniform mid-tread quantisation to ``bits`` over [-1, 1], no dither."""
    if not 2 <= bits <= 24:
        raise ValueError(f"bits must be in [2, 24], got {bits}")
    step = 2.0 / (2 ** bits)
    return (np.round(audio / step) * step).astype(np.float32)


def tonal_stripes(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, n_tones: int = 3,
                  level_db: float = -40.0, min_hz: float = 2000.0, max_hz: float = 16000.0) -> np.ndarray:
    """Add ``n_tones`` steady sinusoids (whines, as horizontal stripes in a spectrogram).

    Frequencies are drawn uniformly in [min_hz, max_hz); each tone's RMS is
    ``level_db`` relative to the signal RMS.
    """
    n = audio.shape[-1]
    t = np.arange(n) / sample_rate
    stripes = np.zeros(n)
    amplitude = np.sqrt(2) * max(_rms(audio), 1e-4) * 10 ** (level_db / 20)
    top = min(max_hz, 0.45 * sample_rate)
    for _ in range(n_tones):
        freq = rng.uniform(min_hz, top)
        stripes += amplitude * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return (audio + stripes).astype(np.float32)


#: Noise colours: name -> the power's fall, in steps of 3 dB per octave (amplitude ~ f ** (-step / 2)).
NOISE_COLORS = {"white": 0, "pink": 1, "brown": 2}


def additive_noise(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, snr_db: float = 20.0,
                   color: str = "white", highpass_hz: float = 0.0) -> np.ndarray:
    """Add seeded noise at ``snr_db`` below the signal's RMS.

    Args:
        color: ``white`` (flat), ``pink`` (-3 dB/octave) or ``brown`` (-6 dB/octave).
        highpass_hz: if positive, the noise is high-passed first (hiss).
    """
    import scipy.signal

    noise = rng.standard_normal(audio.shape)
    if color not in NOISE_COLORS:
        raise ValueError(f"color must be {', '.join(NOISE_COLORS)}, got {color!r}")
    if NOISE_COLORS[color]:
        spectrum = np.fft.rfft(noise, axis=-1)
        f = np.fft.rfftfreq(audio.shape[-1], 1 / sample_rate)
        spectrum /= np.sqrt(np.maximum(f, f[1] if len(f) > 1 else 1.0)) ** NOISE_COLORS[color]
        noise = np.fft.irfft(spectrum, n=audio.shape[-1], axis=-1)
    if highpass_hz > 0:
        sos = scipy.signal.butter(4, highpass_hz, "highpass", fs=sample_rate, output="sos")
        noise = scipy.signal.sosfiltfilt(sos, noise, axis=-1)
    signal_rms = max(_rms(audio), 1e-4)
    noise *= signal_rms * 10 ** (-snr_db / 20) / max(_rms(noise), 1e-12)
    return (audio + noise).astype(np.float32)


# -- group B ----------------------------------------------------------------

def clipping(audio: np.ndarray, sample_rate: int, rng: np.random.Generator,
             threshold: float = 0.5) -> np.ndarray:
    """Hard clipping at ``threshold`` times the signal's peak."""
    level = threshold * float(np.max(np.abs(audio)) or 1.0)
    return np.clip(audio, -level, level).astype(np.float32)


def reverb(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, rt60_s: float = 0.8,
           wet: float = 0.3) -> np.ndarray:
    """Convolve with a seeded exponentially decaying noise tail (RT60 ``rt60_s``).

    ``wet`` is the reverberant share of the output energy's amplitude mix.
    """
    import scipy.signal

    length = int(rt60_s * sample_rate)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal((audio.shape[0], length)) * np.exp(-6.9 * t / rt60_s)
    tail /= np.sqrt(np.sum(tail ** 2, axis=-1, keepdims=True))
    wet_signal = scipy.signal.oaconvolve(audio.astype(np.float64), tail, axes=-1)[..., : audio.shape[-1]]
    return ((1 - wet) * audio + wet * wet_signal).astype(np.float32)


def lowpass(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, cutoff_hz: float = 8000.0,
            order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass (a dull, band-limited source)."""
    import scipy.signal

    sos = scipy.signal.butter(order, cutoff_hz, "lowpass", fs=sample_rate, output="sos")
    return scipy.signal.sosfiltfilt(sos, audio.astype(np.float64), axis=-1).astype(np.float32)


def harmonic_distortion(audio: np.ndarray, sample_rate: int, rng: np.random.Generator,
                        drive: float = 3.0) -> np.ndarray:
    """Soft saturation ``tanh(drive x) / tanh(drive)`` rescaled to the input's peak."""
    peak = float(np.max(np.abs(audio))) or 1.0
    shaped = np.tanh(drive * audio / peak) / np.tanh(drive)
    return (shaped * peak).astype(np.float32)


# -- codec-like ---------------------------------------------------------------

def band_limit(audio: np.ndarray, sample_rate: int, rng: np.random.Generator,
               cutoff_hz: float = 16000.0, transition_hz: float = 250.0) -> np.ndarray:
    """Linear-phase brick-wall low-pass (100 dB stop band), as a 32 kHz codec leaves."""
    if cutoff_hz >= sample_rate / 2:
        return audio
    taps = lowpass_fir(cutoff_hz - transition_hz / 2, sample_rate, transition_hz)
    return zero_phase_filter(audio, taps).astype(np.float32)


def musicgen_like(audio: np.ndarray, sample_rate: int, rng: np.random.Generator,
                  codec_rate: int = 32000, rolloff_hz: float = 10400.0, bits: int = 12,
                  hiss_snr_db: float = 35.0, hiss_highpass_hz: float = 4000.0) -> np.ndarray:
    """An imitation of MusicGen's output chain.

    Resample to ``codec_rate`` (nothing above its Nyquist), a gentle
    second-order low-pass so the 99 % energy rolloff lands near ``rolloff_hz``,
    coarse quantisation, high-passed hiss at ``hiss_snr_db``, and back to the
    working rate.
    """
    x = resample(audio, sample_rate, codec_rate)
    x = lowpass(x, codec_rate, rng, cutoff_hz=rolloff_hz, order=2)
    x = quantize(x, codec_rate, rng, bits=bits)
    x = additive_noise(x, codec_rate, rng, snr_db=hiss_snr_db, highpass_hz=hiss_highpass_hz)
    y = resample(x, codec_rate, sample_rate)
    return _fit_length(y, audio.shape[-1])


#: Lossy codecs libsndfile encodes in memory: name -> (container, subtype, the rates it takes).
CODECS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "opus": ("OGG", "OPUS", (48000,)),
    "vorbis": ("OGG", "VORBIS", ()),  # any rate
    "mp3": ("MP3", "MPEG_LAYER_III", (32000, 44100, 48000)),
}


def codec_round_trip(audio: np.ndarray, sample_rate: int, codec: str, level: float) -> tuple[np.ndarray, float]:
    """Encode ``audio`` with ``codec`` at libsndfile's ``compression_level`` (0 = best quality,
    near 1 = smallest) and decode it: ``(decoded [channels, samples], average kbps)``.

    ``sample_rate`` must be one the codec takes (see :data:`CODECS`).
    """
    import io

    import soundfile as sf

    container, subtype, _ = CODECS[codec]
    buffer = io.BytesIO()
    sf.write(buffer, np.ascontiguousarray(audio.T), sample_rate, format=container, subtype=subtype,
             compression_level=float(level))
    kbps = len(buffer.getvalue()) * 8 / (audio.shape[-1] / sample_rate) / 1000
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=True)
    return decoded.T, kbps


def at_bitrate(audio: np.ndarray, sample_rate: int, codec: str, kbps: float,
               tolerance: float = 0.1) -> tuple[np.ndarray, float]:
    """A codec round trip at about ``kbps`` on average: ``(decoded, the average kbps reached)``.

    The encoders are variable-rate and take a compression level, not a bitrate, and the rate a
    level gives depends on the music: the level is found by bisection (at most 8 encodes) until
    the clip's average rate is within ``tolerance`` of ``kbps``, else the nearest one tried is
    used. ``sample_rate`` must be one the codec takes.
    """
    low, high = 0.0, 0.99  # compression levels: low gives the highest rate
    best = None
    for _ in range(8):
        level = (low + high) / 2
        decoded, achieved = codec_round_trip(audio, sample_rate, codec, level)
        if best is None or abs(achieved - kbps) < abs(best[1] - kbps):
            best = (decoded, achieved)
        if abs(achieved - kbps) <= tolerance * kbps:
            break
        low, high = (level, high) if achieved > kbps else (low, level)
    return best


def through_codec(audio: np.ndarray, sample_rate: int, codec: str,
                  round_trip: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """``round_trip(audio at a rate the codec takes, that rate)`` (e.g. a :func:`codec_round_trip`),
    resampled there and back when ``sample_rate`` is not one (48 kHz for Opus), cut or padded to
    ``audio``'s length (encoder delay and padding), float32."""
    rates = CODECS[codec][2]
    rate = sample_rate if not rates or sample_rate in rates else 48000
    x = resample(audio, sample_rate, rate) if rate != sample_rate else audio
    decoded = round_trip(x, rate)
    y = resample(decoded, rate, sample_rate) if rate != sample_rate else decoded
    return _fit_length(np.ascontiguousarray(y, dtype=np.float32), audio.shape[-1])


def lossy_codec(audio: np.ndarray, sample_rate: int, rng: np.random.Generator, codec: str = "opus",
                kbps: float = 48.0) -> np.ndarray:
    """A round trip through a real lossy codec (Opus, Vorbis or MP3, encoded by libsndfile) at
    about ``kbps`` on average (see :func:`at_bitrate`), through the codec's rate (48 kHz for Opus)
    and back. Deterministic: ``rng`` is not used.
    """
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if kbps <= 0:
        raise ValueError(f"kbps must be positive, got {kbps:g}")
    return through_codec(audio, sample_rate, codec, lambda x, rate: at_bitrate(x, rate, codec, kbps)[0])


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[-1] >= n:
        return audio[..., :n]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, n - audio.shape[-1])])


DEGRADATIONS: dict[str, Degradation] = {
    "quantize": quantize,
    "tonal_stripes": tonal_stripes,
    "additive_noise": additive_noise,
    "clipping": clipping,
    "reverb": reverb,
    "lowpass": lowpass,
    "harmonic_distortion": harmonic_distortion,
    "band_limit": band_limit,
    "musicgen_like": musicgen_like,
    "lossy_codec": lossy_codec,
}
GROUP_A = ("quantize", "tonal_stripes", "additive_noise")
GROUP_B = ("clipping", "reverb", "lowpass", "harmonic_distortion")


@dataclass(frozen=True)
class Preset:
    """A named recipe.

    Attributes:
        steps: ``(degradation, params)`` applied in order.
        choose_one_of: if set, each clip gets one degradation drawn (seeded)
            from these names with parameters drawn from ``RANDOM_PARAMS``.
        cutoff_hz: where the preset leaves the band empty, for LSD below/above.
    """

    description: str
    steps: tuple[tuple[str, dict[str, Any]], ...] = ()
    choose_one_of: tuple[str, ...] = ()
    cutoff_hz: float | None = None


#: Parameter ranges for presets that draw a degradation per clip.
RANDOM_PARAMS: dict[str, Callable[[np.random.Generator], dict[str, Any]]] = {
    "quantize": lambda r: {"bits": int(r.integers(6, 11))},
    "tonal_stripes": lambda r: {"n_tones": int(r.integers(1, 5)), "level_db": float(r.uniform(-45, -25))},
    "additive_noise": lambda r: {"snr_db": float(r.uniform(10, 30)),
                                 "color": str(r.choice(["white", "pink"]))},
    "clipping": lambda r: {"threshold": float(r.uniform(0.2, 0.6))},
    "reverb": lambda r: {"rt60_s": float(r.uniform(0.3, 1.5)), "wet": float(r.uniform(0.15, 0.5))},
    "lowpass": lambda r: {"cutoff_hz": float(r.uniform(4000, 11000))},
    "harmonic_distortion": lambda r: {"drive": float(r.uniform(2, 8))},
}

PRESETS: dict[str, Preset] = {
    "band_limit_16k": Preset("Brick-wall low-pass at 16 kHz (a 32 kHz codec's band).",
                             steps=(("band_limit", {"cutoff_hz": 16000.0}),), cutoff_hz=16000.0),
    "musicgen_like": Preset("32 kHz, rolloff near 10.4 kHz, 12-bit quantisation, hiss at 35 dB SNR.",
                            steps=(("musicgen_like", {}),), cutoff_hz=16000.0),
    "hiss": Preset("White hiss above 4 kHz at 30 dB SNR.",
                   steps=(("additive_noise", {"snr_db": 30.0, "highpass_hz": 4000.0}),)),
    "hiss_16k": Preset("White hiss above 4 kHz at 30 dB SNR, then the 16 kHz band limit (hiss inside a "
                       "32 kHz codec's band, as MusicGen's output carries it).",
                       steps=(("additive_noise", {"snr_db": 30.0, "highpass_hz": 4000.0}),
                              ("band_limit", {"cutoff_hz": 16000.0})), cutoff_hz=16000.0),
    "opus_32k": Preset("An Opus round trip at about 32 kbps (48 kHz).",
                       steps=(("lossy_codec", {"codec": "opus", "kbps": 32.0}),)),
    "opus_64k": Preset("An Opus round trip at about 64 kbps (48 kHz).",
                       steps=(("lossy_codec", {"codec": "opus", "kbps": 64.0}),)),
    "mp3_64k": Preset("An MP3 round trip at about 64 kbps.", steps=(("lossy_codec", {"codec": "mp3", "kbps": 64.0}),)),
    "mp3_128k": Preset("An MP3 round trip at about 128 kbps.",
                       steps=(("lossy_codec", {"codec": "mp3", "kbps": 128.0}),)),
    "vorbis_64k": Preset("A Vorbis round trip at about 64 kbps.",
                         steps=(("lossy_codec", {"codec": "vorbis", "kbps": 64.0}),)),
    "musicgen_codec": Preset("A MusicGen-like chain through a real codec: hiss above 4 kHz at 35 dB SNR, the "
                             "16 kHz band limit of a 32 kHz codec, then an Opus round trip at about 48 kbps.",
                             steps=(("additive_noise", {"snr_db": 35.0, "highpass_hz": 4000.0}),
                                    ("band_limit", {"cutoff_hz": 16000.0}),
                                    ("lossy_codec", {"codec": "opus", "kbps": 48.0})), cutoff_hz=16000.0),
    "group_a": Preset("One of quantisation, tonal stripes or additive noise, drawn per clip.",
                      choose_one_of=GROUP_A),
    "group_b": Preset("One of clipping, reverb, low-pass or harmonic distortion, drawn per clip.",
                      choose_one_of=GROUP_B),
}


def degrade(audio: np.ndarray, sample_rate: int, preset: str, seed: int = 0
            ) -> tuple[np.ndarray, list[tuple[str, dict[str, Any]]]]:
    """Apply a preset with a seed; returns the degraded audio and the steps taken."""
    try:
        recipe = PRESETS[preset]
    except KeyError:
        raise KeyError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}") from None
    rng = np.random.default_rng(seed)
    steps = list(recipe.steps)
    if recipe.choose_one_of:
        name = str(rng.choice(list(recipe.choose_one_of)))
        steps.append((name, RANDOM_PARAMS[name](rng)))
    out = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    for name, params in steps:
        out = DEGRADATIONS[name](out, sample_rate, rng, **params)
    return out.reshape(np.shape(audio)), steps
