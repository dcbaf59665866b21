"""Issue #11 item 8: a bad command line (reference, --target, a URL as DEST) exits 2, as the README says."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.cli import CliRunner


@pytest.fixture
def built(cli: CliRunner, tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch AS first\nCOPY x /x\n")
    (ctx / "x").write_text("x")
    cli("build", "-t", "ok:1", str(ctx)).check()
    return ctx


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tag", "ok:1", "Demo:x"], "invalid image reference 'Demo:x'"),
        (["build", "-t", "Bad_Name", "{ctx}"], "invalid image reference 'Bad_Name'"),
        (["build", "--target", "nope", "{ctx}"], 'target stage "nope" could not be found'),
        (["push", "ok:1", "https://host.example/x/y:1"], "is a URL, not an image reference"),
        (["push", "--timeout", "-1", "ok:1"], "--timeout"),
    ],
)
def test_bad_command_lines_exit_2(cli: CliRunner, built: Path, args: list[str], message: str) -> None:
    code, out, err = cli(*[a.replace("{ctx}", str(built)) for a in args])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), err
    assert message in lines[0], err
