"""MusicGen generation through the real transformers path, on a tiny random-weight model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from restorelab.audio import WORKING_RATE  # noqa: E402
from restorelab.generation import TINY, GenerationRequest, Generator  # noqa: E402


@pytest.fixture(scope="module")
def generator():
    return Generator(local_files_only=True)


@pytest.mark.parametrize("duration_s", [0.5, 1.3])
def test_tiny_model_generates_the_requested_duration(generator, duration_s):
    seen = []
    clip = generator.generate(GenerationRequest(TINY, "lofi piano", duration_s=duration_s, seed=1),
                              progress=lambda fraction, stage: seen.append((fraction, stage)))
    assert clip.sample_rate == WORKING_RATE and clip.audio.dtype == np.float32
    assert clip.audio.shape == (1, int(round(duration_s * WORKING_RATE)))
    assert np.all(np.isfinite(clip.audio)) and np.max(np.abs(clip.audio)) > 0
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and seen[-1][1] == "decoding audio"


def test_same_request_same_clip_other_seed_other_clip(generator):
    a = generator.generate(GenerationRequest(TINY, "calm guitar", duration_s=0.5, seed=3))
    b = Generator().generate(GenerationRequest(TINY, "calm guitar", duration_s=0.5, seed=3))
    c = generator.generate(GenerationRequest(TINY, "calm guitar", duration_s=0.5, seed=4))
    np.testing.assert_array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)
    assert generator.generate(GenerationRequest(TINY, "calm guitar", duration_s=0.5, seed=3)) is a


def test_missing_weights_are_reported_not_raised(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    generator = Generator(local_files_only=True)
    available, reason = generator.availability("small")
    assert not available
    assert "facebook/musicgen-small" in reason and "HF_HOME" in reason
    with pytest.raises(RuntimeError, match="not in the local Hugging Face cache"):
        generator.generate(GenerationRequest("small", "lofi piano", duration_s=1.0))


@pytest.mark.parametrize("bad, message", [(dict(model="nope"), "unknown model 'nope'"),
                                          (dict(prompt="  "), "the prompt is empty"),
                                          (dict(duration_s=60.0), r"duration_s must be in \[0.5, 30\], got 60"),
                                          (dict(guidance_scale=0.5), "guidance_scale must be >= 1"),
                                          (dict(model="small", melody=(np.zeros((1, 10)), 32000)),
                                           "a melody needs a melody model")])
def test_bad_requests(bad, message):
    fields = dict(model=TINY, prompt="piano", duration_s=1.0)
    fields.update(bad)
    with pytest.raises(ValueError, match=message):
        GenerationRequest(**fields)
