"""A registry URL carrying credentials or a token (``--registry``, ``IDPBUILDER_REGISTRY_URL``) is refused without
echoing them, at any log level (passwords hold shell/URL punctuation: '#', '/', '?', '@', ':')."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import CliRunner

PASSWORD = "pw#X/y?z@w:[]{}~'-distinct"
TOKEN = "tok-distinct-7c1e"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"https://giteaAdmin:{PASSWORD}@127.0.0.1:5000", "must not carry credentials"),
        (f"giteaAdmin:{PASSWORD}@127.0.0.1:5000", "must not carry credentials"),
        (f"https://127.0.0.1:99999999/?token={TOKEN}", "invalid registry URL"),
        (f"127.0.0.1:5000/?access_token={TOKEN}", "invalid registry URL"),
        (f"ftp://127.0.0.1/?token={TOKEN}", "registry URL"),
    ],
)
@pytest.mark.parametrize("via", ["flag", "env"])
def test_registry_url_secrets_are_never_printed(
    busybox_image: Any, cli: CliRunner, idp_home: Path, url: str, message: str, via: str
) -> None:
    busybox_image.install(idp_home)
    args = ["--log-level", "debug", "push", "busybox", "app:v1"]
    env = {}
    if via == "flag":
        args += ["--registry", url]
    else:
        env["IDPBUILDER_REGISTRY_URL"] = url
    code, out, err = cli.main(*args, env=env)
    assert code == 2, err  # a bad --registry value is a bad command line
    assert PASSWORD not in out + err and TOKEN not in out + err
    for fragment in ("[]{}~'", "y?z@w"):
        assert fragment not in err
    assert message in err
