"""The case's own HTTP server (``serve.py`` on 127.0.0.1:8000) for cases that ADD from a URL."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["HTTP_PORT", "port_free", "serve"]

HTTP_PORT = 8000


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def serve(case_dir: Path) -> Iterator[None]:
    """Run the case's serve.py on 127.0.0.1:8000 for the duration of the block."""
    if not port_free(HTTP_PORT):
        raise RuntimeError(f"port {HTTP_PORT} is busy; the case's HTTP server cannot start")
    proc = subprocess.Popen(
        [sys.executable, str(case_dir / "serve.py")],
        cwd=case_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", HTTP_PORT), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve.py did not start")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
