"""The Gradio app without a browser: the layout builds and every handler works on real audio."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import add_noise, melody
from restorelab import audio as A

gr = pytest.importorskip("gradio")
MIN_LISTEN_S = 0.3


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTORELAB_VOTES_PATH", str(tmp_path / "votes.csv"))
    monkeypatch.setenv("RESTORELAB_MIN_LISTEN_S", str(MIN_LISTEN_S))
    monkeypatch.setenv("RESTORELAB_MAX_UPLOAD_MB", "2")
    monkeypatch.setenv("RESTORELAB_MAX_CLIP_S", "5")
    import importlib

    import app as module

    module = importlib.reload(module)
    monkeypatch.setattr(module.lab, "WORK_ROOT", tmp_path / "work")
    assert module.VOTE_LOG.path == tmp_path / "votes.csv" and module.RULES.min_listen_s == MIN_LISTEN_S
    return module


class NoProgress:
    def __call__(self, *args, **kwargs):
        return None


class Visitor:
    """What Gradio passes as ``gr.Request``: only the session hash is used."""

    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash


def run_compare(app, *args, **kwargs):
    """Every update Compare streams, folded into one per component as the page ends up showing it."""
    final = None
    for update in app.on_compare(*args, **kwargs):
        if final is None:
            final = list(update)
            continue
        for i, value in enumerate(update):
            is_update = isinstance(value, dict) and value.get("__type__") == "update"
            if isinstance(final[i], dict) and (is_update or final[i].get("__type__") == "update"):
                final[i] = {**final[i], **(value if is_update else {"value": value})}  # a plain value: its value only
            elif not (is_update and value == {"__type__": "update"}):
                final[i] = value
    return tuple(final)


def knobs(app, **overrides):
    return [overrides.get(name, app.lab.knob_default(name)) for name in app.lab.MAIN_KNOBS]


def upload_file(tmp_path, name="upload.wav", seconds=3.0, rate=32000, seed=0, hiss_snr_db=None):
    x = melody(seconds, sample_rate=rate, seed=seed)
    if hiss_snr_db is not None:
        x = add_noise(x, hiss_snr_db, np.random.default_rng(seed))
    path = tmp_path / name
    sf.write(path, np.stack([x, 0.8 * x]).T, rate)
    return path


def ticket_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-(\w+)="([^"]*)"', html))


def fetch_both(app, ticket):
    """What the page's transport does: fetch each side once through its single-use link."""
    return [app.STIMULI.take(ticket[side].rsplit("/", 1)[1]) for side in ("left", "right")]


def listened(ticket, seconds):
    return json.dumps({"trial": ticket["trial"], "left_s": seconds, "right_s": seconds})


def test_layout_builds_with_the_controls_tests_rely_on(app):
    demo = app.build_app()
    assert isinstance(demo, gr.Blocks)
    labels = {getattr(block, "label", None) for block in demo.blocks.values()}
    assert set(app.PLAYER_NAMES) <= labels and {"Leaderboard", "PSD overlay"} <= labels
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"vote-left", "vote-right", "vote-tie", "vote-both-bad", "ab-reveal", "prompt", "generate",
            "ab-transport", "ab-ticket", "start-listening"} <= ids
    transport = app.transport_html("ab_transport.html")
    assert 'id="ab-play-left"' in transport and 'id="ab-play-right"' in transport and 'id="ab-loop"' in transport
    mushra = app.transport_html("mushra_transport.html")
    assert 'id="mushra-reference"' in mushra and 'id="ab-loop-end"' in mushra and 'type="range"' not in mushra
    # The blind test has no audio players of its own: nothing to download, no waveform.
    assert "Left" not in labels and "Right" not in labels


def test_upload_errors_are_readable_and_name_no_server_path(app, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(gr.Error, match="bad.wav: is not a readable audio file") as caught:
        app.on_upload(str(bad))
    assert str(tmp_path) not in str(caught.value)
    with pytest.raises(gr.Error, match="Choose an audio file"):
        app.on_upload(None)
    long = upload_file(tmp_path, "long.wav", seconds=6.0)
    with pytest.raises(gr.Error, match=r"long.wav: is too long: 6.0 s; the limit is 5 s here"):
        app.on_upload(str(long))
    big = tmp_path / "big.wav"
    sf.write(big, np.zeros((1_000_000, 2), dtype=np.float32), 192000, subtype="FLOAT")  # 8 MB, 5.2 s
    with pytest.raises(gr.Error, match=r"big.wav: is 8 MB; the limit is 2 MB"):
        app.on_upload(str(big))


def test_the_page_preloads_the_plot_module_of_the_pinned_gradio(app):
    """The PSD plot's module (3.5 MB of script) loads with the page rather than on the first Compare;
    found by name in Gradio's built assets, so a Gradio that names it otherwise fails here."""
    preloaded = re.findall(r'<link rel="modulepreload" href="\./assets/([^"]+)">', app.HEAD)
    assets = Path(gr.__file__).parent / "templates" / "frontend" / "assets"
    assert len(preloaded) == 1 and preloaded[0].startswith("PlotlyPlot-") and (assets / preloaded[0]).is_file()


def test_generation_inputs_are_bounded_before_any_work(app):
    huge = "lofi " * 30_000
    with pytest.raises(gr.Error, match="The prompt is 150000 characters long; the limit is 500"):
        app.on_generate(app.generation.TINY, huge, 4, 0, 3.0, None, progress=NoProgress())
    for duration, seed, guidance, message in ((31, 0, 3.0, "duration"), (4, -1, 3.0, "seed"),
                                               (4, 0, 99.0, "guidance scale"), ("4", 0, 3.0, "duration")):
        with pytest.raises(gr.Error, match=f"The {message} must be a number"):
            app.on_generate(app.generation.TINY, "piano", duration, seed, guidance, None, progress=NoProgress())
    with pytest.raises(gr.Error, match="unknown model"):
        app.on_generate("huge-model", "piano", 4, 0, 3.0, None, progress=NoProgress())


def test_upload_compare_listen_vote_results(app, tmp_path):
    clip, player, info = app.on_upload(str(upload_file(tmp_path, hiss_snr_db=20.0)))
    assert clip.sample_rate == 44100 and clip.channels == 2 and "upload.wav" in info
    assert sf.info(player).samplerate == 44100

    names = ["spectral_gate_hf", "spectral_subtraction_hf", "bandwidth_extension_dsp"]
    out = run_compare(app, clip, names, False, *knobs(app))
    view, players = out[0], out[1 : 1 + len(app.PLAYER_NAMES)]
    visible = [name for name, update in zip(app.PLAYER_NAMES, players) if update["visible"]]
    assert visible == ["input", *names]
    mel, linear, psd, metrics, download, status = out[1 + len(app.PLAYER_NAMES):]
    assert mel.endswith(".png") and linear is None and download is None  # the linear images and the zip on demand
    assert app.on_linear(view).endswith("linear_spectrograms.png")
    assert metrics["value"][0][0] == "input" and len(metrics["value"]) == 4
    # Each clip's PSD, then each one's difference from the input (hidden until its button is pressed).
    assert psd.type == "plotly" and psd.plot == view.psd_figure.to_json()
    traces = view.psd_figure.data
    assert [t.name for t in traces] == ["input", *names] * 2 and [t.visible for t in traces] == [True] * 4 + [False] * 4
    assert np.allclose(traces[4].y, 0.0) and np.allclose(traces[5].y, traces[1].y - traces[0].y)
    assert "upload.wav" in status
    assert app.on_zip(view).endswith(".zip")

    assert view.matched_players == {}  # written only when someone asks to hear them
    matched = app.on_matched_toggle(view, True)
    assert all("matched" in update["value"] for update in matched if update["visible"])
    loudness = [A.loudness_lufs(sf.read(update["value"], always_2d=True)[0].T.astype(np.float32), 44100)
                for update in matched if update["visible"]]
    assert max(loudness) - min(loudness) < 0.1

    session, ticket_html, info, reveal = app.on_start_listening(None, view)
    ticket = ticket_of(ticket_html)
    assert "Pair 1" in info and reveal == ""
    assert not any(name in ticket_html for name in ["input", *names])
    with pytest.raises(gr.Error, match="never loaded"):
        app.on_vote(listened(ticket, 1.0), session, "left")
    left, right = fetch_both(app, ticket)
    assert left[:4] == right[:4] == b"RIFF" and len(left) == len(right)
    assert fetch_both(app, ticket) == [None, None]  # each link works once
    with pytest.raises(gr.Error, match="Voting opens once each side has played"):
        app.on_vote(listened(ticket, MIN_LISTEN_S), session, "left")
    with pytest.raises(gr.Error, match="Listen to each side for at least"):
        app.on_vote(listened(ticket, MIN_LISTEN_S / 2), session, "left")
    time.sleep(2 * MIN_LISTEN_S + 0.1)
    trial = session.trial
    session, next_html, info, reveal = app.on_vote(listened(ticket, MIN_LISTEN_S), session, "left")
    assert len(view.candidates) == 4
    assert f"left was **{trial.left.label}**, right was **{trial.right.label}**" in reveal
    assert "Pair 1, just judged" in reveal and "Pair 2" in info and ticket_of(next_html)["trial"] != ticket["trial"]
    with pytest.raises(gr.Error, match="already been judged or replaced"):  # the same vote sent twice
        app.on_vote(listened(ticket, MIN_LISTEN_S), session, "left")

    (row,) = app.VOTE_LOG.read()
    assert row["choice"] == "left" and row["session_id"] == session.session_id and row["clip_id"] == "upload"
    assert json.loads(row["settings_left"])[0]["restorer"] == trial.left.members[0]
    assert row["stimulus_left_sha256"] == trial.left.sha256 and float(row["excerpt_duration_s"]) > 2.5

    _, board, win, counts, tests, message = app.on_results(session, "This session", 1, False)
    assert {r[1] for r in board} == {*trial.left.members, *trial.right.members}
    assert all(r[0] in (1, 2) for r in board)
    _, board, *_ = app.on_results(session, "This session", 10, False)
    assert all(r[0] == "–" and r[3] == "too few votes" for r in board)
    with open(app.on_export(session, "All votes"), newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == 1 and exported[0]["winner"] == row["restorer_left"]


def test_identical_outputs_are_one_candidate_and_marked(app, tmp_path):
    clip, *_ = app.on_upload(str(upload_file(tmp_path, hiss_snr_db=20.0)))
    names = ["spectral_gate_hf", "spectral_gate", "spectral_subtraction_hf"]
    # No reduction: both gates give back their input (to float rounding).
    out = run_compare(app, clip, names, False, *knobs(app, spectral_gate_hf=0.0, spectral_gate=0.0))
    view, status = out[0], out[-1]
    assert [c.label for c in view.candidates] == ["input=spectral_gate_hf=spectral_gate", "spectral_subtraction_hf"]
    assert view.notes == {"spectral_gate_hf": "made no audible change", "spectral_gate": "made no audible change"}
    assert "2 different sound(s)" in status and "**spectral_gate** made no audible change" in status
    players = dict(zip(app.PLAYER_NAMES, out[1 : 1 + len(app.PLAYER_NAMES)]))
    assert players["spectral_gate"]["label"] == "spectral_gate (made no audible change)"
    metrics = out[1 + len(app.PLAYER_NAMES) + 3]["value"]
    assert [r[-1] for r in metrics] == ["", "made no audible change", "made no audible change", ""]
    session, ticket_html, info, _ = app.on_start_listening(None, view)
    assert {session.trial.left.label, session.trial.right.label} == {c.label for c in view.candidates}


def test_votes_are_labelled_with_the_compared_clip_and_a_new_source_clears_everything(app, tmp_path):
    first, *_ = app.on_upload(str(upload_file(tmp_path, "first.wav", seed=1)))
    view = run_compare(app, first, ["spectral_gate_hf"], False, *knobs(app))[0]
    app.on_upload(str(upload_file(tmp_path, "second.wav", seed=2)))  # the source changes...
    session, ticket_html, *_ = app.on_start_listening(None, view)  # ...but the view owns its clip
    assert session.clip_id == "first"
    cleared = app.on_source_changed(session)
    view_out, players = cleared[0], cleared[1 : 1 + len(app.PLAYER_NAMES)]
    assert view_out is None and not any(p["visible"] for p in players)
    assert session.trial is None and "press **Compare**" in cleared[1 + len(app.PLAYER_NAMES) + 5]
    assert cleared[-3] == "" and "source changed" in cleared[-2]  # no ticket left to play
    assert fetch_both(app, ticket_of(ticket_html)) == [None, None]
    with pytest.raises(gr.Error, match="Run a comparison first"):
        app.on_start_listening(session, None)


def test_a_new_source_shows_its_own_psd_until_it_is_compared(app, tmp_path, monkeypatch):
    """After the source tab's events, the overlay holds the input's Welch PSD alone (the same
    curve a comparison draws for it); without a clip, nothing."""
    from restorelab.analysis import welch_psd_db

    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    figure = app.on_input_psd(clip)
    freqs, level = welch_psd_db(clip.audio, clip.sample_rate)
    shown = [trace for trace in figure.data if trace.visible is not False]
    assert [trace.name for trace in shown] == ["input"] and figure.layout.showlegend
    np.testing.assert_allclose(shown[0].y, level[freqs > 0])
    assert app.on_input_psd(None) is None
    other, *_ = app.on_upload(str(upload_file(tmp_path, "other.wav", seed=5)))
    monkeypatch.setattr(app.lab, "INPUT_MEASURES", app.lab.InputMeasures())
    monkeypatch.setattr(app.lab, "_measure_the_input", lambda clip: 1 / 0)
    assert app.on_input_psd(other) is None  # a failed preview leaves the overlay empty
    demo = app.build_app()
    psd_id = next(block._id for block in demo.blocks.values() if getattr(block, "elem_id", None) == "psd")
    shows = [fn for fn in demo.fns.values() if fn.fn is app.on_input_psd]
    assert len(shows) == 3 and all([block._id for block in fn.outputs] == [psd_id] for fn in shows)


def test_compare_validates_what_a_client_sends(app, tmp_path):
    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    with pytest.raises(gr.Error, match="Source tab"):
        run_compare(app, None, ["spectral_gate_hf"], False, *knobs(app))
    with pytest.raises(gr.Error, match="unknown restorer.*rm -rf.*known: spectral_gate_hf"):
        run_compare(app, clip, ["rm -rf"], False, *knobs(app))
    with pytest.raises(gr.Error, match="HF gate: reduction must be a number from 0 to 1"):
        run_compare(app, clip, ["spectral_gate_hf"], False, *knobs(app, spectral_gate_hf=7.0))
    with pytest.raises(gr.Error, match="Run a comparison"):
        app.on_start_listening(None, None)
    with pytest.raises(gr.Error, match="unknown scope"):
        app.on_results(None, "everything", 10, True)


def test_one_heavy_job_per_visitor(app, tmp_path):
    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    with app.JOBS.hold("visitor-a", "a comparison"):
        with pytest.raises(gr.Error, match="already have 1 job"):
            run_compare(app, clip, ["spectral_gate_hf"], False, *knobs(app), request=Visitor("visitor-a"))
        out = run_compare(app, clip, ["spectral_gate_hf"], False, *knobs(app), request=Visitor("visitor-b"))
        assert out[0] is not None
    assert run_compare(app, clip, ["spectral_gate_hf"], False, *knobs(app), request=Visitor("visitor-a"))[0] is not None


def test_results_on_an_empty_log(app):
    _, board, win, counts, tests, message = app.on_results(None, "All votes", 10, True)
    assert board == [] and win is None and "No votes yet" in message


def test_results_report_damaged_rows_and_flagged_sessions(app):
    from restorelab.listening.votes import Vote

    def vote(session, flags=""):
        return Vote(session_id=session, trial_id="t", clip_id="c", clip_source="file", prompt="", restorer_left="a",
                    restorer_right="b", choice="left", listened_left_s=3, listened_right_s=3, decision_s=9,
                    loudness_target_lufs=-23, flags=flags)

    for _ in range(3):
        app.VOTE_LOG.append(vote("honest"))
    app.VOTE_LOG.append(vote("stuffer", flags="rate"))
    with open(app.VOTE_LOG.path, "a") as handle:
        handle.write('torn,"row\n')
    _, board, *_, message = app.on_results(None, "All votes", 1, True)
    assert {r[4] for r in board} == {3} and "1 session(s) left out" in message
    assert "1 damaged row(s) in the vote log were skipped (line 6" in message
    _, board, *_ = app.on_results(None, "All votes", 1, False)
    assert {r[4] for r in board} == {4}


def test_tiny_generation_through_the_handler(app):
    pytest.importorskip("transformers")
    clip, player, info = app.on_generate(app.generation.TINY, "calm piano", 1, 0, 3.0, None, progress=NoProgress())
    assert clip.duration_s == pytest.approx(1.0, abs=1e-3) and clip.prompt == "calm piano"
    assert "musicgen:tiny-random" in info


def test_work_space_is_bounded(app, monkeypatch, tmp_path):
    import os

    limits = app.lab.Limits(max_work_disk_mb=0.01, work_max_age_s=3600)
    expired = app.lab.work_folder("expired-", limits)
    stale = time.time() - 7200
    os.utime(expired, (stale, stale))
    old = app.lab.work_folder("old-", limits)
    (old / "big.wav").write_bytes(b"x" * 20_000)
    with pytest.raises(ValueError, match="work space is full"):  # the big folder is too young to remove
        app.lab.work_folder("new-", limits)
    assert not expired.exists() and old.exists()
    young = time.time() - app.lab.WORK_MIN_KEEP_S - 10
    os.utime(old, (young, young))
    fresh = app.lab.work_folder("new-", limits)
    assert fresh.exists() and not old.exists()


def test_shipped_unet_checkpoints_compare_and_listen(app):
    """Our trained restorers run offline from the Compare tab into a blind pair in the Listen tab."""
    clip = app.lab.load_example(next(iter(app.lab.EXAMPLES)))
    names = ["unet_denoise", "unet_bwe"]
    out = run_compare(app, clip, names, False, *knobs(app))
    view, players = out[0], out[1 : 1 + len(app.PLAYER_NAMES)]
    assert [name for name, update in zip(app.PLAYER_NAMES, players) if update["visible"]] == ["input", *names]
    metrics = out[1 + len(app.PLAYER_NAMES) + 3]
    assert [row[0] for row in metrics["value"]] == ["input", *names]
    session, ticket_html, *_ = app.on_start_listening(None, view)
    ticket = ticket_of(ticket_html)
    for data in fetch_both(app, ticket):
        assert sf.info(__import__("io").BytesIO(data)).samplerate == 44100
    time.sleep(2 * MIN_LISTEN_S + 0.1)
    app.on_vote(listened(ticket, MIN_LISTEN_S), session, "right")
    (row,) = app.VOTE_LOG.read()
    assert {row["restorer_left"], row["restorer_right"]} <= {"input", *names}


def test_the_readme_states_the_defaults_the_code_has():
    from dataclasses import fields

    from conftest import ROOT
    from restorelab.limits import Limits
    from restorelab.listening.transport import ListenRules

    stated = {}
    for names, values in re.findall(r"^\| (`RESTORELAB_[^|]+) \| ([^|]+) \|", (ROOT / "README.md").read_text(), re.M):
        for name, value in zip(re.findall(r"`RESTORELAB_(\w+)`", names), values.split("/")):
            stated[name.lower()] = float(value)
    defaults = {f.name: float(getattr(cls(), f.name)) for cls in (Limits, ListenRules) for f in fields(cls)
                if f.name != "clock_tolerance_s"}
    assert stated == defaults


def test_listening_keeps_its_files_and_says_so_when_they_are_gone(app, tmp_path):
    import shutil

    clip, *_ = app.on_upload(str(upload_file(tmp_path, hiss_snr_db=20.0)))
    view = run_compare(app, clip, ["spectral_gate_hf"], False, *knobs(app))[0]
    session, *_ = app.on_start_listening(None, view)
    shutil.rmtree(view.folder)
    with pytest.raises(ValueError, match="removed from the server.*press Compare"):
        app.lab.next_trial(session, app.STIMULI, app.RULES)
    with pytest.raises(gr.Error, match="removed from the server"):
        app.on_zip(view)
    with pytest.raises(gr.Error, match="removed from the server"):
        app.on_matched_toggle(view, True)


class Page:
    """What Gradio passes as ``gr.Request`` to a study page opened with a query string."""

    def __init__(self, **query: str) -> None:
        self.query_params = query
        self.session_hash = "page"


def test_a_study_page_from_arrival_to_completion_code(app, tmp_path):
    from restorelab.listening.study import Design, build_study

    files = [upload_file(tmp_path, f"clip{i}.wav", hiss_snr_db=20.0, seed=i) for i in range(2)]
    build_study(files, tmp_path / "study", restorers={"spectral_gate_hf": app.lab.restorer_class("spectral_gate_hf")()},
                design=Design(trials_per_listener=4), reveal="end", study_id="demo")
    app.serve_study(tmp_path / "study")
    assert isinstance(app.build_study_app(), gr.Blocks)
    listener, listener_id, message, questions, start, code = app.on_study_load("", Page(listener="P-1"))
    assert listener_id == "P-1" and "4 trials" in message and questions["visible"] and code == ""
    with pytest.raises(gr.Error, match="Please answer: What are you listening on"):
        app.on_study_start(listener, None, "Casual listener")
    listener, ticket_html, progress, reveal, code, *_ = app.on_study_start(listener, "Headphones", "Casual listener")
    assert "Trial 1 of 4" in progress and not any(name in ticket_html for name in ("input", "spectral_gate_hf"))
    while ticket_html:
        ticket = ticket_of(ticket_html)
        fetch_both(app, ticket)
        time.sleep(2 * MIN_LISTEN_S + 0.05)
        listener, ticket_html, progress, reveal, code = app.on_study_vote(listened(ticket, MIN_LISTEN_S), listener,
                                                                          "tie")
        assert ("judged" in reveal) == (ticket_html == "")  # names only at the end
    assert "All 4 trials done" in progress and code == app.STUDY.completion_code("P-1") and len(code) == 10
    rows = app.VOTE_LOG.read()
    assert len(rows) == 4 and {r["completion_code"] for r in rows} == {code} and {r["study_id"] for r in rows} == {"demo"}
    # The lab's own leaderboard leaves the study's votes out; the study has a scope of its own.
    scope, board, *_, message = app.on_results(None, "All votes", 1, False)
    assert board == [] and "Study demo" in scope["choices"]
    scope, board, *_, message = app.on_results(None, "Study demo", 1, False)
    assert {r[1] for r in board} <= {"input", "spectral_gate_hf"} and "Study demo: 1 listener(s)" in message
    # Coming back: the same listener is done and sees the code again.
    again = app.on_study_load("P-1", Page())
    assert again[1] == "P-1" and again[-1] == code and "All 4 trials done" in again[2]


def test_comparisons_become_a_study(app, tmp_path):
    views = []
    for i in range(2):
        clip, *_ = app.on_upload(str(upload_file(tmp_path, f"song{i}.wav", hiss_snr_db=20.0, seed=i)))
        view = run_compare(app, clip, ["spectral_gate_hf", "mcra_wiener"], False, *knobs(app))[0]
        views, status = app.on_study_add(views, view)
    views, status = app.on_study_add(views, view)  # the same clip again replaces it
    assert len(views) == 2 and "song0.wav, song1.wav" in status
    with pytest.raises(gr.Error, match="Trials per listener must be a number from 4 to 200"):
        app.on_study_build(views, 2, "end")
    archive, status = app.on_study_build(views, 8, "never")
    import zipfile

    names = zipfile.ZipFile(archive).namelist()
    study_json = next(n for n in names if n.endswith("study.json"))
    data = json.loads(zipfile.ZipFile(archive).read(study_json))
    assert [c["id"] for c in data["clips"]] == ["song0", "song1"] and data["reveal"] == "never"
    assert [c["members"] for c in data["clips"][0]["candidates"]] == [["input"], ["spectral_gate_hf"], ["mcra_wiener"]]
    mcra = data["clips"][0]["candidates"][2]["settings"][0]
    assert mcra["params"]["gain_floor_db"] == app.lab.knob_default("mcra_wiener")
    assert sum(n.endswith(".flac") for n in names) == 2 * 4 and f"**{data['id']}**" in status
    third, *_ = app.on_upload(str(upload_file(tmp_path, "song2.wav", seed=2)))
    other = run_compare(app, third, ["spectral_gate_hf"], False, *knobs(app))[0]
    with pytest.raises(gr.Error, match="needs the same restorers"):
        app.on_study_build([*views, other], 8, "end")


def _players(app, update) -> dict:
    return dict(zip(app.PLAYER_NAMES, update[1:1 + len(app.PLAYER_NAMES)]))


def _holds(player) -> bool:
    return isinstance(player, dict) and player.get("value") is not None


def test_compare_streams_each_result_as_it_is_ready(app, tmp_path):
    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    names = ["spectral_gate_hf", "mcra_wiener", "bandwidth_extension_dsp"]
    steps = list(app.lab.compare_steps(clip, names, {}, cache=None))
    stages = [stage for stage, _ in steps]
    # Outputs that finish together come in one step.
    assert stages[0] == "input" and stages[-3:] == ["metrics", "psd", "spectrograms"]
    assert set(stages[1:-3]) == {"output"} and 1 <= len(stages) - 4 <= len(names)
    view = steps[0][1]  # one view, filled in place
    assert all(v is view for _, v in steps) and view.finished
    assert list(view.players) == ["input", *names]  # in the registry's order, whatever order they finished in
    updates = list(app.on_compare(clip, names, False, *knobs(app)))
    first_players = _players(app, updates[0])
    assert first_players["input"]["visible"] and first_players["input"]["value"].endswith("input.wav")
    # Every chosen restorer's player takes its place at once, empty until its output arrives.
    assert all(first_players[n]["visible"] and first_players[n]["value"] is None
               and first_players[n]["label"] == f"{n} (restoring…)" for n in names)
    assert not any(first_players[n]["visible"] for n in app.PLAYER_NAMES if n not in ["input", *names])
    assert "Restored 0 of 3" in updates[0][-1] and "Compared 3 restorer(s)" in updates[-1][-1]
    filled, new = {"input"}, []
    for update in [u for u in updates[1:] if u[-1].startswith("Restored")]:  # each such step brings an output
        players = _players(app, update)
        new.append([n for n in names if _holds(players[n]) and n not in filled])
        filled.update(new[-1])
        assert all(players[n]["label"] == n for n in new[-1])
    assert all(new) and sorted(sum(new, [])) == sorted(names)


def test_outputs_done_close_together_go_in_one_step(app, tmp_path, monkeypatch):
    """With ``gather_s``, an output done soon after the last one sent waits for the next, by at
    most ``gather_s``; the first goes at once, and so does the last restorer's."""
    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    delays = {"spectral_gate_hf": 0.0, "mcra_wiener": 0.3, "bandwidth_extension_dsp": 3.0}
    for name, delay in delays.items():
        cls = app.lab.restorer_class(name)
        monkeypatch.setattr(cls, "__call__", lambda self, audio, sr, delay=delay: time.sleep(delay) or audio.copy())
    monkeypatch.setattr(app.lab, "COMPARE_WORKERS", 3)
    start, steps = time.monotonic(), []
    for stage, view in app.lab.compare_steps(clip, list(delays), {}, cache=None, gather_s=1.0):
        if stage == "output":
            steps.append((time.monotonic() - start, sorted(view.players)))
    (first, one), (second, two), (third, three) = steps
    assert one == ["input", "spectral_gate_hf"] and first < 0.3 + 0.25
    assert two == ["input", "mcra_wiener", "spectral_gate_hf"] and 0.9 < second < 2.5  # held for about 1 s
    assert len(three) == 4 and third >= 3.0


def _apply_in_place(base, edits):
    """The page's way of applying one of Gradio's streamed differences: in place (a copy of what its
    client does, Gradio 6)."""
    for action, path, value in edits:
        if not path:
            if action != "replace":
                raise ValueError(action)
            base = value
            continue
        parent = base
        for key in path[:-1]:
            parent = parent[key]
        if action in ("replace", "add"):
            parent[path[-1]] = value
        elif action == "delete":
            del parent[path[-1]]
    return base


def _sent(value):
    """What Gradio streams of one output, roughly: an update's value taken out of it (Gradio pops
    it, so an update yielded twice goes the second time without), pydantic models as their dumps,
    a plotly figure as its JSON."""
    if isinstance(value, dict):
        out = {key: _sent(item) for key, item in value.items() if key != "value"}
        if "value" in value:
            out["value"] = _sent(value.pop("value") if value.get("__type__") == "update" else value["value"])
        return out
    if isinstance(value, (list, tuple)):
        return [_sent(item) for item in value]
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "to_json"):  # a plotly figure
        return {"plot": value.to_json()}
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


@pytest.mark.parametrize("matched", [False, True])
def test_no_step_of_compare_erases_a_result_the_page_has_not_drawn_yet(app, tmp_path, matched):
    """Gradio streams each step as a difference from the last, and the page applies it in place,
    onto the objects of steps not drawn yet (it draws once per frame). Modelled here with Gradio's
    own difference, in the worst case: every step arrives before the page draws any. Each player,
    the table and both figures must still end up showing their result; a skip after a result, or
    an update sent twice, deletes it from the earlier step."""
    from gradio.utils import diff

    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    names = ["spectral_gate_hf", "mcra_wiener", "bandwidth_extension_dsp"]
    updates = [_sent(list(update[1:])) for update in app.on_compare(clip, names, matched, *knobs(app))]
    stored = json.loads(json.dumps(updates[0]))
    received = [stored]
    for before, after in zip(updates, updates[1:]):
        stored = [_apply_in_place(stored[i], diff(before[i], after[i])) for i in range(len(after))]
        received.append(stored)
    shown = {}
    for step in received:  # drawn only now, each step as it reads after every later one arrived
        for i, output in enumerate(step):
            shown[i] = {**shown.get(i, {}), **(output if isinstance(output, dict) else {"value": output})}
    players = dict(zip(app.PLAYER_NAMES, shown.values()))
    assert all(players[n].get("value") and players[n].get("visible") for n in ["input", *names])
    assert not any(players[n].get("visible") for n in app.PLAYER_NAMES if n not in ["input", *names])
    mel, _, psd, table = (shown[len(app.PLAYER_NAMES) + k] for k in range(4))
    assert mel["value"].endswith("mel_spectrograms.png") and '"data"' in psd.get("plot", "")
    assert table.get("headers") and len(table.get("value", [])) == 1 + len(names)


def test_audio_components_describe_their_api_once(app):
    """Gradio builds a new component for every update it streams to a player; all of them share one
    API description, the one the audio component's data model gives."""
    from gradio.data_classes import FileData

    first, second = (gr.Audio(label=name, type="filepath", interactive=False) for name in ("a", "b"))
    assert first.api_info() is second.api_info() is second.api_info_as_output()
    schema = FileData.model_json_schema()
    schema["additional_description"] = schema.pop("description", None)
    assert first.api_info() == schema
    app.describe_api_once(gr.Audio)  # the app imported again: still described once
    assert gr.Audio(label="c").api_info() is first.api_info()


def test_every_player_goes_out_before_any_output_is_measured(app, tmp_path, monkeypatch):
    """Measuring waits until every restorer's player has been yielded: a comparison that measured
    each output before showing it would hold the measurements here and fail."""
    import threading

    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    names = ["spectral_gate_hf", "mcra_wiener", "bandwidth_extension_dsp"]
    every_player_out = threading.Event()
    measure = app.lab._measure_output

    def held(*args):
        if not every_player_out.wait(20):
            raise TimeoutError("an output was measured before every player went out")
        return measure(*args)

    monkeypatch.setattr(app.lab, "_measure_output", held)
    stages = []
    for stage, view in app.lab.compare_steps(clip, names, {}, cache=None):
        stages.append(stage)
        if stage == "output" and len(view.players) == 1 + len(names):
            every_player_out.set()
    assert stages[0] == "input" and set(stages[1:-3]) == {"output"}
    assert stages[-3:] == ["metrics", "psd", "spectrograms"]
    assert [row["name"] for row in view.rows] == ["input", *names] and not view.skipped


UNETS = ["unet_denoise", "unet_bwe", "unet_restore"]


def test_the_unet_chain_is_built_from_its_stages_outputs_when_they_run_too(app, tmp_path, chain_runs):
    """unet_restore is the denoiser's output plus the extension's band: a comparison that runs both
    adds their outputs instead of running the two networks again, and shows the same output."""
    from restorers.spectral_unet import UNetRestore

    clip, *_ = app.on_upload(str(upload_file(tmp_path, hiss_snr_db=30.0)))
    own = UNetRestore()(clip.audio, clip.sample_rate)
    chain_runs.clear()
    steps = list(app.lab.compare_steps(clip, UNETS, {}, cache=None))
    view = steps[-1][1]
    assert [stage for stage, _ in steps] == ["input", "output", "output", "output", "metrics", "psd", "spectrograms"]
    assert not chain_runs and list(view.players) == ["input", *UNETS] and not view.skipped
    shown, _ = sf.read(view.players["unet_restore"], dtype="float32")
    np.testing.assert_array_equal(shown.T, own)
    # Without the extension in the comparison, the chain runs itself.
    view = list(app.lab.compare_steps(clip, ["unet_denoise", "unet_restore"], {}, cache=None))[-1][1]
    assert chain_runs and list(view.players) == ["input", "unet_denoise", "unet_restore"]


def test_the_unet_chain_runs_itself_when_one_of_its_stages_fails(app, tmp_path, monkeypatch):
    from restorers.spectral_unet import UNetBandwidthExtension

    def broken(self, audio, sample_rate):
        raise RuntimeError("the extension broke")

    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    monkeypatch.setattr(UNetBandwidthExtension, "__call__", broken)  # the chain calls its stages' _process
    view = list(app.lab.compare_steps(clip, UNETS, {}, cache=None))[-1][1]
    assert list(view.skipped) == ["unet_bwe"] and "the extension broke" in view.skipped["unet_bwe"]
    assert list(view.players) == ["input", "unet_denoise", "unet_restore"]
    assert [row["name"] for row in view.rows] == ["input", "unet_denoise", "unet_restore"]


def test_a_repeated_comparison_reuses_the_outputs_and_a_changed_knob_does_not(app, tmp_path, monkeypatch):
    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    cache = app.lab.OutputCache(10**9)
    calls = []
    cls = app.lab.restorer_class("spectral_gate_hf")
    real = cls.__call__
    monkeypatch.setattr(cls, "__call__", lambda self, audio, sr: calls.append(self.params) or real(self, audio, sr))
    first = app.lab.compare(clip, ["spectral_gate_hf", "mcra_wiener"], {"spectral_gate_hf": 0.5}, cache=cache)
    again = app.lab.compare(clip, ["spectral_gate_hf", "mcra_wiener"], {"spectral_gate_hf": 0.5}, cache=cache)
    assert len(calls) == 1 and again.rows == first.rows
    assert sf.read(again.players["spectral_gate_hf"])[0].tobytes() == sf.read(first.players["spectral_gate_hf"])[0].tobytes()
    app.lab.compare(clip, ["spectral_gate_hf"], {"spectral_gate_hf": 0.25}, cache=cache)
    assert [p.prop_decrease for p in calls] == [0.5, 0.25]
    other, *_ = app.on_upload(str(upload_file(tmp_path, "other.wav", seed=3)))
    app.lab.compare(other, ["spectral_gate_hf"], {"spectral_gate_hf": 0.5}, cache=cache)
    assert len(calls) == 3  # another clip is never served from the cache


def test_the_output_cache_drops_the_least_recently_used_beyond_its_bytes():
    from restorelab.lab import OutputCache

    cache = OutputCache(max_bytes=3 * 400)
    for key in "abc":
        cache.put((key,), np.zeros(100, np.float32), {"key": key})  # 400 bytes each
    assert cache.get(("a",))[1] == {"key": "a"}  # a is now the most recently used
    cache.put(("d",), np.zeros(100, np.float32), {})
    assert cache.get(("b",)) is None and cache.get(("a",)) is not None and cache.get(("d",)) is not None
    cache.put(("huge",), np.zeros(1000, np.float32), {})  # larger than the whole cache: not kept
    assert cache.get(("huge",)) is None and cache.get(("c",)) is not None


def test_the_input_is_measured_when_it_is_loaded_and_once_for_its_comparisons(app, tmp_path, monkeypatch):
    """Loading a clip starts measuring it; its comparisons take that job's result instead of
    measuring it again, with the same rows. A measuring that failed is not kept."""
    measure = app.lab._measure_the_input
    measured = []
    monkeypatch.setattr(app.lab, "_measure_the_input", lambda clip: measured.append(clip.source) or measure(clip))
    monkeypatch.setattr(app.lab, "INPUT_MEASURES", app.lab.InputMeasures(size=1))
    clip, *_ = app.on_upload(str(upload_file(tmp_path)))

    class NoPool:
        def submit(self, *args):
            raise AssertionError("the clip's measuring was not started when it was loaded")

    app.lab.INPUT_MEASURES.job(clip, app.lab.audio_sha256(clip.audio), NoPool()).result()
    assert measured == ["upload.wav"]
    first = app.lab.compare(clip, ["spectral_gate_hf"], {}, cache=None)
    again = app.lab.compare(clip, ["spectral_gate_hf"], {}, cache=None)
    assert measured == ["upload.wav"] and again.rows == first.rows
    assert first.rows[0] == {"name": "input", **measure(clip)[0].row}
    other, *_ = app.on_upload(str(upload_file(tmp_path, "other.wav", seed=3)))  # the oldest goes (size 1)
    app.lab.compare(clip, ["spectral_gate_hf"], {}, cache=None)
    assert measured == ["upload.wav", "other.wav", "upload.wav"]

    def broken(clip):
        raise MemoryError("no room")

    monkeypatch.setattr(app.lab, "_measure_the_input", broken)
    third, *_ = app.on_upload(str(upload_file(tmp_path, "third.wav", seed=4)))
    with pytest.raises(MemoryError):
        app.lab.compare(third, ["spectral_gate_hf"], {}, cache=None)
    monkeypatch.setattr(app.lab, "_measure_the_input", measure)
    assert [row["name"] for row in app.lab.compare(third, ["spectral_gate_hf"], {}, cache=None).rows] == [
        "input", "spectral_gate_hf"]


def test_clips_loaded_beyond_the_ones_waiting_are_measured_by_their_comparison(app, tmp_path, monkeypatch):
    """A flood of uploads queues no more than ``waiting`` clips behind the measuring thread; one
    loaded beyond that gets no preview, and its comparison measures it."""
    import threading

    measure = app.lab._measure_the_input
    release = threading.Event()
    monkeypatch.setattr(app.lab, "_measure_the_input", lambda clip: release.wait(20) and measure(clip))
    measures = app.lab.InputMeasures(waiting=1)
    monkeypatch.setattr(app.lab, "INPUT_MEASURES", measures)
    first, *_ = app.on_upload(str(upload_file(tmp_path, "first.wav", seed=1)))
    second, *_ = app.on_upload(str(upload_file(tmp_path, "second.wav", seed=2)))
    assert measures.start(first) is not None and measures.start(second) is None
    assert app.on_input_psd(second) is None
    release.set()
    measures.start(first).result()
    assert measures.start(second).result()[0].row == measure(second)[0].row  # the thread is free again
    view = app.lab.compare(second, ["spectral_gate_hf"], {}, cache=None)
    assert view.rows[0]["name"] == "input"


def test_a_failing_restorer_is_reported_and_the_others_are_kept(app, tmp_path, monkeypatch):
    clip, *_ = app.on_upload(str(upload_file(tmp_path)))

    def broken(self, audio, sr):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(app.lab.restorer_class("mcra_wiener"), "__call__", broken)
    view = app.lab.compare(clip, ["spectral_gate_hf", "mcra_wiener"], {})
    assert list(view.players) == ["input", "spectral_gate_hf"] and [r["name"] for r in view.rows] == ["input",
                                                                                                     "spectral_gate_hf"]
    assert view.skipped == {"mcra_wiener": "failed: RuntimeError: out of memory"}
    for matched in (False, True):  # its empty player, shown while it ran, goes once it has failed
        updates = list(app.on_compare(clip, ["spectral_gate_hf", "mcra_wiener"], matched, *knobs(app)))
        shown = {}
        for update in updates:
            for name, player in zip(app.PLAYER_NAMES, update[1:1 + len(app.PLAYER_NAMES)]):
                if isinstance(player, dict):  # a plain value leaves the player's visibility as it was
                    shown[name] = player.get("visible", shown.get(name))
        assert updates[0][1 + app.PLAYER_NAMES.index("mcra_wiener")]["visible"]
        assert [name for name, visible in shown.items() if visible] == ["input", "spectral_gate_hf"]
        assert "mcra_wiener** skipped: failed: RuntimeError" in updates[-1][-1]


def test_an_unfinished_comparison_cannot_be_zipped_or_judged(app, tmp_path):
    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    steps = app.lab.compare_steps(clip, ["spectral_gate_hf"], {})
    _, view = next(steps)
    for action in (lambda: app.lab.comparison_zip(view), lambda: app.lab.start_listening(app.lab.new_session(), view),
                   lambda: app.lab.matched_players(view)):
        with pytest.raises(ValueError, match="still"):
            action()
    for _ in steps:
        pass
    assert app.lab.comparison_zip(view).is_file()
    assert {p.name for p in view.folder.iterdir()} >= {"psd_overlay.png", "metric_changes.png", "mel_spectrograms.png"}


def test_heatmaps_mark_empty_cells_apart_from_a_draw_and_count_in_whole_numbers():
    from restorelab.plots import heatmap_plotly

    rates = np.array([[np.nan, 0.5], [0.5, np.nan]])
    win = heatmap_plotly(rates, ["a", "b"], "Win rate (row beats column)")
    assert [list(row) for row in win.data[0].text] == [["–", "0.50"], ["0.50", "–"]]
    assert win.data[0].zmid == 0.5 and win.layout.plot_bgcolor == "#bdbdbd"  # grey gaps, white draws
    counts = heatmap_plotly(np.array([[np.nan, 12.0], [12.0, np.nan]]), ["a", "b"], "Votes per pair", fmt=".0f")
    assert counts.data[0].colorbar.tickformat == "d" and counts.data[0].colorbar.dtick == 3
    assert heatmap_plotly(np.full((8, 8), 0.5), list("abcdefgh"), "Win rate").layout.height > win.layout.height


def test_the_metrics_table_gives_each_verdicts_reason_and_the_columns_picked(app):
    base = {"name": "input", "hf_energy_db": -40.0, "hf_energy_gain_db": 0.0, "hpss_ratio_db": 5.0,
            "log_mel_distance": 0.0, "effective_bandwidth_hz": 16000.0, "loudness_lufs": -20.0, "peak_db": -1.0}
    good = {**base, "name": "gentle", "hf_energy_db": -42.0, "hf_energy_gain_db": -2.0, "log_mel_distance": 0.05,
            "hf_energy_down": True, "hpss_kept": True, "faithful": True, "pass": True}
    bad = {**base, "name": "harsh", "hf_energy_db": -39.0, "hf_energy_gain_db": 1.0, "hpss_ratio_db": 4.5,
           "log_mel_distance": 0.25, "hf_energy_down": False, "hpss_kept": False, "faithful": False, "pass": False}
    narrow = {**base, "name": "bwe", "effective_bandwidth_hz": 16200.0, "band_extended": False, "hpss_kept": True,
              "faithful": True, "pass": False}
    columns, rows = app.lab.metrics_table([base, good, bad, narrow], {"gentle": "sounds the same as x"})
    assert columns == ["name", *app.lab.TABLE_COLUMNS, "note"]
    verdicts = [row[columns.index("verdict")] for row in rows]
    assert verdicts == ["", "pass",
                        "fail: energy above 6 kHz not lower (+1.00 dB); harmonic/percussive ratio down 0.50 dB "
                        "(at most 0.05); log-mel distance 0.250 >= 0.2",
                        "fail: band +200 Hz, needs +500"]
    assert rows[1][-1] == "sounds the same as x"
    columns, rows = app.lab.metrics_table([base, good], None, ["peak_db", "not-a-column", "hf_energy_db"])
    assert columns == ["name", "peak_db", "hf_energy_db", "note"]  # in the table's order; unknown names left out
    assert app.on_metric_columns(None, ["peak_db"]) == gr.skip()


def test_compare_sends_the_table_with_the_columns_picked_before_it(app, tmp_path):
    """The table arrives with the visitor's columns (and the same in each later step); an API call
    that leaves them out gets the default ones."""
    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    metrics = 1 + len(app.PLAYER_NAMES) + 3  # view, players, mel, linear, psd, then the table
    for extra, headers in (([["peak_db", "verdict"]], ["name", "verdict", "peak_db", "note"]),
                           ([], ["name", *app.lab.TABLE_COLUMNS, "note"])):
        tables = [update[metrics] for update in app.on_compare(clip, ["spectral_gate_hf"], False, *knobs(app), *extra)
                  if isinstance(update[metrics], dict) and "headers" in update[metrics]]
        assert tables and all(table["headers"] == headers for table in tables)
    demo = app.build_app()
    compare = next(d for d in demo.config["dependencies"] if d.get("api_name") == "on_compare")
    picker = next(c["id"] for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "metric-columns")
    assert compare["inputs"][-1] == picker
    assert not any(d["trigger_after"] == compare["id"] for d in demo.config["dependencies"])  # no second sending


def test_the_progress_line_counts_only_the_restorers_that_run(app, tmp_path, monkeypatch):
    from restorers import Availability

    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    cls = app.lab.restorer_class("mcra_wiener")
    monkeypatch.setattr(cls, "availability_for", classmethod(lambda c, p: Availability(False, "not here")))
    first = next(iter(app.on_compare(clip, ["spectral_gate_hf", "mcra_wiener"], False, *knobs(app))))
    assert first[-1] == "Restored 0 of 1…"


def test_the_app_starts_without_importing_what_only_later_requests_need(tmp_path):
    """The app answers its first request sooner for leaving torch (the warm-up loads it once the
    server answers), transformers, scipy.stats (the leaderboard) and scipy.signal to the requests
    that use them: each takes from half a second to several to import."""
    code = ("import sys\n"
            "import app\n"
            "app.build_app()\n"
            "print(sorted(m for m in ('torch', 'transformers', 'demucs', 'scipy.stats', 'scipy.signal')"
            " if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1],
                            env={**os.environ, "RESTORELAB_VOTES_PATH": str(tmp_path / "votes.csv")})
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_compare_keeps_the_pages_progress_light_and_gives_blas_its_share_of_the_cores(app):
    """The status line tells how far a comparison got, so its outputs go without Gradio's animated
    overlays; and the app's BLAS runs one thread per restorer running at once."""
    from threadpoolctl import threadpool_info

    demo = app.build_app()
    compare = [d for d in demo.config["dependencies"] if d.get("api_name") == "on_compare"]
    assert len(compare) == 1 and compare[0]["show_progress"] == "minimal"
    limiter = app.lab.limit_blas_threads()
    try:
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas and set(blas) == {max(1, (os.cpu_count() or 1) // app.lab.COMPARE_WORKERS)}
    finally:
        limiter.restore_original_limits()


def test_warming_up_loads_every_shipped_checkpoint_and_reports_a_failing_restorer(app, monkeypatch):
    from restorers import spectral_unet

    monkeypatch.setattr(spectral_unet, "_MODELS", {})  # as in a fresh process
    assert app.lab.warm_up(seconds=0.5) == []
    shipped = {str(cls.checkpoint_path(cls().params).resolve())
               for cls in (spectral_unet.UNetDenoise, spectral_unet.UNetCodec, spectral_unet.UNetBandwidthExtension)}
    assert shipped <= set(spectral_unet._MODELS)

    def broken(self, audio, sample_rate):
        raise RuntimeError("no good")

    monkeypatch.setattr(app.lab.restorer_class("unet_codec"), "__call__", broken)
    assert app.lab.warm_up(seconds=0.5) == ["unet_codec: RuntimeError: no good"]


def test_a_comparison_started_during_a_warm_up_restores_after_it(app, tmp_path):
    import threading

    clip, *_ = app.on_upload(str(upload_file(tmp_path)))
    steps = app.lab.compare_steps(clip, ["spectral_gate_hf"], {}, cache=None)
    stages = [next(steps)[0]]  # the input's player goes out at once
    with app.lab._WARMING:  # a warm-up is running
        waiting = threading.Thread(target=lambda: stages.append(next(steps)[0]))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive() and stages == ["input"]
    waiting.join(30)
    assert stages == ["input", "output"] and [stage for stage, _ in steps] == ["metrics", "psd", "spectrograms"]
