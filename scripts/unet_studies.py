"""The spectral U-Net's studies on the held-out references: cross-domain, loss ablation, Mel phase.

    python scripts/unet_studies.py cross-domain --checkpoints DIR --references ../shared/data/music-reference
    python scripts/unet_studies.py ablation --checkpoints DIR --references ...
    python scripts/unet_studies.py mel-phase --references ...
    python scripts/unet_studies.py hiss-levels [--checkpoints DIR] [--preset hiss_16k] --references ...

``cross-domain`` expects ``denoise_{linear,mel}_{a,b}.pt`` in DIR (from ``restorelab
train --domains a`` or ``b``) and scores each on the references degraded by group
A and by group B: the change against the unprocessed input in spectrogram MSE
(dB^2), L1 (dB), cosine and LSD. ``ablation`` scores every ``ablation_*.pt`` in DIR
(for example ``ablation_none``, ``ablation_hf``, ``ablation_hf-dnh``; the name after
``ablation_`` labels the row) on the hiss, group A, group B and MusicGen-like presets
and on clean input (do no harm). ``mel-phase`` compares the shipped Mel denoiser's
output phase: the mask on the input's STFT (what the restorer does) against
Griffin-Lim from the same magnitudes and from the Mel spectrum inverted by
pseudo-inverse. ``hiss-levels`` scores the denoisers on the references degraded by a hiss
preset (``--preset``: ``hiss``, or ``hiss_16k``, the same hiss band-limited at 16 kHz) with its
hiss at 30, 45, 55 and 65 dB SNR, seeded per reference as ``evaluate`` seeds it: the shipped
U-Nets, the high-band DSP denoisers and every ``hiss_*.pt`` in DIR (LSD over the whole band and
split at 16 kHz, and SI-SDR, against the clean reference).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from restorelab import analysis  # noqa: E402
from restorelab import degrade as dg  # noqa: E402
from restorelab.audio import WORKING_RATE, find_audio_files, load_audio  # noqa: E402
from restorelab.evaluate import pairs_from_preset  # noqa: E402
from restorelab.report import to_markdown  # noqa: E402
from restorers import get_restorer  # noqa: E402

METRICS = ("spec_mse_db2", "spec_mae_db", "spec_cosine", "lsd", "si_sdr_db")


def _pairs(references: list[Path], preset: str | None):
    """``(clean, degraded)`` as ``restorelab evaluate`` makes them; with no preset, the clean clip twice."""
    if preset is None:
        for path in references:
            clean = load_audio(path).audio
            yield clean, clean
        return
    for _, clean, degraded in pairs_from_preset(references, preset):
        yield clean, degraded


def _score(restorer, references: list[Path], preset: str | None) -> tuple[dict, dict]:
    """Mean metrics of the input and of the restorer's output over the references."""
    rows_in, rows_out = [], []
    for clean, degraded in _pairs(references, preset):
        rows_in.append(analysis.reference_metrics(clean, degraded, WORKING_RATE))
        rows_out.append(analysis.reference_metrics(clean, restorer(degraded, WORKING_RATE), WORKING_RATE))

    def mean(rows):
        return {m: float(np.nanmean([r[m] for r in rows])) for m in METRICS}

    return mean(rows_in), mean(rows_out)


def cross_domain(checkpoints: Path, references: list[Path]) -> str:
    rows = []
    for representation in ("linear", "mel"):
        for trained in ("a", "b"):
            path = checkpoints / f"denoise_{representation}_{trained}.pt"
            restorer = get_restorer("unet_denoise", representation=representation, checkpoint=str(path))
            for tested in ("a", "b"):
                before, after = _score(restorer, references, f"group_{tested}")
                rows.append({"representation": representation, "train": trained.upper(), "test": tested.upper(),
                             **{f"d_{m}": f"{after[m] - before[m]:+.3f}" for m in METRICS},
                             "input_lsd": f"{before['lsd']:.3f}"})
    return to_markdown(rows, list(rows[0]))


def ablation(checkpoints: Path, references: list[Path]) -> str:
    rows = []
    paths = sorted(checkpoints.glob("ablation_*.pt"))
    if not paths:
        raise SystemExit(f"error: no ablation_*.pt checkpoints in {checkpoints}")
    for path in paths:
        restorer = get_restorer("unet_denoise", checkpoint=str(path))
        row = {"terms": path.stem.removeprefix("ablation_")}
        for preset in ("hiss", "group_a", "group_b", "musicgen_like", None):
            before, after = _score(restorer, references, preset)
            label = preset or "clean"
            row[f"{label}_lsd"] = f"{after['lsd']:.3f} ({before['lsd']:.3f})"
            row[f"{label}_si_sdr"] = f"{after['si_sdr_db']:.1f} ({before['si_sdr_db']:.1f})"
        rows.append(row)
    return to_markdown(rows, list(rows[0]))


def mel_phase(references: list[Path], iterations: int = 32) -> str:
    """Mask on the input STFT vs Griffin-Lim phase, for the shipped Mel denoiser, on the hiss preset."""
    import torch

    from restorelab.unet.model import Frontend, denoise_gain, log_power_offset, mel_analysis

    restorer = get_restorer("unet_denoise", representation="mel")
    model = restorer._load()
    config = model.config
    frontend = Frontend(config)
    analysis_fb = torch.from_numpy(mel_analysis(config))
    inverse_fb = torch.linalg.pinv(analysis_fb)
    totals: dict[str, list[dict]] = {"mask on input STFT (ours)": [], "Griffin-Lim, same magnitudes": [],
                                     "Griffin-Lim, Mel pseudo-inverse": []}
    for clean, degraded in _pairs(references, "hiss"):
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(degraded))
            spec = frontend.stft(x)
            power = spec.real.square() + spec.imag.square()
            gain = denoise_gain(frontend.to_bins(model(frontend.features(power, log_power_offset(power))[:, None])),
                                config)
            masked = spec * gain
            magnitude = masked.abs()
            mel_out = (magnitude.square() @ analysis_fb.T)
            from_mel = (mel_out @ inverse_fb.T).clamp_min(0).sqrt()
            outputs = {"mask on input STFT (ours)": frontend.istft(masked, x.shape[-1])}
            for label, mags in (("Griffin-Lim, same magnitudes", magnitude),
                                ("Griffin-Lim, Mel pseudo-inverse", from_mel)):
                generator = torch.Generator().manual_seed(0)
                phase = torch.exp(2j * torch.pi * torch.rand(mags.shape, generator=generator))
                estimate = mags * phase
                for _ in range(iterations):
                    audio = frontend.istft(estimate, x.shape[-1])
                    rebuilt = frontend.stft(audio)
                    estimate = mags * torch.exp(1j * torch.angle(rebuilt))
                outputs[label] = frontend.istft(estimate, x.shape[-1])
        for label, audio in outputs.items():
            totals[label].append(analysis.reference_metrics(clean, audio.numpy(), WORKING_RATE))
    rows = [{"phase": label, **{m: f"{np.mean([r[m] for r in rs]):.3f}" for m in ("lsd", "si_sdr_db", "mrstft")}}
            for label, rs in totals.items()]
    return to_markdown(rows, list(rows[0]))


HISS_LEVELS_DB = (30.0, 45.0, 55.0, 65.0)


def hiss_levels(checkpoints: Path, references: list[Path], preset: str = "hiss") -> str:
    """LSD and SI-SDR of the input and of each denoiser against a hiss preset's hiss from loud to faint."""
    steps = dg.PRESETS[preset].steps
    if "additive_noise" not in [name for name, _ in steps]:
        raise ValueError(f"preset {preset!r} adds no hiss")
    restorers = {"unet_denoise (linear)": get_restorer("unet_denoise", representation="linear"),
                 "unet_denoise (Mel)": get_restorer("unet_denoise", representation="mel"),
                 "spectral_subtraction_hf": get_restorer("spectral_subtraction_hf"),
                 "spectral_gate_hf": get_restorer("spectral_gate_hf")}
    for path in sorted(checkpoints.glob("hiss_*.pt")):
        restorers[path.stem] = get_restorer("unet_denoise", checkpoint=str(path))
    scores: dict[str, dict[float, list[dict]]] = {name: {snr: [] for snr in HISS_LEVELS_DB}
                                                  for name in ("input", *restorers)}
    for index, path in enumerate(references):
        clean = load_audio(path).audio
        for snr in HISS_LEVELS_DB:
            # The preset's own steps and seeding (as degrade() runs them), the hiss louder or fainter.
            rng, noisy = np.random.default_rng(index), clean
            for name, params in steps:
                params = {**params, "snr_db": snr} if name == "additive_noise" else params
                noisy = dg.DEGRADATIONS[name](noisy, WORKING_RATE, rng, **params)
            scores["input"][snr].append(analysis.reference_metrics(clean, noisy, WORKING_RATE, cutoff_hz=16000.0))
            for name, restorer in restorers.items():
                scores[name][snr].append(analysis.reference_metrics(clean, restorer(noisy, WORKING_RATE),
                                                                    WORKING_RATE, cutoff_hz=16000.0))
    rows = [{"snr_db": f"{snr:g}", "restorer": name,
             **{m: f"{np.mean([r[m] for r in by_snr[snr]]):.3f}" for m in ("lsd", "lsd_low", "lsd_high", "si_sdr_db")}}
            for snr in HISS_LEVELS_DB for name, by_snr in scores.items()]
    return to_markdown(rows, list(rows[0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=("cross-domain", "ablation", "mel-phase", "hiss-levels"))
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--references", default="../shared/data/music-reference")
    parser.add_argument("--preset", default="hiss", choices=("hiss", "hiss_16k"), help="hiss-levels: the hiss preset")
    args = parser.parse_args()
    references = find_audio_files([args.references])
    if not references:
        print(f"error: no audio in {args.references}", file=sys.stderr)
        return 2
    if args.study == "cross-domain":
        print(cross_domain(Path(args.checkpoints), references))
    elif args.study == "ablation":
        print(ablation(Path(args.checkpoints), references))
    elif args.study == "hiss-levels":
        print(hiss_levels(Path(args.checkpoints), references, args.preset))
    else:
        print(mel_phase(references))
    return 0


if __name__ == "__main__":
    sys.exit(main())
