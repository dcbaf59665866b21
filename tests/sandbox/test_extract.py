"""Safe extraction: hostile tars never write outside the target; whiteouts and metadata are applied."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from idpbuilder.digest import Digest
from idpbuilder.errors import BuildError, DigestMismatchError
from idpbuilder.image import Layer, LayerWriter
from idpbuilder.sandbox import extract_layers, layer_dir, safe_extract
from idpbuilder.sandbox.extract import OPAQUE
from idpbuilder.store import Store

from .conftest import needs_root

OPAQUE_XATTR = "trusted.overlay." + OPAQUE  # the tests run as root, outside a user namespace
E = tuple[tarfile.TarInfo, bytes | None]


def reg(name: str, data: bytes = b"x", *, mode: int = 0o644, uid: int = 0, gid: int = 0, **pax: str) -> E:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, 1_600_000_000
    if pax:
        info.pax_headers = dict(pax)
    return info, data


def sym(name: str, target: str) -> E:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    return info, None


def hard(name: str, target: str) -> E:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


def dir_(name: str, mode: int = 0o755) -> E:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 1_500_000_000
    return info, None


def dev(name: str, kind: bytes, major: int, minor: int) -> E:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor, info.mode = kind, major, minor, 0o666
    return info, None


def make_tar(*entries: E) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


@dataclass
class Arena:
    """A tmp dir with the extraction target inside it and a sentinel file/dir beside it."""

    top: Path
    dest: Path
    outside: Path
    marker: str

    def state(self) -> dict[str, tuple[int, int, bytes | str]]:
        """Everything under ``top`` except ``dest``: type/mode, and content or link target."""
        out: dict[str, tuple[int, int, bytes | str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.top):
            if Path(dirpath) == self.top and "dest" in dirnames:
                dirnames.remove("dest")
            for n in dirnames + filenames:
                p = Path(dirpath) / n
                st = os.lstat(p)
                body: bytes | str = (
                    os.readlink(p)
                    if stat.S_ISLNK(st.st_mode)
                    else p.read_bytes()
                    if stat.S_ISREG(st.st_mode)
                    else b""
                )
                out[str(p.relative_to(self.top))] = (st.st_mode, st.st_nlink, body)
        return out

    def host_clean(self) -> bool:
        """No marker-named file appeared at the host's root or /tmp."""
        return not any(
            Path(d, self.marker).exists() or Path(d, self.marker).is_symlink() for d in ("/", "/tmp")
        )


@pytest.fixture
def arena(tmp_path: Path) -> Arena:
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_bytes(b"orig")
    return Arena(tmp_path, dest, outside, f"idpb-pwned-{uuid.uuid4().hex[:8]}")


# Each case: (id, builder(arena) -> list of layers (each a list of entries), expect error?)
Case = tuple[str, Callable[[Arena], list[list[E]]], bool]
CASES: list[Case] = [
    ("dotdot", lambda a: [[reg(f"../{a.marker}")]], True),
    ("dotdot-nested", lambda a: [[reg(f"x/../../{a.marker}")]], True),
    ("dotdot-deep", lambda a: [[reg(f"a/b/../../../../../../tmp/{a.marker}")]], True),
    ("absolute-name", lambda a: [[reg(f"/{a.marker}")]], False),
    ("absolute-tmp", lambda a: [[reg(f"/tmp/{a.marker}")]], False),
    ("absolute-outside", lambda a: [[reg(str(a.outside / "target"), b"pwned")]], False),
    ("symlink-parent-abs", lambda a: [[sym("lnk", str(a.outside)), reg("lnk/target", b"pwned")]], False),
    ("symlink-parent-rel", lambda a: [[sym("lnk", "../../../../../.."), reg(f"lnk/tmp/{a.marker}")]], False),
    ("symlink-parent-root", lambda a: [[sym("lnk", "/"), reg(f"lnk/{a.marker}")]], False),
    (
        "symlink-nested-rel",
        lambda a: [[dir_("sub"), sym("sub/lnk", "../../outside"), reg("sub/lnk/target", b"p")]],
        False,
    ),
    ("symlink-then-file", lambda a: [[sym("f", str(a.outside / "target")), reg("f", b"pwned")]], False),
    ("symlink-then-dir", lambda a: [[sym("d", str(a.outside)), dir_("d", 0o700)]], False),
    ("symlink-loop", lambda a: [[sym("a", "b"), sym("b", "a"), reg("a/x")]], True),
    ("hardlink-dotdot", lambda a: [[hard("h", "../outside/target")]], True),
    ("hardlink-absolute", lambda a: [[hard("h", str(a.outside / "target"))]], True),
    ("hardlink-via-symlink-dir", lambda a: [[sym("d", str(a.outside)), hard("h", "d/target")]], True),
    (
        "hardlink-to-symlink",
        lambda a: [[sym("s", str(a.outside / "target")), hard("h", "s"), reg("h2", b"z")]],
        False,
    ),
    (
        "hardlink-then-write",
        lambda a: [[sym("s", str(a.outside / "target")), hard("h", "s"), reg("h", b"pwned")]],
        False,
    ),
    (
        "device-nodes",
        lambda a: [[dev("null", tarfile.CHRTYPE, 1, 3), dev("sda", tarfile.BLKTYPE, 8, 0)]],
        False,
    ),
    ("fifo", lambda a: [[dev("pipe", tarfile.FIFOTYPE, 0, 0)]], False),
    ("huge-name", lambda a: [[reg("d/" * 2100 + a.marker)]], True),
    ("huge-component", lambda a: [[reg("x" * 300)]], True),
    ("huge-pax-path", lambda a: [[reg("short", path="p/" * 600_000 + a.marker)]], True),
    ("whiteout-dotdot", lambda a: [[reg("keep")], [reg("../.wh.outside")]], True),
    ("whiteout-name-dotdot", lambda a: [[reg("keep")], [reg("sub/.wh..")]], True),
    ("whiteout-through-symlink", lambda a: [[sym("lnk", str(a.outside))], [reg("lnk/.wh.target")]], False),
    ("opaque-through-symlink", lambda a: [[sym("lnk", str(a.outside))], [reg("lnk/.wh..wh..opq")]], False),
    ("whiteout-symlink-itself", lambda a: [[sym("lnk", str(a.outside))], [reg(".wh.lnk")]], False),
    ("root-as-symlink", lambda a: [[sym(".", str(a.outside))]], True),
    ("root-as-file", lambda a: [[reg("./", b"x")]], True),
    (
        "overlay-xattr-smuggling",
        lambda a: [[dir_("d"), reg("d/f", **{"SCHILY.xattr.trusted.overlay.opaque": "y"})]],
        False,
    ),
]


@needs_root
@pytest.mark.parametrize("overlay", [False, True], ids=["flat", "overlay-lower"])
@pytest.mark.parametrize(("case_id", "build", "raises"), CASES, ids=[c[0] for c in CASES])
def test_hostile_tar_stays_inside(
    arena: Arena, case_id: str, build: Callable[[Arena], list[list[E]]], raises: bool, overlay: bool
) -> None:
    before = arena.state()
    layers = build(arena)
    error: BuildError | None = None
    for entries in layers:
        try:
            safe_extract(make_tar(*entries), arena.dest, as_overlay_lower=overlay)
        except BuildError as e:
            error = e
            break
    assert arena.state() == before, "something outside the target changed"
    assert arena.host_clean()
    assert (error is not None) == raises, f"{case_id}: error={error}"
    assert (arena.outside / "target").read_bytes() == b"orig"


@needs_root
def test_hostile_results_land_inside(arena: Arena) -> None:
    safe_extract(make_tar(sym("lnk", str(arena.outside)), reg("lnk/target", b"in")), arena.dest)
    inner = arena.dest / str(arena.outside).lstrip("/") / "target"
    assert inner.read_bytes() == b"in"
    safe_extract(make_tar(sym("f", "/etc/passwd"), reg("f", b"data")), arena.dest)
    assert not (arena.dest / "f").is_symlink() and (arena.dest / "f").read_bytes() == b"data"
    safe_extract(make_tar(sym("s", str(arena.outside / "target")), hard("h", "s")), arena.dest)
    assert os.readlink(arena.dest / "h") == str(arena.outside / "target")
    assert os.lstat(arena.dest / "h").st_ino == os.lstat(arena.dest / "s").st_ino
    safe_extract(make_tar(dev("null", tarfile.CHRTYPE, 1, 3)), arena.dest)
    assert stat.S_ISCHR(os.lstat(arena.dest / "null").st_mode)
    safe_extract(make_tar(dir_("d"), reg("d/f", **{"SCHILY.xattr.trusted.overlay.opaque": "y"})), arena.dest)
    assert OPAQUE_XATTR not in os.listxattr(arena.dest / "d/f")


@needs_root
def test_metadata_preserved(tmp_path: Path) -> None:
    cap = b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    tar = make_tar(
        dir_("opt", 0o750),
        reg("opt/suid", b"#!", mode=0o4755, uid=1234, gid=5678),
        reg("opt/cap", b"c", **{"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")}),
        reg("opt/user", b"u", **{"SCHILY.xattr.user.note": "hello"}),
        sym("opt/abs", "/bin/busybox"),
        hard("opt/hl", "opt/suid"),
    )
    safe_extract(tar, tmp_path)
    st = os.lstat(tmp_path / "opt/suid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (
        0o4755,
        1234,
        5678,
        1_600_000_000,
    )
    assert stat.S_IMODE(os.lstat(tmp_path / "opt").st_mode) == 0o750
    assert os.lstat(tmp_path / "opt").st_mtime == 1_500_000_000
    assert os.getxattr(tmp_path / "opt/cap", "security.capability") == cap
    assert os.getxattr(tmp_path / "opt/user", "user.note") == b"hello"
    assert os.readlink(tmp_path / "opt/abs") == "/bin/busybox"
    assert os.lstat(tmp_path / "opt/hl").st_ino == st.st_ino


def test_whiteouts_flattened(tmp_path: Path) -> None:
    safe_extract(
        make_tar(dir_("etc"), reg("etc/a"), reg("etc/b"), dir_("bin"), reg("bin/ls"), reg("bin/cat")),
        tmp_path,
    )
    safe_extract(
        make_tar(
            reg("bin/.wh.ls"), reg("etc/-new"), reg("etc/.wh..wh..opq"), reg("etc/c"), reg(".wh.nothing")
        ),
        tmp_path,
    )
    assert sorted(os.listdir(tmp_path / "etc")) == ["-new", "c"]
    assert sorted(os.listdir(tmp_path / "bin")) == ["cat"]


@needs_root
def test_whiteouts_as_overlay_lower(tmp_path: Path) -> None:
    safe_extract(
        make_tar(reg("bin/.wh.ls"), dir_("etc"), reg("etc/.wh..wh..opq"), reg("etc/c")),
        tmp_path,
        as_overlay_lower=True,
    )
    st = os.lstat(tmp_path / "bin/ls")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(tmp_path / "etc", OPAQUE_XATTR) == b"y"
    assert os.listdir(tmp_path / "etc") == ["c"]


def _layer(store: Store, *entries: E) -> Layer:
    with LayerWriter(store) as w:
        for info, data in entries:
            w.add_entry(info, io.BytesIO(data) if data is not None else None)  # type: ignore[arg-type]
    return w.result


def test_extract_layers_and_cache(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "home")
    try:
        l1 = _layer(store, dir_("etc"), reg("etc/a", b"1"), reg("etc/b", b"2"))
        l2 = _layer(store, reg("etc/.wh.a"), reg("etc/c", b"3"))
        extract_layers(store, [l1, l2], tmp_path / "flat")
        assert sorted(os.listdir(tmp_path / "flat/etc")) == ["b", "c"]
        if os.geteuid() == 0:
            d = layer_dir(store, l2)
            assert d == store.path_for("layers") / l2.diff_id.hex
            assert stat.S_ISCHR(os.lstat(d / "etc/a").st_mode)
            (d / "marker").write_text("cached")
            assert layer_dir(store, l2) == d and (d / "marker").exists()  # extracted once per diff_id
            assert not [p for p in store.path_for("layers").iterdir() if p.name.startswith(".tmp")]
    finally:
        store.close()


def test_corrupt_diff_id_rejected(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "home")
    try:
        good = _layer(store, reg("a", b"1"))
        bad = Layer(good.descriptor, Digest("sha256", "0" * 64))
        with pytest.raises(DigestMismatchError):
            extract_layers(store, [bad], tmp_path / "flat")
        if os.geteuid() == 0:
            with pytest.raises(DigestMismatchError):
                layer_dir(store, bad)
            assert not (store.path_for("layers") / bad.diff_id.hex).exists()
            assert not list(store.path_for("layers").iterdir())
    finally:
        store.close()


def test_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(BuildError):
        safe_extract(io.BytesIO(b"\x00garbage" * 200), tmp_path)
