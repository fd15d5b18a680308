"""MUSHRA studies: the conditions, the pages, the rating log, post-screening and results with known answers."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, add_noise, band_level_db, melody
from restorelab import audio as A
from restorelab.analysis import visqol_available
from restorelab.cli import main
from restorelab.degrade import degrade
from restorelab.listening import votes as V
from restorelab.listening.mushra import RATING_FIELDS, RATINGS, RatingLog, mushra_plan, ratings_path
from restorelab.listening.mushra_results import (condition_means, correlate, item_means, mushra_results, screen,
                                                 write_mushra_results)
from restorelab.listening.study import (HIDDEN_REFERENCE, LOW_ANCHOR, MID_ANCHOR, Design, StudyError, build_study,
                                        load_study)
from restorelab.listening.study_session import StudyServer
from restorelab.listening.transport import ListeningError, ListenRules, StimulusStore
from restorers import get_restorer

NAMES = ("spectral_gate_hf", "mcra_wiener")
MADE = (HIDDEN_REFERENCE, LOW_ANCHOR, MID_ANCHOR)
ANSWERS = {"playback": "Headphones", "experience": "Casual listener"}


def clean_files(folder, count=2, seconds=3.0):
    """Clean items: notes over a full-band wash (white noise 30 dB down, like cymbals), stereo."""
    files = []
    for i in range(count):
        x = add_noise(melody(seconds, seed=10 + i), 30.0, np.random.default_rng(10 + i)).astype(np.float32)
        files.append(A.write_wav(folder / f"item{i}.wav", np.stack([x, 0.8 * x]), SR))
    return files


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mushra")
    restorers = {name: get_restorer(name) for name in NAMES}
    build_study(clean_files(folder), folder / "study", restorers=restorers, test="mushra", preset="hiss",
                design=Design(trials_per_listener=20), study_id="m1")
    return load_study(folder / "study")


# -- the study folder ---------------------------------------------------------------------------

def test_each_item_has_the_reference_the_anchors_the_input_and_every_restorer(study, tmp_path):
    assert study.test == "mushra" and "hidden" in study.instructions
    clip = study.clips[0]
    assert [c.label for c in clip.candidates] == ["input", *NAMES, *MADE]
    assert [c.kind for c in clip.candidates] == ["input", "system", "system", "hidden_reference", "anchor", "anchor"]
    assert clip.reference_file == clip.candidate(HIDDEN_REFERENCE).file
    clean = A.load_audio(clean_files(tmp_path)[0]).audio
    degraded, _ = degrade(clean, SR, "hiss", seed=0)  # clip i is degraded with seed 0 + i
    stimuli = {c.label: A.load_audio(study.path(c.file)).audio for c in clip.candidates}
    levels = [A.loudness_lufs(audio, SR) for audio in stimuli.values()]
    assert max(levels) - min(levels) < 0.05  # all matched together
    # The hidden reference is the clean original (as matched), the input the degraded one.
    gain = 10 ** ((clip.loudness_lufs - A.loudness_lufs(clean, SR)) / 20)
    assert np.max(np.abs(stimuli[HIDDEN_REFERENCE] - gain * clean)) < 1e-5
    gain = 10 ** ((clip.loudness_lufs - A.loudness_lufs(degraded, SR)) / 20)
    assert np.max(np.abs(stimuli["input"] - gain * degraded)) < 1e-5
    # The anchors: the reference low-passed at 3.5 and 7 kHz (BS.1534-3), the pass band untouched.
    ref = stimuli[HIDDEN_REFERENCE]
    whole = (20, 20000)
    assert band_level_db(stimuli[LOW_ANCHOR], ref, 4500, 20000, reference_band=whole) < -100
    assert band_level_db(stimuli[MID_ANCHOR], ref, 8000, 20000, reference_band=whole) < -100
    assert band_level_db(ref, ref, 8000, 20000, reference_band=whole) > -45  # the reference has plenty there
    assert abs(band_level_db(stimuli[MID_ANCHOR], ref, 4500, 6500)) < 0.2
    assert abs(band_level_db(stimuli[LOW_ANCHOR], ref, 200, 3000)) < 0.3
    # Each condition carries its reference metrics; the hidden reference's are a perfect copy's.
    assert clip.candidate(HIDDEN_REFERENCE).metrics["lsd"] == pytest.approx(0.0, abs=1e-9)
    assert clip.candidate(LOW_ANCHOR).metrics["lsd"] > clip.candidate(MID_ANCHOR).metrics["lsd"] > 0
    assert clip.candidate("input").metrics["si_sdr_db"] == pytest.approx(30.0, abs=1.5)  # hiss at 30 dB SNR
    assert "visqol_moslqo" not in clip.candidate("input").metrics  # only with with_visqol
    assert load_study(study.folder).to_json() == study.to_json()


def test_each_condition_records_what_it_is_and_hashes_the_sound_before_matching(study, tmp_path):
    from restorelab.listening.candidates import audio_sha256

    clip = study.clips[1]
    assert (clip.source, clip.origin, clip.prompt, clip.duration_s) == ("item1.wav", "file", "", 3.0)
    clean = A.load_audio(clean_files(tmp_path)[1]).audio
    assert clip.candidate(HIDDEN_REFERENCE).sha256 == audio_sha256(clean)
    assert clip.candidate("input").sha256 == audio_sha256(degrade(clean, SR, "hiss", seed=1)[0])
    assert clip.candidate(NAMES[0]).settings == [{"restorer": NAMES[0],
                                                  "params": dataclasses.asdict(get_restorer(NAMES[0]).params)}]
    assert [clip.candidate(name).settings for name in MADE] == [
        [{"condition": "the clean reference, hidden"}], [{"condition": "the reference low-passed at 3500 Hz"}],
        [{"condition": "the reference low-passed at 7000 Hz"}]]
    assert clip.candidate("input").settings == [{"restorer": "input"}]
    for candidate in clip.candidates:
        info = sf.info(study.path(candidate.file))
        assert (info.format, info.subtype) == ("FLAC", "PCM_24")  # lossless, 24-bit


def test_a_reference_of_another_shape_is_refused_with_both_shapes(tmp_path):
    from restorelab.listening.study import write_study

    clip = A.load_audio(clean_files(tmp_path, count=1, seconds=1.0)[0])
    items = [(clip, {}, {}, clip.audio[:1])]
    with pytest.raises(StudyError, match=rf"^{clip.source}: its reference has shape \(1, 44100\), the clip "
                                         r"\(2, 44100\) \(channels, samples\); they must match$"):
        write_study(["item0"], items, tmp_path / "study", test="mushra")
    assert not (tmp_path / "study").exists()


def test_a_study_file_naming_a_stimulus_outside_its_folder_is_refused(study, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(study.folder, copy)
    data = json.loads((copy / "study.json").read_text())
    data["clips"][0]["candidates"][0]["file"] = "../../etc/passwd"
    (copy / "study.json").write_text(json.dumps(data))
    with pytest.raises(StudyError, match="names a stimulus outside the study folder"):
        load_study(copy)


def test_degraded_clips_with_their_references_in_a_folder(tmp_path):
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    cleans = clean_files(clean_dir)
    degraded = []
    for path in cleans:
        x = A.load_audio(path).audio
        degraded.append(A.write_wav(tmp_path / path.name, add_noise(x, 20.0, np.random.default_rng(1)), SR))
    built = build_study(degraded, tmp_path / "study", restorers={"spectral_gate_hf": get_restorer("spectral_gate_hf")},
                        test="mushra", reference_dir=clean_dir)
    assert [c.label for c in built.clips[1].candidates] == ["input", "spectral_gate_hf", *MADE]
    assert built.clips[1].candidate("input").metrics["si_sdr_db"] == pytest.approx(20.0, abs=0.5)
    missing = tmp_path / "orphan.wav"
    A.write_wav(missing, A.load_audio(degraded[0]).audio, SR)
    with pytest.raises(StudyError, match="orphan.wav: no reference with the stem 'orphan'"):
        build_study([missing], tmp_path / "s2", restorers={"x": get_restorer("spectral_gate_hf")}, test="mushra",
                    reference_dir=clean_dir)
    mono = tmp_path / "mono"
    mono.mkdir()
    A.write_wav(mono / "item0.wav", A.load_audio(cleans[0]).audio[:1], SR)
    with pytest.raises(StudyError, match="has 1 channel"):
        build_study([degraded[0]], tmp_path / "s3", restorers={"x": get_restorer("spectral_gate_hf")},
                    test="mushra", reference_dir=mono)
    with pytest.raises(StudyError, match="needs the clean originals"):
        build_study(degraded, tmp_path / "s4", restorers={"x": get_restorer("spectral_gate_hf")}, test="mushra")
    with pytest.raises(StudyError, match="are for --test mushra"):
        build_study(degraded, tmp_path / "s5", restorers={"x": get_restorer("spectral_gate_hf")}, preset="hiss")
    assert not any(p.name.startswith(("s2", "s3", "s4", "s5", ".s")) for p in tmp_path.iterdir())


def test_every_listener_rates_every_item_in_an_order_and_slider_order_of_their_own(study):
    plans = [mushra_plan(study, k) for k in range(40)]
    for plan in plans:
        assert sorted(p.clip_id for p in plan) == ["item0", "item1"]
        for page in plan:
            assert sorted(page.order) == sorted(c.label for c in study.clip(page.clip_id).candidates)
    assert mushra_plan(study, 3) == plans[3]  # a listener who comes back gets the same plan
    # Each condition is at each slider position about equally often (6 conditions, 80 pages).
    hidden_at = Counter(page.order.index(HIDDEN_REFERENCE) for plan in plans for page in plan)
    assert set(hidden_at) == set(range(6)) and max(hidden_at.values()) <= 25
    assert len({page.order for plan in plans for page in plan}) > 60


def test_fewer_pages_than_items_are_dealt_evenly(tmp_path):
    files = clean_files(tmp_path, count=5, seconds=1.5)
    built = build_study(files, tmp_path / "study", restorers={"spectral_gate_hf": get_restorer("spectral_gate_hf")},
                        test="mushra", preset="hiss", design=Design(trials_per_listener=2))
    counts = Counter(page.clip_id for k in range(25) for page in mushra_plan(built, k))
    assert sorted(counts.values()) == [10] * 5


# -- pages ------------------------------------------------------------------------------------------

def page_report(page, scores, seconds=1.0, trial=None):
    heard = {"reference": seconds, **{str(k + 1): seconds for k in range(len(page.tokens) if page else 0)}}
    return json.dumps({"trial": trial or page.page_id, "heard": heard, "scores": scores})


def rate_everything(server, listener, score_of, store):
    """Rate every page of ``listener``'s plan with ``score_of(condition label) -> score``, as the page would."""
    while not listener.done:
        page = server.present(listener)
        for token in page.all_tokens:
            store.take(token)
        server.rate(listener, page_report(page, [score_of(c.label) for c in page.conditions], seconds=0.0))


def first_page(study, folder, rules):
    """A server on a fresh rating log, a listener who answered the questions, and their first page."""
    server = StudyServer(study, RatingLog(folder / "mushra.csv"), StimulusStore(), rules, secret=b"s")
    listener = server.arrive()
    server.answer(listener, ANSWERS)
    return server, listener, server.store, server.present(listener)


def test_a_page_is_cut_to_the_mushra_excerpt_length(study, tmp_path, monkeypatch):
    from restorelab.listening import mushra

    asked = []
    make_set = mushra.make_set
    monkeypatch.setattr(mushra, "make_set", lambda paths, rng, **kw: asked.append(kw) or make_set(paths, rng, **kw))
    first_page(study, tmp_path, ListenRules())
    assert asked == [{"max_excerpt_s": 10.0}] and mushra.MAX_EXCERPT_S == 10.0


def test_a_page_is_refused_until_everything_was_heard_and_rated_rightly(study, tmp_path):
    rules = ListenRules(min_listen_s=1.0, clock_tolerance_s=0.5, min_decision_s=0.0)
    server, listener, store, page = first_page(study, tmp_path, rules)
    assert len(page.tokens) == 6 and len(set(page.all_tokens)) == 7
    sizes = {len(store.take(token)) for token in page.all_tokens[:-1]}
    assert len(sizes) == 1  # every sound of a page has the same length and format
    good = [100, 50, 40, 30, 20, 10]
    with pytest.raises(ListeningError, match="The sound 6 sound's audio was never loaded"):
        server.rate(listener, page_report(page, good))
    store.take(page.all_tokens[-1])
    with pytest.raises(ListeningError, match="opens once each sound has played for 1.0 s"):
        server.rate(listener, page_report(page, good))  # 7 sounds x 1 s cannot have played yet
    for bad, message in (([100, 50], "the page has 6 sliders, the ratings sent have 2"),
                         ([101, 50, 40, 30, 20, 10], "whole numbers from 0 to 100; 101"),
                         ([99.5, 50, 40, 30, 20, 10], "whole numbers from 0 to 100; 99.5"),
                         (["100", 50, 40, 30, 20, 10], "did not report"), ([True] * 6, "did not report"),
                         ([None] * 6, "did not report")):
        with pytest.raises(ListeningError, match=message):
            server.rate(listener, page_report(page, bad))
    with pytest.raises(ListeningError, match="already been rated or replaced"):
        server.rate(listener, page_report(page, good, trial="another"))
    with pytest.raises(ListeningError, match=r"at least 1.0 s .*sound 3 0.5 s"):
        heard = {"reference": 1.0, **{str(k + 1): 1.0 if k != 2 else 0.5 for k in range(6)}}
        server.rate(listener, json.dumps({"trial": page.page_id, "heard": heard, "scores": good}))
    assert not server.log.path.exists()  # nothing was written by any refused page


def test_ratings_become_one_row_per_condition_and_the_hidden_reference_is_a_check(study, tmp_path):
    store = StimulusStore()
    rules = ListenRules(min_listen_s=0.0, min_decision_s=0.0)
    log = RatingLog(tmp_path / "mushra.csv")
    server = StudyServer(study, log, store, rules, secret=b"s")
    listener = server.arrive(link_id="PROLIFIC_1")
    server.answer(listener, ANSWERS)
    scores = {"input": 40, NAMES[0]: 60, NAMES[1]: 70, HIDDEN_REFERENCE: 95, LOW_ANCHOR: 10, MID_ANCHOR: 30}
    page = server.present(listener)
    for token in page.all_tokens:
        store.take(token)
    # The first page: the hidden reference rated 85, missed.
    rows = server.rate(listener, page_report(page, [85 if c.label == HIDDEN_REFERENCE else scores[c.label]
                                                    for c in page.conditions], seconds=0.0))
    assert [r["condition"] for r in rows] == list(page.planned.order)
    assert [r["position"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    hidden = next(r for r in rows if r["condition"] == HIDDEN_REFERENCE)
    assert (hidden["check"], hidden["check_passed"], hidden["score"]) == ("hidden_reference", "fail", "85")
    assert all(r["check"] == "" for r in rows if r is not hidden)
    rate_everything(server, listener, scores.get, store)
    written = log.read()
    assert len(written) == 12 and {r["page_id"] for r in written} == {rows[0]["page_id"], written[-1]["page_id"]}
    assert [r["check_passed"] for r in written if r["check"]] == ["fail", "pass"]
    assert {r["listener_id"] for r in written} == {"PROLIFIC_1"}
    assert {r["completion_code"] for r in written} == {server.completion_code("PROLIFIC_1")}
    assert json.loads(written[0]["questionnaire"]) == ANSWERS
    assert json.loads(next(r["settings"] for r in written if r["condition"] == NAMES[0]))[0]["restorer"] == NAMES[0]
    # A restart: the listener is done; a new listener gets the next place.
    again = StudyServer(study, log, store, rules, secret=b"s")
    assert again.arrive("x", link_id="PROLIFIC_1").done and again.arrive().index == 1


def test_pages_submitted_too_soon_or_too_fast_are_flagged_or_refused(study, tmp_path):
    rules = ListenRules(min_listen_s=0.0, min_decision_s=30.0, max_votes_per_minute=1)
    server, listener, store, page = first_page(study, tmp_path, rules)
    for token in page.all_tokens:
        store.take(token)
    rows = server.rate(listener, page_report(page, [50] * 6, seconds=0.0))
    assert {row["flags"] for row in rows} == {"fast"}  # decided within 30 s of the audio being sent
    page = server.present(listener)
    for token in page.all_tokens:
        store.take(token)
    with pytest.raises(ListeningError, match=r"submitting faster than this test allows \(1 pages a minute\)"):
        server.rate(listener, page_report(page, [50] * 6, seconds=0.0))
    assert "rate" in listener.session.flags and len(server.log.read()) == 6


# -- the rating log -------------------------------------------------------------------------------

def rating_row(page="p1", condition="input", score="50", clip="item0"):
    row = dict.fromkeys(RATING_FIELDS, "")
    row.update(page_id=page, condition=condition, kind="input", score=score, clip_id=clip, listener_id="l",
               study_id="m", loudness_target_lufs="-23.0")
    return row


def test_a_page_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from test_votes import FailingWrite

    log = RatingLog(tmp_path / "mushra.csv")
    log.append_rows([rating_row("p1", condition=c) for c in ("a", "b", "c")])
    before = log.path.read_bytes()
    monkeypatch.setattr(V.os, "write", FailingWrite(good=len(V._csv_line(list(rating_row().values()))) + 10))
    with pytest.raises(V.VoteLogError, match="Your ratings could not be saved: the server's disk is full. "
                                             "Nothing was recorded for this page"):
        log.append_rows([rating_row("p2", condition=c) for c in ("a", "b", "c")])
    monkeypatch.undo()
    assert log.path.read_bytes() == before
    assert log.path.read_text().splitlines()[0] == ",".join(RATING_FIELDS)


def test_damaged_rows_are_skipped_and_foreign_files_refused(tmp_path):
    log = RatingLog(tmp_path / "mushra.csv")
    log.append_rows([rating_row("p1")])
    with open(log.path, "a") as handle:
        handle.write("2026,m,l,0,s,p2,item0,file,input,sys")  # cut off by a crash
    log.append_rows([rating_row("p3")])
    read = log.read_all()
    assert [r["page_id"] for r in read.rows] == ["p1", "p3"]
    assert read.problems == ["line 3: not a complete rating row, skipped"]
    votes = tmp_path / "votes.csv"
    V.VoteLog(votes).append_rows([{f: "" for f in V.FIELDS} | {"choice": "tie"}])
    with pytest.raises(V.VoteLogError, match="not a rating file of this app"):
        RatingLog(votes).append_rows([rating_row()])
    assert ratings_path(votes) == tmp_path / "mushra.csv"


def test_the_export_is_safe_for_spreadsheets(tmp_path):
    rows = [rating_row(clip="=HYPERLINK(\"http://x\")"), rating_row(condition="@SUM(A1)")]
    exported = list(csv.DictReader(io.StringIO(V.export_csv(rows, RATINGS))))
    assert [r["clip_id"] for r in exported] == ["'=HYPERLINK(\"http://x\")", "item0"]
    assert exported[1]["condition"] == "'@SUM(A1)" and exported[0]["loudness_target_lufs"] == "-23.0"


# -- results with known answers --------------------------------------------------------------------

#: The mean each condition is rated at (the hidden reference: the mean of 92 to 100).
TRUE_MEAN = {"input": 45.0, NAMES[0]: 62.0, NAMES[1]: 72.0, HIDDEN_REFERENCE: 96.0, LOW_ANCHOR: 15.0,
             MID_ANCHOR: 35.0}


def simulated_ratings(study, listeners=20, careless=(2, 9), seed=0, item_sd=4.0, listener_sd=4.0, noise_sd=6.0,
                      means=TRUE_MEAN):
    """Rating rows of listeners who rate each condition at its true mean plus an item effect, a
    listener effect and noise (clipped to 0-100); they find the hidden reference and give it 92 to
    100. The careless rate every slider at random."""
    rng = np.random.default_rng(seed)
    item_effect = {(clip.id, name): rng.normal(0, item_sd) for clip in study.clips for name in means}
    rows = []
    for k in range(listeners):
        bias = rng.normal(0, listener_sd)
        for number, page in enumerate(mushra_plan(study, k)):
            for position, label in enumerate(page.order):
                if k in careless:
                    score = rng.integers(0, 101)
                elif label == HIDDEN_REFERENCE:
                    score = rng.uniform(92, 100)
                else:
                    score = means[label] + item_effect[page.clip_id, label] + bias + rng.normal(0, noise_sd)
                rows.append(rating_row(f"{k}-{number}", label, str(int(np.clip(round(score), 0, 100))), page.clip_id)
                            | {"listener_id": f"l{k}", "study_id": study.id, "position": str(position + 1),
                               "kind": study.clip(page.clip_id).candidate(label).kind})
    return rows


@pytest.fixture(scope="module")
def four_item_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    return build_study(clean_files(folder, count=4, seconds=1.5), folder / "study",
                       restorers={name: get_restorer(name) for name in NAMES}, test="mushra", preset="hiss")


def test_screening_excludes_exactly_the_careless_and_the_means_are_recovered(four_item_study):
    rows = simulated_ratings(four_item_study)
    results = mushra_results(four_item_study, rows, n_bootstrap=500)
    # A careless listener misses the hidden reference (below 90) with probability 0.9 per item;
    # on 4 items, more than 15 % (one item or more) is missed with probability 1 - 0.1^4.
    assert sorted(results.excluded) == ["l2", "l9"]
    assert all("hidden reference below 90" in listener.excluded for listener in results.listeners if listener.excluded)
    overall = {row["condition"]: row for row in results.overall}
    assert [row["condition"] for row in results.overall] == sorted(TRUE_MEAN, key=TRUE_MEAN.get, reverse=True)
    for name, truth in TRUE_MEAN.items():
        row = overall[name]
        assert row["ci_low"] <= truth <= row["ci_high"], (name, row)
        assert row["ratings"] == 18 * 4 and row["listeners"] == 18
    assert overall[HIDDEN_REFERENCE]["ci_high"] - overall[HIDDEN_REFERENCE]["ci_low"] < 3
    assert {row["condition"] for row in results.everyone} == set(TRUE_MEAN)
    everyone = {row["condition"]: row["mean"] for row in results.everyone}
    assert everyone[HIDDEN_REFERENCE] < overall[HIDDEN_REFERENCE]["mean"] - 2  # the careless pull it down
    assert set(results.per_item) == {clip.id for clip in four_item_study.clips}
    assert all(len(board) == 6 for board in results.per_item.values())


def test_the_item_interval_is_the_t_interval_over_listeners():
    rows = [rating_row(f"p{k}", "x", str(score)) for k, score in enumerate((60, 70, 80, 90))]
    (row,) = item_means(rows)
    # mean 75, sd 12.91, t(0.975, 3) = 3.1824: half-width 3.1824 * 12.91 / 2 = 20.54
    assert row["mean"] == 75 and row["ci_high"] - 75 == pytest.approx(20.54, abs=0.01)
    assert row["ci_low"] == pytest.approx(75 - 20.54, abs=0.01)


def test_the_mid_anchor_rule_and_the_pace_rule_exclude_too():
    rows = []
    for k in range(3):  # l0 rates the 7 kHz anchor above 90 on 2 of 4 items; l1 is fine; l2 is fast
        for item in range(4):
            page, flags = f"{k}-{item}", "fast" if k == 2 else ""  # every row of a page has its flags
            rows.append(rating_row(page, HIDDEN_REFERENCE, "100", f"i{item}") | {"listener_id": f"l{k}", "flags": flags,
                                                                                "kind": "hidden_reference"})
            anchor = "95" if k == 0 and item < 2 else "40"
            rows.append(rating_row(page, MID_ANCHOR, anchor, f"i{item}") | {"listener_id": f"l{k}", "kind": "anchor",
                                                                           "flags": flags})
    listeners = {listener.listener_id: listener for listener in screen(rows)}
    assert listeners["l0"].mid_anchor_above_90 == 2 and "7 kHz anchor above 90 on 2 of 4" in listeners["l0"].excluded
    assert listeners["l1"].excluded == ""
    assert "faster than the listening rules" in listeners["l2"].excluded
    # BS.1534-3 excludes for more than 15 %: one miss in seven items (14 %) is allowed, two (29 %) are not.
    seven = [rating_row(f"p{i}", HIDDEN_REFERENCE, "80" if i == 0 else "100", f"i{i}") | {"kind": "hidden_reference"}
             for i in range(7)]
    assert screen(seven)[0].excluded == ""
    seven[1]["score"] = "89"
    assert "below 90 on 2 of 7 items" in screen(seven)[0].excluded


def test_a_sound_several_restorers_made_is_scored_for_each():
    rows = [rating_row("p1", "input=spectral_gate_hf", "40"), rating_row("p1", "mcra_wiener", "70"),
            rating_row("p2", "input", "50", "item1"), rating_row("p2", "spectral_gate_hf", "60", "item1"),
            rating_row("p2", "mcra_wiener", "80", "item1")]
    means = {row["condition"]: row["mean"] for row in condition_means(rows, n_bootstrap=50)}
    assert means == {"input": 45.0, "spectral_gate_hf": 50.0, "mcra_wiener": 75.0}


def test_correlation_with_the_metrics_has_known_answers():
    points = [{"item": "i", "condition": f"c{k}", "kind": "system", "score": 10.0 * k, "lsd": 3.0 - 0.25 * k,
               "si_sdr_db": float(k ** 3), "visqol_moslqo": None} for k in range(6)]
    points.append({"item": "i", "condition": HIDDEN_REFERENCE, "kind": "hidden_reference", "score": 0.0,
                   "lsd": 0.0, "si_sdr_db": None, "visqol_moslqo": None})  # left out, or r would not be -1
    table = {row["metric"]: row for row in correlate(points)}
    assert set(table) == {"lsd", "si_sdr_db"}  # no ViSQOL values: no row
    assert table["lsd"]["pearson_r"] == pytest.approx(-1.0) and table["lsd"]["spearman_rho"] == pytest.approx(-1.0)
    assert table["si_sdr_db"]["spearman_rho"] == pytest.approx(1.0)  # monotone, not linear
    assert 0.9 < table["si_sdr_db"]["pearson_r"] < 0.99 and table["lsd"]["points"] == 6


def coverage(study, studies, drop=None, n_bootstrap=400):
    """The share of 95 % intervals that cover the true means, over ``studies`` simulated studies with new
    listeners and new item effects each (means away from 0 and 100, so clipping never moves them)."""
    means = {name: value for name, value in TRUE_MEAN.items() if name != HIDDEN_REFERENCE} | {HIDDEN_REFERENCE: 85.0}
    covered, methods = [], set()
    for seed in range(studies):
        rows = simulated_ratings(study, listeners=12, careless=(), seed=100 + seed, means=means, item_sd=5.0,
                                 listener_sd=5.0)
        rows = [row for row in rows if row["condition"] != HIDDEN_REFERENCE and not (drop and drop(row))]
        for row in condition_means(rows, n_bootstrap=n_bootstrap, seed=seed):
            covered.append(row["ci_low"] <= means[row["condition"]] <= row["ci_high"])
            methods.add(row["interval"])
    return float(np.mean(covered)), methods


def test_overall_intervals_cover_the_truth_at_their_nominal_rate(four_item_study):
    """Every listener rated every item: the two-way ANOVA interval. 1000 intervals (binomial sd 0.7
    points) cover the truth 93 % to 97 % of the time (95.2 % in this seeded run)."""
    share, methods = coverage(four_item_study, 200)
    assert methods == {"two-way ANOVA t"} and 0.93 <= share <= 0.97, share


@pytest.mark.slow
def test_bootstrap_intervals_of_an_incomplete_design_cover_nearly_their_nominal_rate(four_item_study):
    """One listener skipped an item: the listener-and-item bootstrap. With four items it is a little
    narrow (a bootstrap of four items sees 3/4 of their variance): 91.6 % over 500 intervals here,
    asserted between 87 % and 97 %."""
    share, methods = coverage(four_item_study, 100, drop=lambda row: (row["listener_id"], row["clip_id"]) == ("l0", "item0"))
    assert methods == {"bootstrap"} and 0.87 <= share <= 0.97, share


def test_the_two_way_interval_has_a_known_answer():
    # Listener effects 0 and 4, item effects 0 and 2, no residual: MS_listeners = 16, MS_items = 4,
    # MS_residual = 0; the grand mean's variance is (16 + 4 - 0) / 4 = 5, with Satterthwaite's
    # degrees of freedom 20^2 / (16^2 + 4^2) = 1.4706.
    from scipy import stats

    from restorelab.listening.mushra_results import two_way_half_width

    assert two_way_half_width(np.array([[0.0, 2.0], [4.0, 6.0]])) == pytest.approx(
        stats.t.ppf(0.975, 400 / 272) * np.sqrt(5.0))
    assert two_way_half_width(np.full((3, 4), 70.0)) == 0.0


def test_results_are_written_with_every_condition(four_item_study, tmp_path):
    results = mushra_results(four_item_study, simulated_ratings(four_item_study), n_bootstrap=100)
    written = write_mushra_results(results, tmp_path)
    assert {p.name for p in written} >= {"results.md", "mushra_means.csv", "mushra_items.csv", "mushra_metrics.csv",
                                         "mushra_correlations.csv", "listeners.csv", "mushra_scores.png",
                                         "mushra_metrics.png", "mushra_ratings.csv"}
    text = (tmp_path / "results.md").read_text()
    assert all(name in text for name in TRUE_MEAN) and "2 excluded" in text
    correlations = {row["metric"]: row for row in csv.DictReader((tmp_path / "mushra_correlations.csv").open())}
    assert set(correlations) == {"lsd", "si_sdr_db"}
    assert float(correlations["lsd"]["pearson_r"]) < 0  # LSD falls as the simulated quality rises

    def read(name):
        with (tmp_path / name).open(newline="") as handle:
            return list(csv.DictReader(handle))

    def same(cell, value):  # numbers as rounded for the tables, no value as an empty cell
        return cell == "" if value is None else (
            float(cell) == pytest.approx(value, rel=5e-4, abs=5e-4) if isinstance(value, float) else cell == str(value))

    means = read("mushra_means.csv")
    expected = [("kept", row) for row in results.overall] + [("everyone", row) for row in results.everyone]
    assert [row["listeners_kept"] for row in means] == [scope for scope, _ in expected]
    assert [(got[column], row[column]) for got, (_, row) in zip(means, expected) for column in
            ("condition", "mean", "ci_low", "ci_high", "ratings", "interval") if not same(got[column], row[column])] == []
    items = read("mushra_items.csv")
    expected = [(item, row) for item, board in results.per_item.items() for row in board]
    assert [(row["item"], row["condition"]) for row in items] == [(item, row["condition"]) for item, row in expected]
    assert all(same(got["mean"], row["mean"]) for got, (_, row) in zip(items, expected))
    metrics = read("mushra_metrics.csv")
    assert [row["condition"] for row in metrics] == [row["condition"] for row in results.metric_table]
    assert all(same(got["mean_score"], row["mean_score"]) for got, row in zip(metrics, results.metric_table))
    assert len(read("mushra_ratings.csv")) == len(results.ratings)
    assert [row["listener_id"] for row in read("listeners.csv")] == [l.listener_id for l in results.listeners]


def test_mushra_commands(tmp_path, capsys):
    files = clean_files(tmp_path)
    out = tmp_path / "study"
    assert main(["study", "build", *map(str, files), "-r", "spectral_gate_hf", "-o", str(out), "-q", "--test",
                 "mushra", "--preset", "hiss", "--id", "cli-mushra"]) == 0
    assert "study cli-mushra: 2 clip(s), 10 distinct sound(s), 2 MUSHRA page(s) per listener" in capsys.readouterr().out
    assert main(["study", "build", *map(str, files), "-o", str(tmp_path / "x"), "-q", "--test", "mushra"]) == 2
    assert "needs the clean originals" in capsys.readouterr().err
    assert main(["study", "build", *map(str, files), "-o", str(tmp_path / "x"), "-q", "--test", "mushra",
                 "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    built = load_study(out)
    log = RatingLog(tmp_path / "mushra.csv")
    server = StudyServer(built, log, StimulusStore(), ListenRules(min_listen_s=0.0, min_decision_s=0.0), secret=b"s")
    for _ in range(3):
        listener = server.arrive()
        server.answer(listener, ANSWERS)
        rate_everything(server, listener, lambda label: 100 if label == HIDDEN_REFERENCE else 50, server.store)
    assert main(["study", "results", str(out), "--votes", str(tmp_path / "votes.csv"), "-o",
                 str(tmp_path / "results")]) == 0
    printed = capsys.readouterr().out
    assert "# Study cli-mushra (MUSHRA)" in printed and "3 listener(s), 0 excluded" in printed
    exported = list(csv.DictReader((tmp_path / "results" / "mushra_ratings.csv").open()))
    assert len(exported) == 3 * 2 * 5


def report_json(trial="t" * 70, reference=3.0, heard=(3.0, 4.0), scores=(100, 0)):
    return json.dumps({"trial": trial, "heard": {"reference": reference, **{str(k + 1): s for k, s in enumerate(heard)}},
                       "scores": list(scores)})


def test_a_page_report_is_read_whole_and_every_bad_one_gets_its_own_message():
    from restorelab.listening.mushra import PageReport

    report = PageReport.parse(report_json(), 2)
    assert report.page_id == "t" * 64 and report.reference_s == 3.0 and report.heard_s == (3.0, 4.0)
    assert report.scores == (100, 0)  # both ends of the scale
    unreadable = ("^The page did not report what was heard and rated; play every sound through the player, rate "
                  "each, and submit again.$")
    padded = report_json()[:-1] + " " * (4000 - len(report_json())) + "}"
    assert len(padded) == 4000 and PageReport.parse(padded, 2).scores == (100, 0)  # at the length limit
    for bad in (None, "", padded[:-1] + " }", "[1, 2]", report_json(scores=(50, True)), report_json(scores=(50, "9")),
                report_json(scores=(50, float("nan"))), '{"trial": "t", "heard": {"reference": 3}, "scores": [1, 2]}'):
        with pytest.raises(ListeningError, match=unreadable):
            PageReport.parse(bad, 2)
    for score in (101, -1, 50.5):
        with pytest.raises(ListeningError, match=f"^Ratings are whole numbers from 0 to 100; {score!r} is not one.$"):
            PageReport.parse(report_json(scores=(50, score)), 2)
    with pytest.raises(ListeningError, match="^Rate every sound: the page has 3 sliders, the ratings sent have 2.$"):
        PageReport.parse(report_json(heard=(3.0, 4.0, 5.0)), 3)
    assert PageReport.parse(report_json(heard=(0.0, 999999.0)), 2).heard_s == (0.0, 999999.0)
    for times in ((-0.5, 4.0), (3.0, 1e6)):
        with pytest.raises(ListeningError, match="^The player reported an impossible listening time.$"):
            PageReport.parse(report_json(heard=times), 2)
    with pytest.raises(ListeningError, match="^The player reported an impossible listening time.$"):
        PageReport.parse(report_json(reference=1e6), 2)


def test_rating_rows_are_bounded_before_they_are_written():
    from restorelab.listening.mushra import _bounded

    row = dict.fromkeys(RATING_FIELDS, "")
    row["kind"] = "system"
    assert _bounded(dict(row)) == row
    with pytest.raises(ValueError, match="^the questionnaire is 1001 characters long; the limit is 1000$"):
        _bounded({**row, "questionnaire": "q" * 1001})
    with pytest.raises(ValueError, match="^the study id is 65 characters long; the limit is 64$"):
        _bounded({**row, "study_id": "s" * 65})
    with pytest.raises(ValueError, match="^kind must be one of .*, got 'alien'$"):
        _bounded({**row, "kind": "alien"})


# -- rate_page on its own: every field of every row ------------------------------------------------

def _page_of_three(store):
    from restorelab.listening.mushra import Page, PlannedPage
    from restorelab.listening.study import StudyCandidate

    conditions = [StudyCandidate(("input",), "input.flac", "a" * 64, [], "input"),
                  StudyCandidate(("spectral_gate_hf", "mcra_wiener"), "s.flac", "b" * 64,
                                 [{"x": 1, "restorer": "spectral_gate_hf"}, {"restorer": "mcra_wiener"}], "system"),
                  StudyCandidate((HIDDEN_REFERENCE,), "ref.flac", "c" * 64, [], "hidden_reference")]
    tokens = [store.publish(b"sound") for _ in range(4)]
    planned = PlannedPage("item7", tuple(c.label for c in conditions))
    return Page("page-1", planned, conditions, tokens[0], tokens[1:], start_s=1.25, duration_s=4.0,
                loudness_lufs=-23.04)


def _fetch_all(store, page):
    for token in page.all_tokens:
        store.take(token)
    return min(store.fetched_at(token) for token in page.all_tokens)


def test_rate_page_rows_carry_every_field_exactly():
    from datetime import datetime

    from restorelab import __version__
    from restorelab.listening.mushra import PageReport, rate_page
    from restorelab.listening.trials import Session

    store = StimulusStore()
    page = _page_of_three(store)
    first = _fetch_all(store, page)
    session = Session("session-9", flags={"earlier"})
    report = PageReport("page-1", 4.0, (4.0, 3.5, 4.0), (40, 72, 90))
    rules = ListenRules(min_listen_s=1.0, min_decision_s=2.0)
    rows = rate_page(session, page, report, rules, store, now=first + 20.0, study_id="m1", listener_id="L",
                     listener_index=3, clip_source="upload", completion_code="CODE", questionnaire='{"a": 1}')
    assert [list(row) for row in rows] == [list(RATING_FIELDS)] * 3
    stamps = {row.pop("timestamp_utc") for row in rows}
    assert len(stamps) == 1 and datetime.fromisoformat(stamps.pop()).utcoffset().total_seconds() == 0
    shared = {"study_id": "m1", "listener_id": "L", "listener_index": "3", "session_id": "session-9",
              "page_id": "page-1", "clip_id": "item7", "clip_source": "upload", "reference_heard_s": "4.000",
              "page_s": "20.000", "loudness_target_lufs": "-23.0", "excerpt_start_s": "1.250",
              "excerpt_duration_s": "4.000", "flags": "earlier", "completion_code": "CODE",
              "questionnaire": '{"a": 1}', "app_version": __version__}
    assert rows == [
        {**shared, "condition": "input", "kind": "input", "position": "1", "score": "40", "heard_s": "4.000",
         "settings": "[]", "stimulus_sha256": "a" * 64, "check": "", "check_passed": ""},
        {**shared, "condition": "spectral_gate_hf=mcra_wiener", "kind": "system", "position": "2", "score": "72",
         "heard_s": "3.500", "settings": '[{"restorer": "spectral_gate_hf", "x": 1}, {"restorer": "mcra_wiener"}]',
         "stimulus_sha256": "b" * 64, "check": "", "check_passed": ""},
        {**shared, "condition": HIDDEN_REFERENCE, "kind": "hidden_reference", "position": "3", "score": "90",
         "heard_s": "4.000", "settings": "[]", "stimulus_sha256": "c" * 64, "check": "hidden_reference",
         "check_passed": "pass"},  # 90 is found: the check's boundary
    ]
    assert session.flags == {"earlier"} and session.vote_times == []  # rating changes nothing


@pytest.mark.parametrize("reference_score, passed", [(89, "fail"), (90, "pass"), (100, "pass"), (0, "fail")])
def test_rate_page_hidden_reference_check_boundary(reference_score, passed):
    from restorelab.listening.mushra import PageReport, rate_page
    from restorelab.listening.trials import Session

    store = StimulusStore()
    page = _page_of_three(store)
    first = _fetch_all(store, page)
    report = PageReport("page-1", 1.0, (1.0, 1.0, 1.0), (0, 0, reference_score))
    rows = rate_page(Session("s"), page, report, ListenRules(min_listen_s=1.0, min_decision_s=0.0), store,
                     now=first + 10.0)
    assert [row["check_passed"] for row in rows] == ["", "", passed]
    # Study fields not given are empty, never missing.
    assert {row[name] for row in rows for name in ("study_id", "listener_id", "completion_code")} == {""}


@pytest.mark.parametrize("seconds, fast", [(5.9, True), (6.0, False)])
def test_rate_page_flags_a_page_decided_faster_than_its_listening_allows(seconds, fast):
    """Four sounds of 1 s each to hear, plus 2 s to decide: 6 s from the first fetch."""
    from restorelab.listening.mushra import PageReport, rate_page
    from restorelab.listening.trials import Session

    store = StimulusStore()
    page = _page_of_three(store)
    first = _fetch_all(store, page)
    report = PageReport("page-1", 1.0, (1.0, 1.0, 1.0), (10, 20, 95))
    rows = rate_page(Session("s", flags={"rate"}), page, report,
                     ListenRules(min_listen_s=1.0, min_decision_s=2.0), store, now=first + seconds)
    assert {row["flags"] for row in rows} == {"fast rate" if fast else "rate"}
    assert {row["page_s"] for row in rows} == {f"{seconds:.3f}"}


def test_rate_page_refuses_a_report_for_another_page_or_unheard_sounds():
    from restorelab.listening.mushra import PageReport, rate_page
    from restorelab.listening.trials import Session

    store = StimulusStore()
    page = _page_of_three(store)
    rules = ListenRules(min_listen_s=1.0, min_decision_s=0.0)
    report = PageReport("page-1", 1.0, (1.0, 1.0, 1.0), (10, 20, 95))
    with pytest.raises(ListeningError, match="^That page has already been rated or replaced"):
        rate_page(Session("s"), page, PageReport("page-2", 1.0, (1.0,) * 3, (1, 2, 3)), rules, store, now=1e9)
    store.take(page.reference_token)
    with pytest.raises(ListeningError, match="^The sound 1 sound's audio was never loaded: play every sound through "
                                             "the player before submitting.$"):
        rate_page(Session("s"), page, report, rules, store, now=1e9)
    first = _fetch_all(store, page)
    busy = Session("s", vote_times=[first, first + 1.0])
    with pytest.raises(ListeningError, match=r"^You are submitting faster than this test allows \(2 pages a minute\); "
                                             r"take your time with each page.$"):
        rate_page(busy, page, report, ListenRules(min_listen_s=1.0, min_decision_s=0.0, max_votes_per_minute=2),
                  store, now=first + 10.0)


def test_the_bootstrap_interval_is_the_exact_resampling_distributions_percentiles():
    """Listeners and items both resampled: for a 4 x 3 design the bootstrap distribution has
    4^4 * 3^3 = 6,912 equally likely outcomes, enumerated here. The interval must be its 2.5 and
    97.5 percentiles per condition (within the sampling error of 20,000 resamples, well inside
    the 2-3 % and 97-98 % quantiles, which are distinct from the 1.5, 3.5, 96.5 and 98.5 %)."""
    import itertools

    from restorelab.listening.mushra_results import _bootstrap

    rng = np.random.default_rng(5)
    cube = rng.uniform(0, 100, size=(4, 3, 2))
    cube[:, :, 1] += 200  # the second condition elsewhere: a mix-up of conditions shows
    exact = np.array([cube[np.ix_(ls, its)].mean(axis=(0, 1))
                      for ls in itertools.product(range(4), repeat=4)
                      for its in itertools.product(range(3), repeat=3)])
    low, high = _bootstrap(cube, 20000, seed=1)
    assert low.shape == high.shape == (2,)
    for k in range(2):
        q = np.percentile(exact[:, k], [1.5, 2.0, 3.0, 3.5, 96.5, 97.0, 98.0, 98.5])
        assert q[0] < q[1] < q[2] < q[3] and q[4] < q[5] < q[6] < q[7]
        assert q[1] < low[k] < q[2] and q[5] < high[k] < q[6]


def test_the_markdown_report_reads_exactly_so_and_says_when_there_is_nothing():
    from dataclasses import replace

    from restorelab.listening.mushra_results import MushraListener, MushraResults, mushra_markdown

    row = {"condition": "input", "mean": 41.2345, "ci_low": 30.0, "ci_high": 52.0, "median": 40.0, "ratings": 4,
           "listeners": 4, "interval": "bootstrap"}  # means are rounded to 2 digits, shown with 3
    correlation = {"metric": "lsd", "points": 8, "pearson_r": -0.91234, "pearson_p": 0.01, "spearman_rho": -0.8,
                   "spearman_p": 0.02, "better_when": "lower"}
    listeners = [MushraListener("a", 2, 0, 0, ""), MushraListener("b", 2, 2, 0, "missed")]
    results = MushraResults("s7", listeners, [row], [row], per_item={"item0": [row], "item1": []},
                            correlations=[correlation],
                            metric_table=[{"condition": "input", "mean_score": 41.0, "lsd": 1.23456, "si_sdr_db": None}],
                            rule="R")
    means = ["| condition | mean | ci_low | ci_high | median | ratings | listeners | interval |",
             "|---|---|---|---|---|---|---|---|", "| input | 41.230 | 30.000 | 52.000 | 40.000 | 4 | 4 | bootstrap |"]
    expected = [
        "# Study s7 (MUSHRA)", "", "2 listener(s), 1 excluded, 1 kept. R", "",
        "## Mean score per condition (listeners kept)", "", *means, "", "",
        "Intervals (95 %): where every listener rated the condition on every item, from the two-way random-effects "
        "analysis of variance of listeners and items (t with Satterthwaite's degrees of freedom); otherwise a "
        "percentile bootstrap resampling listeners and items together (2000 samples). A sound several restorers "
        "made alike is scored for each of them.", "",
        "## What the metrics predict", "",
        "Each point is one condition on one item: its mean score against its metric (the hidden reference left "
        "out). A metric that predicts the scores has |r| near 1, with the sign that its 'better' direction implies "
        "(negative for distances such as LSD).", "",
        "| metric | points | pearson_r | pearson_p | spearman_rho | spearman_p | better_when |",
        "|---|---|---|---|---|---|---|", "| lsd | 8 | -0.912 | 0.010 | -0.800 | 0.020 | lower |", "", "",
        "| condition | mean_score | lsd | si_sdr_db | visqol_moslqo |", "|---|---|---|---|---|",
        "| input | 41.000 | 1.235 |  |  |", "", "",
        "## Mean score per condition with every listener", "", *means, "", "",
        "## Per item (listeners kept; 95 % t-interval over listeners)", "",
        "### item0", "", *means, "", "",
        "### item1", "", "No ratings.", "",
        "## Listeners", "", "| listener_id | items | reference_below_90 | mid_anchor_above_90 | excluded |",
        "|---|---|---|---|---|", "| a | 2 | 0 | 0 |  |", "| b | 2 | 2 | 0 | missed |", "", ""]
    assert mushra_markdown(results).split("\n") == expected
    # Nothing rated: each table says so, and a study without correlations has no section for them.
    empty = mushra_markdown(replace(results, overall=[], everyone=[], correlations=[], per_item={})).split("\n")
    assert "## What the metrics predict" not in empty
    assert [line for line in empty if "ratings" in line.lower() and not line.startswith("|")] == ["No ratings."] * 2


def _two_way_by_hand(cells):
    """The same interval from sums of squares written out cell by cell (no array shortcuts)."""
    from scipy import stats

    rows, cols = len(cells), len(cells[0])
    grand = sum(sum(r) for r in cells) / (rows * cols)
    row_means = [sum(r) / cols for r in cells]
    col_means = [sum(cells[i][j] for i in range(rows)) / rows for j in range(cols)]
    ss_rows = cols * sum((m - grand) ** 2 for m in row_means)
    ss_cols = rows * sum((m - grand) ** 2 for m in col_means)
    ss_res = sum((cells[i][j] - row_means[i] - col_means[j] + grand) ** 2 for i in range(rows) for j in range(cols))
    ms_r, ms_c, ms_e = ss_rows / (rows - 1), ss_cols / (cols - 1), ss_res / ((rows - 1) * (cols - 1))
    combined = max(ms_r + ms_c - ms_e, ms_r, ms_c)
    df = combined ** 2 / (ms_r ** 2 / (rows - 1) + ms_c ** 2 / (cols - 1) + ms_e ** 2 / ((rows - 1) * (cols - 1)))
    return stats.t.ppf(0.975, df) * (combined / (rows * cols)) ** 0.5, ms_r, ms_c, ms_e


@pytest.mark.parametrize("cells", [
    [[61.0, 70.0, 55.0], [72.0, 64.0, 81.0], [50.0, 58.0, 49.0], [66.0, 80.0, 71.0]],  # all three effects
    [[10.0, 90.0, 30.0], [80.0, 20.0, 60.0], [40.0, 70.0, 10.0]],  # residual dominates: falls back to a MS
    [[0.10, 0.30, 0.20], [0.40, 0.25, 0.35]],  # everything under 1: still an interval
])
def test_the_two_way_interval_matches_sums_of_squares_written_out(cells):
    from restorelab.listening.mushra_results import two_way_half_width

    expected, ms_r, ms_c, ms_e = _two_way_by_hand(cells)
    assert ms_e > 0 and ms_r > 0 and ms_c > 0  # each case has residual and both main effects
    assert two_way_half_width(np.array(cells)) == pytest.approx(expected, rel=1e-12)


def test_the_two_way_fallback_takes_the_larger_main_effect():
    from restorelab.listening.mushra_results import two_way_half_width

    # Listeners differ more than items, and the residual outweighs both: combined = MS_listeners.
    cells = [[10.0, 90.0, 30.0, 50.0], [95.0, 20.0, 60.0, 80.0], [40.0, 70.0, 5.0, 30.0]]
    expected, ms_r, ms_c, ms_e = _two_way_by_hand(cells)
    assert ms_r + ms_c - ms_e < max(ms_r, ms_c) and ms_r != ms_c
    assert two_way_half_width(np.array(cells)) == pytest.approx(expected, rel=1e-12)
    transposed = [list(column) for column in zip(*cells)]
    assert two_way_half_width(np.array(transposed)) == pytest.approx(_two_way_by_hand(transposed)[0], rel=1e-12)


def test_the_item_table_rows_are_complete_and_best_first():
    rows = [rating_row(f"p{k}", name, str(score)) for k, (name, score) in
            enumerate([("a", 20), ("a", 40), ("b", 90), ("b", 70), ("b", 80), ("c", 55)])]
    table = item_means(rows)
    assert [row["condition"] for row in table] == ["b", "c", "a"]
    b, c, a = table
    assert set(b) == {"condition", "mean", "ci_low", "ci_high", "median", "ratings", "listeners", "interval"}
    assert (b["mean"], b["median"], b["ratings"], b["listeners"], b["interval"]) == (80.0, 80.0, 3, 3, "t")
    # One rating has no interval; two have t(0.975, 1) = 12.706 times sd 14.14 over sqrt 2.
    assert np.isnan(c["ci_low"]) and np.isnan(c["ci_high"]) and c["ratings"] == 1 and c["median"] == 55.0
    assert a["ci_high"] - a["mean"] == pytest.approx(12.7062 * np.sqrt(200) / np.sqrt(2), rel=1e-4)


def test_correlations_skip_metrics_with_too_few_or_constant_points_and_say_which_way_is_better():
    def point(k, **metrics):
        return {"item": "i", "condition": f"c{k}", "kind": "system", "score": 10.0 * k,
                **{"lsd": None, "si_sdr_db": None, "visqol_moslqo": None, **metrics}}

    # Three points are enough; LSD constant and ViSQOL on two points only are skipped; the ones
    # after a skipped metric are still computed.
    # (SI-SDR spans exactly 1 dB: a range of 1 is not a constant.)
    points = [point(0, lsd=1.0, si_sdr_db=10.0, visqol_moslqo=2.0),
              point(1, lsd=1.0, si_sdr_db=10.4, visqol_moslqo=3.0), point(2, lsd=1.0, si_sdr_db=11.0)]
    table = correlate(points)
    assert [row["metric"] for row in table] == ["si_sdr_db"]
    (row,) = table
    assert set(row) == {"metric", "points", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "better_when"}
    assert row["points"] == 3 and row["better_when"] == "higher" and row["spearman_p"] == pytest.approx(0.0)
    two_lsd = [point(0, lsd=1.0, si_sdr_db=10.0), point(1, lsd=2.0, si_sdr_db=12.0), point(2, si_sdr_db=15.0)]
    assert [row["metric"] for row in correlate(two_lsd)] == ["si_sdr_db"]  # LSD on two points skipped
    # Scores spanning exactly 1 still correlate.
    close = correlate([{**p, "score": 50.0 + 0.5 * k} for k, p in enumerate(points)])
    assert [row["metric"] for row in close] == ["si_sdr_db"]
    # Scores all equal: no correlation can be computed for any metric.
    assert correlate([{**p, "score": 50.0} for p in points]) == []
    lsd = correlate([point(k, lsd=3.0 - k) for k in range(4)])
    assert lsd[0]["better_when"] == "lower" and lsd[0]["pearson_r"] == pytest.approx(-1.0)
    assert 0 <= lsd[0]["pearson_p"] < 1e-6


def _page_rows(listener, page, reference, mid=20, questionnaire="", flags="", clip=None):
    base = dict(listener_id=listener, page_id=page, clip_id=clip or page, questionnaire=questionnaire, flags=flags)
    return [{**rating_row(page, HIDDEN_REFERENCE, str(reference)), **base, "kind": "hidden_reference"},
            {**rating_row(page, MID_ANCHOR, str(mid)), **base, "kind": "anchor"},
            {**rating_row(page, "input", "40"), **base}]


def test_screening_counts_at_its_boundaries():
    """The hidden reference at exactly 90 is found, the mid anchor at exactly 90 is not above it,
    and a listener is excluded only past 15 % of the items: 3 of 20 (15 %) is kept, 4 of 20 is not."""
    rows = []
    for k in range(20):  # "keeps": 3 misses, 3 mid anchors above 90, the rest exactly at 90
        rows += _page_rows("keeps", f"k{k}", 89 if k < 3 else 90, mid=91 if k < 3 else 90, questionnaire='{"q": 1}')
    for k in range(20):  # "drops": 4 of each
        rows += _page_rows("drops", f"d{k}", 10 if k < 4 else 100, mid=100 if k < 4 else 0,
                           questionnaire='{"q": 2}' if k == 0 else "")
    drops, keeps = screen(rows)  # sorted by id
    assert (keeps.listener_id, keeps.items, keeps.reference_below_90, keeps.mid_anchor_above_90, keeps.excluded,
            keeps.questionnaire) == ("keeps", 20, 3, 3, "", '{"q": 1}')
    assert (drops.items, drops.reference_below_90, drops.mid_anchor_above_90) == (20, 4, 4)
    assert drops.excluded == ("rated the hidden reference below 90 on 4 of 20 items; "
                              "rated the 7 kHz anchor above 90 on 4 of 20 items")
    assert drops.questionnaire == '{"q": 2}'  # from the listener's first row


def test_screening_excludes_a_listener_whose_pages_broke_the_pace_rules():
    rows = _page_rows("a", "p1", 100, flags="rate") + _page_rows("a", "p2", 100) + _page_rows("b", "p3", 100)
    a, b = screen(rows)
    assert a.excluded == "rated faster than the listening rules allow" and b.excluded == ""
    assert a.items == 2 and b.items == 1


def test_a_cell_rated_twice_is_their_mean_and_an_unrated_cell_is_empty():
    from restorelab.listening.mushra_results import _cube

    rows = [{**rating_row("p1", "a", "40"), "listener_id": "l1"}, {**rating_row("p2", "a", "60"), "listener_id": "l1"},
            {**rating_row("p3", "b=c", "90"), "listener_id": "l2"}]
    listeners, items, conditions, cube = _cube(rows)
    assert (listeners, items, conditions) == (["l1", "l2"], ["item0"], ["a", "b", "c"])
    assert cube[0, 0, 0] == 50.0 and cube[1, 0, 1] == cube[1, 0, 2] == 90.0  # a merged sound scores for each
    assert np.isnan(cube[1, 0, 0]) and np.isnan(cube[0, 0, 1])


def test_the_overall_table_says_which_interval_it_used():
    def rows_of(listeners, items):
        return [{**rating_row(f"{l}{i}", "x", str(50 + 7 * l + 3 * i + (l * i) % 3), clip=f"i{i}"),
                 "listener_id": f"l{l}"} for l in range(listeners) for i in range(items)]

    (two_by_two,) = condition_means(rows_of(2, 2))
    (one_item,) = condition_means(rows_of(3, 1), n_bootstrap=200)
    assert two_by_two["interval"] == "two-way ANOVA t" and one_item["interval"] == "bootstrap"
    assert set(two_by_two) == {"condition", "mean", "ci_low", "ci_high", "median", "ratings", "listeners",
                               "interval"}
    values = [50, 53, 57, 61]  # l0: 50, 53; l1: 57, 61 (the (l * i) % 3 term adds 1 to l1 i1)
    assert (two_by_two["mean"], two_by_two["median"], two_by_two["ratings"], two_by_two["listeners"]) == (
        np.mean(values), np.median(values), 4, 2)
    assert one_item["ci_low"] < one_item["mean"] < one_item["ci_high"]


def test_results_keep_only_this_studys_rated_rows_and_write_tables_with_their_headers_and_rounding(
        four_item_study, tmp_path):
    from restorelab.listening.mushra_results import LISTENER_COLUMNS, MEAN_COLUMNS

    rows = simulated_ratings(four_item_study, listeners=6, careless=(), seed=3)[1:]  # one rating missing
    stray = [{**rows[0], "study_id": "another"}, {**rows[1], "listener_id": ""}]
    results = mushra_results(four_item_study, rows + stray, n_bootstrap=50)
    # The incomplete condition's interval is bootstrapped, and the same ratings give the same results.
    assert {row["interval"] for row in results.overall} == {"bootstrap", "two-way ANOVA t"}
    again = mushra_results(four_item_study, rows, n_bootstrap=50)
    assert again.overall == results.overall and again.everyone == results.everyone
    reseeded = mushra_results(four_item_study, rows, n_bootstrap=50, seed=1)
    assert reseeded.overall != results.overall and reseeded.everyone != results.everyone
    assert results.study_id == four_item_study.id and len(results.ratings) == len(rows)
    assert results.rule == ("BS.1534-3 post-screening: a listener is excluded who rated the hidden reference below 90 "
                            "on more than 15% of their items, or the 7 kHz anchor above 90 on more than 15% of them; "
                            "also (a rule of this project) one who rated faster than the listening rules allow.")
    # Each item's table holds that item's ratings only; every condition's scores are kept under its name.
    for clip in four_item_study.clips:
        mine = [row for row in rows if row["clip_id"] == clip.id]
        assert sum(row["ratings"] for row in results.per_item[clip.id]) == len(mine)
    assert sum(len(v) for v in results.scores.values()) == len(rows) and None not in results.scores
    assert {p["item"] for p in results.points} == {clip.id for clip in four_item_study.clips}
    for row in results.metric_table:  # each condition's metrics are the mean over its own points
        mine = [p for p in results.points if p["condition"] == row["condition"]]
        assert row["lsd"] == pytest.approx(np.mean([p["lsd"] for p in mine]))
    write_mushra_results(results, tmp_path / "a" / "b")  # folders made as needed

    def header_and_rows(name):
        with (tmp_path / "a" / "b" / name).open(newline="") as handle:
            reader = csv.reader(handle)
            return next(reader), list(reader)

    correlation_columns = ["metric", "points", "pearson_r", "pearson_p", "spearman_rho", "spearman_p", "better_when"]
    assert header_and_rows("mushra_means.csv")[0] == ["listeners_kept", *MEAN_COLUMNS]
    assert header_and_rows("mushra_items.csv")[0] == ["item", *MEAN_COLUMNS]
    assert header_and_rows("listeners.csv")[0] == [*LISTENER_COLUMNS, "questionnaire"]
    header, table = header_and_rows("mushra_correlations.csv")
    assert header == correlation_columns
    for got, row in zip(table, results.correlations):
        assert [float(got[k]) for k in (2, 3, 4, 5)] == [round(row[c], 3) for c in correlation_columns[2:6]]
    header, table = header_and_rows("mushra_metrics.csv")
    assert header == ["condition", "mean_score", "lsd", "si_sdr_db", "visqol_moslqo"]
    for got, row in zip(table, results.metric_table):
        assert float(got[2]) == round(row["lsd"], 3) and float(got[1]) == round(row["mean_score"], 3)
    ratings_header, ratings = header_and_rows("mushra_ratings.csv")
    assert ratings_header == list(RATING_FIELDS) and len(ratings) == len(rows)


# -- where the clean originals and other systems' outputs come from ----------------------------

def short(seconds, seed, channels=2):
    x = melody(seconds, seed=seed).astype(np.float32)
    return np.stack([x, 0.7 * x][:channels])


def test_each_degraded_clip_is_paired_with_its_namesake_anywhere_in_the_folder_and_trimmed_to_the_shorter(tmp_path):
    from restorelab.listening.study import _references

    clean_dir = tmp_path / "clean"
    (clean_dir / "sub" / "zz" / "a.wav").mkdir(parents=True)  # a folder named like audio is not a reference
    (clean_dir / "sub" / "zz" / "a.txt").write_text("not audio")  # nor is a text file of the same stem
    a_clean = A.write_wav(clean_dir / "sub" / "a.flac", short(1.0, 1), SR)
    b_clean = A.write_wav(clean_dir / "B.WAV", short(1.0, 2), SR)
    a_in = A.write_wav(tmp_path / "a.wav", short(0.7, 3), SR)  # 0.3 s shorter than its reference
    b_in = A.write_wav(tmp_path / "B.wav", short(1.5, 4), SR)  # 0.5 s longer: the most accepted
    (a, a_ref), (b, b_ref) = _references([a_in, b_in], clean_dir, None, 0, 600.0)
    n = int(0.7 * SR)
    assert a.audio.shape == a_ref.shape == (2, n)
    assert np.array_equal(a.audio, A.load_audio(a_in).audio) and np.array_equal(a_ref, A.load_audio(a_clean).audio[:, :n])
    assert b.audio.shape == b_ref.shape == (2, SR)
    assert np.array_equal(b.audio, A.load_audio(b_in).audio[:, :SR]) and np.array_equal(b_ref, A.load_audio(b_clean).audio)


def test_a_degraded_clip_that_cannot_be_paired_is_refused_with_both_files_named(tmp_path):
    from restorelab.listening.study import _references

    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    A.write_wav(clean_dir / "a.wav", short(1.0, 1), SR)
    A.write_wav(clean_dir / "mono.wav", short(1.0, 1, channels=1), SR)
    A.write_wav(clean_dir / "long.wav", short(2.0, 1), SR)

    def refusal(name, audio, reference_dir=clean_dir, max_duration_s=600.0):
        path = A.write_wav(tmp_path / name, audio, SR)
        with pytest.raises(StudyError) as error:
            list(_references([path], reference_dir, None, 0, max_duration_s))
        return str(error.value), path

    message, path = refusal("a.wav", short(1.5 + 1 / SR, 2))
    assert message == (f"{path}: is 1.50 s long, its reference 1.00 s; at most 0.5 s of difference is accepted")
    message, path = refusal("mono.wav", short(1.0, 2))
    assert message == f"{clean_dir / 'mono.wav'}: has 1 channel(s), {path} has 2"
    message, path = refusal("orphan.wav", short(1.0, 2))
    assert message == f"{path}: no reference with the stem 'orphan' in {clean_dir}"
    message, _ = refusal("a.wav", short(1.0, 2), reference_dir=tmp_path / "nowhere")
    assert message == f"{tmp_path / 'nowhere'}: the reference folder does not exist"
    message, _ = refusal("long.wav", short(1.5, 2), max_duration_s=1.6)  # the reference is over the limit
    assert message.startswith(f"{clean_dir / 'long.wav'}") and "too long" in message
    message, _ = refusal("a.wav", short(2.0, 2), max_duration_s=1.6)
    assert "a.wav" in message and "too long" in message


def test_an_unknown_preset_is_named(tmp_path):
    from restorelab.listening.study import _references

    path = A.write_wav(tmp_path / "c.wav", short(0.5, 0), SR)
    with pytest.raises(StudyError, match=r"^unknown preset 'nope'; known presets: band_limit_16k, "):
        list(_references([path], None, "nope", 0, 600.0))


@pytest.mark.skipif(not visqol_available(), reason="ViSQOL is not installed")
def test_visqol_is_measured_for_each_condition_when_asked(tmp_path):
    files = clean_files(tmp_path, count=1, seconds=1.0)
    built = build_study(files, tmp_path / "study", restorers={"spectral_gate_hf": get_restorer("spectral_gate_hf")},
                        test="mushra", preset="hiss", with_visqol=True)
    scores = {c.label: c.metrics["visqol_moslqo"] for c in built.clips[0].candidates}
    assert set(scores) == {"input", "spectral_gate_hf", *MADE} and all(1.0 <= v <= 5.0 for v in scores.values())
    assert scores[HIDDEN_REFERENCE] > 4.5 > scores[LOW_ANCHOR]  # a copy of the reference, and a 3.5 kHz low-pass


def test_clean_clips_are_degraded_with_the_preset_each_with_its_own_seed(tmp_path):
    from restorelab.listening.study import _references

    paths = [A.write_wav(tmp_path / f"c{i}.wav", short(1.0, i), SR) for i in range(2)]
    pairs = list(_references(paths, None, "hiss", 5, 600.0))
    for i, (clip, clean) in enumerate(pairs):
        original = A.load_audio(paths[i]).audio
        assert np.array_equal(clean, original)
        assert np.array_equal(clip.audio, degrade(original, SR, "hiss", seed=5 + i)[0])
    assert not np.array_equal(pairs[0][0].audio - pairs[0][1], pairs[1][0].audio - pairs[1][1])


def test_other_systems_outputs_are_found_by_stem_and_checked(tmp_path):
    from restorelab.listening.study import _system_outputs

    systems = tmp_path / "systems"
    for name in ("input", "b", "a"):
        (systems / name).mkdir(parents=True)
    (systems / "notes.txt").write_text("a file beside the systems is not one")
    clip = A.load_audio(A.write_wav(systems / "input" / "song.wav", short(1.0, 1), SR))
    a = A.write_wav(systems / "a" / "song.wav", short(1.2, 2), SR)
    (systems / "a" / "song.txt").write_text("not audio")
    A.write_wav(systems / "a" / "other.wav", short(1.0, 3), SR)
    b = A.write_wav(systems / "b" / "song.FLAC", short(0.5, 4), SR)  # exactly 0.5 s short: the most accepted
    outputs = _system_outputs(systems, "song", clip, 600.0)
    assert list(outputs) == ["a", "b"]
    assert np.array_equal(outputs["a"], A.load_audio(a).audio) and np.array_equal(outputs["b"], A.load_audio(b).audio)

    A.write_wav(systems / "b" / "song.wav", short(1.0, 4), SR)
    with pytest.raises(StudyError, match=rf"^{systems / 'b'}: has 2 files for song \(song.FLAC, song.wav\)$"):
        _system_outputs(systems, "song", clip, 600.0)
    (systems / "b" / "song.FLAC").unlink()
    A.write_wav(systems / "b" / "song.wav", short(0.5 - 1 / SR, 4), SR)
    with pytest.raises(StudyError, match=r"song.wav: is 0.50 s long, the input 1.00 s; at most 0.5 s of difference"):
        _system_outputs(systems, "song", clip, 600.0)
    with pytest.raises(A.AudioError, match="too long"):
        _system_outputs(systems, "song", clip, 1.1)  # a's output is over the limit
    A.write_wav(systems / "b" / "song.wav", short(1.0, 4, channels=1), SR)
    with pytest.raises(StudyError, match=rf"^{systems / 'b' / 'song.wav'}: has 1 channel\(s\), the input has 2$"):
        _system_outputs(systems, "song", clip, 600.0)
    lonely = tmp_path / "lonely"
    (lonely / "input").mkdir(parents=True)
    with pytest.raises(StudyError, match=rf"^{lonely}: has no system folders beside input/$"):
        _system_outputs(lonely, "song", clip, 600.0)


def test_a_rated_page_is_counted_for_the_listener_who_comes_back_and_told_back_at_the_end(study, tmp_path):
    rules = ListenRules(min_listen_s=0.0, min_decision_s=0.0)
    server = StudyServer(study, RatingLog(tmp_path / "mushra.csv"), StimulusStore(), rules, secret=b"s")
    server.arrive("first")  # takes place 0
    listener = server.arrive("second")
    server.answer(listener, ANSWERS)
    with pytest.raises(ListeningError, match=r"^There is no page to rate: press Start\.$"):
        server.rate(listener, page_report(None, [], trial="none"))  # no page shown yet
    page = server.present(listener)
    for token in page.all_tokens:
        server.store.take(token)
    scores = list(range(10, 10 + 10 * len(page.conditions), 10))
    rows = server.rate(listener, page_report(page, scores, seconds=0.0))
    clip = study.clip(page.planned.clip_id)
    assert {(r["listener_index"], r["clip_source"]) for r in rows} == {("1", clip.origin)}
    assert listener.judged == [f"{clip.id}: " + ", ".join(f"{k + 1} = {label} ({score})" for k, (label, score)
                                                         in enumerate(zip(page.planned.order, scores)))]
    # Back on another device: the same place, the next page, the answers already given.
    back = server.arrive(link_id="second")
    assert (back.index, back.position, back.questionnaire) == (1, 1, listener.questionnaire)
    page = server.present(back)
    assert page.planned == back.plan[1]
    for token in page.all_tokens:
        server.store.take(token)
    server.rate(back, page_report(page, [50] * len(page.conditions), seconds=0.0))
    assert back.done and server.arrive("second").position == 2
    with pytest.raises(ListeningError, match=r"^There is no page to rate: press Start\.$"):
        server.rate(back, page_report(page, [50] * len(page.conditions), seconds=0.0))  # done
