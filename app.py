"""restorelab's listening lab: get a clip, restore it side by side, listen blind, read the results.

Layout and event wiring only: each handler converts widget values, calls one
function of :mod:`restorelab.lab` (or the generator) and converts back.
Per-listener state lives in ``gr.State``; the only module-level objects are
the process-wide model cache and the configured vote log.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import gradio as gr
import numpy as np

from restorelab import generation, lab, votes
from restorelab.analysis import VerdictThresholds
from restorelab.audio import atomic_write_text, write_wav
from restorelab.generation import GenerationRequest
from restorelab.listening import TARGET_LUFS
from restorelab.plots import heatmap_plotly

ASSETS = Path(__file__).resolve().parent / "assets"
HEAD = f"<script>{(ASSETS / 'ab_transport.js').read_text(encoding='utf-8')}</script>"
CSS = ".ab-hidden { display: none !important; } .ab-active { outline: 3px solid var(--color-accent); }"
GENERATOR = generation.Generator(local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1")
VOTE_LOG = votes.VoteLog(votes.default_votes_path())
RESTORERS = lab.restorer_choices()
PLAYER_NAMES = [lab.INPUT_ROW, *RESTORERS]

try:  # ZeroGPU on Hugging Face Spaces
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:
    def gpu(fn):
        return fn


def _error(exc: Exception) -> gr.Error:
    return gr.Error(str(exc))


# -- Source ---------------------------------------------------------------------

@gpu
def _generate(model, prompt, duration_s, seed, guidance, melody_path, progress=gr.Progress()):
    melody = None
    if melody_path:
        melody_clip = lab.load_upload(melody_path)
        melody = (melody_clip.audio, melody_clip.sample_rate)
    request = GenerationRequest(model=model, prompt=prompt or "", duration_s=float(duration_s), seed=int(seed),
                                guidance_scale=float(guidance), melody=melody)
    return GENERATOR.generate(request, progress=lambda fraction, stage: progress(fraction, desc=stage))


def on_generate(model, prompt, duration_s, seed, guidance, melody_path, progress=gr.Progress()):
    try:
        clip = _generate(model, prompt, duration_s, seed, guidance, melody_path, progress)
    except (ValueError, RuntimeError) as exc:
        raise _error(exc) from None
    if GENERATOR.device() == "cpu" and model != generation.TINY:
        gr.Warning("Generating on the CPU: expect several minutes for a few seconds of audio.")
    return _show_source(clip, prompt)


def on_upload(path):
    try:
        return _show_source(lab.load_upload(path), "")
    except ValueError as exc:
        raise _error(exc) from None


def on_example(label):
    try:
        return _show_source(lab.load_example(label), "")
    except ValueError as exc:
        raise _error(exc) from None


def _show_source(clip, prompt):
    path = lab.work_folder("source-") / "source.wav"
    write_wav(path, clip.audio, clip.sample_rate)
    return clip, prompt, str(path), lab.clip_summary(clip)


def on_model_check(model):
    available, reason = GENERATOR.availability(model)
    return "Ready." if available else f"**{model} is unavailable:** {reason}"


# -- Compare --------------------------------------------------------------------

def on_compare(clip, names, matched, *knob_values, progress=gr.Progress()):
    knobs = dict(zip(lab.MAIN_KNOBS, knob_values))
    try:
        view = lab.compare(clip, list(names or []), knobs,
                           progress=lambda name, i, total: progress((i, total), desc=f"running {name}"))
    except ValueError as exc:
        raise _error(exc) from None
    columns, rows = lab.metrics_table(view.comparison.rows)
    skipped = "".join(f"\n- **{name}** skipped: {reason}" for name, reason in view.comparison.skipped.items())
    return (view, *_player_updates(view, matched), str(view.mel_png), str(view.linear_png), view.psd_figure,
            gr.update(value=rows, headers=columns), str(view.zip_path),
            f"Compared {len(view.comparison.outputs)} restorer(s) on {view.comparison.clip.duration_s:.1f} s.{skipped}")


def _player_updates(view, matched):
    paths = (lab.matched_players(view) if matched else view.players) if view else {}
    return [gr.update(value=str(paths[name]), visible=True) if name in paths else gr.update(value=None, visible=False)
            for name in PLAYER_NAMES]


def on_matched_toggle(view, matched):
    return _player_updates(view, matched)


# -- Listen ---------------------------------------------------------------------

def _fresh_timing():
    return {"left": 0.0, "right": 0.0, "left_since": None, "right_since": None}


def on_start_listening(session, view, clip, prompt):
    session = session or lab.new_session()
    try:
        lab.start_listening(session, view, clip, prompt)
        return _next(session, view, "")
    except ValueError as exc:
        raise _error(exc) from None


def _next(session, view, reveal):
    trial = lab.next_trial(session, view)
    return (session, _fresh_timing(), str(trial.left_path), str(trial.right_path),
            *[gr.update(interactive=False)] * 4, reveal,
            f"Pair {session.votes_cast + 1}: both sides at {trial.target_lufs:.1f} LUFS, lossless. "
            "Play both sides to enable voting.")


def on_play(timing, side):
    timing = dict(timing or _fresh_timing())
    timing[f"{side}_since"] = time.monotonic()
    timing[side] = max(timing[side], 1e-3)  # counts as played from the first moment
    ready = timing["left"] > 0 and timing["right"] > 0
    return timing, *[gr.update(interactive=ready)] * 4


def on_pause(timing, side):
    timing = dict(timing or _fresh_timing())
    since = timing.get(f"{side}_since")
    if since is not None:
        timing[side] += time.monotonic() - since
        timing[f"{side}_since"] = None
    return timing


def on_vote(session, view, timing, choice):
    timing = dict(timing or _fresh_timing())
    for side in ("left", "right"):
        timing = on_pause(timing, side)
    try:
        cast = lab.vote(session, VOTE_LOG, choice, timing["left"], timing["right"])
    except ValueError as exc:
        raise _error(exc) from None
    verdict = {"left": f"you preferred **{cast.restorer_left}**", "right": f"you preferred **{cast.restorer_right}**",
               "tie": "you heard no difference", "both_bad": "you found both bad"}[choice]
    reveal = f"Left was **{cast.restorer_left}**, right was **{cast.restorer_right}**: {verdict}."
    return _next(session, view, reveal)


# -- Results --------------------------------------------------------------------

def on_results(session, scope, min_votes):
    session_id = session.session_id if (session and scope == "This session") else None
    if scope == "This session" and session is None:
        session_id = "-"
    board = lab.results(VOTE_LOG, session_id, int(min_votes))
    # Below the minimum, a bootstrap over a handful of votes gives a falsely narrow interval: show none.
    rows = [[r["rank"], r["name"], round(r["strength"], 3), f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]", r["votes"]]
            if r["rank"] is not None else ["–", r["name"], "–", "too few votes", r["votes"]] for r in board.rows]
    tests = [[t["a"], t["b"], t["votes"], t["a_wins"], t["b_wins"], t["ties"], round(t["sign_test_p"], 4)]
             for t in board.pair_tests]
    if board.names:
        win = heatmap_plotly(board.win_rate, board.names, "Win rate (row beats column, decisive votes)")
        counts = heatmap_plotly(board.counts.astype(float), board.names, "Votes per pair", fmt=".0f")
    else:
        win = counts = None
    bias = ("" if not np.isfinite(board.left_win_share) else
            f"Left side won {board.left_win_share:.0%} of decisive votes (binomial p = {board.left_bias_p:.3f}; "
            "positions are randomised, so a small p means listeners favour a side).")
    return rows, win, counts, tests, "\n\n".join(x for x in (board.message, bias) if x)


def on_export(session, scope):
    rows = VOTE_LOG.read()
    if scope == "This session":
        rows = [r for r in rows if session and r["session_id"] == session.session_id]
    path = lab.work_folder("votes-") / "votes.csv"
    atomic_write_text(path, votes.export_csv(rows))
    return str(path)


# -- layout -------------------------------------------------------------------------

def build_source_tab(clip, prompt_state):
    with gr.Tab("Source"):
        with gr.Row():
            with gr.Column():
                with gr.Accordion("Generate with MusicGen", open=False):
                    prompt = gr.Textbox(label="Prompt", value="lofi hip hop beat with warm piano chords")
                    with gr.Row():
                        model = gr.Dropdown([*generation.MODELS, generation.TINY], value="small", label="Model")
                        duration = gr.Slider(1, 30, value=8, step=1, label="Duration (s)")
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, label="Seed")
                        guidance = gr.Slider(1, 10, value=3, step=0.5, label="Guidance scale")
                    melody = gr.Audio(label="Melody (melody models only)", type="filepath", sources=["upload"])
                    model_status = gr.Markdown()
                    generate = gr.Button("Generate", variant="primary")
                with gr.Accordion("Upload", open=False):
                    upload = gr.Audio(label="Audio file (WAV, FLAC, OGG, MP3)", type="filepath", sources=["upload"])
                    load_upload = gr.Button("Use this file")
                with gr.Accordion("Examples", open=True):
                    example = gr.Dropdown(list(lab.EXAMPLES), value=next(iter(lab.EXAMPLES)), label="Bundled example")
                    gr.Markdown("\n".join(f"- *{k}*: {v[1]}" for k, v in lab.EXAMPLES.items()))
                    load_example = gr.Button("Load example", variant="primary", elem_id="load-example")
            with gr.Column():
                source_player = gr.Audio(label="Working clip (44.1 kHz)", type="filepath", interactive=False,
                                         elem_id="source-player")
                source_info = gr.Markdown("No clip loaded yet.", elem_id="source-info")
    outputs = [clip, prompt_state, source_player, source_info]
    model.change(on_model_check, model, model_status)
    generate.click(on_generate, [model, prompt, duration, seed, guidance, melody], outputs, concurrency_limit=1)
    load_upload.click(on_upload, upload, outputs)
    load_example.click(on_example, example, outputs)


def build_compare_tab(clip, view):
    with gr.Tab("Compare"):
        unavailable = lab.unavailable_restorers()
        names = gr.CheckboxGroup([n for n in RESTORERS if n not in unavailable], value=[n for n in RESTORERS if n not in unavailable],
                                 label="Restorers (the input is always the first row)", elem_id="restorer-choice")
        if unavailable:
            gr.Markdown("\n".join(f"- **{n}** unavailable: {why}" for n, why in unavailable.items()))
        with gr.Accordion("Main knobs", open=False):
            knobs = [gr.Slider(lo, hi, value=lab.knob_default(name), step=step, label=label)
                     for name, (_, label, lo, hi, step) in lab.MAIN_KNOBS.items()]
        with gr.Row():
            run = gr.Button("Compare", variant="primary", elem_id="compare")
            matched = gr.Checkbox(label="Hear every output loudness-matched to the input", value=False)
        status = gr.Markdown(elem_id="compare-status")
        with gr.Row():
            players = [gr.Audio(label=name, type="filepath", interactive=False, visible=False,
                                elem_classes=["compare-player"]) for name in PLAYER_NAMES]
        thresholds = VerdictThresholds()
        metrics = gr.Dataframe(label="Metrics (input first; verdicts: less energy above 6 kHz for a denoiser, "
                                     f"a band {thresholds.min_bandwidth_gain_hz:.0f} Hz wider for a "
                                     "bandwidth extender, HPSS kept, "
                                     f"log-mel distance < {thresholds.max_log_mel_distance:.2f})",
                               elem_id="metrics", interactive=False)
        psd = gr.Plot(label="PSD overlay", elem_id="psd")
        with gr.Row():
            mel = gr.Image(label="Mel spectrograms (one colour scale)", type="filepath", elem_id="mel")
            linear = gr.Image(label="Linear spectrograms (one colour scale)", type="filepath", elem_id="linear")
        download = gr.File(label="All outputs, metrics and figures (zip)")
    run.click(on_compare, [clip, names, matched, *knobs], [view, *players, mel, linear, psd, metrics, download, status],
              concurrency_limit=2)
    matched.change(on_matched_toggle, [view, matched], players)


def build_listen_tab(clip, prompt_state, view, session):
    timing = gr.State(None)
    with gr.Tab("Listen"):
        gr.Markdown("Blind A/B: the unprocessed input takes part as a control. Both sides are loudness-matched "
                    f"to {TARGET_LUFS:.0f} LUFS (true peak at most -1 dBTP), lossless, positions random, "
                    "names hidden until you vote.")
        start = gr.Button("Start listening", variant="primary", elem_id="start-listening")
        info = gr.Markdown(elem_id="trial-info")
        with gr.Group(elem_id="ab-transport"):
            with gr.Row():
                gr.Button("Play / pause (Space)", elem_id="ab-toggle", variant="primary")
                gr.Button("Left (1)", elem_id="ab-left")
                gr.Button("Right (2)", elem_id="ab-right")
                gr.Checkbox(label="Loop", elem_id="ab-loop-on")
                gr.Number(label="from (s)", value=0.0, elem_id="ab-loop-start")
                gr.Number(label="to (s)", value=4.0, elem_id="ab-loop-end")
            gr.Markdown("Switch sides at the same moment: the transport keeps the playback position.",
                        elem_id="ab-status")
        markers = {(what, side): gr.Button(elem_id=f"ab-{what}-{side}", elem_classes=["ab-hidden"])
                   for what in ("play", "pause") for side in ("left", "right")}
        with gr.Row():
            left = gr.Audio(label="Left", type="filepath", interactive=False, elem_id="left-player")
            right = gr.Audio(label="Right", type="filepath", interactive=False, elem_id="right-player")
        with gr.Row():
            buttons = [gr.Button(label, interactive=False, elem_id=f"vote-{choice}")
                       for choice, label in (("left", "Left is better"), ("right", "Right is better"),
                                             ("tie", "No difference"), ("both_bad", "Both bad"))]
        reveal = gr.Markdown(elem_id="reveal")
    trial_outputs = [session, timing, left, right, *buttons, reveal, info]
    start.click(on_start_listening, [session, view, clip, prompt_state], trial_outputs)
    for side, player in (("left", left), ("right", right)):
        player.play(on_play, [timing, gr.State(side)], [timing, *buttons])
        player.pause(on_pause, [timing, gr.State(side)], timing)
        player.stop(on_pause, [timing, gr.State(side)], timing)
        markers["play", side].click(on_play, [timing, gr.State(side)], [timing, *buttons])
        markers["pause", side].click(on_pause, [timing, gr.State(side)], timing)
    for (choice, button) in zip(("left", "right", "tie", "both_bad"), buttons):
        button.click(on_vote, [session, view, timing, gr.State(choice)], trial_outputs)


def build_results_tab(session):
    with gr.Tab("Results"):
        with gr.Row():
            scope = gr.Radio(["All votes", "This session"], value="All votes", label="Votes")
            min_votes = gr.Number(value=10, precision=0, label="Votes needed for a rank")
            refresh = gr.Button("Refresh", variant="primary", elem_id="refresh-results")
        message = gr.Markdown(elem_id="results-message")
        board = gr.Dataframe(headers=["rank", "restorer", "strength (Bradley-Terry)", "95 % interval", "votes"],
                             label="Leaderboard", interactive=False, elem_id="leaderboard")
        with gr.Row():
            win = gr.Plot(label="Win rates")
            counts = gr.Plot(label="Votes per pair")
        tests = gr.Dataframe(headers=["a", "b", "votes", "a wins", "b wins", "ties", "sign test p"],
                             label="Pairs: two-sided sign test on decisive votes", interactive=False)
        export = gr.Button("Export votes (CSV)", elem_id="export-votes")
        csv_file = gr.File(label="Votes CSV (spreadsheet-safe)", elem_id="votes-csv")
    refresh.click(on_results, [session, scope, min_votes], [board, win, counts, tests, message])
    export.click(on_export, [session, scope], csv_file)


def build_app() -> gr.Blocks:
    # Gradio's own copies of served files are removed after a day.
    with gr.Blocks(title="restorelab: restore AI music, judge by ear", delete_cache=(3600, 86400)) as demo:
        gr.Markdown("# restorelab\nRestore AI-generated music side by side, then judge the restorers blind.")
        clip = gr.State(None)
        prompt_state = gr.State("")
        view = gr.State(None)
        session = gr.State(None)
        build_source_tab(clip, prompt_state)
        build_compare_tab(clip, view)
        build_listen_tab(clip, prompt_state, view, session)
        build_results_tab(session)
    return demo


if __name__ == "__main__":
    SYNC = votes.start_dataset_sync(VOTE_LOG.path)
    build_app().queue(default_concurrency_limit=4).launch(
        head=HEAD, css=CSS, server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", os.environ.get("PORT", "7860"))))
