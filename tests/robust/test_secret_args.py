"""Issue #11 item 6: ARG/ENV names that say they hold a secret are warned about (BuildKit's
SecretsUsedInArgOrEnv words and exceptions), pointing to --secret; the value is never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.cli import CliRunner

VALUE = "hunter2-not-for-logs"


@pytest.mark.parametrize(
    ("name", "warned"),
    [
        ("PASSWORD", True),
        ("db_password", True),
        ("GITHUB_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("API_KEY", True),
        ("apikey", True),
        ("NPM_AUTH", True),
        ("DOCKER_CREDENTIALS", True),
        ("MY_PASSWD", True),
        ("PWORD", True),
        ("PUBLIC_KEY", False),  # BuildKit's exception
        ("MONKEY", False),  # "key" only as a whole part of the name
        ("KEYBOARD_LAYOUT", False),
        ("TOKENIZER", False),
        ("VERSION", False),
    ],
)
def test_secret_looking_names_warn(cli: CliRunner, tmp_path: Path, name: str, warned: bool) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM scratch\nARG {name}\nENV COPY_OF_{name}=${name}\nCOPY Dockerfile /\n"
    )
    code, out, err = cli.main("build", "--build-arg", f"{name}={VALUE}", "-t", "sec:1", str(ctx))
    assert code == 0, err
    assert VALUE not in out and VALUE not in err
    lines = [ln for ln in err.splitlines() if "SecretsUsedInArgOrEnv" in ln]
    if not warned:
        assert lines == [], err
        return
    assert any(f'ARG "{name}") (Dockerfile:2)' in ln for ln in lines), err
    assert any(f'ENV "COPY_OF_{name}") (Dockerfile:3)' in ln for ln in lines), err
    assert all(ln.startswith("WARN") and "--secret id=" in ln for ln in lines), err
