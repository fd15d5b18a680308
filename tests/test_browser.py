"""The app in a real browser: Debian's headless Chromium driven by Playwright, on localhost only.

Loads an example, compares restorers, plays both sides of a blind pair, votes,
and finds the vote in the CSV downloaded from the Results tab. Screenshots of
every tab are saved under ``test-output/screenshots/``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from restorers import output_names, restorer_class

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                                           "(scripts/install-test-deps.sh installs it)"),
]
ROOT = Path(__file__).resolve().parents[1]
#: What the Compare tab ticks by default: every restorer that can run here (offline: all but Demucs).
AVAILABLE = [name for name in output_names() if restorer_class(name).availability().available]
SHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update",
                 "--autoplay-policy=no-user-gesture-required"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    votes = tmp_path / "votes.csv"
    env = dict(os.environ, RESTORELAB_VOTES_PATH=str(votes), GRADIO_SERVER_PORT=str(port),
               GRADIO_SERVER_NAME="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    log = open(tmp_path / "server.log", "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"the app exited: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    else:
        pytest.fail("the app did not start within 120 s")
    yield url, votes
    process.terminate()
    process.wait(timeout=30)
    log.close()


def wait_text(page, selector: str, text: str, timeout_s: float = 120) -> None:
    page.wait_for_function(
        "([sel, txt]) => { const el = document.querySelector(sel); return el && el.innerText.includes(txt); }",
        arg=[selector, text], timeout=timeout_s * 1000)


def listen(page, player: str, seconds: float = 1.0) -> None:
    button = page.locator(f"{player} button.play-pause-button")
    button.click()
    time.sleep(seconds)
    button.click()


def test_compare_listen_vote_export(server):
    url, votes = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.goto(url)

        page.click("#load-example")
        wait_text(page, "#source-info", "synth_pop_musicgen_like")
        # The browser fetched and decoded the working clip: its player shows a duration (9.7 s -> "0:10").
        wait_text(page, "#source-player #duration", "0:10", timeout_s=60)
        page.screenshot(path=SHOTS / "1-source.png", full_page=True)

        page.get_by_role("tab", name="Compare").click()
        page.click("#compare")
        wait_text(page, "#compare-status", f"Compared {len(AVAILABLE)} restorer(s)")
        page.wait_for_selector("#psd .js-plotly-plot", timeout=30000)
        page.wait_for_selector("#mel img", timeout=30000)
        page.wait_for_function(  # every visible player decoded its clip
            "() => [...document.querySelectorAll('.compare-player')].filter(p => p.offsetParent)"
            ".every(p => (p.querySelector('#duration') || {}).innerText === '0:10')", timeout=60000)
        assert page.locator("#linear img").count() == 1
        assert page.locator(".compare-player").count() >= 1 + len(AVAILABLE)  # the input and each restorer
        table = page.locator("#metrics").inner_text()
        assert "input" in table and "spectral_gate_hf" in table and "bandwidth_extension_dsp" in table
        # Our shipped checkpoints run offline in the app.
        assert "unet_denoise" in table and "unet_bwe" in table
        page.screenshot(path=SHOTS / "2-compare.png", full_page=True)

        page.get_by_role("tab", name="Listen").click()
        page.click("#start-listening")
        wait_text(page, "#trial-info", "Pair 1")
        assert page.locator("#vote-left").is_disabled()
        # The A/B transport: play the left side, switch to the right by key at the same position.
        page.click("#ab-toggle")
        page.wait_for_function("window.abTransport.playing && window.abTransport.audio.left.currentTime > 1.0",
                               timeout=30000)
        page.keyboard.press("2")
        switched_at = page.evaluate("window.abTransport.audio.right.currentTime")
        left_at = page.evaluate("window.abTransport.audio.left.currentTime")
        assert page.evaluate("window.abTransport.side") == "right"
        assert abs(switched_at - left_at) < 0.1 and switched_at > 1.0
        page.wait_for_function("!document.querySelector('#vote-left').disabled", timeout=30000)
        page.keyboard.press(" ")
        assert page.evaluate("window.abTransport.playing") is False
        listen(page, "#left-player")  # the plain players count too
        page.screenshot(path=SHOTS / "3-listen.png", full_page=True)
        page.click("#vote-left")
        wait_text(page, "#reveal", "Left was")
        revealed = page.locator("#reveal").inner_text()
        wait_text(page, "#trial-info", "Pair 2")

        page.get_by_role("tab", name="Results").click()
        page.click("#refresh-results")
        # The leaderboard lists the restorers of the pair just voted on, whichever the draw picked.
        names = re.search(r"Left was (\w+), right was (\w+)", revealed.replace("*", "")).groups()
        page.wait_for_function("names => names.every(n => document.querySelector('#leaderboard').innerText"
                               ".includes(n))", arg=list(names), timeout=30000)
        page.click("#export-votes")
        link = page.locator("#votes-csv a").first
        link.wait_for(timeout=30000)
        page.screenshot(path=SHOTS / "4-results.png", full_page=True)
        response = page.request.get(link.get_attribute("href"))
        assert response.ok
        rows = list(csv.DictReader(io.StringIO(response.text())))
        browser.close()

    assert len(rows) == 1
    (row,) = rows
    assert row["choice"] == "left" and row["winner"] == row["restorer_left"]
    assert f"Left was {row['restorer_left']}, right was {row['restorer_right']}" in revealed.replace("*", "")
    assert float(row["listened_left_s"]) > 0 and float(row["listened_right_s"]) > 0
    assert votes.read_text().count("\n") == 2  # the header and this vote, on the server's disk
    for name in ("1-source", "2-compare", "3-listen", "4-results"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000
