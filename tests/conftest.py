"""Shared fixtures: seeded randomness and synthetic signals with known answers."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from scripts.local_app import AppDidNotStart, local_app

SR = 44100
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def chain_runs(monkeypatch) -> list:
    """Each chunk ``unet_restore`` runs itself on (its stages' networks), recorded; empty where it
    was built from its stages' outputs instead."""
    from restorers.spectral_unet import UNetRestore

    process, runs = UNetRestore._process, []

    def counted(self, *args):
        runs.append(self)
        return process(self, *args)

    monkeypatch.setattr(UNetRestore, "_process", counted)
    return runs


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def melody(duration_s: float = 6.0, sample_rate: int = SR, seed: int = 0, max_hz: float | None = None) -> np.ndarray:
    """Mono float32 notes: 8 decaying harmonics every 0.5 s, pitches drawn over two octaves.

    Music-like on purpose: a steady tone held for the whole clip is, to any
    noise estimator, indistinguishable from noise.
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s * sample_rate)
    out = np.zeros(n)
    note = int(0.5 * sample_rate)
    t = np.arange(note) / sample_rate
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-t / 0.15)
    top = (sample_rate / 2 - 1000) if max_hz is None else max_hz
    for start in range(0, n - note + 1, note):
        f0 = 440.0 * 2 ** (rng.integers(-12, 13) / 12)
        partials = sum(0.5 ** h * np.sin(2 * np.pi * f0 * (h + 1) * t) for h in range(8) if f0 * (h + 1) < top)
        out[start : start + note] += 0.3 * envelope * partials
    return out.astype(np.float32)


def add_noise(clean: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Clean plus white Gaussian noise scaled to exactly ``snr_db`` below the clean power."""
    noise = rng.standard_normal(clean.shape)
    noise *= np.sqrt(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (clean + noise).astype(np.float32)


def snr_db(clean: np.ndarray, estimate: np.ndarray) -> float:
    clean = clean.astype(np.float64)
    return float(10 * np.log10(np.sum(clean ** 2) / np.sum((estimate.astype(np.float64) - clean) ** 2)))


def band_limited_noise(duration_s: float, cutoff_hz: float, rng: np.random.Generator,
                       channels: int = 1, sample_rate: int = SR) -> np.ndarray:
    """Pink-ish noise with nothing above ``cutoff_hz`` (brick-wall in the FFT domain)."""
    n = int(duration_s * sample_rate)
    spectrum = np.fft.rfft(rng.standard_normal((channels, n)), axis=-1)
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    spectrum[..., freqs >= cutoff_hz] = 0
    x = np.fft.irfft(spectrum, n=n, axis=-1)
    return (0.1 * x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def band_level_db(signal: np.ndarray, reference: np.ndarray, low_hz: float, high_hz: float,
                  sample_rate: int = SR, reference_band: tuple[float, float] | None = None) -> float:
    """Power of ``signal`` within [low_hz, high_hz) relative to ``reference``, in dB.

    The reference is taken over the same band, or over ``reference_band``.

    Welch with an 8192-point Blackman-Harris window, whose -92 dB sidelobes
    keep energy outside the band from leaking into the measurement.
    """
    import scipy.signal

    def band_power(x, low, high):
        f, p = scipy.signal.welch(np.atleast_2d(x).astype(np.float64), sample_rate, window="blackmanharris",
                                  nperseg=8192, axis=-1)
        keep = (f >= low) & (f < high)
        return float(np.sum(p[..., keep]))

    ref_low, ref_high = reference_band or (low_hz, high_hz)
    return 10 * np.log10(max(band_power(signal, low_hz, high_hz), 1e-300)
                         / band_power(reference, ref_low, ref_high))


@contextmanager
def running_app(folder: Path, **env: str):
    """``app.py`` in a subprocess on a free localhost port, its votes in ``folder``.

    Yields ``(url, votes_path)``; ``env`` adds environment variables (limits, rules).
    The app's output goes to ``folder/server.log``, shown if it fails to start.
    """
    votes = folder / "votes.csv"
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        try:
            with local_app(log=log, RESTORELAB_VOTES_PATH=str(votes), **env) as (_, url):
                yield url, votes
        except AppDidNotStart as exc:
            pytest.fail(f"{exc}: {log_path.read_text()[-2000:]}")
