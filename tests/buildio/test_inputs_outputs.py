"""``build -`` / ``-f -`` / a context tar on stdin, ``-o`` outputs (local, tar, oci, docker), ``--pull``,
``--build-context`` and ``--ssh``, through the real CLI."""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from fixtures.images import BUSYBOX_REF
from idpbuilder.store.layout import Store

from .conftest import ok, run_bytes

BASE = BUSYBOX_REF


def _ctx(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k, v in files.items():
        (root / k).parent.mkdir(parents=True, exist_ok=True)
        (root / k).write_text(v)
    return root


def _rootfs(home: Path, ref: str, dest: Path) -> Path:
    subprocess.run(["umoci", "raw", "unpack", "--image", f"{home / 'store'}:{ref}", str(dest)],
                   check=True, capture_output=True)  # fmt: skip
    return dest


def _tar(files: dict[str, str], *, gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if gz else buf.getvalue()


def test_dockerfile_on_stdin_without_context(bb_home: Path, tmp_path: Path) -> None:
    df = f"FROM {BASE}\nRUN echo from-stdin > /marker\n"
    code, _, err = run_bytes(bb_home, "build", "-t", "localhost/stdin:1", "-", stdin=df.encode())
    assert code == 0, err
    assert (_rootfs(bb_home, "localhost/stdin:1", tmp_path / "r") / "marker").read_text() == "from-stdin\n"
    # no context: COPY has nothing to copy from
    code, _, err = run_bytes(bb_home, "build", "-", stdin=f"FROM {BASE}\nCOPY x /x\n".encode())
    assert code == 1 and "x" in err and "Hint:" in err, err


def test_dockerfile_on_stdin_with_context_dir(bb_home: Path, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path / "ctx", {"app.txt": "app\n", "Dockerfile": "FROM scratch\nCOPY nothing /\n"})
    df = f"FROM {BASE}\nCOPY app.txt /app.txt\n"
    code, _, err = run_bytes(
        bb_home, "build", "-f", "-", "-t", "localhost/fdash:1", str(ctx), stdin=df.encode()
    )
    assert code == 0, err
    assert (_rootfs(bb_home, "localhost/fdash:1", tmp_path / "r") / "app.txt").read_text() == "app\n"
    # stdin can be only one of them
    code, _, err = run_bytes(bb_home, "build", "-f", "-", "-", stdin=df.encode())
    assert code == 2 and "Hint:" in err, err  # a bad command line


@pytest.mark.parametrize("gz", [False, True])
def test_context_tar_on_stdin(bb_home: Path, tmp_path: Path, gz: bool) -> None:
    data = _tar({"Dockerfile": f"FROM {BASE}\nCOPY src/ /src/\n", "src/a.txt": "A\n"}, gz=gz)
    code, _, err = run_bytes(bb_home, "build", "-t", "localhost/tarctx:1", "-", stdin=data)
    assert code == 0, err
    assert (_rootfs(bb_home, "localhost/tarctx:1", tmp_path / "r") / "src/a.txt").read_text() == "A\n"
    # -f names the Dockerfile inside the tar
    data = _tar({"docker/Build.df": f"FROM {BASE}\nCOPY a.txt /b.txt\n", "a.txt": "B\n"})
    code, _, err = run_bytes(
        bb_home, "build", "-f", "docker/Build.df", "-t", "localhost/tarctx:2", "-", stdin=data
    )
    assert code == 0, err
    # symlinks keep their targets (COPY copies the link itself), as from a context directory
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        df = f"FROM {BASE}\nCOPY . /ctx/\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(df)
        t.addfile(info, io.BytesIO(df))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    code, _, err = run_bytes(bb_home, "build", "-t", "localhost/tarctx:3", "-", stdin=buf.getvalue())
    assert code == 0, err
    assert os.readlink(_rootfs(bb_home, "localhost/tarctx:3", tmp_path / "r3") / "ctx/link") == "/etc/passwd"
    # a hostile member is refused with a hint
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    code, _, err = run_bytes(bb_home, "build", "-", stdin=buf.getvalue())
    assert code == 1 and "unsafe" in err and "Hint:" in err, err
    assert not (bb_home.parent / "escape").exists()
    # so is a hard link to a file outside the context (COPY would read the host file)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        hl = tarfile.TarInfo("passwd")
        hl.type, hl.linkname = tarfile.LNKTYPE, "../../../../../../etc/passwd"
        t.addfile(hl)
    code, _, err = run_bytes(bb_home, "build", "-", stdin=buf.getvalue())
    assert code == 1 and "unsafe" in err and "Hint:" in err, err


def test_outputs_local_tar_oci_docker(bb_home: Path, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path / "ctx", {
        "Dockerfile": f"FROM {BASE}\nRUN mkdir -p /out && echo built > /out/file && rm /bin/ls\n",
    })  # fmt: skip
    local, bare = tmp_path / "local", tmp_path / "bare"
    rootfs_tar, oci, dock = tmp_path / "fs.tar", tmp_path / "img.oci.tar", tmp_path / "img.docker.tar"
    r = run_bytes(bb_home, "build", "-t", "localhost/outs:1", "-o", f"type=local,dest={local}", "-o", str(bare),
                  "--output", f"type=tar,dest={rootfs_tar}", "-o", f"type=oci,dest={oci}",
                  "-o", f"type=docker,dest={dock}", str(ctx))  # fmt: skip
    assert r[0] == 0, r[2]
    for d in (local, bare):
        assert (d / "out/file").read_text() == "built\n"
        assert (d / "bin/busybox").is_file() and not (d / "bin/ls").exists()  # the whiteout applied
    with tarfile.open(rootfs_tar) as t:
        names = set(t.getnames())
    assert "out/file" in names and "bin/busybox" in names and "bin/ls" not in names
    for path, kind in ((oci, "oci-archive"), (dock, "docker-archive")):
        out = subprocess.run(
            ["skopeo", "inspect", f"{kind}:{path}"], capture_output=True, text=True, check=True
        )
        assert len(json.loads(out.stdout)["Layers"]) == 2, kind
    # tar to stdout
    code, out_bytes, err = run_bytes(bb_home, "build", "-q", "-o", "type=tar,dest=-", str(ctx))
    assert code == 0, err
    with tarfile.open(fileobj=io.BytesIO(out_bytes)) as t:
        assert "out/file" in t.getnames()
    # bad specs: one line + hint, exit 2 (a bad command line)
    for bad in ("type=registry,ref=x", "type=nope,dest=x", "type=tar", "type=local,dest=-"):
        code, _, err = run_bytes(bb_home, "build", "-o", bad, str(ctx))
        assert code == 2 and "Hint:" in err, (bad, err)


def test_pull_re_resolves_the_base(bb_home: Path, tmp_path: Path, registry_plain: Any) -> None:
    from fixtures.registry import copy_to_registry

    copy_to_registry(f"oci:{bb_home / 'store'}:{BASE}", registry_plain, "pulltest/base:1")
    base = f"{registry_plain.host}/pulltest/base:1"
    # the store holds another image under the same name
    ctx = _ctx(tmp_path / "other", {"Dockerfile": f"FROM {BASE}\nRUN echo stale > /stale\n"})
    ok(_cli(bb_home, "build", "-q", "-t", base, str(ctx)))
    ctx = _ctx(
        tmp_path / "ctx", {"Dockerfile": f"FROM {base}\nRUN ls /stale 2>/dev/null || echo fresh > /state\n"}
    )
    ok(_cli(bb_home, "build", "-q", "-t", "localhost/nopull:1", str(ctx)))
    assert not (_rootfs(bb_home, "localhost/nopull:1", tmp_path / "a") / "state").exists()
    ok(_cli(bb_home, "build", "-q", "--pull", "-t", "localhost/pull:1", str(ctx)))
    assert (_rootfs(bb_home, "localhost/pull:1", tmp_path / "b") / "state").read_text() == "fresh\n"


def _cli(home: Path, *args: str) -> Any:
    from fixtures.cli import run_cli

    return run_cli(args, home=home)


def test_build_context_dir_and_docker_image(bb_home: Path, tmp_path: Path) -> None:
    lib = _ctx(tmp_path / "lib", {"share/lib.txt": "lib\n"})
    ctx = _ctx(tmp_path / "ctx", {
        "Dockerfile": "FROM tools AS t\n"
                      "FROM libs AS l\n"
                      f"FROM {BASE}\n"
                      "COPY --from=libs /share/lib.txt /lib.txt\n"
                      "COPY --from=l /share/lib.txt /lib2.txt\n"
                      "COPY --from=t /bin/busybox /bb\n",
    })  # fmt: skip
    r = _cli(bb_home, "build", "-t", "localhost/named:1", "--build-context", f"libs={lib}",
             "--build-context", f"tools=docker-image://{BASE}", str(ctx))  # fmt: skip
    ok(r)
    root = _rootfs(bb_home, "localhost/named:1", tmp_path / "r")
    assert (root / "lib.txt").read_text() == "lib\n" and (root / "lib2.txt").read_text() == "lib\n"
    assert (root / "bb").stat().st_size == (root / "bin/busybox").stat().st_size
    # same inputs: fully cached
    r = ok(_cli(bb_home, "build", "--progress", "plain", "-t", "localhost/named:1", "--build-context",
                f"libs={lib}", "--build-context", f"tools=docker-image://{BASE}", str(ctx)))  # fmt: skip
    assert "(3/6 steps cached)" in r.stderr, r.stderr
    for bad, code in (
        ("noequals", 2),
        ("x=https://example.com/ctx.git", 2),
        (f"x={tmp_path / 'missing'}", 2),
    ):
        r = _cli(bb_home, "build", "--build-context", bad, str(ctx))
        assert r.code == code and "Hint:" in r.stderr, (bad, r.stderr)


def test_ssh_agent_socket_is_forwarded_not_stored(bb_home: Path, tmp_path: Path) -> None:
    sock_path = tmp_path / "agent.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)
    try:
        ctx = _ctx(tmp_path / "ctx", {
            "Dockerfile": f"FROM {BASE}\n"
                          "RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock\n",
        })  # fmt: skip
        r = ok(_cli(bb_home, "build", "-t", "localhost/ssh:1", "--ssh", f"default={sock_path}", str(ctx)))
        root = _rootfs(bb_home, "localhost/ssh:1", tmp_path / "r")
        assert (root / "sock").read_text() == "/run/buildkit/ssh_agent.0\n"
        assert not (root / "run/buildkit/ssh_agent.0").exists()
        # the socket's path is not part of the cache key
        other = tmp_path / "other.sock"
        srv2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv2.bind(str(other))
        try:
            r = ok(_cli(bb_home, "build", "--ssh", f"default={other}", "-t", "localhost/ssh:1", str(ctx)))
            assert "(1/2 steps cached)" in r.stderr, r.stderr
        finally:
            srv2.close()
        # ssh mounts are optional unless required=true
        ctx2 = _ctx(
            tmp_path / "ctx2", {"Dockerfile": f"FROM {BASE}\nRUN --mount=type=ssh,required=true true\n"}
        )
        r = _cli(bb_home, "build", str(ctx2))
        assert r.code == 1 and "--ssh default" in r.stderr, r.stderr
        r = _cli(bb_home, "build", "--ssh", f"default={ctx / 'Dockerfile'}", str(ctx))
        assert r.code == 2 and "not a socket" in r.stderr and "Hint:" in r.stderr, r.stderr
    finally:
        srv.close()


def test_result_reports_layers_and_cache_entries(bb_home: Path, tmp_path: Path) -> None:
    from idpbuilder.builder import Builder, BuildOptions

    ctx = _ctx(tmp_path / "ctx", {"Dockerfile": f"FROM {BASE} AS b\nENV A=1\nCOPY f /f\nFROM b\nLABEL x=y\n",
                                  "f": "x"})  # fmt: skip
    store = Store.open(bb_home)
    try:
        res = Builder(store, BuildOptions(context=ctx)).build()
        assert len(res.layers) == 2 and res.final_stages == frozenset({0, 1})
        assert [bool(e.record.get("layer")) for e in res.cache_entries] == [False, True, False]
        assert res.cache_entries[1].parent != res.cache_entries[1].key
    finally:
        store.close()
