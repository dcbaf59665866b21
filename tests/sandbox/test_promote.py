"""A RUN's promoted upper dir equals a fresh ``layer_dir`` extraction of the same layer from its blob."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from idpbuilder.image import Layer
from idpbuilder.sandbox import MountSpec, OciRunner, RunSpec
from idpbuilder.sandbox.extract import layer_dir
from idpbuilder.store import Store

from .conftest import layer_members, needs_root, needs_runtime

pytestmark = [needs_root, needs_runtime]

ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]

Entry = tuple[object, ...]


def sh(cmd: str, **kw: object) -> RunSpec:
    # a unique file keeps every layer new, so its cache dir can only come from this run
    return RunSpec(argv=["/bin/sh", "-c", f"echo {uuid.uuid4()} > /.u; {cmd}"], env=ENV, **kw)  # type: ignore[arg-type]


def snapshot(root: Path) -> tuple[dict[str, Entry], set[frozenset[str]]]:
    """Everything the extraction sets, per relative path, and the hardlink groups."""
    out: dict[str, Entry] = {}
    inodes: dict[int, set[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
            xattrs = {
                n: os.getxattr(p, n, follow_symlinks=False) for n in os.listxattr(p, follow_symlinks=False)
            }
            content = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            target = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
            mtime = None if whiteout else st.st_mtime_ns  # extraction leaves a whiteout's mtime at "now"
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else None
            out[rel] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                size,
                content,
                target,
                st.st_rdev,
                st.st_nlink,
                mtime,
                xattrs,
            )
            if not stat.S_ISDIR(st.st_mode):
                inodes.setdefault(st.st_ino, set()).add(rel)
    root_st = os.lstat(root)
    out["."] = (root_st.st_mode, root_st.st_uid, root_st.st_gid, os.listxattr(root))
    return out, {frozenset(g) for g in inodes.values()}


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "home2")
    yield s
    s.close()


def assert_promoted_equals_extraction(store: Store, fresh: Store, layer: Layer) -> Path:
    cached = store.path_for("layers") / layer.diff_id.hex
    assert cached.is_dir(), "the run did not promote its upper dir"
    fresh.put_file(store.blob_path(layer.descriptor.digest), expected=layer.descriptor.digest)
    extracted = layer_dir(fresh, layer)
    a, b = snapshot(cached), snapshot(extracted)
    assert sorted(a[0]) == sorted(b[0])
    for rel in a[0]:
        assert a[0][rel] == b[0][rel], rel
    assert a[1] == b[1]
    return cached


SCENARIOS = {
    "new-files": "mkdir -p /a/b && echo 1 > /a/b/c && printf x > /a/e && mkfifo /a/fifo && mkdir /a/empty",
    "symlinks-hardlinks": "mkdir /h && echo d > /h/f && ln /h/f /h/g && ln /h/f /h/i && ln -s /etc/passwd /h/l"
    " && ln -s dangling /h/m && chown -h 7:8 /h/m && echo q > /bin/q && ln /bin/q /h/q",
    "deletions": "rm /bin/ls /bin/cat && rm -rf /usr/sbin && rm /etc/group",
    "opaque": "rm -rf /root && mkdir /root && echo x > /root/new && mkdir /root/sub",
    "chmod-chown": "chmod 700 /etc && chmod 4755 /bin/busybox && chown 1:2 /etc/passwd && chmod 1777 /tmp"
    " && echo more >> /etc/hostname-like && touch -d '2001-02-03 04:05:06' /etc/passwd",
    "identical-copy-up": "cp -p /etc/passwd /tmp/keep && cat /tmp/keep > /etc/passwd"
    " && touch -r /tmp/keep /etc/passwd && rm /tmp/keep && chmod 755 /bin && touch -d '2020-01-01' /x",
    "replace-types": "rm /bin/sh.bak 2>/dev/null; rm -rf /home && echo f > /home && rm /bin/true && mkdir /bin/true",
}


@pytest.mark.parametrize("cmd", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_promoted_equals_extraction(store: Store, fresh: Store, base_layers: list[Layer], cmd: str) -> None:
    layer = OciRunner(use_overlay=True).run(store, base_layers, sh(cmd))
    assert layer is not None
    assert_promoted_equals_extraction(store, fresh, layer)


def test_mount_points_left_out(store: Store, fresh: Store, base_layers: list[Layer], tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "in").write_text("in")
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    mounts = (
        MountSpec(kind="bind", target="/src/deep", source=ctx),
        MountSpec(kind="bind", target="/etc/rw", source=ctx, readonly=False),
        MountSpec(kind="cache", target="/var/cache/x", readonly=False, id=f"p-{uuid.uuid4()}"),
        MountSpec(kind="secret", target="", source=secret, id="token"),
        MountSpec(kind="secret", target="/etc/sec", source=secret, id="t2"),
        MountSpec(kind="tmpfs", target="/scratch"),
    )
    cmd = "cat /src/deep/in /run/secrets/token > /got && echo c > /var/cache/x/c && echo w > /etc/rw/w"
    layer = OciRunner(use_overlay=True).run(store, base_layers, sh(cmd, mounts=mounts, workdir="/new/wd"))
    assert layer is not None
    assert sorted(layer_members(store, layer)) == [".u", "got", "new", "new/wd"]
    cached = assert_promoted_equals_extraction(store, fresh, layer)
    assert sorted(os.listdir(cached)) == [".u", "got", "new"]


def test_next_run_uses_promoted_dir(store: Store, base_layers: list[Layer]) -> None:
    runner = OciRunner(use_overlay=True)
    l1 = runner.run(store, base_layers, sh("mkdir /data && echo 1 > /data/a && echo 2 > /data/b"))
    assert l1 is not None
    cached = store.path_for("layers") / l1.diff_id.hex
    assert cached.is_dir()
    ino = os.stat(cached).st_ino
    out: list[str] = []
    l2 = runner.run(
        store,
        [*base_layers, l1],
        RunSpec(argv=["/bin/sh", "-c", "rm /data/a; cat /data/b; ls /data"], env=ENV),
        out.append,
    )
    assert out == ["2", "b"]
    assert l2 is not None and os.stat(cached).st_ino == ino  # reused, not extracted again
    assert sorted(layer_members(store, l2)) == ["data", "data/.wh.a"]


def test_copy_mode_does_not_promote(store: Store, base_layers: list[Layer]) -> None:
    layer = OciRunner(use_overlay=False).run(store, base_layers, sh("echo c > /c"))
    assert layer is not None
    assert not (store.path_for("layers") / layer.diff_id.hex).exists()
