"""Bad input to ``idpbuilder build`` gives one ``Error:`` line naming the place (``Dockerfile:N``) and one
``Hint:`` line, the documented exit code, and never a traceback or an ``internal error``."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_error(r: Any, code: int = 1) -> tuple[str, str]:
    assert r.code == code, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error: ")]
    hints = [ln for ln in r.stderr.splitlines() if ln.startswith("Hint: ")]
    assert len(errors) == 1 and len(hints) == 1, r.stderr
    return errors[0][7:], hints[0][6:]


def _ctx(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "a").write_text("a")
    return ctx


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM 127.0.0.1:{port}/base\n", "Dockerfile:1: pulling 127.0.0.1:{port}/base: cannot connect"),
        (
            "FROM scratch AS one\nFROM scratch\nCOPY --from=127.0.0.1:{port}/nope /a /a\n",
            "Dockerfile:3: --from=127.0.0.1:{port}/nope is not an earlier stage, and as an image: pulling",
        ),
        (
            "FROM scratch\nADD http://127.0.0.1:{port}/f /f\n",
            "Dockerfile:2: downloading http://127.0.0.1:{port}/f: connection refused",
        ),
        ("FROM --platform=linux scratch\n", "Dockerfile:1: invalid platform 'linux'"),
        ("FROM scratch\nEXPOSE 99999999\n", "Dockerfile:2: invalid containerPort: 99999999"),
        ("FROM scratch\nEXPOSE 5-1\n", "Dockerfile:2: invalid range specified for containerPort: 5-1"),
        ("FROM scratch\nCOPY [ /a\n", "Dockerfile:2: syntax error in pattern '['"),  # a hint all the same
    ],
    ids=[
        "from-unreachable",
        "copy-from-unknown",
        "add-unreachable-url",
        "from-bad-platform",
        "expose-too-big",
        "expose-reversed-range",
        "copy-bad-pattern",
    ],
)
def test_dockerfile_errors_name_the_line(cli: Any, tmp_path: Path, dockerfile: str, message: str) -> None:
    port = _dead_port()
    ctx = _ctx(tmp_path, dockerfile.format(port=port))
    error, hint = _one_error(cli.main("build", "--retries", "1", "-q", str(ctx)))
    assert error.startswith(message.format(port=port)), error
    if "--from" in dockerfile:
        assert hint == "stages defined before this one: one"


def test_iidfile_in_a_missing_directory_fails_before_building(cli: Any, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a /a\n")
    error, _ = _one_error(
        cli.main("build", "--iidfile", str(tmp_path / "no/such/iid"), "-t", "x:1", str(ctx)), 2
    )
    assert "its directory does not exist" in error
    assert "x:1" not in cli.main("images").stdout


def test_dockerfile_that_is_a_directory(cli: Any, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\n")
    error, hint = _one_error(cli.main("build", "-f", str(ctx), str(ctx)), 2)
    assert error.endswith("is a directory") and "-f" in hint


def test_parse_error_has_a_hint_too(cli: Any, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nRUN\n")
    error, hint = _one_error(cli.main("build", str(ctx)))
    assert error.endswith("Dockerfile:2: RUN: RUN requires at least one argument")
    assert "docs.docker.com/reference/dockerfile" in hint
