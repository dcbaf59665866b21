"""COPY semantics against BuildKit's conformance cases (scratch images, checked with skopeo and umoci)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from idpbuilder.errors import BuildError

BuildFn = Callable[..., Any]


def test_wildcards_and_directory_contents(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        """FROM scratch
COPY *.go /gofiles/
COPY f*.go foo2.go
COPY sub/* /subdest/
COPY sub/*/dir2 /subdest2/
COPY . all/
COPY sub/dir1/ subdest4/
COPY sub/dir1/. subdest5/
COPY sub/dir1 subdest6
""",
        {"foo.go": "foo-contents", "bar.go": "bar-contents", "sub/dir1/dir2/foo": "foo-contents"},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "gofiles/foo.go").read_text() == "foo-contents"
    assert (root / "gofiles/bar.go").read_text() == "bar-contents"
    assert (root / "foo2.go").read_text() == "foo-contents"
    assert (root / "subdest/dir2/foo").read_text() == "foo-contents"
    assert (root / "subdest2/foo").read_text() == "foo-contents"
    assert (root / "all/foo.go").read_text() == "foo-contents"
    for d in ("subdest4", "subdest5", "subdest6"):
        assert (root / d / "dir2/foo").read_text() == "foo-contents"


def test_trailing_slash_empty_dest_and_workdir_relative(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        """FROM scratch
COPY testfile /sample/
ENV empty=""
WORKDIR /test1
WORKDIR test2
COPY testfile $empty
COPY testfile ./bar/baz
WORKDIR /test5/test6
COPY testfile ../
COPY testfile /plain
""",
        {"testfile": "contents0"},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "sample/testfile").read_text() == "contents0"
    assert (root / "test1/test2/testfile").read_text() == "contents0"
    assert (root / "test1/test2/bar/baz").read_text() == "contents0"
    assert (root / "test5/testfile").read_text() == "contents0"
    assert (root / "plain").is_file()


def test_multiple_sources_and_empty_wildcard(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        "FROM scratch\nCOPY foo nomatch* /\nCOPY a b /multi\n", {"foo": "contents0", "a": "A", "b": "B"}
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "foo").read_text() == "contents0"
    # as docker: each source is copied in turn; without a trailing slash the last file is the destination
    assert (root / "multi").read_text() == "B"


def test_missing_source_fails(build: BuildFn) -> None:
    with pytest.raises(BuildError, match="not found"):
        build("FROM scratch\nCOPY nosuch /\n", {})
    build("FROM scratch\nCOPY nomatch* /\n", {})  # docker: a wildcard matching nothing is no error


def test_override_files_and_dirs(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        """FROM scratch AS base
COPY sub sub
COPY sub sub
COPY files/foo.go dest/foo.go
COPY files/foo.go dest/foo.go
COPY files dest
""",
        {"sub/dir1/dir2/foo": "foo-contents", "files/foo.go": "foo.go-contents"},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "sub/dir1/dir2/foo").read_text() == "foo-contents"
    assert (root / "dest/foo.go").read_text() == "foo.go-contents"


def test_symlinks_followed_at_top_kept_inside(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        """FROM scratch
COPY foo /
COPY sub/l* alllinks/
COPY link/inner /through
COPY tree /tree/
""",
        {
            "bar": "bar-contents",
            "foo": "->bar",
            "sub/subfile": "subfile-contents",
            "sub/lfile": "lfile-contents",
            "sub/baz": "baz-contents",
            "sub/l0": "->subfile",
            "sub/second": "->baz",
            "sub/l1": "->second",
            "real/inner": "inner",
            "link": "->real",
            "tree/target": "t",
            "tree/rel": "->target",
        },
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "foo").read_text() == "bar-contents" and not (root / "foo").is_symlink()
    assert (root / "alllinks/l0").read_text() == "subfile-contents"
    assert (root / "alllinks/lfile").read_text() == "lfile-contents"
    assert (root / "alllinks/l1").read_text() == "baz-contents"
    assert not (root / "alllinks/l1").is_symlink()
    assert (root / "through").read_text() == "inner"
    assert (root / "tree/rel").is_symlink() and os.readlink(root / "tree/rel") == "target"


def test_nothing_outside_the_context_is_read(build: BuildFn, tmp_path: Path) -> None:
    secret = tmp_path / "outside-secret"
    secret.write_text("TOP SECRET")
    files = {
        "abs": f"->{secret}",
        "rel": "->../outside-secret",
        "dirlink": f"->{tmp_path}",
        "ok": "fine",
    }
    # ../ is clamped to the context root: it names /outside-secret inside the context, which is absent
    with pytest.raises(BuildError, match="not found"):
        build("FROM scratch\nCOPY ../outside-secret /x\n", files)
    # symlinks pointing out are resolved inside the context root (so they do not exist)
    for src in ("abs", "rel", "dirlink/outside-secret"):
        with pytest.raises(BuildError, match="not found"):
            build(f"FROM scratch\nCOPY {src} /x\n", files)
    # copying the whole context keeps the links as links: the secret's bytes never enter the layer
    b = build("FROM scratch\nCOPY . /ctx/\n", files)
    root = b.unpack(tmp_path / "u")
    assert (root / "ctx/abs").is_symlink()
    blobs = (b.store / "blobs/sha256").iterdir()
    import gzip

    for blob in blobs:
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        assert b"TOP SECRET" not in data


def test_dockerignore_with_exception(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        "FROM scratch\nCOPY . .\n",
        {
            ".dockerignore": "ba*\nDockerfile\n!bay\n.dockerignore\n",
            "foo": "foo-contents",
            "bar": "bar-contents",
            "baz": "baz-contents",
            "bay": "bay-contents",
        },
    )
    root = b.unpack(tmp_path / "u")
    assert sorted(p.name for p in root.iterdir()) == ["bay", "foo"]
    with pytest.raises(BuildError, match="not found"):
        build("FROM scratch\nCOPY bar /\n", {".dockerignore": "bar\n", "bar": "x"})


def test_dockerfile_specific_ignore_file_wins(build: BuildFn, tmp_path: Path) -> None:
    files = {".dockerignore": "foo\n", "Dockerfile2.dockerignore": "bar\n", "foo": "f", "bar": "b"}
    b = build("FROM scratch\nCOPY . /\n", files, dockerfile_name="Dockerfile2")
    root = b.unpack(tmp_path / "u")
    assert (root / "foo").exists() and not (root / "bar").exists()


def test_chmod_octal_symbolic_and_parents(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        """FROM scratch
COPY --chmod=0644 foo /
COPY --chmod=777 bar /baz
COPY --chmod=0 foo /foobis
COPY --chmod=770 foo /parent/sub/foo
ARG mode
COPY --chmod=${mode} foo /footer
COPY --chmod=go-w foo /f1
COPY --chmod=u=rw,g=r,o=r foo /f2
COPY --chmod=a+X foo /f3
COPY --chmod=a+X dir /d3/
""",
        {"foo": "x", "bar/inner": "y", "dir/file": "z"},
        build_args={"mode": "755"},
    )
    root = b.unpack(tmp_path / "u")

    def mode(p: str) -> int:
        return stat.S_IMODE(os.lstat(root / p).st_mode)

    assert mode("foo") == 0o644
    assert mode("baz") == 0o777 and mode("baz/inner") == 0o777
    assert mode("foobis") == 0
    assert mode("parent") == 0o770 and mode("parent/sub") == 0o770
    assert mode("footer") == 0o755
    assert mode("f1") == 0o644 & ~0o022
    assert mode("f2") == 0o644
    assert mode("f3") == 0o644  # no x bit anywhere: X adds nothing for files
    assert mode("d3/file") == 0o644


@pytest.mark.parametrize("bad", ["64a", "10000"])
def test_invalid_chmod(build: BuildFn, bad: str) -> None:
    with pytest.raises(BuildError, match=f"invalid chmod parameter: '{bad}'"):
        build(f"FROM scratch\nCOPY --chmod={bad} foo /\n", {"foo": "x"})


def test_parents(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        """FROM scratch
COPY --parents foo1/foo2/bar /
WORKDIR /test
COPY --parents foo1/foo2/ba* .
COPY --parents ./a/./b/c /pivot/
""",
        {"foo1/foo2/bar": "testing", "foo1/foo2/baz": "testing2", "a/b/c/d": "deep"},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "foo1/foo2/bar").read_text() == "testing"
    assert (root / "test/foo1/foo2/bar").read_text() == "testing"
    assert (root / "test/foo1/foo2/baz").read_text() == "testing2"
    assert (root / "pivot/b/c/d").read_text() == "deep"
    assert not (root / "pivot/a").exists()


def test_exclude_patterns(build: BuildFn, tmp_path: Path) -> None:
    files = {
        "dir1/file-101.png": "1",
        "dir1/file-102.txt": "3",
        "dir1/file-103.jpeg": "4",
        "dir2/file-201.pdf": "6",
        "dir2/file-202.jpeg": "7",
        "dir2/file-203.png": "8",
        "dir3/file-301.mp3": "9",
        "dir3/file-302.mpeg": "10",
        "dir4/file-401.txt": "11",
        "dir4/file-402.txt": "->file-401.txt",
        "dir4/file-403.txt": "->file-404.txt",
    }
    b = build(
        """FROM scratch as builder1
COPY --exclude=*/*.png --exclude=*/*.jpeg . /1
FROM scratch as builder3
ADD --exclude=*.mp3 dir3/ /3/
FROM scratch as builder4
COPY --exclude=*.mp3 --exclude=*.jpeg --exclude=*.png --exclude=*.pdf --exclude=*.txt dir* /4/
FROM scratch as builder6
ADD --exclude=* dir* /6
FROM scratch
COPY --from=builder1 / /builder1
COPY --from=builder3 / /builder3
COPY --from=builder4 / /builder4
COPY --from=builder6 / /builder6
""",
        files,
    )
    root = b.unpack(tmp_path / "u")
    b1 = root / "builder1/1"
    assert not (b1 / "dir1/file-101.png").exists() and (b1 / "dir1/file-102.txt").read_text() == "3"
    assert not (b1 / "dir2/file-202.jpeg").exists() and (b1 / "dir2/file-201.pdf").read_text() == "6"
    assert os.readlink(b1 / "dir4/file-403.txt") == "file-404.txt"
    assert sorted(p.name for p in (root / "builder3/3").iterdir()) == ["file-302.mpeg"]
    assert sorted(p.name for p in (root / "builder4/4").iterdir()) == ["file-302.mpeg"]
    assert list((root / "builder6/6").iterdir()) == []


def test_heredoc_sources(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        """FROM scratch
ARG NAME=world
COPY <<EOF single
hello $NAME
EOF
COPY <<EOF <<EOF2 double/
first file
EOF
second file
EOF2
COPY --chmod=777 <<EOF quotefile
"quotes in file"
EOF
COPY <<EOF slashfile2
\\\\
EOF
COPY <<"EOF" rawslashfile3
\\$
EOF
""",
        {},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "single").read_text() == "hello world\n"
    assert (root / "double/EOF").read_text() == "first file\n"
    assert (root / "double/EOF2").read_text() == "second file\n"
    assert (root / "quotefile").read_text() == '"quotes in file"\n'
    assert stat.S_IMODE((root / "quotefile").stat().st_mode) == 0o777
    assert (root / "slashfile2").read_text() == "\\\n"
    assert (root / "rawslashfile3").read_text() == "\\$\n"


def test_unicode_names_and_sockets(build: BuildFn, tmp_path: Path) -> None:
    import socket

    ctx = tmp_path / "sockctx"
    ctx.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(ctx / "socket.sock"))
    try:
        b = build(
            "FROM scratch\nCOPY . /\n",
            {"test-äöü.txt": "foo", "test-%C3%A4%C3%B6%C3%BC.txt": "bar", "test+aou.txt": "baz"},
            context=ctx,
        )
    finally:
        s.close()
    root = b.unpack(tmp_path / "u")
    assert (root / "test-äöü.txt").read_text() == "foo"
    assert (root / "test-%C3%A4%C3%B6%C3%BC.txt").read_text() == "bar"
    assert (root / "test+aou.txt").read_text() == "baz"
    assert (root / "socket.sock").is_file() and (root / "socket.sock").stat().st_size == 0


def test_copy_from_args_expansion_rejected(build: BuildFn) -> None:
    with pytest.raises(BuildError, match="variable expansion is not supported for --from"):
        build("FROM scratch\nARG FOO=x\nCOPY --from=$FOO . .\n", {})
