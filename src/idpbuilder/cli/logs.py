"""The CLI's log output: records of the ``idpbuilder`` loggers at the chosen level go to stderr.

Importing ``logging`` costs milliseconds (it loads traceback, string, weakref and threading with it) and
commands such as ``--help`` and ``images`` never log, so ``setup`` does not import it: when ``logging`` is
already loaded the logger is configured at once, otherwise the moment something imports it (a finder on
``sys.meta_path`` wraps the loader of ``logging`` and configures it right after the module has run, before
any record can be made; the real loader is put back then).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["LEVELS", "setup"]

LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40}  # logging.DEBUG, INFO, WARNING, ERROR


def setup(level: str, color: bool) -> None:
    """Send the ``idpbuilder`` loggers' records at ``level`` and above to stderr (coloured when ``color``)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ConfigureOnImport)]
    if "logging" in sys.modules:
        _configure(level, color)
    else:
        sys.meta_path.insert(0, _ConfigureOnImport(lambda: _configure(level, color)))


def _configure(level: str, color: bool) -> None:
    import logging

    from idpbuilder.cli.logformat import LevelFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LevelFormatter(color))
    root = logging.getLogger("idpbuilder")
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    root.propagate = False


class _ConfigureOnImport:
    """A meta path finder for ``logging`` alone: the other finders find it; its loader is wrapped so that
    ``then`` runs right after the module has been executed. Used once, then removed."""

    def __init__(self, then: Callable[[], None]) -> None:
        self._then = then

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> Any:
        if name != "logging":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _ThenLoader(spec.loader, self._then)
                return spec
        return None


class _ThenLoader:
    """``loader``, calling ``then`` after ``exec_module`` (and putting ``loader`` back on the module)."""

    def __init__(self, loader: Any, then: Callable[[], None]) -> None:
        self._loader = loader
        self._then = then

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._then()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
