"""Each divergence from ``docker build`` found by the docker oracle, built with docker and with idpbuilder
from the same small context and compared exactly (config fields and flattened filesystem)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from fixtures.docker import DockerBases

Files = dict[str, str | bytes]


def _tar(*members: tuple[str, str, str | bytes], mode: int = 0o644) -> bytes:
    """A tar of (name, kind, content-or-link-target) members; kind: file | dir | symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(data), 0o755
                tf.addfile(info)
            else:
                raw = data if isinstance(data, bytes) else data.encode()
                info.size, info.mode = len(raw), mode
                tf.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


CASES: dict[str, tuple[str, Files]] = {
    # WorkingDir: empty unless the base or the Dockerfile sets one; "/" only for FROM scratch
    "workdir-unset": ("FROM busybox\nRUN echo hi > /hi\n", {}),
    "workdir-scratch": ("FROM scratch\nCOPY f /f\n", {"f": "x"}),
    "workdir-trailing-slash": ("FROM busybox\nWORKDIR /tmp/\nRUN pwd > /pwd\n", {}),
    "workdir-inherited": (
        "FROM busybox AS base\nWORKDIR /app/\nFROM base\nRUN pwd > /pwd\nFROM scratch AS s\nWORKDIR rel\n",
        {},
    ),
    # ADD of a local tar over existing paths of another type: docker replaces them
    "add-tar-replaces-other-types": (
        "FROM busybox\nRUN mkdir -p /t/emptydir /t/fulldir/sub && echo x > /t/fulldir/sub/f && echo f > /t/file\n"
        "ADD t.tar /t/\n",
        {
            "t.tar": _tar(
                ("emptydir", "file", "now a file\n"),
                ("fulldir", "file", "now a file too\n"),
                ("file", "dir", ""),
                ("file/inside", "file", "in the new dir\n"),
            )
        },
    ),
    # ADD of a tar with a symlink climbing out, then entries under it: resolved inside the destination
    "add-tar-symlink-climbs-out": (
        "FROM busybox\nRUN mkdir -p /dest/sub\nADD t.tar /dest/sub/\n",
        {
            "t.tar": _tar(
                ("link", "symlink", ".."),
                ("link/escaped.txt", "file", "where am I\n"),
                ("up", "symlink", "../../.."),
                ("up/etc/escaped2.txt", "file", "and me\n"),
            )
        },
    ),
    # symlinks carry mode 0777 in our layers (the tar said 0755)
    "add-tar-symlink-mode": (
        "FROM busybox\nADD t.tar /x/\nRUN ln -s /x/target /made-by-run\n",
        {"t.tar": _tar(("target", "file", "t\n"), ("l", "symlink", "target"))},
    ),
    # escaped wildcard characters matching exactly one file: the destination is that file
    "copy-escaped-wildcard": (
        "FROM busybox\nCOPY dir\\?x/file.txt /dir/file.txt\nCOPY dir\\[a]/f.txt /single\n",
        {"dir?x/file.txt": "q\n", "dir[a]/f.txt": "b\n"},
    ),
    # ** in a COPY source is filepath.Match's * (one path segment)
    "copy-doublestar-one-segment": (
        "FROM busybox\nCOPY src/**/*test/*.txt /out/\n",
        {"src/a/unittest/one.txt": "1\n", "src/b/mytest/two.txt": "2\n", "src/a/b/deeptest/no.txt": "3\n"},
    ),
    # wildcards matching nothing next to ones that match
    "copy-wildcard-partial-match": (
        "FROM busybox\nCOPY a* missing* /dest/\nCOPY nomatch* file.txt /single\n",
        {"a1.txt": "a1\n", "a2.txt": "a2\n", "file.txt": "f\n"},
    ),
    # several sources without a trailing slash: copied in turn (the last file wins; a directory's
    # contents make the destination a directory, and a later file goes into it); nothing matched at all
    "copy-several-sources-no-slash": (
        "FROM busybox\nCOPY a1.txt a2.txt /last\nCOPY d f /into\nCOPY nomatch* /never/\n",
        {"a1.txt": "1\n", "a2.txt": "2\n", "d/x": "x\n", "f": "f\n"},
    ),
    # directories made by COPY, WORKDIR and RUN inside a setgid directory inherit the setgid bit
    "setgid-parent": (
        "FROM busybox\nRUN mkdir -p /h && chmod 2755 /h\nCOPY d/ /h/d/\nCOPY f /h/new/deeper/f\n"
        "WORKDIR /h/w\nRUN mkdir /h/r\n",
        {"d/x": "1\n", "d/sub/y": "2\n", "f": "f"},
    ),
    # a stage FROM an earlier stage inherits the build args in scope there
    "stage-inherits-args": (
        'FROM busybox AS base\nARG NAME=app\nFROM base AS dev\nARG NAME="$NAME-dev"\nRUN echo $NAME > /dev-name\n'
        "FROM dev\nARG NAME\nRUN echo ${NAME:-unset} > /final-name\n",
        {},
    ),
    # .dockerignore exceptions starting with a wildcard bring nothing back under an excluded directory
    "dockerignore-wildcard-exceptions": (
        "FROM busybox\nCOPY . /ctx/\n",
        {
            ".dockerignore": "**/cache\n!**/keep\nvendor\n!*/keep*\n!vendor/modules.txt\nlogs\n!logs/*.keep\n",
            "web/cache/blob": "b",
            "web/cache/keep": "k",
            "web/keep": "k",
            "vendor/modules.txt": "m",
            "vendor/x/keep.go": "k",
            "logs/a.log": "l",
            "logs/b.keep": "k",
        },
    ),
}


def _write(root: Path, files: Files) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_image_as_docker(docker_bases: DockerBases, tmp_path: Path, name: str) -> None:
    dockerfile, files = CASES[name]
    ctx = tmp_path / "ctx"
    _write(ctx, {"Dockerfile": dockerfile, **files})
    result = docker_bases.compare(ctx, name=name)
    assert result.docker.ok, f"docker failed: {result.docker.error}"
    assert result.ours.ok, f"idpbuilder failed: {result.ours.error}"
    assert result.same, result.text()


def test_compare_command_prints_differences(tmp_path: Path) -> None:
    """``python -m tools.conformance --compare DIR`` starts its own daemon and prints every difference."""
    import subprocess
    import sys

    from fixtures.docker import docker_unavailable

    why = docker_unavailable()
    if why is not None:
        pytest.skip(why)
    ctx = tmp_path / "ctx"
    _write(ctx, {"Dockerfile": "FROM busybox\nARG V=1\nRUN echo $V > /v\n"})
    repo = Path(__file__).resolve().parents[2]
    cmd = [
        sys.executable,
        "-m",
        "tools.conformance",
        "--compare",
        str(ctx),
        "--work-dir",
        str(tmp_path / "w"),
    ]
    same = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert same.returncode == 0 and "same: identical config and filesystem" in same.stdout, (
        same.stdout + same.stderr
    )
    differ = subprocess.run(
        [*cmd, "--build-arg", "V=2"], cwd=repo, capture_output=True, text=True, timeout=600
    )
    assert differ.returncode == 0, differ.stdout  # the build arg reaches both builders alike
