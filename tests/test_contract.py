"""The restorer contract, checked over every registered restorer."""

from __future__ import annotations

import dataclasses
import re

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
    with pytest.raises(ValueError, match=r"^mix must be in \[0, 1\], got 1.5$"):
        cls.Params(mix=1.5)


@pytest.mark.parametrize("name", NAMES)
def test_every_numeric_parameter_has_a_range_that_refuses_values_outside_it(name):
    """Each number a user can set is bounded: the default lies inside its range, and a value just
    outside either end is refused by the dataclass, naming the parameter and the range."""
    cls = restorer_class(name)
    defaults = cls.Params()
    for item in dataclasses.fields(cls.Params):
        value = getattr(defaults, item.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        assert item.name in cls.Params.RANGES, f"{name}.{item.name} has no range"
        low, high = cls.Params.RANGES[item.name]
        assert low <= value <= high
        step = 1 if isinstance(value, int) else max(1e-6, 1e-6 * (high - low))
        for outside in (low - step, high + step):
            outside = type(value)(outside)
            shown = [str(x) if isinstance(x, int) else f"{x:g}" for x in (low, high)]
            with pytest.raises(ValueError, match="^" + re.escape(f"{item.name} must be in [{shown[0]}, {shown[1]}], got ")):
                cls.Params(**{item.name: outside})


@pytest.mark.parametrize("name", NAMES)
def test_listing_row(name):
    row = restorer_info(name)
    assert set(row) == {"name", "kind", "goal", "available", "reason", "description"}
    assert row["kind"] in ("dsp", "neural")
    assert row["goal"] in GOALS
    assert row["available"] or row["reason"]
    assert row["description"]


#: Members that say which restorers their output is made of (checked for the rest below: none).
MADE_OF_PARTS = [name for name in NAMES if restorer_class(name).parts is not Restorer.parts]


def test_some_member_is_made_of_others_and_the_rest_of_none():
    assert MADE_OF_PARTS == ["unet_restore"]
    assert not any(make(name).parts() for name in NAMES if name not in MADE_OF_PARTS)


@pytest.mark.parametrize("name", MADE_OF_PARTS)
@pytest.mark.parametrize("mix", [1.0, 0.25, 0.0])
def test_a_member_made_of_parts_gives_its_own_output_from_theirs(name, mix, stereo):
    """What a comparison that runs the parts anyway shows: the same numbers (the clip is one chunk)
    for every channel layout, with the member's own mix."""
    restorer = make(name, mix=mix)
    for audio in (stereo, stereo[:1], stereo[0], stereo.astype(np.float64)):
        outputs = [part(audio, SR) for part in restorer.parts()]
        built = restorer.from_parts(audio, SR, outputs)
        np.testing.assert_array_equal(built, restorer(audio, SR))
        assert built.dtype == audio.dtype


@pytest.mark.parametrize("name", MADE_OF_PARTS)
def test_a_member_made_of_parts_refuses_outputs_that_do_not_fit(name, stereo):
    restorer = make(name)
    outputs = [part(stereo, SR) for part in restorer.parts()]
    with pytest.raises(ValueError, match="outputs shaped like its input"):
        restorer.from_parts(stereo, SR, outputs[:-1])
    with pytest.raises(ValueError, match="outputs shaped like its input"):
        restorer.from_parts(stereo, SR, [out[:, :-1] for out in outputs])
    with pytest.raises(ValueError, match="NaN or Inf"):
        restorer.from_parts(np.full_like(stereo, np.nan), SR, outputs)
    assert not make("spectral_gate").parts()
    with pytest.raises(NotImplementedError):
        make("spectral_gate")._combine(stereo, [])


def test_restore_all_builds_a_member_from_the_parts_before_it_and_runs_it_when_they_come_after(
        stereo, chain_runs):
    """With the shipped networks (a tiny member's parts are networks of its own, like no other)."""
    from restorers import build_available, restore_all

    names = ["unet_denoise", "unet_bwe", "unet_restore"]
    restorers, _ = build_available(names)
    alone = {name: restorer(stereo, SR) for name, restorer in restorers.items()}
    chain_runs.clear()
    outputs = restore_all(restorers, stereo, SR)
    assert list(outputs) == names and not chain_runs
    for name in names:
        np.testing.assert_array_equal(outputs[name], alone[name])
    chain_first = {name: restorers[name] for name in reversed(names)}
    np.testing.assert_array_equal(restore_all(chain_first, stereo, SR)["unet_restore"], alone["unet_restore"])
    assert len(chain_runs) == 1


def test_same_as_needs_one_class_equal_parameters_chunking_and_network():
    gate = restorer_class("spectral_gate")
    assert gate().same_as(gate()) and not gate().same_as(gate(mix=0.5))
    assert not gate().same_as(gate(chunk_s=5.0)) and not gate().same_as(restorer_class("spectral_gate_hf")())
    unet = restorer_class("unet_denoise")
    assert unet().same_as(unet()) and not unet().same_as(unet(representation="linear"))
    tiny = unet.tiny()
    assert not tiny.same_as(unet.tiny()) and not tiny.same_as(unet())  # a network of its own: only itself
    assert tiny.same_as(tiny)


@pytest.mark.parametrize("bad, message", [(np.array([[np.nan] * 100], np.float32), "^audio contains NaN or Inf samples$"),
                                          (np.zeros((1, 0), np.float32), "^audio has no samples$"),
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


def test_command_line_values_take_each_fields_type():
    from restorers.base import coerce_value

    declared = dataclasses.make_dataclass("Declared", [("flag", bool, False), ("count", int, 1), ("level", float, 1.0),
                                                       ("label", str, "")])
    postponed = dataclasses.make_dataclass("Postponed", [("flag", "bool", False), ("count", "int", 1)])
    for cls in (declared, postponed):  # real types, and types as text (``from __future__ import annotations``)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for word in ("1", "true", "Yes", " ON "):
            assert coerce_value(fields["flag"], word) is True
        for word in ("0", "False", "no", "off"):
            assert coerce_value(fields["flag"], word) is False
        with pytest.raises(ValueError, match="^flag expects true or false, got 'maybe'$"):
            coerce_value(fields["flag"], "maybe")
        assert coerce_value(fields["count"], "7") == 7 and type(coerce_value(fields["count"], "7")) is int
    fields = {f.name: f for f in dataclasses.fields(declared)}
    assert coerce_value(fields["level"], "2.5") == 2.5 and coerce_value(fields["label"], "x=1") == "x=1"


def test_fft_sizes_must_be_powers_of_two_from_the_minimum():
    from restorers.base import check_fft_size

    for good in (256, 512, 4096):
        check_fft_size(good)
    for bad in (128, 255, 257, 384):
        with pytest.raises(ValueError, match=f"^n_fft must be a power of two >= 256, got {bad}$"):
            check_fft_size(bad)
    with pytest.raises(ValueError, match="^n_fft must be a power of two >= 512, got 256$"):
        check_fft_size(256, minimum=512)


def test_an_unknown_parameter_lists_every_known_one():
    cls = restorer_class("spectral_gate_hf")
    known = ", ".join(sorted(f.name for f in dataclasses.fields(cls.Params)))
    with pytest.raises(ValueError, match="^" + re.escape(f"spectral_gate_hf has no parameter 'nope'; known: {known}") + "$"):
        cls.parse_overrides({"nope": "1"})


def test_chunks_start_at_zero_follow_each_other_and_keep_to_their_multiple():
    restorer = get_restorer("spectral_gate_hf")
    restorer.chunk_s = 5.0
    assert list(restorer.blocks(12, 1)) == [(0, 5), (5, 10), (10, 12)]
    assert list(restorer.blocks(12, 1, multiple=2)) == [(0, 4), (4, 8), (8, 12)]
    assert list(restorer.blocks(12, 1, multiple=8)) == [(0, 8), (8, 12)]  # never below one multiple


@pytest.mark.parametrize("rate", [0, -44100, None])
def test_a_sample_rate_that_is_not_positive_is_refused(rate):
    with pytest.raises(ValueError, match=f"^sample_rate must be positive, got {rate}$"):
        get_restorer("passthrough")(np.zeros((1, 100), np.float32), rate)
    assert get_restorer("passthrough")(np.ones((1, 100), np.float32), 1).shape == (1, 100)  # any positive rate


@pytest.mark.parametrize("name", NAMES)
def test_every_float_parameter_refuses_a_value_that_is_not_finite(name):
    cls = restorer_class(name)
    for item in dataclasses.fields(cls.Params):
        if isinstance(getattr(cls.Params(), item.name), float):
            with pytest.raises(ValueError, match=f"^{item.name} must be a finite number, got nan$"):
                cls.Params(**{item.name: float("nan")})


def test_settings_and_overrides_combine_and_the_wrong_settings_are_named():
    cls = restorer_class("spectral_gate_hf")
    restorer = cls(cls.Params(mix=0.5, crossover_hz=5000.0), mix=0.25)
    assert restorer.params == cls.Params(mix=0.25, crossover_hz=5000.0)  # the override wins, the rest is kept
    with pytest.raises(TypeError, match="^spectral_gate_hf takes SpectralGateHFParams, got McraWienerParams$"):
        cls(restorer_class("mcra_wiener").Params())
    with pytest.raises(ValueError, match="^chunk_s must be positive, got 0.0$"):
        cls(chunk_s=0)
    assert cls(chunk_s=0.5).chunk_s == 0.5


class _Broken(Restorer):
    name = "broken"

    def __init__(self, answer, **kwargs):
        super().__init__(**kwargs)
        self.answer = answer

    def _process(self, audio, sample_rate, fitted):
        return self.answer(audio)


def test_a_restorer_that_breaks_the_contract_is_caught_and_named():
    x = np.zeros((1, 100), np.float32)
    with pytest.raises(RuntimeError, match=r"^broken returned shape \(1, 99\) for input \(1, 100\)$"):
        _Broken(lambda a: a[:, :-1])(x, SR)
    with pytest.raises(RuntimeError, match="^broken produced non-finite samples$"):
        _Broken(lambda a: np.full_like(a, np.nan))(x, SR)


def test_missing_module_names_the_first_package_not_installed(monkeypatch):
    import sys

    from restorers.base import missing_module

    assert missing_module("numpy", "scipy") is None
    assert missing_module("numpy", "no_such_package_here", "scipy") == "no_such_package_here"
    monkeypatch.setitem(sys.modules, "scipy", None)  # how a test or a shim hides an installed package
    assert missing_module("scipy") == "scipy"
