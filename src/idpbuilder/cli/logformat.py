"""How log lines look on stderr: ``Jan 02 15:04:05 WARN message``, the level coloured on a terminal."""

from __future__ import annotations

import logging

__all__ = ["LevelFormatter"]


class LevelFormatter(logging.Formatter):
    _COLORS = {"DEBUG": "35", "INFO": "32", "WARNING": "33", "ERROR": "31"}

    def __init__(self, color: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", datefmt="%b %d %H:%M:%S")
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        if record.levelname == "WARNING":
            record.levelname = "WARN"
        s = super().format(record)
        if self.color:
            c = self._COLORS.get(record.levelname if record.levelname != "WARN" else "WARNING", "0")
            s = s.replace(record.levelname, f"\x1b[{c}m{record.levelname}\x1b[0m", 1)
        return s
