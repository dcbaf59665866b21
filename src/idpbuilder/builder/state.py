"""``StageState``: the one mutable state of a stage while its instructions run (config, layers, cache chain,
declared ARGs, lazily indexed rootfs)."""

from __future__ import annotations

from typing import Any

from idpbuilder._records import dataclass, field
from idpbuilder.builder.rootfs import ImageFS
from idpbuilder.image import Layer
from idpbuilder.oci import Platform

__all__ = ["StageState"]


@dataclass
class StageState:
    """The mutable state of one stage while its instructions run."""

    index: int
    name: str
    platform: Platform
    config: dict[str, Any]  # the image config JSON being built
    layers: list[Layer]
    chain: str  # cache key of the last layer step (or of the base)
    args: dict[str, str] = field(default_factory=dict)  # declared ARGs with a value
    cmd_set: bool = False
    fs: ImageFS | None = None
    auto_args: dict[str, str] = field(default_factory=dict)  # BuildKit's automatic args (TARGETOS, ...)
    # ARGs declared (with a value) after the ENV of the same name: BuildKit keeps one environment where
    # the later of ENV and ARG wins for expansion and RUN (the image's config.Env keeps the ENV value)
    arg_wins: set[str] = field(default_factory=set)

    @property
    def c(self) -> dict[str, Any]:
        """The ``config`` object of the image config (Env, Cmd, WorkingDir, ...)."""
        return self.config["config"]  # type: ignore[no-any-return]

    @property
    def env(self) -> dict[str, str]:
        """config.Env as a mapping."""
        out: dict[str, str] = {}
        for e in self.c.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out

    def expansion_env(self) -> dict[str, str]:
        """Variables for word expansion and RUN: ARGs and ENV, the later declaration of a name winning."""
        out = {**self.args, **self.env}
        for k in self.arg_wins:
            if k in self.args:
                out[k] = self.args[k]
        return out

    @property
    def workdir(self) -> str:
        """config.WorkingDir, ``/`` when unset."""
        return str(self.c.get("WorkingDir") or "/")

    @property
    def shell(self) -> list[str]:
        """config.Shell, ``/bin/sh -c`` when unset."""
        sh = self.c.get("Shell")
        return list(sh) if sh else ["/bin/sh", "-c"]
