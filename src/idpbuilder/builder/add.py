"""ADD specifics: local tar auto-extraction (plain, gzip, bzip2, xz) and URL downloads with --checksum."""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path
from typing import BinaryIO

from idpbuilder._records import dataclass
from idpbuilder.builder.copy import LayerPlan
from idpbuilder.builder.fs import BLOCK, CHAR, DIR, FIFO, FILE, SYMLINK, Meta, SourceFS, clean
from idpbuilder.errors import BuildError

__all__ = ["Download", "download", "extract_archive", "is_archive", "is_url", "parse_checksum"]

_CHECKSUM_ALGOS = {"sha256": 64, "sha384": 96, "sha512": 128}


def is_url(src: str) -> bool:
    """True for http(s) sources (the only remote sources ADD fetches)."""
    return src.startswith("http://") or src.startswith("https://")


def is_git(src: str) -> bool:
    """True for git sources, which this builder does not fetch."""
    return src.startswith("git@") or src.endswith(".git") and "://" in src


def parse_checksum(text: str) -> tuple[str, str]:
    """Validate ``--checksum=algo:hex``; BuildError worded like BuildKit otherwise."""
    algo, sep, hexd = text.partition(":")
    if not sep:
        raise BuildError(f"invalid checksum digest format: {text!r}", hint="use --checksum=sha256:<hex>")
    if algo not in _CHECKSUM_ALGOS:
        raise BuildError(
            f"unsupported digest algorithm {algo!r} in --checksum", hint="use sha256, sha384 or sha512"
        )
    if len(hexd) != _CHECKSUM_ALGOS[algo] or any(c not in "0123456789abcdef" for c in hexd):
        raise BuildError(f"invalid checksum digest format: {text!r}", hint=f"a {algo} digest is hex")
    return algo, hexd


def _magic_opener(f: BinaryIO) -> BinaryIO | None:
    head = f.read(6)
    f.seek(0)
    if head[:2] == b"\x1f\x8b":
        import gzip

        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if head[:3] == b"BZh":
        import bz2

        return bz2.BZ2File(f, "rb")  # type: ignore[return-value]
    if head[:6] == b"\xfd7zXZ\x00":
        import lzma

        return lzma.LZMAFile(f, "rb")  # type: ignore[return-value]
    return f


def is_archive(fs: SourceFS, path: str) -> bool:
    """True when the file is a tar archive (optionally gzip/bzip2/xz compressed), by content."""
    m = fs.lstat(path)
    if m is None or m.kind != FILE or m.size == 0:
        return False
    import lzma  # ADD of a local file only (a build of COPYs never loads it)
    import tarfile

    with fs.open(path) as raw:
        try:
            stream = _magic_opener(raw)
            assert stream is not None
            block = stream.read(512)
        except (OSError, EOFError, lzma.LZMAError):
            return False
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _resolve_in(plan: LayerPlan, root: str, rel: str) -> str:
    """The real path of directory ``root/rel``, its symlinks resolved with ``root`` as "/" (never above
    it: ``link -> ..`` stays in ``root``), missing directories created, as BuildKit's unpack does."""
    cur = root
    todo = [p for p in reversed(rel.split("/")) if p not in ("", ".")]
    hops = 0
    while todo:
        part = todo.pop()
        if part == "..":
            cur = posixpath.dirname(cur) if cur != root else root
            continue
        nxt = posixpath.join(cur, part)
        m = plan.view.lstat(nxt)
        if m is not None and m.kind == SYMLINK:
            hops += 1
            if hops > 255:
                raise BuildError(f"too many levels of symbolic links below {root}")
            if m.linkname.startswith("/"):
                cur = root
            todo.extend(p for p in reversed(m.linkname.split("/")) if p not in ("", "."))
            continue
        if m is None:
            plan.mkdir_all(nxt)
        elif m.kind != DIR:
            raise BuildError(f"cannot create directory {nxt}: a file of that name exists in the image")
        cur = nxt
    return cur


def extract_archive(fs: SourceFS, path: str, plan: LayerPlan, dest_dir: str, scratch: Path) -> None:
    """Add an archive's members below the real directory ``dest_dir``: paths (and the archive's own
    symlinks) resolve inside ``dest_dir``, and an entry replaces a path of another type, as Docker's
    untar does (a file over a directory, populated or not; a directory over a file)."""
    from idpbuilder.sandbox.tarread import READ_ERRORS, expansion_budget, iter_members, open_tar_stream

    dest_dir = plan.mkdir_all(dest_dir)
    owner = plan.opts.owner
    n = 0
    what = fs.describe(path)
    st = fs.lstat(path)
    budget = expansion_budget(st.size if st is not None else 0, what=what, dest=scratch)
    with fs.open(path) as raw:
        stream = _magic_opener(raw)
        assert stream is not None
        try:
            with open_tar_stream(stream, what=what) as tf:
                for info in iter_members(tf, what=what, budget=budget):
                    name = clean(info.name)
                    if name == "/":
                        continue
                    parent = _resolve_in(plan, dest_dir, posixpath.dirname(name))
                    target = posixpath.join(parent, posixpath.basename(name))
                    uid, gid = (owner.uid, owner.gid) if owner is not None else (info.uid, info.gid)
                    mtime = float(info.mtime)
                    if plan.opts.mtime_clamp is not None:
                        mtime = min(mtime, plan.opts.mtime_clamp)
                    mode = info.mode & 0o7777
                    if info.isdir():
                        plan.put_dir(target, Meta(DIR, mode, uid, gid, mtime=mtime), replace=True)
                    elif info.issym():
                        plan.put_file(
                            target,
                            Meta(SYMLINK, mode, uid, gid, mtime=mtime, linkname=info.linkname),
                            None,
                            replace=True,
                        )
                    elif info.islnk():
                        lname = clean(info.linkname)
                        link_dir = _resolve_in(plan, dest_dir, posixpath.dirname(lname))
                        e = plan.entries.get(posixpath.join(link_dir, posixpath.basename(lname)))
                        if e is None or e.meta.kind != FILE:
                            raise BuildError(f"{fs.describe(path)}: hard link {info.name} to a missing file")
                        plan.put_file(target, e.meta, e.opener, replace=True)
                    elif info.isfile():
                        import shutil
                        import tempfile

                        n += 1
                        fd, name_ = tempfile.mkstemp(dir=scratch, prefix="a")
                        out = Path(name_)
                        src = tf.extractfile(info)
                        assert src is not None
                        with os.fdopen(fd, "wb") as f:
                            shutil.copyfileobj(src, f, 1 << 20)
                        plan.put_file(
                            target, Meta(FILE, mode, uid, gid, info.size, mtime), _file_opener(out), replace=True
                        )
                    elif info.ischr() or info.isblk() or info.isfifo():
                        kind = CHAR if info.ischr() else BLOCK if info.isblk() else FIFO
                        plan.put_file(
                            target,
                            Meta(
                                kind,
                                mode,
                                uid,
                                gid,
                                mtime=mtime,
                                devmajor=info.devmajor,
                                devminor=info.devminor,
                            ),
                            None,
                            replace=True,
                        )
        except READ_ERRORS as e:
            raise BuildError(f"extracting {fs.describe(path)}: {e}") from e


def _file_opener(p: Path):  # type: ignore[no-untyped-def]
    return lambda: open(p, "rb")


@dataclass(frozen=True)
class Download:
    """A fetched URL: local temp file, digest, file name and Last-Modified time."""

    path: Path
    sha256: str
    size: int
    filename: str
    mtime: float | None


def download(url: str, dest_dir: Path, *, checksum: str | None = None, timeout: float = 60.0) -> Download:
    """GET ``url`` into ``dest_dir``; verify --checksum; BuildError on HTTP or network failure."""
    import email.utils
    import tempfile
    import urllib.parse

    import urllib3

    algo_hex = parse_checksum(checksum) if checksum else None
    http = urllib3.PoolManager(retries=urllib3.Retry(total=3, backoff_factor=0.5), timeout=timeout)
    try:
        resp = http.request("GET", url, preload_content=False, headers={"User-Agent": "idpbuilder"})
    except (urllib3.exceptions.HTTPError, ValueError) as e:
        raise BuildError(
            f"downloading {url}: {_network_reason(e)}", hint="check the URL and your network"
        ) from None
    if resp.status >= 400:
        resp.release_conn()
        reason = f" {resp.reason}" if resp.reason else ""
        raise BuildError(f"downloading {url}: HTTP {resp.status}{reason}", hint="check the URL")
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix="dl-")
    h = hashlib.sha256()
    ch = hashlib.new(algo_hex[0]) if algo_hex else None
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in resp.stream(1 << 20):
                out.write(chunk)
                h.update(chunk)
                if ch is not None:
                    ch.update(chunk)
                size += len(chunk)
    except urllib3.exceptions.HTTPError as e:
        os.unlink(tmp)
        raise BuildError(
            f"downloading {url}: connection lost after {size} bytes ({_network_reason(e)})",
            hint="check your network and try again",
        ) from None
    finally:
        resp.release_conn()
    if algo_hex is not None and ch is not None and ch.hexdigest() != algo_hex[1]:
        raise BuildError(
            f"digest mismatch for {url}: expected {algo_hex[0]}:{algo_hex[1]}, got {algo_hex[0]}:{ch.hexdigest()}"
        )
    mtime: float | None = None
    lm = resp.headers.get("Last-Modified")
    if lm:
        try:
            mtime = email.utils.parsedate_to_datetime(lm).timestamp()
        except (TypeError, ValueError):
            mtime = None
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "__unnamed__"
    return Download(Path(tmp), h.hexdigest(), size, urllib.parse.unquote(name), mtime)


def _network_reason(e: BaseException) -> str:
    """A short reason for a urllib3 failure (``connection refused``, ``cannot resolve host x``)."""
    import urllib3

    inner: BaseException = e
    while isinstance(inner, urllib3.exceptions.MaxRetryError) and inner.reason is not None:
        inner = inner.reason
    if isinstance(inner, urllib3.exceptions.NameResolutionError):
        return f"cannot resolve host {inner.conn.host}"
    if isinstance(inner, urllib3.exceptions.NewConnectionError):
        text = str(inner).lower()
        return "connection refused" if "refused" in text else "cannot connect"
    if isinstance(inner, urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(inner, urllib3.exceptions.SSLError):
        return f"TLS error: {inner}"
    if isinstance(inner, (urllib3.exceptions.LocationValueError, ValueError)):
        return f"invalid URL ({inner})"
    return type(inner).__name__ if not str(inner) else str(inner).splitlines()[0][:200]
