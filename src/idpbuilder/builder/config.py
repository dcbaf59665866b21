"""Image config and history as Docker/BuildKit write them."""

from __future__ import annotations

import copy
import datetime as _dt
from typing import Any

from idpbuilder.oci import Platform

__all__ = [
    "DEFAULT_PATH",
    "add_history",
    "go_quote_list",
    "go_list",
    "new_config",
    "rfc3339",
    "set_env",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.dockerfile.v0"


def rfc3339(ts: float) -> str:
    """UTC timestamp in RFC 3339 with a Z suffix (nanoseconds trimmed like Go)."""
    d = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    frac = f"{d.microsecond:06d}".rstrip("0")
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def new_config(base: dict[str, Any] | None, platform: Platform) -> dict[str, Any]:
    """A fresh image config derived from ``base`` (or scratch for ``platform``)."""
    if base is None:
        cfg: dict[str, Any] = {
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }
        if platform.variant:
            cfg["variant"] = platform.variant
    else:
        cfg = copy.deepcopy(base)
        cfg.setdefault("config", {})
        cfg["config"] = dict(cfg.get("config") or {})
        cfg.setdefault("history", [])
        cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        # build-time details of the base image are not inherited
        for k in ("container", "container_config", "docker_version", "id", "parent"):
            cfg.pop(k, None)
    c = cfg["config"]
    env = list(c.get("Env") or [])
    if platform.os != "windows" and not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    c["Env"] = env
    if base is None:  # BuildKit's empty image has WorkingDir "/"; a base image's (even unset) is kept
        c["WorkingDir"] = "/"
    return cfg


def set_env(config: dict[str, Any], key: str, value: str) -> None:
    """Set (or replace, keeping position) one ``KEY=value`` in config.Env."""
    env: list[str] = list(config["config"].get("Env") or [])
    for i, e in enumerate(env):
        if e.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    config["config"]["Env"] = env


def add_history(config: dict[str, Any], created_by: str, *, created: str, empty_layer: bool) -> None:
    """Append one history entry the way BuildKit does."""
    h: dict[str, Any] = {"created": created, "created_by": created_by, "comment": HISTORY_COMMENT}
    if empty_layer:
        h["empty_layer"] = True
    config.setdefault("history", []).append(h)


def go_quote_list(items: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    from idpbuilder.dockerfile.lexer import go_quote

    return "[" + " ".join(go_quote(i) for i in items) + "]"


def go_list(items: list[str]) -> str:
    """Go's ``%v`` of a []string: ``[a b]``."""
    return "[" + " ".join(items) + "]"
