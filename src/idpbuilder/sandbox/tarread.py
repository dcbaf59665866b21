"""Reading tar streams we did not write (image layers, ``ADD`` archives) within bounds.

The stdlib ``tarfile`` parses pax headers with regular expressions that take quadratic time on crafted
input (CVE-2024-6232; Python 3.11.7 still has them), reads any size of pax or GNU long-name header into
memory, keeps every member it has seen, and leaves numbers unchecked (a pax ``uid`` of 99999999999, an
``mtime`` of ``1e400``). ``SafeTarInfo`` replaces the header parsing with a linear one bounded like Go's
``archive/tar`` (1 MiB per special header, as buildah and docker do), whatever the Python patch level;
``iter_members`` checks every member and charges its expanded size to an ``ExpansionBudget``, so a
sparse file or a compression bomb stops with a clear error before it fills the disk.

``IDPBUILDER_MAX_EXPANSION`` sets the budget as a ratio of the archive's (compressed) size (default
100, never below 1 GiB); an extraction must also leave 64 MiB free on its file system.
"""

from __future__ import annotations

import lzma
import math
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from idpbuilder._records import dataclass
from idpbuilder.errors import BuildError, UsageError

__all__ = [
    "EXPANSION_ENV",
    "READ_ERRORS",
    "MAX_SPECIAL_HEADER",
    "ExpansionBudget",
    "SafeTarInfo",
    "expansion_budget",
    "iter_members",
    "open_tar_stream",
]

EXPANSION_ENV = "IDPBUILDER_MAX_EXPANSION"
MAX_SPECIAL_HEADER = 1 << 20  # Go archive/tar's maxSpecialFileSize: "archive/tar: header field too long"
_DEFAULT_RATIO = 100.0
_FLOOR = 1 << 30
_FREE_MARGIN = 64 << 20
_MAX_SPARSE = 1 << 16  # sparse map entries per member
_MAX_PATH = 4096  # PATH_MAX: longer names cannot be created on Linux anyway
_MAX_ID = (1 << 32) - 2  # uid_t is 32 bits; (uid_t)-1 means "unchanged" to chown
_MAX_MTIME = float(1 << 62) / 1e9  # nanoseconds must fit the kernel's signed 64 bits
_BLOCK = tarfile.BLOCKSIZE
# private to tarfile's typeshed stubs, public in tarfile itself
_InvalidHeader: type[Exception] = vars(tarfile)["InvalidHeaderError"]
_TruncatedHeader: type[Exception] = vars(tarfile)["TruncatedHeaderError"]
_SubsequentHeader: type[Exception] = vars(tarfile)["SubsequentHeaderError"]


def _isal_error() -> type[Exception]:
    try:
        from isal import isal_zlib  # the gzip decoder image/ prefers
    except ImportError:  # pragma: no cover
        return zlib.error
    return cast(type[Exception], isal_zlib.error)


# what reading a damaged (compressed) tar stream raises
READ_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    EOFError,
    ValueError,
    OverflowError,
    IndexError,
    zlib.error,
    lzma.LZMAError,
    _isal_error(),
    OSError,
)
_HINT = "the image or archive is damaged or hostile; rebuild it with docker, buildah or GNU tar"


class TarRejected(tarfile.TarError):
    """A header we refuse to parse (not a tarfile.HeaderError, which tarfile turns into end-of-archive)."""


def _number(raw: bytes, what: str) -> int:
    if not raw or len(raw) > 20 or not raw.isdigit():
        raise TarRejected(f"invalid pax {what} {raw[:40]!r}")
    return int(raw)


def parse_pax_records(buf: bytes) -> list[tuple[bytes, bytes]]:
    """The ``length keyword=value\\n`` records of a pax header, parsed in linear time."""
    out: list[tuple[bytes, bytes]] = []
    pos, end = 0, len(buf)
    while pos < end and buf[pos] != 0:
        sp = buf.find(b" ", pos, min(end, pos + 21))
        if sp < 0:
            raise TarRejected("invalid pax header record")
        length = _number(buf[pos:sp], "record length")
        stop = pos + length
        if length < 5 or stop > end or buf[stop - 1] != 0x0A:
            raise TarRejected("invalid pax header record")
        eq = buf.find(b"=", sp + 1, stop - 1)
        if eq <= sp + 1:
            raise TarRejected("invalid pax header record")
        out.append((buf[sp + 1 : eq], buf[eq + 1 : stop - 1]))
        pos = stop
    return out


class SafeTarInfo(tarfile.TarInfo):
    """A ``TarInfo`` whose special headers are parsed in linear time and bounded in size."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> SafeTarInfo:
        offset = tarfile_.offset
        try:
            return super().fromtarfile(tarfile_)
        except (_InvalidHeader, _TruncatedHeader) as e:
            if offset == 0 and not isinstance(e, _TruncatedHeader):
                raise
            # tarfile would take a damaged header for the end of the archive; Go's archive/tar fails
            raise TarRejected(f"invalid tar header at offset {offset}: {e}") from None

    def _special_size(self) -> None:
        if self.size > MAX_SPECIAL_HEADER:
            raise TarRejected(
                f"header field too long: a {self.size}-byte extended header "
                f"(the limit is {MAX_SPECIAL_HEADER} bytes)"
            )

    def _proc_gnulong(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        self._special_size()
        return super()._proc_gnulong(tarfile_)  # type: ignore[misc,no-any-return]

    def _proc_sparse(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            out = super()._proc_sparse(tarfile_)  # type: ignore[misc]
        except IndexError:
            raise TarRejected("truncated GNU sparse header") from None
        _check_sparse(out.sparse)
        return out  # type: ignore[no-any-return]

    def _proc_pax(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        self._special_size()
        buf = tarfile_.fileobj.read(self._block(self.size))  # type: ignore[attr-defined]
        if len(buf) < self.size:
            raise TarRejected("unexpected end of data in a pax header")
        records = parse_pax_records(buf[: self.size])
        pax: dict[str, str] = cast(dict[str, str], tarfile_.pax_headers)
        if self.type != tarfile.XGLTYPE:
            pax = dict(pax)
        encoding = "utf-8"
        for key, value in records:
            if key == b"hdrcharset":
                encoding = tarfile_.encoding if value == b"BINARY" else "utf-8"
                break
        errors: str = tarfile_.errors
        for key, value in records:
            keyword = self._decode_pax_field(key, "utf-8", "utf-8", errors)  # type: ignore[attr-defined]
            enc = encoding if keyword in tarfile.PAX_NAME_FIELDS else "utf-8"
            pax[keyword] = self._decode_pax_field(value, enc, tarfile_.encoding, errors)  # type: ignore[attr-defined]
        _check_pax_numbers(pax)
        try:
            nxt = self.fromtarfile(tarfile_)
        except tarfile.HeaderError as e:
            raise _SubsequentHeader(str(e)) from None
        if "GNU.sparse.map" in pax:
            nums = [_number(x.encode(), "sparse map entry") for x in pax["GNU.sparse.map"].split(",")]
            _check_sparse(nums[::2])
            nxt.sparse = list(zip(nums[::2], nums[1::2], strict=False))  # type: ignore[assignment]
        elif "GNU.sparse.size" in pax:
            offs = [_number(v, "sparse offset") for k, v in records if k == b"GNU.sparse.offset"]
            sizes = [_number(v, "sparse size") for k, v in records if k == b"GNU.sparse.numbytes"]
            _check_sparse(offs)
            nxt.sparse = list(zip(offs, sizes, strict=False))  # type: ignore[assignment]
        elif pax.get("GNU.sparse.major") == "1" and pax.get("GNU.sparse.minor") == "0":
            self._sparse_10(nxt, tarfile_)
        if self.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
            nxt._apply_pax_info(pax, tarfile_.encoding, errors)  # type: ignore[attr-defined]
            nxt.offset = self.offset
            if "size" in pax:
                offset = nxt.offset_data
                if nxt.isreg() or nxt.type not in tarfile.SUPPORTED_TYPES:
                    offset += nxt._block(nxt.size)  # type: ignore[attr-defined]
                tarfile_.offset = offset
        return nxt

    def _sparse_10(self, nxt: tarfile.TarInfo, tarfile_: tarfile.TarFile) -> None:
        fobj: IO[bytes] = tarfile_.fileobj  # type: ignore[assignment]
        buf = b""
        nums: list[int] = []
        want = -1
        read = 0
        while want < 0 or len(nums) < want:
            nl = buf.find(b"\n")
            if nl < 0:
                block = fobj.read(_BLOCK)
                read += len(block)
                if len(block) < _BLOCK or read > MAX_SPECIAL_HEADER:
                    raise TarRejected("invalid GNU sparse 1.0 map")
                buf += block
                continue
            n = _number(buf[:nl], "sparse map entry")
            buf = buf[nl + 1 :]
            if want < 0:
                if n > _MAX_SPARSE:
                    raise TarRejected(f"a sparse map of {n} entries (the limit is {_MAX_SPARSE})")
                want = 2 * n
            else:
                nums.append(n)
        nxt.sparse = list(zip(nums[::2], nums[1::2], strict=False))  # type: ignore[assignment]
        nxt.offset_data = fobj.tell()


def _check_sparse(entries: list[Any] | None) -> None:
    if entries is not None and len(entries) > _MAX_SPARSE:
        raise TarRejected(f"a sparse map of {len(entries)} entries (the limit is {_MAX_SPARSE})")


def _check_pax_numbers(pax: dict[str, str]) -> None:
    for key in ("uid", "gid", "size", "GNU.sparse.size", "GNU.sparse.realsize"):
        v = pax.get(key)
        if v is not None:
            _number(v.encode("utf-8", "surrogateescape"), key)
    for key in ("mtime", "atime", "ctime"):
        v = pax.get(key)
        if v is None:
            continue
        whole, _, frac = v.lstrip("-").partition(".")
        if not (whole.isascii() and whole.isdigit() and len(whole) <= 20) or (frac and not frac.isdigit()):
            raise TarRejected(f"invalid pax {key} {v[:40]!r}")


def _check_member(m: tarfile.TarInfo) -> None:
    for what, value in (("uid", m.uid), ("gid", m.gid)):
        if not 0 <= value <= _MAX_ID:
            raise TarRejected(f"entry {m.name[:80]!r} has {what} {value}, outside the 32-bit range")
    mtime = float(m.mtime)
    if not math.isfinite(mtime) or abs(mtime) > _MAX_MTIME:
        raise TarRejected(f"entry {m.name[:80]!r} has an out-of-range mtime {m.mtime!r}")
    if m.size < 0:
        raise TarRejected(f"entry {m.name[:80]!r} has a negative size")
    for what, name in (("name", m.name), ("link target", m.linkname)):
        if len(name.encode("utf-8", "surrogateescape")) > _MAX_PATH:
            raise TarRejected(f"entry {m.name[:80]!r}…: {what} longer than {_MAX_PATH} bytes")


@dataclass
class ExpansionBudget:
    """How many bytes (headers + contents) an archive may expand to; ``charge`` raises past the limit."""

    limit: int
    what: str = "archive"
    why: str = ""
    used: int = 0

    def charge(self, m: tarfile.TarInfo) -> None:
        """Count one member (a 512-byte header plus its contents) against the limit."""
        self.used += _BLOCK + (m.size if m.isreg() else 0)
        if self.used > self.limit:
            raise BuildError(
                f"{self.what} expands to more than {_human(self.limit)}{self.why}; stopped at entry "
                f"{m.name[:80]!r}",
                hint=f"if the archive is genuine, raise {EXPANSION_ENV} (a multiple of its compressed "
                "size, now "
                f"{os.environ.get(EXPANSION_ENV) or int(_DEFAULT_RATIO)}) or free disk space",
            )


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def _ratio() -> float:
    raw = os.environ.get(EXPANSION_ENV, "").strip().rstrip("xX")
    if not raw:
        return _DEFAULT_RATIO
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not math.isfinite(ratio) or ratio <= 0:
        raise UsageError(
            f"{EXPANSION_ENV}={os.environ[EXPANSION_ENV]!r} is not a positive number",
            hint=f"set it to how many times its compressed size a layer may expand to, e.g. {EXPANSION_ENV}=100",
        )
    return ratio


def expansion_budget(compressed_size: int, *, what: str, dest: Path | None = None) -> ExpansionBudget:
    """The budget for an archive of ``compressed_size`` bytes, extracted into ``dest`` (if it writes)."""
    limit = max(int(_ratio() * max(compressed_size, 0)), _FLOOR)
    why = f" ({_ratio():g} times its {compressed_size} bytes)"
    if dest is not None:
        try:
            st = os.statvfs(dest)
        except OSError:
            pass
        else:
            free = max(st.f_bavail * st.f_frsize - _FREE_MARGIN, 0)
            if free < limit:
                limit, why = free, f" (the free space on {dest} less a {_FREE_MARGIN >> 20} MiB margin)"
    return ExpansionBudget(limit, what, why)


def open_tar_stream(fileobj: IO[bytes], *, what: str) -> tarfile.TarFile:
    """``fileobj`` as a streamed tar archive read with ``SafeTarInfo``."""
    try:
        # 64 KiB, not more: tarfile's stream re-slices its buffer on every read (a copy of what is left of
        # it per 512-byte header), so a 1 MiB buffer made a Debian base layer's extraction twice as slow
        return tarfile.open(fileobj=fileobj, mode="r|", bufsize=1 << 16, tarinfo=SafeTarInfo)
    except TarRejected as e:
        raise BuildError(f"{what} is not a valid tar archive: {e}", hint=_HINT) from None
    except READ_ERRORS as e:
        raise BuildError(f"{what} is not a valid tar archive: {e}", hint=_HINT) from None


def iter_members(
    tf: tarfile.TarFile, *, what: str, budget: ExpansionBudget | None
) -> Iterator[tarfile.TarInfo]:
    """The members of ``tf``, each checked and charged to ``budget``; errors become one-line BuildErrors."""
    it = iter(tf)
    while True:
        try:
            m = next(it)
            _check_member(m)
        except StopIteration:
            return
        except TarRejected as e:
            raise BuildError(f"{what} is not a valid tar archive: {e}", hint=_HINT) from None
        except READ_ERRORS as e:
            raise BuildError(
                f"{what} is not a valid tar archive: {e or type(e).__name__}", hint=_HINT
            ) from None
        cast(Any, tf).members.clear()  # a streamed archive need not remember what it has passed
        if budget is not None:
            budget.charge(m)
        yield m
