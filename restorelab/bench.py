"""Speed and memory of every restorer: real-time factor and peak resident memory.

Each (restorer, duration) runs in a fresh process so that its peak memory is
its own: the figure is the whole process's peak resident set (interpreter,
libraries, the input and output signals and the working set), which is what
a user's machine has to hold. The input is a synthetic stereo "music" signal
(decaying harmonic notes plus hiss), 44.1 kHz float32.
"""

from __future__ import annotations

import multiprocessing
import platform
import resource
import time

import numpy as np
import scipy.signal

from restorelab.dsp import Stft

SAMPLE_RATE = 44100
DEFAULT_DURATIONS_S = (10.0, 60.0, 600.0)


def synthetic_music(duration_s: float, sample_rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """Stereo float32 notes (8 harmonics, 0.15 s decay) every 0.25 s plus hiss at -40 dB.

    Nothing reaches above 16 kHz (the hiss is low-passed there, 80 dB down by 16.4 kHz):
    MusicGen output ends at a codec cliff, and on full-band input a bandwidth extender
    would rightly do nothing and be timed doing it.
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * sample_rate)
    out = np.zeros((2, n), dtype=np.float32)
    note = int(0.25 * sample_rate)
    t = np.arange(note) / sample_rate
    envelope = np.minimum(1.0, t / 0.005) * np.exp(-t / 0.15)
    bank = []
    for semitone in range(-12, 13):
        f0 = 440.0 * 2 ** (semitone / 12)
        partials = sum(0.5 ** h * np.sin(2 * np.pi * f0 * (h + 1) * t)
                       for h in range(8) if f0 * (h + 1) < sample_rate / 2)
        bank.append((0.2 * envelope * partials).astype(np.float32))
    picks = rng.integers(0, len(bank), size=(2, n // note + 1))
    for channel in range(2):
        for i, start in enumerate(range(0, n - note + 1, note)):
            out[channel, start : start + note] += bank[picks[channel, i]]
    # Hiss in one-second float32 blocks: no full-length float64 temporaries,
    # so the process's peak memory is the restorer's, not the generator's.
    sos = scipy.signal.ellip(8, 0.1, 80, 16000.0, "lowpass", fs=sample_rate, output="sos")
    state = np.zeros((sos.shape[0], 2, 2))
    for start in range(0, n, sample_rate):
        block = rng.standard_normal((2, min(sample_rate, n - start)), dtype=np.float32)
        block, state = scipy.signal.sosfilt(sos, block, axis=-1, zi=state)
        out[:, start : start + block.shape[1]] += 0.01 * block.astype(np.float32)
    return out


def _repeats(duration_s: float) -> int:
    """Calls timed per measurement (the median is reported): three, or two for long inputs.

    At least two, so the reported time is of a warm call: a first call on a
    long input also pays for first-touching hundreds of megabytes of output.
    """
    return 3 if duration_s <= 60 else 2


def _peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    Linux's ``VmHWM`` belongs to the address space, so it starts afresh in a spawned child;
    ``ru_maxrss`` (the fallback elsewhere) keeps the parent's peak from before the exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _measure(name: str, duration_s: float, queue) -> None:
    try:
        audio = synthetic_music(duration_s)
        if name == "stft_roundtrip":
            stft = Stft(2048, 512)
            run = lambda x: stft.inverse(stft.forward(x), x.shape[-1])  # noqa: E731
        else:
            from restorers import get_restorer

            restorer = get_restorer(name)
            run = lambda x: restorer(x, SAMPLE_RATE)  # noqa: E731
        run(audio[:, :SAMPLE_RATE])  # warm-up: imports, caches, FFT plans
        rss_before = _peak_rss_mb()
        timings = []
        out = None
        for _ in range(_repeats(duration_s)):
            out = None  # the previous output must not count towards this call's memory
            start = time.perf_counter()
            out = run(audio)
            timings.append(time.perf_counter() - start)
        elapsed = float(np.median(timings))
        if out.shape != audio.shape:
            raise RuntimeError(f"output shape {out.shape} differs from input {audio.shape}")
        queue.put({"restorer": name, "duration_s": duration_s, "seconds": elapsed,
                   "rtf": elapsed / duration_s, "runs": len(timings), "peak_rss_mb": _peak_rss_mb(),
                   "rss_before_mb": rss_before})
    except Exception as exc:  # reported as a row, never lost
        queue.put({"restorer": name, "duration_s": duration_s, "error": repr(exc)})


def bench(names: list[str], durations_s=DEFAULT_DURATIONS_S, on_result=None) -> list[dict]:
    """Run every (restorer, duration) in its own process; one row each."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for name in names:
        for duration in durations_s:
            queue = context.Queue()
            process = context.Process(target=_measure, args=(name, float(duration), queue))
            process.start()
            row = queue.get()
            process.join()
            rows.append(row)
            if on_result:
                on_result(row)
    return rows


def scaling_rows(rows: list[dict]) -> dict[str, float]:
    """Per restorer: seconds per second at the longest duration over the shortest above 10 s."""
    ratios = {}
    for name in dict.fromkeys(r["restorer"] for r in rows):
        timed = sorted((r["duration_s"], r["seconds"]) for r in rows
                       if r["restorer"] == name and "seconds" in r)
        timed = [t for t in timed if t[0] > 10] or timed
        if len(timed) >= 2:
            (d0, s0), (d1, s1) = timed[0], timed[-1]
            ratios[name] = (s1 / d1) / (s0 / d0)
    return ratios


def machine_description() -> str:
    import os

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, NumPy {np.__version__}")
