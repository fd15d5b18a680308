"""Synthesise the bundled example clips (run from the repository root).

Writes ``assets/examples/synth_pop_clean.flac`` (44.1 kHz stereo, full band)
and ``synth_pop_musicgen_like.flac``, the same clip through
``restorelab.degrade``'s ``musicgen_like`` preset, stored at 32 kHz like a
MusicGen output. Everything is generated here from numbers, so the clips carry
this project's licence. Deterministic: the same code writes the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from restorelab.audio import resample
from restorelab.degrade import degrade

SR = 44100
BPM = 104
BEAT_S = 60.0 / BPM
BARS = 4
OUT = Path("assets/examples")

# I - vi - IV - V in C major, one bar each (MIDI notes).
CHORDS = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]
BASS = [36, 33, 29, 31]
MELODY = [72, 74, 76, 79, 76, 74, 72, 71, 69, 72, 76, 74, 72, 77, 76, 74]


def hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def adsr(n: int, attack_s: float, decay_s: float, sustain: float, release_s: float) -> np.ndarray:
    t = np.arange(n) / SR
    env = np.where(t < attack_s, t / attack_s, sustain + (1 - sustain) * np.exp(-(t - attack_s) / decay_s))
    tail = np.clip((n / SR - t) / release_s, 0, 1)
    return env * tail


def additive(freq: float, n: int, harmonics: int, tilt: float, rng: np.random.Generator) -> np.ndarray:
    """Band-limited tone: harmonic h has amplitude h**-tilt and a random phase."""
    t = np.arange(n) / SR
    out = np.zeros(n)
    for h in range(1, harmonics + 1):
        if freq * h >= SR / 2 - 500:
            break
        out += h ** -tilt * np.sin(2 * np.pi * freq * h * t + rng.uniform(0, 2 * np.pi))
    return out


def place(track: np.ndarray, sound: np.ndarray, start_s: float, pan: float) -> None:
    """Add a mono sound into a stereo track at ``start_s``, equal-power panned (-1 left .. 1 right)."""
    start = int(start_s * SR)
    stop = min(start + sound.size, track.shape[1])
    angle = (pan + 1) * np.pi / 4
    track[0, start:stop] += np.cos(angle) * sound[: stop - start]
    track[1, start:stop] += np.sin(angle) * sound[: stop - start]


def synth_pop(seed: int = 7, beat_s: float = BEAT_S, chords=CHORDS, bass_notes=BASS, melody=MELODY,
              drums: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    BEAT_S = beat_s  # noqa: N806 (the tempo of this piece)
    bar_s = 4 * BEAT_S
    total = int(BARS * bar_s * SR) + SR // 2
    track = np.zeros((2, total))
    for bar, (chord, bass) in enumerate(zip(chords, bass_notes)):
        start = bar * bar_s
        n = int(bar_s * SR)
        for i, note in enumerate(chord):  # pad
            tone = additive(hz(note), n, 30, 1.2, rng) * adsr(n, 0.08, 0.6, 0.6, 0.3)
            place(track, 0.06 * tone, start, pan=(-0.6, 0.0, 0.6)[i])
        for beat in range(4):  # bass, one note per beat
            m = int(BEAT_S * SR)
            tone = additive(hz(bass), m, 12, 1.5, rng) * adsr(m, 0.005, 0.15, 0.4, 0.05)
            place(track, 0.22 * tone, start + beat * BEAT_S, pan=0.0)
        if not drums:
            continue
        for step in range(8):  # hi-hat on eighths: high-passed noise bursts
            m = int(0.06 * SR)
            noise = np.diff(rng.standard_normal(m + 1)) * adsr(m, 0.001, 0.02, 0.0, 0.01)
            place(track, 0.05 * noise, start + step * BEAT_S / 2, pan=0.4)
        for beat in (0, 2):  # kick: falling sine
            m = int(0.3 * SR)
            t = np.arange(m) / SR
            sweep = np.sin(2 * np.pi * (50 * t + 60 * 0.03 * (1 - np.exp(-t / 0.03))))
            place(track, 0.5 * sweep * np.exp(-t / 0.12), start + beat * BEAT_S, pan=0.0)
        for beat in (1, 3):  # snare: tone plus noise
            m = int(0.2 * SR)
            t = np.arange(m) / SR
            body = 0.3 * np.sin(2 * np.pi * 190 * t) + rng.standard_normal(m) * 0.5
            place(track, 0.25 * body * np.exp(-t / 0.05), start + beat * BEAT_S, pan=-0.1)
    for i, note in enumerate(melody):  # lead, quarter notes over the four bars
        m = int(BEAT_S * SR)
        tone = additive(hz(note), m, 16, 1.0, rng) * adsr(m, 0.01, 0.2, 0.5, 0.08)
        place(track, 0.09 * tone, i * BEAT_S, pan=0.25)
    return (0.8 * track / np.max(np.abs(track))).astype(np.float32)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    clean = synth_pop()
    sf.write(OUT / "synth_pop_clean.flac", clean.T, SR, subtype="PCM_24")
    degraded, _ = degrade(clean, SR, "musicgen_like", seed=0)
    sf.write(OUT / "synth_pop_musicgen_like.flac", resample(degraded, SR, 32000).T, 32000, subtype="PCM_24")
    # A slow ballad (no drums) in A minor, full band with hiss: where the denoisers earn their keep.
    ballad = synth_pop(seed=11, beat_s=60.0 / 72, chords=[(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)],
                       bass_notes=[33, 29, 36, 31], melody=[76, 74, 72, 71, 72, 69, 67, 69, 72, 71, 69, 67, 71, 74, 72, 71],
                       drums=False)
    hissy, _ = degrade(ballad, SR, "hiss", seed=0)
    sf.write(OUT / "synth_ballad_hiss.flac", hissy.T, SR, subtype="PCM_24")
    for path in sorted(OUT.glob("*.flac")):
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
