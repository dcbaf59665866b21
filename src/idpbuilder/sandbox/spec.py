"""What the build engine asks the sandbox to run: plain frozen values, no effects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from idpbuilder._records import dataclass, field
from idpbuilder.errors import UsageError

if TYPE_CHECKING:
    from idpbuilder.image import Layer
    from idpbuilder.store import Store

__all__ = ["MOUNT_KINDS", "MountSpec", "RunSpec", "Runner"]

MOUNT_KINDS = ("bind", "cache", "tmpfs", "secret", "ssh")  # ssh: an agent socket bound in
_SHARING = ("shared", "private", "locked")
NETWORKS = ("host", "none", "default")  # default = host, as docker build


@dataclass(frozen=True)
class MountSpec:
    """One ``RUN --mount``; the engine resolves ``source`` (context dir, stage rootfs, secret file)."""

    kind: str
    target: str
    source: Path | None = None
    readonly: bool = True
    id: str = ""
    sharing: str = "shared"
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in MOUNT_KINDS:
            raise UsageError(
                f"unknown mount type {self.kind!r}", hint="use type=bind, cache, tmpfs, secret or ssh"
            )
        if self.sharing not in _SHARING:
            raise UsageError(
                f"invalid sharing mode {self.sharing!r} for the mount at {self.target}",
                hint="use sharing=shared, private or locked",
            )
        if not self.target and self.kind != "secret":
            raise UsageError(f"a {self.kind} mount needs a target", hint="add target=/path to --mount")
        if self.kind in ("bind", "secret", "ssh") and self.source is None:
            raise UsageError(f"the {self.kind} mount at {self.target or self.id} has no source")

    @property
    def container_path(self) -> str:
        """Where the mount appears in the container (secrets default to /run/secrets/<id>)."""
        if self.target:
            return self.target if self.target.startswith("/") else "/" + self.target
        return f"/run/secrets/{self.id}"

    @property
    def cache_id(self) -> str:
        """The cache key of a cache mount (its id, else its target, as BuildKit does)."""
        return self.id or self.container_path


@dataclass(frozen=True)
class RunSpec:
    """One RUN step: the final argv (the engine applies SHELL), env, user, workdir, network and mounts."""

    argv: list[str]
    env: list[str] = field(default_factory=list)
    user: str = ""
    workdir: str = "/"
    network: str = "host"
    mounts: tuple[MountSpec, ...] = ()
    hostname: str = ""
    extra_hosts: tuple[tuple[str, str], ...] = ()
    # None instead of an empty layer when the command changed nothing (default: always a Layer)
    none_if_unchanged: bool = False
    # RUN --security=insecure (granted by --allow security.insecure): all capabilities, no seccomp filter,
    # no masked paths, a writable /sys, every device allowed
    privileged: bool = False

    def __post_init__(self) -> None:
        if not self.argv:
            raise UsageError("RUN needs a command")
        if self.network not in NETWORKS:
            raise UsageError(
                f"unsupported network mode {self.network!r} for RUN",
                hint="use --network=host, none or default",
            )


class Runner(Protocol):
    """Executes a RUN step on top of ``base_layers`` and returns the change as a layer."""

    def run(
        self,
        store: Store,
        base_layers: Sequence[Layer],
        spec: RunSpec,
        on_output: Callable[[str], None] | None = None,
    ) -> Layer | None:
        """Run ``spec`` in a rootfs of ``base_layers``; the filesystem change as a new stored Layer."""
        ...
