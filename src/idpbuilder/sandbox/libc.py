"""The C library through ctypes, loaded on first use: ``ctypes`` itself costs milliseconds to import, and
only builds (namespaces, mounts) call into libc. ``CDLL(None)`` is the libc linked into python
(``ctypes.util.find_library`` would run ldconfig)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

__all__ = ["errno", "libc"]


@functools.cache
def libc() -> ctypes.CDLL:
    """The process's libc, with ``use_errno`` (read it with ``errno()``)."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def errno() -> int:
    """errno as the last libc call through ``libc()`` left it."""
    import ctypes

    return ctypes.get_errno()
