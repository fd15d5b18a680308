"""Our trained spectral U-Net, for denoising, lossy-codec artifacts and bandwidth extension
(linear or Mel front end)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from restorelab.audio import resample
from restorelab.dsp import Stft
from restorelab.replication import Replication, guard_above_cutoff, replication_plan
from restorers.base import Availability, Restorer, RestorerParams, missing_module

MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
_MODELS: dict[str, Any] = {}
#: Where an extension checkpoint's band ends when its metadata does not say: the DSP extension's.
TRAINED_STOP_HZ = Replication.max_frequency_hz
_LOAD_LOCK = threading.Lock()


def shipped_checkpoint(task: str, representation: str) -> Path:
    """Where the checkpoint we train and ship for a task and front end lives."""
    return MODEL_DIR / f"unet_{task}_{representation}.pt"


@dataclass(frozen=True)
class SpectralUNetParams(RestorerParams):
    """Knobs of the spectral U-Net restorers.

    Attributes:
        representation: ``linear`` (STFT bins) or ``mel`` (Mel bands, applied as a
            mask on the input's STFT).
        checkpoint: a checkpoint file from ``restorelab train``; empty uses the
            shipped one for the task and representation.
    """

    representation: str = "linear"
    checkpoint: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.representation not in ("linear", "mel"):
            raise ValueError(f"representation must be linear or mel, got {self.representation!r}")


@dataclass(frozen=True)
class UNetDenoiseParams(SpectralUNetParams):
    """The Mel front end by default: lower LSD than the linear one on hiss, on hiss inside the
    codec's 16 kHz band and on the MusicGen-like chain, and higher SI-SDR on the last two."""

    representation: str = "mel"


@dataclass(frozen=True)
class UNetCodecParams(SpectralUNetParams):
    """The linear front end (the only one trained for this task): the cells a lossy coder
    empties are single bins, finer than a Mel band."""

    representation: str = "linear"


@dataclass(frozen=True)
class UNetBandwidthExtensionParams(SpectralUNetParams):
    """Adds where the band is generated (as ``bandwidth_extension_dsp`` decides it).

    The Mel front end by default: lower LSD and higher ViSQOL than the linear one.

    Attributes:
        cutoff_hz: where the input's content ends; 0 measures it over the whole input.
        max_frequency_hz: the generated band ends here (faded over the sixth of an
            octave below); 0 ends it where the checkpoint was trained to end it
            (``restorelab train --max-frequency-hz``; 19 kHz where it does not say).
        margin_db: content threshold over the empty-band floor for measuring the cutoff.
        min_cliff_db: how steeply the spectrum must fall across the cutoff for the band
            above to count as removed by a codec; otherwise the input is returned as is.
    """

    representation: str = "mel"
    cutoff_hz: float = 0.0
    max_frequency_hz: float = 0.0
    margin_db: float = 20.0
    min_cliff_db: float = 12.0

    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        **SpectralUNetParams.RANGES,
        "cutoff_hz": (0, 24000),
        "max_frequency_hz": (0, 24000),
        "margin_db": (1, 60),
        "min_cliff_db": (0, 60),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        self.replication(TRAINED_STOP_HZ)  # validates the shared fields

    def replication(self, trained_stop_hz: float) -> Replication:
        """The DSP extension's parameters that place the band and its starting envelope
        (``trained_stop_hz``: where the checkpoint's band ends, used when ``max_frequency_hz`` is 0)."""
        return Replication(cutoff_hz=self.cutoff_hz,
                                           max_frequency_hz=self.max_frequency_hz or trained_stop_hz,
                                           margin_db=self.margin_db, min_cliff_db=self.min_cliff_db)


def _for_inference(model):
    """The network in evaluation mode with its weights channels-last, the layout the CPU's
    convolutions run fastest in (about twice as fast as the default here; the same numbers to
    float rounding)."""
    import torch

    return model.eval().to(memory_format=torch.channels_last)


class _SpectralUNet(Restorer):
    """Shared plumbing: checkpoint loading, whole-input statistics, resampling, batching channels."""

    kind = "neural"
    task: ClassVar[str] = ""
    context_s = 1.0
    #: The network's activations grow with the chunk: 10 s chunks keep a 30 s stereo clip near
    #: 0.1 GB instead of 0.4 GB, and run no slower (measured with both U-Nets on a 2-core CPU).
    default_chunk_s = 10.0

    def __init__(self, params: SpectralUNetParams | None = None, *, model: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._model = model
        self._meta: dict[str, Any] = {}
        self._frontend = None

    @classmethod
    def checkpoint_path(cls, params: SpectralUNetParams) -> Path:
        return Path(params.checkpoint) if params.checkpoint else shipped_checkpoint(cls.task, params.representation)

    @classmethod
    def availability_for(cls, params: SpectralUNetParams) -> Availability:
        if missing_module("torch"):
            return Availability(False, "needs torch (not installed); pip install -r requirements.txt")
        path = cls.checkpoint_path(params)
        if not path.is_file():
            return Availability(False, f"no checkpoint at {path}; train one with `restorelab train --task "
                                       f"{cls.task} --representation {params.representation} --out {path}`")
        return Availability(True)

    @classmethod
    def tiny(cls, **overrides: Any) -> "_SpectralUNet":
        """The real code path on a random-weight U-Net (channels 4 and 8)."""
        import torch

        from restorelab.unet.model import SpectralUNet, UNetConfig

        restorer = cls(**overrides)
        torch.manual_seed(0)
        model = SpectralUNet(UNetConfig(task=cls.task, representation=restorer.params.representation,
                                        channels=(4, 8)))
        for parameter in model.head.parameters():  # the head starts at zero; make the tiny model act
            torch.nn.init.normal_(parameter, std=0.3)
        restorer._model = _for_inference(model)
        return restorer

    def _load(self):
        if self._model is not None:
            return self._model
        availability = self.availability_for(self.params)
        if not availability.available:
            raise RuntimeError(f"{self.name} is unavailable: {availability.reason}")
        from restorelab.unet.model import load_checkpoint

        key = str(self.checkpoint_path(self.params).resolve())
        with _LOAD_LOCK:
            if key not in _MODELS:
                model, meta = load_checkpoint(key)
                if model.config.task != self.task:
                    raise ValueError(f"{key} is a {model.config.task} checkpoint, not {self.task}")
                _MODELS[key] = _for_inference(model), meta
            self._model, self._meta = _MODELS[key]
        return self._model

    def same_as(self, other: Restorer) -> bool:
        """Also the same network: a restorer handed its own model is the same only as one with that model."""
        return super().same_as(other) and other._model is self._model

    def trained_stop_hz(self) -> float:
        """Where the loaded extension checkpoint was trained to end the band."""
        self._load()
        return float(self._meta.get("settings", {}).get("max_frequency_hz", TRAINED_STOP_HZ))

    def _front(self):
        """The model's STFT and feature front end, built once per restorer (not per chunk)."""
        if self._frontend is None:
            from restorelab.unet.model import Frontend

            self._frontend = Frontend(self._load().config)
        return self._frontend

    def _fit(self, audio: np.ndarray, sample_rate: int) -> dict[str, Any]:
        """Per-channel feature offset and the long-term power over the whole input, block by block.

        The power is measured exactly as ``bandwidth_extension_dsp`` measures it, so both
        find the same cutoff.
        """
        from restorelab.unet.model import LOG_EPS

        config = self._load().config
        stft = Stft(config.n_fft, config.hop)
        log_sum = np.zeros(audio.shape[0])
        power_sum = np.zeros(config.n_bins)
        frames = 0
        for start, stop in self.blocks(audio.shape[-1], sample_rate, multiple=config.hop):
            block = resample(audio[:, start:stop], sample_rate, config.sample_rate)
            power = np.square(np.abs(stft.forward(block)), dtype=np.float64)
            log_sum += np.log(power + LOG_EPS).mean(axis=2).sum(axis=1)
            power_sum += power.mean(axis=0).sum(axis=0)
            frames += power.shape[1]
        return {"offset": log_sum / frames, "power": power_sum / frames}

    def _chunk_multiple(self, sample_rate: int) -> int:
        # Whole frames, and whole steps of the U-Net's down-sampling in time, so every chunk
        # sees the frame grid and the strided grids of the whole input.
        config = self._load().config
        return config.hop * 2 ** (len(config.channels) - 1) if sample_rate == config.sample_rate else 1

    def _process(self, audio: np.ndarray, sample_rate: int, fitted: dict[str, Any]) -> np.ndarray:
        import torch

        from restorelab.unet.model import BandPlan, enhance

        model = self._load()
        config = model.config
        stft = Stft(config.n_fft, config.hop)
        plan = None
        if self.task == "bwe":
            plan = replication_plan(fitted["power"], config.sample_rate, stft,
                                    self.params.replication(self.trained_stop_hz()))
            if plan is None:  # no codec-like cliff: nothing to extend
                return audio
        x = resample(audio, sample_rate, config.sample_rate)
        frontend = self._front()
        offsets = torch.from_numpy(fitted["offset"]).float()
        plans = BandPlan.stack([plan], config.n_bins) if plan else None  # the same for every channel
        outputs = []
        with torch.inference_mode():
            for channel in range(x.shape[0]):  # one at a time: half a stereo batch's activations
                spec = frontend.stft(torch.from_numpy(np.ascontiguousarray(x[channel:channel + 1])))
                enhanced = enhance(model, frontend, spec, offsets[channel:channel + 1], plans)
                outputs.append(frontend.istft(enhanced, x.shape[-1]).numpy())
        restored = np.concatenate(outputs)
        if plan:
            restored = x + guard_above_cutoff(restored - x, plan.cutoff_bin, stft, config.sample_rate)
        out = resample(restored.astype(np.float32), config.sample_rate, sample_rate)
        n = audio.shape[-1]
        return np.pad(out, ((0, 0), (0, max(0, n - out.shape[-1]))))[:, :n].astype(np.float32)


class UNetDenoise(_SpectralUNet):
    """Spectral U-Net gain mask on the input's STFT, trained to remove hiss and codec damage.

    Method: ``Y = G(|X|) X`` with ``G`` in ``[0, 2]`` predicted per bin (linear)
    or per Mel band spread onto bins (mel) from the log power normalised by the
    whole input's mean; the phase is the input's. Trained on the simulator's
    groups A and B, high-passed hiss (half of it band-limited at 14-17 kHz, as a
    codec leaves it) and the MusicGen-like chain, with a
    multi-resolution STFT loss, a high-band term and a do-no-harm term on clean
    input (see ``assets/models/MODEL_CARD.md``).

    Trade-off: a mask cannot add what is not there; the gain ceiling of 2 lets it
    undo a dulled top end by up to 6 dB, no more.

    Reference: in the spirit of spectral U-Nets for music enhancement (for example
    N. Kandpal et al., "Music Enhancement via Image Translation and Vocoding",
    ICASSP 2022), with R. Yamamoto et al.'s multi-resolution STFT loss (ICASSP 2020).
    """

    name = "unet_denoise"
    task = "denoise"
    description = "Our spectral U-Net (trained, shipped): a learned gain mask that removes hiss and noise."
    Params = UNetDenoiseParams


class UNetCodec(_SpectralUNet):
    """Spectral U-Net that undoes lossy-codec damage: noise spread around notes and transients,
    and the cells a coder emptied.

    Method: ``Y = G X + F A X / |X|``: the gain ``G`` in ``[0, 2]`` (as ``unet_denoise``'s)
    and the fill ``F`` of ``A``, the input's mean magnitude over the 3 frames and 9 bins around
    each cell, added along the cell's own phase (the residue a coder leaves in an emptied cell
    still has one); both predicted per bin from the log power normalised by the whole input's
    mean. The shipped checkpoint also adds ``sum_k H_k X(t + k)``, a complex filter over the
    frame before, the frame itself and the frame after, from features that include each cell's
    phase advance: a partial is coherent from frame to frame and the coder's noise is not.
    Trained on music through Opus, MP3 and Vorbis at compression levels from clearly audible to
    near transparent, some of it band-limited first as a 32 kHz codec leaves it, with clean music
    in each batch that it must leave alone (see ``assets/models/MODEL_CARD.md``).

    Trade-off: the fill follows the neighbourhood's level, not the lost notes: it makes a hole
    as loud as its surroundings, with the residue's phase, which does not restore what was there.
    A band the coder cut off entirely has no neighbourhood and stays empty. The filter can only
    rebuild what neighbouring frames still hold; the fine structure a coder replaced with noise
    of the same energy is gone from all of them.

    Reference: codec artifact removal as in J. Deng et al., "Exploiting Time-Frequency
    Patterns with LSTM-RNNs for Low-Bitrate Audio Restoration", Neural Computing and
    Applications, 2020; the masking U-Net of ``unet_denoise``; deep filtering as in W. Mack and
    E. Habets, "Deep Filtering: Signal Extraction and Reconstruction Using Complex
    Time-Frequency Filters", IEEE Signal Processing Letters, 2020, and H. Schroeter et al.,
    "DeepFilterNet", ICASSP 2022.
    """

    name = "unet_codec"
    task = "codec"
    description = "Our spectral U-Net (trained, shipped): removes lossy-codec noise and fills the holes a coder leaves."
    Params = UNetCodecParams


class UNetBandwidthExtension(_SpectralUNet):
    """Spectral band replication whose envelope and tonality a spectral U-Net shapes.

    Method: above the measured cutoff bin ``kc`` the input's STFT gets ``G E X[o(k)]``,
    where ``o(k)`` copies from the band below the cutoff with a shift that is a
    multiple of ``n_fft / hop`` bins (the copy keeps coherent phase, so it is not
    shaped noise), ``E`` is ``bandwidth_extension_dsp``'s continued envelope and
    ``G`` the network's correction (within +-20 dB) for every cell above the
    cutoff. A 100 dB linear-phase high-pass on what was added keeps the band
    below the cutoff untouched. Input without a codec-like cliff is returned as is.

    Trade-off: the copy's harmonics are the band below's, shifted; the network
    can damp or keep them but not invent new ones.

    Reference: SBR as in M. Dietz et al., "Spectral Band Replication", AES 112th
    Convention, 2002; learned envelope in the spirit of H. Liu et al., "Neural
    Vocoder is All You Need for Speech Super-resolution" (NVSR), Interspeech 2022.
    """

    name = "unet_bwe"
    task = "bwe"
    goal = "extend"
    description = "Our spectral U-Net (trained, shipped): band replication above the cutoff, shaped by the network."
    Params = UNetBandwidthExtensionParams


@dataclass(frozen=True)
class UNetRestoreParams(RestorerParams):
    """Which checkpoints the chain uses.

    Attributes:
        denoise_representation, bwe_representation: ``linear`` or ``mel`` for each stage;
            by default each stage's own default (Mel for both).
    """

    denoise_representation: str = UNetDenoiseParams.representation
    bwe_representation: str = UNetBandwidthExtensionParams.representation

    def __post_init__(self) -> None:
        super().__post_init__()
        for value in (self.denoise_representation, self.bwe_representation):
            if value not in ("linear", "mel"):
                raise ValueError(f"representations must be linear or mel, got {value!r}")


class UNetRestore(Restorer):
    """Our two U-Nets side by side, for MusicGen output: the denoised input plus the band the
    extension generates from the input as it came.

    Method: ``unet_denoise(x) + (unet_bwe(x) - x)``. Below the cutoff this is the denoiser's
    output exactly (the extension adds nothing there); above it, the band the extension
    generates. The chain chunks the input once for both stages (each chunk goes through the
    denoiser and the extension, then the next), with each stage's whole-input statistics, measured
    once when the two share a front end.

    Trade-off: the new band is made from the input, hiss included, and only the extension's
    envelope shapes that hiss; but that is the input the extension was trained on (a share of
    its excerpts went through the MusicGen-like chain), where the denoised band, darker at its
    top, is not. Run in a row (extending the denoised input), the chain's LSD on the
    MusicGen-like chain was 1.69 with the linear extension and 1.76 with the Mel one (earlier
    denoisers); side by side it is 1.64 with the same checkpoints, 1.55 with the current ones.

    Reference: the two stages' own (``unet_denoise``, ``unet_bwe``).
    """

    name = "unet_restore"
    kind = "neural"
    goal = "extend"  # its denoising is judged against references (restorelab evaluate --preset)
    default_chunk_s = _SpectralUNet.default_chunk_s  # handed on to both stages
    description = ("Our U-Nets together for MusicGen output: the denoised input plus the band extended "
                   "above the codec's cutoff.")
    Params = UNetRestoreParams

    def __init__(self, params: UNetRestoreParams | None = None, *, stages: tuple[Restorer, Restorer] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        p = self.params
        self._stages = stages or (UNetDenoise(representation=p.denoise_representation, chunk_s=self.chunk_s),
                                  UNetBandwidthExtension(representation=p.bwe_representation, chunk_s=self.chunk_s))

    @classmethod
    def availability_for(cls, params: UNetRestoreParams) -> Availability:
        for stage, representation in ((UNetDenoise, params.denoise_representation),
                                      (UNetBandwidthExtension, params.bwe_representation)):
            availability = stage.availability_for(stage.Params(representation=representation))
            if not availability.available:
                return availability
        return Availability(True)

    @classmethod
    def tiny(cls, **overrides: Any) -> "UNetRestore":
        chain = cls(**overrides)
        p = chain.params
        chain._stages = (UNetDenoise.tiny(representation=p.denoise_representation, chunk_s=chain.chunk_s),
                         UNetBandwidthExtension.tiny(representation=p.bwe_representation, chunk_s=chain.chunk_s))
        return chain

    @property
    def context_s(self) -> float:
        return max(stage.context_s for stage in self._stages)

    def _fit(self, audio: np.ndarray, sample_rate: int) -> tuple[Any, Any]:
        """Each stage's whole-input statistics; measured once when both U-Nets share a front end
        (STFT and rate), where the two measurements are the same."""
        denoise, extend = self._stages
        fitted = denoise._fit(audio, sample_rate)
        if isinstance(denoise, _SpectralUNet) and isinstance(extend, _SpectralUNet):
            a, b = denoise._load().config, extend._load().config
            if (a.n_fft, a.hop, a.sample_rate) == (b.n_fft, b.hop, b.sample_rate):
                return fitted, fitted
        return fitted, extend._fit(audio, sample_rate)

    def _chunk_multiple(self, sample_rate: int) -> int:
        return math.lcm(*(stage._chunk_multiple(sample_rate) for stage in self._stages))

    def parts(self) -> tuple[Restorer, Restorer]:
        """The denoiser and the extension: a comparison that runs both adds their outputs."""
        return self._stages

    def _combine(self, audio: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
        """``denoised + extended - audio``, as :meth:`_process` adds them per chunk."""
        denoised, extended = outputs
        out = denoised.copy()
        out += extended
        out -= audio
        return out

    def _process(self, audio: np.ndarray, sample_rate: int, fitted: tuple[Any, Any]) -> np.ndarray:
        """Both stages on one chunk: chunked once for the two, so a long input holds one output, not three."""
        (denoise, extend), (denoised_fit, extended_fit) = self._stages, fitted
        out = denoise._process(audio, sample_rate, denoised_fit)
        if np.shares_memory(out, audio):  # a stage may hand back its input: never write into the caller's
            out = out.copy()
        out += extend._process(audio, sample_rate, extended_fit)  # in place: one chunk's arrays
        out -= audio
        return out
