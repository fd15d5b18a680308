"""The Gradio app without a browser: the layout builds and every handler works on real audio."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from restorelab import audio as A

gr = pytest.importorskip("gradio")


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTORELAB_VOTES_PATH", str(tmp_path / "votes.csv"))
    import importlib

    import app as module

    module = importlib.reload(module)
    assert module.VOTE_LOG.path == tmp_path / "votes.csv"
    return module


class NoProgress:
    def __call__(self, *args, **kwargs):
        return None


def test_layout_builds_with_one_player_per_restorer(app):
    demo = app.build_app()
    assert isinstance(demo, gr.Blocks)
    labels = {getattr(block, "label", None) for block in demo.blocks.values()}
    assert set(app.PLAYER_NAMES) <= labels
    assert {"Left", "Right", "Leaderboard", "PSD overlay"} <= labels


def test_upload_errors_are_readable(app, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(gr.Error, match="bad.wav: is not a readable audio file"):
        app.on_upload(str(bad))
    with pytest.raises(gr.Error, match="Choose an audio file"):
        app.on_upload(None)


def test_upload_compare_listen_vote_results(app, tmp_path):
    t = np.arange(3 * 32000) / 32000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    path = tmp_path / "upload.wav"
    sf.write(path, np.stack([tone, tone]).T, 32000)
    clip, prompt, player, info = app.on_upload(str(path))
    assert clip.sample_rate == 44100 and clip.channels == 2 and "upload.wav" in info
    assert sf.info(player).samplerate == 44100

    knobs = [app.lab.knob_default(name) for name in app.lab.MAIN_KNOBS]
    names = ["spectral_gate_hf", "spectral_subtraction_hf", "bandwidth_extension_dsp"]
    out = app.on_compare(clip, names, False, *knobs, progress=NoProgress())
    view, players = out[0], out[1 : 1 + len(app.PLAYER_NAMES)]
    visible = [name for name, update in zip(app.PLAYER_NAMES, players) if update["visible"]]
    assert visible == ["input", *names]
    mel, linear, psd, metrics, download, status = out[1 + len(app.PLAYER_NAMES):]
    assert mel.endswith(".png") and linear.endswith(".png") and download.endswith(".zip")
    assert metrics["value"][0][0] == "input" and len(metrics["value"]) == 4
    assert len(psd.data) == 4

    assert view.matched_players == {}  # written only when someone asks to hear them
    import zipfile

    assert not any("matched" in n for n in zipfile.ZipFile(download).namelist())
    matched = app.on_matched_toggle(view, True)
    assert all("matched" in update["value"] for update in matched if update["visible"])
    loudness = [A.loudness_lufs(sf.read(update["value"], always_2d=True)[0].T.astype(np.float32), 44100)
                for update in matched if update["visible"]]
    assert max(loudness) - min(loudness) < 0.1

    session, timing, left, right, *rest = app.on_start_listening(None, view, clip, "")
    buttons = rest[:4]
    assert all(b["interactive"] is False for b in buttons)
    with pytest.raises(gr.Error, match="Play both sides"):
        app.on_vote(session, view, timing, "left")
    timing, *buttons = app.on_play(timing, "left")
    assert all(b["interactive"] is False for b in buttons)
    timing, *buttons = app.on_play(timing, "right")
    assert all(b["interactive"] is True for b in buttons)
    result = app.on_vote(session, view, timing, "left")
    assert "Left was" in result[-2]
    rows = app.VOTE_LOG.read()
    assert len(rows) == 1 and rows[0]["choice"] == "left" and rows[0]["session_id"] == session.session_id

    board, win, counts, tests, message = app.on_results(session, "This session", 1)
    assert {row[1] for row in board} == {rows[0]["restorer_left"], rows[0]["restorer_right"]}
    assert all(row[0] in (1, 2) for row in board)
    board, *_ = app.on_results(session, "This session", 10)
    assert all(row[0] == "–" and row[3] == "too few votes" for row in board)
    with open(app.on_export(session, "All votes"), newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == 1 and exported[0]["winner"] == rows[0]["restorer_left"]


def test_results_on_an_empty_log(app):
    board, win, counts, tests, message = app.on_results(None, "All votes", 10)
    assert board == [] and win is None and "No votes yet" in message


def test_compare_needs_a_clip_and_a_choice(app):
    knobs = [app.lab.knob_default(name) for name in app.lab.MAIN_KNOBS]
    with pytest.raises(gr.Error, match="Source tab"):
        app.on_compare(None, ["spectral_gate_hf"], False, *knobs, progress=NoProgress())
    with pytest.raises(gr.Error, match="Run a comparison"):
        app.on_start_listening(None, None, None, "")


def test_tiny_generation_through_the_handler(app):
    pytest.importorskip("transformers")
    clip, prompt, player, info = app.on_generate(app.generation.TINY, "calm piano", 1, 0, 3.0, None,
                                                 progress=NoProgress())
    assert clip.duration_s == pytest.approx(1.0, abs=1e-3) and prompt == "calm piano"
    assert "musicgen:tiny-random" in info


def test_old_work_folders_are_removed(app, monkeypatch, tmp_path):
    import os
    import time

    monkeypatch.setattr(app.lab, "WORK_ROOT", tmp_path / "work")
    old = app.lab.work_folder("old-")
    (old / "big.wav").write_bytes(b"x" * 1000)
    stale = time.time() - app.lab.WORK_MAX_AGE_S - 10
    os.utime(old, (stale, stale))
    fresh = app.lab.work_folder("new-")
    assert fresh.exists() and not old.exists()


def test_shipped_unet_checkpoints_compare_and_listen(app):
    """Our trained restorers run offline from the Compare tab into a blind pair in the Listen tab."""
    clip = app.lab.load_example(next(iter(app.lab.EXAMPLES)))
    knobs = [app.lab.knob_default(name) for name in app.lab.MAIN_KNOBS]
    names = ["unet_denoise", "unet_bwe"]
    out = app.on_compare(clip, names, False, *knobs, progress=NoProgress())
    view, players = out[0], out[1 : 1 + len(app.PLAYER_NAMES)]
    assert [name for name, update in zip(app.PLAYER_NAMES, players) if update["visible"]] == ["input", *names]
    metrics = out[1 + len(app.PLAYER_NAMES) + 3]
    assert [row[0] for row in metrics["value"]] == ["input", *names]
    session, timing, left, right, *rest = app.on_start_listening(None, view, clip, "")
    assert sf.info(left).samplerate == sf.info(right).samplerate == 44100
    timing, *_ = app.on_play(timing, "left")
    timing, *_ = app.on_play(timing, "right")
    app.on_vote(session, view, timing, "right")
    (row,) = app.VOTE_LOG.read()
    assert {row["restorer_left"], row["restorer_right"]} <= {"input", *names}
