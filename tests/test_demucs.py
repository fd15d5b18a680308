"""Demucs separate-and-remix through the real apply_model path, on a tiny random HT-Demucs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("demucs")

from conftest import SR, melody  # noqa: E402
from restorers import build_available, get_restorer  # noqa: E402
from restorers.demucs_remix import DemucsRemix  # noqa: E402


@pytest.fixture(scope="module")
def stereo():
    return np.stack([melody(2.0, seed=1), melody(2.0, seed=2)])


def test_remix_is_linear_in_each_stem_gain(stereo):
    """Doubling the drums (+6.02 dB) adds exactly what muting them removes: the drums stem."""
    muted = DemucsRemix.tiny(drums_gain_db=-400.0)(stereo, SR).astype(np.float64)
    unity = DemucsRemix.tiny()(stereo, SR).astype(np.float64)
    doubled = DemucsRemix.tiny(drums_gain_db=20 * np.log10(2))(stereo, SR).astype(np.float64)
    drums = unity - muted
    assert np.max(np.abs(drums)) > 1e-4
    np.testing.assert_allclose(doubled - unity, drums, atol=1e-5)


def test_all_stems_muted_is_silence(stereo):
    silent = DemucsRemix.tiny(vocals_gain_db=-400, drums_gain_db=-400, bass_gain_db=-400,
                              other_gain_db=-400)(stereo, SR)
    assert np.max(np.abs(silent)) < 1e-9


def test_gating_the_accompaniment_changes_only_what_it_should(stereo):
    plain = DemucsRemix.tiny()(stereo, SR)
    gated = DemucsRemix.tiny(gate_accompaniment=0.8)(stereo, SR)
    assert gated.shape == plain.shape and not np.allclose(gated, plain)
    vocals_only = dict(drums_gain_db=-400, bass_gain_db=-400, other_gain_db=-400)
    np.testing.assert_allclose(DemucsRemix.tiny(gate_accompaniment=0.8, **vocals_only)(stereo, SR),
                               DemucsRemix.tiny(**vocals_only)(stereo, SR), atol=1e-6)


def test_missing_weights_are_reported(tmp_path, stereo, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    availability = DemucsRemix.availability()
    assert not availability.available and "python -m demucs -n htdemucs" in availability.reason
    with pytest.raises(RuntimeError, match="unavailable"):
        get_restorer("demucs_remix")(stereo, SR)
    restorers, skipped = build_available(["demucs_remix"], {"demucs_remix": {"model_dir": str(tmp_path)}})
    assert restorers == {} and str(tmp_path) in skipped["demucs_remix"]


def test_the_weight_cache_is_found_where_demucs_and_torch_look_without_importing_them(monkeypatch, tmp_path):
    import torch
    from demucs.hf import hf_repo_name

    from restorers import demucs_remix

    for name in ("htdemucs", "htdemucs_ft", "htdemucs_6s", "hdemucs_mmi", "mdx_extra_q"):
        assert demucs_remix._hf_repository(name) == hf_repo_name(name)
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demucs_remix._torch_hub_dir() == Path(torch.hub.get_dir())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert demucs_remix._torch_hub_dir() == Path(torch.hub.get_dir()) == tmp_path / "th" / "hub"


@pytest.mark.parametrize("env", [{}, {"XDG_CACHE_HOME": "xdg"}, {"HF_HOME": "home", "XDG_CACHE_HOME": "xdg"},
                                 {"HUGGINGFACE_HUB_CACHE": "legacy", "HF_HOME": "home"},
                                 {"HF_HUB_CACHE": "hub", "HUGGINGFACE_HUB_CACHE": "legacy"}])
def test_the_hugging_face_cache_is_where_huggingface_hub_looks(monkeypatch, tmp_path, env):
    """Worked out as huggingface_hub does (its constants, read in a fresh process), and named as it
    names a model's folder."""
    import json
    import subprocess
    import sys

    from huggingface_hub.file_download import repo_folder_name

    from restorers import demucs_remix

    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    for name, folder in env.items():
        monkeypatch.setenv(name, str(tmp_path / folder))
    theirs = subprocess.run([sys.executable, "-c", "import json, huggingface_hub.constants as c; "
                             "print(json.dumps(c.HF_HUB_CACHE))"], capture_output=True, text=True, check=True)
    assert demucs_remix._hf_hub_cache() == Path(json.loads(theirs.stdout))
    assert repo_folder_name(repo_id="adefossez/HTDemucs", repo_type="model") == "models--adefossez--HTDemucs"


def test_weights_in_the_hugging_face_cache_are_found(monkeypatch, tmp_path):
    """A complete snapshot in the cache is used; a model folder without one is not."""
    from restorers import demucs_remix

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert demucs_remix._cached_weights("htdemucs", "") == ""  # an empty cache
    folder = tmp_path / "models--adefossez--HTDemucs"
    (folder / "refs").mkdir(parents=True)
    assert demucs_remix._cached_weights("htdemucs", "") == ""  # a folder, but no snapshot in it
    (folder / "refs" / "main").write_text("0" * 40)
    (folder / "snapshots" / ("0" * 40)).mkdir(parents=True)
    assert Path(demucs_remix._cached_weights("htdemucs", "")) == folder / "snapshots" / ("0" * 40)
