"""The U-Net's training losses, on waveforms ``[batch, samples]`` (the model's output after the iSTFT).

* :func:`mrstft_loss`: multi-resolution STFT, spectral convergence plus log-magnitude L1 at
  512/128, 1024/256 and 2048/512 (Yamamoto et al., ICASSP 2020);
* :func:`band_loss`: log-magnitude L1 at 2048/512 over the bins from each item's start bin up;
* :func:`lsd_loss`: the log-spectral distance as the evaluation defines it (log10 power, floor
  1e-10, RMS over bins, mean over frames) at 2048/512;
* :func:`sisdr_loss`: minus the scale-invariant SDR in dB, each item capped;
* :func:`shortfall_sdr_loss`: how far each item's SDR (no rescaling) falls short of a floor, in dB.

``windows`` caches one Hann window per FFT size and device between calls.
"""

from __future__ import annotations

import torch

MRSTFT = ((512, 128), (1024, 256), (2048, 512))
_MAG_EPS = 1e-5


def _magnitude(audio: torch.Tensor, n_fft: int, hop: int, windows: dict) -> torch.Tensor:
    if n_fft not in windows:
        windows[n_fft] = torch.hann_window(n_fft, device=audio.device)
    spec = torch.stft(audio, n_fft, hop, window=windows[n_fft], center=True, return_complex=True)
    return (spec.real.square() + spec.imag.square() + 1e-12).sqrt()


def mrstft_loss(estimate: torch.Tensor, target: torch.Tensor, windows: dict) -> torch.Tensor:
    total = estimate.new_zeros(())
    for n_fft, hop in MRSTFT:
        m_est, m_ref = _magnitude(estimate, n_fft, hop, windows), _magnitude(target, n_fft, hop, windows)
        convergence = torch.linalg.norm(m_ref - m_est) / torch.linalg.norm(m_ref).clamp_min(1e-8)
        log_l1 = (torch.log(m_ref + _MAG_EPS) - torch.log(m_est + _MAG_EPS)).abs().mean()
        total = total + convergence + log_l1
    return total / len(MRSTFT)


def band_loss(estimate: torch.Tensor, target: torch.Tensor, start_bins: torch.Tensor, windows: dict
              ) -> torch.Tensor:
    """Log-magnitude L1 at 2048/512 over the bins at or above each item's ``start_bins``."""
    m_est, m_ref = _magnitude(estimate, 2048, 512, windows), _magnitude(target, 2048, 512, windows)
    bins = torch.arange(m_est.shape[1], device=m_est.device)[None, :, None]
    weight = (bins >= start_bins[:, None, None]).float()
    error = (torch.log(m_ref + _MAG_EPS) - torch.log(m_est + _MAG_EPS)).abs() * weight
    return error.sum() / (weight.sum() * m_est.shape[-1]).clamp_min(1.0)


def lsd_loss(estimate: torch.Tensor, target: torch.Tensor, windows: dict) -> torch.Tensor:
    """Log-spectral distance as the evaluation defines it (log10 power, floor 1e-10), at 2048/512."""
    p_est = _magnitude(estimate, 2048, 512, windows).square()
    p_ref = _magnitude(target, 2048, 512, windows).square()
    difference = torch.log10(p_ref.clamp_min(1e-10)) - torch.log10(p_est.clamp_min(1e-10))
    return (difference.square().mean(dim=1) + 1e-8).sqrt().mean()


def sisdr_loss(estimate: torch.Tensor, target: torch.Tensor, cap_db: float = 50.0) -> torch.Tensor:
    """Mean over items of minus SI-SDR in dB (zero-mean), each item capped at ``cap_db``."""
    target = target - target.mean(dim=-1, keepdim=True)
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    energy = target.square().sum(dim=-1).clamp_min(1e-12)
    scale = (estimate * target).sum(dim=-1) / energy
    error = (estimate - scale[:, None] * target).square().sum(dim=-1)
    kept = scale.square() * energy
    floor = kept * 10 ** (-cap_db / 10)
    return -(10 * torch.log10(kept.clamp_min(1e-20) / (error + floor).clamp_min(1e-20))).mean()


def shortfall_sdr_loss(estimate: torch.Tensor, target: torch.Tensor, floor_db: float = 50.0) -> torch.Tensor:
    """Mean over items of how many dB each item's SDR (the estimate against the target as it is,
    no rescaling) falls short of ``floor_db``; an item at or above the floor adds nothing.

    Meant for clean items, whose target is the input: it sees any change to the waveform, a
    phase rotation included, where a magnitude ratio sees none."""
    energy = target.square().sum(dim=-1).clamp_min(1e-12)
    error = (estimate - target).square().sum(dim=-1).clamp_min(1e-20)
    return torch.relu(floor_db - 10 * torch.log10(energy / error)).mean()
