"""Listening studies: the folder, the design, listeners and their codes, results with known answers."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import SR, add_noise, band_level_db, melody
from restorelab import audio as A
from restorelab.cli import main
from restorelab.listening.candidates import audio_sha256
from restorelab.listening.design import PlannedTrial, listener_plan, main_trials
from restorelab.listening.study import (ANCHOR, Design, StudyError, build_study, load_study)
from restorelab.listening.ratings import Leaderboard
from restorelab.listening.study_results import (results_markdown, separation, study_ids, study_results, summarise,
                                                 write_results)
from restorelab.listening.study_session import StudyServer, valid_listener_id
from restorelab.listening.transport import ListeningError, ListenRules, StimulusStore
from restorelab.listening.votes import VoteLog
from restorers import get_restorer

NAMES = ("spectral_gate_hf", "mcra_wiener")


def clip_files(folder: Path, count: int = 2, seconds: float = 3.0) -> list[Path]:
    files = []
    for i in range(count):
        x = add_noise(melody(seconds, seed=i), 25.0, np.random.default_rng(i))
        files.append(A.write_wav(folder / f"clip{i}.wav", np.stack([x, 0.9 * x]), SR))
    return files


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    files = clip_files(folder)
    restorers = {name: get_restorer(name) for name in NAMES}
    build_study(files, folder / "study", restorers=restorers, design=Design(trials_per_listener=8), study_id="s1")
    return load_study(folder / "study")


def test_a_study_folder_holds_matched_stimuli_and_their_settings(study, tmp_path):
    assert study.id == "s1" and [clip.id for clip in study.clips] == ["clip0", "clip1"]
    clip = study.clips[0]
    assert [c.label for c in clip.candidates] == ["input", *NAMES]
    original = A.load_audio(clip_files(tmp_path)[0]).audio
    assert clip.candidates[0].sha256 == audio_sha256(original)
    assert clip.candidates[1].sha256 == audio_sha256(get_restorer(NAMES[0])(original, SR))
    assert clip.candidates[2].settings[0]["params"]["gain_floor_db"] == get_restorer(NAMES[1]).params.gain_floor_db
    levels = []
    for relative in [c.file for c in clip.candidates] + [clip.anchor_file]:
        stimulus = A.load_audio(study.path(relative))
        assert stimulus.sample_rate == SR and stimulus.channels == 2
        levels.append(A.loudness_lufs(stimulus.audio, SR))
        assert A.true_peak_dbtp(stimulus.audio, SR) <= -1.0 + 0.05
    assert max(levels) - min(levels) < 0.05 and levels[0] == pytest.approx(clip.loudness_lufs, abs=0.05)
    anchor = A.load_audio(study.path(clip.anchor_file)).audio
    assert band_level_db(anchor, original, 4500, 20000) < -80  # the 3.5 kHz anchor keeps nothing up there
    assert abs(band_level_db(anchor, original, 200, 3000) - band_level_db(
        A.load_audio(study.path(clip.candidates[0].file)).audio, original, 200, 3000)) < 0.1
    assert load_study(study.folder).to_json() == study.to_json()  # round trip


def test_a_study_file_is_read_exactly_and_each_fault_is_named(study, tmp_path):
    import shutil

    import soundfile as sf

    raw = (study.folder / "study.json").read_text(encoding="utf-8")
    assert raw.startswith('{\n  "format": 2,\n  "id": "s1",\n  "test": "pairwise",') and raw.endswith("}\n")
    assert load_study(study.folder).to_json() == raw  # every field read back, the version and time included
    clip = study.clips[0]
    assert (clip.source, clip.prompt, clip.duration_s) == ("clip0.wav", "", 3.0)
    for relative in [c.file for c in clip.candidates] + [clip.anchor_file]:
        info = sf.info(study.path(relative))
        assert (info.format, info.subtype) == ("FLAC", "PCM_24")  # lossless, 24-bit

    copy = tmp_path / "copy"
    shutil.copytree(study.folder, copy)
    path = copy / "study.json"
    data = json.loads(raw)
    data["clips"][0]["prompt"] = "café, ♪"
    data["questionnaire"] = [{"id": "age", "question": "Âge ?", "choices": ["<30", "30+"]}]
    data["app_version"] = "0.0.1"  # a study made by another version says so
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    edited = load_study(copy)
    assert edited.clips[0].prompt == "café, ♪" and edited.questionnaire == data["questionnaire"]
    assert edited.app_version == "0.0.1"
    assert '"prompt": "café, ♪"' in edited.to_json()  # written as read, not escaped

    def refusal(change):
        changed = json.loads(raw)
        change(changed)
        path.write_text(json.dumps(changed), encoding="utf-8")
        with pytest.raises(StudyError) as error:
            load_study(copy)
        return str(error.value)

    assert refusal(lambda d: d.update(format=99)) == f"{path}: was written by a newer version of restorelab (format 99)"
    assert refusal(lambda d: d.update(test="abx")) == f"{path}: is not a valid study file (ValueError: unknown test 'abx')"
    assert refusal(lambda d: d.pop("clips")) == f"{path}: is not a valid study file (KeyError: 'clips')"
    path.write_text(raw, encoding="utf-8")
    (copy / clip.candidates[1].file).unlink()
    with pytest.raises(StudyError, match=rf"^{copy / clip.candidates[1].file}: a stimulus of the study is missing$"):
        load_study(copy)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(StudyError, match=rf"^{path}: cannot be read as a study \(Expecting"):
        load_study(copy)
    path.unlink()
    with pytest.raises(StudyError, match=rf"^{copy}: is not a study folder \(no study.json\); make one with "
                                         r"`restorelab study build`$"):
        load_study(copy)


def test_identical_outputs_are_merged_per_clip(tmp_path):
    files = clip_files(tmp_path, count=1)
    restorers = {"spectral_gate_hf": get_restorer("spectral_gate_hf", prop_decrease=0.0),
                 "mcra_wiener": get_restorer("mcra_wiener"), "spectral_gate": get_restorer("spectral_gate",
                                                                                          prop_decrease=0.0)}
    built = build_study(files, tmp_path / "study", restorers=restorers)
    # A gate with no reduction gives its input back (to float rounding).
    assert [c.label for c in built.clips[0].candidates] == ["input=spectral_gate_hf=spectral_gate", "mcra_wiener"]


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    files = clip_files(tmp_path)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(StudyError, match="broken.wav"):
        build_study([*files, bad], tmp_path / "study", restorers={"spectral_gate_hf": get_restorer("spectral_gate_hf")})
    assert not (tmp_path / "study").exists() and not list(tmp_path.glob(".study.partial-*"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(StudyError, match="already exists"):
        build_study(files, tmp_path / "taken", restorers={"spectral_gate_hf": get_restorer("spectral_gate_hf")})
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    with pytest.raises(StudyError, match="share an id"):
        (tmp_path / "other").mkdir()
        twin = A.write_wav(tmp_path / "other" / "clip0.wav", np.zeros((1, SR), np.float32) + 0.1, SR)
        build_study([files[0], twin], tmp_path / "s2", restorers={"spectral_gate_hf": get_restorer("spectral_gate_hf")})


def test_outputs_made_elsewhere(tmp_path):
    systems = tmp_path / "systems"
    (systems / "input").mkdir(parents=True)
    clean = melody(3.0, seed=4)
    A.write_wav(systems / "input" / "song.wav", np.stack([clean, clean]), SR)
    for name, gain in (("audiosr", 0.9), ("apollo", 0.5)):
        (systems / name).mkdir()
        A.write_wav(systems / name / "song.flac", np.stack([gain * clean, clean])[:, : len(clean) - 100], SR)
    built = build_study([], tmp_path / "study", systems_dir=systems)
    clip = built.clips[0]
    assert [c.label for c in clip.candidates] == ["input", "apollo", "audiosr"]
    assert clip.candidates[1].settings == [{"system": "apollo"}] and clip.duration_s == pytest.approx(3.0 - 100 / SR)
    (systems / "later").mkdir()
    with pytest.raises(StudyError, match=r"later/song\.\*: missing"):
        build_study([], tmp_path / "study2", systems_dir=systems)
    A.write_wav(systems / "later" / "song.wav", clean[None], SR)
    with pytest.raises(StudyError, match="has 1 channel"):
        build_study([], tmp_path / "study3", systems_dir=systems)
    A.write_wav(systems / "later" / "song.wav", np.stack([clean, clean])[:, : SR], SR)
    with pytest.raises(StudyError, match="at most 0.5 s of difference"):
        build_study([], tmp_path / "study4", systems_dir=systems)
    with pytest.raises(StudyError, match="input/: missing|input: missing"):
        build_study([], tmp_path / "study5", systems_dir=tmp_path)


def test_ids_are_made_of_safe_characters_and_which_references_a_test_needs_is_checked():
    from restorelab.listening.study import check_references, clean_id

    assert clean_id("  My Clip (v2).wav ") == "My-Clip-v2-wav"
    assert clean_id("Ünïcode_ok-1") == "n-code_ok-1" and clean_id("x" * 70) == "x" * 64
    assert clean_id("Xylophone-X") == "Xylophone-X"  # only the dashes made at the ends go
    with pytest.raises(StudyError, match=r"^'\?\?' cannot be made into an id \(letters, digits, - and _\)$"):
        clean_id("??")
    check_references("pairwise", None, None)
    check_references("mushra", "refs", None)
    check_references("mushra", None, "hiss")
    refusals = {("abx", None, None): "the test must be one of pairwise, mushra, got 'abx'",
                ("mushra", None, None): "a MUSHRA test needs the clean originals: give --reference-dir (the clips "
                                        "are degraded) or --preset (the clips are clean, and are degraded with it), "
                                        "not both",
                ("mushra", "refs", "hiss"): "a MUSHRA test needs the clean originals",
                ("pairwise", "refs", None): "--reference-dir and --preset are for --test mushra",
                ("pairwise", None, "hiss"): "--reference-dir and --preset are for --test mushra"}
    for args, message in refusals.items():
        with pytest.raises(StudyError) as error:
            check_references(*args)
        assert str(error.value).startswith(message), args


def test_a_study_is_written_beside_its_folder_then_renamed_and_each_bad_request_named(tmp_path):
    from datetime import datetime, timezone

    from restorelab.listening.study import DEFAULT_INSTRUCTIONS, write_study

    files = clip_files(tmp_path, count=2, seconds=1.0)
    gate = {"spectral_gate_hf": get_restorer("spectral_gate_hf")}
    folder = tmp_path / "deep" / "er" / "study"  # folders made as needed
    calls, partial = [], []

    def progress(*args):
        calls.append(args)
        partial.extend(p.name for p in folder.parent.iterdir())

    built = build_study(files, folder, restorers=gate, progress=progress)
    assert calls == [("clip0", 0, 2), ("clip1", 1, 2), ("done", 2, 2)]
    assert partial and all(name.startswith(".study.partial-") for name in partial)  # written beside, then renamed
    assert [p.name for p in folder.parent.iterdir()] == ["study"] and built.folder == folder
    assert re.fullmatch(r"study-[0-9a-f]{8}", built.id) and built.instructions == DEFAULT_INSTRUCTIONS
    created = datetime.fromisoformat(built.created_utc)
    assert created.utcoffset().total_seconds() == 0 and created.microsecond == 0
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60
    clip = built.clips[0]
    assert clip.candidate("input").settings == [{"restorer": "input"}]
    assert clip.candidate("spectral_gate_hf").settings[0]["restorer"] == "spectral_gate_hf"
    (tmp_path / "empty").mkdir()
    assert build_study(files[:1], tmp_path / "empty", restorers=gate).folder == tmp_path / "empty"

    (tmp_path / "a file").write_text("mine")
    refusals = [
        (lambda: write_study(["a"], iter([]), tmp_path / "s", reveal="later"),
         "reveal must be one of end, never, each, got 'later'"),
        (lambda: write_study(["a"], iter([]), tmp_path / "s", test="abx"), "the test must be one of pairwise, mushra, got 'abx'"),
        (lambda: write_study([], iter([]), tmp_path / "s"), "no clips: give audio files or folders"),
        (lambda: write_study(["a"], iter([]), tmp_path / "a file"), f"{tmp_path / 'a file'}: already exists; choose a "
                                                                    "new folder for the study"),
        (lambda: write_study(["b a", "b-a", "c", "c"], iter([]), tmp_path / "s"),
         "these clips would share an id: b-a, c; rename them"),
        (lambda: build_study(files, tmp_path / "s"), "no restorers: name at least one with -r"),
        (lambda: build_study([], tmp_path / "s", systems_dir=tmp_path, test="mushra", preset="hiss"),
         "--systems-dir holds outputs of degraded clips; give their originals with --reference-dir, not --preset"),
    ]
    for make, message in refusals:
        with pytest.raises(StudyError) as error:
            make()
        assert str(error.value) == message
    with pytest.raises(StudyError, match="clip0.wav: is too long: 1.0 s; the limit is 0 s"):
        build_study(files, tmp_path / "s", restorers=gate, max_duration_s=0.4)
    assert not (tmp_path / "s").exists() and (tmp_path / "a file").read_text() == "mine"


def test_other_systems_outputs_are_trimmed_with_their_input_and_reference(tmp_path):
    systems, refs = tmp_path / "systems", tmp_path / "refs"
    for folder in (systems / "input", systems / "a", refs):
        folder.mkdir(parents=True)
    (systems / "input" / "notes.txt").write_text("not a clip")
    (systems / "input" / "folder.wav").mkdir()  # nor is a folder
    clean = np.stack([melody(1.0, seed=8)] * 2)
    A.write_wav(systems / "input" / "song.wav", add_noise(clean, 20.0, np.random.default_rng(0))[:, : SR - 4410], SR)
    A.write_wav(systems / "a" / "song.wav", clean[:, : SR - 2205], SR)  # longer than the input: trimmed to it
    A.write_wav(refs / "song.wav", clean, SR)
    built = build_study([], tmp_path / "pairwise", systems_dir=systems)
    assert [clip.id for clip in built.clips] == ["song"] and built.clips[0].duration_s == pytest.approx(0.9)
    for candidate in built.clips[0].candidates:
        assert A.load_audio(built.path(candidate.file)).audio.shape == (2, SR - 4410)
    mushra = build_study([], tmp_path / "mushra", systems_dir=systems, test="mushra", reference_dir=refs)
    reference = mushra.clips[0].candidate("hidden_reference")
    assert A.load_audio(mushra.path(reference.file)).audio.shape == (2, SR - 4410)
    assert reference.sha256 == audio_sha256(A.load_audio(refs / "song.wav").audio[:, : SR - 4410])
    assert mushra.clips[0].candidate("a").metrics["si_sdr_db"] > 60  # the clean original, trimmed alike


# -- design ---------------------------------------------------------------------

def test_every_clip_and_pair_is_dealt_evenly_and_checks_are_placed_as_stated(study):
    universe = main_trials(study)
    assert len(universe) == 2 * 3  # two clips, three sounds each: three pairs
    dealt = Counter()
    for index in range(25):
        plan = listener_plan(study, index)
        assert len(plan) == study.design.trials_per_listener and plan == listener_plan(study, index)
        checks = [t for t in plan if t.check]
        assert len(checks) == study.design.checks == 3 and not plan[0].check
        assert {t.check for t in checks} == {"identical", "anchor"}
        for trial in checks:
            if trial.check == "identical":
                assert trial.left == trial.right
            else:
                assert {trial.left, trial.right} == {"input", ANCHOR}
        for trial in plan:
            if not trial.check:
                dealt[(trial.clip_id, *sorted((trial.left, trial.right)))] += 1
    # 25 listeners x 5 main trials = 125 over 6 (clip, pair): 20 or 21 each.
    assert set(dealt) == set(universe) and max(dealt.values()) - min(dealt.values()) <= 1
    lefts = sum(t.left < t.right for i in range(25) for t in listener_plan(study, i) if not t.check)
    assert 45 <= lefts <= 80  # of 125: sides drawn at random (binomial, +-3 sd)


def test_what_answers_a_check():
    assert PlannedTrial("c", "a", "a", "identical").check_passed("tie") is True
    assert PlannedTrial("c", "a", "a", "identical").check_passed("left") is False
    assert PlannedTrial("c", "input", ANCHOR, "anchor").check_passed("left") is True
    assert PlannedTrial("c", ANCHOR, "input", "anchor").check_passed("left") is False
    assert PlannedTrial("c", ANCHOR, "input", "anchor").check_passed("both_bad") is False
    assert PlannedTrial("c", "a", "b").check_passed("left") is None


# -- listeners ------------------------------------------------------------------

def complete(server, listener, answer, store):
    """Judge every trial of ``listener``'s plan with ``answer(planned) -> choice``, as the page would."""
    while not listener.done:
        trial = server.present(listener)
        for token in trial.tokens:
            store.take(token)
        report = json.dumps({"trial": trial.trial_id, "left_s": 0.0, "right_s": 0.0})
        server.vote(listener, answer(listener.plan[listener.position]), report)


def right_answer(trial):
    if trial.check == "identical":
        return "tie"
    if trial.check == "anchor":
        return "left" if trial.right == ANCHOR else "right"
    return "left"


def test_listeners_get_places_resume_and_get_a_code(study, tmp_path):
    log, store = VoteLog(tmp_path / "votes.csv"), StimulusStore()
    rules = ListenRules(min_listen_s=0.0, min_decision_s=0.0)
    server = StudyServer(study, log, store, rules, secret=b"secret")
    first, second = server.arrive(), server.arrive("not a valid id!")
    assert (first.index, second.index) == (0, 1) and valid_listener_id(second.listener_id)
    with pytest.raises(ValueError, match=r"^Answer the questions first, then press Start\.$"):
        server.present(first)
    with pytest.raises(ValueError, match="What are you listening on"):
        server.answer(first, {"playback": "A gramophone", "experience": "Casual listener"})
    server.answer(first, {"playback": "Headphones", "experience": "Casual listener"})
    trial = server.present(first)
    with pytest.raises(ListeningError, match="never loaded"):
        server.vote(first, "left", json.dumps({"trial": trial.trial_id, "left_s": 3, "right_s": 3}))
    complete(server, first, right_answer, store)
    rows = log.read()
    assert len(rows) == len(first.plan) and {r["listener_id"] for r in rows} == {first.listener_id}
    assert {r["completion_code"] for r in rows} == {server.completion_code(first.listener_id)}
    assert json.loads(rows[0]["questionnaire"]) == {"playback": "Headphones", "experience": "Casual listener"}
    assert [r["check"] for r in rows] == [t.check for t in first.plan]
    assert all(r["check_passed"] == ("pass" if r["check"] else "") for r in rows)
    # A restart (a new server on the same log): the same listener resumes, done; a new one gets the next place.
    again = StudyServer(study, log, store, rules, secret=b"secret")
    back = again.arrive(first.listener_id)
    assert back.done and back.index == 0 and back.questionnaire
    assert again.arrive().index == 1
    assert again.completion_code("p1") == server.completion_code("p1") != server.completion_code("p2")
    assert StudyServer(study, log, store, rules, secret=b"other").completion_code("p1") != server.completion_code("p1")
    linked = again.arrive("ignored-stored-id", link_id="PROLIFIC_42")
    assert linked.listener_id == "PROLIFIC_42"


def test_each_vote_names_its_sides_settings_and_counts_for_the_listener_who_comes_back(study, tmp_path):
    rules = ListenRules(min_listen_s=0.0, min_decision_s=0.0)
    server = StudyServer(study, VoteLog(tmp_path / "votes.csv"), StimulusStore(), rules, secret=b"s")
    server.arrive("first")  # takes place 0
    listener = server.arrive("second")
    server.answer(listener, {"playback": "Headphones", "experience": "Casual listener"})
    with pytest.raises(ListeningError, match=r"^There is no pair to vote on: press Start\.$"):
        server.vote(listener, "left", json.dumps({"trial": "none", "left_s": 0.0, "right_s": 0.0}))
    settings_seen, hashes_seen = {}, {}
    while len(listener.judged) < 3 or ANCHOR not in settings_seen or "input" not in settings_seen:
        trial = server.present(listener)
        for token in trial.tokens:
            server.store.take(token)
        cast = server.vote(listener, right_answer(listener.plan[listener.position]),
                           json.dumps({"trial": trial.trial_id, "left_s": 0.0, "right_s": 0.0}))
        assert cast.listener_index == 1
        assert listener.judged[-1] == f"{cast.restorer_left} vs {cast.restorer_right}: {cast.winner}"
        settings_seen.update({cast.restorer_left: cast.settings_left, cast.restorer_right: cast.settings_right})
        hashes_seen.update({cast.restorer_left: cast.stimulus_left_sha256,
                            cast.restorer_right: cast.stimulus_right_sha256})
    clip = study.clips[0]
    assert settings_seen[ANCHOR] == '[{"anchor": "input low-passed at 3500 Hz"}]'
    assert hashes_seen[ANCHOR] == "" and hashes_seen["input"] == clip.candidate("input").sha256
    for candidate in clip.candidates:
        if candidate.label in settings_seen:  # every clip's candidates have the same settings here
            assert settings_seen[candidate.label] == json.dumps(candidate.settings, sort_keys=True)
    assert list(json.loads(settings_seen["mcra_wiener"])[0]["params"]) == sorted(
        json.loads(settings_seen["mcra_wiener"])[0]["params"])
    # Back on another device: the same place, the next trial, the answers already given.
    back = server.arrive(link_id="second")
    assert (back.index, back.position, back.questionnaire) == (1, len(listener.judged), listener.questionnaire)
    assert server.arrive("first").position == 0


def test_a_restarted_server_gives_each_listener_their_own_place_and_reads_the_secret_beside_the_log(
        study, tmp_path, monkeypatch):
    from dataclasses import replace

    from restorelab.listening.study_session import SECRET_ENV, study_secret

    monkeypatch.delenv(SECRET_ENV, raising=False)
    log, store = VoteLog(tmp_path / "votes.csv"), StimulusStore()
    rules = ListenRules(min_listen_s=0.0, min_decision_s=0.0)
    server = StudyServer(study, log, store, rules)  # no secret given: the one kept beside the log
    assert server.completion_code("p") == StudyServer(study, log, store, rules,
                                                      secret=study_secret(log.path)).completion_code("p")
    server.arrive("a")
    b = server.arrive("b")
    assert b.questionnaire == ""  # a new listener has answered nothing
    server.answer(b, {"playback": "Headphones", "experience": "Casual listener"})
    complete(server, b, right_answer, store)
    again = StudyServer(study, log, store, rules)
    assert again.arrive("b").index == 1 and again.arrive("c").index == 2  # b's place is read from the log
    assert study.clip("clip1").id == "clip1" and study.clips[0].candidate("input").label == "input"
    with pytest.raises(KeyError, match="nope"):
        study.clip("nope")
    with pytest.raises(KeyError, match="nope"):
        study.clips[0].candidate("nope")
    french = replace(study, questionnaire=[{"id": "casque", "question": "Écoutez-vous au casque ?",
                                            "choices": ["Oui, écouteurs", "Non"]}])
    listener = StudyServer(french, VoteLog(tmp_path / "fr.csv"), store, rules, secret=b"s").arrive()
    StudyServer(french, VoteLog(tmp_path / "fr.csv"), store, rules, secret=b"s").answer(listener,
                                                                                     {"casque": "Oui, écouteurs"})
    assert listener.questionnaire == '{"casque": "Oui, écouteurs"}'  # kept as written, not escaped


def test_metrics_that_are_not_finite_are_stored_as_missing():
    from restorelab.listening.study import _finite

    assert _finite(float("inf")) is None and _finite(np.nan) is None and _finite(-np.inf) is None
    assert _finite(np.float32(2.5)) == 2.5 and type(_finite(np.float32(2.5))) is float


# -- results --------------------------------------------------------------------

TRUE_STRENGTH = {"input": -0.8, "spectral_gate_hf": 0.6, "mcra_wiener": 0.2}


def simulated_rows(study, listeners=24, careless=(3, 7, 11), seed=0, clip_sd=0.2, listener_sd=0.0):
    """Vote rows of listeners who follow each trial of their plan: they vote by the Bradley-Terry
    model with TRUE_STRENGTH, plus a per-clip (and per-listener) offset of each candidate, and answer
    checks rightly 95 % of the time; the careless ones choose at random."""
    rng = np.random.default_rng(seed)
    offsets = {clip.id: {name: rng.normal(0, clip_sd) for name in TRUE_STRENGTH} for clip in study.clips}
    choices = ["left", "right", "tie", "both_bad"]
    rows = []
    for k in range(listeners):
        listener = {name: rng.normal(0, listener_sd) for name in TRUE_STRENGTH}
        for number, trial in enumerate(listener_plan(study, k)):
            if k in careless:
                choice = choices[rng.integers(4)]
            elif trial.check:
                choice = right_answer(trial) if rng.random() < 0.95 else "left"
            else:
                strength = {name: TRUE_STRENGTH[name] + offsets[trial.clip_id][name] + listener[name]
                            for name in TRUE_STRENGTH}
                p_left = 1 / (1 + np.exp(strength[trial.right] - strength[trial.left]))
                choice = "left" if rng.random() < p_left else "right"
            passed = trial.check_passed(choice)
            rows.append({"study_id": study.id, "listener_id": f"l{k}", "session_id": f"s{k}",
                         "trial_id": f"{k}-{number}", "clip_id": trial.clip_id, "restorer_left": trial.left,
                         "restorer_right": trial.right, "choice": choice, "check": trial.check, "flags": "",
                         "check_passed": {None: "", True: "pass", False: "fail"}[passed]})
    return rows


@pytest.fixture(scope="module")
def three_clip_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    return build_study(clip_files(folder, count=3), folder / "study",
                       restorers={name: get_restorer(name) for name in NAMES},
                       design=Design(trials_per_listener=40, seed=3))


def test_results_recover_the_order_and_flag_the_careless(three_clip_study):
    rows = simulated_rows(three_clip_study)
    results = study_results(three_clip_study, rows, n_bootstrap=200)
    # A careless listener fails each check with probability 3/4; with 6 checks, more than 2
    # failures (the rule) happens with probability 0.96, so this seeded run flags all three,
    # and none of the others (each fails a check with probability 0.05).
    assert sorted(results.flagged) == ["l11", "l3", "l7"]
    assert all("failed" in listener.flagged for listener in results.listeners if listener.flagged)
    assert [row["name"] for row in results.kept.rows] == sorted(TRUE_STRENGTH, key=TRUE_STRENGTH.get, reverse=True)
    truth = np.array([TRUE_STRENGTH[n] for n in results.kept.names])
    truth -= truth.mean()
    for row in results.kept.rows:
        assert row["ci_low"] <= truth[results.kept.names.index(row["name"])] <= row["ci_high"]
    assert results.kept.votes == 21 * 34 and results.everyone.votes == 24 * 34
    assert len(results.per_clip) == 3 and all(board.rows for board in results.per_clip.values())
    assert "spectral_gate_hf" in results.separation


@pytest.mark.slow
def test_intervals_cover_the_truth_at_about_their_nominal_rate(three_clip_study):
    """Studies simulated with listeners and clips that differ (each shifts every candidate's
    strength by a normal offset, sd 0.3 and 0.2): the 95 % intervals of the listener-and-clip
    bootstrap should cover the mean truth about 95 % of the time (between 85 % and 100 % over
    40 studies and 3 candidates: 120 intervals, binomial sd 2 points)."""
    covered = []
    for seed in range(40):
        rows = simulated_rows(three_clip_study, listeners=12, careless=(), seed=100 + seed,
                              clip_sd=0.2, listener_sd=0.3)
        board = study_results(three_clip_study, rows, n_bootstrap=200, seed=seed).kept
        truth = np.array([TRUE_STRENGTH[n] for n in board.names])
        truth -= truth.mean()
        covered += [row["ci_low"] <= truth[board.names.index(row["name"])] <= row["ci_high"] for row in board.rows]
    assert 0.85 <= np.mean(covered) <= 1.0, np.mean(covered)


def test_study_commands(tmp_path, capsys):
    files = clip_files(tmp_path)
    out = tmp_path / "study"
    assert main(["study", "build", *map(str, files), "-r", "spectral_gate_hf", "-o", str(out), "-q",
                 "--trials-per-listener", "6", "--reveal", "never", "--id", "demo"]) == 0
    assert "study demo: 2 clip(s), 4 distinct sound(s), 6 trials per listener" in capsys.readouterr().out
    built = load_study(out)
    assert built.reveal == "never" and built.design.trials_per_listener == 6
    assert main(["study", "build", str(files[0]), "-r", "spectral_gate_hf", "-o", str(out), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["study", "build", "--systems-dir", str(tmp_path), "-r", "spectral_gate_hf", "-o",
                 str(tmp_path / "x"), "-q"]) == 2
    log = VoteLog(tmp_path / "votes.csv")
    server = StudyServer(built, log, StimulusStore(), ListenRules(min_listen_s=0.0, min_decision_s=0.0), secret=b"s")
    for _ in range(2):
        listener = server.arrive()
        server.answer(listener, {"playback": "Headphones", "experience": "Casual listener"})
        complete(server, listener, right_answer, server.store)
    assert main(["study", "results", str(out), "--votes", str(tmp_path / "votes.csv"), "-o",
                 str(tmp_path / "results")]) == 0
    printed = capsys.readouterr().out
    assert "# Study demo" in printed and "2 listener(s), 0 flagged" in printed and "## Win rates" in printed
    for name in ("results.md", "leaderboard.csv", "per_clip.csv", "win_rates.csv", "listeners.csv",
                 "leaderboard.png"):
        assert (tmp_path / "results" / name).stat().st_size > 0
    assert main(["study", "results", str(tmp_path)]) == 2
    assert "is not a study folder" in capsys.readouterr().err


# -- results from hand-made votes --------------------------------------------------------------------

def vote(listener, clip="c1", left="a", right="b", choice="left", check="", passed="", flags="", study="st",
         questionnaire='{"playback": "Headphones"}'):
    return {"study_id": study, "listener_id": listener, "clip_id": clip, "restorer_left": left,
            "restorer_right": right, "choice": choice, "check": check, "check_passed": passed, "flags": flags,
            "questionnaire": questionnaire}


def hand_made_votes():
    """Four listeners: ``even`` fails exactly half their checks (not more: kept at a limit of one
    half), ``over`` one more than half, ``fast`` decides every vote too fast, ``both`` does both;
    plus a vote of another study and one without a listener, which must be ignored."""
    rows = []
    for listener in ("even", "over", "fast", "both"):
        flags = "fast" if listener in ("fast", "both") else ""
        rows += [vote(listener, clip, flags=flags, questionnaire=f'{{"who": "{listener}"}}')
                 for clip in ("c2", "c1", "c1")]
        failures = {"even": 2, "over": 3, "fast": 0, "both": 3}[listener]
        checks = 3 if listener == "both" else 4
        rows += [vote(listener, check="identical", choice="left" if k < failures else "tie",
                      passed="fail" if k < failures else "pass", flags=flags) for k in range(checks)]
    rows.append(vote("even", choice="right"))
    rows += [vote("other", study="elsewhere"), vote("", choice="right")]
    return rows


def test_listeners_are_counted_and_flagged_at_the_stated_share():
    results = summarise("st", hand_made_votes(), max_failed_check_share=0.5, n_bootstrap=20)
    summary = {listener.listener_id: listener for listener in results.listeners}
    assert list(summary) == ["both", "even", "fast", "over"]
    assert [(s.votes, s.checks, s.failed_checks) for s in summary.values()] == [(3, 3, 3), (4, 4, 2), (3, 4, 0),
                                                                                (3, 4, 3)]
    assert summary["even"].flagged == ""
    assert summary["over"].flagged == "failed 3 of 4 checks"
    assert summary["fast"].flagged == "voted faster than the listening rules allow"
    assert summary["both"].flagged == "failed 3 of 3 checks; voted faster than the listening rules allow"
    assert summary["over"].questionnaire == '{"who": "over"}'
    assert results.flagged == ["both", "fast", "over"]
    # Only "even" is kept: 3 wins of a over b and 1 loss; everyone: 12 wins, 1 loss. Checks never count.
    assert (results.kept.votes, results.everyone.votes) == (4, 13)
    assert results.kept.win_rate[results.kept.names.index("a"), results.kept.names.index("b")] == 0.75
    assert list(results.per_clip) == ["c2", "c1"]  # the order the clips first appear in
    assert [board.votes for board in results.per_clip.values()] == [1, 3]
    assert results.per_clip["c2"].bootstrap.shape[0] == 50  # a fifth of the bootstrap, at least 50
    assert "fails more than 50% of their checks" in results.rule
    given = summarise("st", hand_made_votes(), 0.5, clip_ids=["c1", "c3"], n_bootstrap=300)
    assert list(given.per_clip) == ["c1", "c3"] and given.per_clip["c3"].votes == 0
    assert given.per_clip["c1"].bootstrap.shape[0] == 60
    assert summarise("st", hand_made_votes(), 0.75, n_bootstrap=20).flagged == ["both", "fast"]


def board(strengths: dict[str, float], differences: np.ndarray, votes: int = 100) -> Leaderboard:
    """Two candidates, best first, whose bootstrap differences (first minus second) are ``differences``."""
    names = list(strengths)
    rows = [{"name": name, "strength": strengths[name]} for name in names]
    bootstrap = np.stack([differences, np.zeros_like(differences)], axis=1)
    return Leaderboard(rows=rows, names=names, bootstrap=bootstrap, votes=votes)


def test_how_many_more_votes_would_separate_the_top_two():
    """Bootstrap differences of 0 and 0.8 in equal numbers: spread 0.4, interval [0, 0.8]. A lead of
    0.4 needs the interval's half-width 1.96 * 0.4 / sqrt(k) below 0.4, so k = 3.8416 times the
    votes: 100 votes need 284.16, so 285, more."""
    split = np.tile([0.0, 0.8], 50)
    assert separation(board({"a": 0.5, "b": 0.1}, split)) == (
        "a leads b by 0.40 (95 % interval [0.00, 0.80]); about 285 more votes like these would separate them, "
        "if the difference stays the same.")
    # An interval that excludes zero: 41 evenly spaced differences, percentiles at the 2nd and 40th.
    assert separation(board({"a": 0.5, "b": 0.1}, np.linspace(0.2, 0.6, 41))) == (
        "a is ahead of b: the 95 % interval of their difference, [0.21, 0.59], excludes zero.")
    level = "a and b are level so far; more votes will not tell them apart."
    assert separation(board({"a": 0.3, "b": 0.3}, split)) == level
    assert separation(board({"a": 0.5, "b": 0.1}, np.zeros(100))) == level
    assert separation(board({"a": 0.5, "b": 0.1}, split[:1])) == "Fewer than two candidates have votes."
    assert separation(Leaderboard(rows=[{"name": "a", "strength": 0.0}], names=["a"],
                                  bootstrap=np.zeros((9, 1)))) == "Fewer than two candidates have votes."


def test_results_files_hold_every_table(tmp_path):
    import csv

    results = summarise("st", hand_made_votes(), max_failed_check_share=0.5, n_bootstrap=20)
    written = write_results(results, tmp_path)
    assert sorted(path.name for path in written) == ["leaderboard.csv", "leaderboard.png", "listeners.csv",
                                                     "per_clip.csv", "results.md", "win_rates.csv"]

    def table(name):
        with open(tmp_path / name, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    ranking = table("leaderboard.csv")
    assert [(row["listeners"], row["name"], row["votes"]) for row in ranking] == [
        ("kept", "a", "4"), ("kept", "b", "4"), ("everyone", "a", "13"), ("everyone", "b", "13")]
    kept_a = results.kept.rows[0]
    assert float(ranking[0]["strength"]) == round(kept_a["strength"], 3) and float(ranking[0]["strength"]) > 0
    assert float(ranking[0]["ci_low"]) == round(kept_a["ci_low"], 3)
    assert float(ranking[0]["ci_high"]) == round(kept_a["ci_high"], 3)
    assert [(row["clip"], row["name"], row["votes"]) for row in table("per_clip.csv")] == [
        ("c2", "a", "1"), ("c2", "b", "1"), ("c1", "a", "3"), ("c1", "b", "3")]
    assert table("win_rates.csv") == [{"restorer": "a", "a": "", "b": "0.75"}, {"restorer": "b", "a": "0.25", "b": ""}]
    assert [(row["listener_id"], row["votes"], row["checks"], row["failed_checks"], row["flagged"])
            for row in table("listeners.csv")][:2] == [
        ("both", "3", "3", "3", "failed 3 of 3 checks; voted faster than the listening rules allow"),
        ("even", "4", "4", "2", "")]
    markdown = (tmp_path / "results.md").read_text()
    assert markdown.startswith("# Study st\n\n4 listener(s), 3 flagged; 4 votes from the others. A listener")
    assert "the left side won 75% of decisive votes (two-sided binomial p = 0.625)" in markdown
    assert "| a |  | 0.750 |\n| b | 0.250 |  |" in markdown
    assert "### c2" in markdown and markdown.index("### c2") < markdown.index("### c1")
    assert "resampling listeners and clips (20 samples); per clip, listeners (50 samples)" in markdown


def test_study_ids_in_the_order_their_votes_first_appear():
    rows = [{"study_id": "b"}, {"study_id": ""}, {"listener_id": "x"}, {"study_id": "a"}, {"study_id": "b"}]
    assert study_ids(rows) == ["b", "a"]
    assert study_ids([]) == []


def test_intervals_resample_listeners_not_votes():
    """Listener p prefers a four times, listener q prefers b four times. Resampling listeners draws
    p twice in a quarter of the samples, where a wins all eight votes: the interval reaches that
    sample's strength, for the whole study and for the clip alone. Resampling votes would reach it
    only when all eight draws are a's wins (1 in 256)."""
    rows = [vote(listener, choice=choice) for listener, choice in (("p", "left"), ("q", "right")) for _ in range(4)]
    results = summarise("st", rows, n_bootstrap=200)
    all_for_a = summarise("st", [vote("p") for _ in range(8)], n_bootstrap=2).kept.rows[0]["strength"]
    for board in (results.kept, results.everyone, results.per_clip["c1"]):
        a = next(row for row in board.rows if row["name"] == "a")
        assert a["strength"] == pytest.approx(0.0, abs=1e-9)
        assert a["ci_high"] == pytest.approx(all_for_a) and a["ci_low"] == pytest.approx(-all_for_a)


def test_results_are_reproducible_for_a_seed_and_rank_a_single_vote():
    rows = hand_made_votes()
    first, again = (summarise("st", rows, 0.5, n_bootstrap=30, seed=4) for _ in range(2))
    for one, two in [(first.kept, again.kept), (first.everyone, again.everyone),
                     (first.per_clip["c1"], again.per_clip["c1"])]:
        np.testing.assert_array_equal(one.bootstrap, two.bootstrap)
    assert first.kept.bootstrap.shape[0] == first.everyone.bootstrap.shape[0] == 30
    default_seed = summarise("st", rows, 0.5, n_bootstrap=30)  # the default seed, 0, is another
    for one, two in [(first.kept, default_seed.kept), (first.everyone, default_seed.everyone),
                     (first.per_clip["c1"], default_seed.per_clip["c1"])]:
        assert not np.array_equal(one.bootstrap, two.bootstrap)
    np.testing.assert_array_equal(summarise("st", rows, 0.5, n_bootstrap=30).everyone.bootstrap,
                                  summarise("st", rows, 0.5, n_bootstrap=30, seed=0).everyone.bootstrap)
    single = summarise("st", [vote("x", choice="right")], n_bootstrap=20)
    for board in (single.kept, single.everyone, single.per_clip["c1"]):
        assert [(row["name"], row["rank"], row["votes"]) for row in board.rows] == [("b", 1, 1), ("a", 2, 1)]
    no_answers = summarise("st", [{key: value for key, value in vote("x").items() if key != "questionnaire"}])
    assert no_answers.listeners[0].questionnaire == ""
    assert no_answers.kept.bootstrap.shape[0] == 500  # the default


def test_a_studys_results_use_its_clips_design_and_seed(study):
    """Every clip of the study has a ranking, voted on or not; its design's check limit (a third)
    decides the flags; the seed is handed on."""
    rows = [vote(listener, clip="clip0", left="input", right=NAMES[0], choice=choice, study=study.id)
            for listener, choice in (("l1", "left"), ("l2", "right")) for _ in range(3)]
    rows += [vote("l1", clip="clip0", check="identical", choice="left", passed="fail", study=study.id),
             *[vote("l1", clip="clip0", check="identical", choice="tie", passed="pass", study=study.id)] * 2]
    results = study_results(study, rows, n_bootstrap=20, seed=2)
    assert list(results.per_clip) == ["clip0", "clip1"] and results.per_clip["clip1"].votes == 0
    assert results.flagged == []  # one failure in three checks is not more than a third
    same_seed = summarise(study.id, rows, n_bootstrap=20, seed=2).kept.bootstrap
    np.testing.assert_array_equal(results.kept.bootstrap, same_seed)
    assert not np.array_equal(summarise(study.id, rows, n_bootstrap=20, seed=0).kept.bootstrap, same_seed)
    defaults = study_results(study, rows)  # 500 samples, seed 0
    np.testing.assert_array_equal(defaults.kept.bootstrap, summarise(study.id, rows, n_bootstrap=500).kept.bootstrap)
    rows.append(vote("l1", clip="clip0", check="identical", choice="left", passed="fail", study=study.id))
    assert study_results(study, rows, n_bootstrap=20).flagged == ["l1"]  # two in four is


def test_the_separation_sentence_at_its_edges():
    # Percentiles 2.5 and 97.5 of 41 evenly spaced differences from 0.2 to 4.2 (a second column that
    # is not zero: the difference of the columns counts, not their sum).
    spaced = np.linspace(0.2, 4.2, 41)
    ahead = board({"a": 2.5, "b": 0.3}, spaced)
    ahead.bootstrap = np.stack([spaced + 0.3, np.full(41, 0.3)], axis=1)
    assert separation(ahead) == ("a is ahead of b: the 95 % interval of their difference, [0.30, 4.10], "
                                 "excludes zero.")
    assert separation(board({"a": 1e-9, "b": 0.0}, np.tile([0.0, 0.8], 50))) == (
        "a and b are level so far; more votes will not tell them apart.")  # a lead of 1e-9 is none
    # Two bootstrap samples are enough to judge by.
    assert separation(board({"a": 0.5, "b": 0.1}, np.array([0.3, 0.5]))).startswith("a is ahead of b")
    # Four differences in a hundred are 0, the rest 1: the interval touches zero although the spread
    # (0.20) is small next to the lead of 1, so at least one more vote is asked for.
    nearly = np.array([0.0] * 4 + [1.0] * 96)
    assert "about 1 more votes like these" in separation(board({"a": 1.0, "b": 0.0}, nearly))
    sides = board({"a": 0.5, "b": 0.1}, np.tile([0.0, 0.8], 50))
    second = np.tile([0.0, 0.0, 0.4, 0.4], 25)  # varies: the columns' sum spreads more than their difference
    sides.bootstrap = np.stack([sides.bootstrap[:, 0] + second, second], axis=1)
    assert "about 285 more votes" in separation(sides)


def test_win_rates_and_ranks_are_written_as_computed(tmp_path):
    import csv

    # a beats b twice and loses once: 2/3, written to three decimals.
    rows = [vote("x"), vote("x"), vote("x", choice="right")]
    results = summarise("st", rows, n_bootstrap=20)
    write_results(results, tmp_path)
    with open(tmp_path / "win_rates.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == [{"restorer": "a", "a": "", "b": "0.667"},
                                                {"restorer": "b", "a": "0.333", "b": ""}]
    with open(tmp_path / "leaderboard.csv", newline="", encoding="utf-8") as handle:
        assert [(row["listeners"], row["rank"], row["name"]) for row in csv.DictReader(handle)] == [
            ("kept", "1", "a"), ("kept", "2", "b"), ("everyone", "1", "a"), ("everyone", "2", "b")]
    with open(tmp_path / "listeners.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == [{"listener_id": "x", "votes": "3", "checks": "0", "failed_checks": "0",
                                                 "flagged": "", "questionnaire": '{"playback": "Headphones"}'}]


def test_the_results_report_word_for_word():
    from restorelab.report import to_markdown

    rows = hand_made_votes() + [vote("even", clip="c3", choice="tie", check="identical", passed="pass")]
    results = summarise("st", rows, 0.5, clip_ids=["c2", "c1", "c9"], n_bootstrap=20)
    columns = ["rank", "name", "strength", "ci_low", "ci_high", "votes"]

    def ranking(board):
        return to_markdown([{"rank": row["rank"], "name": row["name"], **{key: round(row[key], 3) for key in
                            ("strength", "ci_low", "ci_high")}, "votes": row["votes"]} for row in board.rows], columns)

    people = to_markdown([{"listener_id": "both", "votes": 3, "checks": 3, "failed_checks": 3,
                           "flagged": "failed 3 of 3 checks; voted faster than the listening rules allow"},
                          {"listener_id": "even", "votes": 4, "checks": 5, "failed_checks": 2, "flagged": ""},
                          {"listener_id": "fast", "votes": 3, "checks": 4, "failed_checks": 0,
                           "flagged": "voted faster than the listening rules allow"},
                          {"listener_id": "over", "votes": 3, "checks": 4, "failed_checks": 3,
                           "flagged": "failed 3 of 4 checks"}],
                         ["listener_id", "votes", "checks", "failed_checks", "flagged"])
    expected = "\n".join([
        "# Study st", "",
        "4 listener(s), 3 flagged; 4 votes from the others. A listener is flagged who fails more than 50% of "
        "their checks (an identical pair not answered 'no difference', or the 3.5 kHz anchor not losing to the "
        "input), or who voted faster than the listening rules allow; results are given with and without them.", "",
        "## Ranking (flagged listeners left out)", "", ranking(results.kept), "",
        separation(results.kept), "",
        "Position bias: the left side won 75% of decisive votes (two-sided binomial p = 0.625).", "",
        "## Win rates (row beats column, decisive votes; flagged listeners left out)", "",
        "| restorer | a | b |\n|---|---|---|\n| a |  | 0.750 |\n| b | 0.250 |  |\n", "",
        "## Ranking with every listener", "", ranking(results.everyone), "",
        "## Per clip", "",
        "### c2", "", ranking(results.per_clip["c2"]), "",
        "### c1", "", ranking(results.per_clip["c1"]), "",
        "### c9", "", "No votes.", "",
        "## Listeners", "", people, "",
        "Intervals: 95 % percentile bootstrap resampling listeners and clips (20 samples); per clip, listeners "
        "(50 samples). Strengths are Bradley-Terry log-odds (ties and 'both bad' count half), mean zero.", ""])
    assert results_markdown(results) == expected
    ties = summarise("st", [vote("x", choice="tie")], n_bootstrap=20)
    assert "Position bias" not in results_markdown(ties)  # no decisive vote: nothing to say


def test_the_study_secret_comes_from_the_environment_or_a_private_file_made_once(tmp_path, monkeypatch):
    import stat

    from restorelab.listening.study_session import SECRET_ENV, study_secret

    monkeypatch.setenv(SECRET_ENV, "from the environment")
    assert study_secret(tmp_path / "votes" / "votes.csv") == b"from the environment"
    assert not (tmp_path / "votes").exists()
    monkeypatch.delenv(SECRET_ENV)
    votes = tmp_path / "server" / "votes"  # folders made as needed
    secret = study_secret(votes / "votes.csv")
    kept = votes / ".study-secret"
    assert len(secret) == 64 and int(secret, 16) >= 0 and kept.read_bytes() == secret
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # readable by the server's user only
    assert study_secret(votes / "other.csv") == secret  # made once, then read
    kept.write_bytes(b"an organiser's own secret\n")
    assert study_secret(votes / "votes.csv") == b"an organiser's own secret"


def test_listener_ids_are_checked_and_new_ones_random(study, tmp_path):
    """An id from a link or the page's storage is used only if it looks like one (a letter or digit,
    then up to 63 letters, digits, '_' or '-'); otherwise the listener gets a random 16-hex one."""
    assert valid_listener_id("PROLIFIC_42") == "PROLIFIC_42" and valid_listener_id("a" * 64) == "a" * 64
    for bad in ("not a valid id!", "", "-starts-with-a-dash", "a" * 65, "tab\there", None, 42):
        assert valid_listener_id(bad) is None, bad
    server = StudyServer(study, VoteLog(tmp_path / "votes.csv"), StimulusStore(), secret=b"s")
    arrivals = [server.arrive("not a valid id!") for _ in range(3)]
    assert [listener.index for listener in arrivals] == [0, 1, 2]
    assert all(len(listener.listener_id) == 16 and int(listener.listener_id, 16) >= 0 for listener in arrivals)
    assert len({listener.listener_id for listener in arrivals}) == 3
    code = server.completion_code("p1")
    assert len(code) == 10 and code.isalnum() and code.upper() == code


def test_a_restarted_server_counts_each_listeners_judged_trials_from_the_log(study, tmp_path):
    """Rows of other studies and rows without a listener are skipped wherever they come in the log;
    a listener's place and answers come from their first row, and each trial counts once."""
    log = VoteLog(tmp_path / "votes.csv")
    server = StudyServer(study, log, StimulusStore(), ListenRules(min_listen_s=0.0, min_decision_s=0.0),
                         secret=b"s")
    first, second = server.arrive("first"), server.arrive("second")
    for listener in (first, second):
        server.answer(listener, {"playback": "Headphones", "experience": "Casual listener"})
    for listener, count in ((first, 3), (second, 1)):
        for _ in range(count):
            trial = server.present(listener)
            for token in trial.tokens:
                server.store.take(token)
            server.vote(listener, right_answer(listener.plan[listener.position]),
                        json.dumps({"trial": trial.trial_id, "left_s": 0.0, "right_s": 0.0}))
    rows = log.read()
    stranger = {**rows[0], "study_id": "another", "listener_id": "first", "trial_id": "x1"}
    anonymous = {**rows[0], "listener_id": "", "trial_id": "x2"}
    repeated = {**rows[0], "listener_index": "", "questionnaire": ""}  # the same trial again
    import csv

    with open(log.path, "w", newline="", encoding="utf-8") as handle:  # the skipped rows first
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([stranger, anonymous, *rows, repeated])
    again = StudyServer(study, log, StimulusStore(), secret=b"s")
    back_first, back_second = again.arrive("first"), again.arrive("second")
    assert (back_first.index, back_first.position) == (0, 3)
    assert (back_second.index, back_second.position) == (1, 1)
    assert json.loads(back_first.questionnaire)["playback"] == "Headphones"
    assert again.arrive().index == 2


def test_a_design_is_refused_just_outside_its_ranges_and_taken_at_their_edges():
    for edge in (dict(trials_per_listener=1), dict(check_share=0.0), dict(check_share=0.999),
                 dict(max_failed_check_share=0.0), dict(max_failed_check_share=1.0), dict(min_checks=0)):
        Design(**edge)
    with pytest.raises(ValueError, match=r"^trials_per_listener must be at least 1, got 0$"):
        Design(trials_per_listener=0)
    ranges = r"^check_share must be in \[0, 1\), max_failed_check_share in \[0, 1\], min_checks >= 0$"
    for outside in (dict(check_share=-0.01), dict(check_share=1.0), dict(max_failed_check_share=-0.01),
                    dict(max_failed_check_share=1.01), dict(min_checks=-1)):
        with pytest.raises(ValueError, match=ranges):
            Design(**outside)
