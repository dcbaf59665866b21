"""Content digests: parsing, hashing, and readers that verify digest and size at EOF."""

from __future__ import annotations

import hashlib
import io
import re
from typing import BinaryIO

from idpbuilder._records import dataclass
from idpbuilder.errors import DigestMismatchError, UsageError

__all__ = ["Digest", "VerifyingReader", "sha256_bytes", "sha256_file"]

_DIGEST_RE = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")
_HEX_LEN = {"sha256": 64, "sha512": 128}
BLOCK = 1 << 20


@dataclass(frozen=True, order=True)
class Digest:
    """A content digest such as ``sha256:ab12…``."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algo:hex``; raise UsageError when malformed."""
        m = _DIGEST_RE.match(text.strip())
        if not m or len(m.group(2)) != _HEX_LEN[m.group(1)]:
            raise UsageError(f"invalid digest {text!r}", hint="a digest looks like sha256:<64 hex digits>")
        return cls(m.group(1), m.group(2))

    @classmethod
    def from_hasher(cls, h: hashlib._Hash) -> Digest:
        """Digest of what a hashlib object has seen."""
        return cls(h.name, h.hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The first 12 hex digits, as docker shows image ids."""
        return self.hex[:12]

    def hasher(self) -> hashlib._Hash:
        """A new hashlib object of this digest's algorithm."""
        return hashlib.new(self.algorithm)


def sha256_bytes(data: bytes) -> Digest:
    """sha256 digest of ``data``."""
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def sha256_file(path: str, *, block: int = BLOCK) -> tuple[Digest, int]:
    """sha256 digest and size of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
            size += len(chunk)
    return Digest("sha256", h.hexdigest()), size


class VerifyingReader(io.RawIOBase):
    """Wrap a binary stream; at EOF raise DigestMismatchError unless digest and size match."""

    def __init__(
        self, raw: BinaryIO, expected: Digest, size: int | None = None, *, what: str = "blob"
    ) -> None:
        super().__init__()
        self._raw = raw
        self._expected = expected
        self._size = size
        self._hash = expected.hasher()
        self._count = 0
        self._what = what
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def read(self, n: int | None = -1) -> bytes:
        data = self._raw.read(-1 if n is None else n)
        if data:
            self._hash.update(data)
            self._count += len(data)
            if self._size is not None and self._count > self._size:
                raise DigestMismatchError(
                    f"{self._what} {self._expected}: more than the expected {self._size} bytes"
                )
        elif n != 0:
            self.verify()
        return data

    def verify(self) -> None:
        """Check digest and size of everything read so far; idempotent."""
        if self._checked:
            return
        got = Digest(self._expected.algorithm, self._hash.hexdigest())
        if self._size is not None and self._count != self._size:
            raise DigestMismatchError(
                f"{self._what} {self._expected}: got {self._count} bytes, expected {self._size}"
            )
        if got != self._expected:
            raise DigestMismatchError(f"{self._what} {self._expected}: content has digest {got}")
        self._checked = True

    @property
    def bytes_read(self) -> int:
        return self._count

    def close(self) -> None:
        self._raw.close()
        super().close()
