"""Blind trials: candidates, fresh stimuli, single-use links, the listening rules, balanced pairs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, melody
from restorelab import audio as A
from restorelab.listening import stimuli
from restorelab.listening.candidates import Candidate, audibly_identical, audio_sha256, merge_identical
from restorelab.listening.transport import (ListeningError, ListeningReport, ListenRules, StimulusStore,
                                            check_heard, check_listening)
from restorelab.listening.trials import (FLAG_FAST, FLAG_RATE, Session, ClipComplete, commit, judge, next_pair,
                                         start_trial)

RULES = ListenRules(min_listen_s=3.0, clock_tolerance_s=0.5, min_decision_s=1.0, max_votes_per_minute=6,
                    max_votes_per_hour=20, max_votes_per_pair=10)


@pytest.fixture
def files(tmp_path):
    """Three candidates as 10 s stereo float WAVs: the input, a louder and a much quieter copy."""
    x = np.stack([melody(10.0, seed=1), melody(10.0, seed=2)])
    paths = {}
    for name, audio in {"input": x, "louder": 3.0 * x, "quieter": 0.1 * x}.items():
        paths[name] = A.write_wav(tmp_path / f"{name}.wav", audio, SR)
    return paths


def candidates_of(files) -> list[Candidate]:
    return [Candidate(members=(name,), path=path, sha256=name * 4) for name, path in files.items()]


def decode(data: bytes) -> tuple[np.ndarray, sf._SoundFileInfo]:
    info = sf.info(io.BytesIO(data))
    audio, _ = sf.read(io.BytesIO(data), always_2d=True, dtype="float64")
    return audio.T, info


# -- candidates -------------------------------------------------------------------

def test_identical_and_inaudibly_different_outputs_are_one_sound(rng):
    x = np.stack([melody(3.0, seed=4)] * 2)
    assert audibly_identical(x, x.copy(), SR)
    assert audibly_identical(x, x * np.float32(0.9995), SR)  # -0.004 dB: 66 dB below the clip
    assert not audibly_identical(x, x * np.float32(0.99), SR)  # -0.09 dB: a difference 40 dB down
    silent = np.zeros_like(x)
    assert audibly_identical(silent, silent + 1e-6 * rng.standard_normal(x.shape).astype(np.float32), SR)  # -120 dBFS
    # Hiss 60 dB below full scale, removed only where the music is silent: inaudible in the
    # clip's total energy (-47 dB), obvious in the silent frames.
    gaps = x.copy()
    gaps[:, : SR // 2] = 0
    hissy = gaps + np.where(np.arange(x.shape[1]) < SR // 2, 1e-3, 0) * rng.standard_normal(x.shape)
    assert not audibly_identical(hissy.astype(np.float32), gaps, SR)
    assert not audibly_identical(x, x[:, :-1], SR)


def test_merge_keeps_order_and_groups_with_the_first(rng):
    x = np.stack([melody(2.0, seed=5)] * 2)
    other = x * np.float32(0.5)
    groups = merge_identical({"input": x, "bwe": x.copy(), "gate": other, "restore": other.copy(), "bwe2": x}, SR)
    assert groups == [["input", "bwe", "bwe2"], ["gate", "restore"]]
    candidate = Candidate(members=("gate", "restore"), path=None, sha256=audio_sha256(other))
    assert candidate.label == "gate=restore"
    assert audio_sha256(other) == audio_sha256(other.copy()) != audio_sha256(x)


def test_merge_groups_exactly_as_comparing_each_clip_with_each_group_would(rng):
    # merge_identical tells clips apart by their frame levels before it computes a difference;
    # the groups must be those of audibly_identical itself, at and around its boundary too.
    x = np.stack([melody(1.0, seed=6), melody(1.0, seed=7)])
    gaps = x.copy()
    gaps[:, : SR // 4] = 0
    clips = {"input": x, "just_same": x * (1 + 10 ** (-60 / 20) * 0.999), "just_not": x * (1 + 10 ** (-59.9 / 20)),
             "inverted": -x,  # the same level in every frame, the most different sound
             "swapped": x[::-1].copy(), "gaps": gaps, "gaps_hiss": gaps + 1e-7 * rng.standard_normal(x.shape),
             "half": 0.5 * x, "just_not_again": x * (1 + 10 ** (-59.9 / 20)), "mono": x[:1]}
    expected: list[list[str]] = []
    for name, audio in clips.items():
        group = next((g for g in expected if audibly_identical(clips[g[0]], audio, SR)), None)
        group.append(name) if group is not None else expected.append([name])
    assert merge_identical(clips, SR) == expected
    assert expected == [["input", "just_same"], ["just_not", "just_not_again"], ["inverted"], ["swapped"],
                        ["gaps", "gaps_hiss"], ["half"], ["mono"]]


# -- stimuli --------------------------------------------------------------------

def test_a_pair_is_matched_lossless_and_anonymous(files):
    pair = stimuli.make_pair(files["input"], files["louder"], np.random.default_rng(0))
    levels = []
    for data in (pair.left, pair.right):
        audio, info = decode(data)
        assert info.format == "WAV" and info.subtype == "PCM_24" and info.samplerate == SR and info.channels == 2
        levels.append(A.loudness_lufs(audio.astype(np.float32), SR))
        assert A.true_peak_dbtp(audio.astype(np.float32), SR) <= stimuli.TRUE_PEAK_CEILING_DBTP + 0.05
    assert len(pair.left) == len(pair.right)  # the size cannot tell the sides apart
    assert levels[0] == pytest.approx(levels[1], abs=0.05)
    assert levels[0] == pytest.approx(pair.loudness_lufs, abs=0.05) and pair.lowered_db == 0.0
    assert pair.loudness_lufs == stimuli.TARGET_LUFS


def test_the_stimulus_is_the_excerpt_gained_faded_and_dithered(files):
    """Known answer: decoded stimulus minus (excerpt x fade x gain) is within the dither and rounding."""
    pair = stimuli.make_pair(files["quieter"], files["input"], np.random.default_rng(1))
    start = int(round(pair.start_s * SR))
    frames = int(round(pair.duration_s * SR))
    source = stimuli.read_excerpt(files["quieter"], start, start + frames) * stimuli._fade(frames, SR)
    gain_db = pair.loudness_lufs - A.loudness_lufs(source, SR)
    expected = source * 10 ** (gain_db / 20)
    audio, _ = decode(pair.left)
    error = audio - expected
    # TPDF dither spans +-1 step and rounding half a step: 1.5 steps of 24-bit audio (the float32
    # gain's rounding adds at most 2**-24 of the sample, far below a step at these levels).
    assert np.max(np.abs(error)) <= 1.5 * stimuli.LSB_24 * 1.001
    assert np.std(error) == pytest.approx(np.sqrt(1 / 6 + 1 / 12) * stimuli.LSB_24, rel=0.05)
    assert np.max(np.abs(audio[:, :1])) < 1e-3  # faded in: no click at a random cut


def test_every_trial_sends_new_bytes_and_a_new_length(files):
    rng = np.random.default_rng(2)
    pairs = [stimuli.make_pair(files["input"], files["louder"], rng) for _ in range(6)]
    sent = [p.left for p in pairs] + [p.right for p in pairs]
    assert len(set(sent)) == len(sent)
    assert len({len(p.left) for p in pairs}) == len(pairs)
    compare_tab = files["input"].read_bytes()
    assert all(compare_tab not in (p.left, p.right) for p in pairs)
    for p in pairs:  # a short clip loses at most MAX_TRIM_S at each end
        assert 10.0 - 2 * stimuli.MAX_TRIM_S <= p.duration_s <= 10.0 and p.start_s <= stimuli.MAX_TRIM_S


def test_a_long_clip_is_heard_a_random_section_at_a_time(files):
    rng = np.random.default_rng(3)
    pairs = [stimuli.make_pair(files["input"], files["quieter"], rng, max_excerpt_s=4.0) for _ in range(5)]
    assert all(p.duration_s == pytest.approx(4.0, abs=1 / SR) for p in pairs)
    assert all(0 <= p.start_s <= 6.0 for p in pairs) and len({p.start_s for p in pairs}) == 5


def test_a_peaky_pair_is_lowered_together_under_the_ceiling(tmp_path):
    """A high crest factor: clicks over a quiet tone; at -23 LUFS its peaks would pass -1 dBTP."""
    t = np.arange(4 * SR) / SR
    tone = 0.01 * np.sin(2 * np.pi * 220 * t)
    clicks = tone.copy()
    clicks[:: SR // 4] = 0.9
    paths = [A.write_wav(tmp_path / f"{n}.wav", np.stack([x, x]), SR) for n, x in (("tone", tone), ("clicks", clicks))]
    pair = stimuli.make_pair(paths[0], paths[1], np.random.default_rng(4))
    assert pair.lowered_db > 1.0 and pair.loudness_lufs == pytest.approx(stimuli.TARGET_LUFS - pair.lowered_db)
    levels, peaks = [], []
    for data in (pair.left, pair.right):
        audio = decode(data)[0].astype(np.float32)
        levels.append(A.loudness_lufs(audio, SR))
        peaks.append(A.true_peak_dbtp(audio, SR))
    assert levels[0] == pytest.approx(levels[1], abs=0.05)
    assert levels[0] == pytest.approx(pair.loudness_lufs, abs=0.05)
    assert max(peaks) <= stimuli.TRUE_PEAK_CEILING_DBTP + 0.05


# -- single-use links and the listening rule ------------------------------------------

def test_a_stimulus_link_works_once_and_remembers_when():
    store = StimulusStore()
    token = store.publish(b"RIFF-left")
    other = store.publish(b"RIFF-right")
    assert token != other and len(token) >= 32
    assert store.fetched_at(token) is None
    assert store.take(token) == b"RIFF-left"
    assert store.fetched_at(token) is not None
    assert store.take(token) is None and store.take("unknown") is None
    store.discard(token, other)
    assert store.take(other) is None and store.bytes_waiting == 0


def test_the_store_keeps_within_its_memory_budget():
    store = StimulusStore(max_bytes=1000)
    tokens = [store.publish(bytes(400)) for _ in range(5)]
    assert store.bytes_waiting <= 1000
    assert store.take(tokens[0]) is None and store.take(tokens[-1]) == bytes(400)


def report(left_s=3.2, right_s=3.1, trial="t1") -> ListeningReport:
    return ListeningReport(trial, left_s, right_s)


def test_the_listening_rule():
    check_listening(RULES, report(), 100.0, 100.1, 9.0, now=107.0)  # accepted
    with pytest.raises(ListeningError, match="left side's audio was never loaded"):
        check_listening(RULES, report(), None, 100.0, 9.0, now=107.0)
    with pytest.raises(ListeningError, match=r"at least 3.0 s .*right 1.0 s"):
        check_listening(RULES, report(right_s=1.0), 100.0, 100.0, 9.0, now=107.0)
    with pytest.raises(ListeningError, match="loaded 2.0 s ago"):  # the server's clock disagrees
        check_listening(RULES, report(), 100.0, 100.0, 9.0, now=102.0)
    with pytest.raises(ListeningError, match="reports 20.0 s of listening"):
        check_listening(RULES, report(10.0, 10.0), 100.0, 100.0, 9.0, now=107.0)
    # A stimulus shorter than the minimum needs to be heard whole, once per side.
    check_listening(RULES, report(2.0, 2.0), 100.0, 100.0, 2.0, now=104.0)
    with pytest.raises(ListeningError, match="at least 2.0 s"):
        check_listening(RULES, report(1.5, 2.0), 100.0, 100.0, 2.0, now=104.0)


def test_a_malformed_report_is_refused():
    assert ListeningReport.parse('{"trial": "abc", "left_s": 3, "right_s": 4.5}') == report(3.0, 4.5, "abc")
    for bad in (None, "", "[]", '{"trial": "x"}', '{"trial": "x", "left_s": "a", "right_s": 1}',
                '{"trial": "x", "left_s": -1, "right_s": 1}', '{"trial": "x", "left_s": 1e9, "right_s": 1}',
                '{"trial": "x", "left_s": 3, "right_s": 3, "pad": "' + "x" * 2000 + '"}'):
        with pytest.raises(ListeningError, match="did not report what was heard|impossible listening time"):
            ListeningReport.parse(bad)


# -- sessions ---------------------------------------------------------------------

def test_pairs_are_balanced_and_each_pair_gets_both_orders_evenly():
    labels = ["input", "b", "c", "d"]
    session = Session("s", candidates=[Candidate((name,), None, "") for name in labels], seed=7)
    rng = np.random.default_rng(0)
    first = {}
    for _ in range(600):
        left, right = next_pair(session, rng)
        pair = tuple(sorted((left.label, right.label)))
        session.heard[pair] = session.heard.get(pair, 0) + 1
        first[pair] = first.get(pair, 0) + (left.label == pair[0])
    assert set(session.heard.values()) == {100}  # 6 pairs, 100 times each
    # Each pair's first name is on the left in about half of its 100 trials: a binomial(100, 0.5)
    # lies within 50 +- 15 with probability 0.998 (the draw is seeded: this run is fixed).
    assert all(35 <= count <= 65 for count in first.values()), first


def test_a_trial_needs_listening_and_then_counts_once(files):
    store = StimulusStore()
    session = Session("s", clip_id="clip", clip_source="example", candidates=candidates_of(files), seed=3)
    trial = start_trial(session, store, RULES)
    assert trial.left.label != trial.right.label and session.trial is trial
    with pytest.raises(ListeningError, match="never loaded"):
        judge(session, "left", report(trial=trial.trial_id), store, RULES)
    for token in trial.tokens:
        assert store.take(token)
    fetched = store.fetched_at(trial.tokens[0])
    with pytest.raises(ListeningError, match="already been judged or replaced"):
        judge(session, "left", report(trial="another"), store, RULES, now=fetched + 10)
    with pytest.raises(ListeningError, match="Voting opens once"):
        judge(session, "left", report(trial=trial.trial_id), store, RULES, now=fetched + 1)
    vote = judge(session, "right", report(trial=trial.trial_id), store, RULES, now=fetched + 10)
    assert session.votes_cast == 0 and session.trial is trial  # judging changes nothing
    assert vote.winner == trial.right.label and vote.restorer_left == trial.left.label
    assert vote.clip_id == "clip" and vote.stimulus_left_sha256 == trial.left.sha256
    assert vote.decision_s == pytest.approx(10.0, abs=0.2) and vote.flags == ""
    assert vote.excerpt_duration_s == pytest.approx(trial.duration_s)
    commit(session, vote, store, now=fetched + 10)
    assert session.trial is None and session.votes_cast == 1
    assert session.heard == {tuple(sorted((trial.left.label, trial.right.label))): 1}


def run_votes(session, store, count, decision_s, spacing_s=0.0, start_s=0.0):
    """Vote ``count`` times, ``decision_s`` after fetching both sides, the k-th vote ``start_s +
    k * spacing_s`` later on the server's clock than the test really runs."""
    cast = []
    for k in range(count):
        trial = start_trial(session, store, RULES)
        for token in trial.tokens:
            store.take(token)
        now = store.fetched_at(trial.tokens[0]) + decision_s + start_s + k * spacing_s
        vote = judge(session, "tie", report(trial=trial.trial_id), store, RULES, now=now)
        commit(session, vote, store, now=now)
        cast.append(vote)
    return cast, now


def test_fast_decisions_are_flagged_and_a_fast_pace_is_refused_then_flagged(files):
    store = StimulusStore()
    session = Session("s", candidates=candidates_of(files), seed=4)
    cast, now = run_votes(session, store, 2, 6.6)  # both sides for 3 s, then decided in 0.6 s
    assert [v.flags for v in cast] == [FLAG_FAST] * 2
    cast, now = run_votes(session, store, 4, 7.5)  # 6 votes within a minute: allowed
    assert [v.flags for v in cast] == [""] * 4
    trial = start_trial(session, store, RULES)
    for token in trial.tokens:
        store.take(token)
    with pytest.raises(ListeningError, match="faster than this test allows"):
        judge(session, "left", report(trial=trial.trial_id), store, RULES, now=now + 7.5)
    assert session.flags == {FLAG_RATE}
    later = judge(session, "left", report(trial=trial.trial_id), store, RULES, now=now + 60)
    assert later.flags == FLAG_RATE
    commit(session, later, store, now=now + 60)
    # Every 12 s (five a minute) is within the minute's limit; the hour's ends at 20 votes.
    cast, now = run_votes(session, store, 13, 7.5, spacing_s=12.0, start_s=120.0)
    assert len(session.vote_times) == 20
    trial = start_trial(session, store, RULES)
    for token in trial.tokens:
        store.take(token)
    with pytest.raises(ListeningError, match=r"\(20 votes an hour\)"):
        judge(session, "left", report(trial=trial.trial_id), store, RULES, now=now + 12.0)


def test_the_test_on_a_clip_completes_after_every_pair_was_heard_enough(files):
    store = StimulusStore()
    session = Session("s", candidates=candidates_of(files)[:2], seed=5)
    run_votes(session, store, RULES.max_votes_per_pair, 7.5, spacing_s=20.0)
    with pytest.raises(ClipComplete, match="complete"):
        start_trial(session, store, RULES)
    session.reset("other", "file", "", candidates_of(files)[:2])
    assert start_trial(session, store, RULES).trial_id


def test_one_sound_is_not_a_test():
    session = Session("s", candidates=[Candidate(("input", "bwe"), None, "")])
    with pytest.raises(ValueError, match="made no audible change"):
        next_pair(session, np.random.default_rng(0))


def test_listening_rules_refuse_impossible_settings():
    assert ListenRules(min_listen_s=0.0, max_votes_per_minute=1, max_votes_per_hour=1, max_votes_per_pair=1)
    for name in ("min_listen_s", "clock_tolerance_s", "min_decision_s"):
        with pytest.raises(ValueError, match=f"{name} must be >= 0, got -0.5"):
            ListenRules(**{name: -0.5})
    for name in ("max_votes_per_minute", "max_votes_per_hour", "max_votes_per_pair"):
        with pytest.raises(ValueError, match="max_votes_per_minute, max_votes_per_hour and max_votes_per_pair "
                                             "must be at least 1"):
            ListenRules(**{name: 0})


def test_the_report_and_the_listening_rule_at_their_boundaries():
    long_trial = "t" * 80
    report = ListeningReport.parse('{"trial": "%s", "left_s": 0, "right_s": 999999.9}' % long_trial)
    assert report == ListeningReport("t" * 64, 0.0, 999999.9)  # the id is cut to 64 characters
    padded = '{"trial": "x", "left_s": 1, "right_s": 1, "pad": "%s"}'
    assert ListeningReport.parse(padded % ("p" * (1000 - len(padded % "")))).left_s == 1.0  # 1000 characters
    with pytest.raises(ListeningError, match="The player did not report what was heard; play both sides through "
                                             "the A/B player and vote again."):
        ListeningReport.parse(padded % ("p" * (1001 - len(padded % ""))))
    for bad in ('{"trial": "x", "left_s": 1e6, "right_s": 1}', '{"trial": "x", "left_s": 1, "right_s": 1e6}',
                '{"trial": "x", "left_s": 1, "right_s": -0.1}'):
        with pytest.raises(ListeningError, match="^The player reported an impossible listening time.$"):
            ListeningReport.parse(bad)
    rules = ListenRules(min_listen_s=3.0, clock_tolerance_s=0.5)
    fetched = {"a": 100.0, "b": 100.0}
    check_heard(rules, {"a": 3.0 - 1e-3, "b": 3.0}, fetched, 9.0, now=105.5)  # exactly enough, on every count
    check_heard(rules, {"a": 3.0, "b": 3.0}, fetched, 9.0, now=105.5)  # listening = elapsed + tolerance
    with pytest.raises(ListeningError, match=r"^Listen to each side for at least 3.0 s before voting "
                                             r"\(so far: a 2.0 s, b 1.0 s\).$"):
        check_heard(rules, {"a": 2.0, "b": 1.0}, fetched, 9.0, now=110.0)
    with pytest.raises(ListeningError, match="^Voting opens once each side has played for 3.0 s; the pair was "
                                             "loaded 5.4 s ago.$"):
        check_heard(rules, {"a": 3.0, "b": 3.0}, fetched, 9.0, now=105.4)
    with pytest.raises(ListeningError, match="^The player reports 6.1 s of listening, but the pair was loaded only "
                                             "5.5 s ago; refused.$"):
        check_heard(rules, {"a": 3.1, "b": 3.0}, fetched, 9.0, now=105.5)


def test_the_store_drops_the_oldest_beyond_its_budget_or_age(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("restorelab.listening.transport.time.monotonic", lambda: clock[0])
    store = StimulusStore(max_bytes=1000, max_age_s=10.0)
    first = store.publish(bytes(600))
    assert len(first) == 32 and store.fetched_at(first) is None and store.fetched_at("unknown") is None
    clock[0] = 10.0
    second = store.publish(bytes(400))  # exactly at the budget and exactly the age limit: both kept
    assert store.bytes_waiting == 1000 and store.take(first) == bytes(600)
    assert store.fetched_at(first) == 10.0 and store.bytes_waiting == 400
    clock[0] = 20.5
    third = store.publish(bytes(100))  # the second is now older than 10 s: dropped
    assert store.take(second) is None and store.bytes_waiting == 100
    store.discard(third, "unknown")
    assert store.bytes_waiting == 0 and store.take(third) is None
    fourth, fifth = store.publish(bytes(700)), store.publish(bytes(700))  # over budget: the oldest goes
    assert store.take(fourth) is None and store.take(fifth) == bytes(700)
    alone = StimulusStore(max_bytes=10)
    token = alone.publish(bytes(50))  # a single stimulus is kept even beyond the budget
    assert alone.take(token) == bytes(50)


def test_a_vote_carries_its_trial_and_study_fields_and_checks_each_side(files):
    store = StimulusStore()
    session = Session("s", clip_id="clip", clip_source="example", prompt="p", candidates=candidates_of(files), seed=3)
    session.flags.add(FLAG_RATE)
    trial = start_trial(session, store, RULES)
    store.take(trial.tokens[1])  # only the right side was fetched
    with pytest.raises(ListeningError, match="The left side's audio was never loaded"):
        judge(session, "left", report(trial=trial.trial_id), store, RULES)
    store.take(trial.tokens[0])
    fetched = store.fetched_at(trial.tokens[0])
    vote = judge(session, "left", report(trial=trial.trial_id), store, RULES, now=fetched + 6.9,
                 study_id="st", listener_id="l1", listener_index=2)
    assert (vote.settings_left, vote.settings_right) == (trial.left.settings, trial.right.settings)
    assert (vote.stimulus_left_sha256, vote.stimulus_right_sha256) == (trial.left.sha256, trial.right.sha256)
    assert (vote.excerpt_start_s, vote.loudness_target_lufs) == (trial.start_s, trial.loudness_lufs)
    assert (vote.study_id, vote.listener_id, vote.listener_index, vote.prompt) == ("st", "l1", 2, "p")
    assert vote.flags == "fast rate"  # 6.9 s is within 2 x 3 s + 1 s: fast; and the session's own flag
    assert judge(session, "left", report(trial=trial.trial_id), store, RULES, now=fetched + 7.0).flags == "rate"
    with pytest.raises(ListeningError, match="^There is no pair to vote on: press 'Start listening' first.$"):
        judge(Session("t"), "left", report(), store, RULES)


def test_the_pace_windows_and_the_hour_of_memory_end_exactly(files):
    rules = ListenRules(min_listen_s=0.0, min_decision_s=0.0, max_votes_per_minute=1, max_votes_per_hour=2)
    store = StimulusStore()
    session = Session("s", candidates=candidates_of(files), seed=9)
    trial = start_trial(session, store, rules)
    for token in trial.tokens:
        store.take(token)
    t0 = float(int(store.fetched_at(trial.tokens[0])) + 10)  # whole seconds: exact differences
    session.vote_times = [t0]
    with pytest.raises(ListeningError, match=r"^You are voting faster than this test allows \(1 votes a minute\); "
                                             r"take your time with each pair.$"):
        judge(session, "tie", report(trial=trial.trial_id), store, rules, now=t0 + 59.99)
    session.flags.clear()
    vote = judge(session, "tie", report(trial=trial.trial_id), store, rules, now=t0 + 60.0)  # a minute on: allowed
    commit(session, vote, store, now=t0 + 60.0)
    assert session.votes_cast == 1 and session.vote_times == [t0, t0 + 60.0]
    again = start_trial(session, store, rules)
    assert store.take(trial.tokens[0]) is None  # the judged trial's links are gone
    commit(session, vote, store, now=t0 + 3600.0)  # an hour after the first: it is forgotten, exactly then
    assert session.votes_cast == 2 and session.vote_times == [t0 + 60.0, t0 + 3600.0]
    assert session.trial is None and store.take(again.tokens[0]) is None  # commit closes the open trial


def test_replacing_a_trial_withdraws_its_links(files):
    store = StimulusStore()
    session = Session("s", candidates=candidates_of(files), seed=2)
    first = start_trial(session, store, RULES)
    second = start_trial(session, store, RULES)
    assert session.trial is second and first.trial_id != second.trial_id
    assert all(store.take(token) is None for token in first.tokens)
    assert all(store.take(token) is not None for token in second.tokens)


def test_what_counts_as_the_same_sound_at_its_boundaries():
    """Every 50 ms frame's difference must be at least 60 dB below the louder side's, or below
    -96 dBFS: exactly 60 dB down is the same sound, 59.9 dB down is not."""
    x = np.ones((2, SR), np.float64) * 0.5
    assert audibly_identical(x, x * (1 + 10 ** (-60 / 20) * 0.999), SR)
    assert not audibly_identical(x, x * (1 + 10 ** (-59.9 / 20)), SR)
    quiet = np.full((1, SR), 10 ** (-100 / 20))  # a constant 100 dB below full scale
    assert audibly_identical(np.zeros_like(quiet), quiet, SR)
    assert not audibly_identical(np.zeros_like(quiet), quiet * 10 ** (5 / 20), SR)  # -95 dBFS
    assert audibly_identical(np.zeros_like(quiet), quiet * 10 ** (3 / 20), SR)  # -97 dBFS
    # A change of one sample, 84 dB below its 50 ms frame, is the same sound even where the
    # signal itself crosses zero at that sample: the test is per frame, not per sample.
    sine = 0.5 * np.sin(2 * np.pi * 441 * np.arange(SR) / SR)[None]
    clicked = sine.copy()
    clicked[0, 1000] += 1e-3  # sample 1000 is a zero crossing of the 441 Hz sine
    assert audibly_identical(sine, clicked, SR)
    assert merge_identical({"a": sine, "b": clicked}, SR) == [["a", "b"]]
    short = np.ones((1, SR // 20 + 7)) * 0.5  # frames past the end are padded, not dropped
    changed = short.copy()
    changed[:, -3:] = -0.5
    assert not audibly_identical(short, changed, SR)
    assert audio_sha256(x) == audio_sha256(x.astype(np.float32)) != audio_sha256(x.reshape(1, -1))


def test_excerpts_are_placed_anywhere_and_short_clips_trimmed_at_both_ends():
    rng = np.random.default_rng(0)
    length = int(stimuli.MAX_EXCERPT_S * SR)
    starts = {stimuli.excerpt_bounds(length + 3, SR, rng)[0] for _ in range(400)}
    assert starts == {0, 1, 2, 3}  # every place, the last included
    bounds = {stimuli.excerpt_bounds(length, SR, rng) for _ in range(400)}  # exactly one excerpt long: trimmed
    trim = int(stimuli.MAX_TRIM_S * SR)
    assert len(bounds) > 300 and max(b[0] for b in bounds) <= trim and min(b[1] for b in bounds) >= length - trim
    tiny = {stimuli.excerpt_bounds(40, SR, rng) for _ in range(400)}  # at most a twentieth off each end
    assert {b[0] for b in tiny} == {0, 1, 2} and {b[1] for b in tiny} == {38, 39, 40}


def test_the_fade_is_a_symmetric_raised_cosine():
    """The rise is sampled half a step in, so rise[k] + rise[ramp - 1 - k] == 1 (it crossfades to
    unity with its own mirror image) and the envelope reads the same backwards."""
    envelope = stimuli._fade(SR, SR)
    ramp = int(stimuli.FADE_S * SR)
    rise = envelope[:ramp].astype(np.float64)
    assert envelope.dtype == np.float32 and np.all(envelope[ramp:-ramp] == 1.0)
    np.testing.assert_allclose(rise + rise[::-1], 1.0, atol=1e-6)
    np.testing.assert_array_equal(envelope, envelope[::-1])
    assert rise[0] == pytest.approx(0.5 - 0.5 * np.cos(np.pi * 0.5 / ramp), rel=1e-5) and rise[0] > 0
    short = stimuli._fade(10, SR)  # shorter than two ramps: five samples up, five down
    np.testing.assert_allclose(short[:5] + short[:5][::-1], 1.0, atol=1e-6)
    assert np.all(stimuli._fade(1, SR) == 1.0)


def test_24_bit_stimuli_clip_at_full_scale_without_wrapping():
    rng = np.random.default_rng(0)
    extreme = np.array([[1.5, 1.0, -1.0, -1.5, 0.0]], np.float32)
    decoded, info = decode(stimuli._wav_bytes(extreme, SR, rng))
    assert info.subtype == "PCM_24" and info.format == "WAV"
    top = (2 ** 23 - 1) / 2 ** 23
    assert decoded[0, 0] == top and decoded[0, 1] >= top - 2 / 2 ** 23
    assert decoded[0, 3] == -1.0 and decoded[0, 2] <= -1.0 + 2 / 2 ** 23
    assert abs(decoded[0, 4]) <= 1 / 2 ** 23  # silence dithered by at most one step
