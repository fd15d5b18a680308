"""The vote log: schema, concurrency, crash tolerance, export safety."""

from __future__ import annotations

import csv
import io
import multiprocessing

import pytest

from restorelab import votes as V


def make_vote(i: int = 0, choice: str = "left", prompt: str = "lofi piano", session: str = "s1") -> V.Vote:
    return V.Vote(session_id=session, trial_id=f"t{i}", clip_id="clip", clip_source="example", prompt=prompt,
                  restorer_left="input", restorer_right="spectral_gate_hf", choice=choice,
                  listened_left_s=3.2, listened_right_s=4.1, decision_s=9.5, loudness_target_lufs=-23.0)


def test_row_has_the_fixed_fields_and_derived_winner(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    for i, choice in enumerate(V.CHOICES):
        log.append(make_vote(i, choice))
    rows = log.read()
    assert [r["winner"] for r in rows] == ["input", "spectral_gate_hf", "tie", "both_bad"]
    assert (tmp_path / "votes.csv").read_text().splitlines()[0] == ",".join(V.FIELDS)
    assert rows[0]["loudness_target_lufs"] == "-23.0" and rows[0]["app_version"]


def test_bad_votes_are_refused():
    with pytest.raises(ValueError, match="choice"):
        make_vote(choice="A")
    with pytest.raises(ValueError, match="two different"):
        V.Vote(session_id="s", trial_id="t", clip_id="c", clip_source="x", prompt="", restorer_left="a",
               restorer_right="a", choice="tie", listened_left_s=1, listened_right_s=1, decision_s=1,
               loudness_target_lufs=-23)


def test_foreign_file_is_never_appended_to(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("name,score\nx,1\n")
    with pytest.raises(ValueError, match="unexpected header"):
        V.VoteLog(path).append(make_vote())
    assert path.read_text() == "name,score\nx,1\n"


def test_a_torn_last_line_stays_separate(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(1))
    with open(log.path, "a") as handle:
        handle.write("2026-01-01T00:00:00,half a row")  # a crash mid-write, no newline
    log.append(make_vote(2))
    assert [r["trial_id"] for r in log.read()] == ["t1", "t2"]


def _append_many(path, worker, count):
    log = V.VoteLog(path)
    for i in range(count):
        log.append(make_vote(i, V.CHOICES[i % 4], prompt=f"w{worker}, with \"quotes\"\nand a newline",
                             session=f"worker{worker}"))


def test_eight_processes_lose_and_corrupt_nothing(tmp_path):
    path = tmp_path / "votes.csv"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(path, w, 200)) for w in range(8)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
        assert p.exitcode == 0
    rows = V.VoteLog(path).read()
    assert len(rows) == 1600
    with open(path, newline="") as handle:
        raw = list(csv.reader(handle))
    assert len(raw) == 1601 and all(len(r) == len(V.FIELDS) for r in raw)
    for w in range(8):
        mine = [r for r in rows if r["session_id"] == f"worker{w}"]
        assert sorted(int(r["trial_id"][1:]) for r in mine) == list(range(200))
        assert all(r["prompt"] == f"w{w}, with \"quotes\"\nand a newline" for r in mine)


def test_export_neutralises_formulas_but_keeps_numbers(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(prompt="=HYPERLINK(\"http://x\")"))
    log.append(make_vote(prompt="+1 more"))
    log.append(make_vote(prompt="@SUM(A1)"))
    log.append(make_vote(prompt="-cmd"))
    rows = list(csv.DictReader(io.StringIO(V.export_csv(log.read()))))
    assert [r["prompt"] for r in rows] == ["'=HYPERLINK(\"http://x\")", "'+1 more", "'@SUM(A1)", "'-cmd"]
    assert rows[0]["loudness_target_lufs"] == "-23.0"


def test_session_ids_are_random_and_not_addresses():
    ids = {V.new_session_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 32 and "." not in i for i in ids)


def test_votes_path_configuration(monkeypatch, tmp_path):
    monkeypatch.setenv(V.VOTES_PATH_ENV, str(tmp_path / "x.csv"))
    assert V.default_votes_path() == tmp_path / "x.csv"
    monkeypatch.delenv(V.VOTES_PATH_ENV)
    assert V.default_votes_path().name == "votes.csv"
    monkeypatch.delenv(V.VOTES_DATASET_ENV, raising=False)
    assert V.start_dataset_sync(tmp_path / "votes.csv") is None
