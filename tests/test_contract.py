"""The restorer contract, checked over every registered restorer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import SR, add_noise, melody
from restorelab.analysis import GOALS
from restorers import REGISTRY, Restorer, get_restorer, restorer_class, restorer_info


def make(name: str, **params):
    """Every member through the real code path: neural ones with tiny random weights."""
    return restorer_class(name).tiny(**params)


NAMES = list(REGISTRY)
#: Digital silence in must come out below one 24-bit step (it stores as exact zeros).
SILENCE_LEVEL = 2.0 ** -24


@pytest.fixture(scope="module")
def stereo() -> np.ndarray:
    rng = np.random.default_rng(7)
    left = add_noise(melody(3.0, seed=1), 20, rng)
    right = add_noise(melody(3.0, seed=2), 20, rng)
    return np.stack([left, right])


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_finite(name, stereo):
    restorer = make(name)
    for audio in (stereo, stereo[:1], stereo[0]):
        out = restorer(audio, SR)
        assert out.shape == audio.shape
        assert out.dtype == np.float32
        assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", NAMES)
def test_float64_in_float64_out(name, stereo):
    out = make(name)(stereo.astype(np.float64), SR)
    assert out.dtype == np.float64 and out.shape == stereo.shape


@pytest.mark.parametrize("name", NAMES)
def test_input_not_mutated(name, stereo):
    before = stereo.copy()
    make(name)(stereo, SR)
    np.testing.assert_array_equal(stereo, before)


@pytest.mark.parametrize("name", NAMES)
def test_silence_in_silence_out(name):
    out = make(name)(np.zeros((2, SR), np.float32), SR)
    assert np.max(np.abs(out)) < SILENCE_LEVEL


@pytest.mark.parametrize("name", NAMES)
def test_mix_zero_is_exact_identity(name, stereo):
    out = make(name, mix=0.0)(stereo, SR)
    np.testing.assert_array_equal(out, stereo)
    assert out is not stereo


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mix", [0.25, 0.5])
def test_mix_weighs_wet_and_dry(name, mix, stereo):
    """``mix`` of the output is wet: at 0.25, a quarter wet and three quarters dry (at 0.5 a swap
    of the two would not show)."""
    wet = make(name)(stereo, SR)
    mixed = make(name, mix=mix)(stereo, SR)
    np.testing.assert_allclose(mixed, mix * wet + (1 - mix) * stereo, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name, stereo):
    first = make(name)(stereo, SR)
    second = make(name)(stereo, SR)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", NAMES)
def test_stereo_is_never_mixed_down(name, stereo):
    """Different channels stay different; per-channel methods swap outputs when channels swap."""
    out = make(name)(stereo, SR)
    assert np.max(np.abs(out[0] - out[1])) > 1e-3
    if restorer_class(name).channels_independent:
        swapped = make(name)(stereo[::-1].copy(), SR)
        np.testing.assert_allclose(swapped, out[::-1], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_params_are_frozen_dataclasses_with_validated_mix(name):
    cls = restorer_class(name)
    params = cls.Params()
    assert dataclasses.is_dataclass(params)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'mix'"):
        params.mix = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match="mix"):
        cls.Params(mix=1.5)


@pytest.mark.parametrize("name", NAMES)
def test_listing_row(name):
    row = restorer_info(name)
    assert set(row) == {"name", "kind", "goal", "available", "reason", "description"}
    assert row["kind"] in ("dsp", "neural")
    assert row["goal"] in GOALS
    assert row["available"] or row["reason"]
    assert row["description"]


@pytest.mark.parametrize("bad, message", [(np.array([[np.nan] * 100], np.float32), "NaN or Inf"),
                                          (np.zeros((1, 0), np.float32), "no samples"),
                                          (np.zeros((2, 3, 4), np.float32), r"\[channels, samples\].*\(2, 3, 4\)"),
                                          (np.zeros((1, 100), np.int16), "floating point, got int16")])
def test_bad_arrays_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        get_restorer("passthrough")(bad, SR)


def test_unknown_name_lists_known_ones():
    with pytest.raises(KeyError, match="spectral_gate_hf"):
        get_restorer("no_such_restorer")


def test_unknown_parameter_is_rejected():
    with pytest.raises(TypeError, match="unexpected keyword argument 'no_such_knob'"):
        get_restorer("spectral_subtraction_hf", no_such_knob=1.0)
    with pytest.raises(ValueError, match="known"):
        restorer_class("spectral_subtraction_hf").parse_overrides({"no_such_knob": "1"})


def test_parse_overrides_types():
    typed = restorer_class("spectral_gate").parse_overrides(
        {"stationary": "false", "prop_decrease": "0.5", "n_fft": "1024"})
    assert typed == {"stationary": False, "prop_decrease": 0.5, "n_fft": 1024}


def test_every_member_documents_method_tradeoff_and_reference():
    for cls in REGISTRY.values():
        assert issubclass(cls, Restorer)
        doc = cls.__doc__ or ""
        if cls.name != "passthrough":
            assert "Method:" in doc and "Trade-off:" in doc and "Reference:" in doc, cls.name
