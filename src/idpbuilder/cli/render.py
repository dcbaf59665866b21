"""Text rendering shared by the commands: docker's sizes, durations and tables (pure, no I/O)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

__all__ = ["human_duration", "human_size", "render_table", "since"]

_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """Docker's decimal size with 3 significant digits (``4.26MB``, ``523B``)."""
    i = 0
    while size >= 1000.0 and i < len(_SIZE_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{_SIZE_UNITS[i]}"


def human_duration(seconds: float) -> str:
    """Docker's (go-units) humanised duration: ``About a minute``, ``3 hours``, ``2 weeks``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns laid out as docker's tabwriter does (min width 10, padding 3)."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out = []
    for row in [list(header), *map(list, rows)]:
        cells = [cell.ljust(max(widths[i] + 3, 10)) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1])
    return "\n".join(out) + "\n"


def since(created: _dt.datetime | None, now: float) -> str:
    """``5 weeks ago``, or ``N/A`` when the time is unknown."""
    if created is None:
        return "N/A"
    return human_duration(max(0.0, now - created.timestamp())) + " ago"
