"""MusicGen text-to-music through ``transformers``, entering the working rate once.

``Generator`` loads a checkpoint lazily on first use (the Hugging Face cache
first, the hub where it can be reached) and keeps it for the process. Where
the weights cannot be had, :meth:`Generator.availability` says so and how to
fix it, and nothing else in the app is affected. :func:`tiny_musicgen` builds a
random-weight model from small configs with an offline tokenizer, so tests run
the real generate-and-decode path without any download.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from restorelab.audio import WORKING_RATE, Clip, resample

MODELS = {
    "small": "facebook/musicgen-small",
    "medium": "facebook/musicgen-medium",
    "large": "facebook/musicgen-large",
    "melody": "facebook/musicgen-melody",
    "stereo-small": "facebook/musicgen-stereo-small",
    "stereo-medium": "facebook/musicgen-stereo-medium",
    "stereo-large": "facebook/musicgen-stereo-large",
    "stereo-melody": "facebook/musicgen-stereo-melody",
}
#: Name of the built-in random-weight model (noise with MusicGen's shape; for tests and demos).
TINY = "tiny-random"
MAX_DURATION_S = 30.0
FRAME_RATE_HZ = 50

ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that determines a generated clip (and so its cache key).

    Attributes:
        model: a key of :data:`MODELS` or :data:`TINY`.
        prompt: the text description.
        duration_s: length of the clip (0.5 to 30 s).
        seed: seeds the sampler; the same request gives the same clip.
        guidance_scale: classifier-free guidance; higher follows the prompt more
            closely at the cost of variety.
        temperature, top_k: sampling settings.
        melody: for the melody models, ``(audio [channels, samples], sample_rate)``.
    """

    model: str
    prompt: str
    duration_s: float = 8.0
    seed: int = 0
    guidance_scale: float = 3.0
    temperature: float = 1.0
    top_k: int = 250
    melody: tuple[np.ndarray, int] | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS and self.model != TINY:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join([*MODELS, TINY])}")
        if not self.prompt.strip():
            raise ValueError("the prompt is empty")
        if not 0.5 <= self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration_s must be in [0.5, {MAX_DURATION_S:g}], got {self.duration_s}")
        if self.guidance_scale < 1.0:
            raise ValueError(f"guidance_scale must be >= 1, got {self.guidance_scale}")
        if self.temperature <= 0 or self.top_k < 0:
            raise ValueError("temperature must be positive and top_k >= 0")
        if self.melody is not None and "melody" not in self.model:
            raise ValueError(f"a melody needs a melody model, not {self.model!r}")

    def cache_key(self) -> str:
        digest = hashlib.sha256()
        digest.update(repr((self.model, self.prompt, self.duration_s, self.seed, self.guidance_scale,
                            self.temperature, self.top_k)).encode())
        if self.melody is not None:
            digest.update(np.ascontiguousarray(self.melody[0]).tobytes())
            digest.update(str(self.melody[1]).encode())
        return digest.hexdigest()


def tiny_musicgen(seed: int = 0):
    """A random-weight MusicGen (one-layer T5, 32 kHz EnCodec with 4 codebooks of 64, one-layer decoder).

    Returns ``(model, processor)``; the tokenizer is a word-level one built in
    memory, so nothing is downloaded.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (EncodecConfig, EncodecFeatureExtractor, MusicgenConfig, MusicgenDecoderConfig,
                              MusicgenForConditionalGeneration, MusicgenProcessor, PreTrainedTokenizerFast,
                              T5Config)

    words = "a an and the with of in music song beat lofi piano drums guitar synth calm upbeat slow fast".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    text = T5Config(vocab_size=len(vocab), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                    decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    audio = EncodecConfig(sampling_rate=32000, audio_channels=1, codebook_size=64, codebook_dim=16,
                          hidden_size=16, num_filters=4, upsampling_ratios=[8, 5, 4, 4],
                          target_bandwidths=[1.2], num_lstm_layers=1, num_residual_layers=1)
    decoder = MusicgenDecoderConfig(vocab_size=64, num_codebooks=4, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, ffn_dim=32, pad_token_id=64, bos_token_id=64,
                                    max_position_embeddings=2048)
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(config).eval()
    # EnCodec's codebooks are buffers that start as zeros (a checkpoint fills
    # them); random ones make each code decode to a different sound.
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")
    processor = MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(sampling_rate=32000), tokenizer=fast)
    return model, processor


def _progress_processor(total_steps: int, callback: ProgressCallback):
    """A logits processor that leaves the scores alone and reports each generated step.

    (MusicGen's ``generate`` does not pass a ``streamer`` on to its sampling
    loop; logits processors run once per step.)
    """
    from transformers import LogitsProcessor

    class Progress(LogitsProcessor):
        def __init__(self) -> None:
            self.steps = 0

        def __call__(self, input_ids, scores):
            self.steps += 1
            callback(min(1.0, self.steps / max(1, total_steps)) * 0.95, "generating tokens")
            return scores

    return Progress()


class Generator:
    """Lazy, cached MusicGen. One instance per process is enough; it is thread-safe.

    Args:
        local_files_only: never reach the hub (what an offline machine needs).
        cache_size: generated clips kept in memory, keyed by request.
    """

    def __init__(self, local_files_only: bool = False, cache_size: int = 16) -> None:
        self.local_files_only = local_files_only
        self._models: dict[str, tuple] = {}
        self._failures: dict[str, str] = {}
        self._clips: OrderedDict[str, Clip] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @staticmethod
    def device() -> str:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def availability(self, model: str) -> tuple[bool, str]:
        """Whether ``model`` can generate here; if not, why and how to fix it (loads it to find out)."""
        try:
            self._load(model)
        except RuntimeError as exc:
            return False, str(exc)
        return True, ""

    def _load(self, name: str):
        with self._lock:
            if name in self._models:
                return self._models[name]
            if name in self._failures:
                raise RuntimeError(self._failures[name])
            try:
                loaded = tiny_musicgen() if name == TINY else self._from_pretrained(MODELS[name])
            except ImportError as exc:
                missing = " ".join(str(exc).split())
                self._failures[name] = (f"{name} needs a package that is not installed: {missing} "
                                        "(the melody models need torchaudio for their chroma features)")
                raise RuntimeError(self._failures[name]) from None
            except OSError as exc:
                self._failures[name] = (
                    f"the weights of {MODELS[name]} are not in the local Hugging Face cache and could not be "
                    f"downloaded ({type(exc).__name__}). Run once with internet access, or point HF_HOME at a "
                    "cache that has them; everything else in the app works without them.")
                raise RuntimeError(self._failures[name]) from None
            self._models[name] = loaded
            return loaded

    def _from_pretrained(self, repo_id: str):
        import torch
        from transformers import AutoProcessor, MusicgenForConditionalGeneration, MusicgenMelodyForConditionalGeneration

        cls = MusicgenMelodyForConditionalGeneration if "melody" in repo_id else MusicgenForConditionalGeneration
        device = self.device()
        dtype = torch.float16 if device == "cuda" else torch.float32

        def load(local_only: bool):
            model = cls.from_pretrained(repo_id, torch_dtype=dtype, local_files_only=local_only)
            processor = AutoProcessor.from_pretrained(repo_id, local_files_only=local_only)
            return model.to(device).eval(), processor

        # The local cache first: instant when the weights are there, and no
        # network retries (half a minute offline) when they are not needed.
        try:
            return load(local_only=True)
        except OSError:
            if self.local_files_only:
                raise
        return load(local_only=False)

    def generate(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> Clip:
        """Generate (or fetch from the cache) a clip at the working rate, channels as the model makes them.

        Raises:
            RuntimeError: the model is unavailable (the message says why and how to fix it).
        """
        key = request.cache_key()
        with self._lock:
            if key in self._clips:
                self._clips.move_to_end(key)
                return self._clips[key]
        import torch

        model, processor = self._load(request.model)
        device = next(model.parameters()).device
        kwargs = {"text": [request.prompt], "padding": True, "return_tensors": "pt"}
        if request.melody is not None:
            melody, rate = request.melody
            target = processor.feature_extractor.sampling_rate  # the chroma extractor wants its own rate
            mono = resample(np.atleast_2d(np.asarray(melody, dtype=np.float32)).mean(axis=0, keepdims=True), rate, target)
            kwargs.update(audio=[mono[0]], sampling_rate=target)
        inputs = {k: v.to(device) for k, v in processor(**kwargs).items()}
        n_codebooks = model.decoder.config.num_codebooks
        frames = int(np.ceil(request.duration_s * FRAME_RATE_HZ))
        # The delay pattern staggers codebooks by one frame each: generate that many extra steps.
        steps = frames + n_codebooks - 1
        torch.manual_seed(request.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(request.seed)
        extra = {}
        if progress is not None:
            from transformers import LogitsProcessorList

            extra["logits_processor"] = LogitsProcessorList([_progress_processor(steps, progress)])
        with torch.inference_mode():
            values = model.generate(**inputs, do_sample=True, guidance_scale=request.guidance_scale,
                                    temperature=request.temperature, top_k=request.top_k, max_new_tokens=steps,
                                    **extra)
        if progress is not None:
            progress(1.0, "decoding audio")
        rate = model.config.audio_encoder.sampling_rate
        audio = values[0].float().cpu().numpy()
        audio = audio[:, : int(round(request.duration_s * rate))]
        if audio.shape[-1] < int(round(request.duration_s * rate)):
            audio = np.pad(audio, ((0, 0), (0, int(round(request.duration_s * rate)) - audio.shape[-1])))
        notes = [f"MusicGen {request.model} on {device.type}"
                 + ("" if device.type == "cuda" else " (CPU: expect minutes for real checkpoints)")]
        working = resample(audio.astype(np.float32), rate, WORKING_RATE)
        clip = Clip(audio=working, sample_rate=WORKING_RATE, source=f"musicgen:{request.model}-{key[:12]}",
                    source_rate=rate, notes=notes, origin="musicgen", prompt=request.prompt)
        with self._lock:
            self._clips[key] = clip
            while len(self._clips) > self._cache_size:
                self._clips.popitem(last=False)
        return clip
