"""The app through its HTTP API, as a script (or an adversary) would use it: ``gradio_client`` and raw HTTP.

The vote endpoint refuses a vote until both sides' audio was fetched and the
listening minimum has passed on the server's clock; oversized or overlong
inputs get their clear error and the app keeps serving everyone else.
"""

from __future__ import annotations

import csv
import json
import re
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from conftest import melody, running_app

gradio_client = pytest.importorskip("gradio_client")
from gradio_client.exceptions import AppError  # noqa: E402

pytestmark = pytest.mark.slow
MIN_LISTEN_S = 3.0
MAX_UPLOAD_MB = 5
EXAMPLE = "Synth pop, MusicGen-like degradation"
KNOBS = [0.6, 1.2, -18.0, 0.8, -6.0]  # values inside every main knob's range


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("api"), RESTORELAB_MAX_UPLOAD_MB=str(MAX_UPLOAD_MB)) as started:
        yield started


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def listening(client):
    """A session with a comparison and a pair: returns the ticket's fields."""
    client.predict(EXAMPLE, api_name="/on_example")
    client.predict(["spectral_gate_hf", "bandwidth_extension_dsp"], False, *KNOBS, api_name="/on_compare")
    ticket_html, info, reveal = client.predict(api_name="/on_start_listening")
    assert "Pair 1" in info and reveal == ""
    return dict(re.findall(r'data-(\w+)="([^"]*)"', ticket_html))


def report(ticket, seconds):
    return json.dumps({"trial": ticket["trial"], "left_s": seconds, "right_s": seconds})


def test_a_vote_needs_the_audio_fetched_and_the_time_spent(server):
    url, votes = server
    client = gradio_client.Client(url, verbose=False)
    ticket = listening(client)
    assert not any(name in json.dumps(ticket) for name in ("input", "spectral_gate_hf", "bandwidth"))
    # Claiming to have listened is not enough: the audio was never fetched.
    with pytest.raises(AppError, match="left side's audio was never loaded"):
        client.predict(report(ticket, MIN_LISTEN_S), api_name="/on_vote")
    status, left, headers = get(url + ticket["left"])
    assert status == 200 and left[:4] == b"RIFF" and headers["Content-Type"] == "audio/wav"
    assert headers["Cache-Control"] == "no-store" and "ETag" not in headers and "Last-Modified" not in headers
    with pytest.raises(AppError, match="right side's audio was never loaded"):
        client.predict(report(ticket, MIN_LISTEN_S), api_name="/on_vote")
    status, right, _ = get(url + ticket["right"])
    assert status == 200 and len(right) == len(left) and right != left
    assert get(url + ticket["left"])[0] == 404  # a link works once
    # Fetched, but the server's clock says the minimum listening cannot have happened yet.
    with pytest.raises(AppError, match="Voting opens once each side has played for 3.0 s"):
        client.predict(report(ticket, MIN_LISTEN_S), api_name="/on_vote")
    with pytest.raises(AppError, match="Listen to each side for at least 3.0 s"):
        client.predict(report(ticket, 1.0), api_name="/on_vote")
    with pytest.raises(AppError, match="did not report what was heard"):
        client.predict("{not json", api_name="/on_vote")
    assert not votes.exists() or votes.read_text().count("\n") <= 1
    time.sleep(2 * MIN_LISTEN_S + 1.5)
    with pytest.raises(AppError, match="reports 200.0 s of listening"):
        client.predict(report(ticket, 100.0), api_name="/on_vote")
    next_html, info, reveal = client.predict(report(ticket, MIN_LISTEN_S + 0.1), api_name="/on_vote_2")
    assert "Pair 1, just judged" in reveal and "Pair 2" in info and ticket["trial"] not in next_html
    (row,) = list(csv.DictReader(votes.open()))
    assert row["choice"] == "tie" and float(row["listened_left_s"]) == pytest.approx(MIN_LISTEN_S + 0.1)
    assert float(row["decision_s"]) >= 2 * MIN_LISTEN_S and row["flags"] == ""


def test_another_session_cannot_vote_on_a_pair_it_was_not_given(server):
    url, _ = server
    first, second = gradio_client.Client(url, verbose=False), gradio_client.Client(url, verbose=False)
    ticket = listening(first)
    listening(second)
    for side in ("left", "right"):
        assert get(url + ticket[side])[0] == 200
    time.sleep(2 * MIN_LISTEN_S + 1.5)
    with pytest.raises(AppError, match="already been judged or replaced"):
        second.predict(report(ticket, MIN_LISTEN_S), api_name="/on_vote")


def test_oversized_and_overlong_inputs_get_clear_errors_and_others_are_still_served(server, tmp_path):
    url, _ = server
    client = gradio_client.Client(url, verbose=False)
    with pytest.raises(AppError, match="The prompt is 150000 characters long; the limit is 500"):
        client.predict("tiny-random", "lofi " * 30_000, 4, 0, 3.0, None, api_name="/on_generate")

    long = tmp_path / "long_clip.wav"
    sf.write(long, melody(31.0, sample_rate=8000), 8000)  # small file, too long a clip
    with pytest.raises(AppError, match=r"long_clip.wav: is too long: 31.0 s; the limit is 30 s here") as caught:
        client.predict(gradio_client.handle_file(str(long)), api_name="/on_upload")
    assert "/tmp" not in str(caught.value)

    huge = tmp_path / "huge.wav"
    sf.write(huge, np.zeros(((MAX_UPLOAD_MB + 1) * 1_000_000 // 8 + 1000, 2), dtype=np.float32), 44100,
             subtype="FLOAT")
    boundary = "restorelab-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"huge.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + huge.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError, match="413") as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413

    other = gradio_client.Client(url, verbose=False)  # the app still serves everyone
    clip_state, info = other.predict(EXAMPLE, api_name="/on_example")
    assert "synth_pop_musicgen_like" in info
