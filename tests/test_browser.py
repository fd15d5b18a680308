"""The app in a real browser: Debian's headless Chromium driven by Playwright, on localhost only.

One test walks the whole app (example, Compare, a blind pair, Results, the CSV) and saves a
screenshot of every tab under ``test-output/screenshots/``. One plays a blind session of at least
eight pairs as an adversary would: it keeps everything the page received before each vote and
tries to name the sides from what it learnt in the trials already revealed. One runs two
listeners in separate browser contexts at once, and one has two listeners complete a study.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, add_noise, melody, running_app
from restorelab import audio as A
from restorelab.cli import main
from restorers import output_names, restorer_class

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                                           "(scripts/install-test-deps.sh installs it)"),
]
#: What the Compare tab ticks by default: every restorer that can run here (offline: all but Demucs).
AVAILABLE = [name for name in output_names() if restorer_class(name).availability().available]
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update",
                 "--autoplay-policy=no-user-gesture-required"]
MIN_LISTEN_S = 3.0  # the app's default, which these tests run with
#: Copies the text of every streamed answer (Gradio's server-sent events) into window.__received.
RECORD_STREAMS = """
window.__received = [];
const originalFetch = window.fetch;
window.fetch = async (...args) => {
  const response = await originalFetch(...args);
  if ((response.headers.get("content-type") || "").includes("event-stream")) {
    const reader = response.clone().body.getReader();
    const decoder = new TextDecoder();
    (async () => { for (;;) { const { done, value } = await reader.read(); if (done) break;
                              window.__received.push(decoder.decode(value)); } })();
  }
  return response;
};
"""


@pytest.fixture
def server(tmp_path):
    with running_app(tmp_path) as (url, votes):
        yield url, votes


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_text(page, selector: str, text: str, timeout_s: float = 120) -> None:
    page.wait_for_function(
        "([sel, txt]) => { const el = document.querySelector(sel); return el && el.innerText.includes(txt); }",
        arg=[selector, text], timeout=timeout_s * 1000)


def open_page(browser, url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.goto(url)
    return page


def compare_example(page, stem: str = "synth_pop_musicgen_like") -> None:
    """Load the chosen bundled example and compare it with every available restorer."""
    page.click("#load-example")
    wait_text(page, "#source-info", stem)
    page.get_by_role("tab", name="Compare").click()
    page.click("#compare")
    wait_text(page, "#compare-status", f"Compared {len(AVAILABLE)} restorer(s) on {stem}")
    wait_for_players(page)


#: Every visible Compare player is the browser's own, has read its clip (a WAV, as written) and
#: knows its length, in seconds (within 0.05 s of ``seconds``, when given).
PLAYERS_READY = """seconds => [...document.querySelectorAll('.compare-player')].filter(p => p.offsetParent)
    .every(p => { const a = p.querySelector('audio');
                  return a && a.controls && a.readyState >= 1 && /[.]wav$/.test(a.currentSrc)
                      && (seconds === null ? a.duration > 0 : Math.abs(a.duration - seconds) < 0.05); })"""


def wait_for_players(page, seconds: float | None = None) -> None:
    page.wait_for_function(PLAYERS_READY, arg=seconds, timeout=60000)


def start_listening(page) -> str:
    page.get_by_role("tab", name="Listen").click()
    page.click("#start-listening")
    return wait_for_pair(page)


def wait_for_pair(page, previous: str | None = None) -> str:
    """Wait until the transport has loaded a pair other than ``previous``; return its trial id."""
    page.wait_for_function("previous => window.abTransport.buffers && window.abTransport.trial !== previous",
                           arg=previous, timeout=60000)
    return page.evaluate("window.abTransport.trial")


def heard(page) -> dict[str, float]:
    return page.evaluate("({...window.abTransport.heard})")


def listen_side(pages, key: str, seconds: float = MIN_LISTEN_S + 0.1) -> None:
    """On every page at once, play a side (key 1 or 2) until it has been heard for ``seconds``,
    starting it again (Space) where an excerpt ran out first."""
    side = "left" if key == "1" else "right"
    for page in pages:
        page.keyboard.press(key)
    deadline = time.monotonic() + 30
    waiting = list(pages)
    while waiting and time.monotonic() < deadline:
        time.sleep(0.1)
        for page in list(waiting):
            state = page.evaluate(f"[window.abTransport.heard.{side}, window.abTransport.playing]")
            if state[0] >= seconds:
                waiting.remove(page)
            elif not state[1]:
                page.keyboard.press(" ")
    assert not waiting, "a side never played long enough"


def listen_both(page, seconds: float = MIN_LISTEN_S + 0.1) -> None:
    """Play the left side, then switch to the right at the same position, ``seconds`` each."""
    listen_side([page], "1", seconds)
    listen_side([page], "2", seconds)


def vote(page, choice: str = "left") -> str:
    page.wait_for_function("!document.querySelector('#vote-left').disabled", timeout=10000)
    time.sleep(1.0)  # a moment to decide: a vote at the very first moment allowed is flagged "fast"
    before = page.locator("#ab-reveal").inner_text()
    page.click(f"#vote-{choice}")
    page.wait_for_function("before => { const t = document.querySelector('#ab-reveal').innerText; "
                           "return t.includes('just judged') && t !== before; }", arg=before, timeout=30000)
    return page.locator("#ab-reveal").inner_text()


def revealed_names(text: str) -> tuple[str, str]:
    left, right = re.search(r"left was (.+?), right was (.+?);", text.replace("*", "")).groups()
    return left, right


def test_compare_listen_vote_export(server, browser):
    url, votes = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, url)
    page.click("#load-example")
    wait_text(page, "#source-info", "synth_pop_musicgen_like")
    # The browser fetched and decoded the working clip: its player shows a duration (9.7 s -> "0:10").
    wait_text(page, "#source-player #duration", "0:10", timeout_s=60)
    page.screenshot(path=SHOTS / "1-source.png", full_page=True)

    # The PSD plot's module came with the page, before Compare needs it.
    assert page.evaluate("performance.getEntriesByType('resource').some(e => /PlotlyPlot-.*[.]js$/.test(e.name))")
    page.get_by_role("tab", name="Compare").click()
    # Before any comparison the overlay holds the new source's own PSD: one curve, the input's.
    page.wait_for_selector("#psd .js-plotly-plot", timeout=30000)
    page.wait_for_function("document.querySelectorAll('#psd .scatterlayer .trace').length === 1", timeout=30000)
    assert page.locator("#psd .legendtext").all_text_contents() == ["input"]
    page.click("#compare")
    wait_text(page, "#compare-status", f"Compared {len(AVAILABLE)} restorer(s)")
    page.wait_for_selector("#psd .js-plotly-plot", timeout=30000)
    assert page.locator("#psd .legendtext").count() == 1 + len(AVAILABLE)
    # Gradio's images load lazily: below four rows of players the grid waits until scrolled to.
    page.locator("#mel").scroll_into_view_if_needed()
    page.wait_for_selector("#mel img", timeout=30000)
    wait_for_players(page, 9.73)  # the example's 9.73 s, in every player
    assert page.locator("#linear img").count() == 0  # drawn when someone opens them
    page.get_by_text("Linear spectrograms", exact=True).click()
    page.wait_for_selector("#linear img", timeout=30000)
    table = page.locator("#metrics").inner_text()
    assert "input" in table and "spectral_gate_hf" in table and "unet_denoise" in table and "unet_bwe" in table
    page.screenshot(path=SHOTS / "2-compare.png", full_page=True)

    start_listening(page)
    wait_text(page, "#trial-info", "Pair 1")
    assert page.locator("#vote-left").is_disabled()
    # The transport: play the left side, switch to the right by key at the same position.
    page.click("#ab-play-left")
    page.wait_for_function("window.abTransport.playing && window.abTransport.position() > 1.0", timeout=30000)
    left_at = page.evaluate("window.abTransport.position()")
    page.keyboard.press("2")
    right_at = page.evaluate("window.abTransport.position()")
    assert page.evaluate("window.abTransport.side") == "right"
    assert abs(right_at - left_at) < 0.1 and right_at > 1.0
    assert "Right" in page.locator("#ab-position").inner_text()
    page.keyboard.press(" ")
    assert page.evaluate("window.abTransport.playing") is False
    # The loop region is editable at both ends, to a fraction of a second.
    page.fill("#ab-loop-start", "0.5")
    page.fill("#ab-loop-end", "1.75")
    page.check("#ab-loop")
    page.click("#ab-toggle")
    page.wait_for_function("window.abTransport.heard.right > 3.0", timeout=30000)
    assert 0.5 <= page.evaluate("window.abTransport.position()") < 1.75
    page.keyboard.press("l")
    assert not page.is_checked("#ab-loop")
    page.screenshot(path=SHOTS / "3-listen.png", full_page=True)
    listen_both(page)
    revealed = vote(page, "left")
    wait_text(page, "#trial-info", "Pair 2")

    page.get_by_role("tab", name="Results").click()
    names = [n for side in revealed_names(revealed) for n in side.split(" (")[0].split(" = ")]
    page.wait_for_function("names => names.every(n => document.querySelector('#leaderboard').innerText"
                           ".includes(n))", arg=names, timeout=30000)  # loads on opening the tab
    page.click("#export-votes")
    link = page.locator("#votes-csv a").first
    link.wait_for(timeout=30000)
    page.screenshot(path=SHOTS / "4-results.png", full_page=True)
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    rows = list(csv.DictReader(io.StringIO(response.text())))

    (row,) = rows
    assert row["choice"] == "left" and row["winner"] == row["restorer_left"]
    assert float(row["listened_left_s"]) >= MIN_LISTEN_S and float(row["listened_right_s"]) >= MIN_LISTEN_S
    assert row["clip_id"] == "synth_pop_musicgen_like" and row["settings_left"].startswith("[{")
    assert votes.read_text().count("\n") == 2  # the header and this vote, on the server's disk
    for name in ("1-source", "2-compare", "3-listen", "4-results"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000


class Recorder:
    """Everything the page receives: every HTTP response, and the text of every streamed answer."""

    def __init__(self, page) -> None:
        self.page = page
        self.responses = []
        page.on("response", lambda response: self.responses.append(response))

    def stimuli(self) -> list:
        return [r for r in self.responses if "/ab/stimulus/" in r.url]

    def compare_bodies(self) -> set[str]:
        """Hashes of the audio files the Compare tab served, whole: its players read them in ranges
        (206), so each is fetched again in full here."""
        urls = {r.url for r in self.responses
                if "/gradio_api/file=" in r.url and r.url.endswith(".wav") and r.status in (200, 206)}
        return {hashlib.sha256(self.page.request.get(url).body()).hexdigest() for url in urls}


def side_features(response) -> dict[str, str]:
    """What a script can read of one side before the vote, other than the sound itself."""
    body = response.body()
    headers = {k: v for k, v in response.headers.items() if k != "date"}
    features = {"url": response.url, "sha256": hashlib.sha256(body).hexdigest(), "size": str(len(body)),
                **{f"header:{k}": v for k, v in headers.items()}}
    features.update({f"segment:{part}": part for part in response.url.split("/")[3:]})
    return features


def test_a_blind_session_cannot_be_linked_or_gamed(server, browser):
    url, votes = server
    page = open_page(browser, url)
    page.add_init_script(RECORD_STREAMS)
    page.reload()
    recorder = Recorder(page)
    compare_example(page)
    served_by_compare = recorder.compare_bodies()
    assert len(served_by_compare) >= 1 + len(AVAILABLE)  # the input and every output (and the source)

    trial = start_listening(page)
    # Voting stays closed until each side has played for the minimum, as the transport measures it.
    assert page.locator("#vote-left").is_disabled()
    page.keyboard.press("1")
    page.wait_for_function(f"window.abTransport.heard.left >= {MIN_LISTEN_S + 0.3}", timeout=30000)
    page.keyboard.press("2")
    page.wait_for_function(f"window.abTransport.heard.right >= {MIN_LISTEN_S - 1.0}", timeout=30000)
    assert all(page.locator(f"#vote-{c}").is_disabled() for c in ("left", "right", "tie", "both-bad"))
    page.keyboard.press(" ")  # paused: no more listening, the vote stays closed
    time.sleep(1.5)
    assert page.locator("#vote-left").is_disabled() and heard(page)["right"] < MIN_LISTEN_S

    known: dict[tuple[str, str], set[str]] = {}  # feature -> the candidates it was seen with
    seen_urls, seen_bodies, trials, named, streamed = set(), set(), 0, 0, 0
    panel_names = AVAILABLE  # ("input" is in every trial's text: "the unprocessed input among them")
    while trials < 9:
        listen_both(page)
        stimuli = [r for r in recorder.stimuli() if r.url not in seen_urls]
        assert len(stimuli) == 2, [r.url for r in stimuli]  # this trial's two sides, nothing else
        ticket = page.locator("#ab-ticket .ab-ticket")
        by_side = {"left": None, "right": None}
        for response in stimuli:
            side = "left" if response.url.endswith(ticket.get_attribute("data-left")) else "right"
            by_side[side] = side_features(response)
        left, right = by_side["left"], by_side["right"]
        # The sides differ in nothing but the sound: same size, same headers.
        assert left["size"] == right["size"]
        assert {k: v for k, v in left.items() if k.startswith("header:")} == \
               {k: v for k, v in right.items() if k.startswith("header:")}
        for features in (left, right):
            assert features["url"] not in seen_urls and features["sha256"] not in seen_bodies
            assert features["sha256"] not in served_by_compare
            seen_urls.add(features["url"])
            seen_bodies.add(features["sha256"])
        # Nothing in the transport, the ticket or the trial text names a candidate before the vote.
        panel = " ".join(page.locator(s).inner_text() for s in ("#ab-transport", "#trial-info"))
        panel += ticket.evaluate("e => e.outerHTML")
        assert not any(name in panel for name in panel_names), panel
        received = "".join(page.evaluate("window.__received.splice(0)"))
        streamed += len(received)
        # The adversary: name a side from any feature of it that was seen in a revealed trial.
        guesses = [set().union(*(known.get((k, v), set()) for k, v in side.items() if left.get(k) != right.get(k)
                                 or k in ("url", "sha256")))
                   for side in (left, right)]
        named += any(guesses)
        revealed = revealed_names(vote(page, ("left", "right", "tie")[trials % 3]))
        for side, label in zip((left, right), revealed):
            for feature in side.items():
                known.setdefault(feature, set()).add(label)
        trials += 1
        if trials < 9:
            trial = wait_for_pair(page, trial)
    assert named == 0 and trials == 9 and streamed > 0
    rows = list(csv.DictReader(votes.open()))
    assert len(rows) == 9 and len({r["trial_id"] for r in rows}) == 9
    assert all(float(r["listened_left_s"]) >= MIN_LISTEN_S for r in rows)
    # Some candidate took part in at least two trials, so there was something to link.
    appearances = [name for r in rows for name in (r["restorer_left"], r["restorer_right"])]
    assert len(set(appearances)) < len(appearances)


#: The PSD overlay's title, its two buttons, the frequency axis's title and the legend, each as a
#: box ``[left, top, right, bottom]`` in the page.
PSD_PARTS = """() => Object.fromEntries(['.gtitle', '.updatemenu-container', '.xtitle', '.legend'].map(sel => {
    const r = document.querySelector('#psd ' + sel).getBoundingClientRect();
    return [sel, [r.left, r.top, r.right, r.bottom]];
}))"""


def test_the_psd_overlay_reads_on_a_phone(server, browser):
    """At 390 px the overlay's title, buttons, axis title and the ten names of its legend (several
    rows there) stay clear of each other and inside the figure."""
    url, _ = server
    page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    page.goto(url)
    compare_example(page)
    page.wait_for_function("count => document.querySelectorAll('#psd .legend .traces').length === count",
                           arg=1 + len(AVAILABLE), timeout=30000)
    parts = page.evaluate(PSD_PARTS)
    figure = page.locator("#psd .js-plotly-plot").bounding_box()
    for name, (left, top, right, bottom) in parts.items():
        assert figure["x"] - 1 <= left and right <= figure["x"] + figure["width"] + 1, name
        assert figure["y"] - 1 <= top and bottom <= figure["y"] + figure["height"] + 1, name
    names = list(parts)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a, b = parts[first], parts[second]
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, f"{first} {a} overlaps {second} {b}"


def test_two_listeners_never_share_state(server, browser):
    url, votes = server
    first, second = open_page(browser, url), open_page(browser, url)
    compare_example(first)
    second.get_by_label("Bundled example").click()
    second.get_by_role("option", name="Synth ballad with hiss").click()
    compare_example(second, stem="synth_ballad_hiss")
    trial_a, trial_b = start_listening(first), start_listening(second)
    assert trial_a != trial_b
    listen_both(first)
    vote(first, "right")
    assert second.evaluate("window.abTransport.trial") == trial_b  # the other listener's pair is untouched
    assert second.locator("#ab-reveal").inner_text() == ""
    listen_both(second)
    vote(second, "tie")
    rows = list(csv.DictReader(votes.open()))
    assert [r["clip_id"] for r in rows] == ["synth_pop_musicgen_like", "synth_ballad_hiss"]
    assert rows[0]["session_id"] != rows[1]["session_id"]
    assert [r["choice"] for r in rows] == ["right", "tie"]


def test_two_listeners_complete_a_study(tmp_path, browser):
    """A study built from synthetic clips, served alone; two listeners finish it side by side."""
    clips = []
    for i in range(2):
        x = add_noise(melody(4.0, seed=i), 25.0, np.random.default_rng(i))
        clips.append(str(A.write_wav(tmp_path / f"song{i}.wav", x[None].repeat(2, 0), 44100)))
    study = tmp_path / "study"
    assert main(["study", "build", *clips, "-r", "spectral_gate_hf", "-r", "mcra_wiener", "-o", str(study),
                 "--trials-per-listener", "5", "--id", "browser-study", "-q"]) == 0
    with running_app(tmp_path, RESTORELAB_STUDY=str(study)) as (url, votes):
        pages = [open_page(browser, url + query) for query in ("?listener=prolific-1", "")]
        for page in pages:
            wait_text(page, "#study-progress", "5 trials")
            assert "spectral_gate_hf" not in page.locator("body").inner_text()
            page.get_by_label("Headphones").check()
            page.get_by_label("Musician or audio hobbyist").check()
            page.click("#study-start")
        trials = [None, None]
        for step in range(5):
            if step == 2:  # the second listener reloads the page: this browser remembers who they were
                pages[1].reload()
                wait_text(pages[1], "#study-progress", "Welcome back: 2 of 5 trials done")
                assert not pages[1].locator("#question-playback").is_visible()
                pages[1].click("#study-start")
                trials[1] = None
            trials = [wait_for_pair(page, previous) for page, previous in zip(pages, trials)]
            for page in pages:
                wait_text(page, "#study-progress", f"Trial {step + 1} of 5")
                assert page.locator("#vote-tie").is_disabled()
            for key in ("1", "2"):  # both listeners listen at once, each side for the minimum
                listen_side(pages, key)
            time.sleep(1.0)
            for page in pages:
                page.click("#vote-tie")
            if step < 4:
                continue
            for page in pages:
                page.wait_for_function("(document.querySelector('#completion-code') || {innerText: ''})"
                                       ".innerText.trim().length === 10", timeout=30000)
        codes = [page.locator("#completion-code").inner_text().strip() for page in pages]
        assert "What you judged" in pages[0].locator("#ab-reveal").inner_text()  # names at the end
        rows = list(csv.DictReader(votes.open()))
    assert len(rows) == 10 and codes[0] != codes[1]
    listeners = {r["listener_id"] for r in rows}
    assert "prolific-1" in listeners and len(listeners) == 2  # the link's id, and one the page made
    assert {r["completion_code"] for r in rows} == set(codes)
    assert all(r["study_id"] == "browser-study" and "Musician" in r["questionnaire"] for r in rows)
    assert sum(bool(r["check"]) for r in rows) == 2 * 3
    out = tmp_path / "results"
    assert main(["study", "results", str(study), "--votes", str(votes), "-o", str(out)]) == 0
    table = (out / "leaderboard.csv").read_text()
    assert all(name in table for name in ("input", "spectral_gate_hf", "mcra_wiener"))


#: In the page: which slider's sound is the open reference, judged by the sound alone (the
#: decoded samples differ from the reference's by the dither only), as a careful listener would.
FIND_HIDDEN_REFERENCE = """() => {
  const t = window.abTransport, ref = t.buffers.reference.getChannelData(0);
  const distance = (side) => { const x = t.buffers[side].getChannelData(0); let d = 0;
    for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - ref[i])); return d; };
  const sides = t.sides.slice(1);
  const d = sides.map(distance);
  return sides[d.indexOf(Math.min(...d))];
}"""


def test_a_listener_completes_a_mushra_study(tmp_path, browser):
    """A two-item MUSHRA study in a real browser: sliders, the reference button, the rule that every
    sound is played before submitting, the ratings in the CSV, and the results with every condition."""
    clips = []
    for i in range(2):
        x = add_noise(melody(4.0, seed=20 + i), 30.0, np.random.default_rng(i)).astype(np.float32)
        clips.append(str(A.write_wav(tmp_path / f"item{i}.wav", np.stack([x, 0.8 * x]), 44100)))
    study = tmp_path / "study"
    assert main(["study", "build", *clips, "-r", "spectral_gate_hf", "-r", "mcra_wiener", "-o", str(study),
                 "--test", "mushra", "--preset", "hiss", "--id", "browser-mushra", "-q"]) == 0
    names = ("spectral_gate_hf", "mcra_wiener", "hidden_reference", "anchor_3.5kHz", "anchor_7kHz")
    with running_app(tmp_path, RESTORELAB_STUDY=str(study), RESTORELAB_MIN_LISTEN_S="1.0") as (url, votes):
        page = open_page(browser, url + "?listener=mushra-1")
        page.add_init_script(RECORD_STREAMS)
        page.reload()
        wait_text(page, "#study-progress", "2 pages")
        page.get_by_label("Headphones").check()
        page.get_by_label("Audio professional").check()
        page.click("#study-start")
        trial = None
        for number in (1, 2):
            trial = wait_for_pair(page, trial)
            wait_text(page, "#study-progress", f"Page {number} of 2")
            sliders = page.get_by_role("slider")
            assert sliders.count() == 6  # input, two restorers, the hidden reference, two anchors
            assert page.locator("#mushra-submit").is_disabled()
            text = page.locator("body").inner_text() + "".join(page.evaluate("window.__received"))
            assert not any(name in text for name in names)  # no condition is named before the ratings
            page.click("#mushra-reference")
            page.wait_for_function("window.abTransport.side === 'reference' && window.abTransport.playing")
            for side in page.evaluate("window.abTransport.sides"):
                page.keyboard.press("r" if side == "reference" else side)
                page.wait_for_function("side => window.abTransport.heard[side] >= 1.1 || !window.abTransport.playing",
                                       arg=side, timeout=20000)
                if page.evaluate("side => window.abTransport.heard[side] < 1.1", side):
                    page.keyboard.press(" ")  # the excerpt ran out: play it again
                    page.wait_for_function("side => window.abTransport.heard[side] >= 1.1", arg=side)
                if side == "3":
                    assert page.locator("#mushra-submit").is_disabled()  # not every sound heard yet
            page.keyboard.press(" ")
            page.wait_for_function("!document.querySelector('#mushra-submit').disabled", timeout=10000)
            hidden = page.evaluate(FIND_HIDDEN_REFERENCE)
            for k in range(1, 7):
                page.locator(f"#mushra-rating-{k}").fill("100" if str(k) == hidden else str(10 * k))
            time.sleep(0.5)
            page.click("#mushra-submit")
        page.wait_for_function("(document.querySelector('#completion-code') || {innerText: ''})"
                               ".innerText.trim().length === 10", timeout=30000)
        code = page.locator("#completion-code").inner_text().strip()
        assert "hidden_reference" in page.locator("#ab-reveal").inner_text()  # names at the end
        rows = list(csv.DictReader((tmp_path / "mushra.csv").open()))
    assert len(rows) == 12 and {r["completion_code"] for r in rows} == {code}
    assert {r["listener_id"] for r in rows} == {"mushra-1"} and "Audio professional" in rows[0]["questionnaire"]
    hidden_rows = [r for r in rows if r["condition"] == "hidden_reference"]
    assert [r["score"] for r in hidden_rows] == ["100", "100"] and {r["check_passed"] for r in hidden_rows} == {"pass"}
    for r in rows:
        if r["condition"] != "hidden_reference":
            assert r["score"] == str(10 * int(r["position"]))  # each slider's score went to its condition
        assert float(r["heard_s"]) >= 1.0 and float(r["reference_heard_s"]) >= 1.0
    out = tmp_path / "results"
    assert main(["study", "results", str(study), "--votes", str(votes), "-o", str(out)]) == 0
    table = (out / "mushra_means.csv").read_text()
    assert all(name in table for name in ("input", *names))
    assert "1 listener(s), 0 excluded" in (out / "results.md").read_text()
