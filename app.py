"""restorelab's listening lab: get a clip, restore it side by side, listen blind, read the results.

Layout and event wiring only: each handler converts widget values, calls one
function of :mod:`restorelab.lab` (or the generator) and converts back.
Per-listener state lives in ``gr.State``. The module-level objects are
process-wide by nature: the configuration (limits, listening rules), the model
cache, the vote log, the store of trial audio behind single-use links (served
by the route ``/ab/stimulus/<token>``), and the count of each visitor's
running jobs.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.components.plot import PlotData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from restorelab import generation, lab
from restorelab.analysis import VerdictThresholds
from restorelab.audio import atomic_write_text, write_wav
from restorelab.limits import Limits
from restorelab.memory import freeze_what_lives, release_memory
from restorelab.listening import votes
from restorelab.listening.stimuli import TARGET_LUFS, TRUE_PEAK_CEILING_DBTP
from restorelab.listening.mushra import RatingLog, ratings_path
from restorelab.listening.study import load_study
from restorelab.listening.study_session import StudyServer
from restorelab.listening.transport import STIMULUS_ROUTE, ListenRules, StimulusStore
from restorelab.listening.votes import MERGED
from restorelab.plots import heatmap_plotly

ASSETS = Path(__file__).resolve().parent / "assets"
#: Gradio's module for plotly figures (3.5 MB of script): loaded by the page when the first figure
#: arrives, in the middle of a comparison on a busy machine; preloaded, it is ready by then. Found by
#: name among Gradio's built assets (nothing is preloaded if a Gradio version names it otherwise).
PRELOADED_MODULES = sorted(path.name for path in (Path(gr.__file__).parent / "templates" / "frontend" / "assets")
                           .glob("PlotlyPlot-*.js"))
#: A study's page: the listening transport. The lab's page also preloads the plot module.
STUDY_HEAD = f"<script>{(ASSETS / 'ab_transport.js').read_text(encoding='utf-8')}</script>"
HEAD = STUDY_HEAD + "".join(f'<link rel="modulepreload" href="./assets/{name}">' for name in PRELOADED_MODULES)
CSS = (ASSETS / "ab_transport.css").read_text(encoding="utf-8")
#: Gradio's audio component drawn as the browser's own player (``<audio controls>``), no waveform.
NATIVE_PLAYER = gr.WaveformOptions(show_recording_waveform=False)


def describe_api_once(component: type) -> None:
    """Make a Gradio component class describe its API once, not once per instance.

    Gradio builds a new component for each update a streamed event sends it (a skip included)
    and describes its API again each time, a pydantic JSON schema: for Compare's players about
    90 times per comparison, most of an update's cost on the server's event loop. For a class
    whose description is its data model's schema alone (the audio component's), one serves all.
    """
    describe = component.api_info
    if getattr(describe, "once", False):  # this module imported again
        return
    described = None

    def api_info(self) -> dict:
        nonlocal described
        if described is None:
            described = describe(self)
        return described

    api_info.once = True
    component.api_info = api_info


describe_api_once(gr.Audio)

LIMITS = Limits.from_env()
RULES = ListenRules.from_env()
GENERATOR = generation.Generator(local_files_only=os.environ.get("HF_HUB_OFFLINE") == "1")
VOTE_LOG = votes.VoteLog(votes.default_votes_path())
RATING_LOG = RatingLog(ratings_path(VOTE_LOG.path))
STIMULI = StimulusStore(max_bytes=int(LIMITS.max_stimulus_memory_mb * 1e6))
JOBS = lab.SessionJobs(LIMITS.max_jobs_per_session)
RESTORERS = lab.restorer_choices()
PLAYER_NAMES = [lab.INPUT_ROW, *RESTORERS]
CHOICES = (("left", "Left is better"), ("right", "Right is better"), ("tie", "No difference"),
           ("both_bad", "Both bad"))
SCOPES = ("All votes", "This session")

try:  # ZeroGPU on Hugging Face Spaces
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:
    def gpu(fn):
        return fn


def _error(exc: Exception) -> gr.Error:
    """A user's mistake, shown to them; not a server fault, so no traceback in the log."""
    return gr.Error(str(exc), print_exception=False)


def _visitor(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None)


# -- Source ---------------------------------------------------------------------

@gpu
def _generate(request, progress):
    return GENERATOR.generate(request, progress=lambda fraction, stage: progress(fraction, desc=stage))


def on_generate(model, prompt, duration_s, seed, guidance, melody_path, request: gr.Request = None,
                progress=gr.Progress()):
    try:
        melody = lab.load_upload(melody_path, LIMITS) if melody_path else None
        wanted = lab.generation_request(model, prompt, duration_s, seed, guidance, melody, LIMITS)
        with JOBS.hold(_visitor(request), "a generation"):
            clip = _generate(wanted, progress)
    except (ValueError, RuntimeError) as exc:
        raise _error(exc) from None
    if GENERATOR.device() == "cpu" and model != generation.TINY:
        gr.Warning("Generating on the CPU: expect several minutes for a few seconds of audio.")
    return _show_source(clip)


def on_upload(path):
    try:
        return _show_source(lab.load_upload(path, LIMITS))
    except ValueError as exc:
        raise _error(exc) from None


def on_example(label):
    try:
        return _show_source(lab.load_example(label))
    except ValueError as exc:
        raise _error(exc) from None


def _show_source(clip):
    try:
        path = lab.work_folder("source-", LIMITS) / "source.wav"
    except ValueError as exc:
        raise _error(exc) from None
    write_wav(path, clip.audio, clip.sample_rate)
    lab.INPUT_MEASURES.start(clip)  # what a comparison measures of the input, taken while the visitor chooses
    return clip, str(path), lab.clip_summary(clip)


def on_source_changed(session):
    """A new source: the comparison and the listening test of the old one are cleared, not kept stale."""
    if session is not None and session.trial is not None:
        STIMULI.discard(*session.trial.tokens)
        session.trial = None
    if session is not None:
        session.candidates = []
    return (None, *_player_updates(None, False), None, None, None, gr.update(value=[]), None,
            "New source loaded: press **Compare** to restore it.", session, "",
            "The source changed: compare the new clip, then press **Start listening**.", "")


def on_input_psd(clip):
    """The new source's PSD, alone, in the Compare tab's overlay until a comparison replaces it (the
    page also draws its first plotly figure here, not in the middle of the first comparison)."""
    try:
        return None if clip is None else lab.input_psd(clip)
    except Exception:  # a preview: left empty; the comparison measures the input again, and says why it fails
        return None


def on_model_check(model):
    available, reason = GENERATOR.availability(model)
    return "Ready." if available else f"**{model} is unavailable:** {reason}"


# -- Compare --------------------------------------------------------------------

#: Restorer outputs kept for repeating a comparison with the same clip and settings.
OUTPUT_CACHE = lab.OutputCache(int(LIMITS.max_output_cache_mb * 1e6))


#: Seconds an output done soon after the last one shown waits to go with the next (``gather_s`` of
#: :func:`lab.compare_steps`): the page handles each update Compare streams in tens of milliseconds of
#: its CPU, which a small machine shares with the restorers.
GATHER_S = 0.3


def on_compare(clip, names, matched, *values, request: gr.Request = None):
    """Show each result as it is ready: the input's player, the restorers' as they finish (those
    done within :data:`GATHER_S` of each other together), then the metrics table with the PSD
    overlay, then the spectrograms (a generator: one update per step).

    ``values`` are the main knobs' values, then the metrics table's chosen columns (optional, so
    an API call that leaves them out gets the default ones).

    Gradio sends each step as a difference from the last, and the page applies it in place to the
    objects of steps it has not drawn yet (it draws once per frame): a step that left a player's
    output out would erase it from an earlier step still waiting to be drawn, and the player would
    stay empty. So every step sends every player's whole state (:func:`_player_updates`), and each
    step after the table or the overlay has its content sends it again; what a step repeats
    unchanged does not go over the wire.
    """
    knobs = dict(zip(lab.MAIN_KNOBS, values[:len(lab.MAIN_KNOBS)]))
    columns = values[len(lab.MAIN_KNOBS)] if len(values) > len(lab.MAIN_KNOBS) else lab.TABLE_COLUMNS
    skip = gr.skip()
    psd = None
    try:
        with JOBS.hold(_visitor(request), "a comparison"):
            for stage, view in lab.compare_steps(clip, list(names or []), knobs, limits=LIMITS, cache=OUTPUT_CACHE,
                                                 gather_s=GATHER_S):
                if stage in ("input", "output"):
                    players = _player_updates(view, False, restoring=view.settings)
                    running = sum(name != lab.INPUT_ROW and name not in view.skipped for name in view.settings)
                    table = None if stage == "input" else skip  # clear the last run's; then keep it empty
                    status = f"Restored {len(view.players) - 1} of {running}…"
                    yield (view, *players, None, None, None, table, None, status)
                elif stage != "metrics":  # the table goes with the overlay, done a moment later: one step less
                    # New updates for every step: Gradio takes the value out of each one it sends.
                    players = _player_updates(view, matched)
                    table = _metrics_update(view, columns)
                    if stage == "psd":
                        psd = PlotData(type="plotly", plot=view.psd_figure.to_json())  # serialised once
                        status = "Measured; drawing the spectrograms…"
                        yield (view, *players, None, None, psd, table, None, status)
                    else:
                        yield (view, *players, str(view.mel_png), None, psd, table, None, _compare_summary(view))
    except ValueError as exc:
        raise _error(exc) from None
    finally:
        release_memory()


def _compare_summary(view) -> str:
    skipped = "".join(f"\n- **{name}** skipped: {reason}" for name, reason in view.skipped.items())
    same = "".join(f"\n- **{name}** {note}" for name, note in view.notes.items())
    return (f"Compared {len(view.players) - 1} restorer(s) on **{view.clip_name}** ({view.duration_s:.1f} s): "
            f"{len(view.candidates)} different sound(s) to listen to.{same}{skipped}")


def _player_updates(view, matched, restoring=()):
    """Every player: each of ``view``'s (loudness-matched with ``matched``), an empty one under each
    name in ``restoring``, the rest hidden. At the start of a comparison every chosen restorer's
    player so takes its place at once, and none moves another when its output arrives."""
    paths = (lab.matched_players(view) if matched else view.players) if view else {}
    notes = view.notes if view else {}
    return [gr.update(value=str(paths[name]), visible=True,
                      label=f"{name} ({notes[name]})" if name in notes else name) if name in paths
            else gr.update(value=None, visible=True, label=f"{name} (restoring…)") if name in restoring
            else gr.update(value=None, visible=False) for name in PLAYER_NAMES]


def on_matched_toggle(view, matched):
    try:
        return _player_updates(view, matched)
    except ValueError as exc:
        raise _error(exc) from None


def on_study_add(views, view):
    """Add the current comparison to the study being put together (one per clip: a newer one replaces)."""
    if view is None:
        raise _error(ValueError("Run a comparison first."))
    views = [v for v in (views or []) if v.clip_id != view.clip_id] + [view]
    return views, (f"{len(views)} comparison(s) in the study: " + ", ".join(v.clip_name for v in views)
                   + ". Add more, or build it.")


def on_study_build(views, trials, reveal, request: gr.Request = None):
    try:
        if not isinstance(trials, (int, float)) or not 4 <= trials <= 200:
            raise ValueError("Trials per listener must be a number from 4 to 200.")
        if reveal not in ("end", "never", "each"):
            raise ValueError("Reveal must be end, never or each.")
        with JOBS.hold(_visitor(request), "a study"):
            study, archive = lab.study_from_comparisons(views or [], LIMITS, int(trials), reveal)
    except ValueError as exc:
        raise _error(exc) from None
    sounds = sum(len(clip.candidates) for clip in study.clips)
    return str(archive), (f"Study **{study.id}**: {len(study.clips)} clip(s), {sounds} different sound(s). Unzip "
                          f"it and serve it with `python app.py --study {study.id}`.")


def on_metric_columns(view, columns):
    """The metrics table with the columns the visitor picked (unknown names are left out)."""
    if view is None or not view.rows:
        return gr.skip()
    return _metrics_update(view, columns)


def _metrics_update(view, columns):
    """The metrics table of ``view`` with the ``columns`` a visitor picked (at most 50 names)."""
    headers, rows = lab.metrics_table(view.rows, view.notes, [str(c) for c in (columns or [])][:50])
    return gr.update(value=rows, headers=headers)


def on_linear(view):
    """The linear spectrograms, drawn when someone opens them (a finished comparison), else nothing."""
    try:
        return None if view is None or not view.finished else str(lab.linear_spectrograms(view))
    except ValueError as exc:
        raise _error(exc) from None


def on_zip(view):
    try:
        if view is None:
            raise ValueError("Run a comparison first.")
        return str(lab.comparison_zip(view))
    except ValueError as exc:
        raise _error(exc) from None


# -- Listen ---------------------------------------------------------------------

#: The vote buttons send the transport's report on what was heard in place of the hidden textbox's value.
REPORT_JS = "(report, session, choice) => [window.abTransport ? window.abTransport.report() : '', session, choice]"
#: The MUSHRA submit button sends what was heard and the sliders' scores the same way.
SUBMIT_JS = "(report, listener) => [window.abTransport ? window.abTransport.report() : '', listener]"


def _candidate_name(label: str) -> str:
    names = label.split(MERGED)
    return names[0] if len(names) == 1 else " = ".join(names) + " (the same sound)"


def _ticket(trial) -> str:
    """What the page learns of a trial: a random id and two single-use links, nothing about who is who."""
    left, right = (html.escape(f"{STIMULUS_ROUTE.lstrip('/')}/{token}") for token in trial.tokens)
    return (f'<div class="ab-ticket" data-trial="{html.escape(trial.trial_id)}" data-left="{left}" '
            f'data-right="{right}" data-required="{RULES.required_s(trial.duration_s):.3f}"></div>')


def _page_ticket(page) -> str:
    """What the page learns of a MUSHRA page: a random id and single-use links, the open reference's
    first and then one per slider; nothing about which condition is which."""
    sides = ["reference", *(str(k + 1) for k in range(len(page.tokens)))]
    urls = [f"{STIMULUS_ROUTE.lstrip('/')}/{token}" for token in page.all_tokens]
    return (f'<div class="ab-ticket" data-trial="{html.escape(page.page_id)}" '
            f'data-sides="{html.escape(json.dumps(sides))}" data-urls="{html.escape(json.dumps(urls))}" '
            f'data-required="{RULES.required_s(page.duration_s):.3f}"></div>')


def _present(session):
    """Make the next trial and return (session, ticket, info), or say the test on this clip is done."""
    try:
        trial = lab.next_trial(session, STIMULI, RULES)
    except ValueError as exc:  # the test on this clip is complete, or there is nothing (left) to play
        return session, "", str(exc)
    required = RULES.required_s(trial.duration_s)
    info = (f"**Pair {session.votes_cast + 1}** on *{session.clip_id}*: {len(session.candidates)} different sounds, "
            f"the unprocessed input among them. Play each side for at least {required:.0f} s to open voting.")
    return session, _ticket(trial), info


def on_start_listening(session, view):
    session = session or lab.new_session()
    try:
        lab.start_listening(session, view)
        return (*_present(session), "")
    except ValueError as exc:
        raise _error(exc) from None


def on_vote(report, session, choice):
    if session is None:
        raise _error(ValueError("Press 'Start listening' first."))
    trial = session.trial
    try:
        cast = lab.vote(session, VOTE_LOG, choice, report, STIMULI, RULES)
    except ValueError as exc:
        raise _error(exc) from None
    left, right = _candidate_name(cast.restorer_left), _candidate_name(cast.restorer_right)
    verdict = {"left": f"you preferred **{left}**", "right": f"you preferred **{right}**",
               "tie": "you heard no difference", "both_bad": "you found both bad"}[choice]
    level = f"both sides at {trial.loudness_lufs:.1f} LUFS"
    if trial.loudness_lufs < TARGET_LUFS - 0.05:
        level += f" (below {TARGET_LUFS:.0f} LUFS so that no peak passes {TRUE_PEAK_CEILING_DBTP:.0f} dBTP)"
    reveal = (f"**Pair {session.votes_cast}, just judged:** left was **{left}**, right was **{right}**; {verdict}. "
              f"Excerpt {trial.start_s:.1f}–{trial.start_s + trial.duration_s:.1f} s, {level}.")
    return (*_present(session), reveal)


# -- Results --------------------------------------------------------------------

STUDY_SCOPE = "Study "


def on_results(session, scope, min_votes, exclude_flagged):
    try:
        study_id = scope[len(STUDY_SCOPE):] if isinstance(scope, str) and scope.startswith(STUDY_SCOPE) else None
        if scope not in SCOPES and study_id is None:
            raise ValueError(f"unknown scope; choose {' or '.join(SCOPES)}, or a study")
        session_id = None
        if scope == "This session":
            session_id = session.session_id if session else "-"
        min_votes = int(min_votes) if isinstance(min_votes, (int, float)) and 1 <= min_votes <= 100000 else 10
        found = lab.results(VOTE_LOG, session_id, min_votes, bool(exclude_flagged), study_id)
    except ValueError as exc:
        raise _error(exc) from None
    scopes = [*SCOPES, *(STUDY_SCOPE + study for study in found.studies)]
    board = found.board
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
    notes = [board.message, *found.notes]
    if np.isfinite(board.left_win_share):
        notes.append(f"Left side won {board.left_win_share:.0%} of decisive votes (binomial p = "
                     f"{board.left_bias_p:.3f}; positions are randomised, so a small p means listeners favour a "
                     "side).")
    if found.excluded_sessions and not study_id:
        notes.append(f"{found.excluded_sessions} session(s) left out: they broke a listening rule "
                     "(voting too fast).")
    if found.damaged_rows:
        notes.append(f"{len(found.damaged_rows)} damaged row(s) in the vote log were skipped "
                     f"({'; '.join(found.damaged_rows[:3])}).")
    return (gr.update(choices=scopes, value=scope), rows, win, counts, tests,
            "\n\n".join(x for x in notes if x))


def on_export(session, scope):
    try:
        rows = VOTE_LOG.read()
        if scope == "This session":
            rows = [r for r in rows if session and r["session_id"] == session.session_id]
        path = lab.work_folder("votes-", LIMITS) / "votes.csv"
    except ValueError as exc:
        raise _error(exc) from None
    atomic_write_text(path, votes.export_csv(rows))
    return str(path)


# -- Study (app.py --study DIR) -------------------------------------------------------

STUDY_ENV = "RESTORELAB_STUDY"
#: The served study (``app.py --study DIR`` or ``$RESTORELAB_STUDY``), else ``None``.
STUDY = None
#: Gives the listener id this browser kept for the study (empty on a first visit).
LOAD_LISTENER_JS = "(stored) => [localStorage.getItem('restorelab-listener-' + {study}) || '']"
KEEP_LISTENER_JS = "(id) => {{ if (id) localStorage.setItem('restorelab-listener-' + {study}, id); }}"


def _study_progress(listener) -> str:
    done, total = listener.position, len(listener.plan)
    if listener.done:
        return (f"All {total} {'pages' if STUDY.mushra else 'trials'} done: thank you. Your completion code is "
                "below; hand it in where you were asked to.")
    if STUDY.mushra:
        return (f"**Page {done + 1} of {total}**. Play the reference and every sound (each for at least "
                f"{RULES.min_listen_s:g} s), rate each against the reference, then submit.")
    return f"**Trial {done + 1} of {total}**. Play both sides, then vote."


def _study_ticket(item) -> str:
    if item is None:
        return ""
    return _page_ticket(item) if STUDY.mushra else _ticket(item)


def _study_reveal_end(listener) -> str:
    if STUDY.study.reveal != "end" or not listener.done:
        return ""
    return "What you judged (left vs right: your choice):\n" + "\n".join(f"- {line}" for line in listener.judged)


def on_study_load(stored, request: gr.Request = None):
    """Who this listener is (the link's id, this browser's, or a new one) and where they are."""
    query = getattr(request, "query_params", None) or {}
    listener = STUDY.arrive(stored, query.get("listener") or query.get("PROLIFIC_PID"))
    unit = "pages" if STUDY.mushra else "trials"
    answered = bool(listener.questionnaire) or not STUDY.study.questionnaire
    if listener.done:
        message = _study_progress(listener)
    elif listener.position:
        message = (f"Welcome back: {listener.position} of {len(listener.plan)} {unit} done. Press **Start** to go "
                   "on.")
    else:
        message = f"{len(listener.plan)} {unit}, a few minutes each at most. Press **Start** when you are ready."
    code = STUDY.completion_code(listener.listener_id) if listener.done else ""
    return (listener, listener.listener_id, message, gr.update(visible=not answered),
            gr.update(visible=not listener.done), code)


def on_study_start(listener, *answers):
    try:
        if listener is None:
            raise ValueError("The page is still loading; try again in a moment.")
        if STUDY.study.questionnaire and not listener.questionnaire:
            STUDY.answer(listener, {q["id"]: a for q, a in zip(STUDY.study.questionnaire, answers)})
        item = STUDY.present(listener)
    except ValueError as exc:
        raise _error(exc) from None
    return (listener, _study_ticket(item), _study_progress(listener), "",
            STUDY.completion_code(listener.listener_id) if listener.done else "",
            gr.update(visible=False), gr.update(visible=False))


def on_study_vote(report, listener, choice):
    if listener is None:
        raise _error(ValueError("Press Start first."))
    try:
        cast = STUDY.vote(listener, choice, report)
        trial = STUDY.present(listener)
    except ValueError as exc:
        raise _error(exc) from None
    reveal = _study_reveal_end(listener)
    if STUDY.study.reveal == "each":
        reveal = (f"Left was **{_candidate_name(cast.restorer_left)}**, right was "
                  f"**{_candidate_name(cast.restorer_right)}**.")
    code = STUDY.completion_code(listener.listener_id) if listener.done else ""
    return listener, _ticket(trial) if trial else "", _study_progress(listener), reveal, code


def on_mushra_submit(report, listener):
    if listener is None:
        raise _error(ValueError("Press Start first."))
    try:
        rows = STUDY.rate(listener, report)
        page = STUDY.present(listener)
    except ValueError as exc:
        raise _error(exc) from None
    reveal = _study_reveal_end(listener)
    if STUDY.study.reveal == "each":
        reveal = "You rated: " + "; ".join(f"sound {row['position']} was **{_candidate_name(row['condition'])}** "
                                           f"({row['score']})" for row in rows) + "."
    code = STUDY.completion_code(listener.listener_id) if listener.done else ""
    return listener, _study_ticket(page), _study_progress(listener), reveal, code


def mushra_controls():
    """The MUSHRA player (open reference, one slider per condition), the page's ticket, the hidden
    report, the submit button and the reveal."""
    gr.HTML(transport_html("mushra_transport.html"), elem_id="ab-transport", padding=False)
    ticket = gr.HTML("", elem_id="ab-ticket", padding=False)
    report = gr.Textbox(visible=False)
    submit = gr.Button("Submit the ratings", variant="primary", elem_id="mushra-submit", elem_classes=["ab-vote"])
    reveal = gr.Markdown(elem_id="ab-reveal")
    return ticket, report, submit, reveal


def build_study_app() -> gr.Blocks:
    """The listener-only page of a study: instructions, questions, the blind trials, a completion code."""
    study = STUDY.study
    key = json.dumps(study.id)
    with gr.Blocks(title="Listening study", delete_cache=(600, 3600)) as demo:
        listener = gr.State(None)
        stored = gr.Textbox(visible=False)
        gr.Markdown("# Listening study")
        gr.Markdown(study.instructions, elem_id="study-instructions")
        with gr.Column(visible=True) as questions:
            answers = [gr.Radio(q["choices"], label=q["question"], elem_id=f"question-{q['id']}")
                       for q in study.questionnaire]
        start = gr.Button("Start", variant="primary", elem_id="study-start")
        progress = gr.Markdown(elem_id="study-progress")
        if STUDY.mushra:
            ticket, report, submit, reveal = mushra_controls()
        else:
            ticket, report, buttons, reveal = blind_pair_controls()
        code = gr.Markdown(elem_id="completion-code")
        demo.load(on_study_load, stored, [listener, stored, progress, questions, start, code],
                  js=LOAD_LISTENER_JS.format(study=key)).then(
            None, stored, None, js=KEEP_LISTENER_JS.format(study=key))
        start.click(on_study_start, [listener, *answers], [listener, ticket, progress, reveal, code, questions, start])
        outputs = [listener, ticket, progress, reveal, code]
        if STUDY.mushra:
            submit.click(on_mushra_submit, [report, listener], outputs, js=SUBMIT_JS)
        else:
            for (choice, _), button in zip(CHOICES, buttons):
                button.click(on_study_vote, [report, listener, gr.State(choice)], outputs,
                             js=REPORT_JS.replace("session", "listener"))
    return demo


# -- layout -------------------------------------------------------------------------

def build_source_tab(clip):
    with gr.Tab("Source"):
        with gr.Row():
            with gr.Column():
                with gr.Accordion("Generate with MusicGen", open=False):
                    prompt = gr.Textbox(label=f"Prompt (at most {LIMITS.max_prompt_chars} characters)",
                                        value="lofi hip hop beat with warm piano chords",
                                        max_length=LIMITS.max_prompt_chars, elem_id="prompt")
                    with gr.Row():
                        model = gr.Dropdown([*generation.MODELS, generation.TINY], value="small", label="Model")
                        duration = gr.Slider(1, LIMITS.max_generation_s, value=8, step=1, label="Duration (s)")
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, minimum=0, maximum=2 ** 32 - 1, label="Seed")
                        guidance = gr.Slider(1, 10, value=3, step=0.5, label="Guidance scale")
                    melody = gr.Audio(label="Melody (melody models only)", type="filepath", sources=["upload"])
                    model_status = gr.Markdown()
                    generate = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Accordion("Upload", open=False):
                    upload = gr.Audio(label=f"Audio file (WAV, FLAC, OGG, MP3; up to {LIMITS.max_clip_s:.0f} s and "
                                            f"{LIMITS.max_upload_mb:.0f} MB): used as soon as it is chosen",
                                      type="filepath", sources=["upload"], elem_id="upload")
                with gr.Accordion("Examples", open=True):
                    example = gr.Dropdown(list(lab.EXAMPLES), value=next(iter(lab.EXAMPLES)), label="Bundled example")
                    gr.Markdown("\n".join(f"- *{k}*: {v[1]}" for k, v in lab.EXAMPLES.items()))
                    load_example = gr.Button("Load example", variant="primary", elem_id="load-example")
            with gr.Column():
                source_player = gr.Audio(label="Working clip (44.1 kHz)", type="filepath", interactive=False,
                                         elem_id="source-player")
                source_info = gr.Markdown("No clip loaded yet.", elem_id="source-info")
    outputs = [clip, source_player, source_info]
    model.change(on_model_check, model, model_status)
    return [generate.click(on_generate, [model, prompt, duration, seed, guidance, melody], outputs,
                           concurrency_limit=1),
            upload.upload(on_upload, upload, outputs),
            load_example.click(on_example, example, outputs)]


def build_compare_tab(clip, view):
    with gr.Tab("Compare"):
        unavailable = lab.unavailable_restorers()
        available = lab.available_choices(unavailable)
        names = gr.CheckboxGroup(available, value=available,
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
            # Wide enough for the longest restorer name (and its note) to show in full. The browser's
            # own player, not Gradio's waveform: the outputs' waveforms look alike (the spectrograms
            # below show how they differ), and fetching, decoding and drawing ten of them took more
            # than a third of the page's CPU time per comparison.
            players = [gr.Audio(label=name, type="filepath", interactive=False, visible=False, min_width=300,
                                elem_classes=["compare-player"], waveform_options=NATIVE_PLAYER)
                       for name in PLAYER_NAMES]
        thresholds = VerdictThresholds()
        metrics = gr.Dataframe(label="Metrics (input first; verdicts: less energy above 6 kHz for a denoiser, "
                                     f"a band {thresholds.min_bandwidth_gain_hz:.0f} Hz wider for a "
                                     "bandwidth extender, HPSS kept, "
                                     f"log-mel distance < {thresholds.max_log_mel_distance:.2f})",
                               elem_id="metrics", interactive=False)
        columns = gr.CheckboxGroup([*lab.TABLE_COLUMNS, *lab.MORE_TABLE_COLUMNS], value=list(lab.TABLE_COLUMNS),
                                   label="Columns of the metrics table", elem_id="metric-columns")
        psd = gr.Plot(label="PSD overlay", elem_id="psd")
        mel = gr.Image(label="Mel spectrograms (one colour scale; the corner button opens them full size)",
                       type="filepath", elem_id="mel")
        with gr.Accordion("Linear spectrograms", open=False) as linear_box:
            show_linear = gr.Button("Draw the linear spectrograms of this comparison", elem_id="show-linear")
            linear = gr.Image(label="Linear spectrograms (one colour scale)", type="filepath", elem_id="linear")
        zip_button = gr.Button("Zip all outputs, metrics and figures", elem_id="make-zip")
        download = gr.File(label="All outputs, metrics and figures (zip)", elem_id="compare-zip")
        with gr.Accordion("Make a listening study of comparisons", open=False):
            gr.Markdown("Add comparisons (one per clip, the same restorers in each), then build the study: its "
                        "folder comes as a zip, to serve with `python app.py --study FOLDER` (see the README).")
            study_views = gr.State([])
            with gr.Row():
                add = gr.Button("Add this comparison", elem_id="study-add")
                trials = gr.Number(value=20, precision=0, minimum=4, maximum=200, label="Trials per listener")
                reveal = gr.Radio(["end", "never", "each"], value="end", label="Reveal the names")
                build = gr.Button("Build the study", variant="primary", elem_id="study-build")
            study_status = gr.Markdown(elem_id="study-status")
            study_zip = gr.File(label="The study folder (zip)", elem_id="study-zip")
    outputs = [view, *players, mel, linear, psd, metrics, download, status]
    add.click(on_study_add, [study_views, view], [study_views, study_status])
    build.click(on_study_build, [study_views, trials, reveal], [study_zip, study_status], concurrency_limit=1)
    # One comparison at a time: on a small machine two at once take as long as two in a row,
    # and would need twice the memory. The status line says how far it got, so the outputs go
    # without Gradio's animated loading overlays, which kept the browser busy redrawing them
    # (about a fifth of the page's CPU time during a comparison, on the same cores as the server).
    # The table comes with the visitor's columns (the last input, so API calls may leave it out).
    run.click(on_compare, [clip, names, matched, *knobs, columns], outputs, concurrency_limit=1,
              show_progress="minimal")
    columns.change(on_metric_columns, [view, columns], metrics)
    matched.change(on_matched_toggle, [view, matched], players)
    zip_button.click(on_zip, view, download)
    linear_box.expand(on_linear, view, linear)
    show_linear.click(on_linear, view, linear)
    return outputs


def transport_html(name: str) -> str:
    """A player's HTML (``assets/<name>``) with the position and loop controls every player shares."""
    shared = (ASSETS / "transport_position.html").read_text(encoding="utf-8")
    return (ASSETS / name).read_text(encoding="utf-8").replace("  <!-- position and loop -->\n", shared)


def blind_pair_controls():
    """The A/B player, the trial's ticket, the hidden report, the vote buttons and the reveal:
    the same element ids in the Listen tab and on a study's page."""
    gr.HTML(transport_html("ab_transport.html"), elem_id="ab-transport", padding=False)
    ticket = gr.HTML("", elem_id="ab-ticket", padding=False)
    report = gr.Textbox(visible=False)
    with gr.Row():
        buttons = [gr.Button(label, elem_id=f"vote-{choice.replace('_', '-')}", elem_classes=["ab-vote"])
                   for choice, label in CHOICES]
    reveal = gr.Markdown(elem_id="ab-reveal")
    return ticket, report, buttons, reveal


def build_listen_tab(view, session):
    with gr.Tab("Listen"):
        gr.Markdown("Blind A/B: the unprocessed input takes part as a control. Each pair plays the same random "
                    "excerpt of both sides, matched in integrated loudness (at most "
                    f"{TARGET_LUFS:.0f} LUFS, true peak at most {TRUE_PEAK_CEILING_DBTP:.0f} dBTP), lossless "
                    "24-bit, sides random, names hidden until you vote. Outputs that sound the same take part as "
                    f"one. Voting opens once each side has played for {RULES.min_listen_s:g} s through the player "
                    "below.")
        start = gr.Button("Start listening", variant="primary", elem_id="start-listening")
        info = gr.Markdown(elem_id="trial-info")
        ticket, report, buttons, reveal = blind_pair_controls()
    outputs = [session, ticket, info, reveal]
    start.click(on_start_listening, [session, view], outputs)
    for (choice, _), button in zip(CHOICES, buttons):
        button.click(on_vote, [report, session, gr.State(choice)], outputs, js=REPORT_JS)
    return outputs


def build_results_tab(session):
    with gr.Tab("Results") as tab:
        with gr.Row():
            scope = gr.Dropdown(list(SCOPES), value=SCOPES[0], label="Votes (the lab's, this session's, or a study's)",
                                elem_id="results-scope")
            min_votes = gr.Number(value=10, precision=0, minimum=1, label="Votes needed for a rank")
            exclude = gr.Checkbox(value=True, label="Leave out sessions that broke a listening rule")
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
    inputs, outputs = [session, scope, min_votes, exclude], [scope, board, win, counts, tests, message]
    for trigger in (refresh.click, tab.select, scope.input, exclude.input):
        trigger(on_results, inputs, outputs)
    export.click(on_export, [session, scope], csv_file)


def build_app() -> gr.Blocks:
    # Gradio's copies of uploads and of served files outside the work folder are removed after an hour.
    with gr.Blocks(title="restorelab: restore AI music, judge by ear", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# restorelab\nRestore AI-generated music side by side, then judge the restorers blind.")
        clip = gr.State(None)
        view = gr.State(None)
        session = gr.State(None)
        source_events = build_source_tab(clip)
        compare_outputs = build_compare_tab(clip, view)
        listen_outputs = build_listen_tab(view, session)
        build_results_tab(session)
        psd = next(output for output in compare_outputs if getattr(output, "elem_id", None) == "psd")
        for event in source_events:
            event.success(on_source_changed, session, [*compare_outputs, *listen_outputs]).then(
                on_input_psd, clip, psd)
    return demo


async def serve_stimulus(request: Request) -> Response:
    """One side of a trial, once: the token is spent by the first fetch."""
    data = STIMULI.take(request.path_params["token"])
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if data is None:
        return PlainTextResponse("This stimulus link was already used or has expired.", status_code=404,
                                 headers=headers)
    return Response(data, media_type="audio/wav", headers=headers)


def serve_study(folder: str | os.PathLike) -> None:
    """Make ``app`` serve the study in ``folder`` instead of the lab (see :func:`build_study_app`)."""
    global STUDY
    study = load_study(folder)
    STUDY = StudyServer(study, RATING_LOG if study.test == "mushra" else VOTE_LOG, STIMULI, RULES)


def launch(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="restorelab's listening lab (or, with --study, a study's page)")
    parser.add_argument("--study", default=os.environ.get(STUDY_ENV),
                        help=f"serve only the listening page of this study folder (or set ${STUDY_ENV})")
    args = parser.parse_args(argv)
    votes.start_dataset_sync(VOTE_LOG.path, RATING_LOG.path)
    if args.study:
        serve_study(args.study)
        demo = build_study_app()
    else:
        lab.limit_blas_threads()  # comparisons run restorers two at a time
        # Comparison files are served from the work folder as they are, not copied into Gradio's cache.
        gr.set_static_paths([str(lab.WORK_ROOT)])
        lab.WORK_ROOT.mkdir(parents=True, exist_ok=True)
        demo = build_app()
    demo.queue(default_concurrency_limit=4, max_size=64).launch(
        head=STUDY_HEAD if args.study else HEAD, css=CSS, ssr_mode=False,
        max_file_size=f"{int(LIMITS.max_upload_mb)}mb",
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", os.environ.get("PORT", "7860"))),
        app_kwargs={"routes": [Route(f"{STIMULUS_ROUTE}/{{token}}", serve_stimulus)]}, prevent_thread_lock=True)
    if not args.study:  # the server answers already; the models load behind it, not in a first comparison
        threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
    demo.block_thread()


#: Seconds between the server answering and the models loading behind it: the first page is served
#: first (loading them at once delayed the first answer past 5 s in two of four starts).
WARM_UP_DELAY_S = 1.5


def _warm_up() -> None:
    time.sleep(WARM_UP_DELAY_S)
    for failure in lab.warm_up():
        print(f"restorelab: warming up, {failure}", file=sys.stderr)
    freeze_what_lives()  # the modules and models: collections after each comparison skip them


if __name__ == "__main__":
    launch()
