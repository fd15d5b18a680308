"""Start ``app.py`` on a free localhost port for the measuring scripts (not for tests: see tests/conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update",
                 "--autoplay-policy=no-user-gesture-required"]


class AppDidNotStart(RuntimeError):
    """The app exited, or did not answer, while starting."""


@contextmanager
def local_app(log=subprocess.DEVNULL, timeout_s: float = 120.0, root: Path = ROOT, **env: str):
    """Yield ``(process, url)`` of the app started with extra environment variables; stop it after.

    ``log`` takes the app's output (a file opened for writing); ``root`` is the checkout whose
    ``app.py`` (and packages) run.

    Raises:
        AppDidNotStart: it exited, or did not answer within ``timeout_s``.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environment = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1",
                       HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", **env)
    process = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=environment, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if process.poll() is not None:
                    raise AppDidNotStart("the app exited while starting") from None
                if time.monotonic() > deadline:
                    raise AppDidNotStart(f"the app did not answer within {timeout_s:g} s") from None
                time.sleep(0.5)
        yield process, url
    finally:
        process.terminate()
        process.wait(timeout=30)
