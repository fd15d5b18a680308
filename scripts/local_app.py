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


@contextmanager
def local_app(**env: str):
    """Yield ``(process, url)`` of the app started with extra environment variables; stop it after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environment = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1",
                       HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", **env)
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    raise SystemExit("the app exited while starting")
                time.sleep(0.5)
        yield process, url
    finally:
        process.terminate()
        process.wait(timeout=30)
