"""The ``restorelab`` command line: restorers, restore, compare, degrade, evaluate, bench, study, data, train."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from restorelab import __version__
from restorelab.degrade import PRESETS
from restorers import REGISTRY, build_available, output_names, restore_each, restorer_class, restorer_info

#: The source tracks of the evaluation excerpts (``../shared/data/music-reference``), never trained on.
HELD_OUT_TRACKS = Path(__file__).resolve().parent.parent / "assets" / "held_out_tracks.tsv"

# The commands import what they use when they run (the metrics, audio I/O, progress bars), so that
# `restorelab --help` and `restorelab restorers` answer at once.


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def parse_settings(assignments: list[str]) -> dict[str, dict]:
    """``["mcra_wiener.gain_floor_db=-20"]`` -> ``{"mcra_wiener": {"gain_floor_db": -20.0}}``."""
    raw: dict[str, dict[str, str]] = defaultdict(dict)
    for item in assignments:
        key, sep, value = item.partition("=")
        name, dot, param = key.partition(".")
        if not sep or not dot or not name or not param:
            raise ValueError(f"--set expects NAME.param=value, got {item!r}")
        restorer_class(name)
        raw[name][param] = value
    settings = {name: restorer_class(name).parse_overrides(values) for name, values in raw.items()}
    for name, values in settings.items():  # refuse a value out of range now, before any work
        try:
            restorer_class(name).Params(**values)
        except ValueError as exc:
            raise ValueError(f"--set {name}: {exc}") from None
    return settings


def _audio_inputs(inputs: list[str]) -> list[Path]:
    """The audio files named or found in the folders named; a ValueError naming the folders if there are none."""
    from restorelab.audio import AUDIO_SUFFIXES, find_audio_files

    files = find_audio_files(inputs)  # every input that is not a folder is kept, to get its own error
    if not files:
        raise ValueError(f"no audio files found in {', '.join(map(str, inputs))} "
                         f"(folders are searched for {', '.join(AUDIO_SUFFIXES)} files)")
    return files


_WRITE_PROBLEMS = {errno.EROFS: "it is on a read-only file system", errno.EACCES: "permission denied",
                   errno.EPERM: "permission denied", errno.ENOSPC: "the disk is full",
                   errno.EDQUOT: "the disk quota is used up"}


def _write_problem(exc: OSError) -> str:
    return _WRITE_PROBLEMS.get(exc.errno, exc.strerror or str(exc))


def _output_folder(path: str | os.PathLike) -> Path:
    """``path`` checked as an output folder before any work: not a file, not under one, and writable
    (a file is created and removed in it, or in the nearest folder above it that exists; the folder
    itself is made when the first output is written).

    Raises:
        ValueError: it is a file, lies under a file, or cannot be written (read-only, no permission,
            full disk), with the path and the reason.
    """
    folder = Path(path)
    existing = next(place for place in (folder, *folder.parents, Path.cwd()) if place.exists())
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"is under {existing}, which is a file"
        raise ValueError(f"the output folder {folder} {where}")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".restorelab-write-check-"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write to the output folder {folder}: {_write_problem(exc)}") from None
    return folder


def _load_each(files: list[Path], args, desc: str):
    """``(clips, failures)``: a generator of ``(index, path, clip)`` for each loadable file,
    and the list it fills with the paths it reported and skipped."""
    from tqdm import tqdm

    from restorelab.audio import AudioError, load_audio

    failures: list[Path] = []

    def generate():
        for index, path in enumerate(tqdm(files, desc=desc, unit="file", disable=args.quiet)):
            try:
                clip = load_audio(path, max_duration_s=args.max_duration_s, downmix=args.downmix)
            except AudioError as exc:
                failures.append(path)
                tqdm.write(f"skipped {exc}", file=sys.stderr)
                continue
            yield index, path, clip

    return generate(), failures


def _stem_clashes(files: list[Path]) -> str:
    """Inputs that share a file stem (and so an output name), as text; empty if none."""
    by_stem: dict[str, list[str]] = defaultdict(list)
    for path in files:
        by_stem[path.stem].append(str(path))
    return "; ".join(", ".join(paths) for paths in by_stem.values() if len(paths) > 1)


def _restorer_names(requested: list[str] | None) -> list[str]:
    names = requested or list(REGISTRY)
    for name in names:
        restorer_class(name)
    return names


# -- commands -----------------------------------------------------------------

def cmd_restorers(args) -> int:
    rows = [restorer_info(name) for name in REGISTRY]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        state = "available" if row["available"] else f"unavailable: {row['reason']}"
        print(f"{row['name']:26s} {row['kind']:7s} {row['goal']:8s} {state}\n    {row['description']}")
    return 0


def cmd_restore(args) -> int:
    from tqdm import tqdm

    from restorelab.audio import write_wav
    from restorelab.compare import OVERLAP_MAX_BYTES

    settings = parse_settings(args.set)
    files = _audio_inputs(args.inputs)
    _output_folder(args.output)
    restorers, skipped = build_available(_restorer_names(args.restorer), settings)
    for name, reason in skipped.items():
        print(f"skipping {name}: unavailable: {reason}", file=sys.stderr)
    clash = _stem_clashes(files)
    if clash:
        return _fail(f"these inputs would write the same output name: {clash}; restore them separately")
    clips, failures = _load_each(files, args, "restoring")
    for _, path, clip in clips:
        for note in clip.notes:
            if args.verbose or note.startswith("downmixed"):
                tqdm.write(f"{path}: {note}", file=sys.stderr)
        short = clip.audio.nbytes <= OVERLAP_MAX_BYTES  # holds the outputs a later restorer is made of
        for name, out in restore_each(restorers, clip.audio, clip.sample_rate, hold_parts=short):
            write_wav(Path(args.output) / name / f"{path.stem}.wav", out, clip.sample_rate)
            del out
    print(f"restored {len(files) - len(failures)} of {len(files)} file(s) with {len(restorers)} "
          f"restorer(s) into {args.output}")
    return 1 if failures else 0


def cmd_compare(args) -> int:
    from tqdm import tqdm

    from restorelab import analysis
    from restorelab.audio import AudioError, load_audio
    from restorelab.compare import run_comparison
    from restorelab.report import columns_of, to_markdown

    settings = parse_settings(args.set)
    names = _restorer_names(args.restorer)
    _output_folder(args.output)
    try:
        clip = load_audio(args.input, max_duration_s=args.max_duration_s, downmix=args.downmix)
        reference = None
        if args.reference:
            reference = load_audio(args.reference, max_duration_s=args.max_duration_s,
                                   downmix=args.downmix).audio
            if reference.shape[0] != clip.channels:
                return _fail(f"{args.reference}: has {reference.shape[0]} channel(s), "
                             f"the input has {clip.channels}")
            n = min(reference.shape[-1], clip.audio.shape[-1])
            reference, clip.audio = reference[:, :n], clip.audio[:, :n]
    except AudioError as exc:
        return _fail(str(exc))
    bar = tqdm(total=len(names) + 1, desc="comparing", unit="step", disable=args.quiet)

    def progress(name, index, total):
        bar.set_postfix_str(name)
        bar.n = index
        bar.refresh()

    result = run_comparison(clip, args.output, names, settings, reference, args.cutoff_hz, args.visqol,
                            figures=not args.no_figures, progress=progress)
    bar.n = bar.total
    bar.close()
    written = result.files.all()
    for name, reason in result.skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    print(to_markdown(result.rows, ["name", "hf_energy_db", "hpss_ratio_db", "log_mel_distance",
                                    "effective_bandwidth_hz", "loudness_lufs", "pass"]))
    if result.reference_rows:
        print(to_markdown(result.reference_rows, columns_of(result.reference_rows,
                                                            ("name", *analysis.REFERENCE_COLUMNS))))
    print(f"\n{analysis.SETTINGS_NOTE}\n")
    print(f"wrote {len(written)} file(s) to {args.output}")
    return 0


def cmd_degrade(args) -> int:
    from restorelab.audio import write_wav
    from restorelab.degrade import degrade

    if args.preset not in PRESETS:
        return _fail(f"unknown preset {args.preset!r}; known presets: {', '.join(PRESETS)}")
    files = _audio_inputs(args.inputs)
    _output_folder(args.output)
    clips, failures = _load_each(files, args, "degrading")
    for index, path, clip in clips:
        out, _ = degrade(clip.audio, clip.sample_rate, args.preset, seed=args.seed + index)
        write_wav(Path(args.output) / f"{path.stem}.wav", out, clip.sample_rate)
    print(f"degraded {len(files) - len(failures)} of {len(files)} file(s) with {args.preset} "
          f"into {args.output}")
    return 1 if failures else 0


def cmd_evaluate(args) -> int:
    from tqdm import tqdm

    from restorelab import analysis
    from restorelab import evaluate as ev
    from restorelab.audio import AudioError

    names = _restorer_names(args.restorer)
    settings = parse_settings(args.set)
    files = _audio_inputs(args.inputs)
    out = _output_folder(args.output)
    if args.no_reference:
        return _evaluate_no_reference(args, ev, names, files, out, settings)
    if args.reference_dir:
        pairs = ev.pairs_from_folders(files, Path(args.reference_dir))
        cutoff = args.cutoff_hz
        label = f"degraded clips paired with {args.reference_dir}"
    else:
        if args.preset is None:
            return _fail("give --preset to degrade clean clips, --reference-dir for degraded ones, "
                         "or --no-reference")
        pairs = ev.pairs_from_preset(files, args.preset, args.seed)
        cutoff = args.cutoff_hz if args.cutoff_hz is not None else ev.preset_cutoff(args.preset)
        label = f"preset {args.preset}, seed {args.seed}"
    bar = tqdm(total=len(files), desc="evaluating", unit="clip", disable=args.quiet)

    def on_clip(clip_id):
        bar.set_postfix_str(clip_id[:30])
        bar.update(1)

    try:
        result = ev.evaluate(pairs, names, cutoff, args.visqol, on_clip, settings)
    except (AudioError, FileNotFoundError) as exc:
        bar.close()
        return _fail(str(exc))
    bar.close()
    note = (f"{len(files)} clip(s), {label}; LSD low/high split at "
            f"{cutoff if cutoff is not None else 'n/a'} Hz. {analysis.SETTINGS_NOTE}")
    return _report_evaluation(result, out, note, analysis.REFERENCE_COLUMNS)


def _report_evaluation(result, out: Path, note: str, shown) -> int:
    """Write per_clip.csv and summary.csv/.md, print mean ± std of the ``shown`` metrics and the note."""
    from restorelab.report import columns_of, to_markdown, write_table

    write_table(result.per_clip, columns_of(result.per_clip), out / "per_clip.csv")
    write_table(result.summary, columns_of(result.summary), out / "summary.csv", out / "summary.md", note=note)
    compact = [{"restorer": row["restorer"],
                **{m: f"{row[m + '_mean']:.3f} ± {row[m + '_std']:.3f}" for m in shown if m + "_mean" in row},
                **({"pass_rate": f"{row['pass_rate']:.2f}"} if "pass_rate" in row else {})}
               for row in result.summary]
    print(to_markdown(compact, columns_of(compact)))
    print(note)
    for name, reason in result.skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    return 0


def _evaluate_no_reference(args, ev, names, files, out: Path, settings: dict) -> int:
    from tqdm import tqdm

    from restorelab import analysis
    from restorelab.audio import AudioError

    bar = tqdm(total=len(files), desc="evaluating", unit="clip", disable=args.quiet)
    try:
        result = ev.evaluate_no_reference(files, names, on_clip=lambda clip_id: bar.update(1), params=settings)
    except AudioError as exc:
        bar.close()
        return _fail(str(exc))
    bar.close()
    note = (f"{len(files)} clip(s), no reference: every comparative measure is against each clip's "
            f"unprocessed input. {analysis.SETTINGS_NOTE}")
    shown = ("hf_energy_db", "hf_energy_gain_db", "hf_quiet_energy_db", "hpss_ratio_db", "log_mel_distance",
             "noise_floor_db", "effective_bandwidth_hz", "loudness_lufs")
    return _report_evaluation(result, out, note, shown)


def cmd_bench(args) -> int:
    from tqdm import tqdm

    from restorelab import bench
    from restorelab.report import columns_of, to_markdown, write_table

    _output_folder(Path(args.output).parent)
    names = ["stft_roundtrip"]
    for name in output_names(_restorer_names(args.restorer)):
        availability = restorer_class(name).availability()
        if availability.available:
            names.append(name)
        else:
            print(f"skipping {name}: unavailable: {availability.reason}", file=sys.stderr)
    total = len(names) * len(args.durations)
    bar = tqdm(total=total, desc="benchmarking", unit="run", disable=args.quiet)
    rows = bench.bench(names, args.durations, on_result=lambda row: bar.update(1))
    bar.close()
    scaling = bench.scaling_rows(rows)
    table = []
    for row in rows:
        if "error" in row:
            table.append({"restorer": row["restorer"], "duration_s": row["duration_s"], "error": row["error"]})
            continue
        table.append({"restorer": row["restorer"], "duration_s": f"{row['duration_s']:.0f}",
                      "seconds": f"{row['seconds']:.3f}", "runs": row["runs"], "rtf": f"{row['rtf']:.4f}",
                      "peak_rss_mb": f"{row['peak_rss_mb']:.0f}",
                      "rss_before_mb": f"{row['rss_before_mb']:.0f}"})
        if row["restorer"] in scaling:  # only with two durations or more
            table[-1]["scaling"] = f"{scaling[row['restorer']]:.2f}"
    note = (f"Machine: {bench.machine_description()}. rtf = processing seconds / audio seconds "
            "(stereo, 44.1 kHz, float32), the median of `runs` timed calls. stft_roundtrip: one whole-signal STFT and inverse "
            "(n_fft 2048, hop 512, unchunked), the yardstick. peak_rss_mb: the process's peak resident memory; "
            "rss_before_mb: after a 1 s warm-up, before the timed call.")
    if scaling:
        note += (" scaling: seconds per audio second at the longest duration over that at the shortest above "
                 "10 s (1.00 = linear).")
    columns = columns_of(table)
    write_table(table, columns, Path(args.output).with_suffix(".csv"), Path(args.output), note=note)
    print(to_markdown(table, columns))
    print(note)
    return 0


def cmd_data_build(args) -> int:
    from restorelab.unet import corpus

    for option, value in (("--clip-seconds", args.clip_seconds), ("--recording-seconds", args.recording_seconds)):
        if not 5.0 <= value <= 3600.0:  # nan fails both comparisons
            return _fail(f"{option} {value:g}: must be within 5 to 3600 s (shorter pieces are not kept)")
    missing = [tool for tool in ("fluidsynth", "mma") if shutil.which(tool) is None]
    if missing or not corpus.SOUND_FONT.is_file():
        return _fail("the data build needs Debian packages: sudo apt-get install " + " ".join(corpus.APT_PACKAGES))
    held_out = Path(args.held_out)
    if not held_out.is_file():
        return _fail(f"--held-out {held_out}: no such file (the tracks kept out of training must be known)")
    cache = _output_folder(args.cache if args.cache else corpus.DEFAULT_CACHE)
    corpus.build(cache, seed=args.seed, clip_seconds=args.clip_seconds, recording_seconds=args.recording_seconds,
                 held_out_manifest=held_out, mma_songs=args.mma_songs,
                 log=lambda line: print(line, file=sys.stderr))
    return 0


def cmd_data_subset(args) -> int:
    from restorelab.unet import corpus

    source = Path(args.cache) if args.cache else corpus.DEFAULT_CACHE
    try:
        corpus.read_manifest(source)
    except FileNotFoundError as exc:
        return _fail(str(exc))
    out = _output_folder(args.out)
    corpus.subset(source, out, seconds=args.seconds, max_mb=args.max_mb, split=args.split, source=args.source,
                  min_bandwidth_hz=args.min_bandwidth_hz, seed=args.seed, log=lambda line: print(line, file=sys.stderr))
    return 0


def cmd_train(args) -> int:
    from restorelab.unet import corpus
    from restorelab.unet.train import PoolFolderError, TrainSettings, train

    # Options left out take TrainSettings' defaults (the shipped checkpoints' recipe).
    given = {name: getattr(args, name) for name in (
        "steps", "stop_after", "batch", "seed", "recording_share", "musicgen_share", "max_frequency_hz", "sisdr_weight",
        "dnh_sdr_weight", "dnh_sdr_db", "max_hiss_snr_db", "hiss_band_limit_share", "learning_rate",
        "codec_band_limit_share", "filter_frames", "pool", "workers", "device", "split")
        if getattr(args, name) is not None}
    if args.codecs is not None:
        given["codecs"] = tuple(c for c in args.codecs.split(",") if c)
    if args.hiss_colours is not None:
        given["hiss_colours"] = tuple(c for c in args.hiss_colours.split(",") if c)
    if args.terms is not None:
        given["terms"] = tuple(t for t in args.terms.split(",") if t and t != "none")
    try:
        settings = TrainSettings(task=args.task, representation=args.representation,
                                 channels=tuple(int(c) for c in args.channels.split(",")),
                                 domains=tuple(d for d in args.domains.split(",") if d), threads=args.threads,
                                 **given)
    except ValueError as exc:
        return _fail(str(exc))
    cache = Path(args.cache) if args.cache else corpus.DEFAULT_CACHE
    _output_folder(Path(args.out).parent)
    try:
        train(settings, cache, Path(args.out), log=lambda line: print(line, file=sys.stderr),
              pool_folder=Path(args.pool_folder) if args.pool_folder else None)
    except (FileNotFoundError, PoolFolderError) as exc:
        return _fail(str(exc))
    return 0


def cmd_study_build(args) -> int:
    from tqdm import tqdm

    from restorelab.audio import find_audio_files
    from restorelab.listening.study import Design, StudyError, build_study, check_references

    try:
        check_references(args.test, args.reference_dir, args.preset)
    except StudyError as exc:
        return _fail(str(exc))
    if args.preset is not None and args.preset not in PRESETS:
        return _fail(f"unknown preset {args.preset!r}; known presets: {', '.join(PRESETS)}")
    if args.systems_dir and (args.inputs or args.restorer):
        return _fail("--systems-dir takes the clips from DIR/input/ and the outputs from the other folders; "
                     "give no CLIPS or -r with it")
    restorers = None
    if not args.systems_dir:
        restorers, skipped = build_available(_restorer_names(args.restorer), parse_settings(args.set))
        if skipped:
            return _fail("; ".join(f"{name} is unavailable: {reason}" for name, reason in skipped.items()))
    files = find_audio_files(args.inputs) if args.inputs else []
    _output_folder(Path(args.output).parent)
    bar = tqdm(total=len(files) or None, desc="building the study", unit="clip", disable=args.quiet)

    def progress(name, index, total):
        bar.total = total
        bar.set_postfix_str(name)
        bar.n = index
        bar.refresh()

    design = Design(trials_per_listener=args.trials_per_listener, seed=args.seed)
    study = build_study(files, args.output, restorers=restorers, systems_dir=args.systems_dir, design=design,
                        reveal=args.reveal, study_id=args.id, max_duration_s=args.max_duration_s, test=args.test,
                        reference_dir=args.reference_dir, preset=args.preset, degrade_seed=args.seed,
                        with_visqol=args.visqol, progress=progress)
    bar.close()
    sounds = sum(len(clip.candidates) for clip in study.clips)
    per_listener = (f"{min(args.trials_per_listener, len(study.clips))} MUSHRA page(s) per listener"
                    if study.test == "mushra" else f"{args.trials_per_listener} trials per listener")
    print(f"study {study.id}: {len(study.clips)} clip(s), {sounds} distinct sound(s), {per_listener}, written to "
          f"{args.output}; serve it with `python app.py --study {args.output}`")
    return 0


def cmd_study_results(args) -> int:
    from restorelab.listening.study import load_study
    from restorelab.listening.study_results import results_markdown, study_results, write_results
    from restorelab.listening.votes import VoteLog, default_votes_path

    study = load_study(args.study)
    if args.output:
        _output_folder(args.output)
    votes_path = Path(args.votes) if args.votes else default_votes_path()
    if study.test == "mushra":
        from restorelab.listening.mushra import RatingLog, ratings_path
        from restorelab.listening.mushra_results import mushra_markdown, mushra_results, write_mushra_results

        log = RatingLog(args.ratings or ratings_path(votes_path))
        summarise, markdown, write = mushra_results, mushra_markdown, write_mushra_results
    else:
        log = VoteLog(votes_path)
        summarise, markdown, write = study_results, results_markdown, write_results
    read = log.read_all()
    for problem in read.problems:
        print(f"{log.path}: {problem}", file=sys.stderr)
    results = summarise(study, read.rows)
    if args.output:
        write(results, args.output)
    print(markdown(results))
    return 0


# -- parser ---------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restorelab", description="Restore AI-generated music and compare restorers: run them on files "
        "(restore, compare), degrade clean music and score the restorers against it (degrade, evaluate), time "
        "them (bench), prepare and read listening studies (study), and build data for and train the neural "
        "restorers (data, train). `restorelab COMMAND -h` says more about each.")
    parser.add_argument("--version", action="version", version=f"restorelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, restorers=True):
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        p.add_argument("--max-duration-s", type=float, default=20 * 60.0,
                       help="refuse inputs longer than this (default 1200 s)")
        p.add_argument("--downmix", action="store_true",
                       help="mix inputs with more than two channels down to stereo (otherwise an error)")
        if restorers:
            p.add_argument("-r", "--restorer", action="append",
                           help=f"restorer to run (repeatable; default all): {', '.join(REGISTRY)}")

    p = sub.add_parser("restorers", help="list the restorers and whether they can run here")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_restorers)

    p = sub.add_parser("restore", help="restore files or folders with one or more restorers")
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    p.add_argument("-o", "--output", required=True, help="writes OUTPUT/RESTORER/<stem>.wav")
    p.add_argument("--set", action="append", default=[], metavar="NAME.param=value",
                   help="override a restorer parameter (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="report resampling and downmixes")
    common(p)
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("compare", help="run restorers side by side on one clip, with metrics and figures")
    p.add_argument("input", help="audio file")
    p.add_argument("-o", "--output", required=True, help="folder for WAVs, metrics and figures")
    p.add_argument("--reference", help="clean original, for reference metrics")
    p.add_argument("--cutoff-hz", type=float, default=16000.0,
                   help="LSD low/high split with --reference (default 16000)")
    p.add_argument("--visqol", action="store_true", help="add ViSQOL (slow: about 1 s per second)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="NAME.param=value")
    common(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("degrade", help="apply a seeded degradation preset")
    p.add_argument("inputs", nargs="+", help="audio files or folders")
    p.add_argument("--preset", required=True, help=", ".join(PRESETS))
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seed", type=int, default=0, help="file i uses seed + i")
    common(p, restorers=False)
    p.set_defaults(func=cmd_degrade)

    p = sub.add_parser("evaluate", help="reference metrics per restorer over a set of clips")
    p.add_argument("inputs", nargs="+", help="clean clips (with --preset) or degraded ones")
    p.add_argument("--preset", help=f"degrade the (clean) inputs with this preset first: {', '.join(PRESETS)}")
    p.add_argument("--reference-dir", help="clean originals matched to the degraded inputs by stem")
    p.add_argument("--no-reference", action="store_true",
                   help="clips without originals (real MusicGen output): no-reference measures and verdicts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cutoff-hz", type=float, default=None,
                   help="LSD low/high split (default: the preset's band limit)")
    p.add_argument("--visqol", action="store_true", help="add ViSQOL (slow: about 1 s per second)")
    p.add_argument("-o", "--output", required=True, help="folder for per_clip.csv and summary.csv/.md")
    p.add_argument("--set", action="append", default=[], metavar="NAME.param=value",
                   help="override a restorer parameter (repeatable)")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="real-time factor and peak memory per restorer")
    p.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0, 600.0], metavar="SECONDS",
                   help="lengths of synthetic stereo music to time each restorer on, each in a fresh process "
                        "(default 10 60 600)")
    p.add_argument("-o", "--output", default="bench-results/bench.md", help="Markdown table (CSV beside it)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("-r", "--restorer", action="append",
                   help=f"restorer to time (repeatable; default all): {', '.join(REGISTRY)}")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("study", help="listening studies: build one, read its results")
    study_sub = p.add_subparsers(dest="study_command", required=True)
    q = study_sub.add_parser("build", help="restore clips once and write a study folder for `app.py --study`")
    q.add_argument("inputs", nargs="*", help="audio files or folders (the clips)")
    q.add_argument("-o", "--output", required=True, help="the study folder to create")
    q.add_argument("--systems-dir", help="outputs made elsewhere: DIR/<system>/<clip stem>.<ext>, the clips in "
                                         "DIR/input/ (instead of CLIPS and -r)")
    q.add_argument("--set", action="append", default=[], metavar="NAME.param=value",
                   help="override a restorer parameter (repeatable)")
    q.add_argument("--test", choices=("pairwise", "mushra"), default="pairwise",
                   help="pairwise: blind A/B preference (default); mushra: ITU-R BS.1534-3, every condition of an "
                        "item rated 0-100 against the clean reference (needs --reference-dir or --preset)")
    q.add_argument("--reference-dir", help="mushra: the clean originals, matched to the (degraded) clips by stem")
    q.add_argument("--preset", help=f"mushra: the clips are clean; degrade each with this preset first (seed "
                                    f"--seed + its index): {', '.join(PRESETS)}")
    q.add_argument("--visqol", action="store_true", help="mushra: add ViSQOL to each condition's metrics (slow: "
                                                         "about 1 s per second of audio and condition)")
    q.add_argument("--trials-per-listener", type=int, default=20, help="trials each listener judges, checks "
                                                                       "included (default 20); for mushra, the "
                                                                       "items (pages) each listener rates")
    q.add_argument("--reveal", choices=("end", "never", "each"), default="end",
                   help="when listeners learn what they heard (default: at the end)")
    q.add_argument("--id", help="the study's id (default: a random one)")
    q.add_argument("--seed", type=int, default=0, help="fixes the order of trials and sides (and, with --preset, "
                                                      "the degradation of clip i: seed + i)")
    common(q)
    q.set_defaults(func=cmd_study_build)
    q = study_sub.add_parser("results", help="rank the candidates of a study from its votes")
    q.add_argument("study", help="the study folder")
    q.add_argument("--votes", help="vote CSV (default: $RESTORELAB_VOTES_PATH, /data/votes.csv or votes/votes.csv)")
    q.add_argument("--ratings", help="mushra: the rating CSV (default: mushra.csv beside the vote CSV)")
    q.add_argument("-o", "--output", help="folder for results.md, CSV tables and leaderboard.png")
    q.set_defaults(func=cmd_study_results)

    p = sub.add_parser("data", help="training data for the neural restorers")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("build", help="render and collect clean full-band music into a cache (apt packages)")
    q.add_argument("--cache", default=None, help="where to write (default $RESTORELAB_DATA or "
                                                "~/.cache/restorelab/train-data)")
    q.add_argument("--held-out", default=str(HELD_OUT_TRACKS),
                   help="tab-separated list (a path_in_package column) of tracks never used for training: "
                        "the evaluation excerpts' sources (default: the list shipped in assets/)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--clip-seconds", type=float, default=45.0,
                   help="a MIDI render's length, and the length of each piece a recording is cut into")
    q.add_argument("--recording-seconds", type=float, default=240.0,
                   help="most of each recording kept, in consecutive pieces (default 240)")
    q.add_argument("--mma-songs", type=int, default=40, help="songs written over MMA grooves")
    q.set_defaults(func=cmd_data_build)

    q = data_sub.add_parser("subset", help="a smaller cache for training elsewhere: one mono excerpt per clip")
    q.add_argument("out", help="folder for the excerpts and their manifest")
    q.add_argument("--cache", default=None, help="the built cache (default $RESTORELAB_DATA or "
                                                "~/.cache/restorelab/train-data)")
    q.add_argument("--seconds", type=float, default=3.0, help="excerpt length (default 3)")
    q.add_argument("--max-mb", type=float, default=50.0, help="stop after this many megabytes (default 50)")
    q.add_argument("--split", choices=("train", "validation"), default="train")
    q.add_argument("--source", choices=("recording", "midi"), help="only clips of this source (default: both)")
    q.add_argument("--min-bandwidth-hz", type=float, default=0.0,
                   help="only clips whose measured band reaches this (19000: what bandwidth extension trains on)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_data_subset)

    p = sub.add_parser("train", help="train a spectral U-Net checkpoint on the built data")
    p.add_argument("--task", choices=("denoise", "bwe", "codec"), required=True)
    p.add_argument("--representation", choices=("linear", "mel"), default="linear")
    p.add_argument("--domains", default="a,b,hiss,musicgen",
                   help="denoising degradations, comma-separated: a, b, hiss, musicgen")
    p.add_argument("--terms", default=None,
                   help="extra loss terms, comma-separated: hf, dnh, dnh_sdr, lsd, sisdr, or none "
                        "(default: hf,dnh,sisdr for denoise, hf,lsd for bwe, dnh,lsd,sisdr for codec)")
    p.add_argument("--sisdr-weight", type=float, default=None,
                   help="loss per dB of SI-SDR for the sisdr term (default: the shipped checkpoints')")
    p.add_argument("--dnh-sdr-weight", type=float, default=None,
                   help="dnh_sdr term: loss per dB that a clean item's SDR falls short of --dnh-sdr-db (default 0.05)")
    p.add_argument("--dnh-sdr-db", type=float, default=None,
                   help="dnh_sdr term: the SDR above which a clean item adds nothing (default 50)")
    p.add_argument("--max-hiss-snr-db", type=float, default=None,
                   help="denoise: the hiss domain's SNR is drawn from 18 dB to this "
                        "(default: the shipped checkpoints')")
    p.add_argument("--hiss-band-limit-share", type=float, default=None,
                   help="denoise: share of hiss items band-limited (14-17 kHz) after the hiss is added "
                        "(default: the shipped checkpoints')")
    p.add_argument("--hiss-colours", default=None,
                   help="denoise: the hiss domain's noise colours, comma-separated: white, pink, brown "
                        "(default: the shipped checkpoints', white and pink)")
    p.add_argument("--channels", default="12,24,48", help="U-Net channels per level")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the shipped checkpoints')")
    p.add_argument("--stop-after", type=int, default=None,
                   help="end after this many steps of the --steps schedule, its learning rate not fully decayed "
                        "(default: all)")
    p.add_argument("--batch", type=int, default=None, help="excerpts per step (default: the shipped checkpoints')")
    p.add_argument("--recording-share", type=float, default=None,
                   help="share of excerpts from real recordings rather than MIDI renders "
                        "(default: by duration; the shipped extension checkpoints: 1.0)")
    p.add_argument("--musicgen-share", type=float, default=None,
                   help="extension: share of excerpts through the MusicGen-like chain instead of a brick wall "
                        "(default 0; the shipped extension checkpoints: 0.3)")
    p.add_argument("--max-frequency-hz", type=float, default=None,
                   help="extension: where the generated band ends, stored so unet_bwe ends it there too "
                        "(default: bandwidth_extension_dsp's)")
    p.add_argument("--codecs", default=None,
                   help="codec: the codecs drawn from, comma-separated: opus, mp3, vorbis (default: all)")
    p.add_argument("--codec-band-limit-share", type=float, default=None,
                   help="codec: share of items band-limited (11-16 kHz) before the codec (default 0.3)")
    p.add_argument("--filter-frames", type=int, default=None,
                   help="codec, linear: frames on each side of a complex filter the network adds, seeing each "
                        "cell's phase advance (default 0: gain and fill only)")
    p.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default 2e-3)")
    p.add_argument("--pool", type=int, default=None,
                   help="pairs made before training by --workers processes, each step drawing from them "
                        "(default 0: each step makes its own)")
    p.add_argument("--workers", type=int, default=None, help="processes making the pool (default: one per CPU)")
    p.add_argument("--pool-folder", default=None,
                   help="keep the pool in this folder: made and written there if it does not exist, else read "
                        "from it (several candidates then train on the same pairs; other data settings are refused)")
    p.add_argument("--device", default=None, help="where to train: cpu (default) or cuda")
    p.add_argument("--split", choices=("train", "validation"), default=None,
                   help="corpus split to train on (default train; validation is for choosing checkpoints)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--cache", default=None, help="training data built by `restorelab data build`")
    p.add_argument("-o", "--out", required=True, help="checkpoint file to write")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return _fail(str(message))
    except OSError as exc:  # a disk that fills up, or a folder that goes away, during the work
        return _fail(f"{exc.filename}: {_write_problem(exc)}" if exc.filename else _write_problem(exc))


if __name__ == "__main__":
    sys.exit(main())
