"""Bad input through the real CLI: always ``Error: <one line>`` then ``Hint: <one line>``, the right exit code,
never a traceback. Usage errors (click) included."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import CliRunner
from fixtures.registry import RegistryInfo


def _error_and_hint(err: str) -> tuple[str, str]:
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [
        ln
        for ln in err.splitlines()
        if not ln.startswith(tuple("JFMASOND")) or ln.startswith(("Error", "Hint"))
    ]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    hints = [ln for ln in lines if ln.startswith("Hint: ")]
    assert len(errors) == 1 and len(hints) == 1, err
    assert err.rstrip("\n").splitlines()[-2:] == [errors[0], hints[0]], err
    return errors[0], hints[0]


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["push", "--foo", "busybox"], "No such option '--foo'", "see 'idpbuilder push --help'"),
        (["push"], "Missing argument 'IMAGE'", "see 'idpbuilder push --help'"),
        (["pull", "--platform"], "Option '--platform' requires an argument", "see 'idpbuilder pull --help'"),
        (
            ["images", "--format", "xml"],
            "'xml' is not one of 'table', 'json'",
            "see 'idpbuilder images --help'",
        ),
        (["push", "--jobs", "0", "a"], "Invalid value for '--jobs'", "see 'idpbuilder push --help'"),
        (
            ["nosuch"],
            "No such command 'nosuch'",
            "see 'idpbuilder --help' (the Go idpbuilder, which would run it, is not on PATH)",
        ),
        (
            ["--log-level", "loud", "images"],
            "Invalid value for '-l' / '--log-level'",
            "see 'idpbuilder --help'",
        ),
    ],
)
def test_usage_errors_are_one_line_and_a_hint(
    cli: CliRunner, args: list[str], message: str, hint: str
) -> None:
    code, out, err = cli.main(*args)
    assert code == 2, err
    assert out == ""
    error, h = _error_and_hint(err)
    assert message in error and "Usage:" not in err
    assert h == f"Hint: {hint}"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["push", "busybox", "127.0.0.1:1/lib/Bad:v1"], 2, "invalid image reference"),
        (["push", "busybox", "127.0.0.1:1/lib/bb:bad tag"], 2, "invalid tag 'bad tag'"),
        (["push", "no-such-image", "127.0.0.1:1/lib/bb:v1"], 2, "is not in the local store"),
        (["pull", "--platform", "garbage", "127.0.0.1:1/a:b"], 2, "invalid platform 'garbage'"),
        (["pull", "--platform", "/", "127.0.0.1:1/a:b"], 2, "invalid platform '/'"),
        (["push", "--chunk-size", "2G", "busybox", "127.0.0.1:1/a:b"], 2, "chunk size"),
        (["push", "--chunk-size", "lots", "busybox", "127.0.0.1:1/a:b"], 2, "invalid size 'lots'"),
        (["push", "--ca-file", "/nonexistent/ca.pem", "busybox", "127.0.0.1:1/a:b"], 2, "does not exist"),
        (
            ["push", "--ca-file", "/etc/passwd", "busybox", "localhost:1/a:b"],
            2,
            "cannot load CA file /etc/passwd",
        ),
    ],
)
def test_bad_values_are_one_line_and_a_hint(
    busybox_image: Any, cli: CliRunner, idp_home: Path, args: list[str], code: int, message: str
) -> None:
    busybox_image.install(idp_home)
    got, out, err = cli.main(*args)
    assert got == code, err
    assert out == ""
    error, _ = _error_and_hint(err)
    assert message in error, error


def _helper(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    p = bin_dir / f"docker-credential-{name}"
    p.write_text("#!/bin/sh\n" + script)
    p.chmod(0o755)


def test_docker_config_problems(
    registry_tls: RegistryInfo, busybox_image: Any, cli: CliRunner, tmp_path: Path
) -> None:
    busybox_image.install(cli.home)
    conf = tmp_path / "docker"
    conf.mkdir()
    bin_dir = tmp_path / "bin"
    env = {"DOCKER_CONFIG": str(conf), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    push = ("push", "--progress", "quiet", "--ca-file", str(registry_tls.ca_file), "busybox")
    dest = registry_tls.ref("errors/cfg:v1")

    (conf / "config.json").write_text('{"auths": {')
    code, _, err = cli.main(*push, dest, env=env)
    assert code == 1
    assert "config.json is not valid JSON (line 1)" in _error_and_hint(err)[0]

    (conf / "config.json").write_text(f'{{"auths": {{"{registry_tls.host}": {{"auth": "!!nope"}}}}}}')
    code, _, err = cli.main(*push, dest, env=env)
    assert code == 1
    error, hint = _error_and_hint(err)
    assert "not base64 of user:password" in error and "docker login" in hint

    # a helper that breaks (not the ordinary "credentials not found"): a warning, its output never shown
    _helper(bin_dir, "broken", "echo 'helper exploded: secret=hunter2' >&2; exit 3\n")
    (conf / "config.json").write_text('{"credsStore": "broken"}')
    code, _, err = cli.main(*push, dest, env=env)
    assert code == 1
    assert "credential helper docker-credential-broken failed" in err and "hunter2" not in err
    assert "requires authentication" in _error_and_hint(err)[0]

    _helper(bin_dir, "miss", "echo 'credentials not found in native keychain'; exit 1\n")
    (conf / "config.json").write_text('{"credsStore": "miss"}')
    code, _, err = cli.main(*push, dest, env=env)
    assert code == 1 and "WARN" not in err

    _helper(bin_dir, "list", "echo '[1, 2]'\n")
    (conf / "config.json").write_text('{"credsStore": "list"}')
    code, _, err = cli.main(*push, dest, env=env)
    assert code == 1
    assert "docker-credential-list returned invalid JSON" in err
    _error_and_hint(err)

    _helper(
        bin_dir, "good", f'echo \'{{"Username": "{registry_tls.username}", "Secret": "\'"$SECRET"\'"}}\'\n'
    )
    (conf / "config.json").write_text('{"credsStore": "good"}')
    code, out, err = cli.main(*push, dest, env={**env, "SECRET": registry_tls.password or ""})
    assert code == 0, err
    assert out.startswith(dest + "@sha256:")


def test_a_named_kubeconfig_that_is_garbage_is_a_warning(
    registry_plain: RegistryInfo, busybox_image: Any, cli: CliRunner, tmp_path: Path
) -> None:
    busybox_image.install(cli.home)
    kc = tmp_path / "kubeconfig"
    kc.write_text("garbage: [")
    code, out, err = cli.main(
        "push", "--progress", "quiet", "--kubeconfig", str(kc), "busybox", registry_plain.ref("errors/kc:v1")
    )
    assert code == 0, err
    assert f"WARN not using the idpbuilder cluster: reading kubeconfig {kc}" in err
    # the default kubeconfig (none here) stays quiet
    code, out, err = cli.main("push", "--progress", "quiet", "busybox", registry_plain.ref("errors/kc:v2"))
    assert code == 0 and "WARN" not in err


def test_an_error_raised_without_a_hint_still_gets_one(cli: CliRunner, idp_home: Path) -> None:
    assert cli.main("images").code == 0
    (idp_home / "store" / "index.json").write_text("[]")
    code, out, err = cli.main("images")
    assert code == 1 and out == ""
    error, hint = _error_and_hint(err)
    assert "is damaged: it is a list, not a JSON object" in error
    assert "restore it" in hint and "move it aside" in hint
