"""The vote log: schema, old files, concurrency, damaged rows, full disks, export safety."""

from __future__ import annotations

import csv
import errno
import io
import multiprocessing
import os
import re

import pytest

from restorelab.listening import votes as V


def make_vote(i: int = 0, choice: str = "left", prompt: str = "lofi piano", session: str = "s1",
              flags: str = "") -> V.Vote:
    return V.Vote(session_id=session, trial_id=f"t{i}", clip_id="clip", clip_source="example", prompt=prompt,
                  restorer_left="input", restorer_right="spectral_gate_hf", choice=choice,
                  listened_left_s=3.2, listened_right_s=4.1, decision_s=9.5, loudness_target_lufs=-23.0,
                  settings_left='[{"restorer": "input"}]',
                  settings_right='[{"params": {"prop_decrease": 0.6}, "restorer": "spectral_gate_hf"}]',
                  stimulus_left_sha256="a" * 64, stimulus_right_sha256="b" * 64, excerpt_start_s=0.25,
                  excerpt_duration_s=9.0, flags=flags)


def v1_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def v1_row(trial: str, prompt: str = "old prompt") -> list[str]:
    """A row as the first version of the log wrote it (15 columns)."""
    return ["2026-01-01T00:00:00.000+00:00", "old", trial, "clip", "example", prompt, "input", "mcra_wiener",
            "right", "mcra_wiener", "3.000", "3.000", "8.000", "-23.0", "0.1.0"]


def test_row_has_the_fixed_fields_and_derived_winner(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    for i, choice in enumerate(V.CHOICES):
        log.append(make_vote(i, choice))
    rows = log.read()
    assert [r["winner"] for r in rows] == ["input", "spectral_gate_hf", "tie", "both_bad"]
    assert (tmp_path / "votes.csv").read_text().splitlines()[0] == ",".join(V.FIELDS)
    assert V.FIELDS[: len(V.FIELDS_V1)] == V.FIELDS_V1  # new columns only ever appended
    assert rows[0]["loudness_target_lufs"] == "-23.0" and rows[0]["app_version"]
    assert rows[0]["settings_right"] == '[{"params": {"prop_decrease": 0.6}, "restorer": "spectral_gate_hf"}]'
    assert rows[0]["excerpt_duration_s"] == "9.000" and rows[0]["stimulus_left_sha256"] == "a" * 64


def test_bad_votes_are_refused():
    with pytest.raises(ValueError, match="choice must be one of"):
        make_vote(choice="A")
    with pytest.raises(ValueError, match="^a pair needs two different restorers$"):
        V.Vote(session_id="s", trial_id="t", clip_id="c", clip_source="x", prompt="", restorer_left="a",
               restorer_right="a", choice="tie", listened_left_s=1, listened_right_s=1, decision_s=1,
               loudness_target_lufs=-23)
    with pytest.raises(ValueError, match="decision_s must be >= 0"):
        V.Vote(session_id="s", trial_id="t", clip_id="c", clip_source="x", prompt="", restorer_left="a",
               restorer_right="b", choice="tie", listened_left_s=1, listened_right_s=1, decision_s=float("nan"),
               loudness_target_lufs=-23)


def test_free_text_is_bounded_and_kept_on_one_line(tmp_path):
    with pytest.raises(ValueError, match="the prompt is 501 characters long; the limit is 500"):
        make_vote(prompt="x" * 501)
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(prompt="two\nlines,\r\n\"quoted\"\u2028end"))
    text = (tmp_path / "votes.csv").read_text()
    assert len(text.splitlines()) == 2  # the header and one line per row
    assert log.read()[0]["prompt"] == 'two lines,  "quoted" end'


def test_foreign_file_is_never_appended_to(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("name,score\nx,1\n")
    with pytest.raises(V.VoteLogError, match="not a vote file"):
        V.VoteLog(path).append(make_vote())
    assert path.read_text() == "name,score\nx,1\n"
    with pytest.raises(V.VoteLogError, match="not a vote file"):
        V.VoteLog(path).read()


def test_old_version_files_stay_readable_and_are_upgraded_on_append(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text(v1_line(list(V.FIELDS_V1)) + v1_line(v1_row("o1", "a prompt\non two lines"))
                    + v1_line(v1_row("o2")))
    log = V.VoteLog(path)
    old = log.read()
    assert [r["trial_id"] for r in old] == ["o1", "o2"]
    assert old[0]["prompt"] == "a prompt\non two lines" and old[0]["flags"] == "" and old[0]["settings_left"] == ""
    log.append(make_vote(3))
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(V.FIELDS) and len(lines) == 4  # upgraded: one line per row
    rows = log.read()
    assert [r["trial_id"] for r in rows] == ["o1", "o2", "t3"]
    assert rows[0]["prompt"] == "a prompt on two lines" and rows[1]["choice"] == "right"


def test_a_torn_last_line_stays_separate(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(1))
    with open(log.path, "a") as handle:
        handle.write('2026-01-01T00:00:00,half a row,"with an open quote')  # a crash mid-write
    log.append(make_vote(2))
    read = log.read_all()
    assert [r["trial_id"] for r in read.rows] == ["t1", "t2"]
    assert read.problems == ["line 3: not a complete vote row, skipped"]


def test_a_damaged_row_in_the_middle_loses_no_complete_vote(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(1))
    lines = log.path.read_text().splitlines(keepends=True)
    torn = lines[1][: len(lines[1]) // 2].replace(",", ',"', 1) + "\n"  # cut off, with an unclosed quote
    log.path.write_text(lines[0] + lines[1] + torn + "garbage without commas\n")
    for i in range(2, 5):
        log.append(make_vote(i))
    read = log.read_all()
    assert [r["trial_id"] for r in read.rows] == ["t1", "t2", "t3", "t4"]
    assert len(read.problems) == 2


def test_a_200_kb_field_of_an_old_file_does_not_break_reading(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text(v1_line(list(V.FIELDS_V1)) + v1_line(v1_row("big", "p" * 200_000)) + v1_line(v1_row("o2")))
    log = V.VoteLog(path)
    rows = log.read()
    assert [r["trial_id"] for r in rows] == ["big", "o2"] and len(rows[0]["prompt"]) == 200_000
    log.append(make_vote(3))
    assert [r["trial_id"] for r in log.read()] == ["big", "o2", "t3"]


class FailingWrite:
    """``os.write`` that writes the first ``good`` bytes of a row, then fails like a full disk."""

    def __init__(self, good: int, error: int | None = errno.ENOSPC) -> None:
        self.good, self.error, self.real = good, error, os.write

    def __call__(self, fd, data):
        if self.good <= 0:
            if self.error is None:
                return 0
            raise OSError(self.error, os.strerror(self.error))
        count = self.real(fd, bytes(data[: self.good]))
        self.good -= count
        return count


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO, None])
def test_a_failed_write_leaves_no_half_row_and_raises(tmp_path, monkeypatch, error):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(1))
    before = log.path.read_bytes()
    monkeypatch.setattr(V.os, "write", FailingWrite(good=40, error=error))
    with pytest.raises(V.VoteLogError, match="could not be saved"):
        log.append(make_vote(2))
    monkeypatch.undo()
    assert log.path.read_bytes() == before
    log.append(make_vote(3))
    assert [r["trial_id"] for r in log.read()] == ["t1", "t3"]


def test_full_disk_and_read_only_errors_name_the_problem(tmp_path, monkeypatch):
    log = V.VoteLog(tmp_path / "votes.csv")
    monkeypatch.setattr(V.os, "write", FailingWrite(good=0))
    with pytest.raises(V.VoteLogError, match="the server's disk is full") as caught:
        log.append(make_vote(1))
    assert str(tmp_path) not in str(caught.value)
    monkeypatch.undo()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(V.os, "open", read_only)
    with pytest.raises(V.VoteLogError, match="read-only"):
        log.append(make_vote(1))


def _append_many(path, worker, count):
    log = V.VoteLog(path)
    for i in range(count):
        log.append(make_vote(i, V.CHOICES[i % 4], prompt=f"w{worker}, with \"quotes\" and, commas",
                             session=f"worker{worker}"))


def test_eight_processes_lose_and_corrupt_nothing(tmp_path):
    path = tmp_path / "votes.csv"
    # Start from a file of the first version: the first writer upgrades it while the others wait.
    path.write_text(v1_line(list(V.FIELDS_V1)) + v1_line(v1_row("old")))
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(path, w, 300)) for w in range(8)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
        assert p.exitcode == 0
    read = V.VoteLog(path).read_all()
    assert len(read.rows) == 2401 and read.problems == []
    with open(path, newline="") as handle:
        raw = list(csv.reader(handle))
    assert len(raw) == 2402 and all(len(r) == len(V.FIELDS) for r in raw)
    for w in range(8):
        mine = [r for r in read.rows if r["session_id"] == f"worker{w}"]
        assert sorted(int(r["trial_id"][1:]) for r in mine) == list(range(300))
        assert all(r["prompt"] == f"w{w}, with \"quotes\" and, commas" for r in mine)


def test_export_neutralises_formulas_but_keeps_numbers(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(prompt="=HYPERLINK(\"http://x\")"))
    log.append(make_vote(prompt="+1 more"))
    log.append(make_vote(prompt="@SUM(A1)"))
    log.append(make_vote(prompt="-cmd"))
    rows = list(csv.DictReader(io.StringIO(V.export_csv(log.read()))))
    assert [r["prompt"] for r in rows] == ["'=HYPERLINK(\"http://x\")", "'+1 more", "'@SUM(A1)", "'-cmd"]
    assert rows[0]["loudness_target_lufs"] == "-23.0" and rows[0]["excerpt_start_s"] == "0.250"


def test_flagged_sessions():
    rows = [make_vote(i, session="calm").row() for i in range(4)]
    rows += [make_vote(i, session="hasty", flags="fast" if i < 3 else "").row() for i in range(6)]
    rows += [make_vote(i, session="quick", flags="fast" if i < 3 else "").row() for i in range(7)]
    rows += [make_vote(i, session="once", flags="fast").row() for i in range(2)]
    rows += [make_vote(0, session="stuffer").row(), make_vote(1, session="stuffer", flags="rate").row()]
    # hasty: 3 of 6 fast; quick: 3 of 7 (under half); once: 2 fast votes, too few to judge.
    assert V.flagged_sessions(rows) == {"hasty", "stuffer"}


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


def test_a_study_vote_row_and_its_validation():
    base = dict(session_id="s", trial_id="t", clip_id="c", clip_source="example", prompt="",
                restorer_left="a", restorer_right="b", choice="tie", listened_left_s=0.0, listened_right_s=0.0,
                decision_s=0.0, loudness_target_lufs=-23.04)
    row = V.Vote(**base, study_id="st", listener_id="l", listener_index=0, check="anchor", check_passed=True).row()
    assert (row["listener_index"], row["check"], row["check_passed"]) == ("0", "anchor", "pass")
    assert row["decision_s"] == "0.000" and row["loudness_target_lufs"] == "-23.0" and row["winner"] == "tie"
    assert V.Vote(**base, listener_index=3, check="anchor", check_passed=False).row()["check_passed"] == "fail"
    plain = V.Vote(**base).row()
    assert (plain["listener_index"], plain["check_passed"], plain["check"]) == ("", "", "")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", plain["timestamp_utc"])
    assert V.Vote(**base, timestamp_utc="2026-01-01T00:00:00.000+00:00").row()["timestamp_utc"].startswith("2026")
    same = dict(base, restorer_right="a")
    assert V.Vote(**same, check="identical").row()["restorer_right"] == "a"  # an identical-pair check
    with pytest.raises(ValueError, match="a pair needs two different restorers"):
        V.Vote(**same, check="anchor")
    with pytest.raises(ValueError, match="check must be one of identical, anchor, got 'other'"):
        V.Vote(**base, check="other")
    with pytest.raises(ValueError, match="choice must be one of left, right, tie, both_bad, got 'A'"):
        V.Vote(**dict(base, choice="A"))
    with pytest.raises(ValueError, match="the clip source is 41 characters long; the limit is 40"):
        V.Vote(**dict(base, clip_source="x" * 41))


def test_where_votes_go(tmp_path, monkeypatch):
    """$RESTORELAB_VOTES_PATH, else /data/votes.csv on a Space's writable persistent disk, else votes/votes.csv."""
    monkeypatch.delenv(V.VOTES_PATH_ENV, raising=False)
    monkeypatch.setattr(V, "PERSISTENT_DATA", tmp_path / "data")
    assert V.default_votes_path() == V.Path("votes") / "votes.csv"
    (tmp_path / "data").mkdir()
    assert V.default_votes_path() == tmp_path / "data" / "votes.csv"
    monkeypatch.setattr(V.os, "access", lambda path, mode: False)  # there, but read-only
    assert V.default_votes_path() == V.Path("votes") / "votes.csv"
    monkeypatch.setenv(V.VOTES_PATH_ENV, str(tmp_path / "mine.csv"))
    assert V.default_votes_path() == tmp_path / "mine.csv"


def test_export_neutralises_text_that_looks_like_a_number_and_fills_missing_columns():
    rows = [{"prompt": "-5", "loudness_target_lufs": "-23.0", "choice": "tie"}]
    exported = list(csv.DictReader(io.StringIO(V.export_csv(rows))))
    assert exported[0]["prompt"] == "'-5" and exported[0]["loudness_target_lufs"] == "-23.0"
    assert exported[0]["session_id"] == "" and list(exported[0]) == list(V.FIELDS)
    assert V.export_csv(rows).endswith("\n") and "\r" not in V.export_csv(rows)


def test_rows_come_back_exactly_as_written_even_after_a_torn_line(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    first = [make_vote(1).row(), make_vote(2, choice="tie").row()]
    log.append_rows(first)  # two rows in one append
    with open(log.path, "a") as handle:
        handle.write('2026-01-01T00:00:00,half a row,"with an open quote')  # a crash mid-write
    later = make_vote(3).row()
    log.append_rows([later])
    read = log.read_all()
    assert read.rows == [*first, later] and read.problems == ["line 4: not a complete vote row, skipped"]
    assert not os.stat(log.path).st_mode & 0o111  # a data file, never executable
    nested = V.VoteLog(tmp_path / "a" / "b" / "votes.csv")
    nested.append(make_vote(4))  # missing folders are made
    assert [r["trial_id"] for r in nested.read()] == ["t4"]


def test_a_current_file_never_joins_a_broken_row_with_the_next(tmp_path):
    """Rows of this version are single lines: an open quote cannot swallow the rows after it (older
    files, whose prompts kept line breaks, may span lines)."""
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(1))
    with open(log.path, "a") as handle:
        handle.write('2026,broken,"open quote\n')
    log.append(make_vote(2))
    read = log.read_all()
    assert [r["trial_id"] for r in read.rows] == ["t1", "t2"]
    assert read.problems == ["line 3: not a complete vote row, skipped"]
    assert V.VoteLog(tmp_path / "missing.csv").read_all() == V.ReadResult([], [])
    (tmp_path / "empty.csv").write_text("")
    assert V.VoteLog(tmp_path / "empty.csv").read_all() == V.ReadResult([], [])


def test_the_votes_folder_syncs_to_a_dataset_only_when_asked(tmp_path, monkeypatch):
    import sys
    import types

    made = []
    fake = types.ModuleType("huggingface_hub")
    fake.CommitScheduler = lambda **kwargs: made.append(kwargs) or "scheduler"
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    votes = tmp_path / "votes.csv"
    monkeypatch.delenv(V.VOTES_DATASET_ENV, raising=False)
    assert V.start_dataset_sync(votes) is None and made == []
    monkeypatch.setenv(V.VOTES_DATASET_ENV, "user/votes")
    assert V.start_dataset_sync(votes, tmp_path / "mushra.csv", every_minutes=2.5) == "scheduler"
    assert made == [{"repo_id": "user/votes", "repo_type": "dataset", "folder_path": tmp_path, "path_in_repo": "votes",
                     "every": 2.5, "allow_patterns": ["votes.csv", "mushra.csv"]}]
    V.start_dataset_sync(votes)
    assert made[1]["every"] == 5.0 and made[1]["allow_patterns"] == ["votes.csv"]


def test_writes_cut_short_by_the_system_are_continued_until_the_row_is_whole(tmp_path, monkeypatch):
    real = os.write
    monkeypatch.setattr(V.os, "write", lambda fd, data: real(fd, bytes(data[:1])))  # one byte per call
    log = V.VoteLog(tmp_path / "votes.csv")
    rows = [make_vote(1).row(), make_vote(2).row()]
    log.append_rows(rows)
    assert log.read_all() == V.ReadResult(rows, [])
    assert b"\r" not in log.path.read_bytes()  # rows end in a bare line feed


@pytest.mark.parametrize("error, why", [
    (errno.ENOSPC, "the server's disk is full"), (errno.EDQUOT, "the server's disk quota is used up"),
    (errno.EROFS, "the vote log is on a read-only disk"), (errno.EACCES, "the vote log is read-only"),
    (errno.EPERM, "the vote log is read-only"), (errno.EIO, "the server could not write the vote log"),
])
def test_each_write_error_gets_its_own_reason_and_a_log_line_naming_the_file(tmp_path, monkeypatch, caplog, error, why):
    log = V.VoteLog(tmp_path / "votes.csv")
    monkeypatch.setattr(V.os, "write", FailingWrite(good=0, error=error))
    with pytest.raises(V.VoteLogError) as caught:
        log.append(make_vote(1))
    assert str(caught.value) == (f"Your vote could not be saved: {why}. Nothing was recorded for this pair; "
                                 "please tell the organiser of this test.")
    assert f"could not write the log {log.path}: [Errno {error}] {os.strerror(error)}" in caplog.text


def test_a_write_of_zero_bytes_counts_as_a_full_disk(tmp_path, monkeypatch):
    log = V.VoteLog(tmp_path / "votes.csv")
    monkeypatch.setattr(V.os, "write", FailingWrite(good=0, error=None))
    with pytest.raises(V.VoteLogError, match="the server's disk is full"):
        log.append(make_vote(1))


def test_a_half_row_that_cannot_be_removed_is_logged(tmp_path, monkeypatch, caplog):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(1))
    monkeypatch.setattr(V.os, "write", FailingWrite(good=40))

    def no_truncate(fd, size):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(V.os, "ftruncate", no_truncate)
    with pytest.raises(V.VoteLogError, match="disk is full"):
        log.append(make_vote(2))
    assert (f"{log.path}: could not remove a partly written row after [Errno {errno.ENOSPC}] "
            f"{os.strerror(errno.ENOSPC)}") in caplog.text
    monkeypatch.undo()
    log.append(make_vote(3))  # the half row stays on its own line, skipped
    assert [r["trial_id"] for r in log.read()] == ["t1", "t3"]


def test_an_upgrade_keeps_every_value_and_says_so_in_the_log(tmp_path, caplog):
    path = tmp_path / "votes.csv"
    path.write_text(v1_line(list(V.FIELDS_V1)) + v1_line(v1_row("o1", "two\nlines")) + v1_line(v1_row("o2")))
    log = V.VoteLog(path)
    before = log.read_all()
    assert before.problems == []  # the two-line prompt is one row, and the next row starts after it
    caplog.set_level("INFO")
    log.append(make_vote(3))
    assert f"{path}: upgraded to the current columns (2 rows kept)" in caplog.text
    after = log.read_all()
    assert after.problems == []
    assert after.rows[1] == before.rows[1] and after.rows[0] == {**before.rows[0], "prompt": "two lines"}


def test_an_upgrade_that_cannot_be_written_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "votes.csv"
    old = v1_line(list(V.FIELDS_V1)) + v1_line(v1_row("o1"))
    path.write_text(old)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(V, "atomic_replace", full_disk)
    with pytest.raises(V.VoteLogError, match="the server's disk is full"):
        V.VoteLog(path).append(make_vote(1))
    assert path.read_text() == old


def test_a_row_split_by_a_stray_line_break_is_never_joined_in_a_current_file(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(1))
    line = V._csv_line([make_vote(2).row()[field] for field in V.FIELDS])
    cut = line.index('"[{') + 3  # inside the quoted settings: each half has an odd number of quotes
    with open(log.path, "a") as handle:
        handle.write(line[:cut] + "\n" + line[cut:])
    log.append(make_vote(3))
    read = log.read_all()
    assert [r["trial_id"] for r in read.rows] == ["t1", "t3"]
    assert read.problems == ["line 3: not a complete vote row, skipped", "line 4: not a complete vote row, skipped"]


def test_an_old_row_may_span_fifty_lines_and_no_more(tmp_path):
    path = tmp_path / "votes.csv"
    fifty = "\n".join(["line"] * 50)  # 50 physical lines
    path.write_text(v1_line(list(V.FIELDS_V1)) + v1_line(v1_row("o1", fifty)) + v1_line(v1_row("o2", fifty + "\nmore"))
                    + v1_line(v1_row("o3")))
    read = V.VoteLog(path).read_all()
    assert [r["trial_id"] for r in read.rows] == ["o1", "o3"]
    assert len(read.problems) == 51  # every line of the 51-line row, each tried as a row start
    path.write_text(v1_line(list(V.FIELDS_V1)) + v1_line(v1_row("o1")) + '2026,old,"open to the end\nof the file\n')
    read = V.VoteLog(path).read_all()
    assert [r["trial_id"] for r in read.rows] == ["o1"] and len(read.problems) == 2


def test_a_row_of_up_to_a_mebibyte_is_read_and_a_longer_one_skipped(tmp_path):
    path = tmp_path / "votes.csv"
    header = v1_line(list(V.FIELDS_V1))
    row = v1_line(v1_row("big", ""))
    fill = V._MAX_ROW_CHARS - len(row)
    path.write_text(header + v1_line(v1_row("big", "p" * fill)) + v1_line(v1_row("bigger", "p" * (fill + 1))))
    read = V.VoteLog(path).read_all()
    assert [r["trial_id"] for r in read.rows] == ["big"] and len(read.problems) == 1


def test_stray_characters_after_a_closing_quote_mark_a_damaged_row(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(1))
    line = V._csv_line([make_vote(2).row()[field] for field in V.FIELDS])
    with open(log.path, "a") as handle:
        handle.write(line.replace(",t2,", ',"t"2,', 1))  # a quote closed mid-field: a damaged line
    assert [r["trial_id"] for r in log.read()] == ["t1"]


def test_bytes_that_are_not_utf8_are_read_as_damage_not_an_exception(tmp_path):
    log = V.VoteLog(tmp_path / "votes.csv")
    log.append(make_vote(1))
    with open(log.path, "ab") as handle:
        handle.write(b"\xff\xfe garbage\n")
    log.append(make_vote(2))
    read = log.read_all()
    assert [r["trial_id"] for r in read.rows] == ["t1", "t2"] and len(read.problems) == 1
    foreign = tmp_path / "foreign.csv"
    foreign.write_bytes(b"\xff\xd8\xff\xe0 a picture, not a log\n")
    with pytest.raises(V.VoteLogError, match="not a vote file of this app; nothing was written to it"):
        V.VoteLog(foreign).append(make_vote(1))
    assert foreign.read_bytes() == b"\xff\xd8\xff\xe0 a picture, not a log\n"


def test_a_long_header_that_is_not_ours_is_foreign(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text(",".join(f"column{i}" for i in range(40)) + "\n")
    with pytest.raises(V.VoteLogError, match="not a vote file"):
        V.VoteLog(path).read()


def test_a_file_replaced_between_open_and_lock_is_opened_again(tmp_path, monkeypatch):
    log = V.VoteLog(tmp_path / "votes.csv")
    replies = iter([False, True])
    monkeypatch.setattr(V, "_same_file", lambda fd, path: next(replies))
    log.append(make_vote(1))
    assert [r["trial_id"] for r in log.read()] == ["t1"]
    monkeypatch.setattr(V, "_same_file", lambda fd, path: False)
    with pytest.raises(V.VoteLogError, match="The log kept changing while your vote was written; please try again."):
        log.append(make_vote(2))
    assert [r["trial_id"] for r in log.read()] == ["t1"]


def test_same_file_tells_a_removed_or_replaced_path(tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text("x")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert V._same_file(fd, path)
        path.unlink()
        assert not V._same_file(fd, path)
        path.write_text("y")
        assert not V._same_file(fd, path)
    finally:
        os.close(fd)


def test_export_neutralises_text_in_a_numeric_column():
    exported = list(csv.DictReader(io.StringIO(V.export_csv([{"decision_s": "=HYPERLINK(1)", "choice": "tie"}]))))
    assert exported[0]["decision_s"] == "'=HYPERLINK(1)"


def test_trial_ids_are_sixteen_hex_characters():
    ids = {V.new_trial_id() for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)

