"""Training the spectral U-Net on pairs made on the fly from the cached clean music.

Each step draws ``batch`` mono excerpts of ``segment_s`` from the corpus built
by :mod:`restorelab.unet.corpus` (silent ones redrawn), sets each to a random level,
degrades it with the seeded simulator, runs the model through the same
:func:`restorelab.unet.model.enhance` path as inference, and scores the waveform it
gives against the clean one.

The loss, with each extra term switched by name (``terms``):

* multi-resolution STFT (always): spectral convergence plus log-magnitude L1 at
  512/128, 1024/256 and 2048/512;
* ``hf``: log-magnitude L1 over the band that matters, above 4 kHz for
  denoising (hiss lives there), above the cutoff for bandwidth extension;
* ``dnh`` (do no harm, denoising and codec): a share of the batch is clean audio, and the
  mean absolute log gain the model applies to it is penalised;
* ``dnh_sdr`` (do no harm to the waveform): the clean items' SDR against themselves, each
  item's shortfall under ``dnh_sdr_db`` at ``dnh_sdr_weight`` per dB. A model with a complex
  filter (``filter_frames``) can rotate a clean cell's phase, which ``dnh``'s magnitude ratio
  does not see and SI-SDR does;
* ``lsd``: the log-spectral distance itself (log10 power, floor 1e-10, RMS over
  bins, mean over frames) at 2048/512. Log-magnitude L1 is minimised by the
  median level; LSD by the mean, which differs where a band is sparse (lossy
  coders leave many empty cells above 18 kHz).
* ``sisdr``: the negative scale-invariant SDR of each degraded item's waveform
  (capped at 50 dB), ``sisdr_weight`` per dB. The log-magnitude terms weigh a quiet
  cell as much as a loud one; this one weighs the error by its energy, as SI-SDR
  does. Clean items are left to ``dnh``: SI-SDR's gradient grows as the error
  shrinks, so items with almost none would outweigh the rest; with them in the
  term the model learned to leave alone anything that might be clean, the
  MusicGen-like chain included.

The ``codec`` task learns to undo real lossy codecs (:func:`codec_pair`: Opus, MP3 or Vorbis
at a compression level drawn per item, some of it after a codec-rate band limit). Encoding is
the slow part of a step, so with ``pool`` set the pairs are made once, before training, by
``workers`` processes, and each step draws its batch from them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from restorelab import degrade as dg
from restorelab.audio import WORKING_RATE
from restorelab.dsp import Stft, long_term_power
from restorelab.replication import Replication, replication_plan
from restorelab.unet.corpus import MIN_BANDWIDTH_HZ, SPLITS, read_manifest
from restorelab.unet.losses import band_loss, lsd_loss, mrstft_loss, shortfall_sdr_loss, sisdr_loss
from restorelab.unet.model import (BandPlan, Frontend, SpectralUNet, UNetConfig, enhance, log_power_offset,
                                  save_checkpoint)

DENOISE_DOMAINS = ("a", "b", "hiss", "musicgen")
LOSS_TERMS = ("hf", "dnh", "dnh_sdr", "lsd", "sisdr")
#: Each task's extra loss terms, as the shipped checkpoints were trained.
DEFAULT_TERMS = {"denoise": ("hf", "dnh", "sisdr"), "bwe": ("hf", "lsd"), "codec": ("dnh", "lsd", "sisdr")}
#: Codec task: each codec's range of libsndfile compression levels (see ``degrade.codec_round_trip``).
#: On mono music they span about 13-104 kbps (Opus), 38-143 (MP3) and 57-125 (Vorbis): a stereo
#: stream at twice those rates, from clearly audible to near transparent.
CODEC_LEVELS = {"opus": (0.62, 0.99), "mp3": (0.0, 0.99), "vorbis": (0.3, 0.99)}
#: Codec task: where the band limit that some items get before the codec falls (Hz).
CODEC_BAND_LIMIT_HZ = (11000.0, 16000.0)
#: The ``hiss`` domain's lowest SNR (dB).
MIN_HISS_SNR_DB = 18.0
#: Where the ``hiss`` domain's codec-like band limit falls (Hz): a 32 kHz codec's 16 kHz, and
#: the 14.8-15.7 kHz cliffs measured on real MusicGen output, give or take.
HISS_BAND_LIMIT_HZ = (14000.0, 17000.0)
HISS_COLOURS = tuple(dg.NOISE_COLORS)  # the colours the hiss domain can draw


@dataclass
class TrainSettings:
    """Everything a checkpoint's training depends on (stored in its metadata)."""

    task: str = "denoise"
    representation: str = "linear"
    channels: tuple[int, ...] = (12, 24, 48)
    #: Degradation domains for denoising: ``a`` and ``b`` (the simulator's groups),
    #: ``hiss`` (high-passed white noise) and ``musicgen`` (the MusicGen-like chain).
    domains: tuple[str, ...] = DENOISE_DOMAINS
    #: Extra loss terms (None: the task's ``DEFAULT_TERMS``).
    terms: tuple[str, ...] | None = None
    steps: int = 2000
    #: End the run after this many steps of the ``steps``-long schedule (0: all of them), the
    #: learning rate not yet at the end of its decay: a candidate a time limit cut short, remade.
    stop_after: int = 0
    batch: int = 8
    segment_s: float = 1.5
    learning_rate: float = 2e-3
    clean_share: float = 0.15
    #: Loss per dB of SI-SDR, for the ``sisdr`` term.
    sisdr_weight: float = 0.2
    #: Loss per dB that a clean item's SDR falls short of ``dnh_sdr_db``, for the ``dnh_sdr`` term.
    dnh_sdr_weight: float = 0.05
    #: The SDR (dB) above which the ``dnh_sdr`` term leaves a clean item alone.
    dnh_sdr_db: float = 50.0
    #: Denoising: the ``hiss`` domain's SNR is drawn uniformly from ``MIN_HISS_SNR_DB`` to this.
    max_hiss_snr_db: float = 40.0
    #: Denoising: share of ``hiss`` items band-limited after the hiss is added (music and hiss
    #: end together, as in a 32 kHz codec's output; the target is the clean audio with the same
    #: limit). Without it the model learned to find hiss by the empty band it fills above 16 kHz.
    hiss_band_limit_share: float = 0.5
    #: Denoising: the ``hiss`` domain's noise colours, drawn per item (``white``, ``pink``, ``brown``).
    hiss_colours: tuple[str, ...] = ("white", "pink")
    #: Share of excerpts drawn from real recordings rather than MIDI renders (None: by duration).
    recording_share: float | None = None
    #: Bandwidth extension: share of excerpts degraded by the MusicGen-like chain (gentle roll-off,
    #: quantisation and hiss under a 16 kHz band) instead of a clean brick wall.
    musicgen_share: float = 0.0
    #: Bandwidth extension: where the generated band ends (inference must use the same).
    max_frequency_hz: float = Replication.max_frequency_hz
    #: Codec task: the codecs drawn from (see ``CODEC_LEVELS``).
    codecs: tuple[str, ...] = tuple(CODEC_LEVELS)
    #: Codec task: share of items band-limited (``CODEC_BAND_LIMIT_HZ``) before the codec, as
    #: MusicGen's 32 kHz output is; their target is the clean audio under the same limit.
    codec_band_limit_share: float = 0.3
    #: Codec task: frames on each side of the complex filter (``UNetConfig.filter_frames``; 0: none).
    filter_frames: int = 0
    #: Pairs made before training and drawn from at each step (0: each step makes its own).
    pool: int = 0
    #: Processes that make the pool (0: one per CPU).
    workers: int = 0
    #: Where the model trains (``cpu``, ``cuda``); the checkpoint is saved for the CPU either way.
    device: str = "cpu"
    #: Corpus split to train on (``corpus.SPLITS``; the other is for choosing checkpoints).
    split: str = "train"
    #: Steps between checkpoints written during training (a run cut short keeps its work).
    checkpoint_every: int = 500
    seed: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        if self.task not in DEFAULT_TERMS:
            raise ValueError(f"task must be one of {', '.join(DEFAULT_TERMS)}, got {self.task!r}")
        if self.terms is None:
            self.terms = DEFAULT_TERMS[self.task]
        unknown = set(self.domains) - set(DENOISE_DOMAINS)
        if unknown:
            raise ValueError(f"unknown domains {sorted(unknown)}; known: {', '.join(DENOISE_DOMAINS)}")
        if self.recording_share is not None and not 0.0 <= self.recording_share <= 1.0:
            raise ValueError(f"recording_share must be within [0, 1], got {self.recording_share}")
        self.codecs = tuple(self.codecs)
        if not self.codecs or set(self.codecs) - set(CODEC_LEVELS):
            raise ValueError(f"codecs must be some of {', '.join(CODEC_LEVELS)}, got {self.codecs}")
        if not 0.0 <= self.codec_band_limit_share <= 1.0:
            raise ValueError(f"codec_band_limit_share must be within [0, 1], got {self.codec_band_limit_share}")
        if self.pool < 0 or self.workers < 0:
            raise ValueError("pool and workers must not be negative")
        if not 0 <= self.stop_after <= self.steps:
            raise ValueError(f"stop_after must be within [0, steps={self.steps}], got {self.stop_after}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.sisdr_weight < 0:
            raise ValueError(f"sisdr_weight must not be negative, got {self.sisdr_weight}")
        if self.dnh_sdr_weight < 0:
            raise ValueError(f"dnh_sdr_weight must not be negative, got {self.dnh_sdr_weight}")
        if not 0.0 < self.dnh_sdr_db <= 100.0:
            raise ValueError(f"dnh_sdr_db must be within (0, 100], got {self.dnh_sdr_db}")
        if self.max_hiss_snr_db <= MIN_HISS_SNR_DB:
            raise ValueError(f"max_hiss_snr_db must be above {MIN_HISS_SNR_DB:g}, got {self.max_hiss_snr_db}")
        if not 0.0 <= self.musicgen_share <= 1.0:
            raise ValueError(f"musicgen_share must be within [0, 1], got {self.musicgen_share}")
        if not 0.0 <= self.hiss_band_limit_share <= 1.0:
            raise ValueError(f"hiss_band_limit_share must be within [0, 1], got {self.hiss_band_limit_share}")
        self.hiss_colours = tuple(self.hiss_colours)
        if not self.hiss_colours or set(self.hiss_colours) - set(HISS_COLOURS):
            raise ValueError(f"hiss_colours must be some of {', '.join(HISS_COLOURS)}, got {self.hiss_colours}")
        unknown = set(self.terms) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {', '.join(LOSS_TERMS)}")
        self.channels = tuple(int(c) for c in self.channels)
        self.config()  # the architecture's own checks (filter_frames with its task and front end)

    @property
    def clean_items(self) -> bool:
        """Whether batches hold clean items (``clean_share`` of them): for the do-no-harm terms."""
        return self.task != "bwe" and bool({"dnh", "dnh_sdr"} & set(self.terms))

    def config(self) -> UNetConfig:
        return UNetConfig(task=self.task, representation=self.representation, channels=self.channels,
                          filter_frames=self.filter_frames)


# -- data ------------------------------------------------------------------------------------

def load_corpus(cache: Path, log: Callable[[str], None] = print, min_bandwidth_hz: float = 0.0,
                recording_share: float | None = None, split: str = "train") -> tuple[list[np.ndarray], np.ndarray]:
    """The built cache's clips of ``split`` (those reaching ``min_bandwidth_hz``) as float32
    ``[channels, samples]``, and each clip's probability of being drawn: by duration, and with
    ``recording_share`` of the total on the real recordings (the rest on the MIDI renders)."""
    items = [item for item in read_manifest(cache) if item.bandwidth_hz >= min_bandwidth_hz and item.split == split]
    if not items:
        raise FileNotFoundError(f"{cache}: no clips of the {split} split reach {min_bandwidth_hz:.0f} Hz")
    if recording_share in (0.0, 1.0):  # a source never drawn is not read
        items = [item for item in items if (item.source == "recording") == (recording_share == 1.0)] or items
    clips = [sf.read(str(Path(cache) / item.file), dtype="float32", always_2d=True)[0].T for item in items]
    log(f"{len(clips)} clips, {sum(c.shape[-1] for c in clips) / WORKING_RATE / 60:.1f} min from {cache}")
    weights = np.array([c.shape[-1] for c in clips], dtype=np.float64)
    recorded = np.array([item.source == "recording" for item in items])
    if recording_share is not None and recorded.any() and not recorded.all():
        weights[recorded] *= recording_share / weights[recorded].sum()
        weights[~recorded] *= (1.0 - recording_share) / weights[~recorded].sum()
    return clips, weights / weights.sum()


def draw_excerpt(clips: list[np.ndarray], n: int, rng: np.random.Generator, min_rms_db: float = -45.0,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """A mono ``[1, n]`` excerpt (one channel or the mid) at a random level (-30 to -14 dBFS RMS).

    Clips are drawn with probability ``weights`` (default: by duration)."""
    if weights is None:
        weights = np.array([c.shape[-1] for c in clips], dtype=np.float64)
    for _ in range(50):
        clip = clips[int(rng.choice(len(clips), p=weights / weights.sum()))]
        if clip.shape[-1] <= n:
            continue
        start = int(rng.integers(clip.shape[-1] - n))
        piece = clip[:, start : start + n]
        channel = int(rng.integers(piece.shape[0] + 1))
        mono = piece.mean(axis=0) if channel == piece.shape[0] else piece[channel]
        rms = float(np.sqrt(np.mean(np.square(mono))))
        if rms > 10 ** (min_rms_db / 20):
            target = 10 ** (rng.uniform(-30, -14) / 20)
            return (mono * (target / rms))[None].astype(np.float32)
    raise RuntimeError("could not find a non-silent excerpt in 50 draws; is the corpus empty or silent?")


def musicgen_chain(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The MusicGen-like chain with its roll-off, bit depth and hiss level drawn at random."""
    return dg.musicgen_like(clean, WORKING_RATE, rng, rolloff_hz=float(rng.uniform(8000, 14000)),
                            bits=int(rng.integers(10, 15)), hiss_snr_db=float(rng.uniform(25, 45)))


def degrade_for_denoising(clean: np.ndarray, domain: str, rng: np.random.Generator,
                          settings: TrainSettings | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(degraded, target)`` for one domain; the MusicGen chain's target is the clean audio below 16 kHz.

    The ``hiss`` domain follows ``settings`` (SNR range, colours, share band-limited after the
    hiss is added, in which case the target is the clean audio under the same limit). With one
    colour and no band limit it draws exactly what it drew before those settings existed.

    (A target of the MusicGen chain without its noise was tried: the model then learned to cut
    everything above the roll-off, music included, and lost LSD and SI-SDR against the clean audio.)
    """
    sr = WORKING_RATE
    settings = settings or TrainSettings()
    if domain in ("a", "b"):
        name = str(rng.choice(dg.GROUP_A if domain == "a" else dg.GROUP_B))
        return dg.DEGRADATIONS[name](clean, sr, rng, **dg.RANDOM_PARAMS[name](rng)), clean
    if domain == "hiss":
        colours = settings.hiss_colours
        colour = str(rng.choice(colours)) if len(colours) > 1 else colours[0]
        snr = float(rng.uniform(MIN_HISS_SNR_DB, settings.max_hiss_snr_db))
        noisy = dg.additive_noise(clean, sr, rng, snr_db=snr, color=colour, highpass_hz=float(rng.uniform(2000, 8000)))
        if settings.hiss_band_limit_share and rng.random() < settings.hiss_band_limit_share:
            cutoff = float(rng.uniform(*HISS_BAND_LIMIT_HZ))
            return dg.band_limit(noisy, sr, rng, cutoff_hz=cutoff), dg.band_limit(clean, sr, rng, cutoff_hz=cutoff)
        return noisy, clean
    return musicgen_chain(clean, rng), dg.band_limit(clean, sr, rng, cutoff_hz=16000.0)


def codec_pair(clean: np.ndarray, rng: np.random.Generator, settings: TrainSettings | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(degraded, target)``: ``clean`` through one of ``settings.codecs`` at a level drawn from
    ``CODEC_LEVELS`` (Opus at 48 kHz and back); a share band-limited first, target alike."""
    settings = settings or TrainSettings(task="codec")
    sr = WORKING_RATE
    target = clean
    if settings.codec_band_limit_share and rng.random() < settings.codec_band_limit_share:
        target = dg.band_limit(clean, sr, rng, cutoff_hz=float(rng.uniform(*CODEC_BAND_LIMIT_HZ)))
    codec = str(rng.choice(settings.codecs))
    level = float(rng.uniform(*CODEC_LEVELS[codec]))
    decoded = dg.through_codec(target, sr, codec, lambda x, rate: dg.codec_round_trip(x, rate, codec, level)[0])
    return decoded, target


def make_batch(clips: list[np.ndarray], settings: TrainSettings, rng: np.random.Generator,
               weights: np.ndarray | None = None):
    """``(degraded, target, clean_flags, plans)``: tensors ``[batch, samples]`` and ``[batch]``, and for
    bandwidth extension each item's :class:`ReplicationPlan` (else an empty list). ``weights`` as
    :func:`draw_excerpt`'s."""
    n = int(settings.segment_s * WORKING_RATE)
    config = settings.config()
    stft = Stft(config.n_fft, config.hop)
    degraded, targets, is_clean, plans = [], [], [], []
    replication = Replication(max_frequency_hz=settings.max_frequency_hz)
    while len(degraded) < settings.batch:
        clean = draw_excerpt(clips, n, rng, weights=weights)
        flag = False
        if settings.task == "bwe":
            # Codec-like brick walls from 11 to 17 kHz, or the MusicGen-like chain; the plan
            # measures each excerpt's cutoff as inference does.
            if settings.musicgen_share and rng.random() < settings.musicgen_share:
                x = musicgen_chain(clean, rng)
            else:
                x = dg.band_limit(clean, WORKING_RATE, rng, cutoff_hz=float(rng.uniform(11000, 17000)))
            plan = replication_plan(long_term_power(stft.forward(x)), WORKING_RATE, stft, replication)
            if plan is None:
                continue
            plans.append(plan)
            target = clean
        elif settings.clean_items and rng.random() < settings.clean_share:
            x, target, flag = clean, clean, True
        elif settings.task == "codec":
            x, target = codec_pair(clean, rng, settings)
        else:
            x, target = degrade_for_denoising(clean, str(rng.choice(settings.domains)), rng, settings)
        degraded.append(x[0])
        targets.append(target[0])
        is_clean.append(flag)
    return (torch.from_numpy(np.stack(degraded)), torch.from_numpy(np.stack(targets)),
            torch.tensor(is_clean), plans)


# -- a pool of pairs made ahead ------------------------------------------------

@dataclass
class PairPool:
    """Pairs made before training: ``[items, samples]`` arrays, clean flags, plans (bandwidth extension)."""

    degraded: np.ndarray
    target: np.ndarray
    is_clean: np.ndarray
    plans: list

    def draw(self, batch: int, rng: np.random.Generator, level_db: float = 6.0):
        """A batch as :func:`make_batch` gives it, each pair at a level within ``level_db`` of its own."""
        index = rng.integers(len(self.degraded), size=batch)
        gain = (10 ** (rng.uniform(-level_db, level_db, size=batch) / 20)).astype(np.float32)[:, None]
        return (torch.from_numpy(self.degraded[index] * gain), torch.from_numpy(self.target[index] * gain),
                torch.from_numpy(self.is_clean[index]), [self.plans[i] for i in index] if self.plans else [])


_POOL_INPUTS: dict = {}


def _pool_part(job: tuple[int, int]):
    """One worker's share of the pool: ``count`` pairs with a generator of their own."""
    index, count = job
    settings = _POOL_INPUTS["settings"]
    rng = np.random.default_rng([settings.seed, index])
    part = replace(settings, batch=count)
    degraded, target, is_clean, plans = make_batch(_POOL_INPUTS["clips"], part, rng, _POOL_INPUTS["weights"])
    return degraded.numpy(), target.numpy(), is_clean.numpy(), plans


def make_pool(clips: list[np.ndarray], weights: np.ndarray, settings: TrainSettings,
              log: Callable[[str], None] = print) -> PairPool:
    """``settings.pool`` pairs made by ``settings.workers`` processes (forked: the corpus is shared)."""
    import multiprocessing
    import os

    started = time.time()
    part = 64
    jobs = [(i, min(part, settings.pool - i * part)) for i in range(math.ceil(settings.pool / part))]
    _POOL_INPUTS.update(clips=clips, weights=weights, settings=settings)
    try:
        with multiprocessing.get_context("fork").Pool(settings.workers or os.cpu_count()) as workers:
            parts = workers.map(_pool_part, jobs)
    finally:
        _POOL_INPUTS.clear()
    pool = PairPool(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                    np.concatenate([p[2] for p in parts]), [plan for p in parts for plan in p[3]])
    log(f"{len(pool.degraded)} pairs made in {time.time() - started:.0f} s")
    return pool


class PoolFolderError(ValueError):
    """A pool folder that cannot serve this run: unreadable, or made with other data settings."""


#: Settings that change only the model or how it is trained, not the pairs a pool holds.
_NOT_IN_POOL = ("representation", "channels", "filter_frames", "terms", "steps", "stop_after", "batch",
                "learning_rate", "sisdr_weight", "dnh_sdr_weight", "dnh_sdr_db", "workers", "device",
                "checkpoint_every", "threads")


def pool_key(settings: TrainSettings, cache: Path) -> dict:
    """What a pool's pairs depend on: the data settings and the corpus's manifest."""
    import hashlib

    key = {name: value for name, value in _settings_record(settings).items() if name not in _NOT_IN_POOL}
    key["clean_items"] = settings.clean_items
    key["manifest_sha256"] = hashlib.sha256((Path(cache) / "manifest.tsv").read_bytes()).hexdigest()
    return key


def shared_pool(folder: Path, clips: list[np.ndarray], weights: np.ndarray, settings: TrainSettings, cache: Path,
                log: Callable[[str], None] = print) -> PairPool:
    """The pool kept in ``folder``, made (and written there) if the folder does not exist yet, so
    several candidates can train on the same pairs. A folder made with other data settings or
    another corpus is refused, naming what differs. The pairs are memory-mapped, not copied."""
    import json
    import os
    import shutil
    import tempfile

    if settings.task == "bwe":
        raise PoolFolderError("a pool folder holds codec or denoising pairs, not extension pairs (their plans)")
    folder = Path(folder)
    key = pool_key(settings, cache)
    if not folder.exists():
        pool = make_pool(clips, weights, settings, log)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            for name in ("degraded", "target", "is_clean"):
                np.save(staging / f"{name}.npy", getattr(pool, name))
            (staging / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
            os.rename(staging, folder)  # whole, or not there: a reader never sees half a pool
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log(f"wrote the pool to {folder}")
    try:
        stored = json.loads((folder / "key.json").read_text())
    except (OSError, ValueError) as exc:
        raise PoolFolderError(f"{folder} is not a pool folder (no readable key.json): {exc}") from exc
    differs = sorted(name for name in set(key) | set(stored) if key.get(name) != stored.get(name))
    if differs:
        raise PoolFolderError(f"{folder} holds pairs made with other settings ({', '.join(differs)}); "
                              "use another folder or the same settings")
    # Read back even by the run that made it: memory-mapped, its pages are shared with the other
    # runs instead of each holding its own copy.
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ("degraded", "target", "is_clean")}
    log(f"{len(arrays['degraded'])} pairs from {folder}")
    return PairPool(arrays["degraded"], arrays["target"], np.asarray(arrays["is_clean"]), [])


# -- the loop ---------------------------------------------------------------------------

def train(settings: TrainSettings, cache: Path, out: Path | None = None, log: Callable[[str], None] = print,
          pool_folder: Path | None = None) -> tuple[SpectralUNet, dict]:
    """Train one checkpoint; writes it to ``out`` (when given) with its settings and loss history.

    With ``pool_folder`` (and ``settings.pool``), the pool is read from that folder, or made and
    written there first (:func:`shared_pool`)."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    # Extension learns from music that really has the band it generates.
    clips, weights = load_corpus(cache, log, MIN_BANDWIDTH_HZ if settings.task == "bwe" else 0.0,
                                 settings.recording_share, settings.split)
    pool = None
    if settings.pool:  # before any CUDA work
        pool = (shared_pool(pool_folder, clips, weights, settings, cache, log) if pool_folder
                else make_pool(clips, weights, settings, log))
    device = torch.device(settings.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # every step has the same shapes
    config = settings.config()
    model = SpectralUNet(config).to(device)
    frontend = Frontend(config).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / settings.steps)))
    windows: dict = {}
    hf_start = int(round(4000 / (WORKING_RATE / config.n_fft)))
    history, started, running = [], time.time(), 0.0
    steps_run = settings.stop_after or settings.steps
    for step in range(steps_run):
        degraded, target, is_clean, plans = (pool.draw(settings.batch, rng) if pool is not None
                                             else make_batch(clips, settings, rng, weights))
        degraded, target, is_clean = degraded.to(device), target.to(device), is_clean.to(device)
        spec = frontend.stft(degraded)
        power = spec.real.square() + spec.imag.square()
        offset = log_power_offset(power)
        plan = BandPlan.stack(plans, config.n_bins).to(device) if plans else None
        restored = enhance(model, frontend, spec, offset, plan)
        estimate = frontend.istft(restored, degraded.shape[-1])
        loss = mrstft_loss(estimate, target, windows)
        if "hf" in settings.terms:
            starts = (torch.tensor([p.cutoff_bin for p in plans], device=device) if plans
                      else torch.full((len(target),), hf_start, device=device))
            loss = loss + band_loss(estimate, target, starts, windows)
        if "lsd" in settings.terms:
            loss = loss + lsd_loss(estimate, target, windows)
        if "sisdr" in settings.terms and not bool(is_clean.all()):
            loss = loss + settings.sisdr_weight * sisdr_loss(estimate[~is_clean], target[~is_clean])
        if settings.clean_items and bool(is_clean.any()):
            if "dnh" in settings.terms:
                gain = restored.abs() / spec.abs().clamp_min(1e-8)
                loss = loss + torch.log(gain[is_clean].clamp_min(1e-4)).abs().mean()
            if "dnh_sdr" in settings.terms:
                loss = loss + settings.dnh_sdr_weight * shortfall_sdr_loss(estimate[is_clean], target[is_clean],
                                                                            settings.dnh_sdr_db)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
        schedule.step()
        running += float(loss.detach())
        if (step + 1) % 50 == 0 or step + 1 == steps_run:
            mean = running / ((step % 50) + 1)
            running = 0.0
            history.append((step + 1, round(mean, 4)))
            log(f"step {step + 1}/{settings.steps}  loss {mean:.4f}  {time.time() - started:.0f} s")
        if out is not None and (step + 1) % settings.checkpoint_every == 0 and step + 1 < steps_run:
            # A run cut short keeps its work; ``steps_done`` says where it stood.
            save_checkpoint(out, model, _meta(settings, model, history, started, step + 1))
    model.eval()
    meta = _meta(settings, model, history, started, steps_run)
    if out is not None:
        save_checkpoint(out, model, meta)
        log(f"wrote {out}")
    return model.cpu(), meta


def _settings_record(settings: TrainSettings) -> dict:
    """The settings as plain JSON values (tuples as lists)."""
    return {**settings.__dict__, "channels": list(settings.channels), "domains": list(settings.domains),
            "terms": list(settings.terms), "hiss_colours": list(settings.hiss_colours),
            "codecs": list(settings.codecs)}


def _meta(settings: TrainSettings, model: SpectralUNet, history: list, started: float, steps_done: int) -> dict:
    return {
        "steps_done": steps_done,
        "settings": _settings_record(settings),
        "loss_history": list(history),
        "train_seconds": round(time.time() - started, 1),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


__all__ = ["TrainSettings", "train", "shared_pool", "load_corpus", "make_batch", "mrstft_loss", "band_loss",
           "lsd_loss"]
