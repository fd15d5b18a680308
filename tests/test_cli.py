"""The command line end to end on short generated clips."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, add_noise, melody
from restorelab.cli import main
from restorers import REGISTRY, restorer_class


@pytest.fixture
def clips(tmp_path):
    """Two good clips (32 kHz stereo float, 44.1 kHz mono PCM) and a bad one, in one folder."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    stereo = np.stack([add_noise(melody(2.0, 32000, seed=1), 25, rng), add_noise(melody(2.0, 32000, seed=2), 25, rng)])
    sf.write(folder / "song.wav", stereo.T * 4.0, 32000, subtype="FLOAT")  # peaks near 1.5
    sf.write(folder / "mono.flac", add_noise(melody(2.0, SR), 25, rng), SR)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    return folder


def test_restorers_json(capsys):
    assert main(["restorers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(REGISTRY)
    for row in rows:
        assert set(row) == {"name", "kind", "goal", "available", "reason", "description"}


def test_restore_writes_each_good_file_and_reports_the_bad_one(clips, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["restore", str(clips), "-r", "passthrough", "-r", "spectral_gate_hf", "-r", "mcra_wiener",
                 "-o", str(out), "--set", "mcra_wiener.gain_floor_db=-20", "-q"])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.wav" in err and "not a readable audio file" in err
    for name in ("passthrough", "spectral_gate_hf", "mcra_wiener"):
        written = sorted(p.name for p in (out / name).iterdir())
        assert written == ["mono.wav", "song.wav"]
        audio, rate = sf.read(out / name / "song.wav", always_2d=True)
        assert rate == SR and audio.shape[1] == 2
        assert abs(audio.shape[0] - 2 * SR) <= 1
        assert sf.info(out / name / "mono.wav").channels == 1
    # Float input above full scale comes out unclipped.
    assert np.max(np.abs(sf.read(out / "passthrough" / "song.wav")[0])) > 1.0


def test_restore_refuses_inputs_that_would_overwrite_each_other(clips, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "song.flac").write_bytes((clips / "mono.flac").read_bytes())
    assert main(["restore", str(clips), str(other), "-r", "passthrough", "-o", str(tmp_path / "o")]) == 2
    assert "same output name" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_many_channels_need_an_explicit_downmix(tmp_path, capsys):
    path = tmp_path / "surround.wav"
    sf.write(path, np.stack([melody(1.0)] * 6, axis=1), SR)
    assert main(["restore", str(path), "-r", "passthrough", "-o", str(tmp_path / "a"), "-q"]) == 1
    assert "6 channels" in capsys.readouterr().err
    assert main(["restore", str(path), "-r", "passthrough", "-o", str(tmp_path / "b"), "-q", "--downmix"]) == 0
    assert "downmixed 6 channels to stereo" in capsys.readouterr().err
    assert sf.info(tmp_path / "b" / "passthrough" / "surround.wav").channels == 2


def test_restore_rejects_a_bad_setting(clips, tmp_path, capsys):
    code = main(["restore", str(clips / "mono.flac"), "-r", "mcra_wiener", "-o", str(tmp_path / "o"),
                 "--set", "mcra_wiener.no_such=1"])
    assert code == 2
    assert "no parameter 'no_such'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_value_that_is_not_a_finite_number_is_refused_before_any_work(clips, tmp_path, capsys, value):
    code = main(["restore", str(clips / "mono.flac"), "-r", "bandwidth_extension_dsp", "-o", str(tmp_path / "o"),
                 "--set", f"bandwidth_extension_dsp.gain_db={value}", "-q"])
    assert code == 2
    assert f"--set bandwidth_extension_dsp: gain_db must be a finite number, got {value}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("setting, message", [
    ("bandwidth_extension_dsp.gain_db=638", "gain_db must be in [-40, 12], got 638"),
    ("spectral_gate_hf.crossover_hz=100000", "crossover_hz must be in [500, 20000], got 100000"),
    ("mcra_wiener.min_search_bins=0", "min_search_bins must be in [1, 101], got 0"),
])
def test_a_value_out_of_its_range_is_refused_before_any_work(clips, tmp_path, capsys, setting, message):
    assert main(["restore", str(clips / "mono.flac"), "-o", str(tmp_path / "o"), "--set", setting, "-q"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --set {setting.split('.')[0]}: {message}"
    assert not (tmp_path / "o").exists()


def test_every_float_parameter_of_every_restorer_refuses_nan():
    for name in REGISTRY:
        cls = restorer_class(name)
        for item in dataclasses.fields(cls.Params):
            if isinstance(getattr(cls.Params(), item.name), float):
                with pytest.raises(ValueError, match=f"^{item.name} must be a finite number, got nan$"):
                    cls.Params(**{item.name: float("nan")})


def test_unknown_restorer_is_an_error(clips, tmp_path, capsys):
    assert main(["restore", str(clips), "-r", "nope", "-o", str(tmp_path / "o")]) == 2
    assert "known restorers" in capsys.readouterr().err


def test_compare_with_reference(clips, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", str(clips / "mono.flac"), "--reference", str(clips / "mono.flac"), "-o", str(out),
                 "-r", "spectral_subtraction_hf", "-r", "bandwidth_extension_dsp", "-q"])
    assert code == 0
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == ["input", "spectral_subtraction_hf", "bandwidth_extension_dsp"]
    assert float(rows[0]["log_mel_distance"]) == 0.0
    with open(out / "reference_metrics.csv") as handle:
        ref_rows = list(csv.DictReader(handle))
    assert ref_rows[0]["name"] == "input" and float(ref_rows[0]["lsd"]) == 0.0
    for figure in ("mel_spectrograms.png", "linear_spectrograms.png", "psd_overlay.png", "metric_changes.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "LSD: log10 power" in (out / "metrics.md").read_text()
    assert sf.info(out / "input.wav").samplerate == SR  # the input at the working rate, beside the outputs
    printed = capsys.readouterr().out
    assert printed.index("| spectral_subtraction_hf") < printed.index("LSD: log10 power") < printed.index("wrote ")


@pytest.mark.parametrize("long_clip", [False, True])
def test_compare_builds_the_unet_chain_from_its_stages_outputs_unless_the_clip_is_long(
        clips, tmp_path, monkeypatch, chain_runs, long_clip):
    """A short clip's unet_restore is the sum its stages' outputs make, without running it: the same
    file as running it. A long clip's outputs are not held (memory), so the chain runs itself."""
    from restorelab import compare
    from restorelab.audio import load_audio
    from restorers.spectral_unet import UNetRestore

    clip = load_audio(clips / "song.wav")
    own = UNetRestore()(clip.audio, clip.sample_rate)
    chain_runs.clear()
    if long_clip:
        monkeypatch.setattr(compare, "OVERLAP_MAX_BYTES", 0)
    names = ["unet_denoise", "unet_codec", "unet_bwe", "unet_restore"]
    result = compare.run_comparison(clip, tmp_path / "cmp", names, figures=False)
    assert [row["name"] for row in result.rows] == ["input", *names] and bool(chain_runs) == long_clip
    written, _ = sf.read(result.files.wavs["unet_restore"], dtype="float32", always_2d=True)
    np.testing.assert_array_equal(written.T, own.reshape(written.T.shape))
    assert result.settings["unet_restore"] == dataclasses.asdict(UNetRestore().params)


def test_restore_builds_the_unet_chain_from_its_stages_outputs(clips, tmp_path, chain_runs):
    from restorelab.audio import load_audio
    from restorers.spectral_unet import UNetRestore

    own = UNetRestore()(load_audio(clips / "song.wav").audio, SR)
    chain_runs.clear()
    args = ["-r", "unet_denoise", "-r", "unet_bwe", "-r", "unet_restore"]
    assert main(["restore", str(clips / "song.wav"), "-o", str(tmp_path / "r"), *args, "-q"]) == 0
    assert not chain_runs
    written, _ = sf.read(tmp_path / "r" / "unet_restore" / "song.wav", dtype="float32", always_2d=True)
    np.testing.assert_array_equal(written.T, own.reshape(written.T.shape))


def test_compare_bad_file_is_a_clear_error(clips, tmp_path, capsys):
    assert main(["compare", str(clips / "broken.wav"), "-o", str(tmp_path / "c")]) == 2
    assert "broken.wav: is not a readable audio file" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_degrade_then_evaluate_both_ways(clips, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    for stem in ("a", "b"):
        sf.write(clean / f"{stem}.flac", np.stack([melody(2.0, seed=len(stem)), melody(2.0, seed=5)]).T, SR)
    degraded = tmp_path / "degraded"
    assert main(["degrade", str(clean), "--preset", "band_limit_16k", "-o", str(degraded), "-q"]) == 0
    assert sorted(p.name for p in degraded.iterdir()) == ["a.wav", "b.wav"]

    by_preset, by_folder = tmp_path / "eval1", tmp_path / "eval2"
    restorers = ["-r", "bandwidth_extension_dsp", "-r", "spectral_subtraction_hf"]
    assert main(["evaluate", str(clean), "--preset", "band_limit_16k", "-o", str(by_preset), "-q", *restorers]) == 0
    assert main(["evaluate", str(degraded), "--reference-dir", str(clean), "--cutoff-hz", "16000",
                 "-o", str(by_folder), "-q", *restorers]) == 0
    summaries = []
    for folder in (by_preset, by_folder):
        with open(folder / "summary.csv") as handle:
            summary = list(csv.DictReader(handle))
        assert [r["restorer"] for r in summary] == ["input", "bandwidth_extension_dsp", "spectral_subtraction_hf"]
        assert all(r["clips"] == "2" for r in summary)
        summaries.append(summary)
    # Both routes see the same degraded audio (the folder route through a float WAV).
    for first, second in zip(*summaries):
        assert float(first["lsd_mean"]) == pytest.approx(float(second["lsd_mean"]), rel=1e-3)
    # Bandwidth extension fills the empty band: lower LSD above the cutoff than the input.
    assert float(summaries[0][1]["lsd_high_mean"]) < float(summaries[0][0]["lsd_high_mean"])


def test_evaluate_without_reference(clips, tmp_path):
    out = tmp_path / "noref"
    good = [str(clips / "song.wav"), str(clips / "mono.flac")]
    assert main(["evaluate", *good, "--no-reference", "-o", str(out), "-q",
                 "-r", "spectral_subtraction_hf", "-r", "mcra_wiener"]) == 0
    with open(out / "per_clip.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["restorer"] for r in rows] == ["input", "spectral_subtraction_hf", "mcra_wiener"] * 2
    with open(out / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert summary[0]["restorer"] == "input" and summary[0]["clips"] == "2"
    assert float(summary[0]["log_mel_distance_mean"]) == 0.0
    for row in summary[1:]:
        assert 0.0 <= float(row["pass_rate"]) <= 1.0


def test_evaluate_needs_a_preset_or_references(clips, tmp_path, capsys):
    assert main(["evaluate", str(clips / "mono.flac"), "-o", str(tmp_path / "e")]) == 2
    assert "--preset" in capsys.readouterr().err


def test_bench_writes_a_table(tmp_path):
    out = tmp_path / "bench.md"
    assert main(["bench", "--durations", "1", "2", "-r", "spectral_subtraction_hf", "-o", str(out), "-q"]) == 0
    text = out.read_text()
    assert "spectral_subtraction_hf" in text and "stft_roundtrip" in text and "rtf" in text
    with open(out.with_suffix(".csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(float(r["rtf"]) > 0 and float(r["peak_rss_mb"]) > 0 for r in rows)
    assert all(float(r["scaling"]) > 0 for r in rows)  # seconds per second, 2 s over 1 s


def test_bench_with_one_duration_has_no_scaling_column(tmp_path, capsys):
    out = tmp_path / "bench.md"
    assert main(["bench", "--durations", "1", "-r", "spectral_subtraction_hf", "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "nan" not in printed and "scaling" not in printed and "nan" not in out.read_text()


def test_python_dash_m_works(tmp_path):
    result = subprocess.run([sys.executable, "-m", "restorelab", "restorers"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0
    assert "spectral_gate_hf" in result.stdout


def test_bench_signal_ends_at_a_codec_cliff_so_extenders_do_their_work():
    from restorelab.bench import synthetic_music
    from restorelab.dsp import Stft, cliff_depth_db, estimate_cutoff_hz, long_term_power
    from restorers import get_restorer

    audio = synthetic_music(2.0)
    power = long_term_power(Stft(2048, 512).forward(audio))
    cutoff = estimate_cutoff_hz(power, 44100)
    assert 15500 < cutoff < 17000 and cliff_depth_db(power, cutoff, 44100) > 12
    assert not np.array_equal(get_restorer("bandwidth_extension_dsp")(audio, 44100), audio)


def test_evaluate_applies_parameter_overrides(clips, tmp_path):
    out = tmp_path / "set"
    assert main(["evaluate", str(clips / "song.wav"), "--preset", "hiss", "-o", str(out), "-q",
                 "-r", "spectral_subtraction_hf", "--set", "spectral_subtraction_hf.mix=0"]) == 0
    with open(out / "per_clip.csv") as handle:
        rows = {r["restorer"]: r for r in csv.DictReader(handle)}
    assert rows["spectral_subtraction_hf"]["lsd"] == rows["input"]["lsd"]  # mix 0 is the input itself


def test_help_is_plain_text_and_bench_lists_only_what_it_uses(capsys):
    with pytest.raises(SystemExit, match="0"):
        main(["-h"])
    text = capsys.readouterr().out
    assert "``" not in text and "Restore AI-generated music" in text
    with pytest.raises(SystemExit, match="0"):
        main(["bench", "-h"])
    text = capsys.readouterr().out
    assert "lengths of synthetic stereo music" in text and "--downmix" not in text and "--max-duration-s" not in text


def test_listing_and_help_import_no_heavy_package():
    """`restorelab restorers` and `--help` answer at once: neither torch, gradio, transformers nor
    scipy.signal is imported for them (each takes from half a second to several)."""
    code = ("import contextlib, io, sys\n"
            "from restorelab.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['restorers'])\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(sorted(m for m in ('torch', 'gradio', 'transformers', 'demucs', 'scipy.signal') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["restore", "compare", "degrade", "evaluate"])
def test_an_output_folder_that_is_a_file_or_under_one_is_refused_before_any_work(clips, tmp_path, capsys, command):
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    source = str(clips / "song.wav") if command == "compare" else str(clips)
    extra = {"restore": ["-r", "spectral_gate_hf"], "compare": ["-r", "spectral_gate_hf"],
             "degrade": ["--preset", "hiss"], "evaluate": ["--preset", "hiss", "-r", "spectral_gate_hf"]}[command]
    for output, message in ((a_file, f"the output folder {a_file} is a file"),
                            (a_file / "sub", f"the output folder {a_file / 'sub'} is under {a_file}, which is a file")):
        assert main([command, source, "-o", str(output), "-q", *extra]) == 2
        err = capsys.readouterr().err
        assert err.strip().splitlines()[-1] == f"error: {message}" and "Traceback" not in err
    assert a_file.read_text() == "not a folder"


@pytest.mark.parametrize("error, reason", [(errno.EROFS, "it is on a read-only file system"),
                                           (errno.EACCES, "permission denied"), (errno.ENOSPC, "the disk is full")])
def test_an_output_folder_that_cannot_be_written_is_named_before_any_work(clips, tmp_path, capsys, monkeypatch,
                                                                         error, reason):
    from restorelab import cli

    def refused(*args, **kwargs):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(cli.tempfile, "NamedTemporaryFile", refused)
    assert main(["restore", str(clips), "-r", "spectral_gate_hf", "-o", str(tmp_path / "out"), "-q"]) == 2
    assert capsys.readouterr().err.strip() == f"error: cannot write to the output folder {tmp_path / 'out'}: {reason}"
    assert not (tmp_path / "out" / "spectral_gate_hf").exists()


def test_a_disk_that_fills_up_during_the_work_is_a_clear_error_and_leaves_no_half_file(clips, tmp_path, capsys,
                                                                                      monkeypatch):
    from restorelab import audio

    real = audio.sf.write
    written = []

    def fills_up(fd, *args, **kwargs):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(fd)
        return real(fd, *args, **kwargs)

    monkeypatch.setattr(audio.sf, "write", fills_up)
    out = tmp_path / "out"
    assert main(["restore", str(clips), "-r", "spectral_gate_hf", "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"error: {out / 'spectral_gate_hf' / 'song.wav'}: the disk is full"
    assert "Traceback" not in err
    assert [p.name for p in (out / "spectral_gate_hf").iterdir()] == ["mono.wav"]  # the finished file; no partial one


def test_a_folder_named_like_an_audio_file_is_named_as_a_folder(tmp_path, capsys):
    folder = tmp_path / "x.wav"
    folder.mkdir()
    assert main(["compare", str(folder), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {folder}: is a folder, not an audio file"
    assert main(["restore", str(folder), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: no audio files found in {folder} (folders are searched for .wav, .flac, .ogg, .oga, .mp3, .aif, "
        ".aiff files)")


def test_file_names_that_are_not_utf8_are_read_and_written(clips, tmp_path, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    name = os.fsdecode(b"\xff\xfe song.wav")  # not UTF-8: Python keeps the bytes as surrogates
    try:
        (clips / "song.wav").rename(folder / name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    out = tmp_path / "out"
    assert main(["restore", str(folder), "-r", "spectral_gate_hf", "-o", str(out), "-q"]) == 0
    assert os.listdir(os.fsencode(out / "spectral_gate_hf")) == [b"\xff\xfe song.wav"]
    assert main(["compare", str(folder / name), "-r", "spectral_gate_hf", "-o", str(tmp_path / "c"), "-q"]) == 0


@pytest.mark.parametrize("option, value", [("--clip-seconds", "2"), ("--recording-seconds", "nan"),
                                           ("--recording-seconds", "1e9")])
def test_data_build_refuses_pieces_it_would_not_keep(option, value, tmp_path, capsys):
    assert main(["data", "build", "--cache", str(tmp_path / "cache"), option, value]) == 2
    assert f"{option} {float(value):g}: must be within 5 to 3600 s" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_the_held_out_tracks_ship_with_the_repository():
    from restorelab import cli

    default = Path(cli.build_parser().parse_args(["data", "build"]).held_out)
    assert default == cli.HELD_OUT_TRACKS and Path(cli.__file__).resolve().parents[1] in default.parents
    tracks = list(csv.DictReader(open(cli.HELD_OUT_TRACKS, encoding="utf-8"), delimiter="\t"))
    assert len(tracks) == 17 and all(t["path_in_package"].startswith("/usr/share/") for t in tracks)
