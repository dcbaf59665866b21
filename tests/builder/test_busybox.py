"""Builds on the busybox test image: --chown names from the image, COPY --from an image, destination
symlinks, RUN through the sandbox, and the result running under podman."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from idpbuilder.errors import BuildError

BuildFn = Callable[..., Any]


def _owner(p: Path) -> tuple[int, int]:
    st = os.lstat(p)
    return st.st_uid, st.st_gid


def test_chown_names_from_image(busybox_home: Path, build: BuildFn, tmp_path: Path) -> None:
    b = build(
        """FROM busybox
ARG group
ENV owner=1000
COPY --chown=daemon foo /
COPY --chown=1000:nobody bar /baz
COPY --chown=${owner}:${group} foo /foobis
COPY --chown=7 foo /seven
""",
        {"foo": "f", "bar/sub": "s"},
        build_args={"group": "nobody"},
    )
    root = b.unpack(tmp_path / "u")
    assert _owner(root / "foo") == (1, 1)
    assert _owner(root / "baz/sub") == (1000, 65534)
    assert _owner(root / "foobis") == (1000, 65534)
    assert _owner(root / "seven") == (7, 7)
    assert (root / "bin/busybox").is_file()  # the base layer is still there


def test_chown_unknown_user_fails(busybox_home: Path, build: BuildFn) -> None:
    with pytest.raises(BuildError, match="unable to find user nosuchuser"):
        build("FROM busybox\nCOPY --chown=nosuchuser foo /\n", {"foo": "x"})


def test_copy_from_image_and_workdir_ignored_for_source(
    busybox_home: Path, build: BuildFn, tmp_path: Path
) -> None:
    b = build(
        "FROM scratch AS base\nWORKDIR /foo\nCOPY Dockerfile /\nFROM scratch\nCOPY --from=base Dockerfile .\n"
        "COPY --from=busybox /etc/passwd /etc/group /copied/\nCOPY --from=busybox /bin/busybox /bb\n",
        {},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "Dockerfile").is_file()
    assert "daemon" in (root / "copied/passwd").read_text()
    assert (root / "copied/group").is_file()
    assert os.access(root / "bb", os.X_OK)


def test_symlink_destination_followed_inside_rootfs(
    busybox_home: Path, build: BuildFn, tmp_path: Path
) -> None:
    ctx = tmp_path / "symctx"
    ctx.mkdir()
    with tarfile.open(ctx / "t.tar", "w") as tf:
        info = tarfile.TarInfo("symlink")
        info.type = tarfile.SYMTYPE
        info.linkname = "../tmp/symlink-target"
        tf.addfile(info)
    b = build("FROM scratch\nADD t.tar /\nCOPY foo /symlink/\n", {"foo": "content0"}, context=ctx)
    root = b.unpack(tmp_path / "u")
    assert (root / "tmp/symlink-target/foo").read_text() == "content0"
    assert os.readlink(root / "symlink") == "../tmp/symlink-target"


def test_run_and_podman(busybox_home: Path, build: BuildFn, podman: Any, tmp_path: Path) -> None:
    b = build(
        """FROM busybox
COPY --chmod=755 app.sh /app.sh
RUN echo built > /built && chown daemon /built
USER daemon
WORKDIR /work
CMD ["/app.sh"]
""",
        {"app.sh": "#!/bin/sh\necho app-ran $(cat /built) $(id -u) $(pwd)\n"},
    )
    cfg = b.config()
    assert (
        cfg["history"][-4]["created_by"]
        == "RUN /bin/sh -c echo built > /built && chown daemon /built # buildkit"
    )
    image_id = podman.pull(f"oci:{b.store}:{b.ref}")
    out = podman.run(image_id).stdout
    assert out.strip() == "app-ran built 1 /work"
