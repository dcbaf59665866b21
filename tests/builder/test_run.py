"""RUN through the sandbox: SHELL, ARG/ENV in the environment, heredocs, mounts, secrets, failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from idpbuilder.errors import BuildError

BuildFn = Callable[..., Any]


def test_run_env_args_heredoc_and_exec_form(busybox_home: Path, build: BuildFn, tmp_path: Path) -> None:
    b = build(
        """FROM busybox
ARG A=from-arg
ENV E=from-env
RUN echo "$A $E" > /out1
RUN ["/bin/sh", "-c", "echo exec > /out2"]
RUN <<EOT
set -e
echo "heredoc $A" > /out3
EOT
RUN cat > /out4 <<EOF
inline $E
EOF
SHELL ["/bin/sh", "-e", "-c"]
RUN echo shell-changed > /out5
""",
        {},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "out1").read_text() == "from-arg from-env\n"
    assert (root / "out2").read_text() == "exec\n"
    assert (root / "out3").read_text() == "heredoc from-arg\n"
    assert (root / "out4").read_text() == "inline from-env\n"
    assert (root / "out5").read_text() == "shell-changed\n"
    hist = [h["created_by"] for h in b.config()["history"]]
    assert 'RUN |1 A=from-arg /bin/sh -c echo "$A $E" > /out1 # buildkit' in hist
    assert "A=from-arg" not in " ".join(b.config()["config"]["Env"])


def test_run_mounts_and_secrets(busybox_home: Path, build: BuildFn, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t")
    b = build(
        """FROM busybox AS other
RUN echo from-stage > /made
FROM busybox
RUN --mount=type=bind,from=other,source=/made,target=/m cp /m /copied
RUN --mount=type=bind,source=ctxfile,target=/c cp /c /ctx-copied
RUN --mount=type=secret,id=tok,env=TOKEN printf %s "$TOKEN" | md5sum > /secret-ok
RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /secret-len
RUN --mount=type=cache,target=/cache echo cached > /cache/x && cp /cache/x /cache-seen
""",
        {"ctxfile": "context-data"},
        secrets={"tok": secret},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "copied").read_text() == "from-stage\n"
    assert (root / "ctx-copied").read_text() == "context-data"
    import hashlib

    assert (root / "secret-ok").read_text().split()[0] == hashlib.md5(b"s3cr3t").hexdigest()
    assert (root / "secret-len").read_text().strip() == "6"
    assert (root / "cache-seen").read_text() == "cached\n"
    assert not (root / "run/secrets/tok").exists()
    # the secret value never lands in the image config or history
    assert "s3cr3t" not in str(b.config())


def test_run_failure_is_a_build_error(busybox_home: Path, build: BuildFn) -> None:
    with pytest.raises(BuildError) as ei:
        build("FROM busybox\nRUN echo about-to-fail && exit 3\n", {})
    assert "3" in str(ei.value)


def test_run_cached_on_rebuild(busybox_home: Path, build: BuildFn, tmp_path: Path) -> None:
    ctx = tmp_path / "runctx"
    df = "FROM busybox\nRUN date +%s%N > /stamp\n"
    first = build(df, {}, context=ctx)
    second = build(df, {}, context=ctx)
    assert second.result.cached == 1 and second.result.image_id == first.result.image_id


def test_proxy_args_and_flattened_arg_history(busybox_home: Path, build: BuildFn, tmp_path: Path) -> None:
    b = build(
        "FROM busybox\nARG foo=bar\nARG bar=123\nARG foo=bar2\nRUN echo -n $HTTP_PROXY::$http_proxy::$foo > /out\n",
        {},
        build_args={"http_proxy": "hpvalue"},
    )
    assert (b.unpack(tmp_path / "u") / "out").read_text() == "hpvalue::hpvalue::bar2"
    hist = [h["created_by"] for h in b.config()["history"]][-4:]
    assert hist[:3] == ["ARG foo=bar", "ARG bar=123", "ARG foo=bar2"]
    assert hist[3].startswith("RUN |2 foo=bar2 bar=123 /bin/sh -c") and "hpvalue" not in hist[3]
